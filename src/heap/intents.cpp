/*
 * intents.cpp
 *		Publishing an ancestor's uncommitted writes to its child, and the
 *		visibility rule that uses them (see intents.hpp).
 *
 * Wire format of the intents (native byte order; both ends are processes of
 * one server): uint32 nlayers, then per layer a WireLayer followed by its
 * sorted transaction ids and its combo command ids as (cmin, cmax) pairs.
 */
#include "heap/intents.hpp"

namespace child_txn
{
namespace heap
{
namespace
{

/*
 * xact.c's SerializedTransactionState and combocid.c's ComboCidKeyData are
 * private; these mirror them.  publish() checks the mirror against what it
 * can learn through public functions, so a layout change fails loudly.
 */
struct SerializedXactMirror
{
	int			xactIsoLevel;
	bool		xactDeferrable;
	FullTransactionId topFullTransactionId;
	FullTransactionId currentFullTransactionId;
	CommandId	currentCommandId;
	int			nParallelCurrentXids;
	TransactionId parallelCurrentXids[FLEXIBLE_ARRAY_MEMBER];
};

struct ComboPair
{
	CommandId	cmin;
	CommandId	cmax;
};

struct WireLayer
{
	TransactionId top;
	CommandId	curcid;
	uint32		nxids;
	uint32		ncombo;
};

/* One ancestor's writes, as adopted by the child. */
struct Layer
{
	TransactionId top;
	CommandId	curcid;			/* its statement in progress */
	uint32		nxids;
	uint32		ncombo;
	const TransactionId *xids;	/* sorted: top and subcommitted subxids */
	const ComboPair *combo;
};

/* More than this is refused: it would have to pass through the queue. */
constexpr Size kMaxIntentBytes = 256 * 1024 * 1024;

Layer	   *layers = nullptr;
int			nlayers = 0;

/* Changes with every adopt() and forget(): see generation(). */
uint64		adopt_generation = 0;

/*
 * What the ancestors had written when the child's transaction snapshot was
 * taken (signature()), and whether they have written since: a repeatable
 * read or serializable child must not mix an older snapshot with newer
 * ancestor writes (see check_snapshot()).
 */
uint64		snapshot_signature = 0;
bool		written_since_snapshot = false;

/* Where publish() builds its answer; reset by the next call. */
MemoryContext publish_cxt = nullptr;

/* One-entry cache of layer_of(), for runs of tuples of one transaction. */
TransactionId cached_xid = InvalidTransactionId;
const Layer *cached_layer = nullptr;

/* The ancestor layer whose transaction wrote xid, or nullptr. */
const Layer *
layer_of(TransactionId xid)
{
	if (!TransactionIdIsNormal(xid))
		return nullptr;
	if (xid == cached_xid)
		return cached_layer;

	const Layer *found = nullptr;

	for (int i = 0; i < nlayers && found == nullptr; i++)
	{
		const Layer &l = layers[i];

		if (xid == l.top)
			found = &l;
		else if (TransactionIdFollows(xid, l.top) && l.nxids > 0 &&
				 bsearch(&xid, l.xids, l.nxids, sizeof(TransactionId),
						 xidComparator) != nullptr)
			found = &l;
	}
	cached_xid = xid;
	cached_layer = found;
	return found;
}

/* The (cmin, cmax) pair of combo command id cid of layer l. */
const ComboPair &
combo_pair(const Layer *l, CommandId cid)
{
	if (cid >= l->ncombo)
		elog(ERROR, "child_txn: combo command id %u of transaction %u is "
			 "unknown (it has %u)", cid, l->top, l->ncombo);
	return l->combo[cid];
}

/* The transaction that deleted or updated the tuple, if any (not lockers). */
TransactionId
updater_of(HeapTupleHeader t)
{
	uint16		mask = t->t_infomask;

	if ((mask & HEAP_XMAX_INVALID) || HEAP_XMAX_IS_LOCKED_ONLY(mask))
		return InvalidTransactionId;
	if (mask & HEAP_XMAX_IS_MULTI)
		return HeapTupleGetUpdateXid(t);
	return HeapTupleHeaderGetRawXmax(t);
}

/*
 * A digest of how far each ancestor has written: its transaction, its
 * subtransactions with ids and its command id.  The command counter
 * advances only past commands that wrote (or locked rows), so an unchanged
 * digest means no ancestor has written since.
 */
uint64
signature()
{
	uint64		h = static_cast<uint64>(nlayers);

	for (int i = 0; i < nlayers; i++)
	{
		h = hash_combine64(h, layers[i].top);
		h = hash_combine64(h, layers[i].curcid);
		h = hash_combine64(h, layers[i].nxids);
	}
	return h;
}

/* Append n bytes to the buffer at *pos. */
void
put(char *buf, Size *pos, const void *data, Size n)
{
	if (n > 0)
		memcpy(buf + *pos, data, n);
	*pos += n;
}

} // namespace

char *
publish(Size *len)
{
	TransactionId top = GetTopTransactionIdIfAny();
	SerializedXactMirror *xs = nullptr;
	char	   *combo = nullptr;
	WireLayer	own = {};
	Size		size = sizeof(uint32);
	uint32		count = static_cast<uint32>(nlayers);
	char	   *buf;
	Size		pos = 0;

	*len = 0;
	if (publish_cxt == nullptr)
		publish_cxt = AllocSetContextCreate(TopMemoryContext,
											"child_txn parent state",
											ALLOCSET_SMALL_SIZES);
	MemoryContextReset(publish_cxt);

	if (TransactionIdIsValid(top))
	{
		Size		xsize = EstimateTransactionStateSpace();
		Size		csize = EstimateComboCIDStateSpace();

		xs = static_cast<SerializedXactMirror *>(MemoryContextAlloc(publish_cxt, xsize));
		/* it leaves scratch space behind: in publish_cxt, reset next time */
		MemoryContext old_cxt = MemoryContextSwitchTo(publish_cxt);

		SerializeTransactionState(xsize, reinterpret_cast<char *>(xs));
		MemoryContextSwitchTo(old_cxt);
		if (XidFromFullTransactionId(xs->topFullTransactionId) != top ||
			xs->currentCommandId != GetCurrentCommandId(false) ||
			xs->nParallelCurrentXids < 1 ||
			offsetof(SerializedXactMirror, parallelCurrentXids) +
			sizeof(TransactionId) * static_cast<Size>(xs->nParallelCurrentXids) != xsize)
			elog(ERROR, "child_txn: unexpected layout of the serialized "
				 "transaction state");
		combo = static_cast<char *>(MemoryContextAlloc(publish_cxt, csize));
		SerializeComboCIDState(csize, combo);

		own.top = top;
		own.curcid = GetCurrentCommandId(false);
		own.nxids = static_cast<uint32>(xs->nParallelCurrentXids);
		own.ncombo = static_cast<uint32>(*reinterpret_cast<int *>(combo));
		if (sizeof(int) + sizeof(ComboPair) * static_cast<Size>(own.ncombo) != csize)
			elog(ERROR, "child_txn: unexpected layout of the serialized "
				 "combo command ids");
		count++;
	}
	if (count == 0)
		return nullptr;

	for (int i = 0; i < nlayers; i++)
		size += sizeof(WireLayer) +
			sizeof(TransactionId) * static_cast<Size>(layers[i].nxids) +
			sizeof(ComboPair) * static_cast<Size>(layers[i].ncombo);
	if (xs != nullptr)
		size += sizeof(WireLayer) +
			sizeof(TransactionId) * static_cast<Size>(own.nxids) +
			sizeof(ComboPair) * static_cast<Size>(own.ncombo);
	if (size > kMaxIntentBytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("transaction state too large to pass to a child "
						"transaction (%zu bytes)", size),
				 errdetail("A child is sent the ids of its parent's "
						   "subtransactions and combo command ids; at most "
						   "%zu bytes can be sent.", kMaxIntentBytes),
				 errhint("Use fewer subtransactions (savepoints, exception "
						 "blocks) in the parent transaction.")));

	buf = static_cast<char *>(MemoryContextAllocHuge(publish_cxt, size));
	put(buf, &pos, &count, sizeof(count));
	for (int i = 0; i < nlayers; i++)
	{
		const Layer &l = layers[i];
		WireLayer	w = {l.top, l.curcid, l.nxids, l.ncombo};

		put(buf, &pos, &w, sizeof(w));
		put(buf, &pos, l.xids, sizeof(TransactionId) * l.nxids);
		put(buf, &pos, l.combo, sizeof(ComboPair) * l.ncombo);
	}
	if (xs != nullptr)
	{
		put(buf, &pos, &own, sizeof(own));
		put(buf, &pos, xs->parallelCurrentXids, sizeof(TransactionId) * own.nxids);
		put(buf, &pos, combo + sizeof(int), sizeof(ComboPair) * own.ncombo);
	}
	Assert(pos == size);
	*len = size;
	return buf;
}

void
adopt(const char *data, Size len, MemoryContext cxt)
{
	char	   *copy;
	uint32		count;
	Size		pos = sizeof(uint32);

	forget();
	if (len == 0)
		return;
	if (len < sizeof(uint32))
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("child_txn worker received malformed parent state")));
	copy = static_cast<char *>(MemoryContextAlloc(cxt, len));
	memcpy(copy, data, len);
	memcpy(&count, copy, sizeof(count));
	if (count > (len - sizeof(uint32)) / sizeof(WireLayer))
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("child_txn worker received malformed parent state")));
	Layer	   *parsed = static_cast<Layer *>(
		MemoryContextAllocZero(cxt, sizeof(Layer) * Max(count, 1)));

	for (uint32 i = 0; i < count; i++)
	{
		WireLayer	w;
		Size		need;

		if (len - pos < sizeof(w))
			ereport(FATAL,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("child_txn worker received malformed parent state")));
		memcpy(&w, copy + pos, sizeof(w));
		pos += sizeof(w);
		need = sizeof(TransactionId) * static_cast<Size>(w.nxids) +
			sizeof(ComboPair) * static_cast<Size>(w.ncombo);
		if (len - pos < need)
			ereport(FATAL,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("child_txn worker received malformed parent state")));
		parsed[i].top = w.top;
		parsed[i].curcid = w.curcid;
		parsed[i].nxids = w.nxids;
		parsed[i].ncombo = w.ncombo;
		parsed[i].xids = reinterpret_cast<const TransactionId *>(copy + pos);
		parsed[i].combo = reinterpret_cast<const ComboPair *>(
			copy + pos + sizeof(TransactionId) * w.nxids);
		pos += need;
	}
	if (pos != len)
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("child_txn worker received malformed parent state")));
	layers = parsed;
	nlayers = static_cast<int>(count);
}

void
note_request_start()
{
	uint64		sig = signature();

	/* The transaction's snapshot, if it takes one now, sees these writes. */
	if (!FirstSnapshotSet)
		snapshot_signature = sig;
	written_since_snapshot = sig != snapshot_signature;
}

void
forget()
{
	layers = nullptr;
	nlayers = 0;
	cached_xid = InvalidTransactionId;
	cached_layer = nullptr;
	adopt_generation++;
	written_since_snapshot = false;
}

uint64
generation()
{
	return adopt_generation;
}

uint64
current_signature()
{
	return signature();
}

void
check_snapshot(Relation rel)
{
	if (written_since_snapshot && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access to table \"%s\": the parent "
						"transaction wrote after this child's snapshot was taken",
						RelationGetRelationName(rel)),
				 errdetail("A repeatable read or serializable child sees its "
						   "ancestors' writes as they were when its snapshot "
						   "was taken; they have written since."),
				 errhint("Use a read committed child, or begin the child "
						 "after the parent's writes."),
				 errtable(rel)));
}

bool
present()
{
	return nlayers > 0;
}

/*
 * The rule, for a tuple header t:
 *
 * - xmin is an ancestor's (never hinted while it runs): the tuple is
 *   visible if that ancestor inserted it in a completed command (cmin below
 *   its command in progress) and no ancestor deleted it in a completed
 *   command.  A delete by a rolled-back subtransaction does not count: its
 *   id is not in any layer.
 * - xmin is anybody else's: the stock test decides; if the deleter is an
 *   ancestor the stock test sees it as in progress (it is, and it is in our
 *   snapshot's xip or beyond its xmax), so it answers "is xmin visible", and
 *   a delete by the ancestor in its command in progress leaves the tuple
 *   visible.
 *
 * Combo command ids always belong to xmin's transaction: one is made only
 * when the deleting transaction also inserted the tuple.  When a deeper
 * ancestor deleted a row an outer one inserted, t_cid holds the deleter's
 * cmax; the inserter's cmin is then not needed, since the deleter saw the
 * row.
 */
bool
tuple_visible(Relation rel, HeapTuple tup, Snapshot snap, Buffer buf)
{
	HeapTupleHeader t = tup->t_data;
	uint16		mask = t->t_infomask;
	const Layer *inserter = nullptr;
	const Layer *deleter = nullptr;
	TransactionId upd;
	bool		visible;

	if (nlayers == 0)
	{
		visible = HeapTupleSatisfiesVisibility(tup, snap, buf);
		HeapCheckForSerializableConflictOut(visible, rel, tup, buf, snap);
		return visible;
	}

	if (!(mask & (HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID)))
		inserter = layer_of(HeapTupleHeaderGetRawXmin(t));
	upd = updater_of(t);
	if (TransactionIdIsValid(upd) && !(mask & HEAP_XMAX_COMMITTED))
		deleter = layer_of(upd);

	if (inserter != nullptr)
	{
		CommandId	raw = HeapTupleHeaderGetRawCommandId(t);
		CommandId	cmin = raw;
		CommandId	cmax = raw;
		bool		cmin_known = true;

		if (mask & HEAP_COMBOCID)
		{
			const ComboPair &p = combo_pair(inserter, raw);

			cmin = p.cmin;
			cmax = p.cmax;
		}
		else if (TransactionIdIsValid(HeapTupleHeaderGetRawXmax(t)) &&
				 !HEAP_XMAX_IS_LOCKED_ONLY(mask))
		{
			/*
			 * Somebody other than the inserter's transaction deleted or
			 * updated it (with the inserter's, the cids would be combined):
			 * t_cid is that deleter's cmax, and the deleter saw the row.
			 */
			cmin_known = false;
		}
		if (cmin_known && cmin >= inserter->curcid)
			return false;		/* inserted by a command not yet complete */
		if (deleter == nullptr)
			return true;		/* not deleted, or by a rolled-back subxact */
		return cmax >= deleter->curcid;
	}

	visible = HeapTupleSatisfiesVisibility(tup, snap, buf);
	if (deleter != nullptr)
	{
		/* t_cid is the deleter's cmax: xmin is not the deleter's */
		if (!visible)
		{
			/* as heap would: the conflict-out check resolves to xmin */
			HeapCheckForSerializableConflictOut(false, rel, tup, buf, snap);
			return false;
		}
		return HeapTupleHeaderGetRawCommandId(t) >= deleter->curcid;
	}
	HeapCheckForSerializableConflictOut(visible, rel, tup, buf, snap);
	return visible;
}

bool
held_by_ancestors(Relation rel, ItemPointer tid)
{
	Buffer		buf;
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	bool		ancestors = false;

	if (nlayers == 0)
		return false;
	buf = ReadBuffer(rel, ItemPointerGetBlockNumber(tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (off >= FirstOffsetNumber && off <= PageGetMaxOffsetNumber(page) &&
		ItemIdIsNormal(PageGetItemId(page, off)))
	{
		HeapTupleHeader t = reinterpret_cast<HeapTupleHeader>(
			PageGetItem(page, PageGetItemId(page, off)));
		uint16		mask = t->t_infomask;

		if (!(mask & (HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID)) &&
			layer_of(HeapTupleHeaderGetRawXmin(t)) != nullptr)
			ancestors = true;
		else if (!(mask & (HEAP_XMAX_INVALID | HEAP_XMAX_COMMITTED)))
		{
			TransactionId xmax = HeapTupleHeaderGetRawXmax(t);

			if (HEAP_LOCKED_UPGRADED(mask))
			{
				/* a lock from before pg_upgrade: nobody's now */
			}
			else if (mask & HEAP_XMAX_IS_MULTI)
			{
				MultiXactMember *members;
				int			n = GetMultiXactIdMembers(xmax, &members, false,
													  HEAP_XMAX_IS_LOCKED_ONLY(mask));

				for (int i = 0; i < n && !ancestors; i++)
					ancestors = layer_of(members[i].xid) != nullptr;
				if (n > 0)
					pfree(members);
			}
			else
				ancestors = layer_of(xmax) != nullptr;
		}
	}
	UnlockReleaseBuffer(buf);
	return ancestors;
}

void
report_ancestor_row(Relation rel, ItemPointer tid, const char *action)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHILD_TXN_PARENT_ROW),
			 errmsg("cannot %s a row of table \"%s\" that the parent "
					"transaction wrote or locked",
					action, RelationGetRelationName(rel)),
			 errdetail("Row version (%u,%u) belongs to an uncommitted "
					   "ancestor of this child transaction.",
					   ItemPointerGetBlockNumber(tid),
					   ItemPointerGetOffsetNumber(tid)),
			 errhint("Make this change in the parent transaction, or "
					 "commit the parent before starting the child."),
			 errtable(rel)));
}

} // namespace heap
} // namespace child_txn
