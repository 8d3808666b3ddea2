/* SPDX-License-Identifier: MIT */
/*
 * io/ops.c: the tasks' I/O operations on their worker's io_uring: records
 * in task state, submission batched per tick, completions that wake the
 * task wherever it runs now, cancellation across workers, per-operation
 * deadlines (linked timeouts), task deadlines, provided buffer rings for
 * recv, and the drain at shutdown.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/record.h"
#include "sched/probes.h"

/*
 * Why a completion is delivered exactly once and never touches freed
 * memory:
 *
 * 1. A record is submitted by its task's step on the ring of the worker
 *    that runs the step (the record's 'worker', its owner). Only the owner
 *    reaps that ring, so every completion of the record is handled by one
 *    thread, in order.
 * 2. Submitting adds one to the operations count in the task's state word
 *    (sched.h). A task finishes only when that count is zero and its list
 *    of records is empty (task.c), so the task and the record, which lives
 *    in the task's state, stay allocated until the owner is done with it.
 * 3. The record's 'st' word says how many kernel completions are still due
 *    (the operation's, and its linked timeout's when it has a deadline).
 *    The owner handles each, and after the last one moves the record to
 *    DONE with a release compare-and-swap, after the result; then, in one
 *    compare-and-swap on the task's word, it takes one off the operations
 *    count and wakes the task (task_op_done(), as a finishing child wakes
 *    its parent). After that it never touches the record or the task,
 *    except to queue a task it moved from IDLE to SCHEDULED (a queued task
 *    cannot finish before it runs).
 * 4. The task reads DONE with an acquire load, then the result, and makes
 *    the record IDLE: only then can it reuse the record; its task cannot
 *    have finished meanwhile (2).
 * 5. Cancelling from the owner's own thread is an IORING_OP_ASYNC_CANCEL
 *    on its ring, behind the operation's own submission. A task that has
 *    moved to another worker cannot submit to the owner's ring: it sets
 *    XCANCEL in 'st' (a compare-and-swap that fails if the record is DONE)
 *    and posts a request to the owner with IORING_OP_MSG_RING, naming the
 *    record. While XCANCEL is set the owner does not move the record to
 *    DONE (it marks RESULT_IN instead), so the record outlives the request
 *    in flight; the owner, handling the request, clears XCANCEL and either
 *    completes a record that has its result, or cancels the operation on
 *    its ring. A request that fails to post comes back to its sender,
 *    which posts it again.
 * 6. A cancel racing the completion: the operation ends either with its
 *    own result or with -ECANCELED, once (3); a cancel of an operation
 *    already finished finds nothing (-ENOENT, ignored).
 * 7. Multishot accept: completions with IORING_CQE_F_MORE queue their
 *    descriptor in the record under its lock and wake the task; only the
 *    last completion counts for (3). The kernel also ends a multishot
 *    that succeeded (a completion queue full): the record is DONE with
 *    RES_REARM, and the task's next call arms it again. A cancel that
 *    finds it so, or that raced that last completion, leaves OP_CANCELLED
 *    in 'st' (the record is the task's once DONE, step 4), and the next
 *    call returns -ECANCELED instead: the cancel is never lost to a new
 *    multishot.
 * 8. At shutdown each worker, in its own thread, cancels everything on
 *    its ring and reaps until no record of its ring is in flight; records
 *    awaiting a cancel request then complete without it, since no task
 *    runs any more and tasks are freed only after every worker is joined.
 */

static_assert(sizeof(struct io_op) == sizeof(myriad_io_t),
	      "myriad_io_t must hold a struct io_op");

/* st: the phase, flags, and the kernel completions still due. */
#define OP_IDLE 0u
#define OP_FLIGHT 1u
#define OP_DONE 2u
#define OP_PHASE 3u
#define OP_XCANCEL 4u	 /* a cancel request is on its way to the owner */
#define OP_RESULT_IN 8u	 /* ... and the owner has the result already */
#define OP_TMO_FIRED 16u /* the linked timeout fired */
#define OP_CANCELLED 32u /* the task asked for a cancel */
#define OP_LINKED 64u	 /* submitted with a linked timeout */
#define OP_CQE_ONE 256u	 /* bits 8-9: kernel completions due */
#define OP_CQES(s) (((s) >> 8) & 3u)

/* oflags: the task's own. */
#define OF_LISTED 1u   /* on the task's list */
#define OF_DEADLINE 2u /* u.ts holds a deadline for the next submission */
#define OF_BUF 4u      /* holds a provided buffer (its id in cflags) */
#define OF_HOLD 8u     /* holds a finished IOK_EXT record's result */

/* A completed multishot accept that must be armed again. */
#define RES_REARM INT32_MIN

/* Provided buffers, per worker, for recv_buf. */
#define BUF_GROUP 0
#define BUF_COUNT 512u

struct io_bufring {
	struct io_uring_buf_ring *br;
	char *mem;
	size_t ring_len;
	struct spin lock; /* producers: the owner, and tasks giving back */
};

static inline uint32_t st_load(struct io_op *op)
{
	return atomic_load_explicit(&op->st, memory_order_acquire);
}

/* ---- submission ---- */

void io_ops_init(struct worker *w)
{
	struct io_worker *iw = worker_io(w);

	iw->inflight = 0;
	iw->queued = 0;
	iw->draining = false;
	iw->bufs = NULL;
	iw->retry = NULL;
	iw->nretry = iw->retry_cap = 0;
	atomic_init(&iw->bufs_back, 0);
	iw->bufs_seen = 0;
}

/* Submit what is queued (an SQ full of our own entries empties here). */
static void flush_sq(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	int r;

	for (;;) {
		r = io_uring_submit(&iw->uring);
		CTR_INC(w, MYRIAD_CTR_IO_ENTERS);
		if (r >= 0 || (r != -EBUSY && r != -EAGAIN && r != -EINTR))
			break;
		/* Completions must be reaped first (CQ backpressure). */
		ring_reap(w);
	}
	iw->queued = 0;
}

static struct io_uring_sqe *get_sqe(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&iw->uring)))
		flush_sq(w);
	iw->queued++;
	w->drv_busy = true; /* the run loop polls (sched/driver.h) */
	return sqe;
}

/* Ask the ring to cancel 'op' (ours); the answer is not needed. */
static void cancel_on_ring(struct worker *w, struct io_op *op)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | IO_UD_OP, 0);
	sqe->user_data = 0;
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* Step 5: post a cancel request for 'op' to its owner's ring. */
static void send_xcancel(struct worker *w, struct io_op *op)
{
	struct worker *ow = &w->rt->workers[op->worker];
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_msg_ring(sqe, worker_io(ow)->uring.ring_fd, 0,
			       (uint64_t)(uintptr_t)op | IO_UD_XCANCEL, 0);
	sqe->user_data = (uint64_t)(uintptr_t)op | IO_UD_XSENT;
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void list_add(struct myriad_task *t, struct io_op *op)
{
	if (op->oflags & OF_LISTED)
		return;
	op->next = t->ops;
	t->ops = op;
	op->oflags |= OF_LISTED;
}

static void list_del(struct myriad_task *t, struct io_op *op)
{
	struct io_op **pp;

	if (!(op->oflags & OF_LISTED))
		return;
	for (pp = &t->ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	op->next = NULL;
	op->oflags &= ~OF_LISTED;
}

/* ---- provided buffers ---- */

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

static void bufring_destroy(struct worker *w)
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

static void op_buf_release(struct myriad_rt *rt, struct io_op *op)
{
	if (!(op->oflags & OF_BUF))
		return;
	op->oflags &= ~OF_BUF;
	buf_put(&rt->workers[op->worker],
		op->cflags >> IORING_CQE_BUFFER_SHIFT);
}

/* ---- completion (the owner) ---- */

/*
 * A finished IOK_POLLN record goes on its stack (lock-free push; the task
 * takes the whole stack at once, so no pop races a push). After DONE and
 * before the wake that counts it, so the task finds it when woken.
 */
static void ntf_push(struct io_op *op)
{
	_Atomic(struct io_op *) *stack = op->u.ntf.stack;
	struct io_op *head = atomic_load_explicit(stack, memory_order_relaxed);

	do {
		op->u.ntf.snext = head;
	} while (!atomic_compare_exchange_weak_explicit(
		stack, &head, op, memory_order_release, memory_order_relaxed));
}

/* Step 3: one kernel completion of 'op' handled; maybe the last. */
static void complete_one(struct worker *w, struct io_op *op, uint32_t add)
{
	/*
	 * Read before the compare-and-swap: once it says DONE the task may
	 * collect the record on another worker and start the next operation
	 * in it, whose completion rewrites 'res' (and may change 'kind').
	 */
	struct myriad_task *t = op->task;
	int res = op->res;
	bool polln = op->kind == IOK_POLLN;
	uint32_t s = atomic_load_explicit(&op->st, memory_order_relaxed);
	struct io_worker *iw = worker_io(w);
	uint32_t ns;

	do {
		ns = (s | add) - OP_CQE_ONE;
		if (OP_CQES(ns) == 0) {
			if ((ns & OP_XCANCEL) && !iw->draining)
				ns |= OP_RESULT_IN; /* step 5 */
			else
				ns = (ns & ~(OP_PHASE | OP_XCANCEL)) | OP_DONE;
		}
	} while (!atomic_compare_exchange_weak_explicit(
		&op->st, &s, ns, memory_order_acq_rel, memory_order_relaxed));
	if ((ns & OP_PHASE) == OP_DONE) {
		iw->inflight--;
		PROBE3(io_complete, (int)w->idx, op, res);
		if (polln)
			ntf_push(op);
		task_op_done(w, t);
	}
}

/* The linked timeout behind 'sqe' (the SQE just taken) for op's deadline. */
static void link_timeout(struct worker *w, struct io_op *op,
			 struct io_uring_sqe *sqe)
{
	struct io_uring_sqe *l;

	sqe->flags |= IOSQE_IO_LINK;
	l = get_sqe(w);
	io_uring_prep_link_timeout(l, &op->u.ts, IORING_TIMEOUT_ABS);
	l->user_data = (uint64_t)(uintptr_t)op | IO_UD_LTMO;
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

static void retry_add(struct worker *w, struct io_op *op)
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
static void retry_run(struct worker *w)
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

/* Free what a finished accept record still holds: close its queue. */
static void accept_drop(struct io_op *op)
{
	uint32_t i;

	for (i = 0; i < op->u.acc.n; i++)
		close(op->u.acc.q[(op->u.acc.head + i) % op->u.acc.cap]);
	free(op->u.acc.q);
	op->u.acc.q = NULL;
	op->u.acc.n = op->u.acc.head = op->u.acc.cap = 0;
}

static void accept_cqe(struct worker *w, struct io_op *op,
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
		/* No step runs again (step 8): what was queued is closed. */
		spin_lock(&op->u.acc.lock);
		accept_drop(op);
		spin_unlock(&op->u.acc.lock);
	}
	complete_one(w, op, 0);
}

/* Step 5, the owner's side: a cancel request from another worker. */
static void xcancel_arrived(struct worker *w, struct io_op *op)
{
	struct io_worker *iw = worker_io(w);
	struct myriad_task *t = op->task;
	uint32_t s = atomic_load_explicit(&op->st, memory_order_relaxed);
	uint32_t ns;

	do {
		if (!(s & OP_XCANCEL))
			return; /* settled by the drain (step 8) */
		ns = s & ~OP_XCANCEL;
		if (s & OP_RESULT_IN)
			ns = (ns & ~(OP_RESULT_IN | OP_PHASE)) | OP_DONE;
	} while (!atomic_compare_exchange_weak_explicit(
		&op->st, &s, ns, memory_order_acq_rel, memory_order_relaxed));
	if ((ns & OP_PHASE) == OP_DONE) {
		iw->inflight--;
		task_op_done(w, t);
		return;
	}
	cancel_on_ring(w, op);
}

void io_op_cqe(struct worker *w, const struct io_uring_cqe *cqe)
{
	struct io_worker *iw = worker_io(w);
	struct io_op *op =
		(struct io_op *)(uintptr_t)(cqe->user_data & ~IO_UD_KIND);

	switch (cqe->user_data & IO_UD_KIND) {
	case IO_UD_OP:
		if (op->kind == IOK_ACCEPT) {
			accept_cqe(w, op, cqe);
			return;
		}
		if (op->kind == IOK_RECV_BUF && cqe->res == -ENOBUFS &&
		    !(st_load(op) & OP_CANCELLED) && !iw->draining) {
			/* Still due: the retried recv's completion. */
			retry_add(w, op);
			return;
		}
		op->res = cqe->res;
		op->cflags = cqe->flags;
		complete_one(w, op, 0);
		break;
	case IO_UD_LTMO:
		complete_one(w, op, cqe->res == -ETIME ? OP_TMO_FIRED : 0);
		break;
	case IO_UD_XCANCEL:
		xcancel_arrived(w, op);
		break;
	case IO_UD_XSENT:
		/* Our request did not post: send it again (step 5). */
		if (cqe->res < 0 && !iw->draining)
			send_xcancel(w, op);
		break;
	default:
		break;
	}
}

/* ---- the worker's tick ---- */

/*
 * Is an enter worth it: SQEs to submit, or completions to reap? With
 * TASKRUN_FLAG the kernel says when completions wait to be posted
 * (IORING_SQ_TASKRUN); without it, any operation in flight may have
 * completed.
 */
static bool io_due(struct worker *w)
{
	struct io_worker *iw = worker_io(w);

	if (iw->queued || io_uring_cq_ready(&iw->uring))
		return true;
	if (!iw->inflight)
		return false;
	if (!(iw->uring_flags & IORING_SETUP_TASKRUN_FLAG))
		return true;
	return IO_URING_READ_ONCE(*iw->uring.sq.kflags) & IORING_SQ_TASKRUN;
}

void io_tick(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	int r;

	if (iw->nretry)
		retry_run(w);
	if (io_due(w)) {
		do {
			r = io_uring_submit_and_get_events(&iw->uring);
			CTR_INC(w, MYRIAD_CTR_IO_ENTERS);
			if (r == -EBUSY || r == -EAGAIN)
				ring_reap(w);
		} while (r == -EBUSY || r == -EAGAIN || r == -EINTR);
		iw->queued = 0;
		ring_reap(w);
	}
	/* The run loop's hint (sched/driver.h): anything for the next poll? */
	w->drv_busy = iw->queued || iw->inflight || iw->nretry;
}

/* Step 8. */
void io_drain(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	struct io_uring_sqe *sqe;

	iw->draining = true;
	if (iw->inflight) {
		sqe = get_sqe(w);
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		sqe->user_data = 0;
	}
	while (iw->inflight) {
		if (iw->nretry)
			retry_run(w);
		if (!iw->inflight)
			break;
		io_uring_submit_and_wait(&iw->uring, 1);
		CTR_INC(w, MYRIAD_CTR_IO_ENTERS);
		ring_reap(w);
	}
	io_uring_submit(&iw->uring);
	bufring_destroy(w);
	free(iw->retry);
	iw->retry = NULL;
	iw->nretry = iw->retry_cap = 0;
}

/* ---- the task's side ---- */

/* Cancel 'op' if in flight (steps 5 and 6); the task's step, or its end. */
static void op_cancel(struct worker *w, struct io_op *op)
{
	uint32_t s = st_load(op);

	if ((s & OP_PHASE) == OP_DONE && op->kind == IOK_ACCEPT &&
	    op->res == RES_REARM) {
		/* Step 7: a multishot the kernel ended, not armed again. */
		atomic_fetch_or_explicit(&op->st, OP_CANCELLED,
					 memory_order_relaxed);
		return;
	}
	if ((s & OP_PHASE) != OP_FLIGHT || (s & OP_CANCELLED))
		return;
	if (op->kind == IOK_BLOCKING || op->kind == IOK_EXT) {
		/* The pool checks before it runs fn; a running fn finishes. */
		atomic_fetch_or_explicit(&op->st, OP_CANCELLED,
					 memory_order_relaxed);
		if (op->kind == IOK_EXT && op->u.ext.ops->cancel)
			op->u.ext.ops->cancel(op); /* its module completes it */
		return;
	}
	if (op->worker == w->idx) {
		atomic_fetch_or_explicit(&op->st, OP_CANCELLED,
					 memory_order_relaxed);
		cancel_on_ring(w, op);
		return;
	}
	do {
		if ((s & OP_PHASE) != OP_FLIGHT)
			return; /* completed meanwhile */
	} while (!atomic_compare_exchange_weak_explicit(
		&op->st, &s, s | OP_CANCELLED | OP_XCANCEL,
		memory_order_acq_rel, memory_order_acquire));
	send_xcancel(w, op);
}

void io_task_cancel(struct worker *w, struct myriad_task *t)
{
	struct io_op *op;

	for (op = t->ops; op; op = op->next)
		if (op->kind != IOK_DEADLINE)
			op_cancel(w, op);
}

/*
 * The task's step returned DONE: cancel what is in flight, give back
 * buffers, disarm deadlines, and settle every record that has completed.
 * Records still in flight stay on the list; the task waits for them
 * (task.c) and comes back here when they complete.
 */
void io_task_finish(struct worker *w, struct myriad_task *t)
{
	struct io_op *op, *n;

	for (op = t->ops; op; op = n) {
		n = op->next;
		if (op->kind == IOK_DEADLINE) {
			timer_disarm(w->rt, &op->u.tm);
			list_del(t, op);
			op->kind = IOK_NONE;
			continue;
		}
		op_buf_release(w->rt, op);
		switch (st_load(op) & OP_PHASE) {
		case OP_FLIGHT:
			op_cancel(w, op);
			break;
		case OP_DONE:
			/* A result never read is dropped too (IOK_EXT). */
			if (op->kind == IOK_EXT)
				op->oflags |= OF_HOLD;
			io_op_drop(w->rt, op);
			if (op->kind == IOK_ACCEPT)
				accept_drop(op);
			else if (op->kind == IOK_OPENAT && op->res >= 0)
				close(op->res); /* never handed over */
			atomic_store_explicit(&op->st, OP_IDLE,
					      memory_order_relaxed);
			list_del(t, op);
			break;
		default:
			io_op_drop(w->rt, op);
			list_del(t, op);
			break;
		}
	}
}

void io_op_drop(struct myriad_rt *rt, struct io_op *op)
{
	op_buf_release(rt, op);
	if (op->oflags & OF_HOLD) {
		op->oflags &= ~OF_HOLD;
		if (op->kind == IOK_EXT && op->u.ext.ops->drop)
			op->u.ext.ops->drop(op);
	}
}

/*
 * The common entry of every operation call. Returns 1 when the caller
 * should start a new operation on 'op', or the value to return: -EAGAIN
 * while in flight, the result once done, or an error.
 */
int io_op_enter(struct worker *w, struct myriad_task *self, struct io_op *op,
		uint8_t kind)
{
	uint32_t s;

	if (!self || !op || !w || w->current != self)
		return -EINVAL;
	s = st_load(op);
	switch (s & OP_PHASE) {
	case OP_FLIGHT:
		if (op->kind != kind)
			return -EINVAL;
		return -EAGAIN;
	case OP_DONE:
		return op->kind == kind ? 0 : -EINVAL;
	default:
		break;
	}
	if (op->kind == IOK_DEADLINE && (op->oflags & OF_LISTED))
		return -EINVAL; /* a task deadline's record */
	io_op_drop(w->rt, op);
	if (myriad_task_cancelled(self))
		return task_cancel_reason(self);
	if (TS_OPS(atomic_load_explicit(&self->state, memory_order_relaxed)) >=
	    TS_OPS_MAX)
		return -EBUSY;
	if (atomic_load_explicit(&w->rt->shutdown, memory_order_relaxed))
		return -ESHUTDOWN;
	return 1;
}

/* Step 4: the result of a DONE record, which becomes idle. */
int io_op_result(struct myriad_task *self, struct io_op *op)
{
	uint32_t s = st_load(op);
	int r = op->res;

	if (r < 0 && (s & OP_TMO_FIRED))
		r = -ETIME;
	else if (r == -EAGAIN)
		r = -EBUSY; /* -EAGAIN means "in flight" here */
	else if (r == -ECANCELED || (r == -EINTR && (s & OP_CANCELLED))) {
		int why = task_cancel_reason(self);

		r = why ? why : -ECANCELED;
	}
	atomic_store_explicit(&op->st, OP_IDLE, memory_order_relaxed);
	if (op->kind == IOK_EXT)
		op->oflags |= OF_HOLD; /* the result stays readable */
	if (!(op->oflags & (OF_BUF | OF_HOLD)))
		list_del(self, op);
	return r;
}

/*
 * Start an operation: the record in flight (with room in the SQ for the
 * operation and its linked timeout); the caller takes its SQE next.
 */
/* The record in flight with word 'st', counted in its task (step 2). */
static void op_arm(struct worker *w, myriad_task_t *self, struct io_op *op,
		   uint8_t kind, uint32_t st)
{
	op->kind = kind;
	op->task = self;
	op->worker = (uint16_t)w->idx;
	atomic_store_explicit(&op->st, st, memory_order_relaxed);
	list_add(self, op);
	atomic_fetch_add_explicit(&self->state, TS_OPS_ONE,
				  memory_order_relaxed);
	CTR_INC(w, MYRIAD_CTR_IO_OPS);
	PROBE3(io_submit, (int)w->idx, op, kind);
}

static void op_start(struct worker *w, myriad_task_t *self, struct io_op *op,
		     uint8_t kind)
{
	struct io_worker *iw = worker_io(w);
	bool linked = op->oflags & OF_DEADLINE;

	if (linked && io_uring_sq_space_left(&iw->uring) < 2)
		flush_sq(w);
	op_arm(w, self, op, kind,
	       OP_FLIGHT | (linked ? OP_LINKED : 0) |
		       (linked ? 2 : 1) * OP_CQE_ONE);
	iw->inflight++;
	w->drv_busy = true;
}

/* After the caller's prep: name the record, link the deadline. */
static int op_commit(struct worker *w, struct io_op *op,
		     struct io_uring_sqe *sqe)
{
	sqe->user_data = (uint64_t)(uintptr_t)op | IO_UD_OP;
	if (op->oflags & OF_DEADLINE) {
		op->oflags &= ~OF_DEADLINE;
		link_timeout(w, op, sqe);
	}
	return -EAGAIN;
}

int myriad_io_deadline(myriad_io_t *rec, uint64_t deadline_ns)
{
	struct io_op *op = (struct io_op *)rec;

	if (!op)
		return -EINVAL;
	if ((st_load(op) & OP_PHASE) == OP_FLIGHT)
		return -EBUSY;
	if (op->kind == IOK_DEADLINE && (op->oflags & OF_LISTED))
		return -EINVAL;
	op->u.ts.tv_sec = (long long)(deadline_ns / 1000000000u);
	op->u.ts.tv_nsec = (long long)(deadline_ns % 1000000000u);
	op->oflags |= OF_DEADLINE;
	return 0;
}

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
		list_del(self, op);
	return 0;
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
		/* In flight or ended: the queue first (step 7). */
		nfd = accept_pop(op);
		if (nfd >= 0)
			return nfd;
		if (r == -EAGAIN)
			return r;
		free(op->u.acc.q);
		op->u.acc.q = NULL;
		op->u.acc.cap = op->u.acc.head = 0;
		if (op->res == RES_REARM && (st_load(op) & OP_CANCELLED))
			op->res = -ECANCELED; /* not armed again (step 7) */
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

int myriad_task_deadline(myriad_task_t *self, myriad_io_t *rec,
			 uint64_t deadline_ns)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)rec;
	uint64_t now = myriad_now_ns();
	int r;

	if (!self || !op || !w || w->current != self)
		return -EINVAL;
	if (deadline_ns <= now) {
		/* Passed already: cancelled now, not at the next tick. */
		if (op->kind == IOK_DEADLINE && (op->oflags & OF_LISTED))
			timer_disarm(w->rt, &op->u.tm);
		task_cancel_flags(self, TF_TIMEDOUT);
		return -ETIME;
	}
	if (op->kind == IOK_DEADLINE && (op->oflags & OF_LISTED)) {
		timer_disarm(w->rt, &op->u.tm); /* move it */
	} else {
		if ((st_load(op) & OP_PHASE) != OP_IDLE)
			return -EINVAL;
		op_buf_release(w->rt, op);
		memset(op, 0, sizeof(*op));
		op->kind = IOK_DEADLINE;
		op->task = self;
		list_add(self, op);
	}
	r = timer_arm(w, &op->u.tm, self, deadline_ns, true, now);
	if (r == 0) {
		task_cancel_flags(self, TF_TIMEDOUT);
		return -ETIME;
	}
	return 0;
}

/* A record completed off the ring (io_ext_complete()), in flight. */
static void ext_arm(struct worker *w, struct myriad_task *self,
		    struct io_op *op, uint8_t kind)
{
	op->res = 0;
	op_arm(w, self, op, kind, OP_FLIGHT);
}

int64_t myriad_io_blocking(myriad_task_t *self, myriad_io_t *rec,
			   myriad_blocking_fn fn, void *arg)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)rec;
	int64_t ret;
	int r = io_op_enter(w, self, op, IOK_BLOCKING);

	if (r == 0) {
		/* res: 0, or the reason it never ran (offload.c step 2). */
		ret = io_op_result(self, op);
		return ret < 0 ? ret : op->u.blk.ret;
	}
	if (r != 1)
		return r;
	if (!fn || (op->oflags & OF_DEADLINE))
		return -EINVAL;
	op->u.blk.fn = fn;
	op->u.blk.arg = arg;
	op->u.blk.ret = 0;
	/* Counted like an operation (offload.c step 1), not on a ring. */
	ext_arm(w, self, op, IOK_BLOCKING);
	r = offload_submit(w->rt, op);
	if (r < 0) {
		atomic_fetch_sub_explicit(&self->state, TS_OPS_ONE,
					  memory_order_relaxed);
		atomic_store_explicit(&op->st, OP_IDLE, memory_order_relaxed);
		list_del(self, op);
		return r;
	}
	return -EAGAIN;
}

void io_ext_start(struct worker *w, struct myriad_task *self, struct io_op *op,
		  const struct io_ext_ops *ops, void *ctx)
{
	op->u.ext.ctx = ctx;
	op->u.ext.ops = ops;
	ext_arm(w, self, op, IOK_EXT);
}

/* Any thread: the result, DONE (release), then the counted wake (step 3). */
void io_ext_complete(struct worker *w, struct io_op *op, int32_t res)
{
	struct myriad_task *t = op->task;
	uint32_t s = atomic_load_explicit(&op->st, memory_order_relaxed);

	op->res = res;
	while (!atomic_compare_exchange_weak_explicit(
		&op->st, &s, (s & ~OP_PHASE) | OP_DONE, memory_order_acq_rel,
		memory_order_relaxed))
		;
	task_op_done(w, t);
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

uint64_t io_op_take_deadline(struct io_op *op)
{
	uint64_t d;

	if (!(op->oflags & OF_DEADLINE))
		return 0;
	op->oflags &= ~OF_DEADLINE;
	d = (uint64_t)op->u.ts.tv_sec * 1000000000u +
	    (uint64_t)op->u.ts.tv_nsec;
	return d ? d : 1;
}
