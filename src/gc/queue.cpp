/*
 * queue.cpp
 *		Shared memory of group commit: the write slots, the in-place DSA area
 *		for queued rows, and the per-database worker entries.
 */
#include "pg/postgres_headers.hpp"

#include "gc/queue.hpp"
#include "pg/bgworker.hpp"
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
	/* failures_pending, committed_lsn, flushing */
	return add_size(add_size(MAXALIGN(mul_size(sizeof(pg_atomic_uint32), backend_entries())),
							 MAXALIGN(mul_size(sizeof(XLogRecPtr), backend_entries()))),
					MAXALIGN(mul_size(sizeof(pg_atomic_uint32), backend_entries())));
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
	pg_atomic_init_u32(&shared->unqueued, 0);
	pg_atomic_init_u32(&shared->room_wanted, 0);
	shared->nslots = settings::queue_size;
	shared->next_seq = 1;
	shared->nbackends = backend_entries();
	for (int i = 0; i < shared->nslots; i++)
	{
		shared->slots[i].owner_procno = -1;
		shared->slots[i].next = i + 1 < shared->nslots ? i + 1 : -1;
	}
	shared->free_head = 0;
	for (int i = 0; i < kMaxDatabases; i++)
	{
		shared->workers[i].queue_head = -1;
		shared->workers[i].queue_tail = -1;
		shared->workers[i].pgprocno = -1;
	}

	shared->failures_pending =
		reinterpret_cast<pg_atomic_uint32 *>(p + slots_size());
	for (int i = 0; i < shared->nbackends; i++)
		pg_atomic_init_u32(&shared->failures_pending[i], 0);
	shared->committed_lsn = reinterpret_cast<XLogRecPtr *>(
		p + slots_size() +
		MAXALIGN(mul_size(sizeof(pg_atomic_uint32), backend_entries())));
	for (int i = 0; i < shared->nbackends; i++)
		shared->committed_lsn[i] = InvalidXLogRecPtr;
	shared->flushing = reinterpret_cast<pg_atomic_uint32 *>(
		p + slots_size() +
		MAXALIGN(mul_size(sizeof(pg_atomic_uint32), backend_entries())) +
		MAXALIGN(mul_size(sizeof(XLogRecPtr), backend_entries())));
	for (int i = 0; i < shared->nbackends; i++)
		pg_atomic_init_u32(&shared->flushing[i], 0);

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

uint32
row_shape(TupleDesc desc, int natts)
{
	uint32		h = 0;

	for (int i = 0; i < natts && i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		uint32		parts[3] = {att->atttypid, static_cast<uint32>(att->atttypmod),
			att->attisdropped ? 1u : 0u};

		h = hash_combine(h, hash_bytes(reinterpret_cast<const unsigned char *>(parts),
									   sizeof(parts)));
	}
	return h;
}

bool
register_worker(int index, uint32 generation)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	describe_worker(&worker, "child_txn_group_commit_main",
					"child_txn group commit", index, generation, 0);
	if (RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		pfree(handle);
		return true;
	}

	/* give the entry back, unless somebody started another meanwhile */
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (shared->workers[index].generation == generation)
		shared->workers[index].state = static_cast<int32>(WorkerState::None);
	LWLockRelease(shared->lock);
	return false;
}

void
retire_database(Oid database_id)
{
	int			pid = 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	int			i = db_entry(database_id);

	if (i >= 0)
	{
		DbWorker   *e = &shared->workers[i];
		bool		busy = e->nqueued > 0 || e->ndeferred > 0;

		for (int k = 0; k < shared->nslots && !busy; k++)
			busy = shared->slots[k].database_id == database_id &&
				shared->slots[k].state == static_cast<int32>(WriteState::Running);
		if (!busy && e->state == static_cast<int32>(WorkerState::Running))
			pid = e->pid;
	}
	LWLockRelease(shared->lock);
	/* it exits like on SIGTERM at any time: nothing of it is in flight */
	if (pid != 0)
		(void) kill(pid, SIGTERM);
}

bool		am_group_commit_worker = false;

void
wake_procno(int procno)
{
	if (procno >= 0 && procno < static_cast<int>(ProcGlobal->allProcCount))
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

int
gather_limit()
{
	int			limit = shared->nslots / 2;

	if (settings::max_batch_size > 0)
		limit = Min(limit, settings::max_batch_size);
	return Max(limit, 1);
}

int
procno_to_wake(const DbWorker *e, int procno, bool waits)
{
	Assert(LWLockHeldByMe(shared->lock));
	if (e->gathering && !waits && e->nqueued < gather_limit())
		return -1;
	return procno;
}

int
alloc_slot()
{
	int			i = shared->free_head;

	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	if (i >= 0)
	{
		shared->free_head = shared->slots[i].next;
		shared->slots[i].next = -1;
	}
	return i;
}

int
db_entry(Oid database_id)
{
	for (int i = 0; i < kMaxDatabases; i++)
		if (shared->workers[i].database_id == database_id)
			return i;
	return -1;
}

void
enqueue(DbWorker *e, WriteSlot *w)
{
	int			i = static_cast<int>(w - shared->slots);
	int			prev = -1;

	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	w->state = static_cast<int32>(WriteState::Queued);
	e->nqueued++;

	/* the usual case: the newest write goes last */
	if (e->queue_tail < 0 || shared->slots[e->queue_tail].seq < w->seq)
	{
		w->next = -1;
		if (e->queue_tail >= 0)
			shared->slots[e->queue_tail].next = i;
		else
			e->queue_head = i;
		e->queue_tail = i;
		return;
	}
	/* a write taken again: back in its place, by age */
	for (int k = e->queue_head; k >= 0 && shared->slots[k].seq < w->seq;
		 k = shared->slots[k].next)
		prev = k;
	if (prev < 0)
	{
		w->next = e->queue_head;
		e->queue_head = i;
	}
	else
	{
		w->next = shared->slots[prev].next;
		shared->slots[prev].next = i;
	}
}

void
note_blocked_table(DbWorker *e, const WriteSlot *model)
{
	int			k = 0;

	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	while (k < e->nblocked && e->blocked_relid[k] != model->relid)
		k++;
	if (k == e->nblocked)
	{
		if (e->nblocked == kMaxBlockedTables)
			k = 0;				/* the oldest note makes room */
		else
			e->nblocked++;
	}
	e->blocked_relid[k] = model->relid;
	e->blocked_slot[k] = static_cast<int32>(model - shared->slots);
	e->blocked_seq[k] = model->seq;
}

bool
join_blocked_table(DbWorker *e, WriteSlot *w)
{
	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	for (int k = 0; k < e->nblocked; k++)
	{
		if (e->blocked_relid[k] != w->relid)
			continue;

		const WriteSlot *model = &shared->slots[e->blocked_slot[k]];

		if (model->seq != e->blocked_seq[k] ||
			model->state != static_cast<int32>(WriteState::Deferred) ||
			model->defer_reason != static_cast<int32>(DeferReason::Table))
		{
			/* void: the table's writes were taken again */
			e->blocked_relid[k] = e->blocked_relid[e->nblocked - 1];
			e->blocked_slot[k] = e->blocked_slot[e->nblocked - 1];
			e->blocked_seq[k] = e->blocked_seq[e->nblocked - 1];
			e->nblocked--;
			return false;
		}
		defer_like(e, w, model);
		return true;
	}
	return false;
}

void
defer_like(DbWorker *e, WriteSlot *w, const WriteSlot *model)
{
	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	Assert(model->state == static_cast<int32>(WriteState::Deferred));
	e->stats.deferrals++;
	count_deferred(e, w, 1);
	w->state = static_cast<int32>(WriteState::Deferred);
	w->defer_reason = model->defer_reason;
	w->defer_tag = model->defer_tag;
	w->defer_tag_valid = model->defer_tag_valid;
	w->defer_mode = model->defer_mode;
	w->retry_at = model->retry_at;
	w->defer_count = Max(w->defer_count, model->defer_count);
}

void
unlink_queued(DbWorker *e, WriteSlot *w)
{
	int			i = static_cast<int>(w - shared->slots);
	int			prev = -1;

	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	for (int k = e->queue_head; k >= 0; prev = k, k = shared->slots[k].next)
	{
		if (k != i)
			continue;
		if (prev >= 0)
			shared->slots[prev].next = w->next;
		else
			e->queue_head = w->next;
		if (e->queue_tail == i)
			e->queue_tail = prev;
		w->next = -1;
		e->nqueued--;
		return;
	}
	elog(PANIC, "group-commit write %d is not on its queue", i);
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
	w->defer_reason = static_cast<int32>(DeferReason::None);
	w->defer_tag_valid = false;
	w->defer_count = 0;
	w->next = shared->free_head;
	shared->free_head = static_cast<int32>(w - shared->slots);
}

namespace
{
int
seq_cmp(const void *a, const void *b)
{
	uint64		x = static_cast<const WriteSlot *const *>(a)[0]->seq;
	uint64		y = static_cast<const WriteSlot *const *>(b)[0]->seq;

	return x < y ? -1 : x > y ? 1 : 0;
}
}							/* namespace */

void
requeue_deferred(DbWorker *e, WriteSlot **ws, int n)
{
	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	if (n > 1)
		qsort(ws, n, sizeof(WriteSlot *), seq_cmp);
	for (int k = n - 1; k >= 0; k--)
	{
		Assert(ws[k]->state == static_cast<int32>(WriteState::Deferred));
		count_deferred(e, ws[k], -1);
		enqueue(e, ws[k]);
	}
}

void
count_deferred(DbWorker *e, const WriteSlot *w, int delta)
{
	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	Assert(delta == 1 || delta == -1);
	e->ndeferred += delta;
	shared->ndeferred += delta;
	if (delta > 0)
		shared->deferred_bytes += w->rows_len;
	else
		shared->deferred_bytes -= w->rows_len;
	Assert(e->ndeferred >= 0 && shared->ndeferred >= 0);
}

bool
hand_failure_to_owner(WriteSlot *w, bool *freed_other)
{
	Assert(LWLockHeldByMeInMode(shared->lock, LW_EXCLUSIVE));
	*freed_other = false;
	if (w->owner_procno < 0)
	{
		free_slot(w);
		return true;
	}

	/*
	 * Only a session's first failure (in queue order) is ever reported: keep
	 * one slot per session, so that failures piling up while it is idle do
	 * not take the queue's room.
	 */
	for (int i = 0; i < shared->nslots; i++)
	{
		WriteSlot  *x = &shared->slots[i];

		if (x == w || x->state != static_cast<int32>(WriteState::Failed) ||
			x->wait || x->owner_procno != w->owner_procno ||
			x->owner_pid != w->owner_pid)
			continue;
		if (x->seq < w->seq)
		{
			free_slot(w);
			return true;
		}
		free_slot(x);
		*freed_other = true;
		break;
	}
	pg_atomic_fetch_add_u32(&shared->failures_pending[w->owner_procno], 1);
	return false;
}

} // namespace gc
} // namespace child_txn
