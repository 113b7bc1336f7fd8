/*
 * registry.cpp
 *		Shared-memory registry of open child transactions (see registry.hpp).
 */
#include "child/registry.hpp"

#include "settings.hpp"

namespace child_txn
{

static ChildRegistry *registry = nullptr;

Size
registry_shmem_size()
{
	return add_size(offsetof(ChildRegistry, slots),
					mul_size(sizeof(ChildSlot), settings::max_children));
}

void
registry_shmem_init()
{
	bool		found;

	registry = static_cast<ChildRegistry *>(
		ShmemInitStruct("child_txn registry", registry_shmem_size(), &found));
	if (!found)
	{
		memset(registry, 0, registry_shmem_size());
		registry->lock = &(GetNamedLWLockTranche(kRegistryTranche))->lock;
		pg_atomic_init_u32(&registry->next_child_id, 1);
		registry->nslots = settings::max_children;
	}
}

/* Make sure the registry exists; it does whenever we were preloaded. */
static void
check_registry()
{
	if (registry == nullptr)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("child_txn is not loaded through shared_preload_libraries"),
				 errhint("Add child_txn to shared_preload_libraries in "
						 "postgresql.conf and restart the server.")));
}

ChildSlot *
registry_claim(uint32 parent_child_id, int32 depth)
{
	ChildSlot  *slot = nullptr;

	check_registry();
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < registry->nslots; i++)
	{
		if (registry->slots[i].child_id == 0)
		{
			slot = &registry->slots[i];
			break;
		}
	}
	if (slot != nullptr)
	{
		uint32		id;

		/* Ids are positive int4 values so that handles fit an integer. */
		do
			id = pg_atomic_fetch_add_u32(&registry->next_child_id, 1) & 0x7FFFFFFF;
		while (id == 0);
		slot->child_id = id;
		slot->parent_child_id = parent_child_id;
		slot->parent_pid = MyProcPid;
		slot->worker_pid = 0;
		slot->database_id = MyDatabaseId;
		slot->user_id = GetSessionUserId();
		slot->depth = depth;
		slot->state = static_cast<int32>(ChildState::Starting);
		slot->started_at = GetCurrentTimestamp();
	}
	LWLockRelease(registry->lock);

	if (slot == nullptr)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many open child transactions"),
				 errdetail("All %d child transaction slots are in use.",
						   registry->nslots),
				 errhint("End some child transactions, or raise "
						 "child_txn.max_children (requires a restart).")));
	return slot;
}

void
registry_release(ChildSlot *slot)
{
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	memset(slot, 0, sizeof(ChildSlot));
	LWLockRelease(registry->lock);
}

void
registry_set_state(ChildSlot *slot, ChildState state)
{
	pg_write_barrier();
	slot->state = static_cast<int32>(state);
}

void
registry_set_worker(ChildSlot *slot, int32 pid)
{
	pg_write_barrier();
	slot->worker_pid = pid;
}

ChildSlot *
registry_lookup(uint32 child_id)
{
	check_registry();
	for (int i = 0; i < registry->nslots; i++)
		if (registry->slots[i].child_id == child_id)
			return &registry->slots[i];
	return nullptr;
}

} // namespace child_txn

/* ---- SQL: child_txn._children() feeds the child_txn.children view ---- */

extern "C"
{
PG_FUNCTION_INFO_V1(child_txn_children);
}

/* Name shown by the view for a ChildState. */
static const char *
state_name(int32 state)
{
	using child_txn::ChildState;
	switch (static_cast<ChildState>(state))
	{
		case ChildState::Free:
			return "free";
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
 *		One row per open child: a consistent copy taken under the registry
 *		lock, then returned through a tuplestore.
 */
extern "C" Datum
child_txn_children(PG_FUNCTION_ARGS)
{
	using namespace child_txn;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	check_registry();
	InitMaterializedSRF(fcinfo, 0);

	int			n = registry->nslots;
	ChildSlot  *copy = (ChildSlot *) palloc(sizeof(ChildSlot) * n);

	LWLockAcquire(registry->lock, LW_SHARED);
	memcpy(copy, registry->slots, sizeof(ChildSlot) * n);
	LWLockRelease(registry->lock);

	for (int i = 0; i < n; i++)
	{
		const ChildSlot *s = &copy[i];
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
		values[7] = CStringGetTextDatum(state_name(s->state));
		values[8] = TimestampTzGetDatum(s->started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
