/*
 * queue.cpp
 *		Shared memory of group commit: the write slots, the in-place DSA area
 *		for queued rows, and the per-database worker entries.
 */
#include "pg/postgres_headers.hpp"

#include "gc/queue.hpp"
#include "settings.hpp"

namespace child_txn
{
namespace gc
{

namespace
{

Queue	   *shared = nullptr;
dsa_area   *local_area = nullptr;

int
backend_entries()
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

Size
slots_size()
{
	return MAXALIGN(add_size(offsetof(Queue, slots),
							 mul_size(sizeof(WriteSlot),
									  settings::queue_size)));
}

Size
pending_size()
{
	return MAXALIGN(mul_size(sizeof(pg_atomic_uint32), backend_entries()));
}

Size
area_size()
{
	return static_cast<Size>(settings::queue_memory) * 1024;
}

} // namespace

Size
shmem_size()
{
	return add_size(add_size(slots_size(), pending_size()), area_size());
}

void
shmem_init()
{
	bool		found;

	shared = static_cast<Queue *>(ShmemInitStruct("child_txn queue",
												  shmem_size(), &found));
	if (found)
		return;

	char	   *p = reinterpret_cast<char *>(shared);

	memset(shared, 0, slots_size());
	shared->lock = &(GetNamedLWLockTranche(kQueueTranche))->lock;
	ConditionVariableInit(&shared->space_freed);
	shared->nslots = settings::queue_size;
	shared->next_seq = 1;
	shared->nbackends = backend_entries();
	for (int i = 0; i < shared->nslots; i++)
		shared->slots[i].owner_procno = -1;

	shared->failures_pending =
		reinterpret_cast<pg_atomic_uint32 *>(p + slots_size());
	for (int i = 0; i < shared->nbackends; i++)
		pg_atomic_init_u32(&shared->failures_pending[i], 0);

	/*
	 * The rows live in a DSA area created in place, limited to its initial
	 * size: it never grows into DSM segments, so a full area means waiting,
	 * not allocating.
	 */
	shared->dsa_place = p + slots_size() + pending_size();
	shared->dsa_tranche = LWLockNewTrancheId();
	dsa_area   *a = dsa_create_in_place(shared->dsa_place, area_size(),
										shared->dsa_tranche, nullptr);

	dsa_pin(a);
	dsa_set_size_limit(a, area_size());
	dsa_detach(a);
}

Queue *
queue()
{
	Assert(shared != nullptr);
	return shared;
}

dsa_area *
area()
{
	if (local_area == nullptr)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		LWLockRegisterTranche(shared->dsa_tranche, "child_txn_queue_rows");
		local_area = dsa_attach_in_place(shared->dsa_place, nullptr);
		MemoryContextSwitchTo(old);
	}
	return local_area;
}

void
wake_procno(int procno)
{
	if (procno >= 0 && procno < static_cast<int>(ProcGlobal->allProcCount))
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

void
free_slot(WriteSlot *w)
{
	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	if (DsaPointerIsValid(w->rows))
		dsa_free(area(), w->rows);
	w->rows = InvalidDsaPointer;
	w->rows_len = 0;
	w->nrows = 0;
	w->state = static_cast<int32>(WriteState::Free);
	w->owner_procno = -1;
	w->owner_pid = 0;
	w->seq = 0;
	w->retry = false;
	w->defer_reason = static_cast<int32>(DeferReason::None);
	w->defer_tag_valid = false;
}

} // namespace gc
} // namespace child_txn
