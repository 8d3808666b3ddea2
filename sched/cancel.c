/* SPDX-License-Identifier: MIT */
/*
 * sched/cancel.c: cancellation: a task cancelled with a reason (-ETIME for
 * a deadline) and woken to see it, and its propagation down the subtree.
 */
#include "sched.h"

/* The runtime's half of cancellation: mark and wake unfinished children. */
void propagate_cancel(struct myriad_task *t)
{
	uint64_t why = task_cancel_reason(t) == -ETIME ? TF_TIMEDOUT : 0;
	struct myriad_task *c;

	atomic_fetch_or_explicit(&t->state, TF_CANCEL_SEEN,
				 memory_order_relaxed);
	for (c = t->children; c; c = c->sibling) {
		uint64_t s =
			atomic_load_explicit(&c->state, memory_order_acquire);

		if ((s & TS_LC_MASK) == TS_DONE || (s & TF_CANCELLED))
			continue;
		task_cancel_flags(c, why);
	}
}

/*
 * Cancel 't' with a reason ('why': 0, or TF_TIMEDOUT for a deadline) and
 * wake it so that it sees it.
 */
void task_cancel_flags(struct myriad_task *t, uint64_t why)
{
	struct myriad_rt *rt;
	uint64_t s;

	/* A finished task keeps the status it finished with. */
	s = atomic_load_explicit(&t->state, memory_order_relaxed);
	if ((s & TF_CANCELLED) || (s & TS_LC_MASK) == TS_DONE)
		return;
	/*
	 * Count first: whoever sees the flag (acquire, released by the
	 * compare-and-swap below) then also sees a non-zero count, and walks
	 * the ancestors where it matters (spawn, completion status).
	 */
	rt = task_rt(t);
	atomic_fetch_add_explicit(&rt->ncancels, 1, memory_order_relaxed);
	do {
		if ((s & TF_CANCELLED) || (s & TS_LC_MASK) == TS_DONE)
			return;
	} while (!atomic_compare_exchange_weak_explicit(
		&t->state, &s, s | TF_CANCELLED | why, memory_order_acq_rel,
		memory_order_relaxed));
	if (task_wake_prepare(t))
		task_schedule(rt, t);
}

int myriad_task_cancel(myriad_task_t *t)
{
	if (!t)
		return -EINVAL;
	task_cancel_flags(t, 0);
	return 0;
}

int task_cancel_reason(const struct myriad_task *t)
{
	/* Ancestors outlive their children (a parent finishes last). */
	while (t) {
		uint64_t s =
			atomic_load_explicit(&t->state, memory_order_acquire);

		if (s & TF_CANCELLED)
			return (s & TF_TIMEDOUT) ? -ETIME : -ECANCELED;
		if (!(s & TF_CHILD))
			return 0;
		t = t->up;
	}
	return 0;
}

int myriad_task_cancel_reason(const myriad_task_t *self)
{
	return self ? task_cancel_reason(self) : 0;
}

bool myriad_task_cancelled(const myriad_task_t *self)
{
	/* Ancestors outlive their children (a parent finishes last). */
	while (self) {
		uint64_t s = atomic_load_explicit(&self->state,
						  memory_order_acquire);

		if (s & TF_CANCELLED)
			return true;
		if (!(s & TF_CHILD))
			return false;
		self = self->up;
	}
	return false;
}
