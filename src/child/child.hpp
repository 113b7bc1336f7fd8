/*
 * child.hpp
 *		Child transactions: the parent side (launch, request, detach) and the
 *		identity of the current process when it is itself a child worker.
 */
#pragma once

#include "pg/postgres_headers.hpp"

#include "child/protocol.hpp"

namespace child_txn
{

/* When this process is a child worker: its handle and depth; else 0. */
extern uint32 self_child_id;
extern int32 self_depth;

/* Parent-side connection to one child (lives in the caller's context). */
struct ChildConn
{
	uint32		child_id;
	dsm_segment *seg;
	ChildHeader *hdr;
	shm_mq_handle *request_mqh;
	shm_mq_handle *response_mqh;
	BackgroundWorkerHandle *worker;
	uint32		next_request;	/* number of the next request (from 0) */
};

/* What a request came back with. */
struct RequestResult
{
	int64		nprocessed;		/* rows processed by the last statement */
	bool		committed;		/* OneShot/Commit: the child committed */
	char		txn_status;		/* kTxnIdle, kTxnOpen or kTxnFailed */
};

/*
 * Start a child of the current transaction, at the given isolation level
 * (XACT_READ_COMMITTED, ...), and wait until it is ready.  Its DSM segment
 * is owned by the current resource owner, so an error or the end of the
 * transaction detaches it, which rolls the child back.
 */
ChildConn  *child_launch(int isolation_level);

/*
 * Send one request and wait for its result: a lock-manager wait on the
 * child's execution lock, then the child's spooled output.  Notices are
 * re-emitted to our client; the child's error is re-raised with its
 * SQLSTATE, detail, hint and context.
 */
RequestResult child_request(ChildConn *conn, RequestCode code, const char *sql);

/* Detach from a child: rolls it back unless it has committed. */
void		child_detach(ChildConn *conn);

/* Background worker entry point (C linkage; see worker.cpp). */
extern "C" PGDLLEXPORT void child_txn_worker_main(Datum main_arg);

} // namespace child_txn
