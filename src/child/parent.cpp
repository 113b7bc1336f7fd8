/*
 * parent.cpp
 *		The parent side of a child transaction: get a pooled worker, send it
 *		requests, wait for them in the lock manager, relay what comes back;
 *		and the SQL functions begin/exec/query/commit/rollback/run.
 *
 * See protocol.hpp for the protocol and the waits.  This file talks to
 * PostgreSQL only, in C style: nothing with a destructor lives in a frame an
 * ERROR can cross.
 */
#include "child/child.hpp"
#include "heap/intents.hpp"
#include "pg/bgworker.hpp"
#include "pg/spin.hpp"

#include "settings.hpp"

namespace child_txn
{

/* Rows of a query() result on their way into the caller's tuplestore. */
struct RowSink
{
	Tuplestorestate *store;
	TupleDesc	desc;
	AttInMetadata *attinmeta;
	MemoryContext row_cxt;		/* reset after each row */
	int			result_columns; /* of the last row description; -1 = none */
};

namespace
{

/* This session's open children (each in its segment's context). */
ChildConn **open_children = nullptr;
int			n_open = 0;
int			open_capacity = 0;

void
remember_child(ChildConn *conn)
{
	if (n_open == open_capacity)
	{
		int			newcap = open_capacity == 0 ? 8 : open_capacity * 2;

		if (open_children == nullptr)
			open_children = static_cast<ChildConn **>(
				MemoryContextAlloc(TopMemoryContext, sizeof(ChildConn *) * newcap));
		else
			open_children = static_cast<ChildConn **>(
				repalloc(open_children, sizeof(ChildConn *) * newcap));
		open_capacity = newcap;
	}
	open_children[n_open++] = conn;
}

void
forget_child(ChildConn *conn)
{
	for (int i = 0; i < n_open; i++)
	{
		if (open_children[i] == conn)
		{
			open_children[i] = open_children[--n_open];
			return;
		}
	}
}

/*
 * Is pid a live background worker?  A worker's pid in a header outlives
 * the worker (request_inflight stays set after an interrupted request),
 * and once it exits the number may belong to any process of the server's
 * user, for which SIGUSR2 could mean something else or, outside
 * PostgreSQL, the end.  Background workers other than ours ignore SIGUSR2.
 */
bool
is_live_background_worker(int32 pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	return proc != nullptr && proc->isBackgroundWorker;
}

/*
 * Mark the child of segment header hdr abandoned (from now on it can never
 * commit) and, if a request is in flight, ask its worker to cancel the
 * statement (SIGUSR2, which the worker ignores unless it still serves this
 * child).  Not once the worker is done with this child, nor if it is gone.
 */
void
abandon(ChildHeader *hdr)
{
	bool		inflight;
	bool		committing;
	bool		done;
	int32		pid;

	SpinLockAcquire(&hdr->mutex);
	inflight = hdr->request_inflight;
	committing = hdr->commit_started;
	done = hdr->worker_done;
	hdr->abandoned = true;
	pid = hdr->worker_pid;
	SpinLockRelease(&hdr->mutex);

	if (inflight && !committing && !done && pid != 0 &&
		is_live_background_worker(pid))
		(void) kill(pid, SIGUSR2);
}

/*
 * Let go of a child's queues.  A child that ended (its worker said so, or
 * exited) needs no detach: its worker has let go of them already or is
 * about to, and telling it would only wake it up for nothing.  The handles
 * are not tied to the segment (shm_mq_attach without one), so nothing runs
 * for them later; their memory, with a buffer for a large message, goes
 * with their context.
 */
void
release_queues(ChildConn *conn)
{
	if (conn->request_mqh == nullptr)
		return;					/* done already (parent_on_detach) */
	if (!conn->ended)
	{
		shm_mq_detach(conn->request_mqh);
		shm_mq_detach(conn->response_mqh);
	}
	conn->request_mqh = nullptr;
	conn->response_mqh = nullptr;
	MemoryContextReset(conn->queue_cxt);
}

/*
 * We let go of a segment (at backend exit, or dropping a spare): abandon
 * what is running, and tell a worker that keeps it mapped that it may go.
 */
void
parent_on_detach(dsm_segment *seg, Datum arg)
{
	ChildHeader *hdr = reinterpret_cast<ChildHeader *>(DatumGetPointer(arg));

	abandon(hdr);
	/*
	 * A child still open here (the end of the transaction normally ends
	 * them all first) must see us go: its worker may be waiting for a
	 * request.
	 */
	for (int i = 0; i < n_open; i++)
		if (open_children[i]->hdr == hdr && open_children[i]->request_mqh != nullptr)
			release_queues(open_children[i]);
	SpinLockAcquire(&hdr->mutex);
	hdr->parent_released = true;
	SpinLockRelease(&hdr->mutex);
}

/*
 * Segments are mapped for the session and reused: creating and destroying
 * one per child costs a visible share of a small child's time.  A segment
 * is reused only once the worker that served it is done with its queues
 * and header (worker_done); a few spares are kept, the rest let go of (a
 * worker may keep one mapped a little longer: worker.cpp, map_segment).
 */
struct Spare
{
	dsm_segment *seg;
	MemoryContext cxt;			/* the parent's memory for the child it
								 * serves: reset when it serves the next */
	MemoryContext queue_cxt;	/* the child's queue handles: reset when
								 * the parent lets go of the queues */
	ChildHeader *hdr;
	shm_mq	   *request_mq;
	shm_mq	   *response_mq;
	char	   *gucspace;
	Size		guc_capacity;
};

constexpr int kMaxSpares = 4;
Spare		spares[kMaxSpares];
int			n_spares = 0;

/* Is a spare's last worker done with it? */
bool
spare_reusable(const Spare &sp)
{
	bool		done;

	SpinLockAcquire(&sp.hdr->mutex);
	done = sp.hdr->worker_done;
	SpinLockRelease(&sp.hdr->mutex);
	return done;
}

/* Keep a segment for a later child, or destroy it if there are enough. */
void
keep_spare(const Spare &sp)
{
	if (n_spares == kMaxSpares)
	{
		/* Make room: drop a spare still in use by its worker, else the oldest. */
		int			victim = 0;

		for (int i = 0; i < n_spares; i++)
			if (!spare_reusable(spares[i]))
			{
				victim = i;
				break;
			}
		dsm_detach(spares[victim].seg);
		MemoryContextDelete(spares[victim].cxt);
		MemoryContextDelete(spares[victim].queue_cxt);
		for (int j = victim + 1; j < n_spares; j++)
			spares[j - 1] = spares[j];
		n_spares--;
	}
	spares[n_spares++] = sp;
}

/*
 * Forget a child: abandon it, let go of its queues (the worker sees the
 * detach and rolls back unless it committed) and keep its segment as a
 * spare.
 */
void
child_discard(ChildConn *conn)
{
	forget_child(conn);

	/*
	 * A worker we registered that the postmaster never started (it could
	 * not fork, or found no room) leaves its pool slot Starting, and only
	 * that worker would have freed it.
	 */
	if (conn->worker != nullptr)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(conn->worker, &pid) == BGWH_STOPPED)
			pool_unassign(conn->where);
	}
	if (conn->seg != nullptr)
	{
		Spare		sp = {conn->seg, conn->cxt, conn->queue_cxt, conn->hdr,
						  conn->request_mq,
						  conn->response_mq, conn->gucspace,
						  conn->guc_capacity};

		abandon(conn->hdr);
		release_queues(conn);
		keep_spare(sp);
	}
	conn->seg = nullptr;
	conn->hdr = nullptr;
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

/* Has the worker attached to our queues (header flag worker_attached)? */
bool
worker_attached(ChildConn *conn)
{
	bool		attached;

	SpinLockAcquire(&conn->hdr->mutex);
	attached = conn->hdr->worker_attached;
	SpinLockRelease(&conn->hdr->mutex);
	return attached;
}

/* Can we count on the worker's exit to detach our queues? */
bool
peer_known(const ChildConn *conn)
{
	return conn->worker != nullptr || conn->peer_attached;
}

/*
 * A queue operation on a pooled worker we did not start ourselves would
 * block, and the worker may not have attached yet (nor ever, if it died
 * first: nothing would then detach the queue).  Returns false if it no
 * longer serves us; true once it has attached (peer_attached), or after
 * waiting up to 100 ms for either, for the caller to try again.
 */
bool
await_peer(ChildConn *conn)
{
	if (worker_attached(conn))
	{
		conn->peer_attached = true;
		return true;
	}
	if (!pool_serves(conn->where, conn->child_id))
		return false;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 100L, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	return true;
}

/*
 * Receive one message from the child.  Once the worker has attached to the
 * queue its exit detaches the queue, which ends the wait; before that, see
 * await_peer.
 */
shm_mq_result
receive(ChildConn *conn, Size *nbytes, void **data)
{
	for (;;)
	{
		shm_mq_result res = shm_mq_receive(conn->response_mqh, nbytes, data,
										   !peer_known(conn));

		if (res != SHM_MQ_WOULD_BLOCK)
			return res;
		if (!await_peer(conn))
			return SHM_MQ_DETACHED;
	}
}

/*
 * Send a request.  A pooled worker we did not start ourselves may not have
 * attached yet (it attaches when the request wakes it), and may die before
 * it does, which nothing would tell the queue: a request too large for the
 * queue is then sent piecewise, checking that the worker still serves us,
 * as receive() does.  (A request that fits goes in at once.)
 */
shm_mq_result
send_request(ChildConn *conn, shm_mq_iovec *iov, int iovcnt)
{
	for (;;)
	{
		shm_mq_result res = shm_mq_sendv(conn->request_mqh, iov, iovcnt,
										 !peer_known(conn), true);

		if (res != SHM_MQ_WOULD_BLOCK)
			return res;
		if (!await_peer(conn))
			return SHM_MQ_DETACHED;
	}
}

/* A row description: remember its width; a new result replaces the old. */
void
sink_row_description(RowSink *sink, StringInfo msg)
{
	sink->result_columns = pq_getmsgint(msg, 2);
	tuplestore_clear(sink->store);
}

/* A data row: build a tuple of the caller's column types from the text. */
void
sink_data_row(RowSink *sink, StringInfo msg)
{
	MemoryContext old;
	int			nfields = pq_getmsgint(msg, 2);
	char	  **values;
	HeapTuple	tuple;

	if (nfields != sink->desc->natts)
		return;					/* reported after 'Z' */
	old = MemoryContextSwitchTo(sink->row_cxt);
	values = static_cast<char **>(palloc(sizeof(char *) * nfields));
	for (int i = 0; i < nfields; i++)
	{
		int			len = pq_getmsgint(msg, 4);

		if (len < 0)
			values[i] = nullptr;
		else
			values[i] = pnstrdup(pq_getmsgbytes(msg, len), len);
	}
	tuple = BuildTupleFromCStrings(sink->attinmeta, values);
	tuplestore_puttuple(sink->store, tuple);
	MemoryContextSwitchTo(old);
	MemoryContextReset(sink->row_cxt);
}

/*
 * Read the child's answer up to 'Z'.  Notices are re-emitted at once; the
 * first error is raised after 'Z' (or the detach), so the queue stays in
 * step.  sql is the request's text, for error positions.
 */
RequestResult
read_response(ChildConn *conn, const char *sql, RowSink *sink)
{
	RequestResult result = {0, false, kTxnIdle};
	ErrorData  *error = nullptr;

	for (;;)
	{
		Size		nbytes;
		void	   *data;
		StringInfoData msg;
		char		msgtype;

		if (receive(conn, &nbytes, &data) != SHM_MQ_SUCCESS)
		{
			bool		committed;

			/* The worker is gone, and with it the child. */
			conn->request_pending = false;
			conn->ended = true;
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
			case 'T':
				if (sink != nullptr)
					sink_row_description(sink, &msg);
				break;
			case 'D':
				if (sink != nullptr && error == nullptr)
					sink_data_row(sink, &msg);
				break;
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
				conn->request_pending = false;
				conn->ended = result.txn_status == kTxnIdle;
				SpinLockAcquire(&conn->hdr->mutex);
				conn->hdr->request_inflight = false;
				SpinLockRelease(&conn->hdr->mutex);
				if (error != nullptr)
					rethrow_child_error(error, conn->child_id, sql);
				return result;
			default:
				/* 'C' command tags: the count comes with 'Z'. */
				break;
		}
	}
}

/*
 * Wait until the child has finished request number `request`: a
 * lock-manager wait for ShareLock on its execution lock, so the deadlock
 * detector sees us waiting for the child.  lock_timeout is for lock waits
 * the user asked for; the child's own statements obey it, the wait for the
 * child does not (statement_timeout and cancel still apply).  If the child
 * has answered already, there is no wait and no lock to take.
 */
void
wait_for_child(ChildConn *conn, uint32 request)
{
	int			saved_lock_timeout = LockTimeout;
	LOCKTAG		tag;

	set_exec_locktag(&tag, MyDatabaseId, conn->where.slot,
					 conn->where.generation, request);
	/*
	 * Usually the answer is quick: poll for it first (see spin.hpp).  Once
	 * the worker has answered it has released the lock, so there is no
	 * wait left to show the lock manager, and taking the lock would only
	 * cost both of us its partition lock.
	 */
	if (pg::spin_until([conn, request] {
			return pg_atomic_read_u32(&conn->hdr->answered) == request + 1;
		}))
		return;
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

/* Start a new worker in the slot we were given. */
void
start_worker(ChildConn *conn)
{
	BackgroundWorker worker;

	describe_worker(&worker, "child_txn_worker_main", "child_txn worker",
					conn->where.slot, conn->where.generation, MyProcPid);
	if (!RegisterDynamicBackgroundWorker(&worker, &conn->worker))
	{
		pool_unassign(conn->where);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a child transaction: no background worker slot is free"),
				 errhint("Raise max_worker_processes (currently %d) to leave "
						 "room for child transaction workers, or end other "
						 "background workers.  Changing it requires a restart.",
						 max_worker_processes)));
	}
	shm_mq_set_handle(conn->request_mqh, conn->worker);
	shm_mq_set_handle(conn->response_mqh, conn->worker);
}

/*
 * A segment for a new child, laid out (header, room for the parent's
 * settings, two queues) and mapped for the session: a reusable spare, or a
 * new one.
 */
Spare
get_segment(Size guc_len)
{
	Spare		sp;
	shm_toc_estimator estimator;
	Size		segsize;
	shm_toc    *toc;

	/*
	 * The most recently kept first: its worker is the one most likely
	 * still awake (see spin.hpp), and pool_assign prefers it.
	 */
	for (int i = n_spares - 1; i >= 0; i--)
	{
		if (spares[i].guc_capacity >= guc_len && spare_reusable(spares[i]))
		{
			sp = spares[i];
			for (int j = i + 1; j < n_spares; j++)
				spares[j - 1] = spares[j];
			n_spares--;
			MemoryContextReset(sp.cxt);
			return sp;
		}
	}

	/* Room for the settings to grow a little, so the segment stays reusable. */
	sp.guc_capacity = guc_len + 4096;
	shm_toc_initialize_estimator(&estimator);
	shm_toc_estimate_chunk(&estimator, sizeof(ChildHeader));
	shm_toc_estimate_chunk(&estimator, sp.guc_capacity);
	shm_toc_estimate_chunk(&estimator, kRequestQueueSize);
	shm_toc_estimate_chunk(&estimator, kResponseQueueSize);
	shm_toc_estimate_keys(&estimator, 4);
	segsize = shm_toc_estimate(&estimator);

	sp.seg = dsm_create(segsize, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (sp.seg == nullptr)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a child transaction: too many dynamic "
						"shared memory segments"),
				 errhint("End some child transactions, or raise "
						 "max_connections.  Idle child workers keep up to "
						 "four segments each; child_txn.worker_idle_timeout "
						 "bounds how long.")));
	dsm_pin_mapping(sp.seg);
	toc = shm_toc_create(kTocMagic, dsm_segment_address(sp.seg), segsize);
	sp.hdr = static_cast<ChildHeader *>(shm_toc_allocate(toc, sizeof(ChildHeader)));
	memset(sp.hdr, 0, sizeof(ChildHeader));
	SpinLockInit(&sp.hdr->mutex);
	shm_toc_insert(toc, kKeyHeader, sp.hdr);
	sp.gucspace = static_cast<char *>(shm_toc_allocate(toc, sp.guc_capacity));
	shm_toc_insert(toc, kKeyGucState, sp.gucspace);
	sp.request_mq = static_cast<shm_mq *>(shm_toc_allocate(toc, kRequestQueueSize));
	shm_toc_insert(toc, kKeyRequestQueue, sp.request_mq);
	sp.response_mq = static_cast<shm_mq *>(shm_toc_allocate(toc, kResponseQueueSize));
	shm_toc_insert(toc, kKeyResponseQueue, sp.response_mq);
	on_dsm_detach(sp.seg, parent_on_detach, PointerGetDatum(sp.hdr));
	sp.cxt = AllocSetContextCreate(TopMemoryContext, "child_txn child",
								   ALLOCSET_SMALL_SIZES);
	sp.queue_cxt = AllocSetContextCreate(TopMemoryContext, "child_txn queues",
										 ALLOCSET_SMALL_SIZES);
	return sp;
}

/*
 * Under the pool lock, when an idle worker is taken for our child (see
 * pool_assign): make it the receiver of our requests and the sender of our
 * responses now.  Were the worker to do it when it attaches, its
 * shm_mq_set_sender would wake us up, waiting for its answer, for nothing.
 */
void
preset_endpoints(PGPROC *worker, void *arg)
{
	ChildConn  *conn = static_cast<ChildConn *>(arg);

	shm_mq_set_receiver(conn->request_mq, worker);
	shm_mq_set_sender(conn->response_mq, worker);
	SpinLockAcquire(&conn->hdr->mutex);
	conn->hdr->endpoints_preset = true;
	SpinLockRelease(&conn->hdr->mutex);
}

} // namespace

static RequestResult exchange(ChildConn *conn, RequestCode code,
							  const char *sql, RowSink *sink, bool handshake);

ChildConn *
child_launch(int isolation_level)
{
	Size		guc_len;
	dsm_segment *seg;
	ChildHeader *hdr;
	shm_mq	   *request_mq;
	shm_mq	   *response_mq;
	ChildConn  *conn;
	ChildConn  *volatile registered = nullptr;
	volatile bool worker_given = false;	/* a worker has the segment */
	Oid			current_user;
	int			sec_context;

	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot start a child transaction within a "
						"security-restricted operation")));
	/* (a worker could not take on the caller's transaction_read_only) */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot start a child transaction during recovery"),
				 errhint("Start child transactions on the primary server.")));
	if (self_depth + 1 > settings::max_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("child transactions nested too deeply"),
				 errdetail("This child would be at depth %d; "
						   "child_txn.max_depth is %d.",
						   self_depth + 1, settings::max_depth),
				 errhint("Raise child_txn.max_depth, or start the child from "
						 "an outer transaction.")));

	/* A segment: header, the parent's settings, two queues. */
	guc_len = EstimateGUCStateSpace();
	Spare		sp = get_segment(guc_len);

	/*
	 * Everything the parent keeps about the child (queue handles, the worker
	 * handle) lives in the segment's context, until the segment serves
	 * another child.
	 */
	MemoryContext old_cxt = MemoryContextSwitchTo(sp.cxt);

	seg = sp.seg;
	hdr = sp.hdr;
	/* its last worker, done with it (or 0 for a new segment) */
	int32		last_worker = hdr->worker_pid;

	/* Until the child is set up, an error must not leave the segment behind. */
	PG_TRY();
	{
		memset(hdr, 0, sizeof(ChildHeader));
		SpinLockInit(&hdr->mutex);
		pg_atomic_init_u32(&hdr->answered, 0);
		hdr->child_id = pool_next_child_id();
		hdr->depth = self_depth + 1;
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

		SerializeGUCState(sp.guc_capacity, sp.gucspace);

		request_mq = shm_mq_create(sp.request_mq, kRequestQueueSize);
		shm_mq_set_sender(request_mq, MyProc);
		response_mq = shm_mq_create(sp.response_mq, kResponseQueueSize);
		shm_mq_set_receiver(response_mq, MyProc);

		conn = static_cast<ChildConn *>(palloc0(sizeof(ChildConn)));
		conn->child_id = hdr->child_id;
		conn->seg = seg;
		conn->hdr = hdr;
		conn->request_mq = request_mq;
		conn->response_mq = response_mq;
		conn->cxt = sp.cxt;
		conn->gucspace = sp.gucspace;
		conn->guc_capacity = sp.guc_capacity;
		conn->owner_user_id = current_user;
		conn->owner_sec_context = sec_context;
		/* not tied to the segment: see release_queues */
		conn->queue_cxt = sp.queue_cxt;
		MemoryContextSwitchTo(conn->queue_cxt);
		conn->request_mqh = shm_mq_attach(request_mq, nullptr, nullptr);
		conn->response_mqh = shm_mq_attach(response_mq, nullptr, nullptr);
		MemoryContextSwitchTo(sp.cxt);
		remember_child(conn);
		registered = conn;

		/*
		 * A worker: an idle one of our pool, or a new one.  An idle one
		 * wakes up at our first request (or at child_discard's detach).
		 */
		conn->where = pool_assign(dsm_segment_handle(seg), conn->child_id,
								  self_child_id, self_depth + 1, last_worker,
								  preset_endpoints, conn);
		if (conn->where.needs_start)
			start_worker(conn);
		else
		{
			SpinLockAcquire(&hdr->mutex);
			hdr->worker_pid = conn->where.worker_pid;
			SpinLockRelease(&hdr->mutex);
		}
		worker_given = true;
	}
	PG_CATCH();
	{
		/* sp.cxt outlives the error handling: do not leave it current */
		MemoryContextSwitchTo(old_cxt);
		if (registered != nullptr && !worker_given)
		{
			/* No worker will ever be done with it: say so for it. */
			SpinLockAcquire(&hdr->mutex);
			hdr->worker_done = true;
			SpinLockRelease(&hdr->mutex);
		}
		if (registered != nullptr)
			child_discard(registered);
		else
		{
			/* No worker was given this segment: it can serve again. */
			hdr->worker_done = true;
			keep_spare(sp);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	MemoryContextSwitchTo(old_cxt);

	/*
	 * A new worker announces itself once it has set the child up; an idle
	 * one sets the child up as part of its first request (see protocol.hpp).
	 */
	conn->next_request = conn->where.next_request;
	if (conn->where.needs_start)
		(void) exchange(conn, RequestCode::Start, "", nullptr, true);
	else
		pool_set_child_state(conn->where, conn->child_id, ChildState::Idle);
	return conn;
}

/*
 * One exchange with the child: send request `code` and wait for it in the
 * lock manager, then read the answer.  A handshake only reads the 'Z' a
 * worker we started says once it has set our child up: a wait on the
 * queue, not on a lock, since the new worker holds nothing we need and its
 * death ends the wait (the queue has its worker handle).
 */
static RequestResult
exchange(ChildConn *conn, RequestCode code, const char *sql, RowSink *sink,
		 bool handshake)
{
	RequestResult result;
	uint32		request;
	Size		intents_len = 0;
	char	   *volatile intents = nullptr;

	/*
	 * What the child must see of our (and our ancestors') writes; nothing
	 * for requests that run no statement, so that a child can always be
	 * rolled back.
	 */
	if (!handshake && code != RequestCode::Rollback &&
		code != RequestCode::Start)
		intents = heap::publish(&intents_len);
	request = handshake ? 0 : conn->next_request++;

	pool_set_child_state(conn->where, conn->child_id,
						 handshake || code == RequestCode::Start ?
						 ChildState::Starting :
						 code == RequestCode::Commit ? ChildState::Committing :
						 code == RequestCode::Rollback ? ChildState::Ending :
						 ChildState::Running);
	SpinLockAcquire(&conn->hdr->mutex);
	conn->hdr->request_inflight = true;
	SpinLockRelease(&conn->hdr->mutex);
	conn->request_pending = true;

	PG_TRY();
	{
		if (!handshake)
		{
			shm_mq_iovec iov[4];
			char		codebyte = static_cast<char>(code);
			uint32		len32 = static_cast<uint32>(intents_len);

			iov[0].data = &codebyte;
			iov[0].len = 1;
			iov[1].data = reinterpret_cast<const char *>(&len32);
			iov[1].len = sizeof(len32);
			iov[2].data = intents;
			iov[2].len = intents_len;
			iov[3].data = sql;
			iov[3].len = strlen(sql) + 1;
			conn->requested = true;
			if (send_request(conn, iov, 4) != SHM_MQ_SUCCESS)
				report_worker_gone(conn->child_id);
			wait_for_child(conn, request);
		}
		result = read_response(conn, handshake ? nullptr : sql, sink);
	}
	PG_CATCH();
	{
		/*
		 * Interrupted before the answer, the child cannot be trusted on; an
		 * error that ended it leaves nothing to keep either.
		 */
		if (conn->request_pending || conn->ended)
			child_discard(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (conn->ended)
		child_discard(conn);
	else
		pool_set_child_state(conn->where, conn->child_id, ChildState::Idle);
	return result;
}

RequestResult
child_request(ChildConn *conn, RequestCode code, const char *sql,
			  RowSink *sink)
{
	return exchange(conn, code, sql, sink, false);
}

ChildConn *
child_lookup(int32 handle)
{
	int32		owner;

	for (int i = 0; i < n_open; i++)
		if (open_children[i]->child_id == static_cast<uint32>(handle))
			return open_children[i];
	if (handle > 0 && pool_find_child(static_cast<uint32>(handle), &owner) &&
		owner != MyProcPid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("child transaction %d belongs to another session",
						handle),
				 errhint("A handle can only be used in the session that "
						 "called child_txn.begin().")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("child transaction %d does not exist or has ended", handle),
			 errhint("Handles come from child_txn.begin() and stay valid until "
					 "child_txn.commit() or child_txn.rollback(), an error "
					 "that ends the child, or the end of the transaction that "
					 "began it.")));
	pg_unreachable();
}

void
child_xact_callback(XactEvent event, void *arg)
{
	if (n_open == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			while (n_open > 0)
			{
				ChildConn  *conn = open_children[n_open - 1];

				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("child transaction %u was still open at the end "
								"of its parent transaction and was rolled back",
								conn->child_id),
						 errhint("End children with child_txn.commit() or "
								 "child_txn.rollback() before the parent "
								 "transaction ends.")));
				child_discard(conn);
			}
			break;
		default:
			break;
	}
}

} // namespace child_txn

/* ---- SQL-callable functions ---- */

extern "C"
{
PG_FUNCTION_INFO_V1(child_txn_begin);
PG_FUNCTION_INFO_V1(child_txn_exec);
PG_FUNCTION_INFO_V1(child_txn_query);
PG_FUNCTION_INFO_V1(child_txn_commit);
PG_FUNCTION_INFO_V1(child_txn_rollback);
PG_FUNCTION_INFO_V1(child_txn_run);
}

using namespace child_txn;

/*
 * May code running in security context `driver` drive a child begun in
 * context `child` (the same user)?  Only if that gives it nothing its own
 * context forbids: the restrictions it is under (inside a SECURITY DEFINER
 * function: no SET ROLE; a security-restricted operation) must be the
 * child's too, and the child must not skip row security where the driver
 * may not.  So a child begun inside a SECURITY DEFINER function can be
 * used after it returns, but code of such a function cannot drive a child
 * begun outside it: through the child it could SET ROLE to the session
 * user's other roles.
 */
static bool
context_allows(int child, int driver)
{
	constexpr int restrictions = SECURITY_LOCAL_USERID_CHANGE |
		SECURITY_RESTRICTED_OPERATION;
	constexpr int known = restrictions | SECURITY_NOFORCE_RLS;

	if ((driver & restrictions) & ~child)
		return false;
	if ((child & SECURITY_NOFORCE_RLS) && !(driver & SECURITY_NOFORCE_RLS))
		return false;
	return (child & ~known) == (driver & ~known);
}

/*
 * The handle argument, which must not be null.
 *
 * A child runs as the user and in the security context that began it, so
 * only that user, in a context no less restricted, may make it run
 * statements or commit: otherwise a handle begun in a SECURITY DEFINER
 * function would let the function's caller run statements as the
 * function's owner, and code running as a table's owner in a
 * security-restricted operation (an index expression during ANALYZE, say)
 * could drive a child of the session that runs it, or end it: rollback
 * is checked too, so that such code cannot silently throw away work that
 * the child's owner means to commit later.  (The end of the parent
 * transaction rolls back whatever is left open.)
 */
static ChildConn *
handle_arg(FunctionCallInfo fcinfo)
{
	ChildConn  *conn;
	Oid			user_id;
	int			sec_context;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("child transaction handle must not be null")));
	conn = child_lookup(PG_GETARG_INT32(0));
	GetUserIdAndSecContext(&user_id, &sec_context);
	if (user_id != conn->owner_user_id)
	{
		const char *owner = GetUserNameFromId(conn->owner_user_id, true);
		const char *current = GetUserNameFromId(user_id, true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("child transaction %u belongs to role \"%s\", not to the current role \"%s\"",
						conn->child_id, owner != nullptr ? owner : "?",
						current != nullptr ? current : "?"),
				 errdetail("A child runs as the role that began it; only that "
						   "role can run statements in it, commit it or roll "
						   "it back."),
				 errhint("Use the child as the role that began it; the end "
						 "of the current transaction rolls back children "
						 "left open.")));
	}
	if (!context_allows(conn->owner_sec_context, sec_context))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("child transaction %u cannot be used in this security context",
						conn->child_id),
				 errdetail("It was begun outside the SECURITY DEFINER function "
						   "or security-restricted operation running now, and "
						   "would let it escape that function's or operation's "
						   "restrictions."),
				 errhint("Begin the child inside the function; the end of "
						 "the current transaction rolls back children left "
						 "open.")));
	return conn;
}

/* The SQL text argument number n, which must not be null. */
static char *
sql_arg(FunctionCallInfo fcinfo, int n, const char *function)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the SQL text for %s must not be null", function)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * child_txn.begin(isolation text default null) -> integer
 *		Start a child of the current transaction; return its handle.
 */
extern "C" Datum
child_txn_begin(PG_FUNCTION_ARGS)
{
	int			level = XACT_READ_COMMITTED;

	if (!PG_ARGISNULL(0))
	{
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

		if (pg_strcasecmp(name, "read committed") == 0)
			level = XACT_READ_COMMITTED;
		else if (pg_strcasecmp(name, "repeatable read") == 0)
			level = XACT_REPEATABLE_READ;
		else if (pg_strcasecmp(name, "serializable") == 0)
			level = XACT_SERIALIZABLE;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid isolation level for a child transaction: \"%s\"",
							name),
					 errhint("Use 'read committed', 'repeatable read' or "
							 "'serializable'.")));
	}
	/*
	 * Like BEGIN, which does nothing until the first statement: a pooled
	 * worker sets the child up as part of its first request (a new worker
	 * confirms its set-up at once anyway).  Saves a round trip per child.
	 */
	PG_RETURN_INT32(static_cast<int32>(child_launch(level)->child_id));
}

/*
 * child_txn.exec(handle integer, sql text) -> bigint
 *		Run statements in the child; rows processed by the last one.
 */
extern "C" Datum
child_txn_exec(PG_FUNCTION_ARGS)
{
	ChildConn  *conn = handle_arg(fcinfo);
	char	   *sql = sql_arg(fcinfo, 1, "child_txn.exec()");

	PG_RETURN_INT64(child_request(conn, RequestCode::Exec, sql, nullptr).nprocessed);
}

/*
 * child_txn.query(handle integer, sql text) -> setof record
 *		Run a query in the child and return its rows, typed by the column
 *		list at the call site.  Rows stream into a tuplestore (spilling to
 *		disk past work_mem); with several statements, the last result counts.
 */
extern "C" Datum
child_txn_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ChildConn  *conn = handle_arg(fcinfo);
	char	   *sql = sql_arg(fcinfo, 1, "child_txn.query()");
	RowSink		sink;
	MemoryContext old;

	InitMaterializedSRF(fcinfo, 0);
	sink.store = rsinfo->setResult;
	sink.desc = rsinfo->setDesc;
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	sink.attinmeta = TupleDescGetAttInMetadata(rsinfo->setDesc);
	MemoryContextSwitchTo(old);
	sink.row_cxt = AllocSetContextCreate(CurrentMemoryContext,
										 "child_txn query row",
										 ALLOCSET_DEFAULT_SIZES);
	sink.result_columns = -1;

	(void) child_request(conn, RequestCode::Query, sql, &sink);
	MemoryContextDelete(sink.row_cxt);

	if (sink.result_columns >= 0 && sink.result_columns != sink.desc->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the column list does not match the child's query result"),
				 errdetail("The query returned %d columns; the column list has %d.",
						   sink.result_columns, sink.desc->natts),
				 errhint("Adjust the column definition list: "
						 "child_txn.query(h, '...') AS t(col type, ...).")));
	return (Datum) 0;
}

/*
 * child_txn.commit(handle integer)
 *		Commit the child.  If a statement in it had failed, it is rolled back
 *		instead and an error says so.
 */
extern "C" Datum
child_txn_commit(PG_FUNCTION_ARGS)
{
	ChildConn  *conn = handle_arg(fcinfo);

	/* A child that never ran anything has nothing to commit. */
	if (!conn->requested)
		child_discard(conn);
	else
		(void) child_request(conn, RequestCode::Commit, "", nullptr);
	PG_RETURN_VOID();
}

/* child_txn.rollback(handle integer): roll the child back. */
extern "C" Datum
child_txn_rollback(PG_FUNCTION_ARGS)
{
	ChildConn  *conn = handle_arg(fcinfo);

	/*
	 * A child that never ran anything is let go of here: its worker sees
	 * the detach and is done, without setting the child up to roll it back.
	 */
	if (!conn->requested)
		child_discard(conn);
	else
		(void) child_request(conn, RequestCode::Rollback, "", nullptr);
	PG_RETURN_VOID();
}

/*
 * child_txn.run(sql text) -> bigint
 *		One autonomous statement (or several, separated by semicolons): begin
 *		a child, run sql in it, commit it, in one round trip.  Returns the rows
 *		processed by the last statement.  The commit stands whatever the
 *		caller does next.
 */
extern "C" Datum
child_txn_run(PG_FUNCTION_ARGS)
{
	char	   *sql = sql_arg(fcinfo, 0, "child_txn.run()");
	ChildConn  *conn = child_launch(XACT_READ_COMMITTED);

	PG_RETURN_INT64(child_request(conn, RequestCode::OneShot, sql, nullptr).nprocessed);
}
