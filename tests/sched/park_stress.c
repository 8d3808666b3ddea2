/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/park_stress.c: park/wake cycles with none lost. Rings of
 * tasks pass a token: an outside thread wakes the first task, each task
 * wakes the next, the last posts back to the outside thread. Only one
 * task of a ring is runnable at a time, so workers park between hops and
 * are woken by notifications; a lost wake-up stalls a ring, which the
 * outside thread reports after a timeout instead of hanging.
 *   park_stress [--workers N]
 */
#include <pthread.h>
#include <semaphore.h>

#include "helpers.h"

#define RINGS 3
#define T 3 /* tasks per ring */

struct ring {
	sem_t back;	    /* the last task posts here */
	_Atomic int tok[T]; /* "your turn" flags */
	_Atomic int ready[T];
	myriad_waker_t wk[T];
	myriad_handle_t *h[T];
	_Atomic int64_t hops[T];
	_Atomic int64_t wake_bad;
	int64_t rounds;
	_Atomic int64_t done_rounds;
	int idx;
} __attribute__((aligned(64)));

static struct ring rings[RINGS];
static _Atomic int stop;

struct tstate {
	int ring, pos;
};

static void pass(struct ring *rg, int to)
{
	int r;

	atomic_store_explicit(&rg->tok[to], 1, memory_order_release);
	r = myriad_waker_wake(rg->wk[to]);
	if (r < 0)
		atomic_fetch_add(&rg->wake_bad, 1);
}

static int hop_step(myriad_task_t *self, void *p)
{
	struct tstate *st = p;
	struct ring *rg = &rings[st->ring];

	if (!atomic_load_explicit(&rg->ready[st->pos], memory_order_relaxed)) {
		rg->wk[st->pos] = myriad_task_waker(self);
		atomic_store_explicit(&rg->ready[st->pos], 1,
				      memory_order_release);
	}
	if (atomic_exchange_explicit(&rg->tok[st->pos], 0,
				     memory_order_acq_rel)) {
		atomic_fetch_add_explicit(&rg->hops[st->pos], 1,
					  memory_order_relaxed);
		if (st->pos + 1 < T)
			pass(rg, st->pos + 1);
		else
			sem_post(&rg->back);
	}
	if (atomic_load(&stop))
		return MYRIAD_DONE;
	return MYRIAD_PENDING;
}

static void dump(void)
{
	int i, j;

	for (i = 0; i < RINGS; i++) {
		fprintf(stderr, "  ring %d: round %" PRId64 " of %" PRId64 ";",
			i, atomic_load(&rings[i].done_rounds), rings[i].rounds);
		for (j = 0; j < T; j++)
			fprintf(stderr, " task %d: token %d hops %" PRId64 ";",
				j, atomic_load(&rings[i].tok[j]),
				atomic_load(&rings[i].hops[j]));
		fputc('\n', stderr);
	}
}

static int ring_ready(void *p)
{
	struct ring *rg = p;
	int j;

	for (j = 0; j < T; j++)
		if (!atomic_load_explicit(&rg->ready[j], memory_order_acquire))
			return 0;
	return 1;
}

static void *driver(void *p)
{
	struct ring *rg = p;
	struct timespec ts;
	int64_t i;

	for (i = 0; i < rg->rounds; i++) {
		pass(rg, 0);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 20 * T_SLOW;
		while (sem_timedwait(&rg->back, &ts)) {
			if (errno == EINTR)
				continue;
			t_failf(__FILE__, __LINE__,
				"ring %d, round %" PRId64
				": the token did not come back within %d s: "
				"a lost wake-up",
				rg->idx, i, 20 * T_SLOW);
			dump();
			fflush(stderr);
			_exit(T_FAIL);
		}
		atomic_store(&rg->done_rounds, i + 1);
		/* Now and then let every worker fall fully asleep. */
		if ((i & 1023) == 1023)
			t_sleep_ms(1);
	}
	return NULL;
}

/*
 * ---- a long step must not hide work from sleeping workers ----
 * With two workers or more: a task runs a long step (it spins until a
 * second task has run, or gives up after a while); the second task is
 * spawned from outside meanwhile. A sleeping worker must be woken for it
 * (park.c's notify_one), not left asleep until the long step ends.
 */

static _Atomic int long_started, quick_ran;
static _Atomic int quick_worker = -1, long_worker = -1;

static int quick_step(myriad_task_t *self, void *p)
{
	atomic_store(&quick_worker, myriad_current_worker());
	atomic_store(&quick_ran, 1);
	return MYRIAD_DONE;
}

static int long_step(myriad_task_t *self, void *p)
{
	double end = t_now() + 10.0 * T_SLOW;

	atomic_store(&long_worker, myriad_current_worker());
	atomic_store(&long_started, 1);
	while (!atomic_load(&quick_ran) && t_now() < end)
		sched_yield();
	myriad_task_set_result(self, atomic_load(&quick_ran));
	return MYRIAD_DONE;
}

static int long_is_running(void *p)
{
	return atomic_load(&long_started);
}

static void test_long_step(unsigned workers)
{
	myriad_rt_t *rt = t_rt_new(workers);
	myriad_handle_t *hl, *hq;
	int64_t saw_quick = -1;

	if (myriad_rt_workers(rt) < 2) {
		t_rt_done(rt);
		return;
	}
	t_phase("long step");
	/* Let the workers fall asleep first. */
	t_sleep_ms(20);
	REQUIRE(myriad_rt_spawn(rt, long_step, NULL, 0, &hl) == 0, "spawn");
	REQUIRE(t_wait_until(long_is_running, NULL, 20), "long step started");
	REQUIRE(myriad_rt_spawn(rt, quick_step, NULL, 0, &hq) == 0, "spawn");
	CHECK_EQ(t_join(hl, &saw_quick, "long step"), 0);
	CHECK(saw_quick == 1,
	      "a task spawned from outside while worker %d ran a long step "
	      "was not run by any of the %d other (sleeping) workers until "
	      "that step ended (it ran on worker %d afterwards)",
	      atomic_load(&long_worker), myriad_rt_workers(rt) - 1,
	      (t_join(hq, NULL, "quick"), atomic_load(&quick_worker)));
	CHECK_EQ(t_join(hq, NULL, "quick"), 0);
	CHECK_EQ(myriad_handle_release(hl), 0);
	CHECK_EQ(myriad_handle_release(hq), 0);
	t_rt_done(rt);
}

int main(int argc, char **argv)
{
	unsigned workers;
	myriad_rt_t *rt;
	pthread_t th[RINGS];
	int64_t rounds, parks, wakes, total = 0;
	int i, j, r;

	t_name = "park_stress";
	workers = t_parse_workers(argc, argv);
	t_watchdog(55);
	t_watchdog_dump = dump;
	rounds = t_scaled(150000);
	rt = t_rt_new(workers);

	t_phase("spawn");
	for (i = 0; i < RINGS; i++) {
		rings[i].idx = i;
		rings[i].rounds = rounds;
		sem_init(&rings[i].back, 0, 0);
		for (j = 0; j < T; j++) {
			struct tstate st = { i, j };

			r = myriad_rt_spawn(rt, hop_step, &st, sizeof(st),
					    &rings[i].h[j]);
			REQUIRE(r == 0, "spawn: %d", r);
		}
	}
	for (i = 0; i < RINGS; i++)
		REQUIRE(t_wait_until(ring_ready, &rings[i], 20),
			"ring %d: every task ran once", i);

	t_phase("token rings");
	for (i = 0; i < RINGS; i++)
		pthread_create(&th[i], NULL, driver, &rings[i]);
	for (i = 0; i < RINGS; i++)
		pthread_join(th[i], NULL);

	t_phase("stop");
	for (i = 0; i < RINGS; i++) {
		CHECK_EQ(atomic_load(&rings[i].done_rounds), rounds);
		CHECK_EQ(atomic_load(&rings[i].wake_bad), 0);
		for (j = 0; j < T; j++) {
			CHECK_EQ(atomic_load(&rings[i].hops[j]), rounds);
			total += atomic_load(&rings[i].hops[j]);
		}
	}
	CHECK_EQ(total, (int64_t)RINGS * T * rounds);

	/* Workers slept and were woken (counters may be compiled out). */
	parks = t_counter_sum(rt, MYRIAD_CTR_PARKS);
	wakes = t_counter_sum(rt, MYRIAD_CTR_WAKES);
	if (parks < 0) {
		printf("counters compiled out: parks/wakes not checked\n");
	} else {
		CHECK(parks > 0, "workers parked: got %" PRId64, parks);
		CHECK(wakes > 0, "workers were woken: got %" PRId64, wakes);
		printf("park_stress: %d workers, %" PRId64 " hops, %" PRId64
		       " parks, %" PRId64 " wakes\n",
		       myriad_rt_workers(rt), total, parks, wakes);
	}

	atomic_store(&stop, 1);
	for (i = 0; i < RINGS; i++) {
		for (j = 0; j < T; j++) {
			myriad_waker_wake(rings[i].wk[j]);
			CHECK_EQ(t_join(rings[i].h[j], NULL, "hop task"), 0);
			CHECK_EQ(myriad_handle_release(rings[i].h[j]), 0);
		}
		sem_destroy(&rings[i].back);
	}
	t_rt_done(rt);
	t_watchdog_dump = NULL;
	test_long_step(workers);
	return t_result();
}
