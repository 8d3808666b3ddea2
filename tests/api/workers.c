/* SPDX-License-Identifier: MIT */
/*
 * tests/api/workers.c: how many workers a runtime gets: opts.workers, the
 * MYRIAD_WORKERS environment variable, the cpu_max option and the
 * MYRIAD_CPU_MAX variable (a cgroup cpu.max quota, rounded up), the
 * affinity mask, and options fields past opts.sz taking their defaults.
 *   workers
 */
#include <sched.h>

#include "helpers.h"

static int affinity_count(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return CPU_COUNT(&set);
}

static int min_int(int a, int b)
{
	return a < b ? a : b;
}

static int where_step(myriad_task_t *self, void *p)
{
	myriad_task_set_result(self, myriad_current_worker());
	return MYRIAD_DONE;
}

/* Create with these options, check the worker count, destroy. */
static void expect_workers(const struct myriad_rt_opts *o, int want,
			   const char *what)
{
	myriad_rt_t *rt;
	int64_t res;
	int err = 0, n;

	rt = myriad_rt_create(o, &err);
	if (!rt) {
		t_failf(__FILE__, __LINE__,
			"%s: expected a runtime with %d workers, got error %d "
			"(%s)",
			what, want, err, strerror(-err));
		return;
	}
	n = myriad_rt_workers(rt);
	CHECK(n == want, "%s: expected %d workers, got %d", what, want, n);
	/* The runtime runs tasks, on one of its workers. */
	res = -1;
	CHECK_EQ(myriad_rt_block_on(rt, where_step, NULL, 0, &res), 0);
	CHECK(res >= 0 && res < n, "%s: task ran on worker %" PRId64, what,
	      res);
	CHECK_EQ(myriad_rt_destroy(rt), 0);
}

static struct myriad_rt_opts opts(unsigned workers, const char *cpu_max)
{
	struct myriad_rt_opts o;

	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = workers;
	o.cpu_max = cpu_max;
	return o;
}

int main(int argc, char **argv)
{
	struct myriad_rt_opts o;
	cpu_set_t saved, one;
	int aff, cpu;

	t_name = "workers";
	t_parse_workers(argc, argv);
	t_watchdog(55);
	unsetenv("MYRIAD_WORKERS");
	unsetenv("MYRIAD_CPU_MAX");
	aff = affinity_count();
	printf("workers: %d CPUs in the affinity mask\n", aff);

	/* opts.workers is taken as given (even above the CPU count). */
	o = opts(3, NULL);
	expect_workers(&o, 3, "opts.workers = 3");
	o = opts(1, NULL);
	expect_workers(&o, 1, "opts.workers = 1");
	o = opts(16, "50000 100000");
	expect_workers(&o, 16, "opts.workers = 16 with a cpu_max of 0.5");

	/* MYRIAD_WORKERS when opts.workers is 0; opts wins over it. */
	setenv("MYRIAD_WORKERS", "5", 1);
	expect_workers(NULL, 5, "MYRIAD_WORKERS=5, opts NULL");
	o = opts(0, NULL);
	expect_workers(&o, 5, "MYRIAD_WORKERS=5, opts.workers = 0");
	o = opts(2, NULL);
	expect_workers(&o, 2, "MYRIAD_WORKERS=5, opts.workers = 2");
	unsetenv("MYRIAD_WORKERS");

	/* cpu_max: a quota over a period, rounded up, capped by affinity. */
	o = opts(0, "150000 100000");
	expect_workers(&o, min_int(aff, 2), "cpu_max \"150000 100000\"");
	o = opts(0, "50000 100000");
	expect_workers(&o, 1, "cpu_max \"50000 100000\"");
	o = opts(0, "100000 100000\n");
	expect_workers(&o, 1, "cpu_max \"100000 100000\\n\"");
	o = opts(0, "250000 100000");
	expect_workers(&o, min_int(aff, 3), "cpu_max \"250000 100000\"");
	o = opts(0, "200000");
	expect_workers(&o, min_int(aff, 2),
		       "cpu_max \"200000\" (default period 100000)");
	o = opts(0, "max 100000");
	expect_workers(&o, aff, "cpu_max \"max 100000\"");
	o = opts(0, "max");
	expect_workers(&o, aff, "cpu_max \"max\"");

	/* MYRIAD_CPU_MAX likewise; opts.cpu_max wins over it. */
	setenv("MYRIAD_CPU_MAX", "150000 100000", 1);
	expect_workers(NULL, min_int(aff, 2), "MYRIAD_CPU_MAX=150000 100000");
	o = opts(0, "max 100000");
	expect_workers(&o, aff,
		       "MYRIAD_CPU_MAX=150000 100000, "
		       "opts.cpu_max \"max 100000\"");
	setenv("MYRIAD_CPU_MAX", "max 100000", 1);
	expect_workers(NULL, aff, "MYRIAD_CPU_MAX=max 100000");
	setenv("MYRIAD_CPU_MAX", "50000 100000", 1);
	expect_workers(NULL, 1, "MYRIAD_CPU_MAX=50000 100000");
	/* MYRIAD_WORKERS is asked before the quota. */
	setenv("MYRIAD_WORKERS", "4", 1);
	expect_workers(NULL, 4, "MYRIAD_WORKERS=4 and MYRIAD_CPU_MAX");
	unsetenv("MYRIAD_WORKERS");
	unsetenv("MYRIAD_CPU_MAX");

	/* The affinity mask of the creating thread: one CPU, one worker. */
	if (sched_getaffinity(0, sizeof(saved), &saved) == 0) {
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &saved))
				break;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one) == 0) {
			expect_workers(NULL, 1, "affinity mask of one CPU");
			o = opts(0, "max 100000");
			expect_workers(&o, 1, "one CPU, cpu_max \"max\"");
			o = opts(0, "400000 100000");
			expect_workers(&o, 1, "one CPU, cpu_max of 4");
			CHECK_EQ(sched_setaffinity(0, sizeof(saved), &saved),
				 0);
			CHECK_EQ(affinity_count(), aff);
		} else {
			printf("workers: sched_setaffinity failed (%s): the "
			       "one-CPU case is not checked\n",
			       strerror(errno));
		}
	}

	/*
	 * Fields past opts.sz take their defaults: a caller built against
	 * an older, shorter struct has garbage (here: a malformed and a
	 * limiting cpu_max) where newer fields would be.
	 */
	o = opts(0, "abc");
	o.sz = offsetof(struct myriad_rt_opts, cpu_max);
	expect_workers(&o, aff,
		       "opts.sz ends before cpu_max, which holds "
		       "\"abc\" (must be ignored)");
	o = opts(0, "50000 100000");
	o.sz = offsetof(struct myriad_rt_opts, cpu_max);
	expect_workers(&o, aff,
		       "opts.sz ends before cpu_max, which holds "
		       "\"50000 100000\" (must be ignored)");
	return t_result();
}
