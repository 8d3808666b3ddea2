/* SPDX-License-Identifier: MIT */
/*
 * sched/worker.c: a worker thread's run loop: where the next task comes
 * from (LIFO slot, local ring, inject queue, stealing), and when to park.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jemalloc/jemalloc.h>

#include "sched.h"
#include "probes.h"

/* Poll the inject queue at least this often, so that it cannot starve. */
#define INJECT_INTERVAL 61
#define INJECT_BACKLOG_INTERVAL 16
/* How often the worker ticks its driver and asks the policy, in ticks. */
#define MAINT_INTERVAL 61

/*
 * Refill from the inject queue: take a fair share (its length over the
 * workers, at most half a local ring), run the first, queue the rest.
 */
static struct myriad_task *inject_take(struct worker *w)
{
	struct myriad_rt *rt = w->rt;
	size_t n = inject_len(&rt->inject);
	struct myriad_task *first, *t;

	if (!n)
		return NULL;
	first = inject_pop(&rt->inject);
	if (!first)
		return NULL;
	CTR_INC(w, MYRIAD_CTR_INJECT_POLLS);
	n = n / rt->nworkers;
	if (n > MYRIAD_LQ_CAP / 2)
		n = MYRIAD_LQ_CAP / 2;
	while (n-- > 0 && (t = inject_pop(&rt->inject))) {
		CTR_INC(w, MYRIAD_CTR_INJECT_POLLS);
		lq_push(w, t);
	}
	return first;
}

/* Runs from the LIFO slot and the spawn stack before the ring gets a turn. */
#define LIFO_RUN_MAX (MYRIAD_LIFO_MAX * 8)

/*
 * The next task of this worker, in order:
 * 1. every INJECT_INTERVAL ticks, the inject queue first (fairness for
 *    outside spawns and overflow);
 * 2. a task that came from the LIFO slot MYRIAD_LIFO_MAX times in a row
 *    (tasks waking each other, the cooperative budget's case) loses its
 *    LIFO privilege: it goes to the back of the ring, so that the spawn
 *    stack and the ring get to run;
 * 3. the LIFO slot (the task just woken: its data is hot), then the spawn
 *    stack (the task just spawned: depth-first for fork-join), unless
 *    LIFO_RUN_MAX of these came in a row while the ring waits: then the
 *    ring gets a turn;
 * 4. the local ring, oldest first;
 * 5. the LIFO slot and the stack regardless of the streak;
 * 6. the inject queue.
 */
static struct myriad_task *next_task(struct worker *w)
{
	struct myriad_task *t;

	/*
	 * Every INJECT_INTERVAL ticks; and every INJECT_BACKLOG_INTERVAL
	 * while the inject queue holds more than a local ring: tasks that
	 * overflowed there must not wait behind every newer local task.
	 */
	if (unlikely(w->tick % INJECT_INTERVAL == 0) ||
	    (unlikely(w->tick % INJECT_BACKLOG_INTERVAL == 0) &&
	     inject_len(&w->rt->inject) > MYRIAD_LQ_CAP)) {
		t = inject_pop(&w->rt->inject);
		if (t) {
			CTR_INC(w, MYRIAD_CTR_INJECT_POLLS);
			return t;
		}
	}
	if (unlikely(w->slot_streak >= MYRIAD_LIFO_MAX)) {
		w->slot_streak = 0;
		t = lq_pop_lifo(w);
		if (t)
			lq_push(w, t);
	}
	if (likely(w->lifo_streak < LIFO_RUN_MAX) || !ck_ring_size(&w->ring)) {
		t = lq_pop_lifo(w);
		if (t) {
			w->slot_streak++;
			w->lifo_streak++;
			CTR_INC(w, MYRIAD_CTR_LIFO_RUNS);
			return t;
		}
		t = lq_pop_stack(w);
		if (t) {
			w->slot_streak = 0;
			w->lifo_streak++;
			return t;
		}
	}
	w->lifo_streak = 0;
	w->slot_streak = 0;
	t = lq_pop(w);
	if (t)
		return t;
	t = lq_pop_lifo(w);
	if (!t)
		t = lq_pop_stack(w);
	if (t) {
		CTR_INC(w, MYRIAD_CTR_LIFO_RUNS);
		return t;
	}
	return inject_take(w);
}

/*
 * Before a step, which may be long: if another active worker sleeps while
 * tasks wait here, make them stealable (the spawn stack's oldest half goes
 * to the ring) and let a sleeper know (sched/park.c:3). A worker that only
 * searches does not count: it steals from the ring and the LIFO slot as
 * they are, and sleeps (then counts) if it finds nothing. Spilling for
 * searchers made fork-join run breadth-first whenever a searcher was
 * preempted mid-search by a neighbour, keeping its flag for a whole time
 * slice (noisy, hog on one of 2 CPUs: 24M -> 28M tasks/s, p99 of a
 * fib(18) sub-job 140 ms -> 30 ms).
 */
static void share_work(struct worker *w)
{
	struct myriad_rt *rt = w->rt;
	uint32_t s =
		atomic_load_explicit(&rt->idle.state, memory_order_relaxed);
	bool idle = IDLE_UNPARKED(s) <
		    atomic_load_explicit(&rt->active, memory_order_relaxed);

	if (!idle)
		return;
	/* Only into an empty ring: thieves take half of what is there. */
	if (atomic_load_explicit(&w->stack_n, memory_order_relaxed) &&
	    !ck_ring_size(&w->ring))
		lq_spill(w);
	if (w->need_notify ||
	    atomic_load_explicit(&w->lifo, memory_order_relaxed)) {
		w->need_notify = false;
		notify_local(rt, w);
	}
}

/*
 * Take over the spawn stack of a worker that the monitor found stuck in a
 * step (sched/queue.c:6-11, sysmon.c): run the oldest task taken (the
 * largest subtree), queue the rest on this worker's ring, where others
 * can steal them.
 */
static struct myriad_task *take_over(struct worker *w)
{
	struct myriad_rt *rt = w->rt;
	struct myriad_task *v[MYRIAD_STACK_CAP];
	unsigned a, i, n;

	for (a = 0; a < rt->nworkers; a++) {
		struct worker *victim = &rt->workers[a];

		if (victim == w || !lq_stack_stuck(victim))
			continue;
		n = lq_take_stack(victim,
				  atomic_load_explicit(&victim->stk_stuck,
						       memory_order_relaxed),
				  v);
		if (!n)
			continue;
		for (i = 1; i < n; i++)
			lq_push(w, v[i]);
		CTR_INC(w, MYRIAD_CTR_TAKEOVERS);
		CTR_ADD(w, MYRIAD_CTR_STOLEN, n);
		PROBE3(steal, (int)w->idx, (int)a, n);
		return v[0];
	}
	return NULL;
}

/*
 * Search other workers: become a searcher (at most half the workers are),
 * ask the policy for victims and take half of a victim's ring; then the
 * LIFO slots of workers stuck in long steps, and the spawn stacks of those
 * the monitor found stuck; then the inject queue.
 */
static struct myriad_task *worker_search(struct worker *w)
{
	struct myriad_rt *rt = w->rt;
	const struct myriad_policy_ops *pol = rt->pol;
	unsigned n = rt->nworkers, a;
	struct myriad_task *t = NULL;
	int v;

	if (n < 2)
		return inject_take(w);
	if (!w->searching) {
		if (!idle_try_searching(rt))
			return NULL;
		w->searching = true;
	}
	for (a = 0; a + 1 < n && !t; a++) {
		v = pol->steal_victim(rt->pctx, w->idx, a, &w->rng);
		if (v < 0 || (unsigned)v >= n || (unsigned)v == w->idx)
			break;
		t = lq_steal_half(w, &rt->workers[v]);
	}
	if (t) {
		CTR_ADD(w, MYRIAD_CTR_STOLEN, 1 + lq_len(w));
		PROBE3(steal, (int)w->idx, v, 1 + lq_len(w));
	} else {
		for (a = 0; a < n && !t; a++)
			if (a != w->idx)
				t = lq_steal_lifo(&rt->workers[a]);
		if (t) {
			CTR_INC(w, MYRIAD_CTR_STOLEN);
			PROBE3(steal, (int)w->idx, -1, 1); /* a LIFO slot */
		} else if (unlikely(atomic_load_explicit(
				   &rt->stuck_any, memory_order_relaxed)) &&
			   (t = take_over(w))) {
			/* counted in take_over() */
		} else {
			t = inject_take(w);
		}
	}
	if (!t)
		CTR_INC(w, MYRIAD_CTR_STEAL_FAILS);
	return t;
}

/*
 * A searching worker found work (from any source): it stops searching, and
 * the last searcher hands the baton on, so that the rest of what it found
 * has someone looking for it (sched/park.c:4).
 */
static void stop_searching(struct worker *w)
{
	w->searching = false;
	if (idle_stop_searching(w->rt))
		notify_one(w->rt, w);
}

/*
 * The policy made this worker inactive: hand everything it holds to the
 * active workers (its spawn stack to its ring, which they can steal), make
 * sure one of them is awake if there is work, and sleep until woken.
 */
static void park_inactive(struct worker *w)
{
	struct myriad_rt *rt = w->rt;
	struct myriad_task *t;

	if (w->searching)
		stop_searching(w);
	while ((t = lq_pop_stack(w)))
		lq_push(w, t);
	w->need_notify = false;
	if (work_visible(rt))
		notify_one(rt, w);
	park_sleep(w);
}

/*
 * MYRIAD_POLICY_PIN: on its own CPU while every worker is active, on the
 * whole mask while some are parked (the kernel then spreads the active
 * ones over the CPUs it has free). Checked at start and every maintenance
 * tick; a failed pin (a cpuset that changed) stops pinning for every
 * worker, each going back to the whole mask at its next look.
 */
static void pin_update(struct worker *w)
{
	struct myriad_rt *rt = w->rt;
	bool want = atomic_load_explicit(&rt->pin_on, memory_order_relaxed) &&
		    atomic_load_explicit(&rt->active, memory_order_relaxed) ==
			    rt->nworkers;
	cpu_set_t one;

	if (likely(want == w->pinned))
		return;
	if (want) {
		CPU_ZERO(&one);
		CPU_SET(rt->pin_cpu[w->idx], &one);
		if (sched_setaffinity(0, sizeof(one), &one) == 0) {
			w->pinned = true;
			return;
		}
		atomic_store_explicit(&rt->pin_on, false, memory_order_relaxed);
		return;
	}
	if (sched_setaffinity(0, sizeof(rt->pin_mask), &rt->pin_mask) == 0)
		w->pinned = false;
}

static void worker_maintain(struct worker *w)
{
	struct myriad_rt *rt = w->rt;

	rt->drv->maintain(w);
	rt_shm_publish(w, false);
	if (unlikely(rt->pol->active_workers)) {
		unsigned a = rt->pol->active_workers(rt->pctx);
		unsigned old;

		if (a < 1)
			a = 1;
		if (a > rt->nworkers)
			a = rt->nworkers;
		/*
		 * Every worker reads rt->active each tick: write it only
		 * when it changes, or the line bounces between the workers.
		 */
		if (a !=
		    atomic_load_explicit(&rt->active, memory_order_relaxed)) {
			old = atomic_exchange_explicit(&rt->active, a,
						       memory_order_relaxed);
			if (a > old)
				notify_all(rt);
		}
	}
	pin_update(w);
}

/*
 * An urgent task (the HTTP client's driver: its one step feeds the I/O of
 * many tasks) ran on this worker lately: its sockets' completions should
 * not wait for the next maintenance tick. Every URGENT_PEEK ticks, poll
 * the driver (it enters the ring only if the kernel says completions wait:
 * a load of IORING_SQ_TASKRUN when nothing waits). A worker where no
 * urgent task ran for URGENT_QUIET ticks stops looking. agents: the LLM
 * answer reached the driver 0.5 ms after the server sent it, about 0.25 ms
 * with the peek, and the server's slots stood idle that much less.
 */
#define URGENT_PEEK 8
#define URGENT_QUIET 4096

static void urgent_peek(struct worker *w)
{
	if (w->tick - w->urgent_tick > URGENT_QUIET) {
		w->urgent_io = false;
		return;
	}
	w->rt->drv->poll(w);
}

static int worker_setup(struct worker *w)
{
	char name[16];
	size_t sz;
	int r;

	w->tid = (pid_t)syscall(SYS_gettid);
	/* Tools find the workers by name (myriad-trace, top -H). */
	snprintf(name, sizeof(name), "myriad-w%u", w->idx);
	pthread_setname_np(pthread_self(), name);
	pin_update(w);
	r = w->rt->drv->worker_init(w);
	if (r < 0)
		return r;
	sz = sizeof(w->tcache);
	if (mallctl("tcache.create", &w->tcache, &sz, NULL, 0) != 0)
		return -ENOMEM;
	w->tcache_ok = true;
	w->alloc_flags = MALLOCX_ARENA(w->arena) | MALLOCX_TCACHE(w->tcache);
	w->free_flags = MALLOCX_TCACHE(w->tcache);
	sched_cur_worker = w;
	return 0;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct myriad_rt *rt = w->rt;
	struct myriad_task *t;
	int r;

	r = worker_setup(w);
	pthread_mutex_lock(&rt->start_lock);
	if (r < 0 && !rt->start_err)
		rt->start_err = r;
	rt->started++;
	pthread_cond_broadcast(&rt->start_cond);
	while (!rt->go)
		pthread_cond_wait(&rt->start_cond, &rt->start_lock);
	r = rt->start_err;
	pthread_mutex_unlock(&rt->start_lock);
	if (r < 0)
		goto out;

	while (!atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
		w->tick++;
		if (unlikely(w->tick % MAINT_INTERVAL == 0))
			worker_maintain(w);
		else if (unlikely(w->urgent_io) && w->tick % URGENT_PEEK == 0)
			urgent_peek(w);
		if (unlikely(w->idx >=
			     atomic_load_explicit(&rt->active,
						  memory_order_relaxed))) {
			park_inactive(w);
			continue;
		}
		t = next_task(w);
		if (!t && w->drv_busy) {
			/* Submit the tick's I/O; completions may be work. */
			rt->drv->poll(w);
			t = next_task(w);
		}
		if (!t)
			t = worker_search(w);
		if (!t) {
			if (rt_prefault_step(rt))
				continue;
			park(w);
			continue;
		}
		if (unlikely(w->searching))
			stop_searching(w);
		share_work(w);
		task_run(w, t);
	}
out:
	if (w->searching) {
		w->searching = false;
		idle_stop_searching(rt);
	}
	rt->drv->drain(w);
	sched_cur_worker = NULL;
	return NULL;
}
