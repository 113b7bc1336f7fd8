/*
 * spool.cpp
 *		The child's output spool (see spool.hpp).
 *
 * Each message is framed as its type byte, a 4-byte length and the body.
 */
#include "child/spool.hpp"

namespace child_txn
{

Spool		worker_spool;

namespace
{
constexpr size_t kFrameHeader = 1 + sizeof(uint32);
constexpr size_t kInitialBuffer = 8192;
}

void
Spool::init()
{
	cxt_ = AllocSetContextCreate(TopMemoryContext, "child_txn spool",
								 ALLOCSET_DEFAULT_SIZES);
	cap_ = kInitialBuffer;
	buf_ = static_cast<char *>(MemoryContextAlloc(cxt_, cap_));
}

/*
 * Move what is in memory to a temporary file; later messages go to the file
 * too, so order is kept.  The file is not tied to a transaction: a spool
 * outlives the statement (and the transaction) that filled it.
 */
void
Spool::spill()
{
	if (file_ == nullptr)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt_);

		file_ = BufFileCreateTemp(true);
		MemoryContextSwitchTo(old);
	}
	BufFileWrite(file_, buf_, used_);
	used_ = 0;
}

void
Spool::append(char msgtype, const char *data, size_t len)
{
	uint32		len32 = static_cast<uint32>(len);
	size_t		need = kFrameHeader + len;
	size_t		limit = static_cast<size_t>(work_mem) * 1024;

	/* Reading the file back while writing to it would corrupt it. */
	if (draining_ && file_ != nullptr)
		return;
	if (len > MaxAllocSize)
		elog(ERROR, "child_txn: protocol message too large (%zu bytes)", len);

	if (file_ == nullptr && used_ + need > limit && used_ > 0)
		spill();
	if (file_ != nullptr)
	{
		BufFileWrite(file_, &msgtype, 1);
		BufFileWrite(file_, &len32, sizeof(len32));
		BufFileWrite(file_, const_cast<char *>(data), len);
		count_++;
		return;
	}
	if (used_ + need > cap_)
	{
		size_t		newcap = cap_;

		while (used_ + need > newcap)
			newcap *= 2;
		buf_ = static_cast<char *>(repalloc_huge(buf_, newcap));
		cap_ = newcap;
	}
	buf_[used_] = msgtype;
	memcpy(buf_ + used_ + 1, &len32, sizeof(len32));
	memcpy(buf_ + used_ + kFrameHeader, data, len);
	used_ += need;
	count_++;
}

shm_mq_result
Spool::send_one(shm_mq_handle *mqh, char msgtype, const char *data, Size len,
				bool nowait)
{
	shm_mq_iovec iov[2];

	iov[0].data = &msgtype;
	iov[0].len = 1;
	iov[1].data = data;
	iov[1].len = len;
	/*
	 * Normally the 'Z' that follows flushes the queue; a no-wait drain is the
	 * last thing we say (at exit), so each message is flushed as it goes.
	 */
	return shm_mq_sendv(mqh, iov, 2, nowait, nowait);
}

shm_mq_result
Spool::drain(shm_mq_handle *mqh, bool nowait)
{
	shm_mq_result res = SHM_MQ_SUCCESS;

	/* A message emitted while draining (say, a WARNING) must not recurse. */
	if (draining_)
		return SHM_MQ_SUCCESS;
	draining_ = true;

	if (file_ != nullptr)
	{
		/* Everything is in the file, in order; memory holds the tail. */
		if (used_ > 0)
			spill();
		if (BufFileSeek(file_, 0, 0, SEEK_SET) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not rewind child_txn spool file: %m")));
		for (;;)
		{
			char		header[kFrameHeader];
			uint32		len32;
			size_t		got = BufFileRead(file_, header, kFrameHeader);

			if (got == 0)
				break;
			if (got != kFrameHeader)
				elog(ERROR, "child_txn: truncated spool file");
			memcpy(&len32, header + 1, sizeof(len32));
			if (len32 > cap_)
			{
				buf_ = static_cast<char *>(repalloc_huge(buf_, len32));
				cap_ = len32;
			}
			if (len32 > 0 && BufFileRead(file_, buf_, len32) != len32)
				elog(ERROR, "child_txn: truncated spool file");
			if (res == SHM_MQ_SUCCESS)
				res = send_one(mqh, header[0], buf_, len32, nowait);
		}
	}
	else
	{
		size_t		pos = 0;

		while (pos < used_ && res == SHM_MQ_SUCCESS)
		{
			uint32		len32;

			memcpy(&len32, buf_ + pos + 1, sizeof(len32));
			res = send_one(mqh, buf_[pos], buf_ + pos + kFrameHeader, len32,
						   nowait);
			pos += kFrameHeader + len32;
		}
	}
	reset();
	return res;
}

void
Spool::reset()
{
	if (file_ != nullptr)
	{
		BufFileClose(file_);
		file_ = nullptr;
	}
	used_ = 0;
	count_ = 0;
	draining_ = false;
	/* Give back memory a large result made us take. */
	if (cap_ > kInitialBuffer * 16)
	{
		pfree(buf_);
		cap_ = kInitialBuffer;
		buf_ = static_cast<char *>(MemoryContextAlloc(cxt_, cap_));
	}
}

} // namespace child_txn
