/* SPDX-License-Identifier: MIT */
/*
 * tests/api/bad_args.c: every public call given bad arguments, or called
 * from the wrong thread or at the wrong time, returns the error its header
 * documents, without crashing (and, under ASan, without leaking).
 *   bad_args
 */
#include "helpers.h"

static myriad_rt_t *rt;

static int noop_step(myriad_task_t *self, void *p)
{
	return MYRIAD_DONE;
}

/* ---- runtime options ---- */

static void expect_create_fails(const struct myriad_rt_opts *o, int want,
				const char *what)
{
	myriad_rt_t *r;
	int err = 0;

	r = myriad_rt_create(o, &err);
	CHECK(r == NULL && err == want,
	      "myriad_rt_create(%s): expected NULL with %d (%s), got %p "
	      "with %d",
	      what, want, strerror(-want), (void *)r, err);
	if (r)
		myriad_rt_destroy(r);
	/* err may be NULL. */
	r = myriad_rt_create(o, NULL);
	CHECK(r == NULL, "myriad_rt_create(%s, err NULL): expected NULL", what);
	if (r)
		myriad_rt_destroy(r);
}

static int fail_init(void **ctx, const struct myriad_policy_env *env)
{
	return -EPERM;
}

static int victim(void *ctx, unsigned self, unsigned attempt, uint64_t *rng)
{
	return -1;
}

static _Atomic int fini_calls;

static void counting_fini(void *ctx)
{
	atomic_fetch_add(&fini_calls, 1);
}

static void test_create(void)
{
	static const char *bad_cpu_max[] = {
		"abc",
		"0 100000",
		"100000 0",
		"-5",
		"",
		" ",
		"1.5 100000",
		"max100000",
		"150000 100000 7",
		"150000 abc",
		"150000x",
		"99999999999999999999999 100000",
		"100000 -100000",
		"0",
	};
	struct myriad_rt_opts o;
	struct myriad_policy_ops pol;
	size_t i;

	t_phase("create");
	unsetenv("MYRIAD_WORKERS");
	unsetenv("MYRIAD_CPU_MAX");

	memset(&o, 0, sizeof(o));
	expect_create_fails(&o, -EINVAL, "opts.sz = 0");
	o.sz = sizeof(size_t);
	expect_create_fails(&o, -EINVAL, "opts.sz too small for workers");

	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = MYRIAD_WORKERS_MAX + 1;
	expect_create_fails(&o, -EINVAL, "workers = MYRIAD_WORKERS_MAX + 1");
	o.workers = UINT32_MAX;
	expect_create_fails(&o, -EINVAL, "workers = UINT_MAX");

	for (i = 0; i < sizeof(bad_cpu_max) / sizeof(bad_cpu_max[0]); i++) {
		char what[96];

		memset(&o, 0, sizeof(o));
		o.sz = sizeof(o);
		o.cpu_max = bad_cpu_max[i];
		snprintf(what, sizeof(what), "cpu_max \"%s\"", bad_cpu_max[i]);
		expect_create_fails(&o, -EINVAL, what);
	}
	/* The same strings through the environment. */
	for (i = 0; i < 4; i++) {
		char what[96];

		setenv("MYRIAD_CPU_MAX", bad_cpu_max[i], 1);
		snprintf(what, sizeof(what), "MYRIAD_CPU_MAX=\"%s\"",
			 bad_cpu_max[i]);
		expect_create_fails(NULL, -EINVAL, what);
	}
	unsetenv("MYRIAD_CPU_MAX");

	/* Policies: the required callback, the size, a failing init. */
	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = 2;
	memset(&pol, 0, sizeof(pol));
	pol.sz = sizeof(pol);
	pol.name = "no-steal";
	o.policy = &pol;
	expect_create_fails(&o, -EINVAL, "policy without steal_victim");
	pol.steal_victim = victim;
	pol.sz = offsetof(struct myriad_policy_ops, steal_victim);
	expect_create_fails(&o, -EINVAL, "policy sz short of steal_victim");
	pol.sz = 0;
	expect_create_fails(&o, -EINVAL, "policy sz 0");
	pol.sz = sizeof(pol);
	pol.init = fail_init;
	pol.fini = counting_fini;
	expect_create_fails(&o, -EPERM, "policy init failing with -EPERM");
	CHECK(atomic_load(&fini_calls) == 0,
	      "fini called %d times after a failed init",
	      atomic_load(&fini_calls));
}

/* ---- calls on no runtime, or from outside any task ---- */

static void test_null_and_outside(void)
{
	myriad_handle_t *h = (myriad_handle_t *)&h;
	int64_t res;
	uint64_t ctr[MYRIAD_CTR__COUNT];
	myriad_waker_t w = { NULL, NULL };
	int err;

	t_phase("NULL arguments");
	CHECK_ERR(myriad_rt_shutdown(NULL), -EINVAL);
	CHECK_ERR(myriad_rt_destroy(NULL), -EINVAL);
	CHECK_ERR(myriad_rt_workers(NULL), -EINVAL);
	CHECK_ERR(myriad_rt_spawn(NULL, noop_step, NULL, 0, &h), -EINVAL);
	CHECK(h == NULL, "a failed spawn clears *handle");
	CHECK_ERR(myriad_rt_block_on(NULL, noop_step, NULL, 0, &res), -EINVAL);
	CHECK_ERR(myriad_handle_join(NULL, &res, -1), -EINVAL);
	CHECK_ERR(myriad_handle_join(NULL, NULL, 0), -EINVAL);
	CHECK_ERR(myriad_handle_cancel(NULL), -EINVAL);
	CHECK_ERR(myriad_handle_release(NULL), -EINVAL);
	CHECK_ERR(myriad_rt_tasks_live(NULL), -EINVAL);
	CHECK_ERR(myriad_rt_counters(NULL, 0, ctr, MYRIAD_CTR__COUNT), -EINVAL);
	CHECK(myriad_counter_name(MYRIAD_CTR__COUNT) == NULL,
	      "counter name out of range");
	CHECK(myriad_counter_name(UINT32_MAX) == NULL, "counter name");
	CHECK(myriad_counter_name(MYRIAD_CTR_SPAWNED) &&
		      !strcmp(myriad_counter_name(MYRIAD_CTR_SPAWNED),
			      "spawned"),
	      "counter 0 is 'spawned'");

	/* Task calls outside any task. */
	err = 0;
	CHECK(myriad_task_spawn(NULL, noop_step, NULL, 0, 0, &err) == NULL &&
		      err == -EINVAL,
	      "task_spawn(NULL self): expected NULL/-EINVAL, got %d", err);
	CHECK(myriad_task_spawn(NULL, noop_step, NULL, 0, 0, NULL) == NULL,
	      "task_spawn(NULL self, err NULL)");
	CHECK_ERR(myriad_task_join(NULL), -EINVAL);
	CHECK_ERR(myriad_task_cancel(NULL), -EINVAL);
	CHECK_ERR(myriad_task_status(NULL), -EINVAL);
	CHECK(!myriad_task_cancelled(NULL), "cancelled(NULL) is false");
	CHECK(myriad_task_state(NULL) == NULL, "state(NULL)");
	myriad_task_set_result(NULL, 1);
	CHECK_EQ(myriad_task_result(NULL), 0);
	CHECK(myriad_current_rt() == NULL, "no runtime outside workers");
	CHECK_EQ(myriad_current_worker(), -1);
	w = myriad_task_waker(NULL);
	CHECK(w.task == NULL, "waker of NULL is empty");
	CHECK_ERR(myriad_waker_wake(w), -EINVAL);

	/* Channels. */
	err = 0;
	CHECK(myriad_chan_create(NULL, 8, 1, &err) == NULL && err == -EINVAL,
	      "chan_create(NULL rt): %d", err);
	CHECK(myriad_chan_create(NULL, 8, 1, NULL) == NULL,
	      "chan_create(NULL rt, err NULL)");
	CHECK_ERR(myriad_chan_send(NULL, NULL, NULL), -EINVAL);
	CHECK_ERR(myriad_chan_recv(NULL, NULL, NULL), -EINVAL);
	CHECK_ERR(myriad_chan_abandon(NULL, NULL), -EINVAL);
	CHECK_ERR(myriad_chan_try_send(NULL, &err), -EINVAL);
	CHECK_ERR(myriad_chan_try_recv(NULL, &err), -EINVAL);
	CHECK_ERR(myriad_chan_close(NULL), -EINVAL);
	CHECK_ERR(myriad_chan_len(NULL), -EINVAL);
	CHECK_ERR(myriad_chan_destroy(NULL), -EINVAL);
}

static void test_with_rt(void)
{
	static const struct {
		size_t esz, cap;
	} bad[] = {
		{ 0, 1 },
		{ 8, 0 },
		{ 0, 0 },
		{ MYRIAD_CHAN_ELEM_MAX + 1, 1 },
		{ 8, (size_t)MYRIAD_CHAN_CAP_MAX + 1 },
		{ SIZE_MAX, 1 },
		{ 8, SIZE_MAX },
		{ SIZE_MAX, SIZE_MAX },
	};
	uint64_t ctr[MYRIAD_CTR__COUNT + 4];
	myriad_handle_t *h = (myriad_handle_t *)&h;
	myriad_chan_t *ch;
	myriad_waker_t w;
	int64_t v = 1;
	size_t i;
	int err, r, n = myriad_rt_workers(rt);

	t_phase("bad arguments with a runtime");
	CHECK(n >= 1, "workers: %d", n);
	CHECK_ERR(myriad_rt_spawn(rt, NULL, NULL, 0, &h), -EINVAL);
	CHECK(h == NULL, "a failed spawn clears *handle");
	CHECK_ERR(myriad_rt_spawn(rt, noop_step, NULL,
				  (size_t)MYRIAD_STATE_MAX + 1, &h),
		  -EINVAL);
	CHECK_ERR(myriad_rt_spawn(rt, noop_step, NULL, SIZE_MAX, NULL),
		  -EINVAL);
	CHECK_ERR(myriad_rt_block_on(rt, NULL, NULL, 0, NULL), -EINVAL);
	/* The largest state is fine. */
	CHECK_EQ(
		myriad_rt_block_on(rt, noop_step, NULL, MYRIAD_STATE_MAX, NULL),
		0);

	CHECK_ERR(myriad_rt_counters(rt, (unsigned)n, ctr, MYRIAD_CTR__COUNT),
		  -EINVAL);
	CHECK_ERR(myriad_rt_counters(rt, UINT32_MAX, ctr, MYRIAD_CTR__COUNT),
		  -EINVAL);
	CHECK_ERR(myriad_rt_counters(rt, 0, NULL, MYRIAD_CTR__COUNT), -EINVAL);
	r = myriad_rt_counters(rt, 0, ctr, MYRIAD_CTR__COUNT + 4);
	CHECK(r == MYRIAD_CTR__COUNT || r == -ENOTSUP,
	      "counters with room for more: expected %d or -ENOTSUP, got %d",
	      MYRIAD_CTR__COUNT, r);
	r = myriad_rt_counters(rt, 0, ctr, 2);
	CHECK(r == 2 || r == -ENOTSUP, "2 counters: got %d", r);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = 0;
		ch = myriad_chan_create(rt, bad[i].esz, bad[i].cap, &err);
		CHECK(ch == NULL && err == -EINVAL,
		      "chan_create(elem %zu, capacity %zu): expected "
		      "NULL/-EINVAL, got %p/%d",
		      bad[i].esz, bad[i].cap, (void *)ch, err);
		if (ch)
			myriad_chan_destroy(ch);
	}
	ch = myriad_chan_create(rt, MYRIAD_CHAN_ELEM_MAX, 2, &err);
	CHECK(ch != NULL, "chan_create at the element limit: %d", err);
	CHECK_ERR(myriad_chan_try_send(ch, NULL), -EINVAL);
	CHECK_ERR(myriad_chan_try_recv(ch, NULL), -EINVAL);
	CHECK_EQ(myriad_chan_destroy(ch), 0);

	/* A handle is a task, but not the running one of this thread. */
	ch = myriad_chan_create(rt, sizeof(v), 1, &err);
	REQUIRE(ch, "chan_create");
	REQUIRE(myriad_rt_spawn(rt, noop_step, NULL, 0, &h) == 0, "spawn");
	CHECK_ERR(myriad_chan_send(h, ch, &v), -EINVAL);
	CHECK_ERR(myriad_chan_recv(h, ch, &v), -EINVAL);
	CHECK(myriad_task_spawn(h, noop_step, NULL, 0, 0, &err) == NULL &&
		      err == -EINVAL,
	      "task_spawn from outside: %d", err);
	CHECK_ERR(myriad_task_join(h), -EINVAL);
	w = myriad_task_waker(h);
	CHECK(w.task == NULL, "waker of a task not running on this thread");
	CHECK_ERR(myriad_waker_wake(w), -EINVAL);
	w.rt = rt;
	CHECK_ERR(myriad_waker_wake(w), -EINVAL);
	CHECK_EQ(t_join(h, NULL, "noop"), 0);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(myriad_chan_destroy(ch), 0);
}

/* ---- calls from inside a task ---- */

struct inside {
	myriad_handle_t *other;	  /* a task of the same runtime */
	myriad_handle_t *foreign; /* a task of another runtime */
	myriad_chan_t *ch;
	int done;
};

static _Atomic int inside_checked;

static int inside_step(myriad_task_t *self, void *p)
{
	struct inside *st = *(struct inside **)p;
	myriad_task_t *c;
	myriad_waker_t w;
	int64_t v = 3, res;
	int err;

	CHECK(myriad_current_rt() == rt, "current_rt inside a task");
	CHECK(myriad_current_worker() >= 0 &&
		      myriad_current_worker() < myriad_rt_workers(rt),
	      "current_worker: %d", myriad_current_worker());
	/* Blocking calls on the own runtime from a worker: -EDEADLK. */
	CHECK_ERR(myriad_handle_join(st->other, &res, -1), -EDEADLK);
	CHECK_ERR(myriad_handle_join(st->other, &res, 0), -EDEADLK);
	CHECK_ERR(myriad_rt_block_on(rt, noop_step, NULL, 0, &res), -EDEADLK);
	CHECK_ERR(myriad_rt_shutdown(rt), -EDEADLK);
	CHECK_ERR(myriad_rt_destroy(rt), -EDEADLK);
	/* A task of another runtime may be joined from here. */
	CHECK_EQ(myriad_handle_join(st->foreign, &res, t_join_timeout_ns()), 0);

	/* Spawn. */
	err = 0;
	CHECK(myriad_task_spawn(self, NULL, NULL, 0, 0, &err) == NULL &&
		      err == -EINVAL,
	      "spawn NULL fn: %d", err);
	err = 0;
	CHECK(myriad_task_spawn(self, noop_step, NULL,
				(size_t)MYRIAD_STATE_MAX + 1, 0,
				&err) == NULL &&
		      err == -EINVAL,
	      "spawn state too big: %d", err);
	err = 0;
	CHECK(myriad_task_spawn(self, noop_step, NULL, 0, 1u << 7, &err) ==
			      NULL &&
		      err == -EINVAL,
	      "spawn unknown flags: %d", err);
	err = 0;
	CHECK(myriad_task_spawn(st->other, noop_step, NULL, 0, 0, &err) ==
			      NULL &&
		      err == -EINVAL,
	      "spawn as another task: %d", err);
	CHECK_ERR(myriad_task_join(st->other), -EINVAL);
	CHECK_EQ(myriad_task_join(self), 0); /* no children */

	/* Wakers name only the running task. */
	w = myriad_task_waker(st->other);
	CHECK(w.task == NULL, "waker of another task");
	CHECK_ERR(myriad_waker_wake(w), -EINVAL);
	w = myriad_task_waker(self);
	CHECK(w.task == self && w.rt == rt, "own waker");

	/* Channel calls. */
	CHECK_ERR(myriad_chan_send(self, NULL, &v), -EINVAL);
	CHECK_ERR(myriad_chan_send(self, st->ch, NULL), -EINVAL);
	CHECK_ERR(myriad_chan_recv(self, NULL, &v), -EINVAL);
	CHECK_ERR(myriad_chan_recv(self, st->ch, NULL), -EINVAL);
	CHECK_ERR(myriad_chan_send(st->other, st->ch, &v), -EINVAL);
	CHECK_ERR(myriad_chan_recv(NULL, st->ch, &v), -EINVAL);
	CHECK_ERR(myriad_chan_abandon(self, NULL), -EINVAL);
	CHECK_EQ(myriad_chan_abandon(self, st->ch), 0); /* nothing to drop */

	/* Spawning from outside is allowed from a worker too. */
	CHECK_EQ(myriad_rt_spawn(rt, noop_step, NULL, 0, NULL), 0);
	err = 12345;
	c = myriad_task_spawn(self, noop_step, NULL, 0, 0, &err);
	CHECK(c != NULL && err == 0, "a good spawn sets *err to 0: %d", err);
	err = 12345;
	CHECK(myriad_task_spawn(self, noop_step, NULL, 0, MYRIAD_SPAWN_DETACHED,
				&err) == NULL &&
		      err == 0,
	      "a good detached spawn: NULL with *err 0, got %d", err);
	atomic_store(&inside_checked, 1);
	return MYRIAD_DONE;
}

static int block_step(myriad_task_t *self, void *p)
{
	return myriad_task_cancelled(self) ? MYRIAD_DONE : MYRIAD_PENDING;
}

static void test_inside(void)
{
	struct inside st = { 0 };
	struct inside *p = &st;
	myriad_rt_t *rt2 = t_rt_new(1);
	int err;

	t_phase("from inside a task");
	REQUIRE(myriad_rt_spawn(rt, block_step, NULL, 0, &st.other) == 0,
		"spawn");
	REQUIRE(myriad_rt_spawn(rt2, noop_step, NULL, 0, &st.foreign) == 0,
		"spawn");
	st.ch = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
	REQUIRE(st.ch, "chan_create");
	CHECK_EQ(t_run(rt, inside_step, &p, sizeof(p), NULL, "inside"), 0);
	CHECK_EQ(atomic_load(&inside_checked), 1);
	CHECK_EQ(myriad_handle_cancel(st.other), 0);
	CHECK_ERR(t_join(st.other, NULL, "blocked"), -ECANCELED);
	CHECK_EQ(myriad_handle_release(st.other), 0);
	CHECK_EQ(myriad_handle_release(st.foreign), 0);
	CHECK_EQ(myriad_chan_destroy(st.ch), 0);
	CHECK_EQ(myriad_rt_destroy(rt2), 0);
}

/* ---- after shutdown ---- */

struct published {
	myriad_waker_t w;
	_Atomic int ready;
};

static int pend_step(myriad_task_t *self, void *p)
{
	struct published *pw = *(struct published **)p;

	pw->w = myriad_task_waker(self);
	atomic_store_explicit(&pw->ready, 1, memory_order_release);
	return MYRIAD_PENDING;
}

static void test_after_shutdown(void)
{
	struct published pw = { { NULL, NULL }, 0 }, *wp = &pw;
	myriad_handle_t *h;
	int64_t res;

	t_phase("after shutdown");
	REQUIRE(myriad_rt_spawn(rt, pend_step, &wp, sizeof(wp), &h) == 0,
		"spawn");
	while (!atomic_load_explicit(&pw.ready, memory_order_acquire))
		t_sleep_ms(1);
	CHECK_EQ(myriad_rt_shutdown(rt), 0);
	CHECK_ERR(myriad_rt_spawn(rt, noop_step, NULL, 0, NULL), -ESHUTDOWN);
	CHECK_ERR(myriad_rt_block_on(rt, noop_step, NULL, 0, &res), -ESHUTDOWN);
	CHECK_ERR(myriad_waker_wake(pw.w), -ESHUTDOWN);
	CHECK_ERR(myriad_handle_join(h, &res, -1), -ESHUTDOWN);
	CHECK_EQ(myriad_handle_cancel(h), 0);
	CHECK_ERR(myriad_rt_destroy(rt), -EBUSY);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(myriad_rt_destroy(rt), 0);
}

int main(int argc, char **argv)
{
	t_name = "bad_args";
	t_parse_workers(argc, argv);
	t_watchdog(55);
	test_create();
	test_null_and_outside();
	rt = t_rt_new(2);
	test_with_rt();
	test_inside();
	test_after_shutdown();
	return t_result();
}
