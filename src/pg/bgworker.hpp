/*
 * bgworker.hpp
 *		Describing one of child_txn's dynamic background workers.
 */
#pragma once

#include "pg/postgres_headers.hpp"

namespace child_txn
{

/*
 * Fill *worker for a worker of this library that connects to a database,
 * starts once consistent and is never restarted by the postmaster: entry
 * point `function`, backend type `type`, shown as "<type> <index>"; index
 * is also its main argument and generation goes to bgw_extra.
 */
void		describe_worker(BackgroundWorker *worker, const char *function,
							const char *type, int index, uint32 generation,
							pid_t notify_pid);

} // namespace child_txn
