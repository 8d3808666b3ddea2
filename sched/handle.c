/* SPDX-License-Identifier: MIT */
/*
 * sched/handle.c: spawning from any thread, and the handles through which
 * a thread outside the runtime joins, cancels and releases a task.
 */
#include "base/clock.h"
#include "sched.h"
#include "probes.h"
#include "futex.h"

int myriad_rt_spawn(myriad_rt_t *rt, myriad_step_fn fn, const void *init,
		    size_t size, myriad_handle_t **handle)
{
	struct worker *w = cur_worker();
	struct myriad_task *t;
	uint64_t st = TS_SCHEDULED;

	if (handle)
		*handle = NULL;
	if (!rt || !fn || size > MYRIAD_STATE_MAX)
		return -EINVAL;
	if (atomic_load_explicit(&rt->shutdown, memory_order_acquire))
		return -ESHUTDOWN;
	if (w && w->rt != rt)
		w = NULL;
	if (handle)
		st |= TF_HANDLE;
	t = task_new(rt, w, fn, init, size, st, rt);
	if (!t)
		return -ENOMEM;
	if (handle) {
		atomic_fetch_add_explicit(&rt->handles, 1,
					  memory_order_relaxed);
		*handle = t;
	}
	PROBE3(spawn, w ? (int)w->idx : -1, t, fn);
	if (w) {
		CTR_INC(w, MYRIAD_CTR_SPAWNED);
		task_schedule_spawned(rt, w, t);
	} else {
		task_schedule(rt, t);
	}
	return 0;
}

int myriad_handle_join(myriad_handle_t *h, int64_t *result, int64_t timeout_ns)
{
	struct myriad_rt *rt;
	struct worker *w = cur_worker();
	struct timespec rel;
	uint64_t s, end = 0, now;
	uint32_t epoch;
	int r = 0;

	if (!h)
		return -EINVAL;
	rt = h->up;
	if (w && w->rt == rt)
		return -EDEADLK;
	if (timeout_ns >= 0)
		end = myriad_now_ns() + (uint64_t)timeout_ns;
	atomic_fetch_add_explicit(&rt->joiners, 1, memory_order_seq_cst);
	for (;;) {
		epoch = atomic_load_explicit(&rt->done_epoch,
					     memory_order_seq_cst);
		s = atomic_load_explicit(&h->state, memory_order_acquire);
		if ((s & TS_LC_MASK) == TS_DONE) {
			if (result)
				*result = h->result;
			r = (s & TF_CANCELLED) ? -ECANCELED : 0;
			break;
		}
		if (atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
			r = -ESHUTDOWN;
			break;
		}
		if (timeout_ns >= 0) {
			now = myriad_now_ns();
			if (now > end) {
				r = -ETIMEDOUT;
				break;
			}
			rel = ns_timespec(end - now);
		}
		myriad_futex_wait(&rt->done_epoch, epoch,
				  timeout_ns >= 0 ? &rel : NULL);
	}
	atomic_fetch_sub_explicit(&rt->joiners, 1, memory_order_relaxed);
	return r;
}

int myriad_handle_cancel(myriad_handle_t *h)
{
	return h ? myriad_task_cancel(h) : -EINVAL;
}

int myriad_handle_release(myriad_handle_t *h)
{
	struct myriad_rt *rt;
	uint64_t s;

	if (!h)
		return -EINVAL;
	rt = h->up;
	s = atomic_fetch_or_explicit(&h->state, TF_HANDLE_GONE,
				     memory_order_acq_rel);
	/* If the task finished first, it left the freeing to us. */
	if ((s & TS_LC_MASK) == TS_DONE)
		task_free(rt,
			  cur_worker() && cur_worker()->rt == rt ? cur_worker()
								 : NULL,
			  h);
	atomic_fetch_sub_explicit(&rt->handles, 1, memory_order_release);
	return 0;
}

int myriad_rt_block_on(myriad_rt_t *rt, myriad_step_fn fn, const void *init,
		       size_t size, int64_t *result)
{
	myriad_handle_t *h;
	int r;

	r = myriad_rt_spawn(rt, fn, init, size, &h);
	if (r < 0)
		return r;
	r = myriad_handle_join(h, result, -1);
	myriad_handle_release(h);
	return r;
}
