/*
 * settings.hpp
 *		The child_txn.* configuration parameters.
 *
 * Every parameter is documented in README.md ("Settings"), with its default
 * and who may change it.
 */
#pragma once

namespace child_txn
{
namespace settings
{

/* child_txn.max_workers: child worker processes, cluster-wide (restart). */
extern int	max_workers;

/* child_txn.worker_idle_timeout: an idle pooled worker exits after (ms). */
extern int	worker_idle_timeout;

/* child_txn.worker_wait_timeout: how long a new child waits for a worker. */
extern int	worker_wait_timeout;

/* child_txn.child_deadlock_timeout: deadlock_timeout inside children (ms). */
extern int	child_deadlock_timeout;

/* child_txn.max_depth: how deeply children may nest. */
extern int	max_depth;

/* Define the parameters; called once from _PG_init. */
void		define();

} // namespace settings
} // namespace child_txn
