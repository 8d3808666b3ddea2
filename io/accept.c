/* SPDX-License-Identifier: MIT */
/*
 * io/accept.c: multishot accept: the descriptors its completions bring,
 * queued in the record until the task takes them, and arming it again.
 */
#include <stdlib.h>
#include <unistd.h>

#include "io/internal.h"

/* Free what a finished accept record still holds: close its queue. */
void accept_drop(struct io_op *op)
{
	uint32_t i;

	for (i = 0; i < op->u.acc.n; i++)
		close(op->u.acc.q[(op->u.acc.head + i) % op->u.acc.cap]);
	free(op->u.acc.q);
	op->u.acc.q = NULL;
	op->u.acc.n = op->u.acc.head = op->u.acc.cap = 0;
}

void accept_cqe(struct worker *w, struct io_op *op,
		const struct io_uring_cqe *cqe)
{
	struct io_worker *iw = worker_io(w);

	if (cqe->res >= 0) {
		spin_lock(&op->u.acc.lock);
		if (op->u.acc.n == op->u.acc.cap) {
			uint32_t cap = op->u.acc.cap ? op->u.acc.cap * 2 : 16;
			int *q = malloc(cap * sizeof(*q));
			uint32_t i;

			if (q) {
				for (i = 0; i < op->u.acc.n; i++)
					q[i] = op->u.acc
						       .q[(op->u.acc.head + i) %
							  op->u.acc.cap];
				free(op->u.acc.q);
				op->u.acc.q = q;
				op->u.acc.head = 0;
				op->u.acc.cap = cap;
			}
		}
		if (op->u.acc.n < op->u.acc.cap) {
			op->u.acc.q[(op->u.acc.head + op->u.acc.n) %
				    op->u.acc.cap] = cqe->res;
			op->u.acc.n++;
		} else {
			/* Out of memory: refuse the connection, leak nothing. */
			close(cqe->res);
		}
		spin_unlock(&op->u.acc.lock);
	}
	if (cqe->flags & IORING_CQE_F_MORE) {
		task_op_wake(w, op->task);
		return;
	}
	/* The multishot ended: with an error, or to be armed again. */
	op->res = cqe->res >= 0 ? RES_REARM : cqe->res;
	if (iw->draining) {
		/* No step runs again (io/record.c:8): the queue is closed. */
		spin_lock(&op->u.acc.lock);
		accept_drop(op);
		spin_unlock(&op->u.acc.lock);
	}
	complete_one(w, op, 0);
}

/* Pop the next accepted descriptor, or -1. */
static int accept_pop(struct io_op *op)
{
	int fd = -1;

	spin_lock(&op->u.acc.lock);
	if (op->u.acc.n) {
		fd = op->u.acc.q[op->u.acc.head];
		op->u.acc.head = (op->u.acc.head + 1) % op->u.acc.cap;
		op->u.acc.n--;
	}
	spin_unlock(&op->u.acc.lock);
	return fd;
}

int myriad_io_accept(myriad_task_t *self, myriad_io_t *rec, int fd, int flags)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)rec;
	struct io_uring_sqe *sqe;
	int r = io_op_enter(w, self, op, IOK_ACCEPT), nfd;

	if (r == -EAGAIN || r == 0) {
		/* In flight or ended: the queue first (io/record.c:7). */
		nfd = accept_pop(op);
		if (nfd >= 0)
			return nfd;
		if (r == -EAGAIN)
			return r;
		free(op->u.acc.q);
		op->u.acc.q = NULL;
		op->u.acc.cap = op->u.acc.head = 0;
		if (op->res == RES_REARM && (st_load(op) & OP_CANCELLED))
			op->res = -ECANCELED; /* not again (io/record.c:7) */
		if (op->res != RES_REARM)
			return io_op_result(self, op);
		(void)io_op_result(self, op);
		r = io_op_enter(w, self, op, IOK_ACCEPT);
	}
	if (r != 1)
		return r;
	if (fd < 0 || (op->oflags & OF_DEADLINE))
		return -EINVAL;
	op->u.acc.q = NULL;
	op->u.acc.head = op->u.acc.n = op->u.acc.cap = 0;
	atomic_init(&op->u.acc.lock.v, 0);
	op_start(w, self, op, IOK_ACCEPT);
	sqe = get_sqe(w);
	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, flags);
	return op_commit(w, op, sqe);
}
