/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/pin.c: MYRIAD_POLICY_PIN. With a CPU of the affinity mask
 * for every worker, worker i runs on the i-th CPU of the mask alone while
 * every worker is active; while the policy keeps some parked the active
 * ones are back on the whole mask; when all are active again they are
 * pinned again. The offload pool, started from a pinned worker, has the
 * whole mask. Without the flag, or with more workers than CPUs, nobody
 * is pinned. The kernel-aware policy has the flag.
 *   pin [--workers N]   (N at most the CPUs of the mask; default: all)
 */
#include "helpers.h"
#include "sched/sched.h"
#include "base/random.h"

static _Atomic unsigned active_want;

static int pol_victim(void *ctx, unsigned self, unsigned attempt, uint64_t *rng)
{
	(void)ctx;
	*rng = rng_next(rng) | 1;
	return (int)((self + 1 + attempt) % 64);
}

static unsigned pol_active(void *ctx)
{
	(void)ctx;
	return atomic_load_explicit(&active_want, memory_order_relaxed);
}

static struct myriad_policy_ops pin_policy = {
	.sz = sizeof(struct myriad_policy_ops),
	.name = "pin-test",
	.steal_victim = pol_victim,
	.active_workers = pol_active,
	.flags = MYRIAD_POLICY_PIN,
};

/* A blocking call on the offload pool: its thread's affinity. */
static int64_t pool_affinity(void *arg)
{
	cpu_set_t *out = arg;

	return sched_getaffinity(0, sizeof(*out), out) ? -errno : 0;
}

static cpu_set_t pool_mask; /* what the pool's thread saw */

struct blk {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int64_t rc;
};

static int blk_step(myriad_task_t *self, void *p)
{
	struct blk *st = p;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, st->rc,
		  myriad_io_blocking(self, &st->op, pool_affinity, &pool_mask));
	myriad_task_set_result(self, st->rc);
	MYRIAD_END(st);
}

/* Work for the workers, so that their maintenance ticks run. */
static void churn(myriad_rt_t *rt)
{
	struct t_fib st = { .n = 18 };
	int64_t res = -1;

	CHECK_EQ(myriad_rt_block_on(rt, t_fib_step, &st, sizeof(st), &res), 0);
	CHECK_EQ(res, 2584);
}

/* Worker i's affinity: the one CPU it is pinned to, -1 for the whole mask,
 * -2 for anything else. */
static int worker_cpu(myriad_rt_t *rt, unsigned i, const cpu_set_t *mask)
{
	cpu_set_t s;
	int c;

	REQUIRE(sched_getaffinity(rt->workers[i].tid, sizeof(s), &s) == 0,
		"sched_getaffinity(%d): %s", (int)rt->workers[i].tid,
		strerror(errno));
	if (CPU_EQUAL(&s, mask))
		return -1;
	if (CPU_COUNT(&s) != 1)
		return -2;
	for (c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &s))
			return c;
	return -2;
}

/* The i-th CPU of the mask. */
static int nth_cpu(const cpu_set_t *mask, unsigned i)
{
	int c;

	for (c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, mask) && i-- == 0)
			return c;
	return -1;
}

/*
 * Churn until every worker below 'upto' is pinned to its CPU (pinned) or
 * on the whole mask (!pinned); false after 10 s.
 */
static bool wait_for(myriad_rt_t *rt, unsigned upto, bool pinned,
		     const cpu_set_t *mask, const char *what)
{
	double end = t_now() + 10.0 * T_SLOW;
	unsigned i = 0;
	int got = 0;

	while (t_now() < end) {
		for (i = 0; i < upto; i++) {
			got = worker_cpu(rt, i, mask);
			if (got != (pinned ? nth_cpu(mask, i) : -1))
				break;
		}
		if (i == upto)
			return true;
		churn(rt);
	}
	t_failf(__FILE__, __LINE__,
		"%s: worker %u has CPU %d (-1: the whole mask), wanted %s",
		what, i, got, pinned ? "its own" : "the whole mask");
	return false;
}

static myriad_rt_t *make(unsigned workers, const struct myriad_policy_ops *pol)
{
	struct myriad_rt_opts o = { .sz = sizeof(o) };
	myriad_rt_t *rt;
	int err = 0;

	o.workers = workers;
	o.policy = pol;
	rt = myriad_rt_create(&o, &err);
	REQUIRE(rt, "myriad_rt_create: %d", err);
	return rt;
}

int main(int argc, char **argv)
{
	cpu_set_t mask;
	unsigned ncpu, n, i;
	myriad_rt_t *rt;

	t_name = "sched/pin";
	n = t_parse_workers(argc, argv);
	t_watchdog(120);
	REQUIRE(sched_getaffinity(0, sizeof(mask), &mask) == 0,
		"sched_getaffinity: %s", strerror(errno));
	ncpu = (unsigned)CPU_COUNT(&mask);
	if (ncpu < 2) {
		t_skip("one CPU in the affinity mask: nothing to pin apart");
	}
	if (!n || n > ncpu)
		n = ncpu;
	if (n < 2)
		n = 2;

	/* Pinned, one CPU each, in the mask's order. */
	t_phase("pinned at start");
	atomic_store(&active_want, n);
	rt = make(n, &pin_policy);
	wait_for(rt, n, true, &mask, "at start");

	/*
	 * The offload pool, started from a pinned worker, is not pinned (a
	 * new thread inherits its creator's CPU).
	 */
	t_phase("offload pool");
	{
		struct blk b = { 0 };
		int64_t res = -1;

		CHECK_EQ(myriad_rt_block_on(rt, blk_step, &b, sizeof(b), &res),
			 0);
		CHECK_EQ(res, 0);
		CHECK(CPU_EQUAL(&pool_mask, &mask),
		      "the offload pool's thread has %d CPUs of the mask's %u",
		      CPU_COUNT(&pool_mask), ncpu);
	}

	/* One active: it is back on the whole mask. */
	t_phase("one active");
	atomic_store(&active_want, 1);
	wait_for(rt, 1, false, &mask, "one worker active");

	/* All active again: every worker pinned again. */
	t_phase("all active again");
	atomic_store(&active_want, n);
	wait_for(rt, n, true, &mask, "all active again");
	CHECK_EQ(myriad_rt_destroy(rt), 0);

	/* Without the flag: nobody pinned. */
	t_phase("no flag");
	pin_policy.flags = 0;
	rt = make(n, &pin_policy);
	churn(rt);
	for (i = 0; i < n; i++)
		CHECK(worker_cpu(rt, i, &mask) == -1,
		      "no MYRIAD_POLICY_PIN: worker %u pinned", i);
	CHECK_EQ(myriad_rt_destroy(rt), 0);

	/* More workers than CPUs: nobody pinned. */
	t_phase("more workers than CPUs");
	pin_policy.flags = MYRIAD_POLICY_PIN;
	rt = make(ncpu + 1, &pin_policy);
	atomic_store(&active_want, ncpu + 1);
	churn(rt);
	for (i = 0; i < ncpu + 1; i++)
		CHECK(worker_cpu(rt, i, &mask) == -1,
		      "%u workers on %u CPUs: worker %u pinned", ncpu + 1, ncpu,
		      i);
	CHECK_EQ(myriad_rt_destroy(rt), 0);

	CHECK(myriad_policy_kernel.flags & MYRIAD_POLICY_PIN,
	      "the kernel-aware policy does not pin");
	return t_result();
}
