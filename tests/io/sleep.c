/* SPDX-License-Identifier: MIT */
/*
 * tests/io/sleep.c: timers on real workers: many tasks sleep random times
 * and each wakes, never early (how late is printed: it is the machine's);
 * sleeps loop (a timer re-armed after it fired);
 * cancelling a tree of sleepers wakes them at once with -ECANCELED;
 * a sleeper that switches to a channel wait disarms its timer; a deadline
 * that has passed returns 0 at once, not at the wheel's next advance; destroy
 * with sleepers still armed frees everything.
 *   sleep [--workers N]
 */
#include "helpers.h"

static myriad_rt_t *rt;

/* ---- many sleepers, random durations ---- */

static _Atomic int64_t woke, early, late_max_us;

struct sleeper {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	uint64_t ns, armed_at;
	int rounds, i;
};

static int sleeper_step(myriad_task_t *self, void *p)
{
	struct sleeper *st = p;
	int64_t late, m;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < st->rounds; st->i++) {
		st->armed_at = myriad_now_ns();
		MYRIAD_SLEEP(st, self, &st->tm, st->ns, rc);
		CHECK_EQ(rc, 0);
		late = (int64_t)(myriad_now_ns() - (st->armed_at + st->ns));
		if (late < 0)
			atomic_fetch_add(&early, 1);
		late /= 1000;
		m = atomic_load(&late_max_us);
		while (late > m &&
		       !atomic_compare_exchange_weak(&late_max_us, &m, late))
			;
		atomic_fetch_add(&woke, 1);
	}
	MYRIAD_END(st);
}

struct spawner {
	MYRIAD_CORO_FIELD;
	int n, rounds;
};

static int spawner_step(myriad_task_t *self, void *p)
{
	struct spawner *st = p;
	struct sleeper s;
	uint64_t x = 12345;
	int i;

	MYRIAD_BEGIN(st);
	for (i = 0; i < st->n; i++) {
		memset(&s, 0, sizeof(s));
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		s.ns = (x >> 33) % 200000000u; /* 0 to 200 ms */
		s.rounds = st->rounds;
		REQUIRE(myriad_task_spawn(self, sleeper_step, &s, sizeof(s), 0,
					  NULL),
			"spawn");
	}
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static void test_many(void)
{
	struct spawner sp = { .n = (int)t_scaled_min(20000, 500), .rounds = 3 };

	t_phase("many sleepers");
	CHECK_EQ(t_run(rt, spawner_step, &sp, sizeof(sp), NULL, "sleepers"), 0);
	CHECK_EQ(atomic_load(&woke), (int64_t)sp.n * sp.rounds);
	CHECK(atomic_load(&early) == 0, "%lld sleeps ended early",
	      (long long)atomic_load(&early));
	/*
	 * How late is not asserted: that is the worker's CPU (a loaded
	 * machine delays it without bound), not the timers. What they
	 * guarantee is checked: none early (above), each fires (the join,
	 * whose watchdog ends a lost one), at the advance that first reaches
	 * its deadline (tests/io/wheel.c, in the wheel's own time).
	 */
	printf("sleep: %lld sleeps, none early, the latest %lld us late\n",
	       (long long)atomic_load(&woke),
	       (long long)atomic_load(&late_max_us));
}

/* ---- cancelling sleepers ---- */

static _Atomic int cancelled_ok, asleep;

struct longsleep {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	int depth;
};

static int longsleep_step(myriad_task_t *self, void *p)
{
	struct longsleep *st = p;
	struct longsleep c;
	int rc;

	MYRIAD_BEGIN(st);
	if (st->depth > 0) {
		memset(&c, 0, sizeof(c));
		c.depth = st->depth - 1;
		myriad_task_spawn(self, longsleep_step, &c, sizeof(c), 0, NULL);
		myriad_task_spawn(self, longsleep_step, &c, sizeof(c), 0, NULL);
	}
	atomic_fetch_add(&asleep, 1);
	/* An hour: only the cancel ends it. */
	MYRIAD_SLEEP(st, self, &st->tm, 3600ull * 1000000000u, rc);
	if (rc == -ECANCELED)
		atomic_fetch_add(&cancelled_ok, 1);
	else
		t_failf(__FILE__, __LINE__, "sleep of a cancelled task: %d",
			rc);
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static int all_asleep(void *p)
{
	return atomic_load(&asleep) == *(int *)p;
}

static void test_cancel(void)
{
	struct longsleep root = { .depth = 5 };
	int want = 63; /* 2^6 - 1 */
	myriad_handle_t *h;
	double t0;

	t_phase("cancel a tree of sleepers");
	REQUIRE(myriad_rt_spawn(rt, longsleep_step, &root, sizeof(root), &h) ==
			0,
		"spawn");
	REQUIRE(t_wait_until(all_asleep, &want, 20), "all asleep: %d",
		atomic_load(&asleep));
	t0 = t_now();
	CHECK_EQ(myriad_handle_cancel(h), 0);
	CHECK_ERR(t_join(h, NULL, "cancelled sleepers"), -ECANCELED);
	CHECK(t_now() - t0 < 10.0 * T_SLOW, "the cancel took %.1f s",
	      t_now() - t0);
	CHECK_EQ(atomic_load(&cancelled_ok), want);
	CHECK_EQ(myriad_handle_release(h), 0);
}

/* ---- a timer given up for a channel wait ---- */

static myriad_chan_t *ch;

struct switcher {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	int64_t v;
};

static int switcher_step(myriad_task_t *self, void *p)
{
	struct switcher *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	/* Arm a long timer, then wait on the channel instead. */
	rc = myriad_sleep(self, &st->tm, 3600ull * 1000000000u);
	CHECK_ERR(rc, -EAGAIN);
	MYRIAD_RECV(st, self, ch, &st->v, rc);
	CHECK_EQ(rc, 0);
	CHECK_EQ(st->v, 42);
	/* The timer is idle again: a short sleep works. */
	MYRIAD_SLEEP(st, self, &st->tm, 1000000, rc);
	CHECK_EQ(rc, 0);
	CHECK_EQ(myriad_timer_cancel(self, &st->tm), 0);
	MYRIAD_END(st);
}

static void test_switch(void)
{
	struct switcher s;
	myriad_handle_t *h;
	int64_t v = 42;
	int err;

	t_phase("timer given up for a channel");
	memset(&s, 0, sizeof(s));
	ch = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
	REQUIRE(ch, "chan_create");
	REQUIRE(myriad_rt_spawn(rt, switcher_step, &s, sizeof(s), &h) == 0,
		"spawn");
	t_sleep_ms(50);
	CHECK_EQ(myriad_chan_try_send(ch, &v), 0);
	CHECK_EQ(t_join(h, NULL, "switcher"), 0);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(myriad_chan_destroy(ch), 0);
}

/* ---- destroy with sleepers armed ---- */

static void test_destroy_armed(unsigned workers)
{
	myriad_rt_t *r2 = t_rt_new(workers);
	struct longsleep s = { .depth = 3 };
	int i;

	t_phase("destroy with sleepers armed");
	for (i = 0; i < 50; i++)
		CHECK_EQ(myriad_rt_spawn(r2, longsleep_step, &s, sizeof(s),
					 NULL),
			 0);
	t_sleep_ms(50);
	CHECK_EQ(myriad_rt_destroy(r2), 0);
}

/*
 * ---- a deadline that has passed ----
 * returns 0 at once, also one that passed only just (the wheel's own time
 * lags the clock: it used to arm those and fire them at its next advance)
 * and one that passed long ago; the timer is idle after, ready to arm.
 */

struct passed {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	int rc;
};

static int passed_step(myriad_task_t *self, void *p)
{
	struct passed *st = p;
	int i;

	MYRIAD_BEGIN(st);
	for (i = 0; i < 1000; i++)
		CHECK_EQ(myriad_sleep_until(self, &st->tm, myriad_now_ns()), 0);
	CHECK_EQ(myriad_sleep_until(self, &st->tm, 1), 0);
	CHECK_EQ(myriad_timer_deadline(&st->tm), 0);
	/* Still a timer: a real sleep after it. */
	MYRIAD_SLEEP(st, self, &st->tm, 2000000, st->rc);
	CHECK_EQ(st->rc, 0);
	MYRIAD_END(st);
}

static void test_passed(void)
{
	struct passed st;

	t_phase("deadline passed");
	memset(&st, 0, sizeof(st));
	CHECK_EQ(t_run(rt, passed_step, &st, sizeof(st), NULL, "passed"), 0);
}

static void test_bad_args(void)
{
	myriad_timer_t tm;

	t_phase("bad arguments");
	memset(&tm, 0, sizeof(tm));
	CHECK_ERR(myriad_sleep(NULL, &tm, 1), -EINVAL);
	CHECK_ERR(myriad_sleep_until(NULL, &tm, 1), -EINVAL);
	CHECK_ERR(myriad_timer_cancel(NULL, &tm), -EINVAL);
	CHECK_EQ(myriad_timer_deadline(&tm), 0);
	CHECK(myriad_now_ns() > 0, "myriad_now_ns");
}

int main(int argc, char **argv)
{
	unsigned workers = t_parse_workers(argc, argv);

	t_name = "sleep";
	t_watchdog(120);
	rt = t_rt_new(workers);
	test_bad_args();
	test_passed();
	test_many();
	test_cancel();
	test_switch();
	t_rt_done(rt);
	test_destroy_armed(workers);
	return t_result();
}
