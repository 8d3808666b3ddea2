/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/takeover.c: a step that spawns children and then blocks its
 * worker (usleep, a blocking read of a pipe) or computes for long: the
 * children, small fork-join trees, finish long before the step returns,
 * also when every other worker slept before it blocked (the monitor finds
 * the step, a woken worker takes the spawn stack over: sched/sysmon.c,
 * queue.c steps 6-11). A pure fib run takes nothing over.
 *   takeover [--workers N]
 */
#include <linux/membarrier.h>
#include <sys/syscall.h>

#include "helpers.h"
#include "sched/sched.h"

#define KIDS 8
#define BLOCK_MS (200 * T_SLOW)
#define WITHIN_MS (100 * T_SLOW)

static myriad_rt_t *rt;
static unsigned nworkers;

enum how { BY_SLEEP, BY_READ, BY_SPIN };
static const char *const how_name[] = { "usleep", "read(pipe)", "CPU" };

/* ---- a child: a small fork-join tree, each call counted ---- */

static _Atomic int64_t tree_calls;

struct tree {
	MYRIAD_CORO_FIELD;
	int depth;
	int slot; /* the root's child number, or -1 below it */
	myriad_task_t *a, *b;
};

static _Atomic int64_t kid_done_ns[KIDS];

static int tree_step(myriad_task_t *self, void *p)
{
	struct tree *st = p;
	struct tree c;

	MYRIAD_BEGIN(st);
	atomic_fetch_add_explicit(&tree_calls, 1, memory_order_relaxed);
	if (st->depth > 0) {
		memset(&c, 0, sizeof(c));
		c.depth = st->depth - 1;
		c.slot = -1;
		st->a = myriad_task_spawn(self, tree_step, &c, sizeof(c), 0,
					  NULL);
		st->b = myriad_task_spawn(self, tree_step, &c, sizeof(c), 0,
					  NULL);
		REQUIRE(st->a && st->b, "spawn");
		MYRIAD_JOIN(st, self);
		myriad_task_set_result(self, 1 + myriad_task_result(st->a) +
						     myriad_task_result(st->b));
	} else {
		myriad_task_set_result(self, 1);
	}
	if (st->slot >= 0)
		atomic_store(&kid_done_ns[st->slot], myriad_now_ns());
	MYRIAD_END(st);
}

/* ---- the root: spawn, block, join ---- */

struct root {
	MYRIAD_CORO_FIELD;
	enum how how;
	int fd; /* BY_READ: the pipe's read end */
	int64_t block_ns, unblock_ns;
	myriad_task_t *kid[KIDS];
};

static int others_asleep(void *p)
{
	struct myriad_rt *r = p;

	return IDLE_UNPARKED(atomic_load(&r->idle.state)) <= 1;
}

static int root_step(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct tree c;
	int64_t i, sum = 0;
	char byte;

	MYRIAD_BEGIN(st);
	/* Every other worker asleep before the block begins. */
	CHECK(t_wait_until(others_asleep, (struct myriad_rt *)rt, 5),
	      "the other workers did not park");
	for (i = 0; i < KIDS; i++) {
		memset(&c, 0, sizeof(c));
		c.depth = 3;
		c.slot = (int)i;
		st->kid[i] = myriad_task_spawn(self, tree_step, &c, sizeof(c),
					       0, NULL);
		REQUIRE(st->kid[i], "spawn");
	}
	st->block_ns = myriad_now_ns();
	switch (st->how) {
	case BY_SLEEP:
		usleep(BLOCK_MS * 1000);
		break;
	case BY_READ:
		CHECK_EQ(read(st->fd, &byte, 1), 1);
		break;
	case BY_SPIN:
		while (myriad_now_ns() - st->block_ns < BLOCK_MS * 1000000ll)
			;
		break;
	}
	st->unblock_ns = myriad_now_ns();
	MYRIAD_JOIN(st, self);
	for (i = 0; i < KIDS; i++)
		sum += myriad_task_result(st->kid[i]);
	myriad_task_set_result(self, sum);
	MYRIAD_END(st);
}

struct writer {
	int fd;
};

static void *write_later(void *p)
{
	struct writer *wr = p;

	t_sleep_ms(BLOCK_MS);
	if (write(wr->fd, "x", 1) != 1)
		t_failf(__FILE__, __LINE__, "write to the pipe");
	return NULL;
}

static bool takeover_possible(void)
{
	long q = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	return nworkers >= 2 && q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED);
}

/* The root's copy of its state is gone once it finished: time it here. */
static _Atomic int64_t blocked_at, unblocked_at;

static int timed_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	int r = root_step(self, p);

	if (st->block_ns)
		atomic_store(&blocked_at, st->block_ns);
	if (st->unblock_ns)
		atomic_store(&unblocked_at, st->unblock_ns);
	return r;
}

static void test_timed(enum how how)
{
	struct root st;
	struct writer wr;
	pthread_t thr;
	int64_t res = 0, before, last = 0, i;
	int fds[2] = { -1, -1 };

	t_phase(how_name[how]);
	memset(&st, 0, sizeof(st));
	st.how = how;
	if (how == BY_READ) {
		REQUIRE(pipe(fds) == 0, "pipe");
		st.fd = fds[0];
		wr.fd = fds[1];
		REQUIRE(pthread_create(&thr, NULL, write_later, &wr) == 0,
			"thread");
	}
	for (i = 0; i < KIDS; i++)
		atomic_store(&kid_done_ns[i], 0);
	atomic_store(&tree_calls, 0);
	atomic_store(&blocked_at, 0);
	atomic_store(&unblocked_at, 0);
	before = t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS);
	CHECK_EQ(t_run(rt, timed_root, &st, sizeof(st), &res, how_name[how]),
		 0);
	CHECK_EQ(res, KIDS * 15);
	CHECK_EQ(atomic_load(&tree_calls), KIDS * 15);
	if (how == BY_READ) {
		pthread_join(thr, NULL);
		close(fds[0]);
		close(fds[1]);
	}
	for (i = 0; i < KIDS; i++) {
		int64_t d = atomic_load(&kid_done_ns[i]);

		CHECK(d > 0, "%s: child %" PRId64 " never finished",
		      how_name[how], i);
		if (d > last)
			last = d;
	}
	printf("%s: children done %.1f ms after the block began, which "
	       "lasted %.1f ms; takeovers %" PRId64 "\n",
	       how_name[how], (double)(last - atomic_load(&blocked_at)) / 1e6,
	       (double)(atomic_load(&unblocked_at) - atomic_load(&blocked_at)) /
		       1e6,
	       t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS) - before);
	if (!takeover_possible())
		return;
	CHECK(last - atomic_load(&blocked_at) < WITHIN_MS * 1000000ll,
	      "%s: the children finished %.1f ms after the step blocked, "
	      "want under %d ms",
	      how_name[how], (double)(last - atomic_load(&blocked_at)) / 1e6,
	      WITHIN_MS);
	CHECK(t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS) > before,
	      "%s: no takeover counted", how_name[how]);
}

/* ---- fib: short steps, nothing taken over ---- */

static void test_fib(void)
{
	struct t_fib st;
	int64_t res = 0, before;
	int i, n = T_TSAN ? 18 : 23;

	t_phase("fib");
	before = t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS);
	for (i = 0; i < 5; i++) {
		memset(&st, 0, sizeof(st));
		st.n = n;
		CHECK_EQ(t_run(rt, t_fib_step, &st, sizeof(st), &res, "fib"),
			 0);
		CHECK_EQ(res, n == 18 ? 2584 : 28657);
	}
	CHECK(t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS) == before,
	      "fib: %" PRId64 " takeovers of short steps, want none",
	      t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS) - before);
}

int main(int argc, char **argv)
{
	t_name = "sched/takeover";
	nworkers = t_parse_workers(argc, argv);
	t_watchdog(120 * T_SLOW);
	rt = t_rt_new(nworkers);
	test_fib();
	test_timed(BY_SLEEP);
	test_timed(BY_READ);
	test_timed(BY_SPIN);
	test_fib();
	t_rt_done(rt);
	return t_result();
}
