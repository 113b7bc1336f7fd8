/*
 * registry.hpp
 *		Shared-memory registry of open child transactions.
 *
 * One slot per open child, cluster-wide, sized by child_txn.max_children at
 * server start.  The registry gives each child a cluster-unique id (its
 * handle), bounds how many children can be open, and feeds the
 * child_txn.children view.  Slots are plain data: the registry LWLock guards
 * allocation and release; the owning processes update their own fields
 * (state, worker pid) with single aligned stores, which readers of the view
 * may see a moment late but never torn.
 */
#pragma once

#include "pg/postgres_headers.hpp"

namespace child_txn
{

/* Life cycle of a child as seen by the view. */
enum class ChildState : int32
{
	Free = 0,
	Starting,			/* worker launched, not yet connected */
	Idle,				/* open, waiting for the parent's next request */
	Running,			/* executing a statement for the parent */
	Committing,			/* commit requested and under way */
	Ending,				/* rolling back or shutting down */
};

struct ChildSlot
{
	uint32		child_id;		/* 0 when the slot is free */
	uint32		parent_child_id;	/* 0 for a top-level child */
	int32		parent_pid;
	int32		worker_pid;		/* 0 until the worker has started */
	Oid			database_id;
	Oid			user_id;		/* the parent's session user */
	int32		depth;			/* 1 for a child of an ordinary session */
	int32		state;			/* ChildState */
	TimestampTz started_at;
};

struct ChildRegistry
{
	LWLock	   *lock;
	pg_atomic_uint32 next_child_id;
	int			nslots;
	ChildSlot	slots[FLEXIBLE_ARRAY_MEMBER];
};

/* Size of the registry for child_txn.max_children slots. */
Size		registry_shmem_size();

/* Create or attach to the registry (called from the shmem startup hook). */
void		registry_shmem_init();

/* Name of the registry's LWLock tranche. */
constexpr const char *kRegistryTranche = "child_txn_registry";

/*
 * Claim a slot for a new child of this backend.  Raises
 * ERRCODE_CONFIGURATION_LIMIT_EXCEEDED when every slot is taken.
 */
ChildSlot  *registry_claim(uint32 parent_child_id, int32 depth);

/* Return a slot claimed by registry_claim. */
void		registry_release(ChildSlot *slot);

/* Publish a new state of a slot this process owns. */
void		registry_set_state(ChildSlot *slot, ChildState state);

/* Publish the pid of the worker serving a slot. */
void		registry_set_worker(ChildSlot *slot, int32 pid);

/* Find the slot of a child by id; NULL if it is not open. */
ChildSlot  *registry_lookup(uint32 child_id);

} // namespace child_txn
