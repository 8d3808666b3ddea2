/* SPDX-License-Identifier: MIT */
/*
 * io/record.c: the record protocol: an operation's record in task state,
 * started and counted in its task, completed once by its ring's owner,
 * cancelled from any worker, settled when its task ends.
 */
#include <unistd.h>

#include "io/internal.h"
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

void op_list_add(struct myriad_task *t, struct io_op *op)
{
	if (op->oflags & OF_LISTED)
		return;
	op->next = t->ops;
	t->ops = op;
	op->oflags |= OF_LISTED;
}

void op_list_del(struct myriad_task *t, struct io_op *op)
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
void complete_one(struct worker *w, struct io_op *op, uint32_t add)
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

/* Cancel 'op' if in flight (steps 5 and 6); the task's step, or its end. */
void op_cancel(struct worker *w, struct io_op *op)
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
			op_list_del(t, op);
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
			op_list_del(t, op);
			break;
		default:
			io_op_drop(w->rt, op);
			op_list_del(t, op);
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
		op_list_del(self, op);
	return r;
}

/* The record in flight with word 'st', counted in its task (step 2). */
static void op_arm(struct worker *w, myriad_task_t *self, struct io_op *op,
		   uint8_t kind, uint32_t st)
{
	op->kind = kind;
	op->task = self;
	op->worker = (uint16_t)w->idx;
	atomic_store_explicit(&op->st, st, memory_order_relaxed);
	op_list_add(self, op);
	atomic_fetch_add_explicit(&self->state, TS_OPS_ONE,
				  memory_order_relaxed);
	CTR_INC(w, MYRIAD_CTR_IO_OPS);
	PROBE3(io_submit, (int)w->idx, op, kind);
}

/*
 * Start an operation: the record in flight (with room in the SQ for the
 * operation and its linked timeout); the caller takes its SQE next.
 */
void op_start(struct worker *w, myriad_task_t *self, struct io_op *op,
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
int op_commit(struct worker *w, struct io_op *op, struct io_uring_sqe *sqe)
{
	sqe->user_data = (uint64_t)(uintptr_t)op | IO_UD_OP;
	if (op->oflags & OF_DEADLINE) {
		op->oflags &= ~OF_DEADLINE;
		link_timeout(w, op, sqe);
	}
	return -EAGAIN;
}

/* A record completed off the ring (io_ext_complete()), in flight. */
void ext_arm(struct worker *w, struct myriad_task *self, struct io_op *op,
	     uint8_t kind)
{
	op->res = 0;
	op_arm(w, self, op, kind, OP_FLIGHT);
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
