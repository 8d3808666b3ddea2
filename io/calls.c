/* SPDX-License-Identifier: MIT */
/*
 * io/calls.c: the one-shot operations of the public API (connect, send,
 * recv, read, write, openat, close, poll), cancel, and the pushing poll.
 */
#include "io/internal.h"

#define OP_PROLOGUE(kind)                         \
	struct worker *w = cur_worker();          \
	struct io_op *op = (struct io_op *)rec;   \
	struct io_uring_sqe *sqe;                 \
	int r = io_op_enter(w, self, op, (kind)); \
	if (r == 0)                               \
		return io_op_result(self, op);    \
	if (r != 1)                               \
	return r

int myriad_io_connect(myriad_task_t *self, myriad_io_t *rec, int fd,
		      const struct sockaddr *addr, socklen_t addrlen)
{
	OP_PROLOGUE(IOK_CONNECT);
	if (fd < 0 || !addr)
		return -EINVAL;
	op_start(w, self, op, IOK_CONNECT);
	sqe = get_sqe(w);
	io_uring_prep_connect(sqe, fd, addr, addrlen);
	return op_commit(w, op, sqe);
}

int myriad_io_send(myriad_task_t *self, myriad_io_t *rec, int fd,
		   const void *buf, size_t len, int flags)
{
	OP_PROLOGUE(IOK_SEND);
	if (fd < 0 || (!buf && len) || len > INT32_MAX ||
	    (flags & MSG_DONTWAIT))
		return -EINVAL;
	op_start(w, self, op, IOK_SEND);
	sqe = get_sqe(w);
	io_uring_prep_send(sqe, fd, buf, len, flags | MSG_NOSIGNAL);
	return op_commit(w, op, sqe);
}

int myriad_io_recv(myriad_task_t *self, myriad_io_t *rec, int fd, void *buf,
		   size_t len, int flags)
{
	OP_PROLOGUE(IOK_RECV);
	if (fd < 0 || (!buf && len) || len > INT32_MAX ||
	    (flags & MSG_DONTWAIT))
		return -EINVAL;
	op_start(w, self, op, IOK_RECV);
	sqe = get_sqe(w);
	io_uring_prep_recv(sqe, fd, buf, len, flags);
	sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	return op_commit(w, op, sqe);
}

int myriad_io_read(myriad_task_t *self, myriad_io_t *rec, int fd, void *buf,
		   size_t len, int64_t off)
{
	OP_PROLOGUE(IOK_READ);
	if (fd < 0 || (!buf && len) || len > INT32_MAX || off < -1)
		return -EINVAL;
	op_start(w, self, op, IOK_READ);
	sqe = get_sqe(w);
	io_uring_prep_read(sqe, fd, buf, (unsigned)len, (uint64_t)off);
	return op_commit(w, op, sqe);
}

int myriad_io_write(myriad_task_t *self, myriad_io_t *rec, int fd,
		    const void *buf, size_t len, int64_t off)
{
	OP_PROLOGUE(IOK_WRITE);
	if (fd < 0 || (!buf && len) || len > INT32_MAX || off < -1)
		return -EINVAL;
	op_start(w, self, op, IOK_WRITE);
	sqe = get_sqe(w);
	io_uring_prep_write(sqe, fd, buf, (unsigned)len, (uint64_t)off);
	return op_commit(w, op, sqe);
}

int myriad_io_openat(myriad_task_t *self, myriad_io_t *rec, int dirfd,
		     const char *path, int flags, unsigned mode)
{
	OP_PROLOGUE(IOK_OPENAT);
	if (!path)
		return -EINVAL;
	op_start(w, self, op, IOK_OPENAT);
	sqe = get_sqe(w);
	io_uring_prep_openat(sqe, dirfd, path, flags, mode);
	return op_commit(w, op, sqe);
}

int myriad_io_close(myriad_task_t *self, myriad_io_t *rec, int fd)
{
	OP_PROLOGUE(IOK_CLOSE);
	if (fd < 0)
		return -EINVAL;
	op_start(w, self, op, IOK_CLOSE);
	sqe = get_sqe(w);
	io_uring_prep_close(sqe, fd);
	return op_commit(w, op, sqe);
}

int myriad_io_poll(myriad_task_t *self, myriad_io_t *rec, int fd,
		   unsigned events)
{
	OP_PROLOGUE(IOK_POLL);
	if (fd < 0 || !events)
		return -EINVAL;
	op_start(w, self, op, IOK_POLL);
	sqe = get_sqe(w);
	io_uring_prep_poll_add(sqe, fd, events);
	return op_commit(w, op, sqe);
}

int myriad_io_cancel(myriad_task_t *self, myriad_io_t *rec)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)rec;

	if (!self || !op || !w || w->current != self)
		return -EINVAL;
	if (op->kind == IOK_DEADLINE)
		return -EINVAL;
	op_cancel(w, op);
	return 0;
}

int io_polln(struct myriad_task *self, struct io_op *op, int fd,
	     unsigned events, _Atomic(struct io_op *) *stack)
{
	struct worker *w = cur_worker();
	struct io_uring_sqe *sqe;
	int r = io_op_enter(w, self, op, IOK_POLLN);

	if (r == 0)
		return io_op_result(self, op);
	if (r != 1)
		return r;
	op->oflags &= ~OF_DEADLINE;
	op->u.ntf.stack = stack;
	op_start(w, self, op, IOK_POLLN);
	sqe = get_sqe(w);
	io_uring_prep_poll_add(sqe, fd, events);
	return op_commit(w, op, sqe);
}
