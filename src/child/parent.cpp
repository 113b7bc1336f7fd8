/*
 * parent.cpp
 *		The parent side of a child transaction: launch a worker, send it
 *		requests, wait for them in the lock manager, relay what comes back.
 *
 * See protocol.hpp for the protocol and the waits.  This file talks to
 * PostgreSQL only, in C style: nothing with a destructor lives in a frame an
 * ERROR can cross.
 */
#include "child/child.hpp"

#include "settings.hpp"

namespace child_txn
{

namespace
{

/*
 * Runs when the parent detaches from a child's segment: at child_detach, at
 * the end or abort of the transaction that owns the segment (its resource
 * owner), and at backend exit.  If a request is still in flight the parent
 * has given up on it: mark the child abandoned (so it can never commit from
 * now on) and cancel its statement.  The worker itself notices the detach
 * and rolls back.  Then give the registry slot back.
 */
void
parent_on_detach(dsm_segment *seg, Datum arg)
{
	ChildHeader *hdr = reinterpret_cast<ChildHeader *>(DatumGetPointer(arg));
	bool		inflight;
	bool		committing;
	int32		pid;

	SpinLockAcquire(&hdr->mutex);
	inflight = hdr->request_inflight;
	committing = hdr->commit_started;
	hdr->abandoned = true;
	pid = hdr->worker_pid;
	SpinLockRelease(&hdr->mutex);

	if (inflight && !committing && pid != 0)
		(void) kill(pid, SIGINT);
	if (hdr->slot != nullptr)
	{
		registry_release(hdr->slot);
		hdr->slot = nullptr;
	}
}

/* Raise a child's error here, keeping its SQLSTATE, detail, hint, context. */
[[noreturn]] void
rethrow_child_error(ErrorData *edata, uint32 child_id, const char *sql)
{
	/* A child's FATAL ended the child, not us. */
	edata->elevel = ERROR;
	/* A position in the child's SQL is not a position in our query. */
	if (edata->cursorpos > 0 && sql != nullptr)
	{
		edata->internalpos = edata->cursorpos;
		edata->internalquery = pstrdup(sql);
		edata->cursorpos = 0;
	}
	if (edata->context != nullptr)
		edata->context = psprintf("%s\nchild transaction %u", edata->context,
								  child_id);
	else
		edata->context = psprintf("child transaction %u", child_id);
	ThrowErrorData(edata);
	pg_unreachable();
}

/* Report that a child's worker vanished mid-request. */
[[noreturn]] void
report_worker_gone(uint32 child_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("child transaction %u ended abnormally", child_id),
			 errdetail("Its worker process exited before answering; the "
					   "child's work was rolled back."),
			 errhint("Check the server log for the reason.")));
	pg_unreachable();
}

/*
 * Read the child's answer up to 'Z'.  Notices are re-emitted at once; the
 * first error is raised after 'Z' (or the detach), so the queue stays in
 * step.  sql is the request's text, for error positions.
 */
RequestResult
read_response(ChildConn *conn, const char *sql)
{
	RequestResult result = {0, false, kTxnIdle};
	ErrorData  *error = nullptr;

	for (;;)
	{
		Size		nbytes;
		void	   *data;
		shm_mq_result res;
		StringInfoData msg;
		char		msgtype;

		res = shm_mq_receive(conn->response_mqh, &nbytes, &data, false);
		if (res != SHM_MQ_SUCCESS)
		{
			bool		committed;

			SpinLockAcquire(&conn->hdr->mutex);
			committed = conn->hdr->committed;
			SpinLockRelease(&conn->hdr->mutex);
			if (committed)
			{
				/* It was terminated after committing: the work stands. */
				result.committed = true;
				return result;
			}
			if (error != nullptr)
				rethrow_child_error(error, conn->child_id, sql);
			report_worker_gone(conn->child_id);
		}
		if (nbytes < 1)
			continue;
		msgtype = static_cast<char *>(data)[0];
		msg.data = static_cast<char *>(data) + 1;
		msg.len = static_cast<int>(nbytes - 1);
		msg.maxlen = msg.len;
		msg.cursor = 0;
		switch (msgtype)
		{
			case 'E':
			case 'N':
				{
					ErrorData  *edata = static_cast<ErrorData *>(
						palloc0(sizeof(ErrorData)));

					pq_parse_errornotice(&msg, edata);
					if (msgtype == 'N')
					{
						/* A notice or warning from the child: relay it. */
						if (edata->elevel >= ERROR)
							edata->elevel = WARNING;
						ThrowErrorData(edata);
					}
					else if (error == nullptr)
						error = edata;
					break;
				}
			case kMsgReady:
				if (nbytes - 1 != sizeof(ReadyBody))
					elog(ERROR, "child_txn: malformed ready message");
				{
					ReadyBody	body;

					memcpy(&body, msg.data, sizeof(body));
					result.nprocessed = body.nprocessed;
					result.committed = body.committed;
					result.txn_status = body.txn_status;
				}
				if (error != nullptr)
				{
					SpinLockAcquire(&conn->hdr->mutex);
					conn->hdr->request_inflight = false;
					SpinLockRelease(&conn->hdr->mutex);
					rethrow_child_error(error, conn->child_id, sql);
				}
				return result;
			default:
				/* 'T', 'D', 'C': rows and tags are not used by this request. */
				break;
		}
	}
}

/*
 * Wait until the child has finished the request in flight: a lock-manager
 * wait for ShareLock on its execution lock, so the deadlock detector sees
 * us waiting for the child.  lock_timeout is for lock waits the user
 * asked for; the child's own statements obey it, the wait for the child
 * does not (statement_timeout and cancel still apply).
 */
void
wait_for_child(ChildConn *conn, uint32 request)
{
	int			saved_lock_timeout = LockTimeout;
	LOCKTAG		tag;

	set_exec_locktag(&tag, MyDatabaseId, conn->child_id, request);
	LockTimeout = 0;
	PG_TRY();
	{
		(void) LockAcquire(&tag, ShareLock, false, false);
	}
	PG_FINALLY();
	{
		LockTimeout = saved_lock_timeout;
	}
	PG_END_TRY();
	LockRelease(&tag, ShareLock, false);
}

/* Sign of an unusable worker-start failure, with the usual hint. */
[[noreturn]] void
report_no_worker_slot()
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("could not start a child transaction: no background worker slot is free"),
			 errhint("Raise max_worker_processes (currently %d) to leave room "
					 "for child transaction workers, or end other background "
					 "workers.  Changing it requires a restart.",
					 max_worker_processes)));
	pg_unreachable();
}

} // namespace

ChildConn *
child_launch(int isolation_level)
{
	shm_toc_estimator estimator;
	Size		guc_len;
	Size		segsize;
	dsm_segment *seg;
	shm_toc    *toc;
	ChildHeader *hdr;
	char	   *gucspace;
	shm_mq	   *request_mq;
	shm_mq	   *response_mq;
	BackgroundWorker worker;
	ChildConn  *conn;
	Oid			current_user;
	int			sec_context;

	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot start a child transaction within a "
						"security-restricted operation")));
	if (self_depth + 1 > settings::max_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("child transactions nested too deeply"),
				 errdetail("This child would be at depth %d; "
						   "child_txn.max_depth is %d.",
						   self_depth + 1, settings::max_depth),
				 errhint("Raise child_txn.max_depth, or start the child from "
						 "an outer transaction.")));

	/* Lay out the segment: header, the parent's settings, two queues. */
	guc_len = EstimateGUCStateSpace();
	shm_toc_initialize_estimator(&estimator);
	shm_toc_estimate_chunk(&estimator, sizeof(ChildHeader));
	shm_toc_estimate_chunk(&estimator, guc_len);
	shm_toc_estimate_chunk(&estimator, kRequestQueueSize);
	shm_toc_estimate_chunk(&estimator, kResponseQueueSize);
	shm_toc_estimate_keys(&estimator, 4);
	segsize = shm_toc_estimate(&estimator);

	seg = dsm_create(segsize, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == nullptr)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a child transaction: too many dynamic "
						"shared memory segments"),
				 errhint("End some child transactions, or raise "
						 "max_connections.")));
	toc = shm_toc_create(kTocMagic, dsm_segment_address(seg), segsize);

	hdr = static_cast<ChildHeader *>(shm_toc_allocate(toc, sizeof(ChildHeader)));
	memset(hdr, 0, sizeof(ChildHeader));
	SpinLockInit(&hdr->mutex);
	shm_toc_insert(toc, kKeyHeader, hdr);
	on_dsm_detach(seg, parent_on_detach, PointerGetDatum(hdr));

	hdr->slot = registry_claim(self_child_id, self_depth + 1);
	hdr->child_id = hdr->slot->child_id;
	hdr->parent_child_id = self_child_id;
	hdr->depth = self_depth + 1;
	hdr->parent_pid = MyProcPid;
	hdr->database_id = MyDatabaseId;
	hdr->authenticated_user_id = GetAuthenticatedUserId();
	hdr->outer_user_id = GetCurrentRoleId();
	hdr->outer_is_superuser = session_auth_is_superuser;
	GetUserIdAndSecContext(&current_user, &sec_context);
	hdr->current_user_id = current_user;
	hdr->sec_context = sec_context;
	hdr->isolation_level = isolation_level;
	hdr->deadlock_timeout_ms = Min(DeadlockTimeout,
								   settings::child_deadlock_timeout);
	if (application_name != nullptr)
		strlcpy(hdr->application_name, application_name, NAMEDATALEN);

	gucspace = static_cast<char *>(shm_toc_allocate(toc, guc_len));
	SerializeGUCState(guc_len, gucspace);
	shm_toc_insert(toc, kKeyGucState, gucspace);

	request_mq = shm_mq_create(shm_toc_allocate(toc, kRequestQueueSize),
							   kRequestQueueSize);
	shm_toc_insert(toc, kKeyRequestQueue, request_mq);
	shm_mq_set_sender(request_mq, MyProc);
	response_mq = shm_mq_create(shm_toc_allocate(toc, kResponseQueueSize),
								kResponseQueueSize);
	shm_toc_insert(toc, kKeyResponseQueue, response_mq);
	shm_mq_set_receiver(response_mq, MyProc);

	conn = static_cast<ChildConn *>(palloc0(sizeof(ChildConn)));
	conn->child_id = hdr->child_id;
	conn->seg = seg;
	conn->hdr = hdr;
	conn->request_mqh = shm_mq_attach(request_mq, seg, nullptr);
	conn->response_mqh = shm_mq_attach(response_mq, seg, nullptr);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "child_txn", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "child_txn_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "child_txn worker for PID %d",
			 MyProcPid);
	strlcpy(worker.bgw_type, "child_txn worker", BGW_MAXLEN);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &conn->worker))
		report_no_worker_slot();
	shm_mq_set_handle(conn->request_mqh, conn->worker);
	shm_mq_set_handle(conn->response_mqh, conn->worker);

	/* Wait for the first 'Z': the worker is connected and holds its lock. */
	(void) read_response(conn, nullptr);
	registry_set_worker(hdr->slot, hdr->worker_pid);
	registry_set_state(hdr->slot, ChildState::Idle);
	return conn;
}

RequestResult
child_request(ChildConn *conn, RequestCode code, const char *sql)
{
	shm_mq_iovec iov[2];
	char		codebyte = static_cast<char>(code);
	RequestResult result;

	SpinLockAcquire(&conn->hdr->mutex);
	conn->hdr->request_inflight = true;
	SpinLockRelease(&conn->hdr->mutex);
	registry_set_state(conn->hdr->slot,
					   code == RequestCode::Commit ?
					   ChildState::Committing :
					   code == RequestCode::Rollback ? ChildState::Ending :
					   ChildState::Running);

	iov[0].data = &codebyte;
	iov[0].len = 1;
	iov[1].data = sql;
	iov[1].len = strlen(sql) + 1;
	if (shm_mq_sendv(conn->request_mqh, iov, 2, false, true) != SHM_MQ_SUCCESS)
		report_worker_gone(conn->child_id);

	wait_for_child(conn, conn->next_request++);
	result = read_response(conn, sql);

	SpinLockAcquire(&conn->hdr->mutex);
	conn->hdr->request_inflight = false;
	SpinLockRelease(&conn->hdr->mutex);
	registry_set_state(conn->hdr->slot, ChildState::Idle);
	return result;
}

void
child_detach(ChildConn *conn)
{
	dsm_detach(conn->seg);
	conn->seg = nullptr;
	conn->hdr = nullptr;
}

} // namespace child_txn

/* ---- SQL-callable functions ---- */

extern "C"
{
PG_FUNCTION_INFO_V1(child_txn_run);
}

/*
 * child_txn.run(sql text) -> bigint
 *		One autonomous statement (or several, separated by semicolons): start
 *		a child, run sql in it, commit it.  Returns the rows processed by the
 *		last statement.  The commit stands whatever the caller does next.
 */
extern "C" Datum
child_txn_run(PG_FUNCTION_ARGS)
{
	using namespace child_txn;
	char	   *sql;
	ChildConn  *conn;
	RequestResult result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the SQL text for child_txn.run() must not be null")));
	sql = text_to_cstring(PG_GETARG_TEXT_PP(0));

	conn = child_launch(XACT_READ_COMMITTED);
	result = child_request(conn, RequestCode::OneShot, sql);
	child_detach(conn);
	PG_RETURN_INT64(result.nprocessed);
}
