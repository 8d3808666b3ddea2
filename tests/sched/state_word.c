/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/state_word.c: the task state word under racing wakers: no
 * task runs concurrently with itself, no wake is lost, none runs it twice;
 * and a task woken while it runs (WOKEN) runs exactly once more.
 *   state_word [--workers N]
 */
#include <pthread.h>

#include "helpers.h"
#include "sched/sched.h"

#define NT 64  /* tasks woken by everyone */
#define NOUT 3 /* outside waker threads */

struct slot {
	_Atomic uint64_t gen;  /* bumped before every wake: "flag X" */
	_Atomic uint64_t seen; /* gen that the last step saw */
	_Atomic int in_step;
	_Atomic uint64_t runs, yields;
	_Atomic int ready; /* waker published */
	myriad_waker_t waker;
	myriad_handle_t *h;
} __attribute__((aligned(64)));

static struct slot S[NT];
static _Atomic uint64_t wakes1, wakes0, wakes_bad;
static _Atomic int64_t bounce_budget; /* wakes sent from inside steps */
static _Atomic int stop;

struct tst {
	int idx;
};

static void count_wake(int r)
{
	if (r == 1)
		atomic_fetch_add(&wakes1, 1);
	else if (r == 0)
		atomic_fetch_add(&wakes0, 1);
	else
		atomic_fetch_add(&wakes_bad, 1);
}

/* Set "flag X" of task j, then wake it. */
static void poke(unsigned j)
{
	atomic_fetch_add_explicit(&S[j].gen, 1, memory_order_release);
	count_wake(myriad_waker_wake(S[j].waker));
}

static int racer_step(myriad_task_t *self, void *p)
{
	struct tst *st = p;
	struct slot *s = &S[st->idx];
	uint64_t runs, g;
	int64_t b;

	if (atomic_exchange(&s->in_step, 1))
		t_failf(__FILE__, __LINE__,
			"task %d runs concurrently with itself", st->idx);
	runs = atomic_fetch_add(&s->runs, 1) + 1;
	if (runs == 1) {
		s->waker = myriad_task_waker(self);
		CHECK(s->waker.task == self, "task_waker(self) names self");
		atomic_store_explicit(&s->ready, 1, memory_order_release);
	}
	/* Read "flag X" after being run: what a real waiter checks. */
	g = atomic_load_explicit(&s->gen, memory_order_acquire);
	atomic_store_explicit(&s->seen, g, memory_order_relaxed);

	if (atomic_load(&stop)) {
		atomic_store(&s->in_step, 0);
		return MYRIAD_DONE;
	}
	/* Wake another task from this worker (LIFO-slot wakes). */
	b = atomic_fetch_sub(&bounce_budget, 1);
	if (b > 0) {
		unsigned j = (unsigned)((st->idx * 7 + runs) % NT);

		if (atomic_load_explicit(&S[j].ready, memory_order_acquire))
			poke(j);
	}
	atomic_store(&s->in_step, 0);
	if (runs % 5 == 0) {
		atomic_fetch_add(&s->yields, 1);
		return MYRIAD_YIELD;
	}
	return MYRIAD_PENDING;
}

struct outside {
	int64_t n;
	uint64_t rng;
};

static void *outside_waker(void *p)
{
	struct outside *o = p;
	int64_t i;

	for (i = 0; i < o->n; i++) {
		o->rng ^= o->rng << 13;
		o->rng ^= o->rng >> 7;
		o->rng ^= o->rng << 17;
		poke((unsigned)(o->rng % NT));
		if ((i & 63) == 0)
			sched_yield();
	}
	return NULL;
}

static int all_ready(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NT; i++)
		if (!atomic_load_explicit(&S[i].ready, memory_order_acquire))
			return 0;
	return 1;
}

/* Every wake was followed by a run that saw its flag, and nobody runs. */
static int quiescent(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NT; i++) {
		if (atomic_load(&S[i].in_step))
			return 0;
		if (atomic_load(&S[i].seen) != atomic_load(&S[i].gen))
			return 0;
		if ((atomic_load(&S[i].h->state) & (TS_LC_MASK | TF_WOKEN)) !=
		    TS_IDLE)
			return 0;
	}
	return 1;
}

static void dump(void)
{
	int i;

	for (i = 0; i < NT; i++) {
		uint64_t s = atomic_load(&S[i].h->state);

		if (atomic_load(&S[i].seen) != atomic_load(&S[i].gen) ||
		    (s & TS_LC_MASK) != TS_IDLE)
			fprintf(stderr,
				"  task %d: gen %" PRIu64 " seen %" PRIu64
				" runs %" PRIu64 " lifecycle %u\n",
				i, atomic_load(&S[i].gen),
				atomic_load(&S[i].seen),
				atomic_load(&S[i].runs),
				(unsigned)(s & TS_LC_MASK));
	}
}

static void test_racing_wakers(unsigned workers)
{
	myriad_rt_t *rt = t_rt_new(workers);
	pthread_t th[NOUT];
	struct outside o[NOUT];
	int64_t per = t_scaled(1000000);
	uint64_t runs = 0, yields = 0, w1, w0, gens = 0;
	int i, r;

	t_phase("racing wakers: spawn");
	atomic_store(&bounce_budget, per);
	for (i = 0; i < NT; i++) {
		struct tst init = { i };

		r = myriad_rt_spawn(rt, racer_step, &init, sizeof(init),
				    &S[i].h);
		REQUIRE(r == 0, "spawn: %d", r);
	}
	REQUIRE(t_wait_until(all_ready, NULL, 20),
		"every task ran its first step");

	t_phase("racing wakers: wake storm");
	for (i = 0; i < NOUT; i++) {
		o[i].n = per;
		o[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
		pthread_create(&th[i], NULL, outside_waker, &o[i]);
	}
	for (i = 0; i < NOUT; i++)
		pthread_join(th[i], NULL);

	/*
	 * No lost wake: every task whose flag was set before a wake must
	 * have run after it and seen the flag; then all are idle.
	 */
	t_phase("racing wakers: quiescence");
	if (!t_wait_until(quiescent, NULL, 20)) {
		t_failf(__FILE__, __LINE__,
			"lost wake: some task did not run after its last wake");
		dump();
	}

	/*
	 * No double run: every run follows exactly one queueing: the spawn,
	 * a wake that returned 1 (IDLE->SCHEDULED), a yield, or a re-queue of
	 * a task woken during its step (WOKEN, set by a wake that returned
	 * 0). So
	 *   NT + wakes1 + yields <= runs <= NT + wakes1 + yields + wakes0.
	 */
	for (i = 0; i < NT; i++) {
		runs += atomic_load(&S[i].runs);
		yields += atomic_load(&S[i].yields);
		gens += atomic_load(&S[i].gen);
	}
	w1 = atomic_load(&wakes1);
	w0 = atomic_load(&wakes0);
	CHECK_EQ(atomic_load(&wakes_bad), 0);
	CHECK_EQ(w1 + w0, gens);
	CHECK(runs >= NT + w1 + yields,
	      "a wake that returned 1 was not followed by a run: runs %" PRIu64
	      " < %d spawns + %" PRIu64 " wakes + %" PRIu64 " yields",
	      runs, NT, w1, yields);
	CHECK(runs <= NT + w1 + yields + w0,
	      "double runs: runs %" PRIu64 " > %d spawns + %" PRIu64
	      " scheduling wakes + %" PRIu64 " yields + %" PRIu64
	      " notifying wakes",
	      runs, NT, w1, yields, w0);
	CHECK(w1 > 0, "some wake found its task idle");
	printf("racing wakers: %" PRIu64 " runs, %" PRIu64
	       " scheduling wakes, %" PRIu64 " other wakes, %" PRIu64
	       " yields\n",
	       runs, w1, w0, yields);

	/* Stop: a last flag and wake; every task finishes. */
	t_phase("racing wakers: stop");
	atomic_store(&stop, 1);
	for (i = 0; i < NT; i++)
		poke((unsigned)i);
	for (i = 0; i < NT; i++) {
		r = t_join(S[i].h, NULL, "racer");
		CHECK_EQ(r, 0);
		CHECK_EQ(atomic_load(&S[i].in_step), 0);
		CHECK_EQ(atomic_load(&S[i].seen), atomic_load(&S[i].gen));
		/* A finished task is not scheduled by a wake. */
		CHECK_EQ(myriad_waker_wake(S[i].waker), 0);
		CHECK_EQ(myriad_handle_release(S[i].h), 0);
	}
	t_rt_done(rt);
}

/* ---- woken while running: WOKEN, one more run ---- */

enum { END_PENDING, END_YIELD, END_DONE };

struct selfwake {
	int end; /* how the first step ends */
	_Atomic int runs;
	_Atomic int cancelled_runs;
	int r1, r2; /* what the two self-wakes returned */
};

static int selfwake_step(myriad_task_t *self, void *p)
{
	struct selfwake *sw = *(struct selfwake **)p;
	int runs = atomic_fetch_add(&sw->runs, 1) + 1;
	myriad_waker_t w;
	uint64_t s;

	if (myriad_task_cancelled(self)) {
		atomic_fetch_add(&sw->cancelled_runs, 1);
		return MYRIAD_DONE;
	}
	if (runs > 1)
		return MYRIAD_PENDING; /* nothing wakes it again */
	w = myriad_task_waker(self);
	sw->r1 = myriad_waker_wake(w);
	/* Still running and already woken: a second wake changes nothing. */
	sw->r2 = myriad_waker_wake(w);
	s = atomic_load(&self->state);
	CHECK((s & TS_LC_MASK) == TS_SCHEDULED && (s & TF_WOKEN),
	      "a wake of the running task leaves it SCHEDULED|WOKEN, got "
	      "lifecycle %u, woken %d",
	      (unsigned)(s & TS_LC_MASK), !!(s & TF_WOKEN));
	switch (sw->end) {
	case END_YIELD:
		return MYRIAD_YIELD;
	case END_DONE:
		return MYRIAD_DONE;
	default:
		return MYRIAD_PENDING;
	}
}

static int filler_step(myriad_task_t *self, void *p)
{
	return MYRIAD_DONE;
}

struct idle_arg {
	myriad_handle_t *h;
	struct selfwake *sw;
	int runs;
};

static int settled(void *p)
{
	struct idle_arg *a = p;
	unsigned lc = atomic_load(&a->h->state) & TS_LC_MASK;

	return atomic_load(&a->sw->runs) >= a->runs &&
	       (lc == TS_IDLE || lc == TS_DONE);
}

static void test_notified(unsigned workers, int end)
{
	static const char *names[] = { "PENDING", "YIELD", "DONE" };
	myriad_rt_t *rt = t_rt_new(workers);
	struct selfwake sw = { .end = end };
	struct selfwake *p = &sw;
	struct idle_arg a;
	myriad_handle_t *h;
	int64_t res;
	int i;

	t_phase(names[end]);
	REQUIRE(myriad_rt_spawn(rt, selfwake_step, &p, sizeof(p), &h) == 0,
		"spawn");
	a.h = h;
	a.sw = &sw;
	a.runs = end == END_DONE ? 1 : 2;
	CHECK(t_wait_until(settled, &a, 20),
	      "first step ended with %s after a self-wake: expected %d runs "
	      "then idle, got %d runs, lifecycle %u",
	      names[end], a.runs, atomic_load(&sw.runs),
	      (unsigned)(atomic_load(&h->state) & TS_LC_MASK));
	CHECK_EQ(sw.r1, 0); /* running: woken, not queued */
	CHECK_EQ(sw.r2, 0);
	/* Give a wrongly queued third run every chance to happen. */
	for (i = 0; i < 20; i++)
		CHECK_EQ(t_run(rt, filler_step, NULL, 0, NULL, "filler"), 0);
	CHECK(atomic_load(&sw.runs) == a.runs,
	      "self-wake then %s: expected exactly %d runs, got %d", names[end],
	      a.runs, atomic_load(&sw.runs));
	if (end == END_DONE) {
		CHECK_EQ(t_join(h, &res, "selfwake"), 0);
	} else {
		CHECK_EQ((unsigned)(atomic_load(&h->state) &
				    (TS_LC_MASK | TF_WOKEN)),
			 TS_IDLE);
		/* Cancel wakes it for one last run. */
		CHECK_EQ(myriad_handle_cancel(h), 0);
		CHECK_EQ(t_join(h, &res, "selfwake"), -ECANCELED);
		CHECK_EQ(atomic_load(&sw.cancelled_runs), 1);
		CHECK_EQ(atomic_load(&sw.runs), a.runs + 1);
	}
	CHECK_EQ(myriad_handle_release(h), 0);
	t_rt_done(rt);
}

int main(int argc, char **argv)
{
	unsigned workers;

	t_name = "state_word";
	workers = t_parse_workers(argc, argv);
	t_watchdog(50);
	t_watchdog_dump = dump;
	test_racing_wakers(workers);
	t_watchdog_dump = NULL;
	test_notified(workers, END_PENDING);
	test_notified(workers, END_YIELD);
	test_notified(workers, END_DONE);
	return t_result();
}
