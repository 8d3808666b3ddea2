/* SPDX-License-Identifier: MIT */
/*
 * sched/park.c: an idle worker sleeps in its driver (its own io_uring
 * wait), and another thread wakes it through the driver, so wake-ups, I/O
 * and timers all arrive one way; who sleeps, who wakes whom, and why no
 * wake-up is lost.
 */
#include "sched.h"
#include "probes.h"

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
 * 5. The wake itself goes through the driver (driver.h): unpark() leaves
 *    a wake that the sleeper's park() finds even when it was sent before
 *    the sleeper began to wait, and park() then returns at once: there is
 *    no window between "decided to sleep" and "sleeping" (io_uring keeps
 *    the wake as a completion in the sleeper's ring until it is reaped,
 *    io/ring.c:1-2).
 * 6. Accounting is done by whoever takes a worker off the list (the
 *    notifier counts it awake and searching; a worker woken by anything
 *    else takes itself off), never from the wake, so a late or duplicate
 *    wake is harmless: at worst it ends a later park() early.
 */

/*
 * Step 5's wake, through the driver; counted when it was sent from a
 * worker of the runtime.
 */
static void wake_worker(struct myriad_rt *rt, struct worker *from, unsigned idx)
{
	if (from && from->rt != rt)
		from = NULL; /* another runtime's worker: an outside thread */
	if (rt->drv->unpark(rt, from, &rt->workers[idx]) && from)
		CTR_INC(from, MYRIAD_CTR_NOTIFIES);
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

	/* Step 5: returns at once if a wake is already there. */
	CTR_INC(w, MYRIAD_CTR_PARKS);
	PROBE1(park, (int)w->idx);
	rt_shm_publish(w, true);
	rt->drv->park(w);

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
