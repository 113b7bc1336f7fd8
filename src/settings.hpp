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

/* child_txn.max_workers_per_pool: workers of one (database, login); 0: any. */
extern int	max_workers_per_pool;

/* child_txn.child_deadlock_timeout: deadlock_timeout inside children (ms). */
extern int	child_deadlock_timeout;

/* child_txn.max_depth: how deeply children may nest. */
extern int	max_depth;

/* child_txn.queue_size: group-commit write slots, cluster-wide (restart). */
extern int	queue_size;

/* child_txn.queue_memory: kB of shared memory for queued rows (restart). */
extern int	queue_memory;

/* child_txn.max_batch_size: rows per group-commit batch, 0 = no limit. */
extern int	max_batch_size;

/* child_txn.max_batch_delay: ms a batch may wait to grow, 0 = none. */
extern int	max_batch_delay;

/*
 * child_txn.nowait_batch_delay: ms the group-commit worker lets writes nobody
 * waits for gather before committing them, 0 = none.
 */
extern int	nowait_batch_delay;

/*
 * child_txn.deferred_queue_share: percent of the group-commit queue (slots
 * or memory) deferred writes may hold before appends without waiting to
 * their tables wait for what blocks them; 100 = no limit.
 */
extern int	deferred_queue_share;

/* child_txn.row_lock_wait: ms a batch waits for a row lock before deferring. */
extern int	row_lock_wait;

/* child_txn.queue_wait_timeout: ms an appender waits for queue space. */
extern int	queue_wait_timeout;

/*
 * child_txn.drain_timeout: ms a group-commit worker told to stop (SIGTERM)
 * goes on applying the writes queued before that; 0 = exit at once.
 */
extern int	drain_timeout;

/* child_txn.spin_wait: µs a waiter polls before it sleeps, 0 = never. */
extern int	spin_wait;

/* Define the parameters; called once from _PG_init. */
void		define();

/*
 * In a background worker of ours: reread the configuration file if a SIGHUP
 * asked for it.  reloads counts the rereads of this process.
 */
void		reload_if_pending();
extern unsigned long reloads;

} // namespace settings
} // namespace child_txn
