/* SPDX-License-Identifier: MIT */
/*
 * myriad/io.h: sockets, files and foreign file descriptors as io_uring
 * operations on the running worker's own ring, with per-operation and
 * per-task deadlines, cancellation, and a pool for blocking calls.
 *
 * Every operation follows the pattern of myriad_sleep(): the running task
 * calls it with an operation record that lives in its state; the first
 * call queues the operation (submitted with the rest of the worker's tick,
 * one io_uring_enter for many operations) and returns -EAGAIN: return
 * MYRIAD_PENDING. The task is woken when the kernel completes it; calling
 * again with the same record then returns the kernel's result (a byte
 * count, a file descriptor, poll events, or -errno) and leaves the record
 * idle, ready for the next operation. While the operation is in flight
 * another call returns -EAGAIN and ignores its other arguments.
 *
 * Buffers, addresses and paths passed to an operation must stay valid
 * until it completes (keep them in the task's state). A task may have many
 * operations in flight, each with its own record. A task that finishes
 * with operations in flight has them cancelled, and its state is freed
 * only once the kernel has completed every one of them; the same holds at
 * runtime shutdown.
 *
 * A kernel result of -EAGAIN (which io_uring avoids by polling) is
 * returned as -EBUSY, since -EAGAIN means "in flight"; MSG_DONTWAIT is
 * refused (-EINVAL) for that reason.
 *
 * Errors of the call itself (not the kernel's): -EINVAL (NULL or bad
 * arguments, self not the running task, a record in use by another kind
 * of operation), -ECANCELED (the task or an ancestor was cancelled),
 * -ETIME (a deadline of the task or an ancestor passed), -EBUSY (over
 * 65535 operations in flight in one task), -ESHUTDOWN.
 */
#ifndef MYRIAD_IO_H
#define MYRIAD_IO_H

#include <sys/socket.h>

#include <myriad/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * An operation record. Put it in the task's state; all-zero (as a zeroed
 * state is) means idle. Opaque; 64 bytes.
 */
typedef struct myriad_io {
	void *opaque_[8];
} myriad_io_t;

/*
 * Give the next operation started on 'op' a deadline (CLOCK_MONOTONIC,
 * nanoseconds): if it has not completed by then the kernel cancels it and
 * it returns -ETIME. Set before the first call; it applies to that one
 * operation and is then cleared. Returns 0, -EINVAL, or -EBUSY while 'op'
 * is in flight or still keeps what its last operation left: an inference
 * call's result (release it first: myriad_infer_release()) or a multishot
 * accept's queue.
 */
MYRIAD_API int myriad_io_deadline(myriad_io_t *op, uint64_t deadline_ns);

/*
 * Accept connections on listening socket 'fd' with one multishot accept:
 * the first call arms it, and each later call returns the next accepted
 * descriptor (opened with 'flags', e.g. SOCK_CLOEXEC), or -EAGAIN when none
 * is waiting. Descriptors accepted before the task runs queue in the
 * record; none is lost. It stays armed until it fails (the error is
 * returned once, then the record is idle) or is cancelled; a cancelled
 * accept first returns the queued descriptors, then -ECANCELED. Deadlines
 * do not apply.
 */
MYRIAD_API int myriad_io_accept(myriad_task_t *self, myriad_io_t *op, int fd,
				int flags);

/* connect(2): 0 or -errno (-ECONNREFUSED, ...). */
MYRIAD_API int myriad_io_connect(myriad_task_t *self, myriad_io_t *op, int fd,
				 const struct sockaddr *addr,
				 socklen_t addrlen);

/* send(2)/recv(2): bytes sent or received (0: the peer closed), or -errno. */
MYRIAD_API int myriad_io_send(myriad_task_t *self, myriad_io_t *op, int fd,
			      const void *buf, size_t len, int flags);
MYRIAD_API int myriad_io_recv(myriad_task_t *self, myriad_io_t *op, int fd,
			      void *buf, size_t len, int flags);

/*
 * recv(2) into a buffer the runtime provides from its worker's buffer ring
 * when data arrives, so that a connection waiting for data holds no
 * buffer. Returns the byte count with *data pointing at the bytes, 0 at
 * end of stream, or -errno. The buffer is the caller's until
 * myriad_io_buf_release() or the record's next operation, which give it
 * back. Buffers are MYRIAD_IO_BUF_SIZE bytes.
 */
#define MYRIAD_IO_BUF_SIZE 4096
MYRIAD_API int myriad_io_recv_buf(myriad_task_t *self, myriad_io_t *op, int fd,
				  const void **data, int flags);
/* Give back the buffer held by 'op' (no-op if none). 0 or -EINVAL. */
MYRIAD_API int myriad_io_buf_release(myriad_task_t *self, myriad_io_t *op);

/* pread(2)/pwrite(2); 'off' -1 uses and moves the file position. */
MYRIAD_API int myriad_io_read(myriad_task_t *self, myriad_io_t *op, int fd,
			      void *buf, size_t len, int64_t off);
MYRIAD_API int myriad_io_write(myriad_task_t *self, myriad_io_t *op, int fd,
			       const void *buf, size_t len, int64_t off);

/* openat(2): a descriptor or -errno. */
MYRIAD_API int myriad_io_openat(myriad_task_t *self, myriad_io_t *op, int dirfd,
				const char *path, int flags, unsigned mode);

/* close(2): 0 or -errno. */
MYRIAD_API int myriad_io_close(myriad_task_t *self, myriad_io_t *op, int fd);

/*
 * Wait until 'fd' (any pollable descriptor, e.g. a pipe or an eventfd that
 * another library owns) has one of 'events' (POLLIN, POLLOUT...): returns
 * the events that are ready, or -errno. One-shot.
 */
MYRIAD_API int myriad_io_poll(myriad_task_t *self, myriad_io_t *op, int fd,
			      unsigned events);

/*
 * Cancel the operation in flight on 'op' (IORING_OP_ASYNC_CANCEL on the
 * ring it was submitted to, from whatever worker the task now runs on).
 * It then completes with -ECANCELED, or with its own result if it won the
 * race: call the operation again to read it. Returns 0 (requested, or
 * nothing in flight), or -EINVAL.
 */
MYRIAD_API int myriad_io_cancel(myriad_task_t *self, myriad_io_t *op);

/*
 * A deadline for the running task and its subtree: when CLOCK_MONOTONIC
 * passes 'deadline_ns' the task is cancelled (myriad_task_cancel()) with
 * the reason -ETIME: its operations in flight are cancelled and return
 * -ETIME, its sleeps and new operations return -ETIME, and its children
 * are cancelled likewise. 'dl' is a record in the task's state that holds
 * the deadline's timer; setting a deadline again on the same record moves
 * it. Returns 0, -EINVAL, -ETIME if already passed (the task is then
 * cancelled).
 */
MYRIAD_API int myriad_task_deadline(myriad_task_t *self, myriad_io_t *dl,
				    uint64_t deadline_ns);

/*
 * Why 'self' (or an ancestor) was cancelled: 0 if it was not,
 * -ETIME when a deadline passed, -ECANCELED otherwise.
 */
MYRIAD_API int myriad_task_cancel_reason(const myriad_task_t *self);

/*
 * Blocking work: run 'fn(arg)' on the runtime's offload pool, for calls
 * that have no io_uring form (getaddrinfo, a library that blocks). Returns
 * -EAGAIN on the first call (return MYRIAD_PENDING), then fn's return value
 * once it has run. 'op' must not be freed while fn runs: a task that
 * finishes meanwhile waits for it. The pool's threads are started on first
 * use and stopped by myriad_rt_destroy(). -ECANCELED / -ETIME if the task
 * was cancelled before fn started (fn then never runs).
 */
typedef int64_t (*myriad_blocking_fn)(void *arg);
MYRIAD_API int64_t myriad_io_blocking(myriad_task_t *self, myriad_io_t *op,
				      myriad_blocking_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
