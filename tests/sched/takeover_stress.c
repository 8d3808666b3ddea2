/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/takeover_stress.c: rounds of fork-join trees whose steps
 * spawn their children and then, at random, block (usleep of 0-2 ms) or
 * compute (0-2 ms), or compute between spawns, so that spawn stacks are taken over while their owners
 * push and close their step windows (queue.c steps 6-11). Every task runs
 * exactly once (a flag per task), every join sees all of its children
 * (the sizes add up), nothing leaks.
 *   takeover_stress [--workers N]
 */
#include "helpers.h"
#include "sched/sched.h"

#define FAN 3
#define DEPTH 4 /* 1 + 3 + 9 + 27 + 81 = 121 tasks a round */
#define NODES 121

static myriad_rt_t *rt;
static _Atomic int ran[NODES];
static _Atomic int64_t total;
static _Atomic uint64_t seed;

struct node {
	MYRIAD_CORO_FIELD;
	int id, depth;
	myriad_task_t *kid[FAN];
};

static uint64_t rnd(void)
{
	uint64_t x = atomic_fetch_add_explicit(&seed, 0x9E3779B97F4A7C15ull,
					       memory_order_relaxed);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return x;
}

static void spin_us(unsigned us)
{
	uint64_t end = myriad_now_ns() + (uint64_t)us * 1000;

	while (myriad_now_ns() < end)
		;
}

static int node_step(myriad_task_t *self, void *p)
{
	struct node *st = p;
	struct node c;
	int64_t sum = 1;
	uint64_t r;
	int i;

	MYRIAD_BEGIN(st);
	if (atomic_fetch_add(&ran[st->id], 1) != 0)
		t_failf(__FILE__, __LINE__, "task %d ran twice", st->id);
	atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
	r = rnd();
	for (i = 0; st->depth < DEPTH && i < FAN; i++) {
		memset(&c, 0, sizeof(c));
		c.id = st->id * FAN + i + 1;
		c.depth = st->depth + 1;
		st->kid[i] = myriad_task_spawn(self, node_step, &c, sizeof(c),
					       0, NULL);
		REQUIRE(st->kid[i], "spawn");
		/* Spawning while a thief may take the stack over. */
		if (r % 16 == 5 || r % 16 == 6)
			spin_us((unsigned)((r >> 8) % 1001));
	}
	/* After spawning: the children wait on this worker's stack. */
	switch (r % 16) {
	case 0:
	case 1:
	case 2:
		usleep((useconds_t)((r >> 8) % 2001));
		break;
	case 3:
	case 4:
		spin_us((unsigned)((r >> 8) % 2001));
		break;
	default:
		break;
	}
	if (st->depth < DEPTH) {
		MYRIAD_JOIN(st, self);
		for (i = 0; i < FAN; i++) {
			CHECK_EQ(myriad_task_status(st->kid[i]), 0);
			sum += myriad_task_result(st->kid[i]);
		}
	}
	myriad_task_set_result(self, sum);
	MYRIAD_END(st);
}

int main(int argc, char **argv)
{
	unsigned workers;
	int64_t rounds, i, res, takeovers;
	struct node st;
	int j;

	t_name = "sched/takeover_stress";
	workers = t_parse_workers(argc, argv);
	t_watchdog(100 * T_SLOW);
	atomic_store(&seed, (uint64_t)myriad_now_ns());
	rt = t_rt_new(workers);
	rounds = t_scaled_min(300, 150);
	for (i = 0; i < rounds; i++) {
		for (j = 0; j < NODES; j++)
			atomic_store(&ran[j], 0);
		atomic_store(&total, 0);
		memset(&st, 0, sizeof(st));
		res = 0;
		CHECK_EQ(t_run(rt, node_step, &st, sizeof(st), &res, "round"),
			 0);
		CHECK_EQ(res, NODES);
		CHECK_EQ(atomic_load(&total), NODES);
		for (j = 0; j < NODES; j++)
			if (atomic_load(&ran[j]) != 1)
				t_failf(__FILE__, __LINE__,
					"round %" PRId64 ": task %d ran %d "
					"times",
					i, j, atomic_load(&ran[j]));
		if (atomic_load(&t_failures))
			break;
	}
	takeovers = t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS);
	printf("%" PRId64 " rounds of %d tasks, %" PRId64 " takeovers\n",
	       rounds, NODES, takeovers);
	t_rt_done(rt);
	return t_result();
}
