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
int			max_workers_per_pool = 0;
int			child_deadlock_timeout = 100;
int			max_depth = 8;
int			queue_size = 4096;
int			queue_memory = 8192;
int			max_batch_size = 10000;
int			max_batch_delay = 0;
int			nowait_batch_delay = 0;
int			deferred_queue_share = 50;
int			row_lock_wait = 20;
int			queue_wait_timeout = 0;
int			drain_timeout = 10000;
int			spin_wait = 200;
unsigned long reloads = 0;

void
reload_if_pending()
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		reloads++;
	}
}

void
define()
{
	DefineCustomIntVariable(
		"child_txn.spin_wait",
		"Microseconds a child_txn process expecting an answer soon polls "
		"for it before it sleeps.",
		"A parent waiting for its child, an idle child worker, a writer "
		"waiting for group commit and the idle group-commit worker poll, "
		"yielding the CPU, so that the other side need not wake them.  At "
		"most one poller per CPU; polling stops when the CPU is wanted.  "
		"0 never polls.",
		&spin_wait, 200, 0, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

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
		"child_txn.max_workers_per_pool",
		"Maximum number of child workers of one database and login role.",
		"Keeps one application's children from taking every worker: a new "
		"child of a pool at this many workers waits for one of them, like "
		"a child when all workers are busy.  Children of children are not "
		"held back.  0 = only child_txn.max_workers limits them.",
		&max_workers_per_pool, 0, 0, 10000, PGC_SIGHUP, 0, nullptr, nullptr,
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

	DefineCustomIntVariable(
		"child_txn.queue_size",
		"Maximum number of queued group-commit writes, cluster-wide.",
		"A write is one append() call, of one row or of many.  When the "
		"queue is full, appenders wait for room.",
		&queue_size, 4096, 16, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr,
		nullptr);

	DefineCustomIntVariable(
		"child_txn.queue_memory",
		"Shared memory for the rows of queued group-commit writes.",
		"When it is full, appenders wait for room.  One write larger than "
		"half of it is refused.",
		&queue_memory, 8192, 256, INT_MAX / 1024, PGC_POSTMASTER, GUC_UNIT_KB,
		nullptr, nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.max_batch_size",
		"Maximum number of rows the group-commit worker commits in one "
		"transaction.",
		"0 means no limit: a batch takes every write queued when it starts.",
		&max_batch_size, 10000, 0, INT_MAX, PGC_SIGHUP, 0, nullptr, nullptr,
		nullptr);

	DefineCustomIntVariable(
		"child_txn.max_batch_delay",
		"How long the group-commit worker may wait for more writes before "
		"starting a batch.",
		"0 (the default) starts a batch as soon as a write is queued; writes "
		"that arrive while a batch commits form the next batch.",
		&max_batch_delay, 0, 0, 10000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
		nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.nowait_batch_delay",
		"How long the group-commit worker may let writes that nobody waits "
		"for gather before committing them.",
		"Applies while every queued write was appended without waiting and "
		"no flush() waits for one; a waiting append(), a flush(), "
		"max_batch_size rows, a half-full queue or a session waiting for "
		"room in the queue end it early.  Fewer, "
		"larger batches flush the WAL less often.  0 (the default) starts "
		"at once.",
		&nowait_batch_delay, 0, 0, 10000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
		nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.deferred_queue_share",
		"Percentage of the group-commit queue that deferred writes may take "
		"before further writes to their tables wait.",
		"Once writes deferred on a locked table (or row) hold this share of "
		"the queue's slots or memory, an append without waiting to a table "
		"with deferred writes first waits, in the lock manager, for the "
		"lock that blocks them, so that other tables keep room in the "
		"queue.  100 turns this off: deferred writes may fill the queue.",
		&deferred_queue_share, 50, 1, 100, PGC_SIGHUP, 0, nullptr,
		nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.row_lock_wait",
		"How long a group-commit batch waits for a lock inside a write "
		"before it defers that write.",
		"A write that waits for a lock (a row, for example a unique key "
		"inserted by an uncommitted transaction, or a referenced table) is "
		"set aside so that the other writes of the batch commit; its caller "
		"then waits for that lock itself.",
		&row_lock_wait, 20, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
		nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.queue_wait_timeout",
		"How long append() waits for room in a full group-commit queue.",
		"0 waits as long as it takes (statement_timeout and cancel still "
		"apply).  After the timeout the write is not queued and append() "
		"fails with an insufficient_resources error.",
		&queue_wait_timeout, 0, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr,
		nullptr, nullptr);

	DefineCustomIntVariable(
		"child_txn.drain_timeout",
		"How long a group-commit worker told to stop goes on applying the "
		"writes queued before it exits.",
		"On SIGTERM (a smart or fast server shutdown, pg_terminate_backend) "
		"the worker finishes its batch and applies the writes that were "
		"queued when the signal came, then exits; after this long it exits "
		"at once and logs how many it left.  A second SIGTERM, or DROP "
		"DATABASE of its database, also ends it at once.  0 exits at once: "
		"at a server shutdown, writes queued without waiting are then lost.",
		&drain_timeout, 10000, 0, 3600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
		nullptr, nullptr);

	MarkGUCPrefixReserved("child_txn");
}

} // namespace settings
} // namespace child_txn
