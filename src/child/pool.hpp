/*
 * pool.hpp
 *		The shared-memory pool of child workers, and the registry of the
 *		children they serve.
 *
 * One slot per worker process, child_txn.max_workers slots in all.  A worker
 * is started for a (database, authenticated user) pair and serves one child
 * at a time; between children it waits, idle, for the next child of a parent
 * with the same pair, and exits after child_txn.worker_idle_timeout.  The
 * slot also describes the child being served, for the child_txn.children
 * view.
 *
 * Locking: the pool LWLock guards every state change (assignment, start,
 * idle, retire, free).  A slot's generation changes whenever the slot passes
 * to another process, so a process can tell whether "its" slot is still its
 * own.  The slot spinlock guards child_id and child_state together: the
 * parent writes child_state only while child_id is still its child's, and
 * whoever changes child_id (under the pool lock) takes the spinlock too.
 */
#pragma once

#include "pg/postgres_headers.hpp"

namespace child_txn
{

enum class SlotState : int32
{
	Free = 0,			/* no process */
	Starting,			/* worker registered for an assignment, not yet up */
	Idle,				/* worker waits for an assignment */
	Busy,				/* worker serves a child */
};

/* Life cycle of a child, as the view shows it (written by the parent). */
enum class ChildState : int32
{
	None = 0,
	Starting,			/* waiting for its worker to be ready */
	Idle,				/* open, waiting for the parent's next request */
	Running,			/* executing statements for the parent */
	Committing,			/* commit requested and under way */
	Ending,				/* rolling back */
};

struct PoolSlot
{
	slock_t		mutex;			/* guards child_id and child_state */
	uint32		generation;
	int32		state;			/* SlotState */
	int32		worker_pid;
	int			pgprocno;		/* worker's PGPROC number, -1 before start */
	Oid			database_id;
	Oid			user_id;		/* authenticated user the worker runs as */
	dsm_handle	assignment;		/* segment of the child to serve */
	uint32		next_request;	/* number of the worker's next request */
	TimestampTz idle_since;

	/* the child being served (Busy, and Starting for a new worker) */
	uint32		child_id;
	uint32		parent_child_id;
	int32		parent_pid;
	int32		depth;
	int32		child_state;	/* ChildState */
	TimestampTz started_at;
};

struct Pool
{
	LWLock	   *lock;
	ConditionVariable worker_freed; /* a slot became Idle or Free */
	pg_atomic_uint32 next_child_id;
	int			nslots;
	PoolSlot	slots[FLEXIBLE_ARRAY_MEMBER];
};

constexpr const char *kPoolTranche = "child_txn_pool";

Size		pool_shmem_size();
void		pool_shmem_init();

/* Where a new child will run. */
struct WorkerAssignment
{
	int			slot;
	uint32		generation;
	bool		needs_start;	/* no idle worker: start one in this slot */
	int32		worker_pid;		/* of an idle worker taken, else 0 */
	uint32		next_request;	/* number of the worker's next request */
};

/* A new cluster-unique child id (a positive int4). */
uint32		pool_next_child_id();

/*
 * Find a worker for a new child of this backend, served through DSM
 * segment `assignment`: an idle worker of our (database, user), else a free
 * slot (or an idle slot of another pair, whose worker is retired) for a new
 * worker.  When every slot is busy, wait up to child_txn.worker_wait_timeout
 * for one, then fail with ERRCODE_INSUFFICIENT_RESOURCES.
 *
 * Among idle workers, the one with pid preferred_pid (0: none) is taken
 * first: the caller passes the worker that last served the same segment,
 * which likely has it mapped still and its caches warm for this caller.
 *
 * When an idle worker is taken, prepare(worker's PGPROC, prepare_arg) runs
 * under the pool lock, before the worker can see its assignment; it must
 * not fail.  The idle worker is not woken here: the caller's first message
 * to it (or its detach from the queues) does that, one wake-up instead of
 * two.  A worker to be started needs no wake-up.
 */
WorkerAssignment pool_assign(dsm_handle assignment, uint32 child_id,
							 uint32 parent_child_id, int32 depth,
							 int32 preferred_pid,
							 void (*prepare) (PGPROC *worker, void *arg),
							 void *prepare_arg);

/*
 * Make the idle workers of a database exit (DROP DATABASE and friends wait
 * for every backend of the database to go).  Busy ones serve a parent that
 * is itself connected to the database.
 */
void		pool_retire_database(Oid database_id);

/*
 * Give back the slot of assignment a whose new worker never took it up: it
 * could not be registered, or the postmaster could not start it.  Only
 * that worker would have freed it.  A no-op once the worker took the slot.
 */
void		pool_unassign(const WorkerAssignment &a);

/* Does the slot still serve this child (worker alive and on it)? */
bool		pool_serves(const WorkerAssignment &a, uint32 child_id);

/* Parent: publish the state of its child, if the slot still serves it. */
void		pool_set_child_state(const WorkerAssignment &a, uint32 child_id,
								 ChildState state);

/* Find the slot serving a child; copy its parent pid.  False if none. */
bool		pool_find_child(uint32 child_id, int32 *parent_pid);

/* ---- worker side ---- */

/* Claim slot `index` (generation from bgw_extra) for this worker process. */
PoolSlot   *pool_worker_attach(int index, uint32 generation);

/* The pool slot of this worker process. */
int			pool_worker_slot();

/* An ancestor of the child a worker serves. */
struct Ancestor
{
	int32		pid;
	int			slot;			/* its pool slot if it is a child worker, else -1 */
	uint32		generation;		/* that slot's generation */
};

/*
 * In a worker: this child's parent, its parent's parent if that one is a
 * child too, and so on up to a session (at most max of them).
 */
int			pool_worker_ancestors(Ancestor *out, int max);

/*
 * Done with a child (its segment let go, and holding the execution lock of
 * request number next_request already): offer this worker to its pair's
 * next child at once, while it still resets its session, so that the next
 * child of a busy parent finds it, still awake, rather than starting or
 * waking another worker.  A new parent only presets the worker's queue
 * endpoints and sends its request; the worker reads it after the reset.
 * Returns false, giving the slot up, if the worker must exit instead (it
 * is not reusable, or the slot was given to another pair).  The price of
 * offering early: should the reset fail (the worker then exits), a parent
 * that took the worker meanwhile sees its child's worker end abnormally.
 */
bool		pool_worker_offer(bool reusable, uint32 next_request);

/*
 * After pool_worker_offer: wait for the next assignment.  Returns the DSM
 * handle of the next child, or DSM_HANDLE_INVALID when the worker should
 * exit (it was not offered, idle timeout, or the slot was given to another
 * pair).
 */
dsm_handle	pool_worker_next();

/* The assignment a worker was started for. */
dsm_handle	pool_worker_first();

} // namespace child_txn
