/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/takeover.c: a step that spawns children and then blocks its
 * worker (usleep, a blocking read of a pipe) or computes for long: the
 * children, small fork-join trees, finish while the step still blocks,
 * also when every other worker slept before it blocked (the monitor finds
 * the step, a woken worker takes the spawn stack over: sched/sysmon.c,
 * sched/queue.c:6-11). What the monitor guarantees is that such children
 * run before the step returns, however long that takes; not how soon. So
 * where a takeover is possible the step blocks until its children have
 * finished (the watchdog ends a run where they never do), and the test
 * checks that they finished inside the block and that a takeover was
 * counted. A fib run checks that takeovers of short steps (the monitor
 * may take one over when its thread slept in the kernel on a loaded
 * machine: a sanitizer's lock, a page fault) lose and repeat nothing.
 *   takeover [--workers N]
 */
#include <linux/membarrier.h>
#include <sys/syscall.h>

#include "helpers.h"
#include "sched/sched.h"

#define KIDS 8
/* How long a step blocks where no takeover can happen (one worker). */
#define BLOCK_MS (200 * T_SLOW)

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
/* The root's copy of its state is gone once it finished: time it here. */
static _Atomic int64_t blocked_at, unblocked_at;
/* Set by main: a takeover is possible, so the root blocks until its kids
 * have finished rather than for BLOCK_MS. */
static bool wait_for_kids;

static bool kids_done(void)
{
	int i;

	for (i = 0; i < KIDS; i++)
		if (!atomic_load(&kid_done_ns[i]))
			return false;
	return true;
}

/* The block lasts until the kids finished, or BLOCK_MS without takeover. */
static bool block_over(int64_t since_ns)
{
	if (wait_for_kids)
		return kids_done();
	return myriad_now_ns() - since_ns >= BLOCK_MS * 1000000ll;
}

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
	atomic_store(&blocked_at, st->block_ns);
	switch (st->how) {
	case BY_SLEEP:
		/* Asleep in the kernel, a millisecond at a time. */
		while (!block_over(st->block_ns))
			usleep(1000);
		break;
	case BY_READ:
		/* The writer writes once the block is over. */
		CHECK_EQ(read(st->fd, &byte, 1), 1);
		break;
	case BY_SPIN:
		while (!block_over(st->block_ns))
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

	while (!atomic_load(&blocked_at))
		t_sleep_ms(1);
	while (!block_over(atomic_load(&blocked_at)))
		t_sleep_ms(1);
	if (write(wr->fd, "x", 1) != 1)
		t_failf(__FILE__, __LINE__, "write to the pipe");
	return NULL;
}

static bool takeover_possible(void)
{
	long q = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	return nworkers >= 2 && q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED);
}

static int timed_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	int r = root_step(self, p);

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
	for (i = 0; i < KIDS; i++)
		atomic_store(&kid_done_ns[i], 0);
	atomic_store(&tree_calls, 0);
	atomic_store(&blocked_at, 0);
	atomic_store(&unblocked_at, 0);
	if (how == BY_READ) {
		REQUIRE(pipe(fds) == 0, "pipe");
		st.fd = fds[0];
		wr.fd = fds[1];
		REQUIRE(pthread_create(&thr, NULL, write_later, &wr) == 0,
			"thread");
	}
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
	if (!wait_for_kids)
		return;
	CHECK(last <= atomic_load(&unblocked_at),
	      "%s: the children finished %.1f ms after the step stopped "
	      "blocking, want before",
	      how_name[how], (double)(last - atomic_load(&unblocked_at)) / 1e6);
	CHECK(t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS) > before,
	      "%s: no takeover counted", how_name[how]);
}

/* ---- fib: short steps; a takeover loses nothing ---- */

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
	/*
	 * Not asserted to be zero: the monitor takes over a step whose
	 * thread slept in the kernel for STUCK_NS (sched/sysmon.c:2), and
	 * under a sanitizer on a loaded machine a fib step can (its lock, a
	 * page fault). The results above are what must hold either way.
	 */
	printf("fib: %" PRId64 " takeovers of short steps\n",
	       t_counter_sum(rt, MYRIAD_CTR_TAKEOVERS) - before);
}

int main(int argc, char **argv)
{
	t_name = "sched/takeover";
	nworkers = t_parse_workers(argc, argv);
	t_watchdog(120 * T_SLOW);
	rt = t_rt_new(nworkers);
	wait_for_kids = takeover_possible();
	test_fib();
	test_timed(BY_SLEEP);
	test_timed(BY_READ);
	test_timed(BY_SPIN);
	test_fib();
	t_rt_done(rt);
	return t_result();
}
