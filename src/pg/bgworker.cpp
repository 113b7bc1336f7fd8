/*
 * bgworker.cpp
 *		Describing one of child_txn's dynamic background workers.
 */
#include "pg/postgres_headers.hpp"

#include "pg/bgworker.hpp"

namespace child_txn
{

void
describe_worker(BackgroundWorker *worker, const char *function,
				const char *type, int index, uint32 generation,
				pid_t notify_pid)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_ConsistentState;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker->bgw_library_name, "child_txn", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s %d", type, index);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
	worker->bgw_main_arg = Int32GetDatum(index);
	memcpy(worker->bgw_extra, &generation, sizeof(generation));
	worker->bgw_notify_pid = notify_pid;
}

} // namespace child_txn
