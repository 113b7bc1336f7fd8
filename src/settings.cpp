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

int			max_children = 64;
int			child_deadlock_timeout = 100;
int			max_depth = 8;

void
define()
{
	DefineCustomIntVariable(
		"child_txn.max_children",
		"Maximum number of child transactions open at once, cluster-wide.",
		"Each open child also occupies one background worker process, so "
		"max_worker_processes must leave room for them.",
		&max_children, 64, 1, 10000, PGC_POSTMASTER, 0, nullptr, nullptr,
		nullptr);

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
