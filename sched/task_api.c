/* SPDX-License-Identifier: MIT */
/*
 * sched/task_api.c: what else a step asks about tasks (spawn and join are
 * task.c's): results and status, its state, where it runs, its waker.
 */
#include "sched.h"

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
