/* SPDX-License-Identifier: MIT */
/*
 * sched/idle.c: idle-worker bookkeeping: how many workers search for work
 * (at most half), how many are awake, and the list of sleeping workers
 * that a notification wakes one at a time.
 */
/*
 * The counts and the sleepers list change together under the idle lock,
 * with sequentially consistent read-modify-writes on the state word: that
 * is what the numbered notify/park protocol (sched/park.c:1, 3, 4 and 6)
 * relies on to show that no wake-up is lost.
 */

#include <stdlib.h>

#include "sched.h"

int idle_init(struct idle *id, unsigned nworkers)
{
	id->sleepers = calloc(nworkers, sizeof(*id->sleepers));
	if (!id->sleepers)
		return -ENOMEM;
	id->nsleepers = 0;
	atomic_init(&id->lock.v, 0);
	atomic_init(&id->state, nworkers * IDLE_UNPARKED_ONE);
	return 0;
}

void idle_fini(struct idle *id)
{
	free(id->sleepers);
	id->sleepers = NULL;
}

/*
 * Become a searcher unless half the workers already search: more thieves
 * than that only fight over the same queues.
 */
bool idle_try_searching(struct myriad_rt *rt)
{
	uint32_t s =
		atomic_load_explicit(&rt->idle.state, memory_order_seq_cst);

	if (2 * IDLE_SEARCHING(s) >= rt->nworkers)
		return false;
	atomic_fetch_add_explicit(&rt->idle.state, 1, memory_order_seq_cst);
	return true;
}

/* Stop searching; returns true if this was the last searcher. */
bool idle_stop_searching(struct myriad_rt *rt)
{
	uint32_t s = atomic_fetch_sub_explicit(&rt->idle.state, 1,
					       memory_order_seq_cst);

	return IDLE_SEARCHING(s) == 1;
}

/*
 * Register 'w' as asleep (sched/park.c:1). Returns true if it was the last
 * searcher, in which case the caller must look at every queue once more.
 */
bool idle_park(struct myriad_rt *rt, struct worker *w)
{
	uint32_t dec = IDLE_UNPARKED_ONE + (w->searching ? 1 : 0);
	uint32_t s;

	spin_lock(&rt->idle.lock);
	s = atomic_fetch_sub_explicit(&rt->idle.state, dec,
				      memory_order_seq_cst);
	rt->idle.sleepers[rt->idle.nsleepers++] = w->idx;
	w->in_sleepers = true;
	spin_unlock(&rt->idle.lock);
	return w->searching && IDLE_SEARCHING(s) == 1;
}

/*
 * After a wake-up: if 'w' is still on the list (woken by something else
 * than a notification), take it off and count it awake; returns true.
 * Returns false if a notifier took it off first, in which case the
 * notifier already counted it awake and searching.
 */
bool idle_unpark_self(struct myriad_rt *rt, struct worker *w)
{
	unsigned i;
	bool found = false;

	spin_lock(&rt->idle.lock);
	if (w->in_sleepers) {
		for (i = 0; i < rt->idle.nsleepers; i++) {
			if (rt->idle.sleepers[i] == w->idx) {
				rt->idle.sleepers[i] =
					rt->idle.sleepers[--rt->idle.nsleepers];
				break;
			}
		}
		w->in_sleepers = false;
		atomic_fetch_add_explicit(&rt->idle.state, IDLE_UNPARKED_ONE,
					  memory_order_seq_cst);
		found = true;
	}
	spin_unlock(&rt->idle.lock);
	return found;
}

/*
 * Take a sleeping worker to wake, counting it awake and searching, or -1.
 * Prefers the most recently parked (its caches are warmest) among those
 * the policy keeps active; re-checks under the lock that nobody searches,
 * so that two notifiers do not wake two workers for one task.
 */
int idle_take_sleeper(struct myriad_rt *rt)
{
	unsigned active =
		atomic_load_explicit(&rt->active, memory_order_relaxed);
	uint32_t s;
	int idx = -1;
	unsigned i;

	spin_lock(&rt->idle.lock);
	s = atomic_load_explicit(&rt->idle.state, memory_order_seq_cst);
	if (IDLE_SEARCHING(s) == 0) {
		for (i = rt->idle.nsleepers; i-- > 0;) {
			if (rt->idle.sleepers[i] < active) {
				idx = (int)rt->idle.sleepers[i];
				rt->idle.sleepers[i] =
					rt->idle.sleepers[--rt->idle.nsleepers];
				break;
			}
		}
	}
	if (idx >= 0) {
		rt->workers[idx].in_sleepers = false;
		atomic_fetch_add_explicit(&rt->idle.state,
					  IDLE_UNPARKED_ONE + 1,
					  memory_order_seq_cst);
	}
	spin_unlock(&rt->idle.lock);
	return idx;
}
