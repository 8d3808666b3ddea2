/* SPDX-License-Identifier: MIT */
/*
 * tests/io/wheel.c: the timing wheel against a brute-force model: random
 * inserts, removes and advances (small and huge jumps, far deadlines past
 * the top level), every node fires exactly once, never early, in the
 * advance where time first reaches it, and in deadline order.
 *   wheel [--ops N] [--seed S]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/wheel.h"

#define NODES 4096

static struct wheel W;
static struct wheel_node nodes[NODES];
static int state[NODES]; /* 0 idle, 1 armed */
static uint64_t deadline[NODES];
static uint64_t last_fired_when;
static int fired_now[NODES];
static int failures;

#define FAIL(...)                                       \
	do {                                            \
		fprintf(stderr, "wheel: " __VA_ARGS__); \
		fputc('\n', stderr);                    \
		if (++failures > 20)                    \
			exit(1);                        \
	} while (0)

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fire(struct wheel_node *n, void *ctx)
{
	uint64_t now = *(uint64_t *)ctx;
	int i = (int)(n - nodes);

	if (state[i] != 1)
		FAIL("node %d fired while not armed", i);
	if (deadline[i] > now)
		FAIL("node %d fired early: deadline %llu, now %llu", i,
		     (unsigned long long)deadline[i], (unsigned long long)now);
	if (wheel_when(n) < last_fired_when)
		FAIL("out of order: %llu after %llu",
		     (unsigned long long)wheel_when(n),
		     (unsigned long long)last_fired_when);
	last_fired_when = wheel_when(n);
	if ((n->when >> WHEEL_WHEN_BITS) != (uint64_t)(i & 0xffff))
		FAIL("node %d: the caller's high bits were changed", i);
	state[i] = 0;
	fired_now[i] = 1;
}

int main(int argc, char **argv)
{
	long ops = 2000000, k;
	uint64_t now = 1000, armed = 0;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--ops"))
			ops = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			rng = strtoull(argv[i + 1], NULL, 10) | 1;
	}
	if (getenv("MYRIAD_TEST_SCALE"))
		ops = (long)(ops * atof(getenv("MYRIAD_TEST_SCALE")));
	wheel_init(&W, now);
	for (k = 0; k < ops; k++) {
		unsigned r = (unsigned)(rnd() % 100);

		i = (int)(rnd() % NODES);
		if (r < 55 && state[i] == 0) {
			/* Deadlines from 1 tick to past the top level. */
			uint64_t span;

			switch (rnd() % 6) {
			case 0:
				span = 1 + rnd() % 64;
				break;
			case 1:
				span = 1 + rnd() % 4096;
				break;
			case 2:
				span = 1 + rnd() % 262144;
				break;
			case 3:
				span = 1 + rnd() % (1ull << 24);
				break;
			case 4:
				span = 1 + rnd() % (1ull << 36);
				break;
			default:
				span = (1ull << 36) + rnd() % (1ull << 38);
				break;
			}
			deadline[i] = now + span;
			nodes[i].when = deadline[i] | ((uint64_t)(i & 0xffff)
						       << WHEEL_WHEN_BITS);
			if (wheel_insert(&W, &nodes[i]) != 0)
				FAIL("insert of a future deadline refused");
			state[i] = 1;
			armed++;
		} else if (r < 70 && state[i] == 1) {
			if (!wheel_linked(&nodes[i]))
				FAIL("armed node %d not linked", i);
			wheel_remove(&W, &nodes[i]);
			state[i] = 0;
			armed--;
		} else if (r < 100) {
			uint64_t to, next = wheel_next(&W), j, min = UINT64_MAX;
			size_t n;

			/* Advance by small steps, to the next deadline, or far. */
			switch (rnd() % 4) {
			case 0:
				to = now + rnd() % 3;
				break;
			case 1:
				to = now + rnd() % 5000;
				break;
			case 2:
				to = next == UINT64_MAX ? now + 1 : next;
				break;
			default:
				to = now + rnd() % (1ull << 40);
				break;
			}
			/* Deadlines have 48 bits (8,900 years of ms): stay below. */
			if (to > (1ull << 46))
				to = now + 1;
			for (j = 0; j < NODES; j++)
				if (state[j] == 1 && deadline[j] < min)
					min = deadline[j];
			if (next > min)
				FAIL("wheel_next %llu after the earliest deadline %llu",
				     (unsigned long long)next,
				     (unsigned long long)min);
			memset(fired_now, 0, sizeof(fired_now));
			last_fired_when = 0;
			n = wheel_advance(&W, to, fire, &to);
			for (j = 0; j < NODES; j++)
				if (state[j] == 1 && deadline[j] <= to)
					FAIL("node %llu due at %llu not fired by %llu",
					     (unsigned long long)j,
					     (unsigned long long)deadline[j],
					     (unsigned long long)to);
			armed -= n;
			now = to;
		}
		if (W.count != armed)
			FAIL("count %zu, expected %llu", W.count,
			     (unsigned long long)armed);
	}
	if (wheel_insert(&W, &(struct wheel_node){ .when = now }) != -ETIME)
		FAIL("a deadline at 'now' must be refused with -ETIME");
	if (failures)
		return 1;
	printf("wheel: %ld operations, all timers fired once, in order, never early\n",
	       ops);
	return 0;
}
