/*
 * session.cpp
 *		Group commit, the session side: append(), append_rows(), flush() and
 *		the group_commit_stats view.
 *
 * A session queues a write (rows of one table, flattened into the queue's
 * DSA area), makes sure its database has a running group-commit worker,
 * wakes it, and, unless told not to wait, sleeps on its latch until the
 * worker answers.  When the worker defers the write because a lock is not
 * free, the session waits for that lock itself, in the lock manager, and
 * then asks the worker to retry: the wait is visible in pg_locks and a
 * cycle through it is found by the deadlock detector (see queue.hpp).
 */
#include "pg/postgres_headers.hpp"

#include "gc/queue.hpp"
#include "pg/spin.hpp"
#include "settings.hpp"

namespace child_txn
{
namespace gc
{

namespace
{

bool		exit_callback_registered = false;	/* also: this process queued writes */

/*
 * Queue memory holding rows not yet in a slot (submit() waits for one), and
 * whether it is counted in Queue.unqueued (only once we wait with it).
 */
dsa_pointer unqueued_rows = InvalidDsaPointer;
bool		unqueued_counted = false;

/* A registered group-commit worker not running after this is presumed lost. */
constexpr int kWorkerStartTimeoutMs = 10000;

/* A write of this session, as the session names it. */
struct WriteRef
{
	int			slot;
	uint64		seq;
};

/*
 * Rounds of "wait for the blocker, ask for a retry, deferred again" on one
 * lock.  A caller that already holds a lock on the object can be granted
 * its wait at once, ahead of a conflicting request queued by another
 * session that the worker cannot get past: then every round ends at once
 * and the write is never applied.  That is a cycle through the worker,
 * which the deadlock detector cannot see; it is reported after a few
 * rounds that did not wait at all although we held a lock on the object
 * already, each for the same write on the same lock (a round about another
 * write means the last one got past).
 */
enum class Waiter
{
	Append,						/* append(..., wait => true) */
	Flush,						/* flush() */
	Share						/* append(..., wait => false) over the share */
};

struct WaitProgress
{
	explicit WaitProgress(Waiter w) : waiter(w) {}

	Waiter		waiter;			/* who waits: picks the hint of the error */
	LOCKTAG		tag{};			/* the lock of the last round ... */
	uint64		seq = 0;		/* ... and its write */
	int			quick_rounds = 0;
};

constexpr int kQuickRoundsLimit = 10;
constexpr long kQuickRoundMs = 5;

/* A copy of a failed write's error, to raise once no lock is held. */
struct CopiedError
{
	bool		valid = false;
	bool		abandoned = false;	/* its caller had stopped waiting */
	int			sqlerrcode = 0;
	Oid			relid = InvalidOid;
	char		message[kErrMessageLen];
	char		detail[kErrDetailLen];
	char		hint[kErrHintLen];
};

bool
mine(const WriteSlot *w)
{
	return w->owner_procno == MyProc->pgprocno && w->owner_pid == MyProcPid &&
		w->state != static_cast<int32>(WriteState::Free);
}

bool
same(const WriteSlot *w, const WriteRef &ref)
{
	return mine(w) && w->seq == ref.seq;
}

void
copy_error(const WriteSlot *w, CopiedError *e)
{
	e->valid = true;
	e->abandoned = w->abandoned;
	e->sqlerrcode = w->sqlerrcode;
	e->relid = w->relid;
	strlcpy(e->message, w->message, sizeof(e->message));
	strlcpy(e->detail, w->detail, sizeof(e->detail));
	strlcpy(e->hint, w->hint, sizeof(e->hint));
}

[[noreturn]] void
raise_copied(const CopiedError &e, bool earlier)
{
	char	   *relname = get_rel_name(e.relid);
	char	   *context;
	/* 08007: the worker could not tell whether it was written */
	const char *outcome =
		e.sqlerrcode == ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN ?
		"it may or may not have been written" : "it was not written";

	if (earlier && e.abandoned)
		context = psprintf("group-commit write to table \"%s\" whose wait was "
						   "interrupted earlier; %s",
						   relname ? relname : "?", outcome);
	else if (earlier)
		context = psprintf("group-commit write to table \"%s\" queued earlier "
						   "without waiting; %s",
						   relname ? relname : "?", outcome);
	else
		context = psprintf("group-commit write to table \"%s\"",
						   relname ? relname : "?");
	ereport(ERROR,
			(errcode(e.sqlerrcode),
			 errmsg_internal("%s", e.message),
			 e.detail[0] ? errdetail_internal("%s", e.detail) : 0,
			 e.hint[0] ? errhint("%s", e.hint) : 0,
			 errcontext("%s", context)));
	pg_unreachable();
}

/*
 * Make a committed write durable as this session's synchronous_commit asks,
 * as if the commit had been our own.
 */
void
make_durable(XLogRecPtr lsn)
{
	if (XLogRecPtrIsInvalid(lsn) || synchronous_commit == SYNCHRONOUS_COMMIT_OFF)
		return;
	XLogFlush(lsn);
	/* as at commit: a cancel ends the wait with a warning, not an error */
	HOLD_INTERRUPTS();
	SyncRepWaitForLSN(lsn, true);
	RESUME_INTERRUPTS();
}

/* The rows of unqueued_rows went into a slot or were freed. */
void
uncount_rows()
{
	if (unqueued_counted)
		pg_atomic_fetch_sub_u32(&queue()->unqueued, 1);
	unqueued_counted = false;
	unqueued_rows = InvalidDsaPointer;
}

/* Free rows that never made it into a slot. */
void
give_back_rows(dsa_pointer *chunk)
{
	bool		freed = DsaPointerIsValid(*chunk);

	if (freed)
		dsa_free(area(), *chunk);
	*chunk = InvalidDsaPointer;
	uncount_rows();
	/* sessions waiting for queue memory need not wait for their timeout */
	if (freed)
		ConditionVariableBroadcast(&queue()->space_freed);
}

/* Session exit: failed writes nobody will collect are freed, the rest
 * become ownerless and are freed by the worker when done. */
void
session_exit(int, Datum)
{
	/* a FATAL outside a transaction may have left our LWLock held */
	LWLockReleaseAll();
	/* a FATAL (terminate) while waiting for a free slot does not unwind */
	give_back_rows(&unqueued_rows);
	forget_session_writes();
}

} // namespace

/*
 * This session's writes are nobody's any more (session end, or a pooled
 * child worker moving on to its next child): failed ones are dropped (the
 * worker logged them), the others are freed by the worker when done.
 */
void
forget_session_writes()
{
	if (!exit_callback_registered)
		return;					/* never queued anything */

	Queue	   *q = queue();
	bool		freed = false;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	for (int i = 0; i < q->nslots; i++)
	{
		WriteSlot  *w = &q->slots[i];

		if (!mine(w))
			continue;
		if (w->state == static_cast<int32>(WriteState::Failed) ||
			w->state == static_cast<int32>(WriteState::Done))
		{
			free_slot(w);
			freed = true;
		}
		else
		{
			w->owner_procno = -1;
			w->wait = false;
		}
	}
	pg_atomic_write_u32(&q->failures_pending[MyProc->pgprocno], 0);
	pg_atomic_write_u32(&q->flushing[MyProc->pgprocno], 0);
	q->committed_lsn[MyProc->pgprocno] = InvalidXLogRecPtr;
	LWLockRelease(q->lock);
	if (freed)
		ConditionVariableBroadcast(&q->space_freed);
}

namespace
{

/*
 * Collect this session's failed fire-and-forget writes, freeing them;
 * copy the first (in queue order) into *first.  Returns how many failed.
 */
int
collect_failures(CopiedError *first)
{
	Queue	   *q = queue();
	uint64		first_seq = PG_UINT64_MAX;
	int			n = 0;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	for (int i = 0; i < q->nslots; i++)
	{
		WriteSlot  *w = &q->slots[i];

		if (!mine(w) || w->state != static_cast<int32>(WriteState::Failed))
			continue;
		if (w->seq < first_seq)
		{
			first_seq = w->seq;
			copy_error(w, first);
		}
		free_slot(w);
		n++;
	}
	pg_atomic_write_u32(&q->failures_pending[MyProc->pgprocno], 0);
	LWLockRelease(q->lock);
	if (n > 0)
		ConditionVariableBroadcast(&q->space_freed);
	return n;
}

void
report_earlier_failures()
{
	CopiedError first;

	if (pg_atomic_read_u32(&queue()->failures_pending[MyProc->pgprocno]) == 0)
		return;
	if (collect_failures(&first) > 0)
		raise_copied(first, true);
}

/*
 * Does this transaction hold a lock on the table that conflicts with the
 * ROW EXCLUSIVE lock the write needs?  Then waiting for the write would be
 * waiting for ourselves.
 */
bool
holds_conflicting_lock(Oid relid, LOCKMODE *held)
{
	static const LOCKMODE modes[] = {AccessExclusiveLock, ExclusiveLock,
		ShareRowExclusiveLock, ShareLock};
	LOCKTAG		tag;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	for (LOCKMODE m : modes)
	{
		if (LockHeldByMe(&tag, m))
		{
			*held = m;
			return true;
		}
	}
	return false;
}

/*
 * Does this transaction hold a lock on tag that conflicts with mode (the
 * mode a write waited for)?  *held: the mode held.
 */
bool
holds_blocking_lock(const LOCKTAG &tag, LOCKMODE mode, LOCKMODE *held)
{
	if (mode <= NoLock || mode > MaxLockMode)
		return false;
	for (LOCKMODE m = 1; m <= MaxLockMode; m++)
	{
		if (DoLockModesConflict(mode, m) && LockHeldByMe(&tag, m))
		{
			*held = m;
			return true;
		}
	}
	return false;
}

/* Does this transaction hold tag in any mode? */
bool
holds_any_lock(const LOCKTAG &tag)
{
	for (LOCKMODE m = 1; m <= MaxLockMode; m++)
		if (LockHeldByMe(&tag, m))
			return true;
	return false;
}

[[noreturn]] void
self_wait_error(Oid relid, LOCKMODE held)
{
	char	   *relname = get_rel_name(relid);

	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("cannot wait for a group-commit write to table \"%s\": "
					"this transaction holds %s on it",
					relname ? relname : "?",
					GetLockmodeName(DEFAULT_LOCKMETHOD, held)),
			 errdetail("The group-commit worker needs a ROW EXCLUSIVE lock on "
					   "the table, which waits for this transaction to end."),
			 errhint("Append before locking the table, append with wait => "
					 "false and flush after the transaction, or use "
					 "child_txn.run().")));
	pg_unreachable();
}

/* Start this database's group-commit worker (entry `index`, new generation). */
void
start_worker(int index, uint32 generation)
{
	if (!register_worker(index, generation))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start the group-commit worker: no background worker slot is free"),
				 errhint("Raise max_worker_processes (currently %d) to leave "
						 "room for the group-commit worker.  Changing it "
						 "requires a restart.", max_worker_processes)));
}

/*
 * The queue entry of our database, created if need be (lock held
 * exclusively).  -1 if every entry is taken by other busy databases.
 */
int
my_entry()
{
	Queue	   *q = queue();
	int			index = db_entry(MyDatabaseId);

	if (index >= 0)
		return index;
	/* a new entry: an unused one, else one of a database at rest */
	for (int i = 0; i < kMaxDatabases && index < 0; i++)
		if (q->workers[i].database_id == InvalidOid)
			index = i;
	for (int i = 0; i < kMaxDatabases && index < 0; i++)
	{
		DbWorker   *e = &q->workers[i];

		if (e->state == static_cast<int32>(WorkerState::None) &&
			e->nqueued == 0 && e->ndeferred == 0)
			index = i;
	}
	if (index < 0)
		return -1;
	DbWorker   *e = &q->workers[index];

	memset(&e->stats, 0, sizeof(e->stats));
	e->database_id = MyDatabaseId;
	e->state = static_cast<int32>(WorkerState::None);
	e->queue_head = e->queue_tail = -1;
	e->nqueued = e->ndeferred = 0;
	e->nblocked = 0;
	return index;
}

/*
 * Writes of a database dropped meanwhile: DROP DATABASE ... WITH (FORCE)
 * terminates its worker, whose successor then cannot connect, so they
 * would keep their slots, their memory and the database's entry for good.
 * Free them.  (A plain DROP DATABASE fails while the worker has writes to
 * apply.)  Needs a transaction: the catalog says which databases exist.
 * True if anything was freed.
 */
bool
purge_dropped_databases()
{
	Queue	   *q = queue();
	Oid			candidates[kMaxDatabases];
	int			n = 0;
	bool		purged = false;

	if (!IsTransactionState())
		return false;
	LWLockAcquire(q->lock, LW_SHARED);
	for (int i = 0; i < kMaxDatabases; i++)
	{
		const DbWorker *e = &q->workers[i];

		/* (a worker connected to it: it exists, or is being dropped) */
		if (e->database_id != InvalidOid && e->database_id != MyDatabaseId &&
			e->state != static_cast<int32>(WorkerState::Running))
			candidates[n++] = e->database_id;
	}
	LWLockRelease(q->lock);

	for (int k = 0; k < n; k++)
	{
		int			nfreed = 0;

		if (SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(candidates[k])))
			continue;
		LWLockAcquire(q->lock, LW_EXCLUSIVE);
		int			index = db_entry(candidates[k]);

		if (index >= 0 &&
			q->workers[index].state != static_cast<int32>(WorkerState::Running))
		{
			DbWorker   *e = &q->workers[index];

			for (int i = 0; i < q->nslots; i++)
			{
				WriteSlot  *w = &q->slots[i];

				if (w->database_id != candidates[k] ||
					w->state == static_cast<int32>(WriteState::Free))
					continue;
				if (w->state == static_cast<int32>(WriteState::Queued))
					unlink_queued(e, w);
				else if (w->state == static_cast<int32>(WriteState::Deferred))
					count_deferred(e, w, -1);
				free_slot(w);
				nfreed++;
			}
			/* (unlinked and uncounted above; my_entry sets up the rest) */
			Assert(e->nqueued == 0 && e->ndeferred == 0 && e->queue_head < 0);
			e->database_id = InvalidOid;
			e->state = static_cast<int32>(WorkerState::None);
			e->gathering = false;
			purged = true;
		}
		LWLockRelease(q->lock);
		if (nfreed > 0)
			ereport(LOG,
					(errmsg("freed %d group-commit write(s) of dropped database %u",
							nfreed, candidates[k])));
	}
	if (purged)
		ConditionVariableBroadcast(&q->space_freed);
	return purged;
}

[[noreturn]] void
too_many_databases()
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("group commit is in use in too many databases at once"),
			 errdetail("At most %d databases can have queued writes at the same time.",
					   kMaxDatabases)));
	pg_unreachable();
}

/*
 * What to do about the worker of entry `index`, decided with the lock held
 * exclusively: start one (returns true, *generation set), or wake the one
 * running (*procno set, -1 if it is still starting).
 */
bool
claim_worker(int index, uint32 *generation, int *procno)
{
	DbWorker   *e = &queue()->workers[index];

	*procno = -1;

	/*
	 * A worker registered long ago that never came up (the postmaster could
	 * not start it): forget it; if it does come up late, it sees the new
	 * generation and leaves.
	 */
	if (e->state == static_cast<int32>(WorkerState::Starting) &&
		TimestampDifferenceExceeds(e->started_at, GetCurrentTimestamp(),
								   kWorkerStartTimeoutMs))
		e->state = static_cast<int32>(WorkerState::None);

	if (e->state == static_cast<int32>(WorkerState::None))
	{
		e->state = static_cast<int32>(WorkerState::Starting);
		e->generation++;
		e->pid = 0;
		e->pgprocno = -1;
		e->gathering = false;
		e->started_at = GetCurrentTimestamp();
		*generation = e->generation;
		return true;
	}
	if (e->state == static_cast<int32>(WorkerState::Running))
		*procno = e->pgprocno;
	return false;
}

/* Make sure this database has a group-commit worker, and wake it. */
void
ensure_worker()
{
	Queue	   *q = queue();
	uint32		generation = 0;
	int			procno;
	bool		need_start;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	int			index = my_entry();

	if (index < 0)
	{
		LWLockRelease(q->lock);
		if (!purge_dropped_databases())
			too_many_databases();
		LWLockAcquire(q->lock, LW_EXCLUSIVE);
		index = my_entry();
		if (index < 0)
		{
			LWLockRelease(q->lock);
			too_many_databases();
		}
	}
	need_start = claim_worker(index, &generation, &procno);
	LWLockRelease(q->lock);

	if (need_start)
		start_worker(index, generation);
	else
		wake_procno(procno);
}

/*
 * If our database's worker lets writes gather (see DbWorker.gathering),
 * wake it: flush() now waits for ours.
 */
void
wake_gathering_worker()
{
	Queue	   *q = queue();
	int			procno = -1;

	LWLockAcquire(q->lock, LW_SHARED);
	int			index = db_entry(MyDatabaseId);

	if (index >= 0 && q->workers[index].gathering &&
		q->workers[index].state == static_cast<int32>(WorkerState::Running))
		procno = q->workers[index].pgprocno;
	LWLockRelease(q->lock);
	wake_procno(procno);
}

/*
 * We are about to wait for room in the queue: no worker may let writes
 * gather meanwhile (the limits that end a gathering early count only its
 * own database's writes), so say so and wake those that do.
 */
void
want_room()
{
	Queue	   *q = queue();
	int			procnos[kMaxDatabases];
	int			n = 0;

	pg_atomic_write_u32(&q->room_wanted, 1);
	LWLockAcquire(q->lock, LW_SHARED);
	for (int i = 0; i < kMaxDatabases; i++)
		if (q->workers[i].gathering &&
			q->workers[i].state == static_cast<int32>(WorkerState::Running))
			procnos[n++] = q->workers[i].pgprocno;
	LWLockRelease(q->lock);
	for (int i = 0; i < n; i++)
		wake_procno(procnos[i]);
}

/* Is our database's worker gone (none running or starting)? */
bool
worker_gone()
{
	Queue	   *q = queue();
	bool		gone = true;

	LWLockAcquire(q->lock, LW_SHARED);
	int			index = db_entry(MyDatabaseId);

	if (index >= 0)
	{
		const DbWorker *e = &q->workers[index];

		gone = e->state == static_cast<int32>(WorkerState::None) ||
			(e->state == static_cast<int32>(WorkerState::Starting) &&
			 TimestampDifferenceExceeds(e->started_at, GetCurrentTimestamp(),
										kWorkerStartTimeoutMs));
	}
	LWLockRelease(q->lock);
	return gone;
}

/*
 * We waited for what blocks a deferred write: queue it again, with every
 * other write of its database deferred on the same lock (they wait for the
 * same thing; retried one by one, each would wait up to a second for its
 * own retry time), and wake the worker.  The write may be any session's:
 * see wait_while_blocked.  (Queue order numbers are never reused.)
 */
void
ask_retry(const WriteRef &ref)
{
	Queue	   *q = queue();

	/*
	 * Room for as many as are deferred now (read without the lock: should
	 * more come meanwhile, those left over are retried by the worker).
	 */
	int			room = Min(q->nslots, static_cast<int>(
		*static_cast<volatile int32 *>(&q->ndeferred)) + 16);
	WriteSlot **ws = static_cast<WriteSlot **>(palloc(sizeof(WriteSlot *) * room));

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	WriteSlot  *w = &q->slots[ref.slot];

	if (w->seq == ref.seq && w->state == static_cast<int32>(WriteState::Deferred))
	{
		DbWorker   *e = &q->workers[db_entry(w->database_id)];
		int			n = 0;

		ws[n++] = w;
		for (int i = 0; w->defer_tag_valid && n < e->ndeferred && n < room &&
			 i < q->nslots; i++)
		{
			WriteSlot  *o = &q->slots[i];

			if (o != w && o->state == static_cast<int32>(WriteState::Deferred) &&
				o->database_id == w->database_id && o->defer_tag_valid &&
				memcmp(&o->defer_tag, &w->defer_tag, sizeof(LOCKTAG)) == 0)
				ws[n++] = o;
		}
		requeue_deferred(e, ws, n);
	}
	LWLockRelease(q->lock);
	pfree(ws);
	ensure_worker();
}

/*
 * Our write is deferred: wait, in the lock manager, for what blocks it,
 * then have it retried.  *table_locked tracks a ROW EXCLUSIVE lock on the
 * table we took for it (released by our caller when the write is done).
 */
void
wait_for_blocker(const WriteRef &ref, DeferReason reason, Oid relid,
				 const LOCKTAG &tag, bool tag_valid, LOCKMODE mode,
				 bool *table_locked, void (*withdraw)(const WriteRef &),
				 WaitProgress *progress)
{
	LOCKMODE	held;
	TimestampTz started = GetCurrentTimestamp();
	bool		held_before = false;	/* could be granted ahead of others */

	if (reason == DeferReason::Table)
	{
		/*
		 * (If this transaction holds the table already, the lock below is
		 * granted at once and the round counts as one that did not wait:
		 * see WaitProgress.)
		 */
		if (holds_conflicting_lock(relid, &held))
		{
			withdraw(ref);
			self_wait_error(relid, held);
		}
		/*
		 * Wait for the table like an INSERT would.  If we hold it already
		 * because of an earlier round and the worker still could not lock
		 * it (a conflicting request queued behind us), let go and queue up
		 * again behind that request, so that it can finish.
		 */
		if (*table_locked)
		{
			UnlockRelationOid(relid, RowExclusiveLock);
			*table_locked = false;
		}
		LOCKTAG		rel_tag;

		SET_LOCKTAG_RELATION(rel_tag, MyDatabaseId, relid);
		held_before = holds_any_lock(rel_tag);
		LockRelationOid(relid, RowExclusiveLock);
		*table_locked = true;
	}
	else if (tag_valid && tag.locktag_type == LOCKTAG_TRANSACTION)
	{
		TransactionId xid = static_cast<TransactionId>(tag.locktag_field1);

		if (TransactionIdIsCurrentTransactionId(xid))
		{
			char	   *relname = get_rel_name(relid);

			withdraw(ref);
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("cannot wait for a group-commit write to table \"%s\": "
							"it waits for a row written or locked by this transaction",
							relname ? relname : "?"),
					 errhint("Append with wait => false and flush after the "
							 "transaction ends, or write the row in this "
							 "transaction.")));
		}
		XactLockTableWait(xid, nullptr, nullptr, XLTW_None);
	}
	else if (tag_valid && mode > NoLock && mode <= MaxLockMode)
	{
		/*
		 * Any other lock the write waited for (a referenced table, a
		 * partition, a tuple lock, ...): refuse if we hold it in a
		 * conflicting mode ourselves, else wait for it in the same mode,
		 * visibly, and let go at once.
		 */
		LOCKMODE	m;

		if (holds_blocking_lock(tag, mode, &m))
		{
			char	   *relname = get_rel_name(relid);

			withdraw(ref);
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("cannot wait for a group-commit write to table \"%s\": "
							"it waits for a lock this transaction holds",
							relname ? relname : "?"),
					 errdetail("The write waits for a %s on an object this transaction holds a %s on.",
							   GetLockmodeName(tag.locktag_lockmethodid, mode),
							   GetLockmodeName(tag.locktag_lockmethodid, m)),
					 errhint("Append with wait => false and flush after the "
							 "transaction ends.")));
		}
		held_before = holds_any_lock(tag);
		(void) LockAcquire(&tag, mode, false, false);
		LockRelease(&tag, mode, false);
	}
	else
	{
		/* nothing known to wait for: give it a moment */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 settings::row_lock_wait, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	/*
	 * A round that did not wait, on the same lock as the last one?  Only a
	 * lock we held already can be granted to us ahead of a queued request;
	 * without one, a quick round means a short holder (a stream of brief
	 * LOCK TABLEs, a transaction that ended), not the cycle.
	 */
	bool		quick = held_before &&
		!TimestampDifferenceExceeds(started, GetCurrentTimestamp(), kQuickRoundMs);
	bool		same_tag = tag_valid && ref.seq == progress->seq &&
		memcmp(&progress->tag, &tag, sizeof(LOCKTAG)) == 0;

	progress->quick_rounds = quick ? (same_tag ? progress->quick_rounds + 1 : 1) : 0;
	if (tag_valid)
		progress->tag = tag;
	progress->seq = ref.seq;
	if (tag_valid && progress->quick_rounds >= kQuickRoundsLimit)
	{
		char	   *relname = get_rel_name(relid);

		withdraw(ref);
		ereport(ERROR,
				(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
				 errmsg("deadlock detected waiting for a group-commit write to table \"%s\"",
						relname ? relname : "?"),
				 errdetail("The group-commit worker needs a lock for the write "
						   "that this transaction can take at once, but another "
						   "transaction's conflicting request, which waits for "
						   "this transaction, keeps the worker out."),
				 progress->waiter == Waiter::Append ?
				 errhint("Append with wait => false, or before locking or "
						 "reading the objects the write needs in this transaction.") :
				 progress->waiter == Waiter::Flush ?
				 errhint("Flush after this transaction ends, or append before "
						 "locking or reading the objects the writes need in "
						 "this transaction.") :
				 errhint("Append before locking or reading the objects the "
						 "write needs in this transaction, or raise "
						 "child_txn.deferred_queue_share.")));
	}
	ask_retry(ref);
}

/*
 * The caller gives up on a write (error or cancel while waiting): if it
 * has not started, withdraw it (it is never written); if it is being
 * applied, let it finish unwatched (a failure is reported by the next
 * flush).
 */
void
withdraw_write(const WriteRef &ref)
{
	Queue	   *q = queue();
	bool		freed = false;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	WriteSlot  *w = &q->slots[ref.slot];

	if (same(w, ref))
	{
		/* Queued and Deferred writes keep their database's entry */
		DbWorker   *e = &q->workers[Max(db_entry(w->database_id), 0)];

		switch (static_cast<WriteState>(w->state))
		{
			case WriteState::Queued:
				unlink_queued(e, w);
				free_slot(w);
				freed = true;
				break;
			case WriteState::Deferred:
				count_deferred(e, w, -1);
				free_slot(w);
				freed = true;
				break;
			case WriteState::Done:
				free_slot(w);
				freed = true;
				break;
			case WriteState::Running:
				w->wait = false;
				w->abandoned = true;
				break;
			case WriteState::Failed:
				/* the caller is failing anyway; keep it for flush() */
				w->wait = false;
				w->abandoned = true;
				pg_atomic_fetch_add_u32(&q->failures_pending[MyProc->pgprocno], 1);
				break;
			case WriteState::Free:
				break;
		}
	}
	LWLockRelease(q->lock);
	if (freed)
		ConditionVariableBroadcast(&q->space_freed);
}

/*
 * Wait until our write is answered.  Returns normally once it is durable;
 * raises its error if it failed.
 */
void
wait_for_write(const WriteRef &ref)
{
	Queue	   *q = queue();
	CopiedError err;
	bool		table_locked = false;
	Oid			relid = InvalidOid;
	XLogRecPtr	lsn = InvalidXLogRecPtr;
	WaitProgress progress(Waiter::Append);

	PG_TRY();
	{
		for (;;)
		{
			WriteSlot  *w = &q->slots[ref.slot];
			WriteState	state;
			DeferReason reason = DeferReason::None;
			LOCKTAG		tag;
			bool		tag_valid = false;
			LOCKMODE	mode = NoLock;

			/*
			 * The slot stays ours while we wait for it, and the worker
			 * changes its state under the lock before setting our latch:
			 * a plain read after the latch suffices to see the change.
			 */
			pg_read_barrier();
			state = static_cast<WriteState>(*static_cast<volatile int32 *>(&w->state));

			if (state == WriteState::Done || state == WriteState::Failed)
			{
				LWLockAcquire(q->lock, LW_EXCLUSIVE);
				if (!same(w, ref))
				{
					LWLockRelease(q->lock);
					elog(ERROR, "group-commit write %d vanished", ref.slot);
				}
				relid = w->relid;
				if (w->state == static_cast<int32>(WriteState::Failed))
					copy_error(w, &err);
				else
					lsn = w->commit_lsn;
				free_slot(w);
				LWLockRelease(q->lock);
				ConditionVariableBroadcast(&q->space_freed);
				break;
			}

			if (state == WriteState::Deferred)
			{
				memset(&tag, 0, sizeof(tag));
				LWLockAcquire(q->lock, LW_SHARED);
				bool		still = same(w, ref) &&
					w->state == static_cast<int32>(WriteState::Deferred);

				relid = w->relid;
				reason = static_cast<DeferReason>(w->defer_reason);
				tag = w->defer_tag;
				tag_valid = w->defer_tag_valid;
				mode = w->defer_mode;
				LWLockRelease(q->lock);
				if (still)
					wait_for_blocker(ref, reason, relid, tag, tag_valid, mode,
									 &table_locked, withdraw_write, &progress);
				continue;
			}

			(void) pg::spin_for_latch();
			int			rc = WaitLatch(MyLatch,
									   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									   1000L, PG_WAIT_EXTENSION);

			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			/* a worker that died without a crash restart: start another */
			if ((rc & WL_TIMEOUT) && worker_gone())
				ensure_worker();
		}
	}
	PG_CATCH();
	{
		withdraw_write(ref);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (table_locked)
		UnlockRelationOid(relid, RowExclusiveLock);
	if (err.valid)
		raise_copied(err, false);
	make_durable(lsn);
}

/* The rows of one append, checked and flattened. */
struct Rows
{
	Oid			relid;
	Oid			rowtype;
	int			nrows;
	HeapTupleHeader *tuples;
	Size		total;			/* bytes in the queue, MAXALIGNed each */
	int			shape_natts;
	uint32		shape_hash;
};

/*
 * A trigger, default or rule of a table written by group commit runs in the
 * worker: a write it queued would wait for the worker, or be applied again
 * each time its batch is rerun.
 */
void
refuse_in_worker(const char *fname)
{
	if (am_group_commit_worker)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be called inside the group-commit worker", fname),
				 errdetail("A trigger, default or rule of a table written by "
						   "group commit called it; the worker would wait for "
						   "its own write."),
				 errhint("Insert directly in the trigger: the row then commits "
						 "with the write that fired it.")));
}

Rows
check_target(FunctionCallInfo fcinfo, const char *fname)
{
	Rows		r{};

	refuse_in_worker(fname);

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: the table must not be null", fname)));
	r.relid = PG_GETARG_OID(0);
	r.rowtype = get_rel_type_id(r.relid);
	if (!OidIsValid(r.rowtype))
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(r.relid)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", r.relid)));
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s: \"%s\" is not a table", fname,
						get_rel_name(r.relid))));
	}
	char		relkind = get_rel_relkind(r.relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
		relkind != RELKIND_VIEW && relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s: cannot insert into \"%s\"", fname,
						get_rel_name(r.relid)),
				 errdetail("Only tables, views and foreign tables take writes.")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: wait must not be null", fname)));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot queue group-commit writes during recovery"),
				 errhint("Append on the primary server.")));

	TupleDesc	desc = lookup_rowtype_tupdesc(r.rowtype, -1);

	r.shape_natts = desc->natts;
	r.shape_hash = row_shape(desc, desc->natts);
	ReleaseTupleDesc(desc);
	return r;
}

[[noreturn]] void
wrong_type(Oid relid, Oid given, bool array)
{
	char	   *relname = get_rel_name(relid);

	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("%s of type %s cannot be appended to table \"%s\"",
					array ? "rows" : "a row", format_type_be(given), relname),
			 errdetail("append() takes rows of the table's own row type, "
					   "%s%s.", format_type_be(get_rel_type_id(relid)),
					   array ? "[]" : ""),
			 errhint("Build the row with ROW(...)::%s, or select it from the "
					 "table's row type.",
					 format_type_be(get_rel_type_id(relid)))));
	pg_unreachable();
}

/* Queue memory for rows: after a failure, return empty superblocks and retry. */
dsa_pointer
allocate_rows(dsa_area *a, Size size)
{
	dsa_pointer p = dsa_allocate_extended(a, size, DSA_ALLOC_NO_OOM);

	if (!DsaPointerIsValid(p))
	{
		dsa_trim(a);
		p = dsa_allocate_extended(a, size, DSA_ALLOC_NO_OOM);
	}
	return p;
}


/* Wait for room in the queue, interruptibly: a cancel leaves nothing queued. */
void
wait_for_room(ConditionVariable *cv, long timeout, dsa_pointer *chunk)
{
	PG_TRY();
	{
		(void) ConditionVariableTimedSleep(cv, timeout, PG_WAIT_EXTENSION);
	}
	PG_CATCH();
	{
		give_back_rows(chunk);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Does no write hold rows (all of the queue's memory is free), neither in a
 * slot nor waiting for one?
 */
bool
queue_holds_no_rows()
{
	Queue	   *q = queue();
	bool		none = pg_atomic_read_u32(&q->unqueued) == 0;

	LWLockAcquire(q->lock, LW_SHARED);
	for (int i = 0; i < q->nslots && none; i++)
		none = !DsaPointerIsValid(q->slots[i].rows);
	LWLockRelease(q->lock);
	return none;
}

/*
 * While the queue is full: is the room we wait for held only by writes of
 * this session that wait for a lock this transaction holds (queued or
 * deferred writes to a table it holds a conflicting lock on, writes
 * deferred on any other lock it holds), so that it cannot come before this
 * transaction ends?  Returns how many such writes (0: room may come);
 * *relid: the table of one of them.
 */
int
self_blocked_writes(Oid *relid)
{
	/* what blocks a write: its table, or the lock it was deferred on */
	struct Blocker
	{
		Oid			relid;
		LOCKTAG		tag;
		LOCKMODE	mode;
		bool		tag_valid;
		int			writes;
	};
	constexpr int kMaxBlockers = 64;
	Blocker		c[kMaxBlockers];
	int			n = 0;
	int			mine_waiting = 0;
	int			blocked = 0;
	bool		others = false;	/* a write of someone else may free room */
	Queue	   *q = queue();

	LWLockAcquire(q->lock, LW_SHARED);
	for (int i = 0; i < q->nslots && !others; i++)
	{
		const WriteSlot *w = &q->slots[i];
		WriteState	st = static_cast<WriteState>(w->state);

		if (st == WriteState::Free || st == WriteState::Failed)
			continue;			/* (failed: freed only by their sessions) */
		if (!mine(w) || (st != WriteState::Queued && st != WriteState::Deferred))
		{
			others = true;		/* running, answered, or someone else's */
			break;
		}
		mine_waiting++;
		bool		tag_valid = st == WriteState::Deferred && w->defer_tag_valid;
		int			k;

		for (k = 0; k < n; k++)
			if (c[k].relid == w->relid && c[k].tag_valid == tag_valid &&
				(!tag_valid || (c[k].mode == w->defer_mode &&
								memcmp(&c[k].tag, &w->defer_tag, sizeof(LOCKTAG)) == 0)))
				break;
		if (k == n)
		{
			if (n == kMaxBlockers)
			{
				others = true;	/* too many kinds to tell: keep waiting */
				break;
			}
			c[n].relid = w->relid;
			c[n].tag = w->defer_tag;
			c[n].mode = w->defer_mode;
			c[n].tag_valid = tag_valid;
			c[n].writes = 0;
			n++;
		}
		c[k].writes++;
	}
	LWLockRelease(q->lock);
	if (others)
		return 0;

	for (int i = 0; i < n; i++)
	{
		LOCKMODE	held;

		if (holds_conflicting_lock(c[i].relid, &held) ||
			(c[i].tag_valid && holds_blocking_lock(c[i].tag, c[i].mode, &held)))
		{
			*relid = c[i].relid;
			blocked += c[i].writes;
		}
	}
	/* one of ours that can go on frees room too */
	return blocked == mine_waiting ? blocked : 0;
}

/*
 * Do deferred writes hold child_txn.deferred_queue_share percent of the
 * queue's slots or of its memory?  Also read without the lock, as a first
 * look on every append: the limit is a soft one, and a stale answer is
 * corrected by the next append.
 */
bool
deferred_over_share()
{
	const volatile Queue *q = queue();
	int			share = settings::deferred_queue_share;
	int64		n = q->ndeferred;
	Size		bytes = q->deferred_bytes;

	if (share >= 100)
		return false;
	return n * 100 >= static_cast<int64>(q->nslots) * share ||
		bytes * 100 >= static_cast<Size>(settings::queue_memory) * 1024 * share;
}

/*
 * Does this transaction hold what a write deferred for `reason` on `tag`
 * (in `mode`) waits for?  The same tests as wait_for_blocker's.
 */
bool
blocked_by_us(DeferReason reason, Oid relid, const LOCKTAG &tag,
			  bool tag_valid, LOCKMODE mode)
{
	LOCKMODE	held;

	if (reason == DeferReason::Table)
		return holds_conflicting_lock(relid, &held);
	if (tag_valid && tag.locktag_type == LOCKTAG_TRANSACTION)
		return TransactionIdIsCurrentTransactionId(
			static_cast<TransactionId>(tag.locktag_field1));
	return tag_valid && holds_blocking_lock(tag, mode, &held);
}

/*
 * After ask_retry(ref): wait until the worker has tried that write (it is
 * neither queued nor in a batch any more: written, failed, deferred again,
 * or withdrawn).  The next look at the queue then finds it again if it
 * was deferred again, so that a caller going round a livelock keeps
 * picking the same write, as WaitProgress needs.
 */
void
wait_until_tried(const WriteRef &ref)
{
	Queue	   *q = queue();

	for (int round = 0;; round++)
	{
		LWLockAcquire(q->lock, LW_SHARED);
		const WriteSlot *w = &q->slots[ref.slot];
		bool		pending = w->seq == ref.seq &&
			(w->state == static_cast<int32>(WriteState::Queued) ||
			 w->state == static_cast<int32>(WriteState::Running));

		LWLockRelease(q->lock);
		if (!pending)
			return;
		if (round % 100 == 99 && worker_gone())
			ensure_worker();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * A write appended without waiting to a table whose writes are deferred
 * (the table, or a row they need, is locked) would only join them in the
 * queue until the lock is free; enough of them would take the queue from
 * every other table and database.  So once deferred writes hold
 * child_txn.deferred_queue_share (half) of the queue's slots or memory,
 * such a write first waits, in the lock manager, for what blocks the
 * oldest deferred write of its table (as a caller waiting for its own
 * write would: visible in pg_locks, subject to lock_timeout and the
 * deadlock detector), has it retried, and looks again.  Writes to other
 * tables are not held up.  If this transaction holds the lock itself,
 * fail rather than wait for ourselves.
 */
void
wait_while_blocked(Oid relid)
{
	Queue	   *q = queue();
	bool		table_locked = false;
	WaitProgress progress(Waiter::Share);

	for (;;)
	{
		WriteRef	oldest{-1, PG_UINT64_MAX};
		DeferReason reason = DeferReason::None;
		LOCKTAG		tag;
		bool		tag_valid = false;
		LOCKMODE	mode = NoLock;
		int			deferred = 0;

		if (!deferred_over_share())
			break;
		memset(&tag, 0, sizeof(tag));
		LWLockAcquire(q->lock, LW_SHARED);
		if (deferred_over_share())
		{
			for (int i = 0; i < q->nslots; i++)
			{
				const WriteSlot *w = &q->slots[i];

				if (w->state != static_cast<int32>(WriteState::Deferred) ||
					w->database_id != MyDatabaseId || w->relid != relid)
					continue;
				deferred++;
				if (w->seq < oldest.seq)
				{
					oldest = WriteRef{i, w->seq};
					reason = static_cast<DeferReason>(w->defer_reason);
					tag = w->defer_tag;
					tag_valid = w->defer_tag_valid;
					mode = w->defer_mode;
				}
			}
		}
		LWLockRelease(q->lock);
		if (oldest.slot < 0)
			break;

		if (blocked_by_us(reason, relid, tag, tag_valid, mode))
		{
			char	   *relname = get_rel_name(relid);

			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("cannot queue another write to table \"%s\": "
							"its deferred writes wait for a lock this transaction holds",
							relname ? relname : "?"),
					 errdetail("%d write(s) to it are deferred, and deferred "
							   "writes hold at least %d%% of the group-commit "
							   "queue (child_txn.deferred_queue_share): a write "
							   "to such a table then waits for the lock that "
							   "blocks its oldest deferred write.",
							   deferred, settings::deferred_queue_share),
					 errhint("Queue fewer writes to this table while holding "
							 "the lock, or raise child_txn.queue_size, "
							 "child_txn.queue_memory or "
							 "child_txn.deferred_queue_share.")));
		}
		wait_for_blocker(oldest, reason, relid, tag, tag_valid, mode,
						 &table_locked, [](const WriteRef &) {}, &progress);
		wait_until_tried(oldest);

		/*
		 * The worker has tried it: let go of the table (this append holds
		 * no lock on it otherwise), rather than keep it while a later
		 * round waits for something else.
		 */
		if (table_locked)
		{
			UnlockRelationOid(relid, RowExclusiveLock);
			table_locked = false;
		}
	}
}

void
submit(const Rows &rows, bool wait)
{
	Queue	   *q = queue();
	dsa_area   *a = area();
	LOCKMODE	held;
	dsa_pointer chunk = InvalidDsaPointer;
	WriteRef	ref{-1, 0};
	TimestampTz deadline = 0;
	bool		need_start = false;
	uint32		generation = 0;
	int			procno = -1;
	int			worker_index = -1;

	if (!exit_callback_registered)
	{
		before_shmem_exit(session_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	/* a flush() that failed left this set */
	if (pg_atomic_read_u32(&q->flushing[MyProc->pgprocno]) != 0)
		pg_atomic_write_u32(&q->flushing[MyProc->pgprocno], 0);
	/* rows an error left without a slot (none of the paths above should) */
	if (DsaPointerIsValid(unqueued_rows))
		give_back_rows(&unqueued_rows);
	report_earlier_failures();

	if (wait && holds_conflicting_lock(rows.relid, &held))
		self_wait_error(rows.relid, held);
	if (!wait)
		wait_while_blocked(rows.relid);
	if (rows.total > static_cast<Size>(settings::queue_memory) * 1024 / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("write of %zu bytes is too large for the group-commit queue",
						rows.total),
				 errhint("Split it into smaller appends, or raise "
						 "child_txn.queue_memory (currently %d kB).",
						 settings::queue_memory)));


	if (settings::queue_wait_timeout > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   settings::queue_wait_timeout);

	/* Room for the rows, then a slot: wait while the queue is full. */
	int			fruitless = 0;	/* allocations failed with the queue empty */

	ConditionVariablePrepareToSleep(&q->space_freed);
	for (;;)
	{
		if (!DsaPointerIsValid(chunk))
		{
			chunk = allocate_rows(a, rows.total);
			unqueued_rows = chunk;
		}
		if (DsaPointerIsValid(chunk))
		{
			LWLockAcquire(q->lock, LW_EXCLUSIVE);
			int			index = my_entry();

			if (index < 0)
			{
				LWLockRelease(q->lock);
				give_back_rows(&chunk);
				if (purge_dropped_databases())
					continue;
				too_many_databases();
			}
			int			i = alloc_slot();

			if (i >= 0)
			{
				WriteSlot  *w = &q->slots[i];
				char	   *dst = static_cast<char *>(dsa_get_address(a, chunk));

				for (int r = 0; r < rows.nrows; r++)
				{
					Size		len = HeapTupleHeaderGetDatumLength(rows.tuples[r]);

					memcpy(dst, rows.tuples[r], len);
					dst += MAXALIGN(len);
				}
				w->wait = wait;
				w->abandoned = false;
				w->owner_procno = MyProc->pgprocno;
				w->owner_pid = MyProcPid;
				w->seq = q->next_seq++;
				w->database_id = MyDatabaseId;
				w->relid = rows.relid;
				w->user_id = GetUserId();
				w->rowtype = rows.rowtype;
				w->shape_natts = rows.shape_natts;
				w->shape_hash = rows.shape_hash;
				w->rows = chunk;
				uncount_rows();
				w->rows_len = rows.total;
				w->nrows = rows.nrows;
				w->queued_at = GetCurrentTimestamp();
				w->defer_reason = static_cast<int32>(DeferReason::None);
				w->defer_tag_valid = false;
				w->sqlerrcode = 0;
				w->message[0] = w->detail[0] = w->hint[0] = '\0';
				/* a write to a table known to be locked joins its deferred writes */
				if (!join_blocked_table(&q->workers[index], w))
					enqueue(&q->workers[index], w);
				ref = WriteRef{i, w->seq};
				need_start = claim_worker(index, &generation, &procno);
				procno = procno_to_wake(&q->workers[index], procno, wait);
				worker_index = index;
			}
			LWLockRelease(q->lock);
			if (ref.slot >= 0)
				break;
		}
		else if (!queue_holds_no_rows())
			fruitless = 0;
		else if (++fruitless >= 2)
		{
			/*
			 * Twice in a row, with nothing queued anywhere: the free memory is too
			 * cut up for these rows (a size class keeps a superblock even
			 * when empty), and waiting would not change that.
			 */
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("write of %zu bytes does not fit in the group-commit queue's free memory",
							rows.total),
					 errdetail("Nothing else is queued; the queue's memory is "
							   "fragmented by earlier writes of other sizes."),
					 errhint("Split it into smaller appends, or raise "
							 "child_txn.queue_memory (currently %d kB).",
							 settings::queue_memory)));
		}

		/*
		 * A full queue whose deferred writes take their share of it: if
		 * some are our table's, wait for what blocks them instead (see
		 * wait_while_blocked), holding no rows meanwhile.
		 */
		if (!wait && deferred_over_share())
		{
			ConditionVariableCancelSleep();
			give_back_rows(&chunk);
			wait_while_blocked(rows.relid);
			ConditionVariablePrepareToSleep(&q->space_freed);
		}

		/* Waiting for room that our own deferred writes take is waiting for ourselves. */
		Oid			self_relid;
		int			nself = self_blocked_writes(&self_relid);

		if (nself > 0)
		{
			ConditionVariableCancelSleep();
			give_back_rows(&chunk);
			char	   *relname = get_rel_name(self_relid);

			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("cannot wait for room in the full group-commit queue: "
							"%d write(s) of this transaction in it wait for a lock it holds",
							nself),
					 errdetail("Writes to table \"%s\" queued without waiting cannot "
							   "be applied before this transaction ends.",
							   relname ? relname : "?"),
					 errhint("Queue fewer writes while holding the lock, or raise "
							 "child_txn.queue_size or child_txn.queue_memory.")));
		}

		/* re-check the above now and then: deferrals do not wake us */
		long		timeout = fruitless > 0 ? 100L : 1000L;

		if (deadline != 0)
		{
			long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
															   deadline);

			if (left <= 0)
			{
				ConditionVariableCancelSleep();
				give_back_rows(&chunk);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						 errmsg("the group-commit queue stayed full for %d ms; the write was not queued",
								settings::queue_wait_timeout),
						 errhint("Raise child_txn.queue_size or child_txn.queue_memory, "
								 "or child_txn.queue_wait_timeout.")));
			}
			timeout = Min(timeout, left);
		}
		/* rows held while we wait count for the others' fragmentation check */
		if (DsaPointerIsValid(chunk) && !unqueued_counted)
		{
			pg_atomic_fetch_add_u32(&q->unqueued, 1);
			unqueued_counted = true;
		}
		(void) purge_dropped_databases();
		want_room();
		wait_for_room(&q->space_freed, timeout, &chunk);
	}
	ConditionVariableCancelSleep();

	if (need_start)
	{
		PG_TRY();
		{
			start_worker(worker_index, generation);
		}
		PG_CATCH();
		{
			withdraw_write(ref);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	else
		wake_procno(procno);
	if (wait)
		wait_for_write(ref);
}

/* Flatten one composite datum of the table's row type. */
HeapTupleHeader
flat_row(Datum d)
{
	return DatumGetHeapTupleHeader(d);
}

} // namespace

} // namespace gc
} // namespace child_txn

using namespace child_txn::gc;

extern "C"
{
PG_FUNCTION_INFO_V1(child_txn_append);
PG_FUNCTION_INFO_V1(child_txn_append_rows);
PG_FUNCTION_INFO_V1(child_txn_flush);
PG_FUNCTION_INFO_V1(child_txn_group_commit_stats);
}

/*
 * append(rel regclass, row anyelement, wait boolean default true)
 */
extern "C" Datum
child_txn_append(PG_FUNCTION_ARGS)
{
	Rows		rows = check_target(fcinfo, "child_txn.append()");
	Oid			given = get_fn_expr_argtype(fcinfo->flinfo, 1);

	if (given != rows.rowtype)
		wrong_type(rows.relid, given, false);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("child_txn.append(): the row must not be null"),
				 errhint("Pass ROW(NULL, ...) to insert a row of nulls and defaults.")));

	HeapTupleHeader t = flat_row(PG_GETARG_DATUM(1));

	rows.nrows = 1;
	rows.tuples = &t;
	rows.total = MAXALIGN(HeapTupleHeaderGetDatumLength(t));
	submit(rows, PG_GETARG_BOOL(2));
	PG_RETURN_VOID();
}

/*
 * append_rows(rel regclass, rows anyarray, wait boolean default true)
 *		Many rows as one write: all of them commit, or none.
 */
extern "C" Datum
child_txn_append_rows(PG_FUNCTION_ARGS)
{
	Rows		rows = check_target(fcinfo, "child_txn.append_rows()");
	Oid			given = get_fn_expr_argtype(fcinfo->flinfo, 1);
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (get_element_type(given) != rows.rowtype)
		wrong_type(rows.relid, given, true);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("child_txn.append_rows(): the rows must not be null")));

	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);

	deconstruct_array(arr, rows.rowtype, -1, false, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	if (n == 0)
		PG_RETURN_VOID();
	rows.nrows = n;
	rows.tuples = static_cast<HeapTupleHeader *>(palloc(sizeof(HeapTupleHeader) * n));
	rows.total = 0;
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("child_txn.append_rows(): element %d is null", i + 1)));
		rows.tuples[i] = flat_row(elems[i]);
		rows.total += MAXALIGN(HeapTupleHeaderGetDatumLength(rows.tuples[i]));
	}
	submit(rows, PG_GETARG_BOOL(2));
	PG_RETURN_VOID();
}

/*
 * flush()
 *		Wait for every write this session queued; raise the first failure.
 */
extern "C" Datum
child_txn_flush(PG_FUNCTION_ARGS)
{
	Queue	   *q = queue();
	bool		table_locked = false;
	Oid			locked_relid = InvalidOid;
	WaitProgress progress(Waiter::Flush);
	int64		waited = 0;

	refuse_in_worker("child_txn.flush()");

	/*
	 * Ask the worker to wake us for writes we did not wait for (it frees
	 * them when done).  Set before looking at the queue, under its lock;
	 * left set by an error, it only costs a few needless wake-ups until
	 * the next append.
	 */
	pg_atomic_write_u32(&q->flushing[MyProc->pgprocno], 1);
	wake_gathering_worker();

	for (;;)
	{
		int			pending = 0;
		WriteRef	deferred{-1, 0};
		DeferReason reason = DeferReason::None;
		Oid			relid = InvalidOid;
		LOCKTAG		tag;
		bool		tag_valid = false;
		LOCKMODE	mode = NoLock;

		memset(&tag, 0, sizeof(tag));
		LWLockAcquire(q->lock, LW_SHARED);
		for (int i = 0; i < q->nslots; i++)
		{
			WriteSlot  *w = &q->slots[i];

			if (!mine(w))
				continue;
			WriteState	s = static_cast<WriteState>(w->state);

			if (s == WriteState::Queued || s == WriteState::Running ||
				s == WriteState::Deferred)
				pending++;
			if (s == WriteState::Deferred && deferred.slot < 0)
			{
				deferred = WriteRef{i, w->seq};
				reason = static_cast<DeferReason>(w->defer_reason);
				relid = w->relid;
				tag = w->defer_tag;
				tag_valid = w->defer_tag_valid;
				mode = w->defer_mode;
			}
		}
		LWLockRelease(q->lock);
		if (pending == 0)
			break;
		waited = Max(waited, pending);

		if (deferred.slot >= 0)
		{
			if (table_locked && relid != locked_relid)
			{
				UnlockRelationOid(locked_relid, RowExclusiveLock);
				table_locked = false;
			}
			locked_relid = relid;
			/* flush() does not withdraw writes it did not queue itself */
			wait_for_blocker(deferred, reason, relid, tag, tag_valid, mode,
							 &table_locked, [](const WriteRef &) {}, &progress);

			/*
			 * Let the worker try (ask_retry queued our other writes
			 * deferred on the same lock too) before we look again: if it
			 * is deferred again, the next round picks it again, and
			 * rounds that end at once count towards the livelock
			 * WaitProgress reports, even when our writes wait for
			 * several tables.
			 */
			wait_until_tried(deferred);
			continue;
		}
		if (worker_gone())
			ensure_worker();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	pg_atomic_write_u32(&q->flushing[MyProc->pgprocno], 0);
	if (table_locked)
		UnlockRelationOid(locked_relid, RowExclusiveLock);

	XLogRecPtr	lsn;

	LWLockAcquire(q->lock, LW_SHARED);
	lsn = q->committed_lsn[MyProc->pgprocno];
	LWLockRelease(q->lock);
	make_durable(lsn);

	CopiedError first;

	if (collect_failures(&first) > 0)
		raise_copied(first, true);
	PG_RETURN_VOID();
}

/*
 * _group_commit_stats(): one row per database that used group commit.
 */
extern "C" Datum
child_txn_group_commit_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	Queue	   *q = queue();
	DbWorker	copy[kMaxDatabases];
	int			queued[kMaxDatabases] = {0};
	int			deferred[kMaxDatabases] = {0};

	InitMaterializedSRF(fcinfo, 0);
	(void) purge_dropped_databases();

	LWLockAcquire(q->lock, LW_SHARED);
	memcpy(copy, q->workers, sizeof(copy));
	for (int s = 0; s < q->nslots; s++)
	{
		const WriteSlot *w = &q->slots[s];

		if (w->state == static_cast<int32>(WriteState::Free))
			continue;
		for (int i = 0; i < kMaxDatabases; i++)
			if (copy[i].database_id == w->database_id)
			{
				if (w->state == static_cast<int32>(WriteState::Queued) ||
					w->state == static_cast<int32>(WriteState::Running))
					queued[i]++;
				else if (w->state == static_cast<int32>(WriteState::Deferred))
					deferred[i]++;
			}
	}
	LWLockRelease(q->lock);

	for (int i = 0; i < kMaxDatabases; i++)
	{
		const DbWorker &e = copy[i];
		Datum		values[14];
		bool		nulls[14] = {false};

		if (e.database_id == InvalidOid)
			continue;
		const Stats &st = e.stats;

		values[0] = ObjectIdGetDatum(e.database_id);
		values[1] = Int32GetDatum(e.state == static_cast<int32>(WorkerState::Running) ? e.pid : 0);
		nulls[1] = e.state != static_cast<int32>(WorkerState::Running);
		values[2] = Int64GetDatum(static_cast<int64>(st.batches));
		values[3] = Int64GetDatum(static_cast<int64>(st.writes));
		values[4] = Int64GetDatum(static_cast<int64>(st.rows));
		values[5] = Int64GetDatum(static_cast<int64>(st.deferrals));
		values[6] = Int64GetDatum(static_cast<int64>(st.failures));
		values[7] = Int64GetDatum(static_cast<int64>(st.retries));
		values[8] = Float8GetDatum(st.batches ? static_cast<double>(st.rows) / st.batches : 0.0);
		values[9] = Int64GetDatum(static_cast<int64>(st.max_batch_rows));
		values[10] = Float8GetDatum(st.batches ? st.commit_us_total / 1000.0 / st.batches : 0.0);
		values[11] = Float8GetDatum(st.commit_us_max / 1000.0);
		values[12] = Float8GetDatum(st.writes ? st.latency_us_total / 1000.0 / st.writes : 0.0);
		values[13] = Int32GetDatum(queued[i] + deferred[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
