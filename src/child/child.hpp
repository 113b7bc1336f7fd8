/*
 * child.hpp
 *		Child transactions: the parent side (launch, request, end) and the
 *		identity of the current process when it is itself a child worker.
 */
#pragma once

#include "pg/postgres_headers.hpp"

#include "child/pool.hpp"
#include "child/protocol.hpp"

namespace child_txn
{

/* When this process is a child worker: the child it serves and its depth. */
extern uint32 self_child_id;
extern int32 self_depth;

/* Parent-side connection to one child (in cxt). */
struct ChildConn
{
	uint32		child_id;
	dsm_segment *seg;			/* mapped for the session, reused (parent.cpp) */
	MemoryContext cxt;			/* the segment's: reset when it is reused */
	ChildHeader *hdr;
	shm_mq	   *request_mq;
	shm_mq	   *response_mq;
	char	   *gucspace;		/* room for the parent's settings */
	Size		guc_capacity;
	MemoryContext queue_cxt;	/* the queue handles and their buffers */
	shm_mq_handle *request_mqh;
	shm_mq_handle *response_mqh;
	BackgroundWorkerHandle *worker;	/* only if we started the worker */
	WorkerAssignment where;
	bool		peer_attached;	/* the worker attached to our queues */
	bool		request_pending;	/* a request is out, its 'Z' not read */
	bool		ended;			/* its 'Z' said the child's transaction is over */
	bool		requested;		/* a request (not a handshake) was sent */
	uint32		next_request;	/* number of the next request (from 0) */
	Oid			owner_user_id;	/* the current user that began the child */
	int			owner_sec_context;	/* and its security context */
};

/* Where query() puts the rows of the child's result (see parent.cpp). */
struct RowSink;

/* What a request came back with. */
struct RequestResult
{
	int64		nprocessed;		/* rows processed by the last statement */
	bool		committed;		/* OneShot/Commit: the child committed */
	char		txn_status;		/* kTxnIdle, kTxnOpen or kTxnFailed */
};

/*
 * Start a child of the current transaction at the given isolation level
 * (XACT_READ_COMMITTED, ...) on a pooled worker.  A new worker sets the
 * child up before this returns (so that errors doing so show now); an idle
 * one sets it up as part of the child's first request.  The child is
 * registered as open in this session until it ends; open children are
 * rolled back when the transaction ends.
 */
ChildConn  *child_launch(int isolation_level);

/*
 * Send one request and wait for its result: a lock-manager wait on the
 * child's execution lock, then the child's spooled output.  Notices are
 * re-emitted to our client; the child's error is re-raised with its
 * SQLSTATE, detail, hint and context.  If the wait is interrupted, the
 * child is rolled back and forgotten.  A child whose transaction ended is
 * forgotten too.
 */
RequestResult child_request(ChildConn *conn, RequestCode code, const char *sql,
							RowSink *sink);

/* The open child with this handle, or an error saying why there is none. */
ChildConn  *child_lookup(int32 handle);

/* Transaction callback: roll back children still open at transaction end. */
void		child_xact_callback(XactEvent event, void *arg);

/* Background worker entry point (C linkage; see worker.cpp). */
extern "C" PGDLLEXPORT void child_txn_worker_main(Datum main_arg);

} // namespace child_txn
