/*
 * intents.hpp
 *		What a child sees of its ancestors' uncommitted writes in
 *		child_txn_heap tables (DESIGN.md 3.4; docs/child_txn_heap_design.md).
 *
 * With every request, a parent sends its child the *intents* of each
 * ancestor that has written: one layer per ancestor, outermost first, with
 * its top-level transaction id, the ids of its live and subcommitted
 * subtransactions (rolled-back ones are not there), the command id of its
 * statement in progress and its combo command ids.  The child worker
 * adopts them for the request; child_txn_heap's scans then show a row
 * version an ancestor wrote exactly as that ancestor sees it: inserted by
 * a completed command and not deleted by one.
 *
 * Ancestors are blocked while a child runs (they wait for it in the lock
 * manager), so their transactions stay in progress, their tuples are never
 * hinted and the state sent cannot change under the child.
 */
#pragma once

#include "pg/postgres_headers.hpp"

namespace child_txn
{
namespace heap
{

/* SQLSTATE of a child's write to a row version an ancestor wrote or locked. */
#define ERRCODE_CHILD_TXN_PARENT_ROW MAKE_SQLSTATE('5', '5', 'T', '0', '1')

/*
 * Parent side: the intents to send with a request, or nullptr with
 * *len = 0 when no ancestor (this transaction included) has written.  The
 * memory is ours and valid until the next call.
 */
char	   *publish(Size *len);

/*
 * Child worker side: take the intents that came with the request being
 * served (copied into cxt, which must outlive the request) / drop them.
 */
void		adopt(const char *data, Size len, MemoryContext cxt);
void		forget();

/* Does the request being served carry any ancestor's writes? */
bool		present();

/*
 * Called once the intents of a request are adopted, before it runs: notes
 * whether the ancestors have written since the child's transaction
 * snapshot was taken.
 */
void		note_request_start();

/*
 * For a repeatable read or serializable child: raise a serialization
 * failure if its ancestors have written since its snapshot was taken (it
 * would see their new row versions next to older versions its snapshot
 * keeps).  Read committed children take a snapshot per statement, newer
 * than every ancestor write.
 */
void		check_snapshot(Relation rel);

/* Changes whenever the adopted intents change (per-request caches). */
uint64		generation();

/*
 * Is the tuple visible to MVCC snapshot snap, counting ancestors' writes as
 * they see them?  The caller holds a pin and a share lock on buf.  Never
 * sets hint bits for ancestors' transaction ids.  Does the serializable
 * conflict-out check where no ancestor decided the answer.
 */
bool		tuple_visible(Relation rel, HeapTuple tup, Snapshot snap,
						  Buffer buf);

/* Was the row version at tid written, or is it locked, by an ancestor? */
bool		held_by_ancestors(Relation rel, ItemPointer tid);

/* Raise ERRCODE_CHILD_TXN_PARENT_ROW; action names the attempt ("update"). */
[[noreturn]] void report_ancestor_row(Relation rel, ItemPointer tid,
								  const char *action);

/* How far the ancestors have written, as a digest (changes when they write). */
uint64		current_signature();

} // namespace heap
} // namespace child_txn
