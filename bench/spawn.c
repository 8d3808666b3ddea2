/* SPDX-License-Identifier: MIT */
/*
 * bench/spawn.c: the spawn workload (one root spawns N empty tasks) and
 * the chain workload (task i spawns task i+1 and ends), N tasks each.
 */
#include "bench.h"

/* ---- spawn: N empty tasks, each counting down ---- */

static int empty_step(myriad_task_t *self, void *st)
{
	count_down();
	return MYRIAD_DONE;
}

static int spawn_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		spawn(self, empty_step, NULL, 0, MYRIAD_SPAWN_DETACHED);
		/* Give the spawned tasks a turn on this worker too. */
		if ((st->i & 255) == 255)
			MYRIAD_YIELD(st);
	}
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- chain: task i spawns task i+1 and ends ---- */

struct link {
	int64_t i;
};

static int chain_step(myriad_task_t *self, void *p)
{
	struct link *st = p, next = { st->i + 1 };

	if (next.i < B.n)
		spawn(self, chain_step, &next, sizeof(next),
		      MYRIAD_SPAWN_DETACHED);
	count_down();
	return MYRIAD_DONE;
}

static int chain_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct link first = { 0 };

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	spawn(self, chain_step, &first, sizeof(first), MYRIAD_SPAWN_DETACHED);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- both: --n N (1,000,000) ---- */

static int64_t spawn_parse(const struct bench_args *a)
{
	if (a->tasks >= 0 || a->yields >= 0 || a->pairs >= 0 || a->rounds >= 0)
		usage("spawn and chain take --n only");
	B.n = a->n >= 0 ? a->n : 1000000;
	if (B.n < 1)
		usage("--n must be at least 1");
	return B.n;
}

static int spawn_run(myriad_rt_t *rt, int64_t *tasks)
{
	return run_root(rt, spawn_root);
}

static int chain_run(myriad_rt_t *rt, int64_t *tasks)
{
	return run_root(rt, chain_root);
}

static void spawn_result(double w, int64_t tasks)
{
	printf(" tasks_per_s=%.0f ns_per_task=%.1f", tasks / w,
	       w * 1e9 / tasks);
}

static void chain_result(double w, int64_t tasks)
{
	printf(" tasks_per_s=%.0f", tasks / w);
}

const struct workload wl_spawn = {
	.name = "spawn",
	.usage = "spawn|chain --n N",
	.parse = spawn_parse,
	.run = spawn_run,
	.result = spawn_result,
};

const struct workload wl_chain = {
	.name = "chain",
	.parse = spawn_parse,
	.run = chain_run,
	.result = chain_result,
};
