/*
 * settings.cpp
 *		Definitions of the child_txn.* configuration parameters.
 */
#include "pg/postgres_headers.hpp"

#include "settings.hpp"

namespace child_txn
{
namespace settings
{

int			max_workers = 16;
int			worker_idle_timeout = 60000;
int			worker_wait_timeout = 10000;
int			child_deadlock_timeout = 100;
int			max_depth = 8;

void
define()
{
	DefineCustomIntVariable(
		"child_txn.max_workers",
		"Maximum number of child transaction workers, cluster-wide.",
		"Each open child runs in one worker; idle workers stay pooled for "
		"reuse.  Workers are background workers, so max_worker_processes "
		"must leave room for them.",
		&max_workers, 16, 1, 10000, PGC_POSTMASTER, 0, nullptr, nullptr,
		nullptr);

	DefineCustomIntVariable(
		"child_txn.worker_idle_timeout",
		"How long an idle pooled child worker waits for work before it exits.",
		"0 keeps idle workers until they are needed elsewhere.",
		&worker_idle_timeout, 60000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
		nullptr, nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.worker_wait_timeout",
		"How long a new child waits for a free worker when all are busy.",
		"After this the child fails with an insufficient_resources error.",
		&worker_wait_timeout, 10000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS,
		nullptr, nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.child_deadlock_timeout",
		"deadlock_timeout used inside child transactions.",
		"Kept shorter than the parent's deadlock_timeout so that, when a "
		"parent and its child deadlock, the child detects the cycle first "
		"and the error returns to the parent.  The smaller of this and the "
		"parent's deadlock_timeout is used.",
		&child_deadlock_timeout, 100, 1, INT_MAX / 1000, PGC_SUSET,
		GUC_UNIT_MS, nullptr, nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.max_depth",
		"Maximum nesting depth of child transactions.",
		"A child of an ordinary session is at depth 1; a child started "
		"inside a child is one deeper.",
		&max_depth, 8, 1, 100, PGC_SUSET, 0, nullptr, nullptr, nullptr);

	MarkGUCPrefixReserved("child_txn");
}

} // namespace settings
} // namespace child_txn
