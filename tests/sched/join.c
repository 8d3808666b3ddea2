/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/join.c: fork-join trees: fib with a task per call, a parent
 * with 10,000 children, nested joins in rounds, a parent that returns DONE
 * without joining (it finishes only after its children), a child spawned
 * after a join in the same step; nothing leaks (tasks_live is 0).
 *   join [--workers N]
 */
#include <pthread.h>

#include "helpers.h"
#include "sched/sched.h"

static myriad_rt_t *rt;

/* ---- fib: a task per call ---- */

static _Atomic int64_t fib_calls;

struct fib {
	MYRIAD_CORO_FIELD;
	int n;
	myriad_task_t *a, *b;
};

static int fib_step(myriad_task_t *self, void *p)
{
	struct fib *st = p;
	struct fib c;

	MYRIAD_BEGIN(st);
	atomic_fetch_add_explicit(&fib_calls, 1, memory_order_relaxed);
	if (st->n < 2) {
		myriad_task_set_result(self, st->n);
		return MYRIAD_DONE;
	}
	memset(&c, 0, sizeof(c));
	c.n = st->n - 1;
	st->a = myriad_task_spawn(self, fib_step, &c, sizeof(c), 0, NULL);
	c.n = st->n - 2;
	st->b = myriad_task_spawn(self, fib_step, &c, sizeof(c), 0, NULL);
	if (!st->a || !st->b) {
		t_failf(__FILE__, __LINE__, "fib(%d): spawn failed", st->n);
		myriad_task_set_result(self, -1000000);
		MYRIAD_JOIN(st, self);
		return MYRIAD_DONE;
	}
	MYRIAD_JOIN(st, self);
	CHECK_EQ(myriad_task_status(st->a), 0);
	myriad_task_set_result(self, myriad_task_result(st->a) +
					     myriad_task_result(st->b));
	MYRIAD_END(st);
}

static int64_t fib_iter(int n)
{
	int64_t a = 0, b = 1, c;

	while (n-- > 0) {
		c = a + b;
		a = b;
		b = c;
	}
	return a;
}

static void test_fib(void)
{
	static const int ns[] = { 0, 1, 2, 3, 5, 10, 15, 20, 23 };
	size_t i;

	t_phase("fib");
	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		struct fib st = { .n = ns[i] };
		int64_t res = -1;

		if (ns[i] > 20 && t_scale() < 1)
			continue;
		atomic_store(&fib_calls, 0);
		CHECK_EQ(t_run(rt, fib_step, &st, sizeof(st), &res, "fib"), 0);
		CHECK(res == fib_iter(ns[i]),
		      "fib(%d): expected %" PRId64 ", got %" PRId64, ns[i],
		      fib_iter(ns[i]), res);
		/* fib(n) makes 2 fib(n+1) - 1 calls. */
		CHECK(atomic_load(&fib_calls) == 2 * fib_iter(ns[i] + 1) - 1,
		      "fib(%d): expected %" PRId64 " tasks, got %" PRId64,
		      ns[i], 2 * fib_iter(ns[i] + 1) - 1,
		      atomic_load(&fib_calls));
		CHECK_EQ(myriad_rt_tasks_live(rt), 0);
	}
}

/* ---- wide: 10,000 children of one parent ---- */

#define WIDE 10000

struct wide {
	MYRIAD_CORO_FIELD;
	myriad_task_t *c[WIDE];
};

struct leaf {
	int64_t v;
};

static int leaf_step(myriad_task_t *self, void *p)
{
	struct leaf *l = p;

	myriad_task_set_result(self, l->v * 3 + 1);
	return MYRIAD_DONE;
}

static int wide_step(myriad_task_t *self, void *p)
{
	struct wide *st = p;
	int64_t sum = 0;
	int i, err;

	MYRIAD_BEGIN(st);
	for (i = 0; i < WIDE; i++) {
		struct leaf l = { i };

		err = 0;
		st->c[i] = myriad_task_spawn(self, leaf_step, &l, sizeof(l), 0,
					     &err);
		if (!st->c[i]) {
			t_failf(__FILE__, __LINE__, "spawn child %d: %d", i,
				err);
			MYRIAD_JOIN(st, self);
			return MYRIAD_DONE;
		}
	}
	MYRIAD_JOIN(st, self);
	for (i = 0; i < WIDE; i++) {
		sum += myriad_task_result(st->c[i]);
		CHECK_EQ(myriad_task_status(st->c[i]), 0);
	}
	myriad_task_set_result(self, sum);
	MYRIAD_END(st);
}

static void test_wide(void)
{
	struct wide *st = calloc(1, sizeof(*st));
	int64_t res = 0, want = 3 * (int64_t)WIDE * (WIDE - 1) / 2 + WIDE;

	t_phase("wide");
	REQUIRE(st, "alloc");
	CHECK_EQ(t_run(rt, wide_step, st, sizeof(*st), &res, "wide"), 0);
	CHECK_EQ(res, want);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
	free(st);
}

/*
 * ---- nested: each node joins its children in two rounds and returns
 * the size of its subtree ----
 */

#define BRANCH 4

struct node {
	MYRIAD_CORO_FIELD;
	int depth;
	int64_t acc;
	myriad_task_t *c[BRANCH];
};

static int node_step(myriad_task_t *self, void *p)
{
	struct node *st = p;
	struct node c;
	int i;

	MYRIAD_BEGIN(st);
	st->acc = 1;
	if (st->depth == 0) {
		myriad_task_set_result(self, 1);
		return MYRIAD_DONE;
	}
	memset(&c, 0, sizeof(c));
	c.depth = st->depth - 1;
	for (i = 0; i < BRANCH / 2; i++)
		st->c[i] = myriad_task_spawn(self, node_step, &c, sizeof(c), 0,
					     NULL);
	MYRIAD_JOIN(st, self);
	for (i = 0; i < BRANCH / 2; i++)
		st->acc += myriad_task_result(st->c[i]);
	/* A join that returned 0 with nothing new spawned stays 0. */
	CHECK_EQ(myriad_task_join(self), 0);
	MYRIAD_YIELD(st);
	memset(&c, 0, sizeof(c));
	c.depth = st->depth - 1;
	for (i = BRANCH / 2; i < BRANCH; i++)
		st->c[i] = myriad_task_spawn(self, node_step, &c, sizeof(c), 0,
					     NULL);
	MYRIAD_JOIN(st, self);
	for (i = BRANCH / 2; i < BRANCH; i++)
		st->acc += myriad_task_result(st->c[i]);
	myriad_task_set_result(self, st->acc);
	MYRIAD_END(st);
}

static void test_nested(void)
{
	int depth = t_scale() < 1 ? 5 : 7;
	struct node st = { .depth = depth };
	int64_t res = 0, want = 0, pw = 1;
	int d;

	t_phase("nested");
	for (d = 0; d <= depth; d++, pw *= BRANCH)
		want += pw;
	CHECK_EQ(t_run(rt, node_step, &st, sizeof(st), &res, "nested"), 0);
	CHECK_EQ(res, want);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

/*
 * ---- a parent returning DONE without joining: it completes only after
 * its children, blocked on a channel or yielding until released ----
 */

#define ZKIDS 64

static myriad_chan_t *zch;
static _Atomic int zrelease, zstarted, zfinished;
static _Atomic int64_t zsum;

struct zkid {
	MYRIAD_CORO_FIELD;
	int yielder;
	int64_t v;
};

static int zkid_step(myriad_task_t *self, void *p)
{
	struct zkid *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	atomic_fetch_add(&zstarted, 1);
	if (st->yielder) {
		while (!atomic_load(&zrelease))
			MYRIAD_YIELD(st);
		st->v = 1000;
	} else {
		MYRIAD_RECV(st, self, zch, &st->v, rc);
		CHECK_EQ(rc, 0);
	}
	atomic_fetch_add(&zsum, st->v);
	atomic_fetch_add(&zfinished, 1);
	MYRIAD_END(st);
}

static int zparent_step(myriad_task_t *self, void *p)
{
	int i;

	for (i = 0; i < ZKIDS; i++) {
		struct zkid k = { .yielder = i < 4 };

		CHECK(myriad_task_spawn(self, zkid_step, &k, sizeof(k), 0,
					NULL) != NULL,
		      "spawn");
	}
	myriad_task_set_result(self, 77);
	return MYRIAD_DONE; /* without joining */
}

static int zstarted_all(void *p)
{
	return atomic_load(&zstarted) == ZKIDS;
}

static void test_zombie(void)
{
	myriad_handle_t *h;
	int64_t res = 0, v, want = 4 * 1000;
	int i, r, err;

	t_phase("parent done before its children");
	zch = myriad_chan_create(rt, sizeof(int64_t), ZKIDS, &err);
	REQUIRE(zch, "chan_create: %d", err);
	REQUIRE(myriad_rt_spawn(rt, zparent_step, NULL, 0, &h) == 0, "spawn");
	CHECK(t_wait_until(zstarted_all, NULL, 20),
	      "all children started: %d of %d", atomic_load(&zstarted), ZKIDS);
	/* Children are blocked: the parent cannot have finished. */
	r = myriad_handle_join(h, &res, 100 * 1000000);
	CHECK(r == -ETIMEDOUT,
	      "join of a parent whose children are blocked: expected "
	      "-ETIMEDOUT, got %d (finished %d of %d children)",
	      r, atomic_load(&zfinished), ZKIDS);
	CHECK_EQ(atomic_load(&zfinished), 0);
	/* Release them. */
	atomic_store(&zrelease, 1);
	for (i = 0; i < ZKIDS - 4; i++) {
		v = i;
		want += i;
		CHECK_EQ(myriad_chan_try_send(zch, &v), 0);
	}
	r = t_join(h, &res, "zombie parent");
	CHECK_EQ(r, 0);
	CHECK_EQ(res, 77);
	/* The join returned only after every child ran to its end. */
	CHECK_EQ(atomic_load(&zfinished), ZKIDS);
	CHECK_EQ(atomic_load(&zsum), want);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
	CHECK_EQ(myriad_chan_len(zch), 0);
	CHECK_EQ(myriad_chan_destroy(zch), 0);
}

/*
 * ---- a child spawned after a join returned 0, in the same step ----
 * myriad_task_spawn's contract: the child is valid until the parent has
 * joined *it*. Here it finishes on another worker before that step
 * returns (a policy places spawns on the inject queue, and an outside
 * spawn wakes a sleeping worker); it must not be reaped with the children
 * joined before it.
 */

static myriad_rt_t *lrt;
static _Atomic int late_done, poke_req, poke_stop;

static int late_step(myriad_task_t *self, void *p)
{
	myriad_task_set_result(self, 4242);
	atomic_store(&late_done, 1);
	return MYRIAD_DONE;
}

static int noop_step(myriad_task_t *self, void *p)
{
	return MYRIAD_DONE;
}

/* On request, spawn from outside: that notifies a sleeping worker. */
static void *poker(void *p)
{
	while (!atomic_load(&poke_stop)) {
		if (atomic_exchange(&poke_req, 0))
			myriad_rt_spawn(lrt, noop_step, NULL, 0, NULL);
		t_sleep_ms(1);
	}
	return NULL;
}

static int place_inject(void *ctx, unsigned self)
{
	return MYRIAD_PLACE_INJECT;
}

struct latejoin {
	MYRIAD_CORO_FIELD;
	myriad_task_t *a, *b;
	int raced;
	int64_t live_before;
};

static int latejoin_step(myriad_task_t *self, void *p)
{
	struct latejoin *st = p;
	struct myriad_task *c;
	double end;
	bool found = false;

	MYRIAD_BEGIN(st);
	st->a = myriad_task_spawn(self, leaf_step, &(struct leaf){ 1 },
				  sizeof(struct leaf), 0, NULL);
	MYRIAD_JOIN(st, self);
	CHECK_EQ(myriad_task_result(st->a), 4);
	/* Joined: now spawn b, and let another worker run it meanwhile. */
	st->b = myriad_task_spawn(self, late_step, NULL, 0, 0, NULL);
	end = t_now() + 10;
	while (t_now() < end && !(atomic_load(&late_done) &&
				  TS_JOIN(atomic_load(&self->state)) == 0)) {
		atomic_store(&poke_req, 1);
		t_sleep_ms(1);
	}
	st->raced = atomic_load(&late_done) &&
		    TS_JOIN(atomic_load(&self->state)) == 0;
	st->live_before = myriad_rt_tasks_live(lrt);
	MYRIAD_YIELD(st);
	/* b has not been joined yet: it must still be ours. */
	for (c = self->children; c; c = c->sibling)
		if (c == st->b)
			found = true;
	if (st->raced) {
		CHECK(found,
		      "a child spawned after a join (in the same step) that "
		      "finished before the step returned was freed before "
		      "its parent joined it (tasks_live %" PRId64 " -> %" PRId64
		      ")",
		      st->live_before, myriad_rt_tasks_live(lrt));
	} else {
		printf("late child: the race was not reached (no other "
		       "worker ran it); not checked\n");
	}
	MYRIAD_JOIN(st, self);
	if (found)
		CHECK_EQ(myriad_task_result(st->b), 4242);
	MYRIAD_END(st);
}

static int lrt_idle(void *p)
{
	return myriad_rt_tasks_live(lrt) == 0;
}

static void test_late_child(void)
{
	struct myriad_policy_ops pol = myriad_policy_default;
	struct myriad_rt_opts o;
	struct latejoin st = { 0 };
	pthread_t th;
	int err;

	if (myriad_rt_workers(rt) < 2)
		return;
	t_phase("child spawned after a join");
	pol.name = "inject";
	pol.spawn_place = place_inject;
	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = (unsigned)myriad_rt_workers(rt);
	o.policy = &pol;
	lrt = myriad_rt_create(&o, &err);
	REQUIRE(lrt, "create with an inject policy: %d", err);
	pthread_create(&th, NULL, poker, NULL);
	CHECK_EQ(t_run(lrt, latejoin_step, &st, sizeof(st), NULL, "late"), 0);
	atomic_store(&poke_stop, 1);
	pthread_join(th, NULL);
	/* The poker's detached no-op tasks may still be on their way. */
	CHECK(t_wait_until(lrt_idle, NULL, 10),
	      "tasks_live: expected 0, got %" PRId64,
	      myriad_rt_tasks_live(lrt));
	CHECK_EQ(myriad_rt_destroy(lrt), 0);
}

int main(int argc, char **argv)
{
	unsigned workers;

	t_name = "join";
	workers = t_parse_workers(argc, argv);
	t_watchdog(55);
	rt = t_rt_new(workers);
	test_fib();
	test_wide();
	test_nested();
	test_zombie();
	test_late_child();
	t_rt_done(rt);
	return t_result();
}
