/*
 * module.cpp
 *		Module entry: load-time checks, settings and shared memory.
 */
#include "pg/postgres_headers.hpp"

#include "child/child.hpp"
#include "gc/queue.hpp"
#include "settings.hpp"

extern "C"
{
PG_MODULE_MAGIC;

/* PostgreSQL 15's fmgr.h does not declare it; it must have C linkage. */
extern PGDLLEXPORT void _PG_init(void);
}

static shmem_request_hook_type prev_shmem_request_hook = nullptr;
static shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

/* Ask for our shared memory and LWLocks (postmaster, at startup). */
static void
child_txn_shmem_request()
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(child_txn::pool_shmem_size());
	RequestNamedLWLockTranche(child_txn::kPoolTranche, 1);
	RequestAddinShmemSpace(child_txn::gc::shmem_size());
	RequestNamedLWLockTranche(child_txn::gc::kQueueTranche, 1);
}

/* Create or attach to our shared memory, once per process. */
static void
child_txn_shmem_startup()
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	child_txn::pool_shmem_init();
	child_txn::gc::shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * _PG_init
 *		child_txn needs shared memory and background workers, both of which
 *		can only be set up at server start: refuse any other way of loading.
 */
extern "C" void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("child_txn must be loaded via shared_preload_libraries"),
				 errhint("Add child_txn to shared_preload_libraries in "
						 "postgresql.conf and restart the server.")));

	child_txn::settings::define();

	RegisterXactCallback(child_txn::child_xact_callback, nullptr);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = child_txn_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = child_txn_shmem_startup;
}
