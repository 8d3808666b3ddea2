/* SPDX-License-Identifier: MIT */
/*
 * io/bufring.c: provided buffer rings for myriad_io_recv_buf(), one per
 * worker, and the recvs that found no buffer and wait for one to come back.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io/internal.h"

/* Provided buffers, per worker, for recv_buf. */
#define BUF_GROUP 0
#define BUF_COUNT 512u

struct io_bufring {
	struct io_uring_buf_ring *br;
	char *mem;
	size_t ring_len;
	struct spin lock; /* producers: the owner, and tasks giving back */
};

static char *buf_addr(struct io_bufring *b, unsigned bid)
{
	return b->mem + (size_t)bid * MYRIAD_IO_BUF_SIZE;
}

static int bufring_create(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	struct io_uring_buf_reg reg;
	struct io_bufring *b;
	unsigned i;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ring_len = BUF_COUNT * sizeof(struct io_uring_buf);
	b->br = mmap(NULL, b->ring_len, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (b->br == MAP_FAILED) {
		free(b);
		return -ENOMEM;
	}
	b->mem = malloc((size_t)BUF_COUNT * MYRIAD_IO_BUF_SIZE);
	if (!b->mem) {
		munmap(b->br, b->ring_len);
		free(b);
		return -ENOMEM;
	}
	io_uring_buf_ring_init(b->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)b->br;
	reg.ring_entries = BUF_COUNT;
	reg.bgid = BUF_GROUP;
	r = io_uring_register_buf_ring(&iw->uring, &reg, 0);
	if (r < 0) {
		free(b->mem);
		munmap(b->br, b->ring_len);
		free(b);
		return r;
	}
	for (i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(b->br, buf_addr(b, i), MYRIAD_IO_BUF_SIZE,
				      (unsigned short)i,
				      io_uring_buf_ring_mask(BUF_COUNT),
				      (int)i);
	io_uring_buf_ring_advance(b->br, (int)BUF_COUNT);
	atomic_init(&b->lock.v, 0);
	iw->bufs = b;
	return 0;
}

void bufring_destroy(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	struct io_bufring *b = iw->bufs;

	if (!b)
		return;
	io_uring_unregister_buf_ring(&iw->uring, BUF_GROUP);
	munmap(b->br, b->ring_len);
	free(b->mem);
	free(b);
	iw->bufs = NULL;
}

/* Give buffer 'bid' back to worker 'ow''s ring; any thread. */
static void buf_put(struct worker *ow, unsigned bid)
{
	struct io_worker *oiw = worker_io(ow);
	struct io_bufring *b = oiw->bufs;

	spin_lock(&b->lock);
	io_uring_buf_ring_add(b->br, buf_addr(b, bid), MYRIAD_IO_BUF_SIZE,
			      (unsigned short)bid,
			      io_uring_buf_ring_mask(BUF_COUNT), 0);
	io_uring_buf_ring_advance(b->br, 1);
	spin_unlock(&b->lock);
	atomic_fetch_add_explicit(&oiw->bufs_back, 1, memory_order_relaxed);
}

void op_buf_release(struct myriad_rt *rt, struct io_op *op)
{
	if (!(op->oflags & OF_BUF))
		return;
	op->oflags &= ~OF_BUF;
	buf_put(&rt->workers[op->worker],
		op->cflags >> IORING_CQE_BUFFER_SHIFT);
}

/* Submit a recv that found no provided buffer again (owner). */
static void recv_buf_sqe(struct worker *w, struct io_op *op, bool retry)
{
	struct io_worker *iw = worker_io(w);
	struct io_uring_sqe *sqe;
	bool linked = st_load(op) & OP_LINKED;

	if (linked && io_uring_sq_space_left(&iw->uring) < 2)
		flush_sq(w);
	sqe = get_sqe(w);
	/* While in flight, res and cflags hold the fd and the flags. */
	io_uring_prep_recv(sqe, op->res, NULL, 0, (int)op->cflags);
	/* A recv is mostly armed before its data comes: poll first. */
	sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	sqe->user_data = (uint64_t)(uintptr_t)op | IO_UD_OP;
	if (linked) {
		link_timeout(w, op, sqe);
		/* The retried recv's timeout is one more completion due. */
		if (retry)
			atomic_fetch_add_explicit(&op->st, OP_CQE_ONE,
						  memory_order_relaxed);
	}
}

void retry_add(struct worker *w, struct io_op *op)
{
	struct io_worker *iw = worker_io(w);

	if (iw->nretry == iw->retry_cap) {
		unsigned cap = iw->retry_cap ? iw->retry_cap * 2 : 64;
		struct io_op **v = realloc(iw->retry, cap * sizeof(*v));

		if (!v) {
			/* Cannot wait for a buffer: the task sees ENOBUFS. */
			op->res = -ENOBUFS;
			complete_one(w, op, 0);
			return;
		}
		iw->retry = v;
		iw->retry_cap = cap;
	}
	iw->retry[iw->nretry++] = op;
	w->drv_busy = true;
}

/*
 * Recvs parked for want of a buffer: cancelled ones complete; of the
 * others, the oldest go again, one for each buffer that came back since
 * the last pass (each has data waiting and takes one buffer: more would
 * only fail again with -ENOBUFS).
 */
void retry_run(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	uint64_t back =
		atomic_load_explicit(&iw->bufs_back, memory_order_relaxed);
	uint64_t budget = back - iw->bufs_seen;
	unsigned i, n = iw->nretry, keep = 0;

	iw->nretry = 0;
	for (i = 0; i < n; i++) {
		struct io_op *op = iw->retry[i];

		if ((st_load(op) & OP_CANCELLED) || iw->draining) {
			op->res = -ECANCELED;
			complete_one(w, op, 0);
		} else if (budget) {
			budget--;
			recv_buf_sqe(w, op, true);
		} else {
			iw->retry[keep++] = op;
		}
	}
	iw->bufs_seen = back - budget;
	iw->nretry = keep;
}

int myriad_io_recv_buf(myriad_task_t *self, myriad_io_t *rec, int fd,
		       const void **data, int flags)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)rec;
	int r;

	if (!data)
		return -EINVAL;
	*data = NULL;
	r = io_op_enter(w, self, op, IOK_RECV_BUF);
	if (r == 0) {
		if (op->res > 0 && (op->cflags & IORING_CQE_F_BUFFER)) {
			op->oflags |= OF_BUF;
			*data = buf_addr(
				worker_io(&w->rt->workers[op->worker])->bufs,
				op->cflags >> IORING_CQE_BUFFER_SHIFT);
		} else if (op->cflags & IORING_CQE_F_BUFFER) {
			/* A buffer with no bytes in it: straight back. */
			op->oflags |= OF_BUF;
			op_buf_release(w->rt, op);
		}
		return io_op_result(self, op);
	}
	if (r != 1)
		return r;
	if (fd < 0 || (flags & MSG_DONTWAIT))
		return -EINVAL;
	if (!worker_io(w)->bufs) {
		r = bufring_create(w);
		if (r < 0)
			return r;
	}
	op_start(w, self, op, IOK_RECV_BUF);
	/* While in flight, res and cflags hold the fd and the flags. */
	op->res = fd;
	op->cflags = (uint32_t)flags;
	op->oflags &= ~OF_DEADLINE;
	recv_buf_sqe(w, op, false);
	return -EAGAIN;
}

int myriad_io_buf_release(myriad_task_t *self, myriad_io_t *rec)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)rec;

	if (!self || !op || !w || w->current != self)
		return -EINVAL;
	op_buf_release(w->rt, op);
	if ((st_load(op) & OP_PHASE) == OP_IDLE)
		op_list_del(self, op);
	return 0;
}
