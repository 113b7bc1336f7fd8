/*
 * spool.hpp
 *		The child's output spool.
 *
 * While a child executes a statement it holds the execution lock its parent
 * waits on, so it must not block on the response queue.  Every protocol
 * message it produces (notices, errors, rows, command tags) is appended here
 * instead: in memory up to work_mem, then in a temporary file, so a result
 * of any size costs bounded memory.  Once the lock is released the spool is
 * drained into the response queue in order.
 */
#pragma once

#include "pg/postgres_headers.hpp"

namespace child_txn
{

class Spool
{
  public:
	/* Set up the spool's memory context; call once per process. */
	void		init();

	/* Append one protocol message. */
	void		append(char msgtype, const char *data, size_t len);

	/* Is there nothing to send? */
	bool		empty() const { return count_ == 0; }

	/*
	 * Would everything spooled fit in `bytes` bytes of a shm_mq?  Each
	 * message there takes a length word and is padded to MAXALIGN: count
	 * 16 bytes of that per message, against our 5-byte frames.
	 */
	bool		fits(size_t bytes) const
	{
		return file_ == nullptr && used_ + count_ * 16 <= bytes;
	}

	/*
	 * Send every spooled message, in order, to mqh.  Returns SHM_MQ_SUCCESS,
	 * or the first failure (SHM_MQ_DETACHED; SHM_MQ_WOULD_BLOCK only with
	 * nowait).  The spool is empty afterwards either way.
	 */
	shm_mq_result drain(shm_mq_handle *mqh, bool nowait);

	/* Drop everything spooled. */
	void		reset();

  private:
	void		spill();
	shm_mq_result send_one(shm_mq_handle *mqh, char msgtype, const char *data,
						   Size len, bool nowait);

	MemoryContext cxt_ = nullptr;
	char	   *buf_ = nullptr;		/* framed messages held in memory */
	size_t		used_ = 0;
	size_t		cap_ = 0;
	BufFile    *file_ = nullptr;	/* framed messages past work_mem */
	uint64		count_ = 0;
	bool		draining_ = false;
};

/* The spool of this worker process (trivially constructible). */
extern Spool worker_spool;

} // namespace child_txn
