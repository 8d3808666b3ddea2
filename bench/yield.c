/* SPDX-License-Identifier: MIT */
/*
 * bench/yield.c: the yield workload: T tasks each yield Y times, then
 * end; the figure is task switches a second.
 */
#include "bench.h"

struct yielder {
	MYRIAD_CORO_FIELD;
	int64_t i;
};

static int yield_step(myriad_task_t *self, void *p)
{
	struct yielder *st = p;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < B.m; st->i++)
		MYRIAD_YIELD(st);
	count_down();
	MYRIAD_END(st);
}

static int yield_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++)
		spawn(self, yield_step, NULL, sizeof(struct yielder),
		      MYRIAD_SPAWN_DETACHED);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* --tasks T (1,000) --yields Y (1,000) */
static int64_t yield_parse(const struct bench_args *a)
{
	if (a->n >= 0 || a->pairs >= 0 || a->rounds >= 0)
		usage("yield takes --tasks and --yields");
	B.n = a->tasks >= 0 ? a->tasks : 1000;
	B.m = a->yields >= 0 ? a->yields : 1000;
	return B.n;
}

static int yield_run(myriad_rt_t *rt, int64_t *tasks)
{
	return run_root(rt, yield_root);
}

static void yield_result(double w, int64_t tasks)
{
	printf(" switches_per_s=%.0f", (double)B.n * B.m / w);
}

const struct workload wl_yield = {
	.name = "yield",
	.usage = "yield --tasks T --yields Y",
	.usage_cont = true,
	.parse = yield_parse,
	.run = yield_run,
	.result = yield_result,
};
