/* SPDX-License-Identifier: MIT */
/*
 * sched/sysmon.c: the monitor thread: it finds workers stuck in one step
 * (blocked in the kernel, or computing for long) while work waits on them,
 * and has another worker take that work over (sched/queue.c:6-11).
 */
#include <fcntl.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "sched.h"
#include "futex.h"

/*
 * Why a thread, and when it runs.
 *
 * Whether a step will block is not known when it starts, and a worker
 * stuck in one cannot say so. Searching workers could watch the others,
 * but when every other worker sleeps nobody searches: a step that spawns
 * children and then blocks while the others sleep strands them. So, like
 * Go's sysmon, one thread per runtime of two workers or more watches the
 * step windows (sched/queue.c:6):
 * 1. A probe reads every worker's window. A worker in a step that holds
 *    work (stack entries not taken yet, its ring or its LIFO slot) is a
 *    candidate; the probe notes its thread's CPU time.
 * 2. STUCK_NS later, a confirmation. A candidate still in the same window
 *    is stuck if its thread slept in the kernel meanwhile (state S or D)
 *    or ran for a quarter of the time or more (a long step). One that was
 *    runnable but got no CPU was preempted: the kernel runs it again
 *    soon, and it is left alone (on a loaded machine short steps are
 *    preempted all the time; taking their stacks would only cost IPIs).
 * 3. A stuck worker's window is marked (stk_stuck, then stuck_any) when
 *    its stack holds work and membarrier() is there; then notify_one()
 *    wakes a sleeper if nobody searches. Searchers take marked stacks over
 *    (worker.c), and the parking re-check counts them as work
 *    (sched/park.c:2), so mark, fence and idle-state read are
 *    sched/park.c:3: no searcher parks past a marked stack without a
 *    sleeper being woken. A stuck worker's ring and LIFO slot are
 *    stealable as they are: the notification is all they need.
 * 4. What it costs: a probe every period, and a confirmation STUCK_NS
 *    after it when there are candidates. The period is STUCK_NS after a
 *    stuck step was found and doubles up to MON_MAX_NS while none is:
 *    about 120 wake-ups a second at most on a busy runtime (Go's sysmon
 *    settles at 100). When every worker sleeps the monitor sleeps on a
 *    futex until one wakes (sysmon_kick(), after sched/park.c:6, a load of
 *    one word): an idle runtime costs it no wake-up at all.
 */

/*
 * A step in one window for this long, holding work, is stuck: 1 ms is
 * thousands of ordinary steps (a fib step is tens of nanoseconds, an agent
 * step parsing or templating tens of microseconds) and well under what
 * the work waits for (a sleep() or a blocking read lasts as long as it
 * lasts; a scheduler time slice is 3 ms and more).
 */
#define STUCK_NS 1000000ull
/* The longest probe period: a stuck step is found within about this. */
#define MON_MAX_NS 16000000ull

enum mon_state {
	MON_RUN = 0,  /* sweeping */
	MON_NAP = 1,  /* a timed sleep */
	MON_IDLE = 2, /* asleep until a worker wakes (sysmon_kick) */
	MON_STOP = 3,
};

struct mon_worker {
	uintptr_t win;	 /* the window a probe found holding work, or 0 */
	uint64_t cpu_ns; /* the thread's CPU time at that probe */
	clockid_t clk;	 /* the thread's CPU-time clock */
	bool clk_ok;
	int stat_fd; /* /proc/self/task/<tid>/stat, or -1 */
};

struct mon {
	struct myriad_rt *rt;
	struct mon_worker *w;
};

static bool mon_move(struct myriad_rt *rt, uint32_t from, uint32_t to)
{
	return atomic_compare_exchange_strong_explicit(&rt->mon_state, &from,
						       to, memory_order_seq_cst,
						       memory_order_seq_cst);
}

/* Sleep 'ns' unless stopped; false once stopped. */
static bool mon_nap(struct myriad_rt *rt, uint64_t ns)
{
	struct timespec ts = ns_timespec(ns);

	if (!mon_move(rt, MON_RUN, MON_NAP))
		return false;
	myriad_futex_wait(&rt->mon_state, MON_NAP, &ts);
	return mon_move(rt, MON_NAP, MON_RUN);
}

/*
 * Every worker sleeps: sleep until one wakes (point 4). The store of
 * MON_IDLE and the re-check of the idle state, against a worker's unpark
 * (a sequentially consistent read-modify-write) and its load of the state
 * in sysmon_kick(): one of the two sees the other, so the monitor does not
 * sleep through a worker's waking.
 */
static bool mon_idle(struct myriad_rt *rt)
{
	if (!mon_move(rt, MON_RUN, MON_IDLE))
		return false;
	while (atomic_load_explicit(&rt->mon_state, memory_order_seq_cst) ==
		       MON_IDLE &&
	       IDLE_UNPARKED(atomic_load_explicit(&rt->idle.state,
						  memory_order_seq_cst)) == 0)
		myriad_futex_wait(&rt->mon_state, MON_IDLE, NULL);
	/* A kick moved it to MON_RUN already; a stop stays. */
	mon_move(rt, MON_IDLE, MON_RUN);
	return atomic_load_explicit(&rt->mon_state, memory_order_seq_cst) !=
	       MON_STOP;
}

void sysmon_kick(struct myriad_rt *rt)
{
	if (likely(atomic_load_explicit(&rt->mon_state, memory_order_seq_cst) !=
		   MON_IDLE))
		return;
	if (mon_move(rt, MON_IDLE, MON_RUN))
		myriad_futex_wake_all(&rt->mon_state);
}

static uint64_t thread_cpu_ns(struct mon_worker *m)
{
	return m->clk_ok ? clock_ns(m->clk) : 0;
}

/* The thread's state letter from /proc (R, S, D, ...), or 0. */
static char thread_state(struct mon_worker *m)
{
	char buf[256], *p;
	ssize_t n;

	if (m->stat_fd < 0)
		return 0;
	n = pread(m->stat_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* "tid (comm) S ...": the name may hold ')', the last one ends it. */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* Point 1. Returns the number of candidates. */
static unsigned mon_probe(struct mon *mon)
{
	struct myriad_rt *rt = mon->rt;
	bool any = false;
	unsigned i, cand = 0;

	for (i = 0; i < rt->nworkers; i++) {
		struct worker *w = &rt->workers[i];
		struct mon_worker *m = &mon->w[i];
		uintptr_t win =
			atomic_load_explicit(&w->stk_win, memory_order_relaxed);
		uintptr_t mark = atomic_load_explicit(&w->stk_stuck,
						      memory_order_relaxed);

		/* A mark outlives its window only until the next probe. */
		if (mark && mark != win)
			atomic_store_explicit(&w->stk_stuck, 0,
					      memory_order_relaxed);
		else if (mark)
			any = true;
		m->win = 0;
		if (!win || (!lq_stack_len(w) && !lq_len(w)))
			continue;
		m->win = win;
		m->cpu_ns = thread_cpu_ns(m);
		cand++;
	}
	if (!any && atomic_load_explicit(&rt->stuck_any, memory_order_relaxed))
		atomic_store_explicit(&rt->stuck_any, false,
				      memory_order_relaxed);
	return cand;
}

/* Points 2 and 3. Returns the number of stuck workers. */
static unsigned mon_confirm(struct mon *mon)
{
	struct myriad_rt *rt = mon->rt;
	unsigned i, stuck = 0;
	char st;

	for (i = 0; i < rt->nworkers; i++) {
		struct worker *w = &rt->workers[i];
		struct mon_worker *m = &mon->w[i];

		if (!m->win ||
		    atomic_load_explicit(&w->stk_win, memory_order_relaxed) !=
			    m->win)
			continue;
		if (thread_cpu_ns(m) - m->cpu_ns < STUCK_NS / 4) {
			st = thread_state(m);
			if (st == 'R')
				continue; /* preempted, not stuck */
		}
		stuck++;
		if (rt->stk_takeover && lq_stack_len(w)) {
			atomic_store_explicit(&w->stk_stuck, m->win,
					      memory_order_relaxed);
			atomic_store_explicit(&rt->stuck_any, true,
					      memory_order_relaxed);
		}
	}
	/* Its fence orders the marks before its read of the idle state. */
	if (stuck)
		notify_one(rt, NULL);
	return stuck;
}

static void *mon_main(void *arg)
{
	struct mon *mon = arg;
	struct myriad_rt *rt = mon->rt;
	uint64_t period = STUCK_NS;

	pthread_setname_np(pthread_self(), "myriad-mon");
	for (;;) {
		if (IDLE_UNPARKED(atomic_load_explicit(
			    &rt->idle.state, memory_order_seq_cst)) == 0) {
			if (!mon_idle(rt))
				break;
			period = STUCK_NS;
			continue;
		}
		if (mon_probe(mon)) {
			if (!mon_nap(rt, STUCK_NS))
				break;
			if (mon_confirm(mon))
				period = STUCK_NS / 2;
		}
		period = period * 2 < MON_MAX_NS ? period * 2 : MON_MAX_NS;
		if (!mon_nap(rt, period))
			break;
	}
	return NULL;
}

/*
 * Start the monitor (runtimes of two workers or more): register for
 * membarrier() first, without which stacks are not taken over
 * (sched/queue.c:11) but the monitor still wakes sleepers for a stuck
 * worker's ring and LIFO slot. Returns 0 or -errno (the runtime runs on
 * without it).
 */
int sysmon_start(struct myriad_rt *rt)
{
	struct mon *mon;
	unsigned i;
	long q;
	int r;

	if (rt->nworkers < 2 || rt->mon_ok)
		return 0;
	q = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
		    0, 0) == 0)
		rt->stk_takeover = true;
	mon = calloc(1, sizeof(*mon));
	if (!mon)
		return -ENOMEM;
	mon->rt = rt;
	mon->w = calloc(rt->nworkers, sizeof(*mon->w));
	if (!mon->w) {
		free(mon);
		return -ENOMEM;
	}
	for (i = 0; i < rt->nworkers; i++) {
		struct mon_worker *m = &mon->w[i];
		char path[64];

		m->clk_ok = rt->workers[i].thread_ok &&
			    pthread_getcpuclockid(rt->workers[i].thread,
						  &m->clk) == 0;
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat",
			 (int)rt->workers[i].tid);
		m->stat_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	atomic_store_explicit(&rt->mon_state, MON_RUN, memory_order_relaxed);
	r = -pthread_create(&rt->mon, NULL, mon_main, mon);
	if (r < 0) {
		for (i = 0; i < rt->nworkers; i++)
			if (mon->w[i].stat_fd >= 0)
				close(mon->w[i].stat_fd);
		free(mon->w);
		free(mon);
		return r;
	}
	rt->mon_ctx = mon;
	rt->mon_ok = true;
	return 0;
}

void sysmon_stop(struct myriad_rt *rt)
{
	struct mon *mon = rt->mon_ctx;
	unsigned i;

	if (!rt->mon_ok)
		return;
	atomic_store_explicit(&rt->mon_state, MON_STOP, memory_order_seq_cst);
	myriad_futex_wake_all(&rt->mon_state);
	pthread_join(rt->mon, NULL);
	rt->mon_ok = false;
	for (i = 0; i < rt->nworkers; i++)
		if (mon->w[i].stat_fd >= 0)
			close(mon->w[i].stat_fd);
	free(mon->w);
	free(mon);
	rt->mon_ctx = NULL;
}
