/* SPDX-License-Identifier: MIT */
/*
 * sched/task_api.c: what a running step calls about tasks: spawn children
 * and join them, results and status, its state, where it runs, its waker.
 */
#include "sched.h"
#include "probes.h"

static inline bool is_running_task(struct worker *w, myriad_task_t *self)
{
	return w && w->current == self && self;
}

/* sched/task.c:5: add the running step's pending children to its count. */
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
		/* Counted when the step ends, or earlier (sched/task.c:5). */
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

void myriad_task_set_result(myriad_task_t *self, int64_t value)
{
	if (self)
		self->result = value;
}

int64_t myriad_task_result(const myriad_task_t *child)
{
	return child ? child->result : 0;
}

int myriad_task_status(const myriad_task_t *child)
{
	uint64_t s;

	if (!child)
		return -EINVAL;
	s = atomic_load_explicit(&child->state, memory_order_relaxed);
	if (!(s & TF_CANCELLED))
		return 0;
	return (s & TF_TIMEDOUT) ? -ETIME : -ECANCELED;
}

void *myriad_task_state(myriad_task_t *t)
{
	return t ? task_state(t) : NULL;
}

myriad_rt_t *myriad_current_rt(void)
{
	struct worker *w = cur_worker();

	return w ? w->rt : NULL;
}

int myriad_current_worker(void)
{
	struct worker *w = cur_worker();

	return w ? (int)w->idx : -1;
}

myriad_waker_t myriad_task_waker(myriad_task_t *self)
{
	struct worker *w = cur_worker();
	myriad_waker_t wk = { NULL, NULL };

	if (is_running_task(w, self)) {
		wk.rt = w->rt;
		wk.task = self;
	}
	return wk;
}

int myriad_waker_wake(myriad_waker_t wk)
{
	if (!wk.rt || !wk.task)
		return -EINVAL;
	if (atomic_load_explicit(&wk.rt->shutdown, memory_order_relaxed))
		return -ESHUTDOWN;
	if (!task_wake_prepare(wk.task))
		return 0;
	task_schedule(wk.rt, wk.task);
	return 1;
}
