/*
 * worker.cpp
 *		The child worker: a pooled background worker that runs child
 *		transactions, one at a time, for parents of one (database,
 *		authenticated user) pair.
 *
 * For each child it attaches to the parent's segment, adopts the parent's
 * identity and settings, opens a transaction block and serves requests
 * until the parent commits, rolls back or goes away; then it resets the
 * session (DISCARD ALL: settings, role, temp tables, prepared statements,
 * cursors, advisory locks, listeners) and waits in the pool for the next
 * child.  The error handling follows PostgresMain: an ERROR
 * longjmps back to the loop, is spooled for the parent, and aborts the
 * child's transaction block (which stays open, failed, as in a client
 * session) or, for a one-shot request, ends it.
 *
 * All output goes through the spool (spool.hpp) and reaches the parent only
 * after the execution lock is released: see protocol.hpp for the protocol.
 *
 * This file talks to PostgreSQL only, in C style: no object with a
 * destructor lives in a frame an ERROR can cross.
 */
#include "child/child.hpp"
#include "gc/queue.hpp"
#include "child/spool.hpp"
#include "heap/am.hpp"
#include "heap/intents.hpp"

#include "pg/spin.hpp"
#include "settings.hpp"

#include "utils/fmgrprotos.h"

namespace child_txn
{

uint32		self_child_id = 0;
int32		self_depth = 0;

namespace
{

/*
 * Set when we rolled the child back because its parent waited for it while
 * it was idle (wait_for_request): the parent's next request on it gets
 * 40P01.
 */
bool		idle_deadlock = false;

/* Where the worker is in serving a request. */
enum class Phase
{
	Idle,				/* waiting for a request */
	Executing,			/* running one, holding the execution lock */
	Finishing,			/* releasing the lock and sending the output */
	Resetting			/* cleaning up after a child */
};

ChildHeader *hdr = nullptr;
/* The header the SIGUSR2 handler looks at (see parent_cancel_handler). */
ChildHeader *volatile cancel_hdr = nullptr;
dsm_segment *child_seg = nullptr;
bool		reusable = true;	/* may serve another child after this one */
bool		offered = false;	/* end_child offered us to the pool again */
bool		taking_up = false;	/* attaching to a new assignment */
shm_mq_handle *request_mqh = nullptr;
shm_mq_handle *response_mqh = nullptr;
uint32		request_number = 0;	/* of the request being served / next */
int			lock_slot = -1;		/* our pool slot: names our execution locks */
Oid			lock_database = InvalidOid;
uint32		lock_generation = 0;	/* our slot's generation */
bool		child_started = false;	/* the child's environment is set up */
constexpr int kMaxAncestors = 128;	/* above child_txn.max_depth's maximum */

/*
 * Settings reuse.  Restoring a parent's settings costs more than the rest of
 * a small child's set-up, and consecutive children of one pool worker
 * usually come with identical settings.  So the worker keeps the parent
 * settings it restored last (with the deadlock_timeout that went with them)
 * and a snapshot of its own settings right after that restore, taken while
 * application_name is the child-independent base_appname.  When a child
 * ends, application_name goes back to base_appname and the settings are
 * compared with the snapshot: if the child changed none (or only inside
 * its transaction, undone since), they are clean, and if the next parent's
 * settings are byte-identical to the last and no configuration reload came
 * in between, the next child's set-up is only its application_name.
 * Otherwise the session is reset in full (DISCARD ALL) and the settings
 * restored.
 */
char	   *last_parent_settings = nullptr;
Size		last_parent_settings_len = 0;
int			last_deadlock_timeout_ms = -1;
char	   *settings_snapshot = nullptr;
Size		settings_snapshot_len = 0;
bool		settings_clean = false;	/* our settings equal the snapshot */
unsigned long clean_as_of_reload = 0;	/* settings::reloads when checked */
char		base_appname[NAMEDATALEN + 16];	/* "<parent's> child_txn" */
bool		handshake = false;	/* announcing a new worker's first child */
MemoryContext request_cxt = nullptr;
volatile Phase phase = Phase::Idle;
RequestCode current_request = RequestCode::Exec;
bool		txn_open = false;	/* the child's transaction block is open */
ReadyBody	ready;

void		adopt_parent_environment();

char	   *serialize_own_settings(Size *len);

/* Are our settings still those of the snapshot taken at the last set-up? */
bool
own_settings_unchanged()
{
	Size		len;
	char	   *now;
	bool		same;

	if (settings_snapshot == nullptr)
		return false;
	now = serialize_own_settings(&len);
	same = len == settings_snapshot_len &&
		memcmp(now, settings_snapshot, len) == 0;
	pfree(now);
	return same;
}

/* Serialize this process's settings into a buffer in TopMemoryContext. */
char *
serialize_own_settings(Size *len)
{
	Size		space = EstimateGUCStateSpace();
	char	   *buf = static_cast<char *>(
		MemoryContextAllocZero(TopMemoryContext, space));
	Size		used;

	SerializeGUCState(space, buf);
	memcpy(&used, buf, sizeof(Size));
	*len = sizeof(Size) + used;
	return buf;
}

/* ---- output redirection: every protocol message goes to the spool ---- */

void
spool_comm_reset()
{
}

int
spool_flush()
{
	return 0;
}

int
spool_flush_if_writable()
{
	return 0;
}

bool
spool_is_send_pending()
{
	return false;
}

int
spool_putmessage(char msgtype, const char *s, size_t len)
{
	worker_spool.append(msgtype, s, len);
	return 0;
}

void
spool_putmessage_noblock(char msgtype, const char *s, size_t len)
{
	worker_spool.append(msgtype, s, len);
}

const PQcommMethods spool_comm_methods = {
	spool_comm_reset, spool_flush, spool_flush_if_writable,
	spool_is_send_pending, spool_putmessage, spool_putmessage_noblock};

/*
 * At exit, hand what is spooled (typically the FATAL that ends us) to the
 * parent without waiting, then release our execution locks.  Registered
 * before InitPostgres, so it runs after ShutdownPostgres has rolled back our
 * transaction.  The release matters: ShutdownPostgres releases session
 * locks of the default lock method only if a transaction was open, and a
 * lock left behind would outlive us in the shared lock table (a parent
 * waiting on it would wait forever, and the next process to get our PGPROC
 * would find it "already held").
 */
void
worker_exit_callback(int code, Datum arg)
{
	if (response_mqh != nullptr && !worker_spool.empty())
		(void) worker_spool.drain(response_mqh, true);
	if (MyProc != nullptr)
		LockReleaseSession(DEFAULT_LOCKMETHOD);
}

/*
 * SIGUSR2: the parent gave up on the request in flight.  The signal may be
 * stale (meant for a child this worker served before), so it only cancels
 * if the child being served now is the abandoned one.
 */
void
parent_cancel_handler(SIGNAL_ARGS)
{
	int			save_errno = errno;
	ChildHeader *h = cancel_hdr;

	if (h != nullptr && h->abandoned)
	{
		InterruptPending = true;
		QueryCancelPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Report our state in pg_stat_activity. */
void
report_idle_state()
{
	BackendState state = STATE_IDLE;

	if (txn_open)
		state = IsAbortedTransactionBlockState() ?
			STATE_IDLEINTRANSACTION_ABORTED : STATE_IDLEINTRANSACTION;
	pgstat_report_activity(state, nullptr);
	set_ps_display(txn_open ? "idle in transaction" : "idle");
}

/*
 * Take execution lock number n (see protocol.hpp), unless we hold it
 * already (a second acquisition would need a second release); never waits
 * in practice.
 */
void
take_exec_lock(uint32 n)
{
	LOCKTAG		tag;

	set_exec_locktag(&tag, lock_database, lock_slot, lock_generation, n);
	if (!LockHeldByMe(&tag, ExclusiveLock))
		(void) LockAcquire(&tag, ExclusiveLock, true, false);
}

/* Drop execution lock number n, unless an abort already did. */
void
drop_exec_lock(uint32 n)
{
	LOCKTAG		tag;

	set_exec_locktag(&tag, lock_database, lock_slot, lock_generation, n);
	if (LockHeldByMe(&tag, ExclusiveLock))
		LockRelease(&tag, ExclusiveLock, true);
}

/*
 * Finish a request: take the next request's execution lock, release this
 * one's (waking the parent), stream the spool, and send 'Z'.  (A new
 * worker's handshake only streams and says 'Z'.)  Cancel interrupts are
 * held: a cancel meant for the finished request must not hit this.  Returns
 * false if the parent is gone.
 */
bool
finish_request()
{
	phase = Phase::Finishing;
	heap::forget();				/* the request is over, commit included */
	if (handshake)
		handshake = false;		/* not a request: no lock changes hands */
	else
	{
		take_exec_lock(request_number + 1);
		drop_exec_lock(request_number);
		request_number++;
		/*
		 * A parent polling for our answer (see wait_for_child) would not
		 * read an answer that may not fit the queue: tell it now.
		 */
		if (!worker_spool.fits(kResponseQueueSize / 2))
			pg_atomic_write_u32(&hdr->answered, request_number);
	}
	if (worker_spool.drain(response_mqh, false) != SHM_MQ_SUCCESS)
		return false;

	ready.txn_status = !txn_open ? kTxnIdle :
		IsAbortedTransactionBlockState() ? kTxnFailed : kTxnOpen;

	shm_mq_iovec iov[2];
	char		type = kMsgReady;

	iov[0].data = &type;
	iov[0].len = 1;
	iov[1].data = reinterpret_cast<const char *>(&ready);
	iov[1].len = sizeof(ready);
	if (shm_mq_sendv(response_mqh, iov, 2, false, true) != SHM_MQ_SUCCESS)
		return false;
	pg_atomic_write_u32(&hdr->answered, request_number);	/* see above */
	phase = Phase::Idle;
	report_idle_state();
	return true;
}

/*
 * Open the child's transaction block at the requested isolation level, in
 * one transaction command, as BEGIN ISOLATION LEVEL does.
 */
void
begin_block()
{
	const char *level = "read committed";

	if (hdr->isolation_level == XACT_REPEATABLE_READ)
		level = "repeatable read";
	else if (hdr->isolation_level == XACT_SERIALIZABLE)
		level = "serializable";
	StartTransactionCommand();
	BeginTransactionBlock();
	(void) set_config_option("transaction_isolation", level, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	CommitTransactionCommand();
	txn_open = true;
}

/*
 * Roll back the child's transaction block, failed or not.  (A commit that
 * failed, say on a deferred constraint, has ended the block already: then
 * there is nothing to roll back, and UserAbortTransactionBlock would only
 * warn "there is no transaction in progress" to the parent's client.)
 */
void
end_block_rollback()
{
	if (IsTransactionBlock())
	{
		StartTransactionCommand();
		UserAbortTransactionBlock(false);
		CommitTransactionCommand();
	}
	txn_open = false;
}

/*
 * Commit the child, unless its parent has given up on it.  The check and the
 * point of no return are one atomic step with the parent's "abandoned" flag.
 */
void
commit_block()
{
	bool		abandoned;

	if (!txn_open)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("child transaction %u has already ended", self_child_id)));
	if (IsAbortedTransactionBlockState())
	{
		end_block_rollback();
		ereport(ERROR,
				(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
				 errmsg("child transaction %u was rolled back", self_child_id),
				 errdetail("An earlier statement in it failed.")));
	}

	SpinLockAcquire(&hdr->mutex);
	abandoned = hdr->abandoned;
	if (!abandoned)
		hdr->commit_started = true;
	SpinLockRelease(&hdr->mutex);
	if (abandoned)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("child transaction %u was abandoned by its parent",
						self_child_id)));

	StartTransactionCommand();
	if (!EndTransactionBlock(false))
		elog(ERROR, "child_txn: transaction block of child %u was not committable",
			 self_child_id);
	CommitTransactionCommand();
	txn_open = false;
	ready.committed = true;

	SpinLockAcquire(&hdr->mutex);
	hdr->committed = true;
	SpinLockRelease(&hdr->mutex);
}

/*
 * Reject, before anything runs, statements that cannot work in a child:
 * ending the transaction from inside (the parent does that with
 * child_txn.commit/rollback), and COPY to or from the client, which a child
 * does not have.  Savepoints are fine: they stay inside the child.
 */
void
check_statements(List *parsetrees)
{
	ListCell   *lc;

	foreach(lc, parsetrees)
	{
		Node	   *stmt = lfirst_node(RawStmt, lc)->stmt;

		if (IsA(stmt, TransactionStmt))
		{
			TransactionStmtKind kind = ((TransactionStmt *) stmt)->kind;

			if (kind != TRANS_STMT_SAVEPOINT && kind != TRANS_STMT_RELEASE &&
				kind != TRANS_STMT_ROLLBACK_TO)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
						 errmsg("%s cannot run inside a child transaction",
								GetCommandTagName(CreateCommandTag(stmt))),
						 errhint("A child ends when its parent calls "
								 "child_txn.commit() or child_txn.rollback(); "
								 "child_txn.run() commits by itself.  "
								 "SAVEPOINT, RELEASE and ROLLBACK TO work "
								 "inside a child.")));
		}
		else if (IsA(stmt, CopyStmt) && ((CopyStmt *) stmt)->filename == nullptr)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("COPY to or from the client cannot run inside a "
							"child transaction"),
					 errhint("Use COPY with a file or a program on the server, "
							 "or INSERT ... SELECT.")));
	}
}

/*
 * Run a query string inside the open transaction block, as a client's
 * simple query would: statement by statement, each with its own snapshot and
 * command id, rows to the spool if want_rows, command tags always.
 */
void
execute_statements(const char *sql, bool want_rows)
{
	List	   *parsetrees;
	ListCell   *lc;

	if (!txn_open)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("child transaction %u has already ended", self_child_id)));

	StartTransactionCommand();
	MemoryContextSwitchTo(request_cxt);

	parsetrees = pg_parse_query(sql);
	check_statements(parsetrees);

	foreach(lc, parsetrees)
	{
		RawStmt    *parsetree = lfirst_node(RawStmt, lc);
		CommandTag	tag = CreateCommandTag(parsetree->stmt);
		bool		snapshot_set = false;
		List	   *querytrees;
		List	   *plantrees;
		Portal		portal;
		DestReceiver *receiver;
		QueryCompletion qc;
		int16		format = 0;

		CHECK_FOR_INTERRUPTS();
		/* In a failed block only ROLLBACK TO SAVEPOINT can run. */
		if (IsAbortedTransactionBlockState() &&
			!(IsA(parsetree->stmt, TransactionStmt) &&
			  ((TransactionStmt *) parsetree->stmt)->kind == TRANS_STMT_ROLLBACK_TO))
			ereport(ERROR,
					(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
					 errmsg("current transaction is aborted, commands ignored "
							"until end of transaction block"),
					 errhint("Roll the child back with child_txn.rollback(), "
							 "or to a savepoint with ROLLBACK TO SAVEPOINT.")));
		set_ps_display(GetCommandTagName(tag));
		/* Each statement gets the statement_timeout in force when it starts. */
		if (StatementTimeout > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);

		if (analyze_requires_snapshot(parsetree))
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			snapshot_set = true;
		}
		querytrees = pg_analyze_and_rewrite_fixedparams(parsetree, sql,
														nullptr, 0, nullptr);
		plantrees = pg_plan_queries(querytrees, sql, CURSOR_OPT_PARALLEL_OK,
									nullptr);
		if (snapshot_set)
			PopActiveSnapshot();

		portal = CreatePortal("", true, true);
		portal->visible = false;
		PortalDefineQuery(portal, nullptr, sql, tag, plantrees, nullptr);
		PortalStart(portal, nullptr, 0, InvalidSnapshot);
		PortalSetResultFormat(portal, 1, &format);
		receiver = CreateDestReceiver(want_rows ? DestRemote : DestNone);
		if (want_rows)
			SetRemoteDestReceiverParams(receiver, portal);

		(void) PortalRun(portal, FETCH_ALL, true, true, receiver, receiver,
						 &qc);
		receiver->rDestroy(receiver);
		PortalDrop(portal, false);

		if (IsA(parsetree->stmt, TransactionStmt))
		{
			/* savepoint commands take effect at the end of the command */
			CommitTransactionCommand();
			StartTransactionCommand();
			MemoryContextSwitchTo(request_cxt);
		}
		else
			CommandCounterIncrement();
		disable_timeout(STATEMENT_TIMEOUT, false);

		EndCommand(&qc, DestRemote, false);
		ready.nprocessed = static_cast<int64>(qc.nprocessed);
	}
	CommitTransactionCommand();
}

/* Serve one request; errors longjmp to the loop in child_txn_worker_main. */
void
handle_request(RequestCode code, const char *sql)
{
	current_request = code;
	memset(&ready, 0, sizeof(ready));
	debug_query_string = sql;
	pgstat_report_activity(STATE_RUNNING, sql);

	/* A cancel is for this request from here on, and only until it ends. */
	RESUME_CANCEL_INTERRUPTS();

	/* The child's first request sets it up first (see protocol.hpp). */
	if (!child_started)
	{
		adopt_parent_environment();
		child_started = true;
	}

	/* rolled back while idle (wait_for_request): a rollback has its way */
	if (idle_deadlock)
	{
		idle_deadlock = false;
		if (code != RequestCode::Rollback)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
					 errmsg("deadlock detected"),
					 errdetail("Child transaction %u held a lock its parent "
							   "waited for, while it waited for the parent's "
							   "next request; it was rolled back so that the "
							   "parent could go on.", self_child_id),
					 errhint("Commit or roll back a child before its parent "
							 "changes, locks or alters what the child changed, "
							 "locked or read.")));
	}

	switch (code)
	{
		case RequestCode::Start:
			break;
		case RequestCode::Exec:
		case RequestCode::Query:
		case RequestCode::OneShot:
			execute_statements(sql, code == RequestCode::Query);
			break;
		case RequestCode::Commit:
		case RequestCode::Rollback:
			break;
	}
	HOLD_CANCEL_INTERRUPTS();

	if (code == RequestCode::OneShot || code == RequestCode::Commit)
		commit_block();
	else if (code == RequestCode::Rollback)
	{
		if (txn_open)
			end_block_rollback();
	}
	debug_query_string = nullptr;
}

/* Is tag one of the execution locks of the worker in pool slot `slot`? */
bool
is_exec_lock_of(const LOCKTAG &tag, int slot, uint32 generation)
{
	LOCKTAG		theirs;

	set_exec_locktag(&theirs, lock_database, slot, generation, 0);
	return tag.locktag_type == theirs.locktag_type &&
		tag.locktag_field1 == theirs.locktag_field1 &&
		tag.locktag_field2 == theirs.locktag_field2 &&
		tag.locktag_field3 == theirs.locktag_field3 &&
		(tag.locktag_field4 >> 1) == (theirs.locktag_field4 >> 1);
}

/* Is tag one of our own execution locks? */
bool
is_our_exec_lock(const LOCKTAG &tag)
{
	return is_exec_lock_of(tag, lock_slot, lock_generation);
}

/*
 * If process pid waits in the lock manager, call f(proc, lock) under the
 * partition lock of what it waits for, and return f's answer; else false.
 */
template <typename F>
bool
with_awaited_lock(int32 pid, F f)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	if (proc == nullptr)
		return false;

	/* a first look without a lock; then the lock of the LOCK's partition */
	LOCK	   *lock = static_cast<volatile PGPROC *>(proc)->waitLock;

	if (lock == nullptr)
		return false;

	LOCKTAG		tag = lock->tag;
	LWLock	   *partition = LockHashPartitionLock(LockTagHashCode(&tag));
	bool		answer = false;

	LWLockAcquire(partition, LW_SHARED);
	if (proc->waitLock == lock && proc->pid == pid &&
		memcmp(&lock->tag, &tag, sizeof(LOCKTAG)) == 0)
		answer = f(proc, lock);
	LWLockRelease(partition);
	return answer;
}

/*
 * Does process pid wait for one of the execution locks of the worker in
 * `slot`: for an answer from that child, not for its transaction?
 */
bool
waits_on_exec_lock_of(int32 pid, int slot, uint32 generation)
{
	return with_awaited_lock(pid, [slot, generation](PGPROC *, LOCK *lock) {
		return is_exec_lock_of(lock->tag, slot, generation);
	});
}

/* ... for a request it sent us that we have not read yet? */
bool
waits_on_our_exec_lock(int32 pid)
{
	return waits_on_exec_lock_of(pid, lock_slot, lock_generation);
}

/*
 * Does the parent wait, through lock waits of others (a third session, a
 * sibling child running a statement), for a lock of ours?  A walk over
 * pg_blocking_pids() from the parent, at most kMaxWalk processes.  A
 * process that waits for our execution lock (our own parent, when the walk
 * starts at a grandparent) has sent us a request: that edge is not a
 * deadlock, we are about to serve it.
 */
bool
parent_blocked_through_us(int32 parent_pid)
{
	constexpr int kMaxWalk = 64;
	static MemoryContext walk_cxt = nullptr;
	int32		pids[kMaxWalk];
	int			head = 0;
	int			tail = 0;
	bool		found = false;

	if (walk_cxt == nullptr)
		walk_cxt = AllocSetContextCreate(TopMemoryContext, "child_txn idle check",
										 ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(walk_cxt);

	pids[tail++] = parent_pid;
	while (head < tail && !found)
	{
		Datum		arr = DirectFunctionCall1(pg_blocking_pids,
											  Int32GetDatum(pids[head++]));
		Datum	   *elems;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(arr), INT4OID, sizeof(int32), true,
						  TYPALIGN_INT, &elems, nullptr, &n);
		for (int i = 0; i < n && !found; i++)
		{
			int32		pid = DatumGetInt32(elems[i]);
			bool		seen = false;

			found = pid == MyProcPid && !waits_on_our_exec_lock(pids[head - 1]);
			for (int k = 0; k < tail && !seen; k++)
				seen = pids[k] == pid;
			if (!seen && tail < kMaxWalk)
				pids[tail++] = pid;
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(walk_cxt);
	return found;
}

/*
 * Does process pid (our parent or a further ancestor) wait, in the lock
 * manager, for a lock this child's transaction holds, directly or through
 * others' lock waits (a third session, a sibling child)?  Our execution
 * locks are not counted: a parent waits for ours as soon as it has sent a
 * request we have not read yet.
 */
bool
waits_for_us(int32 pid)
{
	bool		waits = false;
	bool		found = with_awaited_lock(pid, [&waits](PGPROC *proc, LOCK *lock) {
		if (is_our_exec_lock(lock->tag))
			return false;
		LOCKMASK	conflicts =
			GetLocksMethodTable(lock)->conflictTab[proc->waitLockMode];

		waits = true;
		for (auto *pl = reinterpret_cast<PROCLOCK *>(
				 SHMQueueNext(&lock->procLocks, &lock->procLocks,
							  offsetof(PROCLOCK, lockLink)));
			 pl != nullptr;
			 pl = reinterpret_cast<PROCLOCK *>(
				 SHMQueueNext(&lock->procLocks, &pl->lockLink,
							  offsetof(PROCLOCK, lockLink))))
			if (pl->tag.myProc == MyProc && (pl->holdMask & conflicts) != 0)
				return true;
		return false;
	});

	return found || (waits && parent_blocked_through_us(pid));
}

/*
 * Does our parent, or an ancestor further up (a grandparent whose child,
 * our parent, sits idle too), wait for a lock of ours?  While we wait for
 * our parent's next request, that is a deadlock the detector cannot see:
 * our side of it, and our idle parent's, are not lock waits.
 */
bool
parent_waits_for_us()
{
	Ancestor	up[kMaxAncestors];
	int			n = pool_worker_ancestors(up, lengthof(up));

	for (int i = 0; i < n; i++)
	{
		/*
		 * An ancestor waiting for the answer of its child, our ancestor
		 * below it, waits through that one, which is checked in its turn
		 * (the usual state while that child works for it: not worth a walk
		 * over every lock-manager partition each time).
		 */
		if (i > 0 && up[i - 1].slot >= 0 &&
			waits_on_exec_lock_of(up[i].pid, up[i - 1].slot, up[i - 1].generation))
			continue;
		if (waits_for_us(up[i].pid))
			return true;
	}
	return false;
}

/*
 * parent_waits_for_us(), for the idle loop: an error in it (out of memory)
 * is logged and the check tried again at the next round, rather than left
 * to fail the idle child behind its parent's back.
 */
bool
idle_check_says_parent_waits()
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool waits = false;

	PG_TRY();
	{
		waits = parent_waits_for_us();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		LWLockReleaseAll();		/* (pg_blocking_pids holds many) */
		ErrorData  *edata = CopyErrorData();

		FlushErrorState();
		ereport(LOG,
				(errmsg("child transaction %u could not check whether its parent waits for it: %s",
						self_child_id, edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return waits;
}

/*
 * Wait for the parent's next request; cancel interrupts stay held while
 * idle, and a cancel that arrives now (meant for a request that already
 * ended) is dropped.  Returns false if the parent is gone.
 *
 * With the child's transaction open, look every child deadlock_timeout
 * whether the parent waits for one of its locks (parent_waits_for_us):
 * then roll the child back, so that the parent can go on, and tell the
 * parent at its next request on this child.  A parent/child deadlock
 * becomes 40P01 in the child, as when the child is the one waiting.
 */
bool
wait_for_request(Size *nbytes, void **data)
{
	for (;;)
	{
		shm_mq_result res = shm_mq_receive(request_mqh, nbytes, data, true);

		if (res == SHM_MQ_SUCCESS)
			return true;
		if (res == SHM_MQ_DETACHED)
			return false;

		long		timeout = txn_open ? Max(hdr->deadlock_timeout_ms, 10) : -1L;

		(void) pg::spin_for_latch();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH |
						 (timeout >= 0 ? WL_TIMEOUT : 0), timeout,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		settings::reload_if_pending();

		if (txn_open && idle_check_says_parent_waits())
		{
			ereport(LOG,
					(errmsg("child transaction %u rolled back: its parent waited for a lock it held while it waited for the parent",
							self_child_id)));
			AbortOutOfAnyTransaction();
			txn_open = false;
			idle_deadlock = true;
		}
	}
}

/*
 * We talk to parents in the database encoding, never converting: a parent
 * takes our output as such.  But client_encoding comes with the parent's
 * settings, and a child can set it (SET, SET LOCAL, set_config(), a
 * function's SET clause, and the end of any of these), each time making
 * the setting's assign hook convert our output from then on.  So in a
 * worker the hook converts nothing, whatever the setting says: the setting
 * keeps its value (SHOW shows it), the output stays in the database
 * encoding (pg_client_encoding() says which).  Installed once, at start.
 */
void
assign_client_encoding_in_worker(const char *newval, void *extra)
{
	(void) SetClientEncoding(GetDatabaseEncoding());
}

void
fix_output_encoding()
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();
	bool		found = false;

	for (int i = 0; i < n; i++)
	{
		if (vars[i]->vartype == PGC_STRING &&
			strcmp(vars[i]->name, "client_encoding") == 0)
		{
			reinterpret_cast<struct config_string *>(vars[i])->assign_hook =
				assign_client_encoding_in_worker;
			found = true;
		}
	}
	if (!found)
		elog(FATAL, "child_txn worker: parameter \"client_encoding\" not found");
	(void) SetClientEncoding(GetDatabaseEncoding());
}

/*
 * Set our application_name.  Whoever the current user is (a SECURITY
 * DEFINER caller's function owner, say), the setting is recorded as set by
 * our authenticated user, so that it serializes the same way each time (see
 * "Settings reuse").
 */
void
set_appname(const char *value)
{
	MemoryContext old = MemoryContextSwitchTo(request_cxt);

	(void) set_config_option_ext("application_name", value, PGC_USERSET,
								 PGC_S_SESSION, GetAuthenticatedUserId(),
								 GUC_ACTION_SET, true, 0, false);
	MemoryContextSwitchTo(old);
}

/*
 * Adopt the parent's identity, settings and role; open the transaction.
 * See "Settings reuse" above for when the settings are restored.
 */
void
adopt_parent_environment()
{
	char	   *gucstate = static_cast<char *>(
		shm_toc_lookup(shm_toc_attach(kTocMagic, dsm_segment_address(child_seg)),
					   kKeyGucState, false));
	char		appname[sizeof(base_appname) + 16];
	Size		parent_len;

	memcpy(&parent_len, gucstate, sizeof(Size));
	parent_len += sizeof(Size);

	if (!(settings_clean && clean_as_of_reload == settings::reloads &&
		  last_parent_settings != nullptr &&
		  parent_len == last_parent_settings_len &&
		  memcmp(gucstate, last_parent_settings, parent_len) == 0 &&
		  hdr->deadlock_timeout_ms == last_deadlock_timeout_ms))
	{
		char		timeout[32];

		/* Until the snapshot is taken, nothing may count as clean. */
		settings_clean = false;
		last_parent_settings_len = 0;

		StartTransactionCommand();

		/*
		 * RestoreGUCState resets session_authorization to a default that
		 * changes nothing (its assign hook ignores it), then sets role
		 * before session_authorization (names are in order): the role would
		 * be checked against the previous child's session user, which a
		 * superuser's SET SESSION AUTHORIZATION may have made anyone.  Start
		 * from our login (the parent's login too: pools are per login).
		 */
		SetSessionAuthorization(GetAuthenticatedUserId(),
								superuser_arg(GetAuthenticatedUserId()));
		RestoreGUCState(gucstate);
		snprintf(timeout, sizeof(timeout), "%d", hdr->deadlock_timeout_ms);
		(void) set_config_option("deadlock_timeout", timeout, PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
		if (hdr->application_name[0] != '\0')
			snprintf(base_appname, sizeof(base_appname), "%s child_txn",
					 hdr->application_name);
		else
			strlcpy(base_appname, "child_txn", sizeof(base_appname));
		set_appname(base_appname);
		CommitTransactionCommand();

		if (settings_snapshot != nullptr)
			pfree(settings_snapshot);
		settings_snapshot = serialize_own_settings(&settings_snapshot_len);
		if (last_parent_settings != nullptr)
			pfree(last_parent_settings);
		last_parent_settings = static_cast<char *>(
			MemoryContextAlloc(TopMemoryContext, parent_len));
		memcpy(last_parent_settings, gucstate, parent_len);
		last_parent_settings_len = parent_len;
		last_deadlock_timeout_ms = hdr->deadlock_timeout_ms;
	}

	/* The child's own name, undone in end_child before the comparison. */
	snprintf(appname, sizeof(appname), "%s %u", base_appname, hdr->child_id);
	set_appname(appname);

	/*
	 * Restoring session_authorization resets the role; put back the
	 * parent's SET ROLE, then its current user and security context (a
	 * SECURITY DEFINER caller's owner, with the restrictions that go with
	 * it).  RestoreGUCState checked session_authorization and role against
	 * our authenticated user exactly as the parent's SETs were checked, so
	 * nothing here exceeds what the parent could do itself.
	 */
	SetCurrentRoleId(hdr->outer_user_id, hdr->outer_is_superuser);
	SetUserIdAndSecContext(hdr->current_user_id, hdr->sec_context);

	begin_block();
}

/* Runs before a child's segment is unmapped (also at exit). */
void
forget_cancel_header(dsm_segment *seg, Datum arg)
{
	if (cancel_hdr == reinterpret_cast<ChildHeader *>(DatumGetPointer(arg)))
		cancel_hdr = nullptr;
}

/*
 * Segments stay mapped after their child, a few of them: a parent keeps its
 * segments for its next children (parent.cpp), so the next child of the
 * same session usually comes in a segment we have mapped already, and
 * mapping one costs system calls (and an unmap, a TLB shootdown) on the
 * path of every child.  A segment we keep mapped lives on after its parent
 * lets go of it (the mapping holds a reference), so its handle cannot be
 * given to another segment meanwhile; once the parent has let go of it
 * (parent_released) we unmap it at the next occasion: when a child ends or
 * another segment is mapped.  An idle worker thus holds at most four
 * finished children's segments until its next child or its exit.
 */
struct MappedSegment
{
	dsm_handle	handle;
	dsm_segment *seg;
	ChildHeader *header;
	uint64		last_use;
};

constexpr int kMaxMapped = 4;
MappedSegment mapped[kMaxMapped];
int			n_mapped = 0;
uint64		mapping_clock = 0;

/* Unmap mapped[i]. */
void
unmap_segment(int i)
{
	dsm_segment *seg = mapped[i].seg;

	mapped[i] = mapped[--n_mapped];
	dsm_detach(seg);
}

/* Unmap the segments whose parents let go of them (not the one in use). */
void
unmap_released_segments()
{
	for (int i = n_mapped - 1; i >= 0; i--)
	{
		bool		released;

		if (mapped[i].seg == child_seg)
			continue;
		SpinLockAcquire(&mapped[i].header->mutex);
		released = mapped[i].header->parent_released;
		SpinLockRelease(&mapped[i].header->mutex);
		if (released)
			unmap_segment(i);
	}
}

/* The mapping of the segment with this handle, or nullptr if it is gone. */
dsm_segment *
map_segment(dsm_handle handle)
{
	dsm_segment *seg;
	ChildHeader *header = nullptr;

	for (int i = 0; i < n_mapped; i++)
		if (mapped[i].handle == handle)
		{
			mapped[i].last_use = ++mapping_clock;
			return mapped[i].seg;
		}

	unmap_released_segments();
	seg = dsm_attach(handle);
	if (seg == nullptr)
		return nullptr;
	PG_TRY();
	{
		shm_toc    *toc;

		dsm_pin_mapping(seg);
		toc = shm_toc_attach(kTocMagic, dsm_segment_address(seg));
		if (toc == nullptr)
			ereport(FATAL,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("child_txn worker found an invalid shared memory segment")));
		header = static_cast<ChildHeader *>(shm_toc_lookup(toc, kKeyHeader, false));
		/* The SIGUSR2 handler must never look at an unmapped header. */
		on_dsm_detach(seg, forget_cancel_header, PointerGetDatum(header));
	}
	PG_CATCH();
	{
		dsm_detach(seg);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (n_mapped == kMaxMapped)
	{
		int			victim = -1;

		for (int i = 0; i < n_mapped; i++)
			if (mapped[i].seg != child_seg &&
				(victim < 0 || mapped[i].last_use < mapped[victim].last_use))
				victim = i;
		unmap_segment(victim);
	}
	mapped[n_mapped].handle = handle;
	mapped[n_mapped].seg = seg;
	mapped[n_mapped].header = header;
	mapped[n_mapped].last_use = ++mapping_clock;
	n_mapped++;
	return seg;
}

/*
 * Attach to the segment of the child to serve next.  False if the parent is
 * already gone (the segment no longer exists).
 */
bool
attach_child(dsm_handle handle)
{
	shm_toc    *toc;
	shm_mq	   *resp;
	shm_mq	   *req;
	bool		preset;

	child_seg = map_segment(handle);
	if (child_seg == nullptr)
		return false;
	toc = shm_toc_attach(kTocMagic, dsm_segment_address(child_seg));
	hdr = static_cast<ChildHeader *>(shm_toc_lookup(toc, kKeyHeader, false));
	resp = static_cast<shm_mq *>(shm_toc_lookup(toc, kKeyResponseQueue, false));
	req = static_cast<shm_mq *>(shm_toc_lookup(toc, kKeyRequestQueue, false));

	/*
	 * The parent of a child given to an idle worker has made us the queues'
	 * endpoints already (it did so before we could see the assignment, see
	 * parent.cpp); a new worker's first child has not.
	 */
	SpinLockAcquire(&hdr->mutex);
	preset = hdr->endpoints_preset;
	SpinLockRelease(&hdr->mutex);
	if (!preset)
	{
		shm_mq_set_sender(resp, MyProc);
		shm_mq_set_receiver(req, MyProc);
	}
	response_mqh = shm_mq_attach(resp, child_seg, nullptr);
	request_mqh = shm_mq_attach(req, child_seg, nullptr);

	self_child_id = hdr->child_id;
	self_depth = hdr->depth;
	child_started = false;
	SpinLockAcquire(&hdr->mutex);
	hdr->worker_pid = MyProcPid;
	hdr->worker_attached = true;
	SpinLockRelease(&hdr->mutex);
	cancel_hdr = hdr;
	return true;
}


/*
 * DISCARD ALL leaves random()'s generator alone: a child's setseed() would
 * make the next child's random() predictable, and the next child may be
 * another session's.  Seed it afresh (from 53 strong random bits, which
 * is what setseed() takes; a new session seeds all 128 bits).
 */
void
reseed_random()
{
	uint64		bits;

	/* (without one, this worker must serve no other child: exit) */
	if (!pg_strong_random(&bits, sizeof(bits)))
		ereport(FATAL,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random seed for the next child")));
	/* 53 random bits into [-1, 1), the range setseed() takes */
	(void) DirectFunctionCall1(setseed,
							   Float8GetDatum(static_cast<double>(bits >> 11) /
											  static_cast<double>(UINT64CONST(1) << 53) *
											  2.0 - 1.0));
}

/*
 * Done with a child, whichever way it ended: roll back what is left, drop
 * the execution locks, detach from the queues (the parent sees that) and
 * say so in the header (worker_done), offer ourselves to the pool again,
 * and reset the session so the next child inherits nothing (a next child
 * assigned meanwhile waits in the queue; see pool_worker_offer).  A worker
 * that set up local buffers (its child read or wrote temporary-table data)
 * is not reused: temp_buffers cannot change afterwards.
 */
void
end_child()
{
	phase = Phase::Resetting;
	cancel_hdr = nullptr;
	AbortOutOfAnyTransaction();
	txn_open = false;
	/* Keep (or, after an abort, take back) the lock of our next request. */
	drop_exec_lock(request_number + 1);
	take_exec_lock(request_number);
	worker_spool.reset();
	if (child_seg != nullptr)
	{
		/*
		 * Let go of the queues, then tell the parent the segment is free
		 * for its next child: from here on we touch it no more (it stays
		 * mapped, see map_segment).
		 */
		shm_mq_detach(request_mqh);
		shm_mq_detach(response_mqh);
		SpinLockAcquire(&hdr->mutex);
		hdr->worker_done = true;
		SpinLockRelease(&hdr->mutex);
	}
	/* A worker that used local buffers is not reused (see above). */
	if (NLocBuffer > 0)
		reusable = false;
	offered = pool_worker_offer(reusable, request_number);
	/* before child_seg is cleared: the child's header may be reused now */
	unmap_released_segments();
	child_seg = nullptr;
	hdr = nullptr;
	request_mqh = nullptr;
	response_mqh = nullptr;
	self_child_id = 0;
	self_depth = 0;
	idle_deadlock = false;

	/*
	 * Did the child leave our settings as it found them?  (Its own
	 * application_name goes first: the snapshot has base_appname.)
	 */
	if (child_started)
		set_appname(base_appname);
	settings_clean = own_settings_unchanged();
	clean_as_of_reload = settings::reloads;

	/*
	 * Back to the worker's own identity, then DISCARD ALL; with clean
	 * settings, everything DISCARD ALL does but resetting them.
	 */
	SetUserIdAndSecContext(GetAuthenticatedUserId(), 0);
	StartTransactionCommand();
	if (settings_clean)
	{
		PortalHashTableDeleteAll();
		DropAllPreparedStatements();
		Async_UnlistenAll();
		LockReleaseAll(USER_LOCKMETHOD, true);
		ResetPlanCache();
		ResetTempTableNamespace();
		ResetSequenceCaches();
	}
	else
	{
		DiscardStmt stmt;

		memset(&stmt, 0, sizeof(stmt));
		stmt.type = T_DiscardStmt;
		stmt.target = DISCARD_ALL;
		DiscardCommand(&stmt, true);
	}
	CommitTransactionCommand();
	reseed_random();
	/* group-commit writes the child queued are not the next child's */
	gc::forget_session_writes();
	phase = Phase::Idle;
}

/* Serve one request and answer it; end the child if it is over. */
void
serve(RequestCode code, const char *sql)
{
	phase = Phase::Executing;
	handle_request(code, sql);
	if (!finish_request() || !txn_open)
		end_child();
}

} // namespace
} // namespace child_txn

using namespace child_txn;

/*
 * child_txn_worker_main
 *		Entry point of a child worker.  main_arg is its pool slot; bgw_extra
 *		holds the slot's generation.
 */
extern "C" void
child_txn_worker_main(Datum main_arg)
{
	sigjmp_buf	local_sigjmp_buf;
	PoolSlot   *slot;
	uint32		generation;
	dsm_handle	first;

	/* Before any relation is opened: see heap/am.hpp. */
	heap::in_child_worker = true;
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGUSR2, parent_cancel_handler);
	BackgroundWorkerUnblockSignals();

	CurrentMemoryContext = AllocSetContextCreate(TopMemoryContext,
												 "child_txn worker",
												 ALLOCSET_DEFAULT_SIZES);
	request_cxt = AllocSetContextCreate(TopMemoryContext,
										"child_txn request",
										ALLOCSET_DEFAULT_SIZES);
	worker_spool.init();

	memcpy(&generation, MyBgworkerEntry->bgw_extra, sizeof(generation));
	slot = pool_worker_attach(DatumGetInt32(main_arg), generation);

	/*
	 * From here on, errors and notices are spooled for the parent.  Attach
	 * to the first child before connecting, so that a failure to connect
	 * reaches its parent (drained at exit).
	 */
	PqCommMethods = &spool_comm_methods;
	whereToSendOutput = DestRemote;
	FrontendProtocol = PG_PROTOCOL_LATEST;
	before_shmem_exit(worker_exit_callback, (Datum) 0);

	first = pool_worker_first();
	if (first == DSM_HANDLE_INVALID || !attach_child(first))
		proc_exit(0);
	/* a child is part of a session already connected: ALLOW_CONNECTIONS was its to obey */
	BackgroundWorkerInitializeConnectionByOid(slot->database_id,
											  slot->user_id,
											  BGWORKER_BYPASS_ALLOWCONN);
	/* We talk to parents, in the database encoding, never to a client. */
	fix_output_encoding();

	/* Hold the lock of request 0 from now on (see protocol.hpp). */
	lock_slot = pool_worker_slot();
	lock_database = slot->database_id;
	lock_generation = generation;
	request_number = 0;
	take_exec_lock(0);

	/*
	 * Error recovery, after PostgresMain: spool the error for the parent,
	 * abort, and finish the request so the parent gets its answer.
	 */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		error_context_stack = nullptr;
		HOLD_INTERRUPTS();
		disable_all_timeouts(false);
		QueryCancelPending = false;

		/* An error while answering or resetting: start afresh instead. */
		if (phase == Phase::Finishing || phase == Phase::Resetting)
		{
			EmitErrorReport();
			proc_exit(1);
		}

		EmitErrorReport();
		debug_query_string = nullptr;
		AbortCurrentTransaction();
		/* A failed start, one-shot or commit ends the child; others leave it
		 * failed, as a client session's transaction block would be. */
		if (txn_open && (current_request == RequestCode::OneShot ||
						 current_request == RequestCode::Commit ||
						 current_request == RequestCode::Rollback))
			end_block_rollback();
		MemoryContextSwitchTo(TopMemoryContext);
		FlushErrorState();
		heap::forget();
		MemoryContextReset(request_cxt);
		QueryCancelHoldoffCount = 1;	/* held outside requests */
		RESUME_INTERRUPTS();

		if (phase == Phase::Executing)
		{
			if (!finish_request() || !txn_open)
				end_child();
		}
	}
	PG_exception_stack = &local_sigjmp_buf;

	/*
	 * Cancel interrupts are held except while a request executes.  The
	 * first child of a new worker gets a handshake: set it up, say 'Z'.
	 */
	QueryCancelHoldoffCount = 1;
	if (hdr != nullptr && !child_started && phase == Phase::Idle)
	{
		handshake = true;
		serve(RequestCode::Start, "");
	}

	for (;;)
	{
		Size		nbytes;
		void	   *data;
		char	   *sql;
		RequestCode code;
		bool		abandoned;
		uint32		intents_len;
		Size		sql_len;

		/*
		 * An error while taking up an assignment leaves its parent waiting
		 * on our execution lock, and us half attached: exit, which frees
		 * the slot and the lock, and the parent reports the worker gone.
		 */
		if (taking_up)
			proc_exit(1);

		heap::forget();			/* they lived in request_cxt */
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(request_cxt);

		if (hdr == nullptr)
		{
			dsm_handle	next;

			/* Not offered: end_child found us not reusable. */
			if (!offered)
				proc_exit(0);
			offered = false;
			next = pool_worker_next();

			if (next == DSM_HANDLE_INVALID)
				proc_exit(0);
			taking_up = true;
			if (!attach_child(next))
				end_child();
			taking_up = false;
			continue;
		}

		if (!wait_for_request(&nbytes, &data))
		{
			end_child();
			continue;
		}

		/*
		 * From here an error (out of memory while taking the request in)
		 * is this request's: the error handler answers it, since the
		 * parent waits for that answer on our execution lock.
		 */
		phase = Phase::Executing;
		/* code byte, uint32 length of the intents, intents, SQL, NUL */
		if (nbytes < 1 + sizeof(uint32) + 1)
			ereport(FATAL,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("child_txn worker received a malformed request")));
		code = static_cast<RequestCode>(static_cast<char *>(data)[0]);
		current_request = code;
		memcpy(&intents_len, static_cast<char *>(data) + 1, sizeof(uint32));
		if (intents_len > nbytes - 1 - sizeof(uint32) - 1)
			ereport(FATAL,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("child_txn worker received a malformed request")));
		sql_len = nbytes - 1 - sizeof(uint32) - intents_len;
		sql = static_cast<char *>(MemoryContextAlloc(request_cxt, sql_len));
		memcpy(sql, static_cast<char *>(data) + 1 + sizeof(uint32) + intents_len,
			   sql_len);
		sql[sql_len - 1] = '\0';
		heap::adopt(static_cast<char *>(data) + 1 + sizeof(uint32),
					intents_len, request_cxt);
		heap::note_request_start();

		QueryCancelPending = false;
		SpinLockAcquire(&hdr->mutex);
		abandoned = hdr->abandoned;
		SpinLockRelease(&hdr->mutex);
		if (abandoned)
		{
			end_child();
			continue;
		}
		serve(code, sql);
	}
}
