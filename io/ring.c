/* SPDX-License-Identifier: MIT */
/*
 * io/ring.c: a worker's io_uring as the place it parks: created in its own
 * thread, woken by other threads' IORING_OP_MSG_RING, and reaped of every
 * completion (wakes, timeouts, operations) in one loop.
 */
#include <stdlib.h>
#include <string.h>

#include "io/internal.h"

/*
 * The wake of sched/park.c:5, on the ring: why it is never lost.
 *
 * 1. A wake is a completion posted to the sleeper's ring with
 *    IORING_OP_MSG_RING (IO_UD_WAKE). A completion stays in the ring until
 *    it is reaped, so a wake sent before the sleeper enters its wait
 *    (ring_park()) makes that wait return at once.
 * 2. Only the owner reaps its ring, and between registering as asleep
 *    (sched/park.c:1) and the wait it reaps nothing: a wake from the
 *    notifier that took it off the sleepers list is still there when it
 *    waits. A wake reaped at another time (its tick) is a late one, which
 *    sched/park.c:6 makes harmless.
 * 3. A wake that fails to post (a full completion queue on the target)
 *    comes back to its sender as a failed MSG_RING completion
 *    (IO_UD_MSG_SENT; successes are skipped) and is sent again: from a
 *    worker's ring at its next reap, from the outside ring at once, under
 *    its lock.
 * 4. Rings close only once every worker is joined (rt destroy), so no
 *    wake is ever posted to a closed ring's reused descriptor.
 */

int ring_init(struct worker *w, unsigned entries)
{
	/*
	 * The flags the kernel accepts, best first; with DEFER_TASKRUN the
	 * ring must be created, submitted to and waited on by the worker's
	 * own thread, which is why this runs in the worker.
	 */
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
			IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	struct io_worker *iw = worker_io(w);
	struct io_uring_params p;
	int r = -EINVAL;
	size_t i;

	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		/*
		 * SUBMIT_ALL: one bad operation does not stop the batch
		 * behind it. The completion queue is four times the
		 * submission queue; past that the kernel keeps overflowing
		 * completions (IORING_FEAT_NODROP) until ring_reap() asks.
		 */
		p.flags = tries[i] | IORING_SETUP_SUBMIT_ALL |
			  IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		if (p.cq_entries > 65536) /* the kernel's largest */
			p.cq_entries = 65536;
		r = io_uring_queue_init_params(entries, &iw->uring, &p);
		if (r == 0) {
			iw->uring_ok = true;
			iw->uring_flags = tries[i];
			return 0;
		}
		if (r != -EINVAL)
			break;
	}
	return r;
}

void ring_fini(struct worker *w)
{
	struct io_worker *iw = worker_io(w);

	if (iw->uring_ok)
		io_uring_queue_exit(&iw->uring);
	iw->uring_ok = false;
}

/* Step 1: post a wake completion to worker 'target' through ring 'ring'. */
static void send_wake(struct io_uring *ring, struct worker *target)
{
	struct io_uring_sqe *sqe;

	/*
	 * Never dropped: a full submission queue holds only what this thread
	 * prepared and empties with the submit.
	 */
	while (!(sqe = io_uring_get_sqe(ring)))
		io_uring_submit(ring);
	io_uring_prep_msg_ring(sqe, worker_io(target)->uring.ring_fd, 0,
			       IO_UD_WAKE, 0);
	sqe->user_data =
		IO_UD_MSG_SENT | ((uint64_t)target->idx << IO_UD_SHIFT);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_submit(ring);
}

/*
 * Reap what the ring holds without waiting; completions that overflowed
 * the completion queue are fetched too (none is lost). Wakes need nothing
 * (sched/park.c:6) but a resend when ours failed (step 3); timeouts go to
 * timer.c, operations to record.c.
 */
void ring_reap(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	struct io_uring_cqe *cqe;
	unsigned head, n, i, nresend;
	unsigned resend[16];

again:
	n = 0;
	nresend = 0;
	io_uring_for_each_cqe(&iw->uring, head, cqe)
	{
		uint64_t kind = cqe->user_data & IO_UD_KIND;
		unsigned target = (unsigned)(cqe->user_data >> IO_UD_SHIFT);

		if (kind == IO_UD_MSG_SENT) {
			/* A wake we sent failed to post: send it again. */
			if (cqe->res < 0 && target < w->rt->nworkers) {
				if (nresend == 16)
					break; /* the rest at the next reap */
				resend[nresend++] = target;
			}
		} else if (kind >= IO_UD_OP) {
			io_op_cqe(w, cqe);
		} else if (kind == IO_UD_TIMEOUT) {
			timers_timeout_cqe(w, cqe);
		}
		n++;
	}
	io_uring_cq_advance(&iw->uring, n);
	for (i = 0; i < nresend; i++)
		send_wake(&iw->uring, &w->rt->workers[resend[i]]);
	if (nresend == 16 || (IO_URING_READ_ONCE(*iw->uring.sq.kflags) &
			      IORING_SQ_CQ_OVERFLOW)) {
		io_uring_get_events(&iw->uring);
		goto again;
	}
}

/* The driver's unpark (steps 1 and 3). */
bool ring_unpark(struct myriad_rt *rt, struct worker *from,
		 struct worker *target)
{
	struct io_rt *ir = rt_io(rt);

	if (!worker_io(target) || !worker_io(target)->uring_ok)
		return false; /* it never started */
	if (from) {
		send_wake(&worker_io(from)->uring, target);
		return true;
	}
	pthread_mutex_lock(&ir->olock);
	send_wake(&ir->oring, target);
	/* Failures of the outside ring's sends come back here. */
	{
		struct io_uring_cqe *cqe;

		while (io_uring_peek_cqe(&ir->oring, &cqe) == 0) {
			int res = cqe->res;

			io_uring_cqe_seen(&ir->oring, cqe);
			if (res < 0)
				send_wake(&ir->oring, target);
		}
	}
	pthread_mutex_unlock(&ir->olock);
	return true;
}

/*
 * The driver's park (sched/park.c:5): arm a timeout for the earliest
 * timer, submit what is queued and wait for one completion (step 1: at
 * once if a wake is there), then reap and fire what is due.
 */
void ring_park(struct worker *w)
{
	struct io_worker *iw = worker_io(w);

	timers_arm(w); /* due timers wake us through the ring too */
	io_uring_submit_and_wait(&iw->uring, 1);
	iw->queued = 0;
	CTR_INC(w, MYRIAD_CTR_IO_ENTERS);
	ring_reap(w);
	timers_poll(w);
}

/* ---- submission, the tick and the drain ---- */

/* Submit what is queued (an SQ full of our own entries empties here). */
void flush_sq(struct worker *w)
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

struct io_uring_sqe *get_sqe(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&iw->uring)))
		flush_sq(w);
	iw->queued++;
	w->drv_busy = true; /* the run loop polls (sched/driver.h) */
	return sqe;
}

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

/* The drain of io/record.c:8. */
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
