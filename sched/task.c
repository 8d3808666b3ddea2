/* SPDX-License-Identifier: MIT */
/*
 * sched/task.c: the task's life: allocation from the worker's arena, the
 * state word that makes wake-ups exactly-once, spawn and join, running a
 * step, wakes of a parent and of I/O completions, completion and freeing.
 */
#include <string.h>

#include <jemalloc/jemalloc.h>

#include "sched.h"
#include "probes.h"
#include "signals/signals.h"
#include "futex.h"

/*
 * The state word protocol: why no wake-up is lost and no task runs twice.
 *
 * The lifecycle (low two bits) and the WOKEN flag move only by atomic
 * read-modify-write on the one word, so all changes to one task's word are
 * totally ordered:
 *
 *   IDLE --wake--> SCHEDULED (the waker queues it)
 *   SCHEDULED --wake--> SCHEDULED|WOKEN (queued or running: no queueing)
 *   SCHEDULED --step PENDING--> IDLE, or SCHEDULED again if WOKEN
 *   SCHEDULED --step YIELD--> SCHEDULED (queued again)
 *   SCHEDULED --step DONE, join count 0--> DONE
 *
 * 1. Only the move IDLE->SCHEDULED puts a task into a queue (a waker's),
 *    besides the worker that ran it queueing it again. From being queued
 *    until its step ends, the word says SCHEDULED, and wakes that find
 *    SCHEDULED only set WOKEN: a task is in at most one queue or running on
 *    one worker, never both, so it cannot run twice or concurrently.
 * 2. A task runs with its word still SCHEDULED. The worker's move out of
 *    it after the step is a compare-and-swap from the word's current value;
 *    a wake during the step set WOKEN, which the worker sees there and
 *    queues the task again instead of leaving it IDLE: a wake during a step
 *    is never lost.
 * 3. Memory ordering: every wake is a release read-modify-write (also when
 *    it changes nothing), after whatever the waker published. A worker
 *    starts a step with an acquire load of the word; if WOKEN is set it
 *    clears it with an acquire read-modify-write first, so that a wake
 *    after this point changes the word again and step 2 sees it. Each
 *    start therefore reads a value at or after the last wake that step 2
 *    did not see, and the step sees what that waker published. In the
 *    common case (a fresh task, or one queued by IDLE->SCHEDULED) a step
 *    costs one read-modify-write, the closing compare-and-swap.
 * 4. A finishing child decrements its parent's join count and, when it
 *    reaches zero, moves the parent IDLE->SCHEDULED (and queues it) or sets
 *    WOKEN, in the same compare-and-swap. The parent's move to DONE requires
 *    a join count of zero in that same word, so a parent never finishes (and
 *    is never freed) while a child is still about to touch it; the child
 *    only touches the parent again to queue it, and a queued parent cannot
 *    finish before it is dequeued.
 * 5. A parent counts the children it spawns during a step in its worker
 *    (join_pending) and adds them to the word in the step's closing
 *    compare-and-swap: those children sit on the worker's spawn stack and
 *    cannot run, let alone finish and decrement, before the step ends.
 *    Whatever would make one visible to another thread earlier (a spill of
 *    the stack, the inject queue) first adds the pending count with
 *    join_flush(), and myriad_task_join() counts it too. A thief that
 *    takes the stack over during the step adds the count itself before it
 *    runs a child, and tells the owner how much (sched/queue.c:9).
 * 6. A task that finishes with a join count of zero and no handle enters
 *    DONE with a plain store, not a compare-and-swap: no child is left to
 *    decrement the word, a wake finding DONE changes nothing, and a cancel
 *    racing the store is lost only for a task that finished anyway. A
 *    handle's release flag must not be lost (whoever of the task and the
 *    handle comes second frees it), so handle tasks always take the
 *    compare-and-swap.
 */

__thread struct worker *sched_cur_worker
	__attribute__((tls_model("initial-exec")));

struct myriad_rt *task_rt(const struct myriad_task *t)
{
	uint64_t s;

	for (;;) {
		s = atomic_load_explicit(&t->state, memory_order_relaxed);
		if (!(s & TF_CHILD))
			return t->up;
		t = t->up;
	}
}

struct myriad_task *task_new(struct myriad_rt *rt, struct worker *w,
			     myriad_step_fn fn, const void *init, size_t size,
			     uint64_t init_state, void *up)
{
	size_t total = sizeof(struct myriad_task) + size;
	struct myriad_task *t;

	if (w) {
		t = mallocx(total, w->alloc_flags);
		if (unlikely(!t))
			return NULL;
		own_add(&w->allocs, 1);
		/* Where this worker allocates now (rt.c's prefaulting). */
		if (unlikely(((uintptr_t)t & ~(PF_CHUNK - 1)) != w->pf_last)) {
			w->pf_last = (uintptr_t)t & ~(PF_CHUNK - 1);
			atomic_store_explicit(&w->pf_front, w->pf_last,
					      memory_order_relaxed);
		}
	} else {
		t = mallocx(total,
			    MALLOCX_ARENA(rt->oarena) | MALLOCX_TCACHE_NONE);
		if (unlikely(!t))
			return NULL;
		atomic_fetch_add_explicit(&rt->oallocs, 1,
					  memory_order_relaxed);
	}
	t->step = fn;
	t->up = up;
	t->children = NULL;
	t->sibling = NULL;
	t->ops = NULL;
	atomic_init(&t->wait, 0);
	t->result = 0;
	if (size) {
		if (init)
			memcpy(task_state(t), init, size);
		else
			memset(task_state(t), 0, size);
	}
	/*
	 * Release: the worker that runs the task starts with an acquire load
	 * of this word (step 3), which makes the header and state
	 * written above visible without relying on the queue's own fences.
	 */
	atomic_store_explicit(&t->state, init_state, memory_order_release);
	return t;
}

void task_free(struct myriad_rt *rt, struct worker *w, struct myriad_task *t)
{
	if (w) {
		dallocx(t, w->free_flags);
		own_add(&w->frees, 1);
	} else {
		dallocx(t, MALLOCX_TCACHE_NONE);
		atomic_fetch_add_explicit(&rt->ofrees, 1, memory_order_relaxed);
	}
}

/*
 * Wake: returns true when the caller moved the task IDLE->SCHEDULED and
 * must queue it (protocol step 1 and 3).
 */
bool task_wake_prepare(struct myriad_task *t)
{
	uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
	uint64_t ns;

	for (;;) {
		switch (s & TS_LC_MASK) {
		case TS_IDLE:
			ns = s | TS_SCHEDULED;
			break;
		case TS_SCHEDULED:
			ns = s | TF_WOKEN;
			break;
		default:
			ns = s;
			break;
		}
		if (atomic_compare_exchange_weak_explicit(&t->state, &s, ns,
							  memory_order_acq_rel,
							  memory_order_relaxed))
			return (s & TS_LC_MASK) == TS_IDLE;
	}
}

/* Step 5: add the running step's pending children to its join count. */
void join_flush(struct worker *w)
{
	uintptr_t held;
	uint32_t n;

	if (!atomic_load_explicit(&w->join_pending, memory_order_relaxed) ||
	    !w->current)
		return;
	/*
	 * A thief may read and add the pending count too (sched/queue.c:9):
	 * close the step window first, which also takes what it added off.
	 */
	held = stk_hold(w);
	n = atomic_load_explicit(&w->join_pending, memory_order_relaxed);
	if (n) {
		atomic_fetch_add_explicit(&w->current->state,
					  (uint64_t)n * TS_JOIN_ONE,
					  memory_order_relaxed);
		atomic_store_explicit(&w->join_pending, 0,
				      memory_order_relaxed);
	}
	stk_unhold(w, held);
}

/*
 * The policy sends a task spawned or woken on worker 'w' to the inject
 * queue: put it there (children of the running step are counted first,
 * step 5, since another worker may now run them).
 */
static bool placed_inject(struct myriad_rt *rt, struct worker *w,
			  struct myriad_task *t)
{
	if (likely(!rt->pol->spawn_place) ||
	    rt->pol->spawn_place(rt->pctx, w->idx) != MYRIAD_PLACE_INJECT)
		return false;
	join_flush(w);
	inject_push(&rt->inject, t);
	w->need_notify = true;
	return true;
}

/*
 * Queue a task that this thread just made SCHEDULED: on a worker of the
 * same runtime into its LIFO slot (or where the policy says), from anywhere
 * else into the inject queue with a notification.
 */
void task_schedule(struct myriad_rt *rt, struct myriad_task *t)
{
	struct worker *w = cur_worker();

	if (likely(w && w->rt == rt)) {
		if (!placed_inject(rt, w, t))
			lq_push_lifo(w, t);
		return;
	}
	inject_push(&rt->inject, t);
	notify_one(rt, NULL);
}

/*
 * Queue a task just spawned by worker 'w' (of runtime 'rt'): on its spawn
 * stack, unless the policy sends it to the inject queue.
 */
void task_schedule_spawned(struct myriad_rt *rt, struct worker *w,
			   struct myriad_task *t)
{
	if (!placed_inject(rt, w, t))
		lq_push_stack(w, t);
}

/* Give up the channel or timer the task waits on (sched.h, 'wait'). */
void wait_release(struct worker *w, struct myriad_task *t)
{
	uintptr_t reg = atomic_load_explicit(&t->wait, memory_order_acquire);

	if (reg & TW_TIMER)
		w->rt->drv->timer_release(t);
	else if (reg)
		chan_task_finished(t);
}

/*
 * Free the children from 'head' to the end of the list: those a join saw
 * finished (children spawned after that join come before 'head'); from
 * the list's head, all of them, once the join count is zero.
 */
static void reap_joined(struct worker *w, struct myriad_task *t,
			struct myriad_task *head)
{
	struct myriad_task *p = t->children, *n;

	if (p == head) {
		t->children = NULL;
	} else {
		while (p && p->sibling != head)
			p = p->sibling;
		if (!p)
			return;
		p->sibling = NULL;
	}
	for (; head; head = n) {
		n = head->sibling;
		task_free(w->rt, w, head);
	}
}

/*
 * A child finished: decrement the parent's join count; at zero, wake the
 * parent in the same step (protocol step 4). After the compare-and-swap the
 * child's header belongs to the parent, which may free it at once.
 */
static void child_finished(struct worker *w, struct myriad_task *parent)
{
	uint64_t s = atomic_load_explicit(&parent->state, memory_order_relaxed);
	uint64_t ns;

	for (;;) {
		ns = s - TS_JOIN_ONE;
		if (TS_JOIN(ns) == 0) {
			if ((s & TS_LC_MASK) == TS_IDLE)
				ns |= TS_SCHEDULED;
			else if ((s & TS_LC_MASK) == TS_SCHEDULED)
				ns |= TF_WOKEN;
		}
		if (atomic_compare_exchange_weak_explicit(
			    &parent->state, &s, ns, memory_order_acq_rel,
			    memory_order_relaxed))
			break;
	}
	/* Woken by its last child: on the stack, to run next (depth-first). */
	if ((s & TS_LC_MASK) == TS_IDLE && TS_JOIN(ns) == 0)
		lq_push_stack(w, parent);
}

/* The task's step returned DONE and its state word says DONE now. */
static void task_complete(struct worker *w, struct myriad_task *t, uint64_t s)
{
	struct myriad_rt *rt = w->rt;

	if (s & TF_CHILD) {
		child_finished(w, t->up);
		return;
	}
	if (s & TF_HANDLE) {
		if (s & TF_HANDLE_GONE)
			task_free(rt, w, t);
		/* Else the handle's release frees it: t is off limits now. */
		atomic_fetch_add_explicit(&rt->done_epoch, 1,
					  memory_order_release);
		if (atomic_load_explicit(&rt->joiners, memory_order_acquire))
			myriad_futex_wake_all(&rt->done_epoch);
		return;
	}
	task_free(rt, w, t);
}

void task_run(struct worker *w, struct myriad_task *t)
{
	uint64_t s, ns, pend;
	int r;

	/* The acquire of protocol step 3. */
	s = atomic_load_explicit(&t->state, memory_order_acquire);
	assert((s & TS_LC_MASK) == TS_SCHEDULED);
	if (unlikely(s & (TF_WOKEN | TF_CANCELLED))) {
		s = atomic_fetch_and_explicit(&t->state, ~(uint64_t)TF_WOKEN,
					      memory_order_acq_rel);
		if ((s & (TF_CANCELLED | TF_CANCEL_SEEN)) == TF_CANCELLED) {
			propagate_cancel(t);
			if (t->ops)
				w->rt->drv->task_cancel(w, t);
		}
	}
	w->joined = false;
	if (unlikely(s & TF_ZOMBIE)) {
		r = MYRIAD_DONE; /* finishing after its children: no step */
	} else {
		CTR_INC(w, MYRIAD_CTR_RUN);
		w->current = t;
		if (unlikely(s & TF_URGENT)) {
			w->urgent_io = true; /* worker.c: urgent_peek() */
			w->urgent_tick = w->tick;
		}
		w->budget = 128;
		PROBE3(run, (int)w->idx, t, t->step);
		if (unlikely(w->sigw))
			sig_step_begin(w->sigw, (uint64_t)(uintptr_t)t,
				       (const void *)t->step, 0);
		stk_open(w, t);
		r = t->step(t, task_state(t));
		stk_close(w);
		if (unlikely(w->sigw))
			sig_step_end(w->sigw);
		PROBE3(run_done, (int)w->idx, t, r);
		w->current = NULL;
	}
	/* After stk_close(): what a thief added is off the count (step 8). */
	pend = (uint64_t)atomic_load_explicit(&w->join_pending,
					      memory_order_relaxed) *
	       TS_JOIN_ONE;
	if (pend)
		atomic_store_explicit(&w->join_pending, 0,
				      memory_order_relaxed);
	/*
	 * Reap before the state word says DONE: after that a handle's owner
	 * may free the task. A zero join count stays zero until the task
	 * itself adds children.
	 */
	if (r == MYRIAD_DONE) {
		if (unlikely(atomic_load_explicit(&t->wait,
						  memory_order_acquire)))
			wait_release(w, t);
		/* Cancels what is in flight; the task waits for it (ZOMBIE). */
		if (unlikely(t->ops))
			w->rt->drv->task_finish(w, t);
		if (t->children && !pend &&
		    TS_JOIN(atomic_load_explicit(&t->state,
						 memory_order_acquire)) == 0)
			reap_joined(w, t, t->children);
		/* Ended through a cancelled ancestor: its status says so. */
		if (unlikely(atomic_load_explicit(&w->rt->ncancels,
						  memory_order_relaxed)) &&
		    myriad_task_cancelled(t))
			atomic_fetch_or_explicit(
				&t->state,
				TF_CANCELLED | (task_cancel_reason(t) == -ETIME
							? TF_TIMEDOUT
							: 0),
				memory_order_relaxed);
	} else if (w->joined) {
		/* Only the children the join saw finished. */
		reap_joined(w, t, w->joined_head);
	}

	s = atomic_load_explicit(&t->state, memory_order_relaxed);
	/*
	 * Step 6: finished, no children left, no I/O in flight, no handle:
	 * a plain store.
	 */
	if (r == MYRIAD_DONE && !pend && TS_BUSY(s) == 0 && !(s & TF_HANDLE)) {
		ns = (s & ~(uint64_t)(TS_LC_MASK | TF_WOKEN)) | TS_DONE;
		atomic_store_explicit(&t->state, ns, memory_order_release);
		task_complete(w, t, ns);
		return;
	}
	for (;;) {
		uint64_t keep = (s & ~(uint64_t)(TS_LC_MASK | TF_WOKEN)) + pend;
		bool woken = s & TF_WOKEN;

		assert((s & TS_LC_MASK) == TS_SCHEDULED);
		switch (r) {
		case MYRIAD_YIELD:
			ns = keep | TS_SCHEDULED;
			break;
		case MYRIAD_DONE:
			if (TS_BUSY(keep) == 0) {
				ns = keep | TS_DONE;
				break;
			}
			/* Wait for the children and the I/O like PENDING. */
			keep |= TF_ZOMBIE;
			__attribute__((fallthrough));
		default:
			ns = keep | (woken ? TS_SCHEDULED : TS_IDLE);
			break;
		}
		if (atomic_compare_exchange_weak_explicit(&t->state, &s, ns,
							  memory_order_acq_rel,
							  memory_order_relaxed))
			break;
	}

	switch (ns & TS_LC_MASK) {
	case TS_DONE:
		task_complete(w, t, ns);
		break;
	case TS_SCHEDULED:
		/* Yielded, or woken during its step: behind the queued tasks. */
		lq_push(w, t);
		break;
	default:
		break;
	}
}

/* ---- the public task API: spawn and join (the rest: task_api.c) ---- */

myriad_task_t *myriad_task_spawn(myriad_task_t *self, myriad_step_fn fn,
				 const void *init, size_t size, unsigned flags,
				 int *err)
{
	struct worker *w = cur_worker();
	struct myriad_rt *rt;
	struct myriad_task *t;
	uint64_t s;
	int e;

	if (unlikely(!fn || size > MYRIAD_STATE_MAX ||
		     (flags & ~(unsigned)MYRIAD_SPAWN_DETACHED) ||
		     !is_running_task(w, self))) {
		e = -EINVAL;
		goto err;
	}
	rt = w->rt;
	if (unlikely(atomic_load_explicit(&rt->shutdown,
					  memory_order_relaxed))) {
		e = -ESHUTDOWN;
		goto err;
	}
	s = atomic_load_explicit(&self->state, memory_order_relaxed);
	if (flags & MYRIAD_SPAWN_DETACHED) {
		t = task_new(rt, w, fn, init, size, TS_SCHEDULED, rt);
	} else {
		uint64_t st = TS_SCHEDULED | TF_CHILD;

		if ((s & TF_CANCELLED) ||
		    (unlikely(atomic_load_explicit(&rt->ncancels,
						   memory_order_relaxed)) &&
		     myriad_task_cancelled(self)))
			st |= TF_CANCELLED;
		t = task_new(rt, w, fn, init, size, st, self);
	}
	if (unlikely(!t)) {
		e = -ENOMEM;
		goto err;
	}
	if (!(flags & MYRIAD_SPAWN_DETACHED)) {
		/* Counted at the end of the step, or before it is seen (5). */
		own_add32(&w->join_pending, 1);
		t->sibling = self->children;
		self->children = t;
	}
	CTR_INC(w, MYRIAD_CTR_SPAWNED);
	PROBE3(spawn, (int)w->idx, t, fn);
	task_schedule_spawned(rt, w, t);
	if (err)
		*err = 0;
	return (flags & MYRIAD_SPAWN_DETACHED) ? NULL : t;
err:
	if (err)
		*err = e;
	return NULL;
}

int myriad_task_join(myriad_task_t *self)
{
	struct worker *w = cur_worker();

	if (unlikely(!is_running_task(w, self)))
		return -EINVAL;
	/* Acquire: pairs with the children's release in child_finished. */
	if (atomic_load_explicit(&w->join_pending, memory_order_relaxed) ||
	    TS_JOIN(atomic_load_explicit(&self->state, memory_order_acquire)))
		return 1;
	w->joined = true;
	w->joined_head = self->children;
	return 0;
}

/*
 * An I/O operation of 't' completed (the driver's records): one operation
 * fewer in flight and a wake, in one compare-and-swap, as a finishing
 * child does for its parent (protocol step 4): the task cannot finish
 * while the count is not zero, so it is still there. 'w' is the worker
 * that reaped the completion, or NULL for another thread.
 */
void task_op_done(struct worker *w, struct myriad_task *t)
{
	uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
	uint64_t ns;

	for (;;) {
		assert(TS_OPS(s) > 0);
		ns = s - TS_OPS_ONE;
		if ((s & TS_LC_MASK) == TS_IDLE)
			ns |= TS_SCHEDULED;
		else if ((s & TS_LC_MASK) == TS_SCHEDULED)
			ns |= TF_WOKEN;
		if (atomic_compare_exchange_weak_explicit(&t->state, &s, ns,
							  memory_order_acq_rel,
							  memory_order_relaxed))
			break;
	}
	if ((s & TS_LC_MASK) != TS_IDLE)
		return;
	if (!w)
		task_schedule(task_rt(t), t);
	else if (s & TF_URGENT)
		lq_push_lifo(w, t);
	else
		lq_push(w, t);
}

/* A completion that leaves the operation in flight (multishot): a wake. */
void task_op_wake(struct worker *w, struct myriad_task *t)
{
	if (task_wake_prepare(t))
		lq_push(w, t);
}

/*
 * Mark the running task 'self' urgent: an I/O completion wakes it into the
 * LIFO slot of the worker that reaped it, ahead of the ring. For the
 * runtime's own driver tasks (the HTTP client), whose one step feeds the
 * I/O of many tasks: behind a ring of runnable agents it refilled the LLM
 * window late.
 */
void task_set_urgent(struct myriad_task *self)
{
	atomic_fetch_or_explicit(&self->state, TF_URGENT, memory_order_relaxed);
}
