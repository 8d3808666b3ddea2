/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/policy.c: the placement-policy interface: init gets the
 * environment and policy_arg, fini runs once; steal_victim is asked within
 * its documented range and nonsense answers only end a search; spawns
 * placed on the inject queue still complete; a policy that shrinks the
 * active workers does not strand tasks queued on a worker it parks.
 *   policy [--workers N]
 */
#include "helpers.h"
#include "sched/sched.h"
#include "base/random.h"

static unsigned nworkers;
static _Atomic int init_calls, fini_calls, bad_victim_calls;
static _Atomic int victim_mode; /* 0 sane, 1 self, 2 -1, 3 huge */
static _Atomic int place_inject;
static _Atomic unsigned active_want;
static int arg_cookie;

struct ctx {
	unsigned workers;
	uint64_t seen_rng;
};

static int pol_init(void **ctx, const struct myriad_policy_env *env)
{
	struct ctx *c = calloc(1, sizeof(*c));

	atomic_fetch_add(&init_calls, 1);
	CHECK(env->sz >= sizeof(*env), "env.sz %zu", env->sz);
	CHECK_EQ(env->workers, nworkers);
	CHECK(env->arg == &arg_cookie, "policy_arg reaches init");
	if (!c)
		return -ENOMEM;
	c->workers = env->workers;
	*ctx = c;
	return 0;
}

static void pol_fini(void *ctx)
{
	atomic_fetch_add(&fini_calls, 1);
	free(ctx);
}

static int pol_victim(void *ctx, unsigned self, unsigned attempt, uint64_t *rng)
{
	struct ctx *c = ctx;

	if (self >= c->workers || attempt + 1 >= c->workers || !rng || !*rng)
		atomic_fetch_add(&bad_victim_calls, 1);
	*rng = rng_next(rng) | 1;
	switch (atomic_load_explicit(&victim_mode, memory_order_relaxed)) {
	case 1:
		return (int)self;
	case 2:
		return -1;
	case 3:
		return 1 << 20;
	default:
		return (int)((self + 1 + attempt) % c->workers);
	}
}

static int pol_place(void *ctx, unsigned self)
{
	return atomic_load_explicit(&place_inject, memory_order_relaxed)
		       ? MYRIAD_PLACE_INJECT
		       : MYRIAD_PLACE_LOCAL;
}

static unsigned pol_active(void *ctx)
{
	return atomic_load_explicit(&active_want, memory_order_relaxed);
}

static const struct myriad_policy_ops test_policy = {
	.sz = sizeof(struct myriad_policy_ops),
	.name = "test",
	.init = pol_init,
	.fini = pol_fini,
	.steal_victim = pol_victim,
	.spawn_place = pol_place,
	.active_workers = pol_active,
};

static myriad_rt_t *the_rt;

/*
 * What each worker still holds. Diagnostics only, after a failure: the
 * owner-private fields are read without synchronization, so not under
 * ThreadSanitizer (it would rightly report that read).
 */
static void dump(void)
{
	unsigned i;

	if (!the_rt || T_TSAN)
		return;
	fprintf(stderr, "  active %u of %u workers, inject %zu\n",
		atomic_load(&the_rt->active), the_rt->nworkers,
		inject_len(&the_rt->inject));
	for (i = 0; i < the_rt->nworkers; i++) {
		struct worker *w = &the_rt->workers[i];

		fprintf(stderr,
			"  worker %u: spawn stack %u, ring %u, lifo %s, %s\n",
			i, w->stack_n, ck_ring_size(&w->ring),
			atomic_load(&w->lifo) ? "full" : "empty",
			w->in_sleepers ? "asleep" : "awake");
	}
}

/* ---- a fork-join workload (t_fib_step, helpers.h) ---- */

/*
 * Run fib(n) as a root task. A timeout is reported (with what each worker
 * still holds) rather than fatal; returns false then, and the caller
 * stops using the runtime except to destroy it.
 */
static bool run_fib(myriad_rt_t *rt, int n, int64_t want, const char *what)
{
	struct t_fib st = { .n = n };
	myriad_handle_t *h;
	int64_t res = -1;
	int r;

	REQUIRE(myriad_rt_spawn(rt, t_fib_step, &st, sizeof(st), &h) == 0,
		"spawn");
	r = myriad_handle_join(h, &res, (int64_t)10 * T_SLOW * 1000000000);
	if (r == -ETIMEDOUT) {
		t_failf(__FILE__, __LINE__,
			"%s: fib(%d) did not finish in %d s; the workers hold:",
			what, n, 10 * T_SLOW);
		dump();
		myriad_handle_release(h);
		return false;
	}
	CHECK_EQ(r, 0);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK(res == want, "%s: fib(%d) expected %" PRId64 ", got %" PRId64,
	      what, n, want, res);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
	return true;
}

/*
 * ---- the active count shrinks while a worker it parks holds tasks ----
 * A root running on a worker with index >= 1 spawns many children (they
 * queue on that worker) and then asks the policy for one active worker.
 * The parked worker's queued children must still run (on worker 0).
 */

static _Atomic int claimed;
static _Atomic int64_t kids_ran;

#define KIDS 2000

static int kid_step(myriad_task_t *self, void *p)
{
	atomic_fetch_add(&kids_ran, 1);
	myriad_task_set_result(self, 1);
	return MYRIAD_DONE;
}

struct shrink {
	MYRIAD_CORO_FIELD;
	int i;
};

static int shrink_step(myriad_task_t *self, void *p)
{
	struct shrink *st = p;

	MYRIAD_BEGIN(st);
	if (myriad_current_worker() < 1 || atomic_exchange(&claimed, 1)) {
		myriad_task_set_result(self, -1);
		return MYRIAD_DONE; /* not on a worker that will park */
	}
	for (st->i = 0; st->i < KIDS; st->i++)
		myriad_task_spawn(self, kid_step, NULL, 0, 0, NULL);
	atomic_store(&active_want, 1);
	MYRIAD_JOIN(st, self);
	myriad_task_set_result(self, KIDS);
	MYRIAD_END(st);
}

static void test_shrink(myriad_rt_t *rt)
{
	myriad_handle_t *h[64];
	int64_t res;
	int i, n = 0, r;

	t_phase("active workers shrink");
	atomic_store(&active_want, nworkers);
	atomic_store(&claimed, 0);
	/* Roots from outside until one lands on a worker other than 0. */
	for (i = 0; i < 64 && !atomic_load(&claimed); i++) {
		REQUIRE(myriad_rt_spawn(rt, shrink_step, NULL,
					sizeof(struct shrink), &h[n]) == 0,
			"spawn");
		n++;
		t_sleep_ms(2);
	}
	if (!atomic_load(&claimed)) {
		printf("policy: no root ran on a worker >= 1; shrink not "
		       "checked\n");
	}
	for (i = 0; i < n; i++) {
		res = 0;
		r = myriad_handle_join(h[i], &res,
				       (int64_t)10 * T_SLOW * 1000000000);
		if (r == -ETIMEDOUT) {
			t_failf(__FILE__, __LINE__,
				"a task's children queued on a worker that "
				"the policy then parked never ran: %" PRId64
				" of %d ran in %d s",
				atomic_load(&kids_ran), KIDS, 10 * T_SLOW);
			dump();
			/* Destroy frees what is left; no more checks. */
			for (; i < n; i++)
				myriad_handle_release(h[i]);
			return;
		}
		CHECK_EQ(r, 0);
		CHECK(res == -1 || res == KIDS, "root result %" PRId64, res);
		CHECK_EQ(myriad_handle_release(h[i]), 0);
	}
	if (atomic_load(&claimed))
		CHECK_EQ(atomic_load(&kids_ran), KIDS);
	atomic_store(&active_want, nworkers);
}

int main(int argc, char **argv)
{
	struct myriad_rt_opts o;
	myriad_rt_t *rt;
	int err, mode;
	bool ok;

	t_name = "policy";
	nworkers = t_parse_workers(argc, argv);
	if (!nworkers)
		nworkers = 2;
	t_watchdog(55);
	atomic_store(&active_want, nworkers);
	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = nworkers;
	o.policy = &test_policy;
	o.policy_arg = &arg_cookie;
	rt = myriad_rt_create(&o, &err);
	REQUIRE(rt, "create with a policy: %d", err);
	the_rt = rt;
	t_watchdog_dump = dump;
	CHECK_EQ(atomic_load(&init_calls), 1);

	t_phase("sane policy");
	run_fib(rt, 18, 2584, "sane victims");
	t_phase("spawns on the inject queue");
	atomic_store(&place_inject, 1);
	run_fib(rt, 18, 2584, "inject placement");
	atomic_store(&place_inject, 0);
	for (mode = 1; mode <= 3; mode++) {
		t_phase("nonsense victims");
		atomic_store(&victim_mode, mode);
		run_fib(rt, 16, 987, "nonsense victims");
	}
	atomic_store(&victim_mode, 0);
	CHECK_EQ(atomic_load(&bad_victim_calls), 0);

	if (nworkers >= 2) {
		t_phase("one active worker");
		atomic_store(&active_want, 1);
		ok = run_fib(rt, 20, 6765, "one active worker (set before)");
		atomic_store(&active_want, nworkers);
		if (ok)
			ok = run_fib(rt, 16, 987, "all active again");
		if (ok)
			test_shrink(rt);
	}

	CHECK_EQ(atomic_load(&fini_calls), 0);
	the_rt = NULL;
	CHECK_EQ(myriad_rt_destroy(rt), 0);
	CHECK_EQ(atomic_load(&fini_calls), 1);
	CHECK_EQ(atomic_load(&init_calls), 1);
	return t_result();
}
