/* SPDX-License-Identifier: MIT */
/*
 * tests/api/coro.c: the coroutine macros (MYRIAD_BEGIN/END/YIELD/
 * WAIT_UNTIL/JOIN/SEND/RECV) in a multi-step pipeline of agents: a
 * producer sends 1..N, mappers square each value in a child task they
 * join and pass it on, a collector sums and then waits for an outside
 * thread's go before finishing. The results and the step counts are
 * checked.
 *   coro [--workers N]
 */
#include <pthread.h>

#include "helpers.h"

#define MAPPERS 4

static myriad_chan_t *in, *out;
static int64_t n_values;
static _Atomic int mappers_left;
static _Atomic int64_t mapper_steps, yields_done;

/* The collector publishes its waker, then waits for 'go'. */
static myriad_waker_t collector_waker;
static _Atomic int collector_waiting, go;

struct producer {
	MYRIAD_CORO_FIELD;
	int64_t i;
};

static int producer_step(myriad_task_t *self, void *p)
{
	struct producer *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 1; st->i <= n_values; st->i++) {
		MYRIAD_SEND(st, self, in, &st->i, rc);
		if (rc < 0) {
			t_failf(__FILE__, __LINE__, "producer: send %d", rc);
			break;
		}
		if (st->i % 100 == 0)
			MYRIAD_YIELD(st);
	}
	CHECK_EQ(myriad_chan_close(in), 0);
	myriad_task_set_result(self, st->i - 1);
	MYRIAD_END(st);
}

static int square_step(myriad_task_t *self, void *p)
{
	int64_t v = *(int64_t *)p;

	myriad_task_set_result(self, v * v);
	return MYRIAD_DONE;
}

struct mapper {
	MYRIAD_CORO_FIELD;
	int64_t v, sq, count;
	myriad_task_t *child;
	int yielded;
};

static int mapper_step(myriad_task_t *self, void *p)
{
	struct mapper *st = p;
	int rc;

	atomic_fetch_add(&mapper_steps, 1);
	MYRIAD_BEGIN(st);
	for (;;) {
		MYRIAD_RECV(st, self, in, &st->v, rc);
		if (rc == -EPIPE)
			break;
		CHECK_EQ(rc, 0);
		st->child = myriad_task_spawn(self, square_step, &st->v,
					      sizeof(st->v), 0, NULL);
		CHECK(st->child != NULL, "spawn");
		MYRIAD_JOIN(st, self);
		st->sq = myriad_task_result(st->child);
		CHECK_EQ(st->sq, st->v * st->v);
		/* A yield between a join and a send: state survives. */
		st->yielded = 1;
		MYRIAD_YIELD(st);
		CHECK_EQ(st->yielded, 1);
		atomic_fetch_add(&yields_done, 1);
		MYRIAD_SEND(st, self, out, &st->sq, rc);
		CHECK_EQ(rc, 0);
		st->count++;
	}
	if (atomic_fetch_sub(&mappers_left, 1) == 1)
		CHECK_EQ(myriad_chan_close(out), 0);
	myriad_task_set_result(self, st->count);
	MYRIAD_END(st);
}

struct collector {
	MYRIAD_CORO_FIELD;
	int64_t v, sum, n;
	int steps;
};

static int collector_step(myriad_task_t *self, void *p)
{
	struct collector *st = p;
	int rc;

	st->steps++;
	MYRIAD_BEGIN(st);
	for (;;) {
		MYRIAD_RECV(st, self, out, &st->v, rc);
		if (rc == -EPIPE)
			break;
		CHECK_EQ(rc, 0);
		st->sum += st->v;
		st->n++;
	}
	CHECK_EQ(st->n, n_values);
	collector_waker = myriad_task_waker(self);
	atomic_store_explicit(&collector_waiting, 1, memory_order_release);
	MYRIAD_WAIT_UNTIL(st, atomic_load(&go));
	myriad_task_set_result(self, st->sum);
	MYRIAD_END(st);
}

struct root {
	MYRIAD_CORO_FIELD;
	myriad_task_t *prod, *coll, *map[MAPPERS];
};

static int root_step(myriad_task_t *self, void *p)
{
	struct root *st = p;
	int64_t mapped = 0;
	int i;

	MYRIAD_BEGIN(st);
	st->coll = myriad_task_spawn(self, collector_step, NULL,
				     sizeof(struct collector), 0, NULL);
	for (i = 0; i < MAPPERS; i++)
		st->map[i] = myriad_task_spawn(self, mapper_step, NULL,
					       sizeof(struct mapper), 0, NULL);
	st->prod = myriad_task_spawn(self, producer_step, NULL,
				     sizeof(struct producer), 0, NULL);
	REQUIRE(st->coll && st->prod, "spawn");
	MYRIAD_JOIN(st, self);
	CHECK_EQ(myriad_task_result(st->prod), n_values);
	for (i = 0; i < MAPPERS; i++)
		mapped += myriad_task_result(st->map[i]);
	CHECK_EQ(mapped, n_values);
	myriad_task_set_result(self, myriad_task_result(st->coll));
	MYRIAD_END(st);
}

static int waiting(void *p)
{
	return atomic_load_explicit(&collector_waiting, memory_order_acquire);
}

int main(int argc, char **argv)
{
	struct root root = { 0 };
	myriad_handle_t *h;
	myriad_rt_t *rt;
	int64_t res = 0, want, n;
	int err, r;

	t_name = "coro";
	rt = t_rt_new(t_parse_workers(argc, argv));
	t_watchdog(55);
	n = n_values = t_scaled(20000);
	want = n * (n + 1) * (2 * n + 1) / 6;
	atomic_store(&mappers_left, MAPPERS);
	in = myriad_chan_create(rt, sizeof(int64_t), 16, &err);
	out = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
	REQUIRE(in && out, "chan_create");

	REQUIRE(myriad_rt_spawn(rt, root_step, &root, sizeof(root), &h) == 0,
		"spawn");
	/* The collector waits for 'go': the root cannot finish yet. */
	REQUIRE(t_wait_until(waiting, NULL, 40),
		"the collector got all values");
	CHECK_ERR(myriad_handle_join(h, &res, 1000000), -ETIMEDOUT);
	atomic_store(&go, 1);
	r = myriad_waker_wake(collector_waker);
	CHECK(r == 0 || r == 1, "wake: %d", r);
	CHECK_EQ(t_join(h, &res, "pipeline"), 0);
	CHECK(res == want,
	      "sum of squares 1..%" PRId64 ": expected %" PRId64
	      ", got %" PRId64,
	      n, want, res);
	CHECK_EQ(atomic_load(&yields_done), n);
	/* Every value costs a mapper at least a join and a yield resume. */
	CHECK(atomic_load(&mapper_steps) >= 2 * n,
	      "mapper steps: %" PRId64 " for %" PRId64 " values",
	      atomic_load(&mapper_steps), n);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(myriad_chan_destroy(in), 0);
	CHECK_EQ(myriad_chan_destroy(out), 0);
	t_rt_done(rt);
	return t_result();
}
