/*
 * module.cpp
 *		Module entry: load-time checks, settings and shared memory.
 */
#include "pg/postgres_headers.hpp"

#include "child/child.hpp"
#include "gc/queue.hpp"
#include "heap/am.hpp"
#include "pg/spin.hpp"
#include "settings.hpp"

extern "C"
{
PG_MODULE_MAGIC;

/* PostgreSQL 15's fmgr.h does not declare it; it must have C linkage. */
extern PGDLLEXPORT void _PG_init(void);
}

static shmem_request_hook_type prev_shmem_request_hook = nullptr;
static ProcessUtility_hook_type prev_process_utility_hook = nullptr;
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
	RequestAddinShmemSpace(child_txn::pg::spin_shmem_size());
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
	child_txn::pg::spin_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/* The database a utility statement needs to itself (no other backends). */
static const char *
database_to_vacate(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_DropdbStmt:
			return castNode(DropdbStmt, stmt)->dbname;
		case T_AlterDatabaseStmt:
			return castNode(AlterDatabaseStmt, stmt)->dbname;
		case T_RenameStmt:
			if (castNode(RenameStmt, stmt)->renameType == OBJECT_DATABASE)
				return castNode(RenameStmt, stmt)->subname;
			return nullptr;
		case T_CreatedbStmt:
			{
				ListCell   *lc;

				foreach(lc, castNode(CreatedbStmt, stmt)->options)
				{
					DefElem    *d = lfirst_node(DefElem, lc);

					if (strcmp(d->defname, "template") == 0 && d->arg != nullptr)
						return defGetString(d);
				}
				return "template1";
			}
		default:
			return nullptr;
	}
}

/* Could the current user run this statement against database db? */
static bool
may_vacate(Node *stmt, Oid db)
{
	if (superuser() || pg_database_ownercheck(db, GetUserId()))
		return true;
	if (IsA(stmt, CreatedbStmt) && have_createdb_privilege())
	{
		HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(db));
		bool		is_template = false;

		if (HeapTupleIsValid(tup))
		{
			is_template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
			ReleaseSysCache(tup);
		}
		return is_template;
	}
	return false;
}

/*
 * DROP DATABASE, ALTER DATABASE, renaming a database and copying it as a
 * template wait for every other backend of the database to leave.  Our idle
 * pooled workers and an idle group-commit worker are such backends; ask
 * them to go first, so that the statement does not fail because of them.
 */
static void
child_txn_process_utility(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	const char *dbname = database_to_vacate(pstmt->utilityStmt);

	if (dbname != nullptr)
	{
		Oid			db = get_database_oid(dbname, true);

		/*
		 * Only for somebody who may run the statement at all (the owner, or
		 * a superuser; for a template, anyone allowed to copy it), so that
		 * nobody can make the workers of a database leave just by trying.
		 */
		if (OidIsValid(db) && may_vacate(pstmt->utilityStmt, db))
		{
			child_txn::pool_retire_database(db);
			child_txn::gc::retire_database(db);
		}
	}
	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
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

	child_txn::heap::install_hooks();

	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = child_txn_process_utility;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = child_txn_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = child_txn_shmem_startup;
}
