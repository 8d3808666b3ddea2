/* SPDX-License-Identifier: MIT */
/*
 * sched/park.c: an idle worker sleeps in its own io_uring wait; another
 * thread wakes it by posting a completion to that ring with
 * IORING_OP_MSG_RING, so wake-ups, I/O and timers all arrive one way.
 */
#include <string.h>

#include "sched.h"
#include "probes.h"
#include "io/io.h"

/*
 * The notify/park protocol: why no wake-up is lost.
 *
 * A producer makes a task runnable by another worker (pushes it to its ring
 * or to the inject queue) and then calls notify_one(); a worker that finds
 * nothing calls park().
 *
 * 1. park() first registers the worker as asleep: under the idle lock it
 *    decrements the awake (and, if searching, the searching) count with a
 *    sequentially consistent read-modify-write and pushes itself on the
 *    sleepers list.
 * 2. It then looks at every queue once more (work_visible()). If it sees
 *    work it takes itself off the list and goes back to work: no sleep.
 * 3. notify_one() runs after the producer's push and a sequentially
 *    consistent fence; it reads the idle state. By 1-3 (the store-load
 *    pattern with full fences on both sides) either the parker's re-check
 *    sees the new task, or the producer sees the parker's decrement, finds
 *    nobody searching and takes a sleeper off the list (under the lock,
 *    so it sees the parker's push) and wakes it.
 * 4. If the producer sees a searcher instead, that searcher either finds
 *    the task, or parks, and step 2 makes it see the task; a searcher that
 *    finds work and was the last one searching notifies another worker, so
 *    that remaining work always has someone looking for it.
 * 5. The wake itself is a completion posted to the sleeper's ring. A
 *    completion stays in the ring until it is reaped, so a wake sent before
 *    the sleeper enters io_uring_wait_cqe() makes that wait return at once:
 *    there is no window between "decided to sleep" and "sleeping".
 * 6. Accounting is done by whoever takes a worker off the list (the
 *    notifier counts it awake and searching; a worker woken by anything
 *    else takes itself off), never from the completion, so a late or
 *    duplicate wake completion is harmless and is simply reaped.
 */

int park_ring_init(struct worker *w)
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
	struct io_uring_params p;
	int r = -EINVAL;
	size_t i;

	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		/*
		 * SUBMIT_ALL: one bad operation does not stop the batch
		 * behind it. The completion queue is four times the
		 * submission queue; past that the kernel keeps overflowing
		 * completions (IORING_FEAT_NODROP) until park_reap() asks.
		 */
		p.flags = tries[i] | IORING_SETUP_SUBMIT_ALL |
			  IORING_SETUP_CQSIZE;
		p.cq_entries = w->ring_entries * 4;
		if (p.cq_entries > 65536) /* the kernel's largest */
			p.cq_entries = 65536;
		r = io_uring_queue_init_params(w->ring_entries, &w->uring, &p);
		if (r == 0) {
			w->uring_ok = true;
			w->uring_flags = tries[i];
			return 0;
		}
		if (r != -EINVAL)
			break;
	}
	return r;
}

void park_ring_fini(struct worker *w)
{
	if (w->uring_ok)
		io_uring_queue_exit(&w->uring);
	w->uring_ok = false;
}

/* Post a wake completion to worker 'target' through ring 'ring'. */
static void send_wake(struct io_uring *ring, struct worker *target)
{
	struct io_uring_sqe *sqe;

	/*
	 * Never dropped: a full submission queue holds only what this thread
	 * prepared and empties with the submit.
	 */
	while (!(sqe = io_uring_get_sqe(ring)))
		io_uring_submit(ring);
	io_uring_prep_msg_ring(sqe, target->uring.ring_fd, 0, IO_UD_WAKE, 0);
	sqe->user_data =
		IO_UD_MSG_SENT | ((uint64_t)target->idx << IO_UD_SHIFT);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_submit(ring);
}

/*
 * Reap what the ring holds without waiting; completions that overflowed
 * the completion queue are fetched too (none is lost).
 */
void park_reap(struct worker *w)
{
	struct io_uring_cqe *cqe;
	unsigned head, n, i, nresend;
	unsigned resend[16];

again:
	n = 0;
	nresend = 0;
	io_uring_for_each_cqe(&w->uring, head, cqe)
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
			io_cqe(w, cqe);
		}
		n++;
	}
	io_uring_cq_advance(&w->uring, n);
	for (i = 0; i < nresend; i++)
		send_wake(&w->uring, &w->rt->workers[resend[i]]);
	if (nresend == 16 ||
	    (IO_URING_READ_ONCE(*w->uring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)) {
		io_uring_get_events(&w->uring);
		goto again;
	}
}

static void wake_worker(struct myriad_rt *rt, struct worker *from, unsigned idx)
{
	struct worker *target = &rt->workers[idx];

	if (from && from->rt == rt) {
		send_wake(&from->uring, target);
		CTR_INC(from, MYRIAD_CTR_NOTIFIES);
		return;
	}
	pthread_mutex_lock(&rt->olock);
	send_wake(&rt->oring, target);
	/* Failures of the outside ring's sends come back here. */
	{
		struct io_uring_cqe *cqe;

		while (io_uring_peek_cqe(&rt->oring, &cqe) == 0) {
			int res = cqe->res;

			io_uring_cqe_seen(&rt->oring, cqe);
			if (res < 0)
				send_wake(&rt->oring, target);
		}
	}
	pthread_mutex_unlock(&rt->olock);
}

/* Somebody sleeps and nobody searches: new work needs a sleeper woken. */
static bool sleeper_wanted(struct myriad_rt *rt, uint32_t s)
{
	return IDLE_SEARCHING(s) == 0 && IDLE_UNPARKED(s) < rt->nworkers;
}

/* Step 3: after making work visible, wake a sleeper if nobody searches. */
void notify_one(struct myriad_rt *rt, struct worker *from)
{
	uint32_t s;
	int idx;

	atomic_thread_fence(memory_order_seq_cst);
	s = atomic_load_explicit(&rt->idle.state, memory_order_seq_cst);
	if (!sleeper_wanted(rt, s))
		return;
	idx = idle_take_sleeper(rt);
	if (idx >= 0)
		wake_worker(rt, from, (unsigned)idx);
}

/*
 * The cheap form for a worker that queued work on itself: read the idle
 * state without the fence, and pay for notify_one() only when a worker
 * sleeps and nobody searches. A stale read here cannot strand a task: the
 * work is in this worker's own queue and it runs it itself; what a stale
 * read can cost is parallelism until the next check, before its next step.
 */
void notify_local(struct myriad_rt *rt, struct worker *w)
{
	if (sleeper_wanted(rt, atomic_load_explicit(&rt->idle.state,
						    memory_order_relaxed)))
		notify_one(rt, w);
}

/* Wake every worker (shutdown, or the active count grew). */
void notify_all(struct myriad_rt *rt)
{
	struct worker *w = cur_worker();
	unsigned i;

	for (i = 0; i < rt->nworkers; i++)
		if (rt->workers[i].uring_ok)
			wake_worker(rt, w, i);
}

/* Step 2: is there anything to run anywhere? */
bool work_visible(struct myriad_rt *rt)
{
	unsigned i;

	if (!inject_empty(&rt->inject))
		return true;
	for (i = 0; i < rt->nworkers; i++)
		if (lq_len(&rt->workers[i]))
			return true;
	/* A stack the monitor marked stuck (sysmon.c) is work too. */
	if (atomic_load_explicit(&rt->stuck_any, memory_order_relaxed))
		for (i = 0; i < rt->nworkers; i++)
			if (lq_stack_stuck(&rt->workers[i]))
				return true;
	return false;
}

/*
 * Sleep in the ring (step 1, 2, 5 and 6). 'look': re-check the queues
 * before sleeping (a worker out of work); a worker the policy made
 * inactive sleeps without looking, and wakes when the active count grows
 * (notify_all) or at shutdown, since notifications only take active
 * workers off the sleepers list.
 */
static void park_common(struct worker *w, bool look)
{
	struct myriad_rt *rt = w->rt;

	/* Step 1. */
	idle_park(rt, w);
	w->searching = false;

	/* Step 2. */
	if ((look && work_visible(rt)) ||
	    atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
		if (!idle_unpark_self(rt, w))
			w->searching = true; /* a notifier took us: step 6 */
		sysmon_kick(rt);
		return;
	}

	/* Step 5: returns at once if a wake is already in the ring. */
	CTR_INC(w, MYRIAD_CTR_PARKS);
	PROBE1(park, (int)w->idx);
	rt_shm_publish(w, true);
	io_timers_arm(w); /* due timers wake us through the ring too */
	io_uring_submit_and_wait(&w->uring, 1);
	w->io_queued = 0;
	CTR_INC(w, MYRIAD_CTR_IO_ENTERS);
	park_reap(w);
	io_timers_poll(w);

	/* Step 6. */
	if (!idle_unpark_self(rt, w)) {
		w->searching = true;
		CTR_INC(w, MYRIAD_CTR_WAKES);
		PROBE1(wake, (int)w->idx); /* woken by another thread */
	}
	/* Awake again: the monitor watches while any worker is. */
	sysmon_kick(rt);
}

void park(struct worker *w)
{
	park_common(w, true);
}

void park_sleep(struct worker *w)
{
	park_common(w, false);
}
