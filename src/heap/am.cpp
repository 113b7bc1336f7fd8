/*
 * am.cpp
 *		The child_txn_heap table access method: heap on disk and in every
 *		ordinary session; in a child worker serving a request whose
 *		ancestors have written, heap with the visibility of intents.hpp.
 *
 * The handler gives every process but a child worker heap's own routine, so
 * ordinary sessions, the group-commit worker and parallel workers run
 * exactly heap's code.  A child worker gets a copy of heap's routine whose
 * read callbacks apply tuple_visible() to MVCC snapshots when ancestors'
 * writes are present, and whose write callbacks refuse rows an ancestor
 * wrote or locked.  Everything else is heap's.
 *
 * The read callbacks reuse heap's page handling rather than copy it:
 *
 * - Sequential, TID-range and sample scans begun with ancestors' writes
 *   present run heap's scan with a private SNAPSHOT_ANY snapshot (which
 *   also marks the scan as ours), so heap returns every tuple on the page;
 *   the first tuple returned from a page has the page's verdicts computed
 *   under one share lock, and invisible tuples are skipped.  The scan
 *   descriptor is enlarged to carry the caller's snapshot and the verdicts.
 * - Index fetches and bitmap pages walk HOT chains with
 *   heap_hot_search_buffer() under SNAPSHOT_ANY, one member at a time,
 *   and keep the first member tuple_visible() accepts.
 * - TID fetches use heap_fetch() under SNAPSHOT_ANY, then decide.
 *
 * SNAPSHOT_ANY skips heap's serializable bookkeeping, so the callbacks take
 * the predicate locks and make the conflict-out checks themselves.
 *
 * While ancestors' writes are present, plans that read child_txn_heap
 * tables run without parallel workers (which would not have them), and a
 * query started in an earlier request (a cursor) may not go on once the
 * ancestors have written again (its snapshot is older than their writes).
 */
#include "heap/am.hpp"
#include "heap/intents.hpp"

namespace child_txn
{
namespace heap
{

bool		in_child_worker = false;

namespace
{

const TableAmRoutine *heap_routine = nullptr;
TableAmRoutine child_routine;
bool		child_routine_ready = false;

/* SNAPSHOT_ANY, and the mark of a scan run by child_scan_begin. */
SnapshotData any_snapshot;

/* Heap's scan descriptor, enlarged; see child_scan_begin. */
struct ChildScan
{
	HeapScanDescData heap;		/* must come first */
	Snapshot	snapshot;		/* the caller's MVCC snapshot */
	uint64		vis_generation; /* intents the verdicts below were made with */
	Buffer		vis_buffer;		/* page whose verdicts are below */
	BlockNumber vis_block;
	OffsetNumber vis_maxoff;
	bool		visible[MaxHeapTuplesPerPage + 1];
};

ExecutorRun_hook_type prev_executor_run = nullptr;
planner_hook_type prev_planner = nullptr;

/*
 * Do the ancestors' writes count for a read of rel with snap?  Only for
 * plain MVCC snapshots (not historic ones, nor the special-purpose kinds
 * index builds and constraint checks use).
 */
inline bool
applies(Relation rel, Snapshot snap)
{
	if (likely(!present()) || snap == nullptr ||
		snap->snapshot_type != SNAPSHOT_MVCC)
		return false;
	check_snapshot(rel);
	return true;
}

inline bool
is_child_scan(TableScanDesc scan)
{
	return scan->rs_snapshot == &any_snapshot;
}

TableScanDesc
child_scan_begin(Relation rel, Snapshot snap, int nkeys, ScanKey key,
				 ParallelTableScanDesc pscan, uint32 flags)
{
	bool		ours = applies(rel, snap);

	/* A parallel worker would not see what we see (the hooks prevent it). */
	if (ours && pscan != nullptr)
		elog(ERROR, "child_txn: parallel scan of \"%s\" in a child that sees "
			 "its parent's writes", RelationGetRelationName(rel));

	/*
	 * heap_beginscan takes the relation's predicate lock (serializable) with
	 * the real snapshot.  Scans with a snapshot of their own to free, and
	 * bitmap scans (see child_scan_bitmap_next_block), stay heap's.
	 */
	TableScanDesc scan = heap_routine->scan_begin(rel, snap, nkeys, key,
												  pscan, flags);

	if (!ours || (flags & SO_TEMP_SNAPSHOT) ||
		!(flags & (SO_TYPE_SEQSCAN | SO_TYPE_SAMPLESCAN | SO_TYPE_TIDRANGESCAN)))
		return scan;

	/* Nobody else holds the descriptor yet, and it points to nothing of its own. */
	ChildScan  *cs = static_cast<ChildScan *>(repalloc(scan, sizeof(ChildScan)));

	cs->snapshot = snap;
	cs->vis_generation = 0;
	cs->vis_buffer = InvalidBuffer;
	cs->vis_block = InvalidBlockNumber;
	cs->vis_maxoff = InvalidOffsetNumber;
	cs->heap.rs_base.rs_snapshot = &any_snapshot;
	return &cs->heap.rs_base;
}

void
child_scan_rescan(TableScanDesc scan, ScanKey key, bool set_params,
				  bool allow_strat, bool allow_sync, bool allow_pagemode)
{
	heap_routine->scan_rescan(scan, key, set_params, allow_strat, allow_sync,
							  allow_pagemode);
	if (is_child_scan(scan))
	{
		ChildScan  *cs = reinterpret_cast<ChildScan *>(scan);

		/* heap turns page mode off for a non-MVCC snapshot; ours is one */
		if (set_params && allow_pagemode)
			scan->rs_flags |= SO_ALLOW_PAGEMODE;
		cs->vis_buffer = InvalidBuffer;
		cs->vis_block = InvalidBlockNumber;
	}
}

/* The tuple at line pointer o of a pinned page, if it is a normal one. */
inline bool
tuple_at(Relation rel, Page page, BlockNumber block, OffsetNumber o,
		 HeapTuple tup)
{
	ItemId		lp = PageGetItemId(page, o);

	if (!ItemIdIsNormal(lp))
		return false;
	tup->t_data = reinterpret_cast<HeapTupleHeader>(PageGetItem(page, lp));
	tup->t_len = ItemIdGetLength(lp);
	tup->t_tableOid = RelationGetRelid(rel);
	ItemPointerSet(&tup->t_self, block, o);
	return true;
}

/*
 * Is the tuple at tid, on the scan's current page, visible?  The verdicts
 * of a page are computed the first time a tuple of it is asked about; the
 * scan's pin keeps the page's line pointers where they are meanwhile.
 */
bool
scan_tuple_visible(ChildScan *cs, ItemPointer tid)
{
	BlockNumber block = ItemPointerGetBlockNumber(tid);
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	Buffer		buf = cs->heap.rs_cbuf;

	if (block != cs->vis_block || buf != cs->vis_buffer ||
		off > cs->vis_maxoff || cs->vis_generation != generation())
	{
		Relation	rel = cs->heap.rs_base.rs_rd;
		Page		page;
		OffsetNumber maxoff;

		Assert(BufferIsValid(buf) && BufferGetBlockNumber(buf) == block);
		/* a cursor may carry the scan into a later request */
		check_snapshot(rel);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		/* heap tested SNAPSHOT_ANY, which old_snapshot_threshold ignores */
		TestForOldSnapshot(cs->snapshot, rel, page);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber o = FirstOffsetNumber; o <= maxoff; o++)
		{
			HeapTupleData tup;

			cs->visible[o] = tuple_at(rel, page, block, o, &tup) &&
				tuple_visible(rel, &tup, cs->snapshot, buf);
		}
		LockBuffer(buf, BUFFER_LOCK_UNLOCK);
		cs->vis_generation = generation();
		cs->vis_buffer = buf;
		cs->vis_block = block;
		cs->vis_maxoff = maxoff;
	}
	return off <= cs->vis_maxoff && cs->visible[off];
}

/*
 * Heap's next tuple (next() calls the heap callback), skipping those the
 * child does not see when the scan is ours.
 */
template <typename Next>
bool
next_visible(TableScanDesc scan, Next next)
{
	if (!is_child_scan(scan))
		return next();

	ChildScan  *cs = reinterpret_cast<ChildScan *>(scan);

	while (next())
		if (scan_tuple_visible(cs, &cs->heap.rs_ctup.t_self))
			return true;
	/* heap let go of the page; re-entering it must recompute */
	cs->vis_block = InvalidBlockNumber;
	return false;
}

bool
child_scan_getnextslot(TableScanDesc scan, ScanDirection dir,
					   TupleTableSlot *slot)
{
	return next_visible(scan, [=] {
		return heap_routine->scan_getnextslot(scan, dir, slot);
	});
}

bool
child_scan_getnextslot_tidrange(TableScanDesc scan, ScanDirection dir,
								TupleTableSlot *slot)
{
	return next_visible(scan, [=] {
		return heap_routine->scan_getnextslot_tidrange(scan, dir, slot);
	});
}

bool
child_scan_sample_next_tuple(TableScanDesc scan, SampleScanState *state,
							 TupleTableSlot *slot)
{
	return next_visible(scan, [=] {
		return heap_routine->scan_sample_next_tuple(scan, state, slot);
	});
}

/*
 * The member of the HOT chain starting at *tid that the child sees, if
 * any; *tid is moved to it.  The caller holds a share lock on buf.  If
 * all_dead is given, it is set to whether no member was found and every
 * member is dead to everybody (so the index entry may be killed), as
 * heap_hot_search_buffer() does.
 */
bool
hot_search(ItemPointer tid, Relation rel, Buffer buf, Snapshot snap,
		   HeapTuple tup, bool *all_dead)
{
	ItemPointerData pos = *tid;
	bool		first = true;
	GlobalVisState *vistest = nullptr;

	if (all_dead != nullptr)
		*all_dead = true;
	while (heap_hot_search_buffer(&pos, rel, buf, &any_snapshot, tup,
								  nullptr, first))
	{
		first = false;
		if (tuple_visible(rel, tup, snap, buf))
		{
			*tid = pos;
			PredicateLockTID(rel, &tup->t_self, snap,
							 HeapTupleHeaderGetXmin(tup->t_data));
			if (all_dead != nullptr)
				*all_dead = false;
			return true;
		}
		if (all_dead != nullptr && *all_dead)
		{
			if (vistest == nullptr)
				vistest = GlobalVisTestFor(rel);
			if (!HeapTupleIsSurelyDead(tup, vistest))
				*all_dead = false;
		}
	}
	return false;
}

/* heapam_index_fetch_tuple, with hot_search() for the visibility test. */
bool
child_index_fetch_tuple(IndexFetchTableData *scan, ItemPointer tid,
						Snapshot snap, TupleTableSlot *slot,
						bool *call_again, bool *all_dead)
{
	if (!applies(scan->rel, snap))
		return heap_routine->index_fetch_tuple(scan, tid, snap, slot,
											   call_again, all_dead);

	IndexFetchHeapData *h = reinterpret_cast<IndexFetchHeapData *>(scan);
	BufferHeapTupleTableSlot *bslot = reinterpret_cast<BufferHeapTupleTableSlot *>(slot);
	Buffer		prev = h->xs_cbuf;
	bool		found;

	Assert(TTS_IS_BUFFERTUPLE(slot));
	h->xs_cbuf = ReleaseAndReadBuffer(h->xs_cbuf, scan->rel,
									  ItemPointerGetBlockNumber(tid));
	if (prev != h->xs_cbuf)
		heap_page_prune_opt(scan->rel, h->xs_cbuf);

	LockBuffer(h->xs_cbuf, BUFFER_LOCK_SHARE);
	found = hot_search(tid, scan->rel, h->xs_cbuf, snap, &bslot->base.tupdata,
					   all_dead);
	bslot->base.tupdata.t_self = *tid;
	LockBuffer(h->xs_cbuf, BUFFER_LOCK_UNLOCK);

	/* One member at most is visible to an MVCC snapshot. */
	*call_again = false;
	if (found)
	{
		slot->tts_tableOid = RelationGetRelid(scan->rel);
		ExecStoreBufferHeapTuple(&bslot->base.tupdata, slot, h->xs_cbuf);
	}
	return found;
}

/* heapam_scan_bitmap_next_block, with our visibility test. */
bool
child_scan_bitmap_next_block(TableScanDesc scan, TBMIterateResult *tbmres)
{
	if (!applies(scan->rs_rd, scan->rs_snapshot))
		return heap_routine->scan_bitmap_next_block(scan, tbmres);

	HeapScanDesc h = reinterpret_cast<HeapScanDesc>(scan);
	Relation	rel = scan->rs_rd;
	Snapshot	snap = scan->rs_snapshot;
	BlockNumber block = tbmres->blockno;
	Buffer		buf;
	int			ntup = 0;

	h->rs_cindex = 0;
	h->rs_ntuples = 0;
	/* Entries past the end we knew of (serializable must look at them). */
	if (!IsolationIsSerializable() && block >= h->rs_nblocks)
		return false;

	h->rs_cbuf = ReleaseAndReadBuffer(h->rs_cbuf, rel, block);
	h->rs_cblock = block;
	buf = h->rs_cbuf;
	heap_page_prune_opt(rel, buf);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	if (tbmres->ntuples >= 0)
	{
		/* exact: the listed offsets, following each one's HOT chain */
		for (int i = 0; i < tbmres->ntuples; i++)
		{
			ItemPointerData tid;
			HeapTupleData tup;

			ItemPointerSet(&tid, block, tbmres->offsets[i]);
			if (hot_search(&tid, rel, buf, snap, &tup, nullptr))
				h->rs_vistuples[ntup++] = ItemPointerGetOffsetNumber(&tid);
		}
	}
	else
	{
		/* lossy: every tuple on the page */
		Page		page = BufferGetPage(buf);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

		for (OffsetNumber o = FirstOffsetNumber; o <= maxoff; o++)
		{
			HeapTupleData tup;

			if (tuple_at(rel, page, block, o, &tup) &&
				tuple_visible(rel, &tup, snap, buf))
			{
				h->rs_vistuples[ntup++] = o;
				PredicateLockTID(rel, &tup.t_self, snap,
								 HeapTupleHeaderGetXmin(tup.t_data));
			}
		}
	}
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
	Assert(ntup <= MaxHeapTuplesPerPage);
	h->rs_ntuples = ntup;
	return ntup > 0;
}

/* heapam_fetch_row_version: heap_fetch() under SNAPSHOT_ANY, then decide. */
bool
child_fetch_row_version(Relation rel, ItemPointer tid, Snapshot snap,
						TupleTableSlot *slot)
{
	if (!applies(rel, snap))
		return heap_routine->tuple_fetch_row_version(rel, tid, snap, slot);

	BufferHeapTupleTableSlot *bslot = reinterpret_cast<BufferHeapTupleTableSlot *>(slot);
	Buffer		buf;
	bool		visible;

	Assert(TTS_IS_BUFFERTUPLE(slot));
	bslot->base.tupdata.t_self = *tid;
	if (!heap_fetch(rel, &any_snapshot, &bslot->base.tupdata, &buf, false))
		return false;
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	TestForOldSnapshot(snap, rel, BufferGetPage(buf));
	visible = tuple_visible(rel, &bslot->base.tupdata, snap, buf);
	if (visible)
		PredicateLockTID(rel, &bslot->base.tupdata.t_self, snap,
						 HeapTupleHeaderGetXmin(bslot->base.tupdata.t_data));
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
	if (!visible)
	{
		ReleaseBuffer(buf);
		bslot->base.tupdata.t_data = nullptr;
		return false;
	}
	ExecStorePinnedBufferHeapTuple(&bslot->base.tupdata, slot, buf);
	slot->tts_tableOid = RelationGetRelid(rel);
	return true;
}

bool
child_tuple_satisfies_snapshot(Relation rel, TupleTableSlot *slot,
							   Snapshot snap)
{
	if (!applies(rel, snap))
		return heap_routine->tuple_satisfies_snapshot(rel, slot, snap);

	BufferHeapTupleTableSlot *bslot = reinterpret_cast<BufferHeapTupleTableSlot *>(slot);
	bool		visible;

	Assert(TTS_IS_BUFFERTUPLE(slot) && BufferIsValid(bslot->buffer));
	LockBuffer(bslot->buffer, BUFFER_LOCK_SHARE);
	visible = tuple_visible(rel, bslot->base.tuple, snap, bslot->buffer);
	LockBuffer(bslot->buffer, BUFFER_LOCK_UNLOCK);
	return visible;
}

TM_Result
child_tuple_delete(Relation rel, ItemPointer tid, CommandId cid,
				   Snapshot snap, Snapshot crosscheck, bool wait,
				   TM_FailureData *tmfd, bool changing_part)
{
	if (held_by_ancestors(rel, tid))
		report_ancestor_row(rel, tid, "delete");
	return heap_routine->tuple_delete(rel, tid, cid, snap, crosscheck, wait,
									  tmfd, changing_part);
}

TM_Result
child_tuple_update(Relation rel, ItemPointer otid, TupleTableSlot *slot,
				   CommandId cid, Snapshot snap, Snapshot crosscheck,
				   bool wait, TM_FailureData *tmfd, LockTupleMode *lockmode,
				   bool *update_indexes)
{
	if (held_by_ancestors(rel, otid))
		report_ancestor_row(rel, otid, "update");
	return heap_routine->tuple_update(rel, otid, slot, cid, snap, crosscheck,
									  wait, tmfd, lockmode, update_indexes);
}

TM_Result
child_tuple_lock(Relation rel, ItemPointer tid, Snapshot snap,
				 TupleTableSlot *slot, CommandId cid, LockTupleMode mode,
				 LockWaitPolicy wait_policy, uint8 flags,
				 TM_FailureData *tmfd)
{
	if (held_by_ancestors(rel, tid))
	{
		/*
		 * The row is the parent's: a wait for it could only end in a
		 * deadlock.  SKIP LOCKED skips it and NOWAIT fails as for any row
		 * held by another transaction; otherwise the child gets 55T01.
		 */
		if (wait_policy == LockWaitSkip)
			return TM_WouldBlock;
		if (wait_policy == LockWaitError)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("could not obtain lock on row in relation \"%s\"",
							RelationGetRelationName(rel)),
					 errdetail("The parent transaction wrote or locked it.")));
		report_ancestor_row(rel, tid, "lock");
	}
	return heap_routine->tuple_lock(rel, tid, snap, slot, cid, mode,
									wait_policy, flags, tmfd);
}

/*
 * Index builds read the table with heap_getnext(), which accepts heap's
 * routine only: lend the relation heap's routine meanwhile.  The scans are
 * under SNAPSHOT_ANY (or, for CONCURRENTLY, outside any transaction block,
 * which children never are), so nothing of ours is lost.  A relcache
 * rebuild of the relation during the build would restore our routine; the
 * relcache callback lends heap's again.
 */
Relation	lent_rel = nullptr;
bool		lend_callback_registered = false;

void
relcache_relend(Datum arg, Oid relid)
{
	if (lent_rel != nullptr &&
		(relid == InvalidOid || relid == RelationGetRelid(lent_rel)))
		lent_rel->rd_tableam = heap_routine;
}

/* Lend rel heap's routine until the returned previous state is restored. */
Relation
lend_heap_routine(Relation rel)
{
	Relation	prev = lent_rel;

	if (!lend_callback_registered)
	{
		CacheRegisterRelcacheCallback(relcache_relend, (Datum) 0);
		lend_callback_registered = true;
	}
	lent_rel = rel;
	rel->rd_tableam = heap_routine;
	return prev;
}

void
end_lending(Relation rel, Relation prev)
{
	rel->rd_tableam = &child_routine;
	lent_rel = prev;
}

double
child_index_build_range_scan(Relation rel, Relation index, IndexInfo *info,
							 bool allow_sync, bool anyvisible, bool progress,
							 BlockNumber start, BlockNumber numblocks,
							 IndexBuildCallback callback, void *state,
							 TableScanDesc scan)
{
	Relation	prev = lend_heap_routine(rel);
	double		result;

	PG_TRY();
	{
		result = heap_routine->index_build_range_scan(rel, index, info,
													  allow_sync, anyvisible,
													  progress, start,
													  numblocks, callback,
													  state, scan);
	}
	PG_FINALLY();
	{
		end_lending(rel, prev);
	}
	PG_END_TRY();
	return result;
}

void
child_index_validate_scan(Relation rel, Relation index, IndexInfo *info,
						  Snapshot snap, ValidateIndexState *state)
{
	Relation	prev = lend_heap_routine(rel);

	PG_TRY();
	{
		heap_routine->index_validate_scan(rel, index, info, snap, state);
	}
	PG_FINALLY();
	{
		end_lending(rel, prev);
	}
	PG_END_TRY();
}

const TableAmRoutine *
get_child_routine()
{
	if (!child_routine_ready)
	{
		heap_routine = GetHeapamTableAmRoutine();
		child_routine = *heap_routine;
		child_routine.scan_begin = child_scan_begin;
		child_routine.scan_rescan = child_scan_rescan;
		child_routine.scan_getnextslot = child_scan_getnextslot;
		child_routine.scan_getnextslot_tidrange = child_scan_getnextslot_tidrange;
		child_routine.scan_sample_next_tuple = child_scan_sample_next_tuple;
		child_routine.index_fetch_tuple = child_index_fetch_tuple;
		child_routine.scan_bitmap_next_block = child_scan_bitmap_next_block;
		child_routine.tuple_fetch_row_version = child_fetch_row_version;
		child_routine.tuple_satisfies_snapshot = child_tuple_satisfies_snapshot;
		child_routine.tuple_delete = child_tuple_delete;
		child_routine.tuple_update = child_tuple_update;
		child_routine.tuple_lock = child_tuple_lock;
		child_routine.index_build_range_scan = child_index_build_range_scan;
		child_routine.index_validate_scan = child_index_validate_scan;
		memset(&any_snapshot, 0, sizeof(any_snapshot));
		any_snapshot.snapshot_type = SNAPSHOT_ANY;
		child_routine_ready = true;
	}
	return &child_routine;
}

/*
 * Parallel workers do not have the ancestors' writes, and a query started
 * in an earlier request has a snapshot older than the ancestors' latest
 * writes.  Both matter only for queries that read child_txn_heap tables
 * (PlannedStmt.relationOids lists every table a plan reads, subplans
 * included).
 */
bool
plan_reads_intent_tables(PlannedStmt *stmt)
{
	Oid			am = get_am_oid("child_txn_heap", true);
	ListCell   *lc;

	if (!OidIsValid(am))
		return false;
	foreach(lc, stmt->relationOids)
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(lfirst_oid(lc)));
		bool		found = false;

		if (HeapTupleIsValid(tup))
		{
			found = ((Form_pg_class) GETSTRUCT(tup))->relam == am;
			ReleaseSysCache(tup);
		}
		if (found)
			return true;
	}
	return false;
}

/*
 * What a child worker notes about each query it starts, kept in the
 * query's executor memory and unlinked when that memory goes (at
 * ExecutorEnd, or when an error or the end of a portal frees it).
 */
struct QueryNote
{
	QueryDesc  *desc;
	uint64		signature;		/* ancestors' writes when it started */
	int			reads_intent_tables;	/* -1 not known yet, else a bool */
	MemoryContextCallback cb;
	QueryNote  *next;
};

QueryNote  *query_notes = nullptr;
ExecutorStart_hook_type prev_executor_start = nullptr;

void
forget_query_note(void *arg)
{
	for (QueryNote **p = &query_notes; *p != nullptr; p = &(*p)->next)
		if (*p == arg)
		{
			*p = (*p)->next;
			break;
		}
}

void
child_executor_start(QueryDesc *desc, int eflags)
{
	if (prev_executor_start)
		prev_executor_start(desc, eflags);
	else
		standard_ExecutorStart(desc, eflags);
	if (in_child_worker && desc->estate != nullptr)
	{
		QueryNote  *note = static_cast<QueryNote *>(
			MemoryContextAllocZero(desc->estate->es_query_cxt, sizeof(QueryNote)));

		note->desc = desc;
		note->signature = current_signature();
		/* looked up only if it ever runs with ancestors' writes present */
		note->reads_intent_tables = -1;
		note->cb.func = forget_query_note;
		note->cb.arg = note;
		MemoryContextRegisterResetCallback(desc->estate->es_query_cxt, &note->cb);
		note->next = query_notes;
		query_notes = note;
	}
}

/*
 * For a query that reads child_txn_heap tables while ancestors' writes are
 * present: refuse to go on with a query (a cursor) started before the
 * ancestors' latest writes, and run it without parallel workers.
 * ExecutePlan() turns parallel mode off for a query marked as already
 * executed (older 15.x releases look at execute_once instead).
 */
void
child_executor_run(QueryDesc *desc, ScanDirection dir, uint64 count,
				   bool execute_once)
{
	if (in_child_worker && present())
	{
		QueryNote  *note = query_notes;

		while (note != nullptr && note->desc != desc)
			note = note->next;
		if (note != nullptr && note->reads_intent_tables < 0)
			note->reads_intent_tables = plan_reads_intent_tables(desc->plannedstmt);
		if (note == nullptr || note->reads_intent_tables)
		{
			if (note != nullptr && note->signature != current_signature())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access to a child_txn_heap "
								"table: the parent transaction wrote after this "
								"query or cursor started"),
						 errdetail("A query reads its parent's writes as they "
								   "were when it started; they have changed "
								   "since."),
						 errhint("Close the cursor and open it again.")));
			desc->already_executed = true;
			execute_once = false;
		}
	}
	if (prev_executor_run)
		prev_executor_run(desc, dir, count, execute_once);
	else
		standard_ExecutorRun(desc, dir, count, execute_once);
}

/* Plans made while ancestors' writes are present read them serially. */
PlannedStmt *
child_planner(Query *parse, const char *query_string, int cursor_options,
			  ParamListInfo params)
{
	Query	   *spare = nullptr;
	PlannedStmt *stmt;

	/* the planner may scribble on its input: keep a copy to plan again */
	if (in_child_worker && present() && (cursor_options & CURSOR_OPT_PARALLEL_OK))
		spare = static_cast<Query *>(copyObjectImpl(parse));
	stmt = prev_planner ?
		prev_planner(parse, query_string, cursor_options, params) :
		standard_planner(parse, query_string, cursor_options, params);
	if (spare != nullptr && stmt->parallelModeNeeded &&
		plan_reads_intent_tables(stmt))
	{
		cursor_options &= ~CURSOR_OPT_PARALLEL_OK;
		stmt = prev_planner ?
			prev_planner(spare, query_string, cursor_options, params) :
			standard_planner(spare, query_string, cursor_options, params);
	}
	return stmt;
}

} // namespace

void
install_hooks()
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = child_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = child_executor_run;
	prev_planner = planner_hook;
	planner_hook = child_planner;
}

} // namespace heap
} // namespace child_txn

extern "C"
{
PG_FUNCTION_INFO_V1(child_txn_heap_handler);
}

/*
 * child_txn_heap_handler
 *		Handler of the child_txn_heap access method: heap's own routine
 *		everywhere but in child workers.
 */
extern "C" Datum
child_txn_heap_handler(PG_FUNCTION_ARGS)
{
	if (child_txn::heap::in_child_worker)
		PG_RETURN_POINTER(child_txn::heap::get_child_routine());
	PG_RETURN_POINTER(GetHeapamTableAmRoutine());
}
