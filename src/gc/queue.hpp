/*
 * queue.hpp
 *		Shared state of group commit: the write queue, the per-database
 *		group-commit workers and their statistics.
 *
 * A queued write is one slot of a fixed array (child_txn.queue_size slots)
 * plus its rows, flattened composite datums of the table's row type, in a
 * fixed-size DSA area inside the main shared memory segment
 * (child_txn.queue_memory).  When either runs out, appenders wait on
 * space_freed: that is the back-pressure.
 *
 * Life of a write (state, changed only under the queue LWLock):
 *
 *	 Queued --worker takes it into a batch--> Running
 *	 Running --batch committed--> Done          (answered, or freed at once
 *	                                             if nobody waits for it)
 *	 Running --its own error--> Failed          (kept until its session
 *	                                             collects the error)
 *	 Running --table or row lock not free--> Deferred --retry--> Queued
 *	 Running --worker exits before committing--> Queued (taken again by the
 *	                                             next worker)
 *	 Running --worker exits while committing--> Failed, 08007
 *	 Queued/Deferred --caller gives up--> Free   (withdrawn, never written)
 *
 * Durability: the worker commits its batch as the server's
 * synchronous_commit says (so a batch becomes visible to others only once
 * it is as durable as any other commit), and the caller of a write then
 * also flushes the batch's commit record as its own synchronous_commit
 * asks (normally a no-op; more if the caller asks for more, say
 * remote_apply).  flush() does the same for the writes queued without
 * waiting.  Writes that arrive while a batch commits form the next batch.
 *
 * Who waits for whom (the central rule, DESIGN.md 3.3): the worker never
 * waits for a heavyweight lock for long.  Table locks are taken
 * conditionally; row locks are bounded by child_txn.row_lock_wait.  A write
 * that cannot get its lock is Deferred with the lock tag that blocks it, and
 * its caller, if it waits, then waits for that lock itself, in the lock
 * manager, so that the deadlock detector sees the caller's real dependency.
 */
#pragma once

#include "pg/postgres_headers.hpp"

namespace child_txn
{
namespace gc
{

enum class WriteState : int32
{
	Free = 0,
	Queued,
	Running,
	Deferred,
	Done,
	Failed,
};

enum class DeferReason : int32
{
	None = 0,
	Table,						/* could not lock the table */
	Row,						/* a row lock wait exceeded row_lock_wait */
};

constexpr int kErrMessageLen = 256;
constexpr int kErrDetailLen = 256;
constexpr int kErrHintLen = 160;

struct WriteSlot
{
	int32		state;			/* WriteState */
	int32		next;			/* next slot in the free list or in its
								 * database's queue, -1 at the end */
	bool		wait;			/* the caller waits for the outcome */
	bool		abandoned;		/* its caller stopped waiting for it */
	int32		owner_procno;	/* submitting backend's PGPROC, -1: gone */
	int32		owner_pid;
	uint64		seq;			/* queue order */
	Oid			database_id;
	Oid			relid;
	Oid			user_id;		/* role the INSERT runs as */
	Oid			rowtype;		/* the row type the rows were built with */
	int32		shape_natts;	/* its attributes when queued ... */
	uint32		shape_hash;		/* ... and a digest of their types */
	dsa_pointer rows;			/* nrows flattened tuples, MAXALIGNed */
	Size		rows_len;
	int32		nrows;
	TimestampTz queued_at;
	TimestampTz retry_at;		/* Deferred: the worker retries by itself */
	XLogRecPtr	commit_lsn;		/* Done: end of the batch's commit record */

	/* Deferred */
	int32		defer_reason;	/* DeferReason */
	LOCKTAG		defer_tag;		/* the lock that blocked, if known */
	bool		defer_tag_valid;
	int32		defer_mode;		/* the lock mode it waited for */
	int32		defer_count;	/* times deferred, for the retry back-off */

	/* Failed */
	int			sqlerrcode;
	char		message[kErrMessageLen];
	char		detail[kErrDetailLen];
	char		hint[kErrHintLen];
};

/* Cumulative figures of one database's group commit. */
struct Stats
{
	uint64		batches;
	uint64		writes;			/* committed */
	uint64		rows;			/* committed */
	uint64		deferrals;
	uint64		failures;
	uint64		retries;		/* batches rerun with one write at a time */
	uint64		max_batch_rows;
	uint64		commit_us_total; /* batch start to durable commit */
	uint64		commit_us_max;
	uint64		latency_us_total; /* queued to answered, committed writes */
	uint64		latency_us_max;
};

enum class WorkerState : int32
{
	None = 0,					/* no worker for this entry */
	Starting,					/* registered, not yet running */
	Running,
};

constexpr int kMaxBlockedTables = 8;

struct DbWorker
{
	Oid			database_id;	/* InvalidOid: entry unused */
	int32		state;			/* WorkerState */
	uint32		generation;		/* bumped whenever a new worker is started */
	int32		pid;
	int32		pgprocno;
	TimestampTz started_at;

	/* Queued writes, oldest first: a list through WriteSlot.next */
	int32		queue_head;
	int32		queue_tail;
	int32		nqueued;
	int32		ndeferred;		/* writes in state Deferred (not listed),
								 * counted by count_deferred() */

	/*
	 * The worker lets writes nobody waits for gather
	 * (child_txn.nowait_batch_delay) and wakes by itself when that time is
	 * up: a write appended without waiting need not wake it, unless the
	 * queue holds gather_limit() writes or a session waits for room
	 * (Queue.room_wanted).
	 */
	bool		gathering;

	/*
	 * Tables whose writes are deferred for their table lock, each with one
	 * such write (slot and seq, checked when used): a write appended to
	 * one of them joins those at once (join_blocked_table) rather than wait
	 * in the queue for the worker to find the table locked again, so that
	 * child_txn.deferred_queue_share sees it even when the worker lags.
	 * Noted by the worker; an entry whose write is no longer deferred is
	 * void.
	 */
	int32		nblocked;
	Oid			blocked_relid[kMaxBlockedTables];
	int32		blocked_slot[kMaxBlockedTables];
	uint64		blocked_seq[kMaxBlockedTables];

	Stats		stats;
};

constexpr int kMaxDatabases = 32;

struct Queue
{
	LWLock	   *lock;
	ConditionVariable space_freed;	/* a slot or queue memory came free */
	pg_atomic_uint32 unqueued;	/* row chunks allocated, not yet in a slot */
	pg_atomic_uint32 room_wanted;	/* a session waits for room: gathering
									 * ends (cleared when room comes free) */
	int32		ndeferred;		/* writes in state Deferred, all databases */
	Size		deferred_bytes;	/* ... and the queue memory their rows take */
	int			dsa_tranche;
	int			nslots;
	int32		free_head;		/* free slots, a list through .next */
	uint64		next_seq;
	int			nbackends;		/* entries in failures_pending */
	DbWorker	workers[kMaxDatabases];
	char	   *dsa_place;		/* in-place DSA area */
	pg_atomic_uint32 *failures_pending;	/* per PGPROC: fire-and-forget
										 * writes that failed, uncollected */
	XLogRecPtr *committed_lsn;	/* per PGPROC: latest commit of a write
								 * nobody waited for (under the lock) */
	pg_atomic_uint32 *flushing;	/* per PGPROC: in flush(), to be woken when
								 * a write it did not wait for is done */
	WriteSlot	slots[FLEXIBLE_ARRAY_MEMBER];
};

constexpr const char *kQueueTranche = "child_txn_queue";

Size		shmem_size();
void		shmem_init();

/* This process's view of the queue (attaches on first use). */
Queue	   *queue();
dsa_area   *area();

/*
 * A digest of the first natts attributes of a row type (type, typmod,
 * dropped): rows queued before an ALTER TABLE that changed a column's type
 * must not be read with the new one.
 */
uint32		row_shape(TupleDesc desc, int natts);

/*
 * Register the group-commit worker of entry `index`, which the caller set
 * to Starting with this generation.  False (entry set back to None) if no
 * background worker slot is free.  Raises no error.
 */
bool		register_worker(int index, uint32 generation);

/*
 * Make the group-commit worker of a database exit if it has nothing to do
 * (for DROP DATABASE and friends).  One with queued writes stays.
 */
void		retire_database(Oid database_id);

/*
 * Forget this process's queued writes (see session.cpp); a pooled child
 * worker calls it between children.
 */
void		forget_session_writes();

/*
 * Set in the group-commit worker: a trigger or default running there must
 * not queue writes of its own (the worker would wait for itself).
 */
extern bool am_group_commit_worker;

/* Wake the process behind a PGPROC number. */
void		wake_procno(int procno);

/*
 * With the queue lock held exclusively:
 */

/* Take a free slot (-1 if none). */
int			alloc_slot();

/* Free a write slot and its rows.  It must not be on a queue list. */
void		free_slot(WriteSlot *w);

/*
 * Write w (of entry e) enters (delta 1) or leaves (-1) state Deferred:
 * count it in e->ndeferred and in the queue's totals.  Lock held
 * exclusively.
 */
void		count_deferred(DbWorker *e, const WriteSlot *w, int delta);

/*
 * A fire-and-forget write failed: count it for its session, which reports
 * it at its next append or flush, or, if that session is gone or has an
 * earlier failure to report, free its slot (then true).  A later failure
 * of that session already kept is freed instead (*freed_other).  Under
 * the queue lock, exclusive.
 */
bool		hand_failure_to_owner(WriteSlot *w, bool *freed_other);

/* The entry of a database, -1 if it has none. */
int			db_entry(Oid database_id);

/* Put a write on its database's queue (state Queued), in queue order. */
void		enqueue(DbWorker *e, WriteSlot *w);

/*
 * Write w of entry e (not on the queue list) becomes Deferred like model,
 * a deferred write of the same table: same lock, retry time, back-off.
 */
void		defer_like(DbWorker *e, WriteSlot *w, const WriteSlot *model);

/* Note that model's table is blocked (see DbWorker.blocked_relid). */
void		note_blocked_table(DbWorker *e, const WriteSlot *model);

/*
 * A new write w of entry e, not yet queued: if its table is blocked (see
 * DbWorker.blocked_relid), make it Deferred like the table's deferred
 * write and return true; else false (the caller queues it).
 */
bool		join_blocked_table(DbWorker *e, WriteSlot *w);

/*
 * Deferred writes ws[0..n) of entry e go back on its queue, in queue order
 * (ws is sorted here).  They are usually older than everything queued, so
 * they go in newest first, each at the head: no list walks.
 */
void		requeue_deferred(DbWorker *e, WriteSlot **ws, int n);

/*
 * How many queued writes (or rows) end a gathering early: half the slots,
 * at most child_txn.max_batch_size.
 */
int			gather_limit();

/*
 * Does a write just queued (waited for or not) have to wake the worker of
 * entry e, whose PGPROC number is procno?  -1 if not.
 */
int			procno_to_wake(const DbWorker *e, int procno, bool waits);

/* Take a Queued write off its database's queue (not at the head, say). */
void		unlink_queued(DbWorker *e, WriteSlot *w);

/* Settings, in settings.cpp's namespace but listed here for gc code. */

} // namespace gc
} // namespace child_txn
