/*
 * spin.hpp
 *		Polling for a moment before going to sleep.
 *
 * A hand-over between two of our processes (a parent and its child worker,
 * a group-commit writer and the group-commit worker) costs a wake-up of a
 * sleeping process each way.  Where a sleeping process's CPU goes idle, and
 * above all on virtual machines whose idle vCPUs halt, one such wake-up
 * costs tens of microseconds: more than a small child transaction's own
 * work.  So where one of ours expects its answer soon, it first polls for
 * up to child_txn.spin_wait microseconds, and only then sleeps as before;
 * the process that answers finds it awake and need not wake it (SetLatch
 * sends no signal to a process that is not sleeping).
 *
 * Polling must not take CPU that another process needs, so:
 *	- at most as many processes poll at once as the machine had CPUs
 *	  online when the server started;
 *	- each round yields the CPU, so anything runnable there runs first;
 *	- a poll stops when a second yield comes back late (another process
 *	  ran meanwhile): the machine is busy, and there sleeping costs little;
 *	- a process whose recent polls mostly came to nothing (stopped, or
 *	  timed out) polls only now and then (ever more rarely, up to every
 *	  64th wait), until one of these polls succeeds;
 *	- a pending interrupt stops it, for the wait that follows to handle.
 * A poll is only a shortcut: the sleep after it (on a latch, or in the lock
 * manager) stays the real wait, so nothing but latency depends on it.
 */
#pragma once

#include "pg/postgres_headers.hpp"

namespace child_txn
{
namespace pg
{

Size		spin_shmem_size();
void		spin_shmem_init();

/* One poll: holds one of the polling places while it lives. */
class SpinWait
{
public:
	SpinWait();
	~SpinWait();
	SpinWait(const SpinWait &) = delete;
	SpinWait &operator=(const SpinWait &) = delete;

	/* Poll once more?  False once time is up or the CPU is wanted. */
	bool		next();

	/* What we polled for came. */
	void		succeeded() { succeeded_ = true; }

private:
	bool		entered_ = false;
	bool		succeeded_ = false;
	bool		interrupted_ = false;
	int			late_yields_ = 0;
	instr_time	start_;
	instr_time	last_;
};

/*
 * Poll ready() until it returns true (then return true), or until polling
 * must stop (then return ready()'s last answer).  ready() must not throw,
 * block or take locks: it runs between yields.
 */
template <typename Ready>
bool
spin_until(Ready ready)
{
	if (ready())
		return true;

	SpinWait	spin;
	bool		done;

	while (spin.next())
	{
		if (ready())
		{
			spin.succeeded();
			return true;
		}
	}
	done = ready();
	if (done)
		spin.succeeded();
	return done;
}

/* Poll until our latch is set (the caller then waits on it). */
inline bool
spin_for_latch()
{
	return spin_until([] { return MyLatch->is_set != 0; });
}

} // namespace pg
} // namespace child_txn
