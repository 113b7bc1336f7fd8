/*
 * spin.cpp
 *		Polling for a moment before going to sleep (see spin.hpp).
 */
#include "pg/spin.hpp"

#include <sched.h>
#include <unistd.h>

#include "settings.hpp"

namespace child_txn
{
namespace pg
{
namespace
{

/*
 * A yield that takes longer than this means another process ran on our CPU
 * meanwhile: a round of polling itself takes a microsecond or two.
 */
constexpr int64 kBusyYieldMicros = 20;

/*
 * A poll stops at its second late yield: one alone is often a process that
 * ran briefly (the client taking the answer, say); a second means the CPU
 * is in demand.
 */
constexpr int kMaxLateYields = 2;

/*
 * Backoff: a process whose recent polls mostly came to nothing (the CPU was
 * wanted, or the answer took too long) polls only every probe_every-th
 * time, an interval that doubles (up to kMaxProbeEvery) with each probe
 * that fails and is reset by one that succeeds.  "Recent" is a moving
 * average over about kFailWindow polls.
 */
constexpr double kMaxFailRate = 0.25;
constexpr double kFailWindow = 8.0;
constexpr uint32 kMaxProbeEvery = 64;

struct SpinShared
{
	pg_atomic_uint32 polling;	/* processes polling now */
	uint32		max_polling;	/* online CPUs when the server started */
};

SpinShared *spin_shared = nullptr;

/* This process's backoff: its polls' recent failure rate, waits skipped. */
double		fail_rate = 0.0;
uint32		probe_every = 1;
uint32		skipped = 0;

} // namespace

Size
spin_shmem_size()
{
	return MAXALIGN(sizeof(SpinShared));
}

void
spin_shmem_init()
{
	bool		found;

	spin_shared = static_cast<SpinShared *>(
		ShmemInitStruct("child_txn spin", spin_shmem_size(), &found));
	if (!found)
	{
		long		ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		pg_atomic_init_u32(&spin_shared->polling, 0);
		spin_shared->max_polling = ncpu > 0 ? static_cast<uint32>(ncpu) : 1;
	}
}

SpinWait::SpinWait()
{
	if (settings::spin_wait <= 0 || spin_shared == nullptr)
		return;
	if (++skipped < probe_every)
		return;
	skipped = 0;

	uint32		cur = pg_atomic_read_u32(&spin_shared->polling);

	while (cur < spin_shared->max_polling)
	{
		if (pg_atomic_compare_exchange_u32(&spin_shared->polling, &cur,
										   cur + 1))
		{
			entered_ = true;
			break;
		}
	}
	if (!entered_)
		return;
	INSTR_TIME_SET_CURRENT(start_);
	last_ = start_;
	pgstat_report_wait_start(PG_WAIT_EXTENSION);
}

SpinWait::~SpinWait()
{
	if (!entered_)
		return;
	pgstat_report_wait_end();
	(void) pg_atomic_fetch_sub_u32(&spin_shared->polling, 1);
	/*
	 * A poll stopped because the CPU was wanted counts as failed even if
	 * the answer came meanwhile: it came while others ran, and we only
	 * took their CPU in between.
	 */
	bool		paid = succeeded_ && late_yields_ < kMaxLateYields;

	if (interrupted_)
		return;
	fail_rate += ((paid ? 0.0 : 1.0) - fail_rate) / kFailWindow;
	if (paid)
		probe_every = 1;
	else if (fail_rate > kMaxFailRate)
		probe_every = Min(probe_every * 2, kMaxProbeEvery);
}

bool
SpinWait::next()
{
	instr_time	now;
	instr_time	step;
	instr_time	spent;

	if (!entered_)
		return false;
	/*
	 * An interrupt stops the poll, for the wait after it to serve, but not
	 * a cancel held off (our workers hold cancels while idle): that one
	 * cannot be served now anyway.
	 */
	if (InterruptPending &&
		(ProcDiePending || !QueryCancelPending || QueryCancelHoldoffCount == 0))
	{
		interrupted_ = true;
		return false;
	}
	(void) sched_yield();
	INSTR_TIME_SET_CURRENT(now);
	step = now;
	INSTR_TIME_SUBTRACT(step, last_);
	spent = now;
	INSTR_TIME_SUBTRACT(spent, start_);
	last_ = now;
	if (INSTR_TIME_GET_MICROSEC(step) > kBusyYieldMicros &&
		++late_yields_ >= kMaxLateYields)
		return false;			/* the CPU is wanted: sleep */
	return INSTR_TIME_GET_MICROSEC(spent) < settings::spin_wait;
}

} // namespace pg
} // namespace child_txn
