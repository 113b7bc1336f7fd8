/*
 * worker.cpp
 *		The group-commit worker: one per database with queued writes.
 *
 * Loop: take every queued write of the database (up to
 * child_txn.max_batch_size rows) into a batch, apply it in one transaction,
 * commit, answer the callers.  Writes queued while a batch commits form the
 * next batch, so there is no fixed delay.
 *
 * Applying a batch:
 *	1. Lock each table ROW EXCLUSIVE without waiting.  A table that cannot
 *	   be locked has its writes deferred (their callers wait for the lock
 *	   themselves, see session.cpp); the other tables go on.
 *	2. Optimistically run one INSERT per (table, role, omitted columns)
 *	   group, all rows of the group at once, with no subtransactions.
 *	3. If anything fails, roll back and run the batch again with one
 *	   subtransaction per write: a bad write fails alone, with its own
 *	   error, and the others commit.
 *	A row lock wait longer than child_txn.row_lock_wait is cut short: the
 *	write that waits is deferred, tagged with the lock it waited for.
 *
 * Memory: everything of a batch lives in batch_cxt, reset per batch.  The
 * worker has no C++ objects with destructors on its stack: errors are
 * PostgreSQL errors handled with PG_TRY, or kill the process (the exit
 * callback then requeues or fails what was in flight).
 */
#include "pg/postgres_headers.hpp"

#include "gc/queue.hpp"
#include "pg/spin.hpp"
#include "settings.hpp"

namespace child_txn
{
namespace gc
{

namespace
{

int			my_index = -1;
uint32		my_generation = 0;
MemoryContext batch_cxt = nullptr;

/* Between the start and the end of CommitTransactionCommand(). */
volatile bool committing = false;
TransactionId batch_xid = InvalidTransactionId;	/* of the batch committing */
bool		pre_commit_done = false;	/* its pre-commit callbacks ran */

/*
 * Pre-commit callbacks may commit elsewhere (postgres_fdw commits its
 * remote transactions there): stopped or failing once they have started, a
 * batch rolled back here may have been written there, so its outcome is
 * unknown.  Registered again before each commit, this callback runs first
 * (the newest runs first), before any such commit.
 */
void
note_pre_commit(XactEvent event, void *)
{
	if (event == XACT_EVENT_PRE_COMMIT && committing)
		pre_commit_done = true;
}

/* SIGTERM arrived (ProcDiePending is cleared before the FATAL is raised). */
volatile sig_atomic_t got_sigterm = false;

/*
 * The exit under way is a stop (SIGTERM, or the end of a drain), not an
 * error: the writes of an unfinished batch go back to the queue.
 */
volatile sig_atomic_t stopping = false;

/*
 * Stopping.  The first SIGTERM does not stop the worker at once: it finishes
 * its batch and applies the writes queued before the signal (seq below
 * drain_seq), for at most child_txn.drain_timeout after the signal, and then
 * exits (drain).  The stop timer, armed around each batch, cuts short a
 * batch that would outlast that; a batch already older than drain_timeout
 * when the signal comes (batch_overdue) is cut short at once, and so is
 * everything on a second SIGTERM from a user (see worker_sigterm).
 */
volatile sig_atomic_t sigterms = 0;		/* SIGTERMs that started a drain */
volatile sig_atomic_t batch_overdue = false;
volatile TimestampTz sigterm_at = 0;
bool		draining = false;
uint64		drain_seq = 0;
TimestampTz drain_deadline = 0;
int			drained = 0;		/* writes committed since the SIGTERM */
bool		database_going = false;	/* stopped for DROP DATABASE and such */
TimeoutId	stop_timer = static_cast<TimeoutId>(0);	/* 0: not registered */

/* Connected to the database: a worker that never got there is not restarted. */
volatile sig_atomic_t connected = false;

/* One write of the batch, as the worker sees it. */
struct BatchWrite
{
	int			slot;
	uint64		seq;
	Oid			relid;
	Oid			user_id;
	Oid			rowtype;
	int			shape_natts;
	uint32		shape_hash;
	int			nrows;
	HeapTupleHeader *rows;		/* pointers into the DSA area */
	TimestampTz queued_at;
	WriteState	outcome;		/* Done, Failed or Deferred */
	DeferReason defer_reason;
	LOCKTAG		defer_tag;
	bool		defer_tag_valid;
	LOCKMODE	defer_mode;
	ErrorData  *error;
	bool		log_failure;	/* failed and nobody waits for the answer */
	char	   *relname;		/* for the log, looked up in the transaction */
};

struct Batch
{
	int			nwrites;
	BatchWrite *writes;
	int			nrows;
};

/* The batch this worker has taken and not yet answered, if any. */
Batch	   *current_batch = nullptr;

/*
 * SIGTERM (installed with SA_SIGINFO: who sent it matters).  The postmaster
 * signals a child twice at a shutdown, the process and then its process
 * group (signal_child), and the two often arrive as two signals: only a
 * SIGTERM from somebody else (pg_terminate_backend) is a second request
 * that ends the drain.  Nor does a shutdown end a drain that
 * pg_terminate_backend started: drain_timeout bounds both.
 */
void
worker_sigterm(int signo, siginfo_t *info, void *)
{
	int			save_errno = errno;
	bool		from_postmaster = info != nullptr &&
		info->si_pid == PostmasterPid;

	if (!proc_exit_inprogress)
	{
		got_sigterm = true;
		if (connected && settings::drain_timeout > 0 && !batch_overdue)
		{
			if (sigterms == 0)
			{
				/* drain first (see above): the main loop notices */
				sigterms = 1;
				sigterm_at = GetCurrentTimestamp();
				SetLatch(MyLatch);
				errno = save_errno;
				return;
			}
			if (from_postmaster)
			{
				errno = save_errno;
				return;
			}
		}
		stopping = true;
	}
	errno = save_errno;
	die(signo);
}

/* Install worker_sigterm (pqsignal cannot pass the sender on). */
void
install_sigterm_handler()
{
	struct sigaction act;

	memset(&act, 0, sizeof(act));
	act.sa_sigaction = worker_sigterm;
	sigemptyset(&act.sa_mask);
	act.sa_flags = SA_RESTART | SA_SIGINFO;
	if (sigaction(SIGTERM, &act, nullptr) < 0)
		elog(FATAL, "could not set the SIGTERM handler: %m");
}

/* The stop timer (a timeout handler, runs in signal context). */
void
stop_timer_fired()
{
	/*
	 * Overdue first, then the test: a SIGTERM handled in between sees
	 * batch_overdue and exits by itself (the handlers can nest).
	 */
	batch_overdue = true;
	if (got_sigterm)
	{
		stopping = true;
		die(SIGTERM);
	}
}

/* Around a batch: it may run until drain_timeout after its start, or the
 * drain's deadline. */
void
arm_stop_timer()
{
	batch_overdue = false;
	/* (a drain keeps its deadline even if the setting changed since) */
	if (draining)
		enable_timeout_at(stop_timer, drain_deadline);
	else if (settings::drain_timeout > 0)
		enable_timeout_after(stop_timer, settings::drain_timeout);
}

void
disarm_stop_timer()
{
	disable_timeout(stop_timer, false);
	batch_overdue = false;
}

/* The row-lock probe (a timeout handler, runs in signal context). */
TimeoutId	probe_timeout = static_cast<TimeoutId>(0);	/* 0: not registered */
volatile sig_atomic_t probe_fired = false;
LOCKTAG		probe_tag;
LOCKMODE	probe_mode;

void
row_wait_probe()
{
	/* (MyProc is gone late in process exit) */
	LOCK	   *lock = MyProc != nullptr ? MyProc->waitLock : nullptr;

	if (lock == nullptr)
		return;
	probe_tag = lock->tag;
	probe_mode = MyProc->waitLockMode;
	probe_fired = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/*
 * pg_cancel_backend() on the worker cancels the write it is applying, and
 * nothing else: taken anywhere else (locking tables, committing, between
 * batches), the cancel would end the worker and fail a whole batch of
 * writes that had nothing to do with it.  The window is open while a
 * write's statements and deferred checks run (insert_rows).
 */
volatile sig_atomic_t cancel_window = false;

void
worker_sigint(SIGNAL_ARGS)
{
	if (cancel_window)
		StatementCancelHandler(postgres_signal_arg);
}

/* Close the window; a cancel that came too late for the write is dropped. */
void
close_cancel_window()
{
	cancel_window = false;
	QueryCancelPending = false;
}

/*
 * The probe fired, but the wait it saw ended (or an error came first)
 * before its cancel was acted on: that cancel is not for the next write.
 */
void
forget_probe()
{
	if (probe_fired)
		QueryCancelPending = false;
	probe_fired = false;
}

/* A cached INSERT for one (table, set of omitted columns). */
struct PlanEntry
{
	Oid			relid;
	int			nmask;
	uint8	   *mask;			/* 1: column omitted (takes its default) */
	char	   *qualname;		/* the name the plan was built with */
	SPIPlanPtr	plan;
	bool		stale;			/* the table changed: its SQL may be wrong */
};

List	   *plans = NIL;		/* of PlanEntry *, in TopMemoryContext */
constexpr int kMaxPlans = 256;

char *
qualified_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);
	Oid			nsp = get_rel_namespace(relid);
	char	   *nspname = OidIsValid(nsp) ? get_namespace_name(nsp) : nullptr;

	if (rel == nullptr || nspname == nullptr)
		return nullptr;
	return quote_qualified_identifier(nspname, rel);
}

/* Columns that may be omitted to take their default. */
bool
defaultable(Form_pg_attribute att)
{
	return !att->attisdropped &&
		(att->atthasdef || att->attidentity != '\0' || att->attgenerated != '\0');
}

/* Which defaultable columns of this row are null (omitted)? */
void
row_mask(TupleDesc desc, HeapTupleHeader row, uint8 *mask)
{
	HeapTupleData tuple;

	tuple.t_len = HeapTupleHeaderGetDatumLength(row);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = row;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		mask[i] = defaultable(att) && heap_attisnull(&tuple, i + 1, desc);
	}
}

void
forget_plan(Oid relid)
{
	ListCell   *lc;

	foreach(lc, plans)
	{
		PlanEntry  *e = static_cast<PlanEntry *>(lfirst(lc));

		if (e->relid == relid && e->plan != nullptr)
		{
			SPI_freeplan(e->plan);
			e->plan = nullptr;
		}
	}
}

/*
 * A table's definition changed (or InvalidOid: perhaps any): its cached
 * INSERTs name columns that may have been renamed or dropped since, and a
 * saved plan is only ever re-analysed from its old text.  Rebuilt on use.
 */
void
plans_invalidated(Datum, Oid relid)
{
	ListCell   *lc;

	foreach(lc, plans)
	{
		PlanEntry  *e = static_cast<PlanEntry *>(lfirst(lc));

		if (!OidIsValid(relid) || e->relid == relid)
			e->stale = true;
	}
}

SPIPlanPtr
get_plan(Oid relid, Oid rowtype, TupleDesc desc, const uint8 *mask)
{
	char	   *qualname = qualified_name(relid);
	ListCell   *lc;
	PlanEntry  *entry = nullptr;

	if (qualname == nullptr)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));

	foreach(lc, plans)
	{
		PlanEntry  *e = static_cast<PlanEntry *>(lfirst(lc));

		if (e->relid == relid && e->nmask == desc->natts &&
			memcmp(e->mask, mask, desc->natts) == 0)
		{
			entry = e;
			break;
		}
	}
	if (entry != nullptr && entry->plan != nullptr && !entry->stale &&
		strcmp(entry->qualname, qualname) == 0)
		return entry->plan;

	/* Build: INSERT INTO t (listed) SELECT r.listed FROM unnest($1) r */
	StringInfoData cols;
	StringInfoData exprs;

	initStringInfo(&cols);
	initStringInfo(&exprs);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || mask[i])
			continue;
		const char *col = quote_identifier(NameStr(att->attname));

		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", col);
		appendStringInfo(&exprs, "%sr.%s", exprs.len ? ", " : "", col);
	}

	StringInfoData sql;

	initStringInfo(&sql);
	if (cols.len > 0)
		appendStringInfo(&sql,
						 "INSERT INTO %s (%s) SELECT %s FROM pg_catalog.unnest($1) AS r",
						 qualname, cols.data, exprs.data);
	else
		appendStringInfo(&sql,
						 "INSERT INTO %s SELECT FROM pg_catalog.unnest($1) AS r",
						 qualname);

	Oid			argtype = get_array_type(rowtype);
	/* one plan for any number of rows: no replanning per batch */
	SPIPlanPtr	plan = SPI_prepare_cursor(sql.data, 1, &argtype,
										  CURSOR_OPT_GENERIC_PLAN);

	if (plan == nullptr)
		elog(ERROR, "could not prepare group-commit insert: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);

	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	/* bounded: tables dropped and shapes gone by are not kept for ever */
	if (entry == nullptr && list_length(plans) >= kMaxPlans)
	{
		ListCell   *lc2;

		foreach(lc2, plans)
		{
			PlanEntry  *e = static_cast<PlanEntry *>(lfirst(lc2));

			if (e->plan != nullptr)
				SPI_freeplan(e->plan);
			pfree(e->mask);
			if (e->qualname != nullptr)
				pfree(e->qualname);
			pfree(e);
		}
		list_free(plans);
		plans = NIL;
	}
	if (entry == nullptr)
	{
		entry = static_cast<PlanEntry *>(palloc0(sizeof(PlanEntry)));
		entry->relid = relid;
		entry->nmask = desc->natts;
		entry->mask = static_cast<uint8 *>(palloc(desc->natts));
		memcpy(entry->mask, mask, desc->natts);
		plans = lappend(plans, entry);
	}
	else
	{
		if (entry->plan != nullptr)
			SPI_freeplan(entry->plan);
		pfree(entry->qualname);
	}
	entry->qualname = pstrdup(qualname);
	entry->plan = plan;
	entry->stale = false;
	MemoryContextSwitchTo(old);
	return plan;
}

void		forget_untransactional_state();

/*
 * The worker is shared by every role: what a trigger left for the session
 * (temporary tables, prepared statements, cursors, session advisory locks,
 * LISTEN) must not reach the next write, perhaps another role's.  Cheap
 * when there is nothing to drop.
 */
void
forget_session_state()
{
	if (OidIsValid(MyProc->tempNamespaceId))
		ResetTempTableNamespace();
	forget_untransactional_state();
	Async_UnlistenAll();
}

/*
 * What survives a rollback (prepared statements, session advisory locks,
 * held cursors): dropped after a failed write or pass as well.  Inside a
 * transaction.
 */
void
forget_untransactional_state()
{
	DropAllPreparedStatements();
	PortalHashTableDeleteAll();
	LockReleaseSession(USER_LOCKMETHOD);
}

/* SET CONSTRAINTS ALL DEFERRED or IMMEDIATE (the latter fires pending checks). */
void
set_constraints(bool deferred)
{
	ConstraintsSetStmt *stmt = makeNode(ConstraintsSetStmt);

	stmt->constraints = NIL;
	stmt->deferred = deferred;
	AfterTriggerSetState(stmt);
	pfree(stmt);
}

/* Insert rows (all of one table and role) with as few INSERTs as possible. */
void
insert_rows(Oid relid, Oid rowtype, Oid user_id, HeapTupleHeader *rows,
			int nrows)
{
	Oid			save_user;
	int			save_sec;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(user_id)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", user_id)));

	TupleDesc	desc = lookup_rowtype_tupdesc(rowtype, -1);
	int			natts = desc->natts;
	uint8	   *masks = static_cast<uint8 *>(palloc(static_cast<Size>(natts) * nrows + 1));
	bool	   *done = static_cast<bool *>(palloc0(sizeof(bool) * nrows));
	Datum	   *elems = static_cast<Datum *>(palloc(sizeof(Datum) * nrows));

	for (int r = 0; r < nrows; r++)
		row_mask(desc, rows[r], masks + static_cast<Size>(natts) * r);

	GetUserIdAndSecContext(&save_user, &save_sec);

	/*
	 * As the role; as in a SECURITY DEFINER function, a trigger cannot
	 * change roles (SET ROLE, SET SESSION AUTHORIZATION).  Deferrable
	 * constraints and deferred triggers of the write are checked at its
	 * end, below: one write is one INSERT to its author, even when its rows
	 * need several INSERTs here.
	 */
	SetUserIdAndSecContext(user_id, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	set_constraints(true);

	/*
	 * Settings a trigger or default changes (even with SET, not SET LOCAL)
	 * must not outlive this role's write: the next write may be another
	 * role's.  Undo them all when done, as a function's SET clause would.
	 */
	int			guc_level = NewGUCNestLevel();

	/*
	 * The lock-wait probe, every row_lock_wait while this write runs (its
	 * INSERTs and its deferred checks): a wait that starts late is still
	 * caught.  An error leaves it armed; the caller disarms it.
	 */
	probe_fired = false;
	enable_timeout_every(probe_timeout,
						 TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 settings::row_lock_wait),
						 settings::row_lock_wait);
	cancel_window = true;

	for (int r = 0; r < nrows; r++)
	{
		if (done[r])
			continue;
		const uint8 *mask = masks + static_cast<Size>(natts) * r;
		int			n = 0;

		/* this row and every later row with the same omitted columns */
		for (int k = r; k < nrows; k++)
		{
			if (done[k] || memcmp(mask, masks + static_cast<Size>(natts) * k, natts) != 0)
				continue;
			elems[n++] = PointerGetDatum(rows[k]);
			done[k] = true;
		}

		SPIPlanPtr	plan = get_plan(relid, rowtype, desc, mask);
		ArrayType  *arr = construct_array(elems, n, rowtype, -1, false,
										  TYPALIGN_DOUBLE);
		Datum		arg = PointerGetDatum(arr);

		int			rc = SPI_execute_plan(plan, &arg, nullptr, false, 0);

		forget_probe();
		if (rc < 0)
			elog(ERROR, "group-commit insert failed: %s",
				 SPI_result_code_string(rc));
		pfree(arr);
	}

	/*
	 * Fire the write's deferred checks and triggers now, as its role (at
	 * commit they would run as the worker's superuser), under the probe (a
	 * foreign-key check may wait for a row).  Restricted: a deferred
	 * trigger that deferred new events again (SET CONSTRAINTS ... DEFERRED,
	 * then a write) would leave them for the commit; PostgreSQL refuses
	 * that in a security-restricted operation, so that write fails alone.
	 */
	SetUserIdAndSecContext(user_id, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	set_constraints(false);
	SetUserIdAndSecContext(user_id, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	disable_timeout(probe_timeout, false);
	forget_probe();
	close_cancel_window();
	forget_session_state();

	AtEOXact_GUC(false, guc_level);
	SetUserIdAndSecContext(save_user, save_sec);
	ReleaseTupleDesc(desc);
}

/* The error of a write that cannot be applied to its table, as ErrorData. */
ErrorData *
table_error(Oid relid, int sqlerrcode, const char *detail)
{
	MemoryContext old = MemoryContextSwitchTo(batch_cxt);
	ErrorData  *edata = nullptr;

	PG_TRY();
	{
		if (sqlerrcode == ERRCODE_UNDEFINED_TABLE)
			ereport(ERROR,
					(errcode(sqlerrcode),
					 errmsg("relation with OID %u does not exist", relid),
					 errdetail_internal("%s", detail)));
		else
			ereport(ERROR,
					(errcode(sqlerrcode),
					 errmsg("cannot apply a group-commit write to table \"%s\"",
							get_rel_name(relid)),
					 errdetail_internal("%s", detail),
					 errhint("Queue the row again.")));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(batch_cxt);
		edata = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	return edata;
}

/* Fail a write before it runs (its table is gone or changed). */
void
fail_write(BatchWrite *w, int sqlerrcode, const char *detail)
{
	MemoryContext old;

	w->error = table_error(w->relid, sqlerrcode, detail);
	w->outcome = WriteState::Failed;
	old = MemoryContextSwitchTo(batch_cxt);
	w->relname = get_rel_name(w->relid);
	MemoryContextSwitchTo(old);
}

/*
 * Lock the batch's tables without waiting.  Writes to a table that cannot
 * be locked are deferred; to a table that is gone, failed; rows built with
 * a row type whose columns changed type since, failed.
 */
void
lock_tables(Batch *b)
{
	/* decided[j]: write j decided its table's fate (in this attempt) */
	bool	   *decided = static_cast<bool *>(palloc0(sizeof(bool) * Max(b->nwrites, 1)));

	for (int i = 0; i < b->nwrites; i++)
	{
		BatchWrite *w = &b->writes[i];
		bool		first = true;

		if (w->outcome != WriteState::Running)
			continue;
		for (int j = 0; j < i && first; j++)
			first = !(decided[j] && b->writes[j].relid == w->relid);
		if (!first)
			continue;			/* decided with the table's first write */
		decided[i] = true;

		enum class Fate
		{
			Locked, Busy, Gone
		}			fate = Fate::Locked;

		if (!ConditionalLockRelationOid(w->relid, RowExclusiveLock))
			fate = Fate::Busy;
		else if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(w->relid)))
		{
			UnlockRelationOid(w->relid, RowExclusiveLock);
			fate = Fate::Gone;
		}
		if (fate == Fate::Locked)
			continue;

		/* the same fate for every write of this table still to run */
		for (int j = i; j < b->nwrites; j++)
		{
			BatchWrite *o = &b->writes[j];

			if (o->relid != w->relid || o->outcome != WriteState::Running)
				continue;
			if (fate == Fate::Busy)
			{
				o->outcome = WriteState::Deferred;
				o->defer_reason = DeferReason::Table;
				SET_LOCKTAG_RELATION(o->defer_tag, MyDatabaseId, o->relid);
				o->defer_tag_valid = true;
				o->defer_mode = RowExclusiveLock;
			}
			else
				fail_write(o, ERRCODE_UNDEFINED_TABLE,
						   "The table was dropped after the write was queued.");
		}
	}

	for (int i = 0; i < b->nwrites; i++)
	{
		BatchWrite *w = &b->writes[i];

		if (w->outcome != WriteState::Running)
			continue;
		TupleDesc	desc = lookup_rowtype_tupdesc(w->rowtype, -1);
		bool		ok = desc->natts >= w->shape_natts &&
			row_shape(desc, w->shape_natts) == w->shape_hash;

		ReleaseTupleDesc(desc);
		if (!ok)
			fail_write(w, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
					   "A column of the table changed its type after the write was queued.");
	}
}

/* Do two writes go into the same INSERT (table, role and row type)? */
bool
same_group(const BatchWrite &a, const BatchWrite &b)
{
	return a.relid == b.relid && a.user_id == b.user_id &&
		a.rowtype == b.rowtype;
}

/* Insert every Running write, one INSERT per (table, role, row type). */
void
insert_groups(Batch *b)
{
	bool	   *grouped = static_cast<bool *>(palloc0(sizeof(bool) * b->nwrites));
	HeapTupleHeader *rows = static_cast<HeapTupleHeader *>(
		palloc(sizeof(HeapTupleHeader) * Max(b->nrows, 1)));

	for (int i = 0; i < b->nwrites; i++)
	{
		const BatchWrite *w = &b->writes[i];
		int			n = 0;

		if (grouped[i] || w->outcome != WriteState::Running)
			continue;
		for (int j = i; j < b->nwrites; j++)
		{
			const BatchWrite *o = &b->writes[j];

			if (grouped[j] || o->outcome != WriteState::Running ||
				!same_group(*w, *o))
				continue;
			grouped[j] = true;
			for (int r = 0; r < o->nrows; r++)
				rows[n++] = o->rows[r];
		}
		insert_rows(w->relid, w->rowtype, w->user_id, rows, n);
	}
}

/* Optimistic pass: everything, no subtransactions.  False on any error. */
bool
apply_optimistic(Batch *b)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		insert_groups(b);
	}
	PG_CATCH();
	{
		disable_timeout(probe_timeout, false);
		forget_probe();
		close_cancel_window();
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* One write of the isolated pass, in a subtransaction of its own. */
void
apply_one(BatchWrite *w, MemoryContext cxt, ResourceOwner owner)
{
	BeginInternalSubTransaction(nullptr);
	MemoryContextSwitchTo(cxt);
	probe_fired = false;
	PG_TRY();
	{
		insert_rows(w->relid, w->rowtype, w->user_id, w->rows, w->nrows);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		disable_timeout(probe_timeout, false);
		MemoryContextSwitchTo(batch_cxt);
		ErrorData  *edata = CopyErrorData();

		FlushErrorState();
		/* deferred only if the probe's cancel is what ended the write */
		bool		waited = probe_fired &&
			edata->sqlerrcode == ERRCODE_QUERY_CANCELED;

		forget_probe();
		close_cancel_window();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		forget_untransactional_state();

		if (waited)
		{
			/* it waited for a lock: set aside, with what it waited for */
			w->outcome = WriteState::Deferred;
			w->defer_reason = DeferReason::Row;
			w->defer_tag_valid = true;
			w->defer_tag = probe_tag;
			w->defer_mode = probe_mode;
		}
		else
		{
			w->outcome = WriteState::Failed;
			w->error = edata;
			forget_plan(w->relid);
			MemoryContext old = MemoryContextSwitchTo(batch_cxt);

			w->relname = get_rel_name(w->relid);
			MemoryContextSwitchTo(old);
		}
	}
	PG_END_TRY();
}

/* Isolated pass: one subtransaction per write. */
void
apply_isolated(Batch *b)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	for (int i = 0; i < b->nwrites; i++)
		if (b->writes[i].outcome == WriteState::Running)
			apply_one(&b->writes[i], cxt, owner);
}

/* Commit; false (transaction aborted) if the commit itself failed. */
bool
try_commit(bool isolated)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	batch_xid = GetTopTransactionIdIfAny();
	pre_commit_done = false;
	UnregisterXactCallback(note_pre_commit, nullptr);
	RegisterXactCallback(note_pre_commit, nullptr);
	PG_TRY();
	{
		committing = true;
		CommitTransactionCommand();
		committing = false;
	}
	PG_CATCH();
	{
		/*
		 * Rethrown, the error ends the worker: committing stays set, so
		 * that worker_exit asks the commit log, and calls the outcome
		 * unknown if pre-commit callbacks (a foreign server's commit) had
		 * started.  Such a batch must not be run again either: a foreign
		 * server may have committed part of it (one of two connections).
		 */
		if (isolated || pre_commit_done)
			PG_RE_THROW();
		committing = false;
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		AbortCurrentTransaction();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Put back writes deferred for their table: the next attempt locks anew. */
void
undo_table_deferrals(Batch *b)
{
	for (int i = 0; i < b->nwrites; i++)
		if (b->writes[i].outcome == WriteState::Deferred &&
			b->writes[i].defer_reason == DeferReason::Table)
			b->writes[i].outcome = WriteState::Running;
}

/* Run the batch in transactions until it commits; set each outcome. */
void
apply_batch(Batch *b, bool *retried)
{
	*retried = false;
	for (int attempt = 0;; attempt++)
	{
		bool		isolated = attempt > 0;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		if (isolated)
			forget_untransactional_state();	/* of the aborted attempt */
		pgstat_report_activity(STATE_RUNNING, isolated
							   ? "group commit: batch, one write at a time"
							   : "group commit: batch");
		lock_tables(b);

		bool		ok;

		if (!isolated)
			ok = apply_optimistic(b);
		else
		{
			apply_isolated(b);
			ok = true;
		}
		if (!ok)
		{
			/* the abort also resets SPI */
			AbortCurrentTransaction();
			undo_table_deferrals(b);
			*retried = true;
			continue;
		}

		SPI_finish();
		PopActiveSnapshot();
		if (!try_commit(isolated))
		{
			undo_table_deferrals(b);
			*retried = true;
			continue;
		}
		break;
	}
	pgstat_report_activity(STATE_IDLE, nullptr);
	for (int i = 0; i < b->nwrites; i++)
		if (b->writes[i].outcome == WriteState::Running)
			b->writes[i].outcome = WriteState::Done;
}

/* Owners of writes whose state changed, to wake: room for every slot. */
int *
wake_buffer()
{
	static int *buf = nullptr;

	if (buf == nullptr)
		buf = static_cast<int *>(MemoryContextAlloc(TopMemoryContext,
													sizeof(int) * (queue()->nslots + 1)));
	return buf;
}

/* At most this many tables get their queued writes deferred in one go. */
constexpr int kMaxJoinTables = 64;

/* Tables found locked, each with one of its writes deferred for that. */
struct BlockedTables
{
	const WriteSlot *models[kMaxJoinTables];
	int			n = 0;

	/* w (deferred for its table lock) is the model of its table, unless
	 * that table has one already */
	void
	add(const WriteSlot *w)
	{
		for (int j = 0; j < n; j++)
			if (models[j]->relid == w->relid)
				return;
		if (n < kMaxJoinTables)
			models[n++] = w;
	}
};

/*
 * Queued writes of tables whose writes are deferred for their table lock
 * join them: state Deferred, with the lock, retry time and back-off of
 * the table's model in `blocked`; the tables are noted as blocked, so that
 * later writes to them join at append (join_blocked_table).  Left
 * queued, they would be tried at once, or pull the deferred ones back in
 * front of them (requeue_due keeps a table's writes in order), at every
 * turn until the lock is free: the worker would spin, or retry every
 * deferred write of the table at each new append.  Their callers are
 * added to wake (a waiting one then waits for the table lock itself).
 * Under the queue lock, exclusive.
 */
void
defer_queued_of_tables(const BlockedTables &blocked, int *wake, int *nwake)
{
	Queue	   *q = queue();
	DbWorker   *e = &q->workers[my_index];
	const WriteSlot *const *models = blocked.models;
	int			nmodels = blocked.n;

	Assert(LWLockHeldByMeInMode(q->lock, LW_EXCLUSIVE));
	/* and new writes to them join at once (see DbWorker.blocked_relid) */
	for (int j = 0; j < nmodels; j++)
		note_blocked_table(e, models[j]);
	for (int k = e->queue_head, prev = -1; nmodels > 0 && k >= 0;)
	{
		WriteSlot  *w = &q->slots[k];
		int			next = w->next;
		const WriteSlot *model = nullptr;

		for (int j = 0; j < nmodels && model == nullptr; j++)
			if (models[j]->relid == w->relid)
				model = models[j];
		if (model == nullptr)
		{
			prev = k;
			k = next;
			continue;
		}
		/* off the list (prev stays), and deferred like model */
		if (prev >= 0)
			q->slots[prev].next = next;
		else
			e->queue_head = next;
		if (e->queue_tail == k)
			e->queue_tail = prev;
		w->next = -1;
		e->nqueued--;

		Assert(model->defer_reason == static_cast<int32>(DeferReason::Table));
		defer_like(e, w, model);
		if (w->owner_procno >= 0)
			wake[(*nwake)++] = w->owner_procno;
		k = next;
	}
}

/*
 * Deferred writes due for a retry go back on the queue, in queue order.  A
 * table that is tried again is tried with all its deferred writes, so that
 * they keep their order and do not trickle in one batch each.  Queued
 * writes of a table whose deferred writes are not due yet join those
 * instead (defer_queued_of_tables); their callers are added to wake.
 */
void
requeue_due(DbWorker *e, TimestampTz now, int *wake, int *nwake)
{
	Queue	   *q = queue();
	WriteSlot **due = static_cast<WriteSlot **>(palloc(sizeof(WriteSlot *) * e->ndeferred));
	int			n = 0;
	int			ndue;

	for (int i = 0; i < q->nslots && n < e->ndeferred; i++)
	{
		WriteSlot  *w = &q->slots[i];

		if (w->database_id == MyDatabaseId &&
			w->state == static_cast<int32>(WriteState::Deferred) &&
			w->retry_at <= now)
			due[n++] = w;
	}
	ndue = n;
	if (ndue == 0 && e->nqueued == 0)
		return;

	BlockedTables blocked;

	for (int i = 0, seen = ndue; i < q->nslots && seen < e->ndeferred; i++)
	{
		WriteSlot  *w = &q->slots[i];
		bool		pull = false;

		/* (a write waiting for a row is only tried when due or asked for) */
		if (w->database_id != MyDatabaseId ||
			w->state != static_cast<int32>(WriteState::Deferred) ||
			w->retry_at <= now)
			continue;
		seen++;
		if (w->defer_reason != static_cast<int32>(DeferReason::Table))
			continue;
		for (int k = 0; k < ndue && !pull; k++)
			pull = due[k]->relid == w->relid;
		if (pull)
			due[n++] = w;
		else
			blocked.add(w);
	}
	/* in front of newer writes, oldest first */
	requeue_deferred(e, due, n);
	if (blocked.n > 0)
		defer_queued_of_tables(blocked, wake, nwake);
}

/* Take the next batch from the queue, oldest first (marking it Running). */
void
take_batch(Batch *b)
{
	Queue	   *q = queue();
	dsa_area   *a = area();
	DbWorker   *e = &q->workers[my_index];
	int			limit = settings::max_batch_size;

	b->nwrites = 0;
	b->nrows = 0;

	int		   *wake = wake_buffer();
	int			nwake = 0;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	if (e->ndeferred > 0)
		requeue_due(e, GetCurrentTimestamp(), wake, &nwake);
	b->writes = static_cast<BatchWrite *>(palloc(sizeof(BatchWrite) * Max(e->nqueued, 1)));
	while (e->queue_head >= 0)
	{
		WriteSlot  *w = &q->slots[e->queue_head];

		if (limit > 0 && b->nwrites > 0 && b->nrows + w->nrows > limit)
			break;
		/* draining: only what was queued before the SIGTERM */
		if (draining && w->seq >= drain_seq)
			break;
		/* allocate first: an error must not leave the write off the list */
		HeapTupleHeader *rows = static_cast<HeapTupleHeader *>(
			palloc(sizeof(HeapTupleHeader) * w->nrows));

		e->queue_head = w->next;
		if (e->queue_head < 0)
			e->queue_tail = -1;
		e->nqueued--;
		w->next = -1;

		BatchWrite *bw = &b->writes[b->nwrites++];

		memset(bw, 0, sizeof(*bw));
		bw->slot = static_cast<int>(w - q->slots);
		bw->seq = w->seq;
		bw->relid = w->relid;
		bw->user_id = w->user_id;
		bw->rowtype = w->rowtype;
		bw->shape_natts = w->shape_natts;
		bw->shape_hash = w->shape_hash;
		bw->nrows = w->nrows;
		bw->queued_at = w->queued_at;
		bw->outcome = WriteState::Running;
		bw->rows = rows;

		char	   *p = static_cast<char *>(dsa_get_address(a, w->rows));

		for (int r = 0; r < w->nrows; r++)
		{
			bw->rows[r] = reinterpret_cast<HeapTupleHeader>(p);
			p += MAXALIGN(HeapTupleHeaderGetDatumLength(bw->rows[r]));
		}
		w->state = static_cast<int32>(WriteState::Running);
		b->nrows += w->nrows;
	}
	LWLockRelease(q->lock);
	for (int i = 0; i < nwake; i++)
		wake_procno(wake[i]);
}

/* Copy text into a fixed buffer, cut at a character boundary. */
void
copy_clipped(char *dst, Size size, const char *src)
{
	int			len = pg_mbcliplen(src, static_cast<int>(strlen(src)),
								   static_cast<int>(size) - 1);

	memcpy(dst, src, len);
	dst[len] = '\0';
}

void
fill_error(WriteSlot *w, const ErrorData *e)
{
	w->sqlerrcode = e->sqlerrcode;
	copy_clipped(w->message, sizeof(w->message),
				 e->message ? e->message : "unknown error");
	copy_clipped(w->detail, sizeof(w->detail), e->detail ? e->detail : "");
	copy_clipped(w->hint, sizeof(w->hint), e->hint ? e->hint : "");
}

/*
 * A write committed (its commit record ends at lsn): Done for a caller that
 * waits for it, else freed, its session's latest commit noted for flush().
 * True if the slot was freed.  Under the queue lock, exclusive.
 */
bool
mark_done(WriteSlot *w, XLogRecPtr lsn)
{
	Queue	   *q = queue();

	w->commit_lsn = lsn;
	if (w->wait && w->owner_procno >= 0)
	{
		w->state = static_cast<int32>(WriteState::Done);
		return false;
	}
	if (w->owner_procno >= 0 && q->committed_lsn[w->owner_procno] < lsn)
		q->committed_lsn[w->owner_procno] = lsn;
	free_slot(w);
	return true;
}

/* Publish the outcomes, update the figures, wake the callers. */
void
answer(Batch *b, TimestampTz started, bool retried, XLogRecPtr lsn)
{
	Queue	   *q = queue();
	TimestampTz now = GetCurrentTimestamp();
	Stats	   *st = &q->workers[my_index].stats;
	bool		freed = false;
	int			nwake = 0;
	/* the batch's callers and those of writes deferred with it */
	int		   *wake = wake_buffer();
	BlockedTables blocked;
	uint64		rows_done = 0;
	bool		committed_or_failed = false;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	for (int i = 0; i < b->nwrites; i++)
	{
		BatchWrite *bw = &b->writes[i];
		WriteSlot  *w = &q->slots[bw->slot];
		int			owner = w->owner_procno;

		Assert(w->seq == bw->seq);
		if (bw->outcome == WriteState::Done || bw->outcome == WriteState::Failed)
			committed_or_failed = true;
		switch (bw->outcome)
		{
			case WriteState::Done:
				st->writes++;
				st->rows += bw->nrows;
				if (got_sigterm)
					drained++;
				rows_done += bw->nrows;
				{
					long		us = 0;
					long		secs;
					int			usecs;

					TimestampDifference(bw->queued_at, now, &secs, &usecs);
					us = secs * 1000000L + usecs;
					st->latency_us_total += us;
					st->latency_us_max = Max(st->latency_us_max, static_cast<uint64>(us));
				}
				if (mark_done(w, lsn))
					freed = true;
				break;
			case WriteState::Failed:
				st->failures++;
				fill_error(w, bw->error);
				w->state = static_cast<int32>(WriteState::Failed);
				/* only the error is kept for the caller: give the rows back */
				dsa_free(area(), w->rows);
				w->rows = InvalidDsaPointer;
				freed = true;
				bw->log_failure = !w->wait;
				if (!w->wait)
				{
					bool		freed_other;

					(void) hand_failure_to_owner(w, &freed_other);
				}
				break;
			case WriteState::Deferred:
				if (w->abandoned)
				{
					/*
					 * Its caller gave up while we tried it, with an error:
					 * it is not written, then, rather than retried until it
					 * is, long after that error.
					 */
					free_slot(w);
					freed = true;
					break;
				}
				st->deferrals++;
				count_deferred(&q->workers[my_index], w, 1);
				w->state = static_cast<int32>(WriteState::Deferred);
				w->defer_reason = static_cast<int32>(bw->defer_reason);
				w->defer_tag = bw->defer_tag;
				w->defer_tag_valid = bw->defer_tag_valid;
				w->defer_mode = bw->defer_mode;
				/* retried by itself after a while, backing off to 1 s */
				w->retry_at = TimestampTzPlusMilliseconds(now,
					Min(1000, 50 << Min(w->defer_count, 5)));
				w->defer_count++;
				break;
			default:
				elog(PANIC, "group-commit write in unexpected state");
		}
		/* a write freed here is nobody's business but a flush()'s */
		if (w->owner_procno >= 0 ||
			(owner >= 0 && pg_atomic_read_u32(&q->flushing[owner]) != 0))
			wake[nwake++] = owner;
	}
	/*
	 * The tables the batch could not lock: their writes still queued behind
	 * it (the batch was full) are deferred with it, see
	 * defer_queued_of_tables.  One deferred write of each is the model.
	 */
	for (int i = 0; i < b->nwrites; i++)
	{
		const BatchWrite *bw = &b->writes[i];
		const WriteSlot *w = &q->slots[bw->slot];

		if (bw->outcome == WriteState::Deferred &&
			bw->defer_reason == DeferReason::Table &&
			w->seq == bw->seq && w->state == static_cast<int32>(WriteState::Deferred))
			blocked.add(w);
	}
	if (blocked.n > 0)
		defer_queued_of_tables(blocked, wake, &nwake);
	if (committed_or_failed)
	{
		long		secs;
		int			usecs;
		uint64		us;

		TimestampDifference(started, now, &secs, &usecs);
		us = static_cast<uint64>(secs) * 1000000 + usecs;
		st->batches++;
		st->commit_us_total += us;
		st->commit_us_max = Max(st->commit_us_max, us);
		st->max_batch_rows = Max(st->max_batch_rows, static_cast<uint64>(b->nrows));
		if (retried)
			st->retries++;
	}
	LWLockRelease(q->lock);

	for (int i = 0; i < nwake; i++)
		wake_procno(wake[i]);
	if (freed)
	{
		/* sessions still short of room after this say so again */
		pg_atomic_write_u32(&q->room_wanted, 0);
		ConditionVariableBroadcast(&q->space_freed);
	}

	for (int i = 0; i < b->nwrites; i++)
	{
		BatchWrite *bw = &b->writes[i];

		if (bw->log_failure)
		{
				ereport(LOG,
						(errmsg("group-commit write to table \"%s\" failed: %s",
								bw->relname ? bw->relname : "(dropped)",
								bw->error->message),
						 errdetail("SQLSTATE %s; the write was queued without "
								   "waiting and is reported by the session's "
								   "next append() or flush().",
								   unpack_sql_state(bw->error->sqlerrcode))));
		}
	}
}

/*
 * Exit: writes of an unfinished batch go back to the queue (they were not
 * committed), unless the commit had begun (their outcome is unknown).
 */
void
worker_exit(int, Datum)
{
	Queue	   *q = queue();
	DbWorker   *e = &q->workers[my_index];
	bool		freed = false;
	bool		restart = false;
	uint32		generation = 0;
	int			left = 0;		/* writes of the database not applied */

	/*
	 * A FATAL inside a batch leaves the periodic lock-wait probe armed; it
	 * must not fire on through the rest of process exit.
	 */
	if (probe_timeout != 0)
		disable_timeout(probe_timeout, false);
	if (stop_timer != 0)
		disable_timeout(stop_timer, false);

	/* an error may have left us holding LWLocks outside a transaction */
	LWLockReleaseAll();

	/*
	 * Stopped while committing: the transaction has been rolled back by now
	 * (ShutdownPostgres runs first) unless its commit record was written,
	 * and the commit log says which.  Without a transaction id, unknown.
	 */
	bool		committed = false;
	bool		unknown = false;

	if (committing)
	{
		if (TransactionIdIsValid(batch_xid))
			committed = TransactionIdDidCommit(batch_xid);
		unknown = !committed &&
			(!TransactionIdIsValid(batch_xid) || pre_commit_done);
	}

	LWLockAcquire(q->lock, LW_EXCLUSIVE);

	/*
	 * Only the writes of our own batch: once this worker gave up its entry
	 * (may_exit), another worker may already run batches of the database.
	 */
	for (int k = 0; current_batch != nullptr && k < current_batch->nwrites; k++)
	{
		const BatchWrite *bw = &current_batch->writes[k];
		WriteSlot  *w = &q->slots[bw->slot];

		if (w->seq != bw->seq ||
			w->state != static_cast<int32>(WriteState::Running))
			continue;
		if (committed)
		{
			/* (cannot happen: nothing can stop the commit once recorded) */
			int			owner = w->owner_procno;

			if (mark_done(w, XactLastCommitEnd))
				freed = true;
			wake_procno(owner);
			continue;
		}
		if (unknown || !stopping)
		{
			w->state = static_cast<int32>(WriteState::Failed);
			e->stats.failures++;
			w->sqlerrcode = unknown ? ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN
				: ERRCODE_INTERNAL_ERROR;
			strlcpy(w->message, unknown
					? "the group-commit worker exited while committing this write; its outcome is unknown"
					: "the group-commit worker failed before this write was applied; it was not written",
					sizeof(w->message));
			strlcpy(w->detail, "See the server log.", sizeof(w->detail));
			w->hint[0] = '\0';
			bool		freed_other = false;
			int			owner = w->owner_procno;

			if (!w->wait && hand_failure_to_owner(w, &freed_other))
			{
				freed = true;
				if (owner >= 0 && pg_atomic_read_u32(&q->flushing[owner]) != 0)
					wake_procno(owner);
				continue;
			}
			freed = freed || freed_other;
		}
		else
			enqueue(e, w);		/* not committed: taken again, in order */
		wake_procno(w->owner_procno);
	}
	current_batch = nullptr;

	if (e->generation == my_generation)
	{
		e->state = static_cast<int32>(WorkerState::None);
		e->pid = 0;
		e->pgprocno = -1;
		e->gathering = false;

		/*
		 * Writes still queued must not wait for a caller to come by (those
		 * queued without waiting may have none): start the next worker now.
		 * Not if this one never got connected (it would fail the same way);
		 * waiting callers retry then.
		 */
		left = e->nqueued + e->ndeferred;
		if (connected && (e->nqueued > 0 || e->ndeferred > 0))
		{
			e->state = static_cast<int32>(WorkerState::Starting);
			e->generation++;
			e->started_at = GetCurrentTimestamp();
			generation = e->generation;
			restart = true;
		}
	}
	/* anybody waiting on a write of this database may restart the worker */
	for (int i = 0; i < q->nslots; i++)
		if (q->slots[i].database_id == MyDatabaseId &&
			q->slots[i].state != static_cast<int32>(WriteState::Free))
			wake_procno(q->slots[i].owner_procno);
	LWLockRelease(q->lock);
	if (freed)
		ConditionVariableBroadcast(&q->space_freed);

	/*
	 * Stopped with writes not applied (queued after the SIGTERM, or not
	 * applied within drain_timeout): a new worker takes them over, but not
	 * if the server is shutting down (the queue is in shared memory).  We
	 * cannot tell which from here: say so either way.
	 */
	if (got_sigterm && left > 0)
		ereport(WARNING,
				(errmsg("group-commit worker of database %u stopped with %d write(s) not yet applied",
						MyDatabaseId, left),
				 database_going
				 ? errdetail("Another session holds the database for DROP "
							 "DATABASE or a similar command.")
				 : errdetail("A new worker applies them, unless the server is "
							 "shutting down: then writes queued without "
							 "waiting are lost."),
				 database_going ? 0 :
				 errhint("Raise child_txn.drain_timeout if it ran out, or call "
						 "child_txn.flush() in sessions that queued writes "
						 "without waiting before stopping the server.")));
	if (restart && !register_worker(my_index, generation))
		elog(LOG, "could not start a new group-commit worker: no background worker slot is free");
}

/*
 * The first SIGTERM came: from now on only the writes queued so far are
 * taken, until drain_timeout after the signal.
 */
void
begin_drain()
{
	Queue	   *q = queue();

	LWLockAcquire(q->lock, LW_SHARED);
	drain_seq = q->next_seq;
	LWLockRelease(q->lock);
	drain_deadline = TimestampTzPlusMilliseconds(sigterm_at,
												 settings::drain_timeout);
	draining = true;
}

/*
 * DROP DATABASE (and the other commands that need the database to
 * themselves) holds its lock on the database while it waits for sessions
 * to leave: with WITH (FORCE) it is what sent the SIGTERM, and the writes
 * go with the database.
 */
bool
database_wanted_alone()
{
	LOCKTAG		tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
	if (LockAcquire(&tag, AccessShareLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, AccessShareLock, true);
	return false;
}

/* Writes queued before the SIGTERM still deferred (under no lock). */
bool
deferred_before_drain()
{
	Queue	   *q = queue();
	bool		found = false;

	LWLockAcquire(q->lock, LW_SHARED);
	for (int i = 0; i < q->nslots && q->workers[my_index].ndeferred > 0 && !found; i++)
	{
		const WriteSlot *w = &q->slots[i];

		found = w->database_id == MyDatabaseId &&
			w->state == static_cast<int32>(WriteState::Deferred) &&
			w->seq < drain_seq;
	}
	LWLockRelease(q->lock);
	return found;
}

/* A write queued after the SIGTERM has a caller waiting for it. */
bool
later_write_awaited()
{
	Queue	   *q = queue();
	DbWorker   *e = &q->workers[my_index];
	bool		found = false;

	LWLockAcquire(q->lock, LW_SHARED);
	for (int i = e->queue_head; i >= 0 && !found; i = q->slots[i].next)
	{
		const WriteSlot *w = &q->slots[i];

		found = w->seq >= drain_seq &&
			(w->wait || (w->owner_procno >= 0 &&
						 pg_atomic_read_u32(&q->flushing[w->owner_procno]) != 0));
	}
	LWLockRelease(q->lock);
	return found;
}

/* End the drain: exit as on a SIGTERM (worker_exit logs what is left). */
void
stop_now()
{
	if (drained > 0)
		ereport(LOG,
				(errmsg("group-commit worker of database %u applied %d write(s) after it was asked to stop",
						MyDatabaseId, drained)));
	stopping = true;
	die(SIGTERM);
	CHECK_FOR_INTERRUPTS();
	/* (only if interrupts were held, which the main loop never does) */
	ereport(FATAL,
			(errcode(ERRCODE_ADMIN_SHUTDOWN),
			 errmsg("terminating group-commit worker of database %u",
					MyDatabaseId)));
}

/* Idle for long enough and nothing of ours in the queue: leave. */
bool
may_exit()
{
	Queue	   *q = queue();
	DbWorker   *e = &q->workers[my_index];
	bool		busy;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	busy = e->nqueued > 0 || e->ndeferred > 0;
	if (!busy && e->generation == my_generation)
	{
		e->state = static_cast<int32>(WorkerState::None);
		e->pid = 0;
		e->pgprocno = -1;
		my_generation = 0;		/* the exit callback must not touch it */
	}
	LWLockRelease(q->lock);
	return !busy;
}

/* How long until the earliest deferred write may be retried (ms), or -1. */
long
next_retry_ms()
{
	Queue	   *q = queue();
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz first = 0;

	LWLockAcquire(q->lock, LW_SHARED);
	for (int i = 0; i < q->nslots && q->workers[my_index].ndeferred > 0; i++)
	{
		const WriteSlot *w = &q->slots[i];

		if (w->database_id == MyDatabaseId &&
			w->state == static_cast<int32>(WriteState::Deferred) &&
			(first == 0 || w->retry_at < first))
			first = w->retry_at;
	}
	LWLockRelease(q->lock);
	if (first == 0)
		return -1;
	return Max(TimestampDifferenceMilliseconds(now, first), 1L);
}

/*
 * Give a young batch time to grow: child_txn.max_batch_delay for any batch,
 * child_txn.nowait_batch_delay (if longer) while nobody waits for a queued
 * write, that is, none was appended with wait and no flush() waits for its
 * session's writes.  Such a gathering ends early at gather_limit() writes or
 * rows, or a quarter of the queue's memory: then sessions are about to wait
 * for room.  While it lasts, appends without waiting do not wake us (see
 * procno_to_wake); a waiting append, a flush() or a session that waits for
 * room (in any database: see want_room) does, and ends it.
 */
void
delay_batch()
{
	Queue	   *q = queue();
	DbWorker   *e = &q->workers[my_index];

	if (settings::max_batch_delay <= 0 && settings::nowait_batch_delay <= 0)
		return;
	for (;;)
	{
		TimestampTz oldest = 0;
		int64		rows = 0;
		Size		bytes = 0;
		bool		waited_for = false;
		long		left = 0;

		LWLockAcquire(q->lock, LW_EXCLUSIVE);
		for (int i = e->queue_head; i >= 0; i = q->slots[i].next)
		{
			const WriteSlot *w = &q->slots[i];

			rows += w->nrows;
			bytes += w->rows_len;
			if (oldest == 0 || w->queued_at < oldest)
				oldest = w->queued_at;
			if (w->wait || (w->owner_procno >= 0 &&
							pg_atomic_read_u32(&q->flushing[w->owner_procno]) != 0))
			{
				waited_for = true;
				if (settings::max_batch_delay <= 0)
					break;		/* nothing to wait for then */
			}
		}

		/*
		 * (Deferred writes may have callers about to retry them, and a
		 * session waiting for room needs this batch committed: no
		 * gathering then.)
		 */
		bool		gather = !waited_for && e->ndeferred == 0 &&
			pg_atomic_read_u32(&q->room_wanted) == 0 &&
			settings::nowait_batch_delay > settings::max_batch_delay;
		int			delay = gather ? settings::nowait_batch_delay :
			settings::max_batch_delay;
		bool		full = settings::max_batch_size > 0 &&
			rows >= settings::max_batch_size;

		if (gather)
			full = full || rows >= gather_limit() || e->nqueued >= gather_limit() ||
				bytes >= static_cast<Size>(settings::queue_memory) * 1024 / 4;
		if (oldest != 0 && delay > 0 && !full)
			left = TimestampDifferenceMilliseconds(
				GetCurrentTimestamp(), TimestampTzPlusMilliseconds(oldest, delay));
		if (got_sigterm)
			left = 0;			/* stopping: no gathering */
		e->gathering = gather && left > 0;
		LWLockRelease(q->lock);
		if (left <= 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

} // namespace
} // namespace gc
} // namespace child_txn

using namespace child_txn;
using namespace child_txn::gc;

extern "C" PGDLLEXPORT void child_txn_group_commit_main(Datum main_arg);

/*
 * child_txn_group_commit_main
 *		Entry point; main_arg is the database's entry in the queue, bgw_extra
 *		the generation it was started for.
 */
extern "C" void
child_txn_group_commit_main(Datum main_arg)
{
	Queue	   *q = queue();
	Oid			database_id;
	TimestampTz idle_since;

	install_sigterm_handler();
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGINT, worker_sigint);
	BackgroundWorkerUnblockSignals();

	my_index = DatumGetInt32(main_arg);
	memcpy(&my_generation, MyBgworkerEntry->bgw_extra, sizeof(my_generation));

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	DbWorker   *e = &q->workers[my_index];

	if (e->generation != my_generation ||
		e->state != static_cast<int32>(WorkerState::Starting))
	{
		LWLockRelease(q->lock);
		proc_exit(0);
	}
	e->state = static_cast<int32>(WorkerState::Running);
	e->gathering = false;
	e->pid = MyProcPid;
	e->pgprocno = MyProc->pgprocno;
	e->started_at = GetCurrentTimestamp();
	database_id = e->database_id;
	LWLockRelease(q->lock);

	before_shmem_exit(worker_exit, (Datum) 0);
	am_group_commit_worker = true;
	/* sessions already connected queued these writes: ALLOW_CONNECTIONS is theirs to obey */
	BackgroundWorkerInitializeConnectionByOid(database_id, InvalidOid,
											  BGWORKER_BYPASS_ALLOWCONN);
	connected = true;
	pgstat_report_appname("child_txn group commit");
	probe_timeout = RegisterTimeout(USER_TIMEOUT, row_wait_probe);
	stop_timer = RegisterTimeout(USER_TIMEOUT, stop_timer_fired);
	CacheRegisterRelcacheCallback(plans_invalidated, (Datum) 0);
	RegisterXactCallback(note_pre_commit, nullptr);

	/*
	 * Batches run READ COMMITTED whatever the database's or role's default:
	 * a serialization failure at commit would fail writes that are fine.
	 */
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "child_txn batch",
									  ALLOCSET_DEFAULT_SIZES);
	idle_since = GetCurrentTimestamp();

	for (;;)
	{
		/*
		 * Static: an error escaping a batch exits through the bgworker's
		 * error handler, and worker_exit() still reads it via current_batch.
		 */
		static Batch b;

		CHECK_FOR_INTERRUPTS();
		settings::reload_if_pending();

		delay_batch();			/* (returns at once once told to stop) */

		if (got_sigterm && !draining)
			begin_drain();
		if (draining && GetCurrentTimestamp() >= drain_deadline)
			stop_now();
		if (draining && database_wanted_alone())
		{
			database_going = true;
			stop_now();
		}
		MemoryContextReset(batch_cxt);
		MemoryContext old = MemoryContextSwitchTo(batch_cxt);

		b.nwrites = 0;
		current_batch = &b;		/* before any write is marked Running */
		take_batch(&b);
		MemoryContextSwitchTo(old);

		if (b.nwrites == 0)
		{
			current_batch = nullptr;
			long		timeout = next_retry_ms();
			long		idle_left = -1;

			if (draining)
			{
				/*
				 * What is left of the drain: writes deferred on a lock.
				 * Not worth holding up a later write someone waits for
				 * (outside a shutdown, the next worker takes both).
				 */
				if (!deferred_before_drain() || later_write_awaited())
					stop_now();
				long		drain_left = TimestampDifferenceMilliseconds(
					GetCurrentTimestamp(), drain_deadline) + 1;

				timeout = timeout < 0 ? drain_left : Min(timeout, drain_left);
			}
			else if (settings::worker_idle_timeout > 0)
			{
				idle_left = TimestampDifferenceMilliseconds(
					GetCurrentTimestamp(),
					TimestampTzPlusMilliseconds(idle_since,
												settings::worker_idle_timeout));
				if (idle_left <= 0 && may_exit())
					proc_exit(0);
				idle_left = Max(idle_left, 100L);
				timeout = timeout < 0 ? idle_left : Min(timeout, idle_left);
			}
			(void) pg::spin_for_latch();
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH |
							 (timeout >= 0 ? WL_TIMEOUT : 0),
							 timeout, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}

		TimestampTz started = GetCurrentTimestamp();
		bool		retried;

		old = MemoryContextSwitchTo(batch_cxt);
		arm_stop_timer();
		apply_batch(&b, &retried);
		disarm_stop_timer();
		MemoryContextSwitchTo(batch_cxt);
		answer(&b, started, retried, XactLastCommitEnd);
		current_batch = nullptr;
		MemoryContextSwitchTo(old);
		idle_since = GetCurrentTimestamp();
	}
}
