/*
 * protocol.hpp
 *		What a parent and its child worker share: the DSM layout, the request
 *		codes, the response messages and the execution lock.
 *
 * The central rule (DESIGN.md 3.3): whenever a parent waits for its child,
 * it waits in the lock manager on a lock the child holds, so that the
 * deadlock detector sees the edge parent -> child.  Each worker (pool slot)
 * has two *execution locks*, lock tags unique to the slot, used alternately:
 * the worker numbers the requests it serves, across all its children, and
 * request number n is covered by ExecLock[n % 2].
 *
 *	 worker: holds ExecLock[n % 2] in ExclusiveLock (a session lock) from
 *			 before request n can be sent to it (also while it idles in the
 *			 pool) until that request is finished and its output is spooled.
 *			 To finish, it first takes ExecLock[(n + 1) % 2] (free: the
 *			 parent dropped it before sending request n), then releases
 *			 ExecLock[n % 2], streams the spool to the parent and sends 'Z'.
 *	 parent: sends request n, then waits for ShareLock on ExecLock[n % 2];
 *			 once granted it drops the lock at once and reads the response.
 *			 (If the header's `answered` shows request n done already, the
 *			 lock is free: it skips taking it.)
 *			 It learns n from the pool slot when it is given the worker.
 *
 * So the lock a parent waits on is always held by the worker until the
 * request is done, whether the parent starts waiting before or after the
 * worker finishes, and even when the worker has not yet woken up for a new
 * child; and the worker never blocks on the queue or a latch while holding
 * the lock its parent waits on.  If the worker dies, its locks go with it
 * and the parent's wait ends with the detached queue.  Aborting the child's
 * transaction releases the execution locks too (session locks of the
 * default lock method go at abort); that is harmless because the error is
 * spooled by then, and the worker takes the next lock before 'Z'.
 *
 * A child's environment (the parent's identity and settings, its
 * transaction block) is set up by the worker before it serves the child's
 * first request, as part of that request: no extra round trip.  Only a
 * worker started for the child announces itself with a 'Z' first, which
 * the parent awaits on the queue (the worker holds no lock it could need).
 *
 * Wake-ups cost more than anything else on a small child's path, so there
 * are two per request, no more: the parent's request wakes the worker and
 * the execution lock's release wakes the parent.  An idle worker taken from
 * the pool is not woken by the pool: under the pool lock the parent makes it
 * the receiver of the request queue and the sender of the response queue
 * (endpoints_preset), so the worker's attach wakes nobody and the request
 * (or the parent's detach, if it gives up first) wakes the worker.  A parent
 * does not detach from the queues of a child that ended: the worker is done
 * with them, and the detach would only wake it.  Even those two wake-ups
 * are mostly avoided by polling first (pg/spin.hpp): the parent polls the
 * header's `answered` before it waits for the lock, and a worker polls its
 * latch before it sleeps, between requests and in the pool.
 *
 * Requests (parent -> child queue): one byte of RequestCode, then the SQL
 * text with its terminating NUL (empty for Commit and Rollback).
 *
 * Responses (child -> parent queue): PostgreSQL v3 protocol messages, as a
 * message type byte followed by the message body: 'N' notice, 'E' error,
 * 'T' row description, 'D' data row, 'C' command complete; then kMsgReady
 * ('Z') whose body is ReadyBody.
 */
#pragma once

#include "pg/postgres_headers.hpp"

#include "child/pool.hpp"

namespace child_txn
{

/* shm_toc magic and keys of a child's DSM segment. */
constexpr uint64 kTocMagic = UINT64CONST(0x6368696c64747831); /* "childtx1" */
constexpr uint64 kKeyHeader = 1;
constexpr uint64 kKeyGucState = 2;
constexpr uint64 kKeyRequestQueue = 3;
constexpr uint64 kKeyResponseQueue = 4;

constexpr Size kRequestQueueSize = 16 * 1024;
constexpr Size kResponseQueueSize = 64 * 1024;

/* What the parent asks of its child. */
enum class RequestCode : char
{
	Start = 'S',		/* nothing more than setting the child up */
	Exec = 'X',			/* run statements, discard rows, report the count */
	Query = 'Q',		/* run statements, return rows */
	OneShot = 'O',		/* Exec, then commit if it succeeded */
	Commit = 'C',
	Rollback = 'R',
};

constexpr char kMsgReady = 'Z';

/* Transaction status carried by 'Z', as in the v3 protocol. */
constexpr char kTxnIdle = 'I';		/* no transaction: committed/rolled back */
constexpr char kTxnOpen = 'T';		/* transaction open */
constexpr char kTxnFailed = 'E';	/* transaction failed, awaiting rollback */

/* Body of a 'Z' message. */
struct ReadyBody
{
	char		txn_status;
	bool		committed;		/* for OneShot/Commit: the commit happened */
	int64		nprocessed;		/* rows processed by the last statement */
};

/*
 * Fixed header of a child's DSM segment.  The parent fills the identity part
 * before launching the worker; the mutex guards the hand-over fields below
 * it.
 */
struct ChildHeader
{
	/* identity and environment, written by the parent before launch */
	uint32		child_id;
	int32		depth;
	Oid			outer_user_id;		/* GetCurrentRoleId(): SET ROLE, or 0 */
	bool		outer_is_superuser;
	Oid			current_user_id;
	int			sec_context;
	int			isolation_level;	/* XACT_READ_COMMITTED etc. */
	int			deadlock_timeout_ms;
	char		application_name[NAMEDATALEN];

	/* hand-over state */
	slock_t		mutex;
	int32		worker_pid;		/* set by the worker at start */
	bool		request_inflight;	/* parent sent a request, no 'Z' yet */
	bool		abandoned;		/* parent gave up: never commit */
	bool		commit_started; /* child passed the point of no return */
	bool		committed;		/* child's commit completed */
	bool		worker_done;	/* the worker is done with this child's
								 * queues and header (it may keep the
								 * segment mapped, see worker.cpp) */
	bool		parent_released;	/* the parent let go of the segment: a
									 * worker keeping it mapped may unmap */
	bool		endpoints_preset;	/* the parent made the worker the
									 * request queue's receiver and the
									 * response queue's sender (a pooled
									 * worker, see parent.cpp) */
	bool		worker_attached;	/* the worker attached to both queues:
									 * from now on its exit detaches them */
	pg_atomic_uint32 answered;	/* 1 + number of the last request the
								 * worker answered: set once its 'Z' is
								 * sent, or as soon as its lock is free if
								 * its answer may not fit the queue; only a
								 * hint for a polling parent */
};

/* Class id of execution locks in pg_locks ("CT"). */
constexpr uint32 kExecLockClass = 0x4354;

/*
 * Execution lock number n of the worker in pool slot `slot`, generation
 * `generation` (the slot's generation when the worker took it).  It shows
 * in pg_locks as locktype 'userlock' with database = the worker's
 * database, classid = 17236, objid = the pool slot and objsubid =
 * 2 * (generation % 32768) + n % 2.  The generation keeps a parent whose
 * reserved worker died before its first request from waiting on the lock
 * of the next worker in the same slot (it would need 32768 workers in
 * that slot meanwhile to meet the same tag again).  It belongs to the
 * default lock method, so nothing a user can run (pg_advisory_unlock_all,
 * DISCARD) releases it.
 */
inline void
set_exec_locktag(LOCKTAG *tag, Oid database_id, int slot, uint32 generation,
				 uint32 n)
{
	tag->locktag_field1 = database_id;
	tag->locktag_field2 = kExecLockClass;
	tag->locktag_field3 = static_cast<uint32>(slot);
	tag->locktag_field4 = static_cast<uint16>(((generation & 0x7FFF) << 1) |
											  (n & 1));
	tag->locktag_type = LOCKTAG_USERLOCK;
	tag->locktag_lockmethodid = DEFAULT_LOCKMETHOD;
}

} // namespace child_txn
