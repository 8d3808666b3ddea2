/* SPDX-License-Identifier: MIT */
/*
 * bench/pingpong.c: the pingpong workload: P pairs of tasks pass a token
 * back and forth R times over two 1-slot channels per pair.
 */
#include "bench.h"

static myriad_chan_t **chans; /* pair i: 2i ping to pong, 2i+1 back */

struct player {
	MYRIAD_CORO_FIELD;
	int64_t i;
	int64_t tok;
	myriad_chan_t *in, *out;
	bool serve; /* ping sends first */
};

static int player_step(myriad_task_t *self, void *p)
{
	struct player *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < B.m; st->i++) {
		if (st->serve) {
			MYRIAD_SEND(st, self, st->out, &st->tok, rc);
			if (rc < 0)
				break;
			MYRIAD_RECV(st, self, st->in, &st->tok, rc);
		} else {
			MYRIAD_RECV(st, self, st->in, &st->tok, rc);
			if (rc < 0)
				break;
			st->tok++;
			MYRIAD_SEND(st, self, st->out, &st->tok, rc);
		}
		if (rc < 0)
			break;
	}
	count_down();
	MYRIAD_END(st);
}

static int pingpong_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct player pl;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		memset(&pl, 0, sizeof(pl));
		pl.in = chans[2 * st->i + 1];
		pl.out = chans[2 * st->i];
		pl.serve = true;
		spawn(self, player_step, &pl, sizeof(pl),
		      MYRIAD_SPAWN_DETACHED);
		pl.in = chans[2 * st->i];
		pl.out = chans[2 * st->i + 1];
		pl.serve = false;
		spawn(self, player_step, &pl, sizeof(pl),
		      MYRIAD_SPAWN_DETACHED);
	}
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* --pairs P (1,000) --rounds R (1,000) */
static int64_t pingpong_parse(const struct bench_args *a)
{
	if (a->n >= 0 || a->tasks >= 0 || a->yields >= 0)
		usage("pingpong takes --pairs and --rounds");
	B.n = a->pairs >= 0 ? a->pairs : 1000;
	B.m = a->rounds >= 0 ? a->rounds : 1000;
	return 2 * B.n;
}

static int pingpong_setup(myriad_rt_t *rt)
{
	int64_t i;
	int err;

	chans = calloc((size_t)(2 * B.n), sizeof(*chans));
	for (i = 0; i < 2 * B.n; i++) {
		chans[i] = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
		if (!chans[i]) {
			fprintf(stderr, "chan_create: %s\n", strerror(-err));
			return 1;
		}
	}
	return 0;
}

static int pingpong_run(myriad_rt_t *rt, int64_t *tasks)
{
	return run_root(rt, pingpong_root);
}

static int pingpong_teardown(void)
{
	int64_t i;

	for (i = 0; i < 2 * B.n; i++)
		myriad_chan_destroy(chans[i]);
	free(chans);
	return 0;
}

static void pingpong_result(double w, int64_t tasks)
{
	printf(" msgs_per_s=%.0f", 2.0 * B.n * B.m / w);
}

const struct workload wl_pingpong = {
	.name = "pingpong",
	.usage = "pingpong --pairs P --rounds R",
	.parse = pingpong_parse,
	.setup = pingpong_setup,
	.run = pingpong_run,
	.teardown = pingpong_teardown,
	.result = pingpong_result,
};
