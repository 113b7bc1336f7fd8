/*
 * pool.cpp
 *		The shared-memory pool of child workers (see pool.hpp), and the SQL
 *		function behind the child_txn.children view.
 */
#include "child/pool.hpp"
#include "pg/spin.hpp"

#include "settings.hpp"

namespace child_txn
{

namespace
{

Pool	   *pool = nullptr;

/* The slot this worker process runs in, and its generation. */
PoolSlot   *my_slot = nullptr;
uint32		my_generation = 0;

/* Make sure the pool exists; it does whenever we were preloaded. */
void
check_pool()
{
	if (pool == nullptr)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("child_txn is not loaded through shared_preload_libraries"),
				 errhint("Add child_txn to shared_preload_libraries in "
						 "postgresql.conf and restart the server.")));
}

/* Fill the child fields of a slot (pool lock held). */
void
describe_child(PoolSlot *slot, uint32 child_id, uint32 parent_child_id,
			   int32 depth)
{
	TimestampTz now = GetCurrentTimestamp();

	/* the spinlock: a parent's pool_set_child_state tests child_id */
	SpinLockAcquire(&slot->mutex);
	slot->child_id = child_id;
	slot->child_state = static_cast<int32>(ChildState::Starting);
	SpinLockRelease(&slot->mutex);
	slot->parent_child_id = parent_child_id;
	slot->parent_pid = MyProcPid;
	slot->depth = depth;
	slot->started_at = now;
}

/* Forget the child of a slot (pool lock held). */
void
clear_child(PoolSlot *slot)
{
	slot->assignment = DSM_HANDLE_INVALID;
	SpinLockAcquire(&slot->mutex);
	slot->child_id = 0;
	slot->child_state = static_cast<int32>(ChildState::None);
	SpinLockRelease(&slot->mutex);
	slot->parent_child_id = 0;
	slot->parent_pid = 0;
	slot->depth = 0;
}

/* Make a slot free for another process (pool lock held). */
void
free_slot(PoolSlot *slot)
{
	slot->generation++;
	slot->state = static_cast<int32>(SlotState::Free);
	slot->worker_pid = 0;
	slot->pgprocno = -1;
	slot->next_request = 0;
	slot->database_id = InvalidOid;
	slot->user_id = InvalidOid;
	clear_child(slot);
}

/* At worker exit: free our slot unless it was already given away. */
void
worker_exit_callback(int code, Datum arg)
{
	if (my_slot == nullptr)
		return;
	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	if (my_slot->generation == my_generation)
		free_slot(my_slot);
	LWLockRelease(pool->lock);
	my_slot = nullptr;
	ConditionVariableBroadcast(&pool->worker_freed);
}

} // namespace

Size
pool_shmem_size()
{
	return add_size(offsetof(Pool, slots),
					mul_size(sizeof(PoolSlot), settings::max_workers));
}

void
pool_shmem_init()
{
	bool		found;

	pool = static_cast<Pool *>(
		ShmemInitStruct("child_txn pool", pool_shmem_size(), &found));
	if (!found)
	{
		memset(pool, 0, pool_shmem_size());
		pool->lock = &(GetNamedLWLockTranche(kPoolTranche))->lock;
		ConditionVariableInit(&pool->worker_freed);
		pg_atomic_init_u32(&pool->next_child_id, 1);
		pool->nslots = settings::max_workers;
		for (int i = 0; i < pool->nslots; i++)
		{
			SpinLockInit(&pool->slots[i].mutex);
			pool->slots[i].pgprocno = -1;
		}
	}
}

uint32
pool_next_child_id()
{
	uint32		id;

	check_pool();
	do
		id = pg_atomic_fetch_add_u32(&pool->next_child_id, 1) & 0x7FFFFFFF;
	while (id == 0);
	return id;
}

WorkerAssignment
pool_assign(dsm_handle assignment, uint32 child_id, uint32 parent_child_id,
			int32 depth, int32 preferred_pid,
			void (*prepare) (PGPROC *worker, void *arg), void *prepare_arg)
{
	WorkerAssignment result = {-1, 0, false, 0, 0};
	Oid			user = GetAuthenticatedUserId();
	TimestampTz deadline = TimestampTzPlusMilliseconds(
		GetCurrentTimestamp(), settings::worker_wait_timeout);
	int			latch_procno = -1;
	bool		capped = false;	/* last try: our pool was at its cap */

	check_pool();
	ConditionVariablePrepareToSleep(&pool->worker_freed);
	for (;;)
	{
		PoolSlot   *chosen = nullptr;
		PoolSlot   *preferred = nullptr;
		PoolSlot   *free_one = nullptr;
		PoolSlot   *stranger = nullptr;
		int			ours = 0;	/* workers of our pool, in any state */

		LWLockAcquire(pool->lock, LW_EXCLUSIVE);
		for (int i = 0; i < pool->nslots; i++)
		{
			PoolSlot   *s = &pool->slots[i];
			SlotState	st = static_cast<SlotState>(s->state);

			if (st != SlotState::Free && s->database_id == MyDatabaseId &&
				s->user_id == user)
				ours++;
			if (st == SlotState::Idle && s->database_id == MyDatabaseId &&
				s->user_id == user)
			{
				/*
				 * The preferred one (see pool.hpp), else the most recently
				 * idle one: its caches are warmest.
				 */
				if (preferred_pid != 0 && s->worker_pid == preferred_pid)
					preferred = s;
				else if (chosen == nullptr || s->idle_since > chosen->idle_since)
					chosen = s;
			}
			else if (st == SlotState::Free && free_one == nullptr)
				free_one = s;
			else if (st == SlotState::Idle &&
					 (stranger == nullptr || s->idle_since < stranger->idle_since))
				stranger = s;
		}
		if (preferred != nullptr)
			chosen = preferred;
		/*
		 * No new worker for a pool at its cap: wait for one of its own.
		 * Not for a child's child: it is in its parent's pool, and waiting
		 * for one of those workers (its ancestors' among them) could only
		 * time out.
		 */
		capped = chosen == nullptr && depth == 1 &&
			settings::max_workers_per_pool > 0 &&
			ours >= settings::max_workers_per_pool;
		if (capped)
			free_one = stranger = nullptr;
		if (chosen != nullptr)
		{
			chosen->state = static_cast<int32>(SlotState::Busy);
			chosen->assignment = assignment;
			describe_child(chosen, child_id, parent_child_id, depth);
			result.slot = static_cast<int>(chosen - pool->slots);
			result.generation = chosen->generation;
			result.worker_pid = chosen->worker_pid;
			result.next_request = chosen->next_request;
			/* not woken: see pool.hpp */
			prepare(&ProcGlobal->allProcs[chosen->pgprocno], prepare_arg);
		}
		else if (free_one != nullptr || stranger != nullptr)
		{
			PoolSlot   *s = free_one != nullptr ? free_one : stranger;

			/* An idle worker of another pair makes room: it will see the
			 * new generation and exit. */
			if (s == stranger)
				latch_procno = s->pgprocno;
			free_slot(s);
			s->state = static_cast<int32>(SlotState::Starting);
			s->database_id = MyDatabaseId;
			s->user_id = user;
			s->assignment = assignment;
			describe_child(s, child_id, parent_child_id, depth);
			result.slot = static_cast<int>(s - pool->slots);
			result.generation = s->generation;
			result.needs_start = true;
		}
		LWLockRelease(pool->lock);

		if (result.slot >= 0)
			break;

		long		remaining = TimestampDifferenceMilliseconds(
			GetCurrentTimestamp(), deadline);

		if (remaining <= 0 && capped)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not start a child transaction: the %d child "
							"transaction workers allowed per database and role "
							"are busy", settings::max_workers_per_pool),
					 errdetail("Waited %d ms for one of them to become free.",
							   settings::worker_wait_timeout),
					 errhint("Raise child_txn.max_workers_per_pool or "
							 "child_txn.worker_wait_timeout, or end open "
							 "children sooner.")));
		}
		if (remaining <= 0)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not start a child transaction: all %d child "
							"transaction workers are busy", pool->nslots),
					 errdetail("Waited %d ms for a worker to become free.",
							   settings::worker_wait_timeout),
					 errhint("Raise child_txn.max_workers (requires a restart) "
							 "or child_txn.worker_wait_timeout.")));
		}
		(void) ConditionVariableTimedSleep(&pool->worker_freed, remaining,
										   PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();

	if (latch_procno >= 0)
		SetLatch(&ProcGlobal->allProcs[latch_procno].procLatch);
	return result;
}

void
pool_retire_database(Oid database_id)
{
	int		   *wake = static_cast<int *>(palloc(sizeof(int) * pool->nslots));
	int			nwake = 0;

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	for (int i = 0; i < pool->nslots; i++)
	{
		PoolSlot   *s = &pool->slots[i];

		if (s->state != static_cast<int32>(SlotState::Idle) ||
			s->database_id != database_id)
			continue;
		/* a new generation: the idle worker sees it and exits */
		wake[nwake++] = s->pgprocno;
		free_slot(s);
	}
	LWLockRelease(pool->lock);
	for (int i = 0; i < nwake; i++)
		SetLatch(&ProcGlobal->allProcs[wake[i]].procLatch);
	if (nwake > 0)
		ConditionVariableBroadcast(&pool->worker_freed);
	pfree(wake);
}

void
pool_unassign(const WorkerAssignment &a)
{
	PoolSlot   *s = &pool->slots[a.slot];
	bool		freed = false;

	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	if (s->generation == a.generation &&
		s->state == static_cast<int32>(SlotState::Starting))
	{
		free_slot(s);
		freed = true;
	}
	LWLockRelease(pool->lock);
	if (freed)
		ConditionVariableBroadcast(&pool->worker_freed);
}

bool
pool_serves(const WorkerAssignment &a, uint32 child_id)
{
	PoolSlot   *s = &pool->slots[a.slot];
	bool		serves;

	LWLockAcquire(pool->lock, LW_SHARED);
	serves = s->generation == a.generation && s->child_id == child_id &&
		(s->state == static_cast<int32>(SlotState::Busy) ||
		 s->state == static_cast<int32>(SlotState::Starting));
	LWLockRelease(pool->lock);
	return serves;
}

void
pool_set_child_state(const WorkerAssignment &a, uint32 child_id,
					 ChildState state)
{
	PoolSlot   *s = &pool->slots[a.slot];

	SpinLockAcquire(&s->mutex);
	if (s->child_id == child_id)
		s->child_state = static_cast<int32>(state);
	SpinLockRelease(&s->mutex);
}

bool
pool_find_child(uint32 child_id, int32 *parent_pid)
{
	bool		found = false;

	check_pool();
	LWLockAcquire(pool->lock, LW_SHARED);
	for (int i = 0; i < pool->nslots; i++)
	{
		if (pool->slots[i].child_id == child_id)
		{
			*parent_pid = pool->slots[i].parent_pid;
			found = true;
			break;
		}
	}
	LWLockRelease(pool->lock);
	return found;
}

PoolSlot *
pool_worker_attach(int index, uint32 generation)
{
	PoolSlot   *s;

	check_pool();
	if (index < 0 || index >= pool->nslots)
		elog(FATAL, "child_txn worker started for invalid pool slot %d", index);
	s = &pool->slots[index];
	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	if (s->generation != generation ||
		s->state != static_cast<int32>(SlotState::Starting))
	{
		/* The parent gave up on us before we started. */
		LWLockRelease(pool->lock);
		proc_exit(0);
	}
	s->state = static_cast<int32>(SlotState::Busy);
	s->worker_pid = MyProcPid;
	s->pgprocno = MyProc->pgprocno;
	my_slot = s;
	my_generation = generation;
	LWLockRelease(pool->lock);
	before_shmem_exit(worker_exit_callback, (Datum) 0);
	return s;
}

int
pool_worker_slot()
{
	return static_cast<int>(my_slot - pool->slots);
}

int
pool_worker_ancestors(Ancestor *out, int max)
{
	int			n = 0;

	LWLockAcquire(pool->lock, LW_SHARED);
	int32		pid = my_slot != nullptr ? my_slot->parent_pid : 0;

	while (pid != 0 && n < max)
	{
		Ancestor   *a = &out[n++];

		a->pid = pid;
		a->slot = -1;
		a->generation = 0;
		pid = 0;

		/* is that one a child worker serving a child?  then its parent */
		for (int i = 0; i < pool->nslots; i++)
		{
			const PoolSlot *s = &pool->slots[i];

			if (s->worker_pid == a->pid &&
				s->state == static_cast<int32>(SlotState::Busy))
			{
				a->slot = i;
				a->generation = s->generation;
				pid = s->parent_pid;
				break;
			}
		}
	}
	LWLockRelease(pool->lock);
	return n;
}

dsm_handle
pool_worker_first()
{
	dsm_handle	h;

	LWLockAcquire(pool->lock, LW_SHARED);
	h = my_slot->generation == my_generation ? my_slot->assignment :
		DSM_HANDLE_INVALID;
	LWLockRelease(pool->lock);
	return h;
}

bool
pool_worker_offer(bool reusable, uint32 next_request)
{
	if (my_slot == nullptr)
		return false;			/* given up already */
	LWLockAcquire(pool->lock, LW_EXCLUSIVE);
	if (my_slot->generation != my_generation || !reusable)
	{
		if (my_slot->generation == my_generation)
			free_slot(my_slot);
		my_slot = nullptr;
		LWLockRelease(pool->lock);
		ConditionVariableBroadcast(&pool->worker_freed);
		return false;
	}
	my_slot->state = static_cast<int32>(SlotState::Idle);
	my_slot->next_request = next_request;
	clear_child(my_slot);
	my_slot->idle_since = GetCurrentTimestamp();
	LWLockRelease(pool->lock);
	ConditionVariableBroadcast(&pool->worker_freed);
	return true;
}

dsm_handle
pool_worker_next()
{
	if (my_slot == nullptr)
		return DSM_HANDLE_INVALID;		/* not offered: exit */
	/* Only now, reset, is the worker idle for pg_stat_activity. */
	pgstat_report_activity(STATE_IDLE, nullptr);
	set_ps_display("idle");

	/*
	 * Look before the first sleep: a parent may have taken us while we
	 * reset, and the reset may have consumed its wake-up (anything that
	 * waits on our latch resets it, a synchronous-replication wait for
	 * instance).
	 */
	for (bool first = true;; first = false)
	{
		int			rc = 0;
		long		timeout = settings::worker_idle_timeout;
		dsm_handle	next = DSM_HANDLE_INVALID;
		bool		leave = false;

		if (!first)
		{
			(void) pg::spin_for_latch();
			rc = WaitLatch(MyLatch,
						   WL_LATCH_SET | WL_EXIT_ON_PM_DEATH |
						   (timeout > 0 ? WL_TIMEOUT : 0),
						   timeout, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			settings::reload_if_pending();
		}

		LWLockAcquire(pool->lock, LW_EXCLUSIVE);
		if (my_slot->generation != my_generation)
			leave = true;		/* retired to make room for another pair */
		else if (my_slot->state == static_cast<int32>(SlotState::Busy))
			next = my_slot->assignment;
		else if ((rc & WL_TIMEOUT) != 0)
		{
			free_slot(my_slot);
			leave = true;
		}
		LWLockRelease(pool->lock);

		if (leave)
		{
			my_slot = nullptr;
			ConditionVariableBroadcast(&pool->worker_freed);
			return DSM_HANDLE_INVALID;
		}
		if (next != DSM_HANDLE_INVALID)
			return next;
	}
}

} // namespace child_txn

/* ---- SQL: child_txn._children() feeds the child_txn.children view ---- */

extern "C"
{
PG_FUNCTION_INFO_V1(child_txn_children);
}

/* Name shown by the view for a ChildState. */
static const char *
child_state_name(int32 state)
{
	using child_txn::ChildState;
	switch (static_cast<ChildState>(state))
	{
		case ChildState::None:
			return "none";
		case ChildState::Starting:
			return "starting";
		case ChildState::Idle:
			return "idle";
		case ChildState::Running:
			return "running";
		case ChildState::Committing:
			return "committing";
		case ChildState::Ending:
			return "ending";
	}
	return "unknown";
}

/*
 * child_txn._children() -> setof record
 *		One row per open child: a consistent copy taken under the pool lock,
 *		then returned through a tuplestore.
 */
extern "C" Datum
child_txn_children(PG_FUNCTION_ARGS)
{
	using namespace child_txn;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	check_pool();
	InitMaterializedSRF(fcinfo, 0);

	int			n = pool->nslots;
	PoolSlot   *copy = (PoolSlot *) palloc(sizeof(PoolSlot) * n);

	LWLockAcquire(pool->lock, LW_SHARED);
	memcpy(copy, pool->slots, sizeof(PoolSlot) * n);
	LWLockRelease(pool->lock);

	for (int i = 0; i < n; i++)
	{
		const PoolSlot *s = &copy[i];
		Datum		values[9];
		bool		nulls[9] = {false};

		if (s->child_id == 0)
			continue;
		values[0] = Int32GetDatum((int32) s->child_id);
		values[1] = Int32GetDatum((int32) s->parent_child_id);
		nulls[1] = (s->parent_child_id == 0);
		values[2] = Int32GetDatum(s->parent_pid);
		values[3] = Int32GetDatum(s->worker_pid);
		nulls[3] = (s->worker_pid == 0);
		values[4] = ObjectIdGetDatum(s->database_id);
		values[5] = ObjectIdGetDatum(s->user_id);
		values[6] = Int32GetDatum(s->depth);
		values[7] = CStringGetTextDatum(child_state_name(s->child_state));
		values[8] = TimestampTzGetDatum(s->started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
