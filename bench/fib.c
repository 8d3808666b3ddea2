/* SPDX-License-Identifier: MIT */
/*
 * bench/fib.c: the fib workload: fork-join fib(n), a task per call, both
 * children spawned, then joined; no sequential cutoff.
 */
#include "bench.h"

struct fib {
	MYRIAD_CORO_FIELD;
	int n;
	myriad_task_t *a, *b;
};

static int fib_step(myriad_task_t *self, void *p)
{
	struct fib *st = p;
	struct fib c = { 0 };

	MYRIAD_BEGIN(st);
	if (st->n < 2) {
		myriad_task_set_result(self, st->n);
		return MYRIAD_DONE;
	}
	c.n = st->n - 1;
	st->a = spawn(self, fib_step, &c, sizeof(c), 0);
	c.n = st->n - 2;
	st->b = spawn(self, fib_step, &c, sizeof(c), 0);
	MYRIAD_JOIN(st, self);
	myriad_task_set_result(self, myriad_task_result(st->a) +
					     myriad_task_result(st->b));
	MYRIAD_END(st);
}

static int fib_root(myriad_task_t *self, void *p)
{
	struct fib *st = p;
	struct fib c = { 0 };

	MYRIAD_BEGIN(st);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	c.n = st->n;
	st->a = spawn(self, fib_step, &c, sizeof(c), 0);
	MYRIAD_JOIN(st, self);
	clock_gettime(CLOCK_MONOTONIC, &B.t1);
	myriad_task_set_result(self, myriad_task_result(st->a));
	MYRIAD_END(st);
}

/* --n N (30) */
static int64_t fib_parse(const struct bench_args *a)
{
	if (a->sleep_ms >= 0)
		usage("fib takes --n only");
	if (a->tasks >= 0 || a->yields >= 0 || a->pairs >= 0 || a->rounds >= 0)
		usage("fib takes --n only");
	B.n = a->n >= 0 ? a->n : 30;
	if (B.n > 40)
		usage("--n over 40 for fib");
	return 0;
}

static int64_t res; /* fib(n), as the run found it */

static int fib_run(myriad_rt_t *rt, int64_t *tasks)
{
	struct fib froot = { .n = (int)B.n };
	int r;

	r = myriad_rt_block_on(rt, fib_root, &froot, sizeof(froot), &res);
	/* fib(n) makes 2 fib(n+1) - 1 calls. */
	int64_t a = 0, b = 1, k;

	for (k = 0; k <= B.n; k++) {
		int64_t c = a + b;

		a = b;
		b = c;
	}
	*tasks = 2 * a - 1;
	return r;
}

static void fib_result(double w, int64_t tasks)
{
	printf(" result=%" PRId64 " tasks_per_s=%.0f", res, tasks / w);
}

const struct workload wl_fib = {
	.name = "fib",
	.usage = "fib --n N",
	.usage_cont = true,
	.parse = fib_parse,
	.run = fib_run,
	.result = fib_result,
};
