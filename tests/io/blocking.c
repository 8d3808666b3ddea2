/* SPDX-License-Identifier: MIT */
/*
 * tests/io/blocking.c: myriad_io_blocking runs functions on the pool
 * (sleeps, getaddrinfo) many at once, never on a worker, not at all for a
 * cancelled task, and keeps the state of a task that finishes while its
 * function runs.
 *   blocking [--workers N]
 */
#include <netdb.h>
#include <sys/socket.h>

#include "helpers.h"

static myriad_rt_t *rt;

/* ---- the blocking pool ---- */

static _Atomic int fn_running, fn_max, fn_runs, fn_on_worker;
/* The meeting of test_blocking's calls: over once two met, or given up. */
static _Atomic int meet_over;

struct sleep_arg {
	int id, ms;
	int meet;     /* wait (a while) for another call to run beside it */
	int64_t *out; /* where to write when done (in a task's state) */
};

static int64_t sleep_fn(void *p)
{
	struct sleep_arg *a = p;
	int n = atomic_fetch_add(&fn_running, 1) + 1, m;
	double end = t_now() + 20.0 * T_SLOW;

	m = atomic_load(&fn_max);
	while (n > m && !atomic_compare_exchange_weak(&fn_max, &m, n))
		;
	if (myriad_current_worker() != -1 || myriad_current_rt() != NULL)
		atomic_fetch_add(&fn_on_worker, 1);
	/*
	 * The pool runs queued calls on several threads at once, however
	 * slowly they start: a call waits until another one runs beside it
	 * (fn_max >= 2), so the check of fn_max does not depend on when the
	 * pool's threads get a CPU. A pool of one thread never meets: the
	 * first call gives up after its wait, and the check fails.
	 */
	while (a->meet && !atomic_load(&meet_over)) {
		if (atomic_load(&fn_max) >= 2 || t_now() > end)
			atomic_store(&meet_over, 1);
		else
			t_sleep_ms(1);
	}
	t_sleep_ms((unsigned)a->ms);
	if (a->out)
		*a->out = a->id;
	atomic_fetch_sub(&fn_running, 1);
	atomic_fetch_add(&fn_runs, 1);
	return (int64_t)a->id * 3 + 1;
}

struct blocker {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	struct sleep_arg arg;
	int64_t out;
	int quit;
};

static int blocker_step(myriad_task_t *self, void *p)
{
	struct blocker *st = p;
	int64_t r;

	MYRIAD_BEGIN(st);
	st->arg.out = &st->out;
	if (st->quit) {
		/* Finish while fn runs: the state must outlive it. */
		r = myriad_io_blocking(self, &st->op, sleep_fn, &st->arg);
		CHECK_ERR(r, -EAGAIN);
		return MYRIAD_DONE;
	}
	MYRIAD_IO(st, r, myriad_io_blocking(self, &st->op, sleep_fn, &st->arg));
	CHECK_EQ(r, (int64_t)st->arg.id * 3 + 1);
	CHECK_EQ(st->out, st->arg.id);
	MYRIAD_END(st);
}

/* getaddrinfo on the pool: the same answer as on this thread. */
struct gai_arg {
	int rc, n4, n6;
};

static int64_t gai_fn(void *p)
{
	struct gai_arg *a = p;
	struct addrinfo hints, *res = NULL, *ai;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	a->rc = getaddrinfo("localhost", "80", &hints, &res);
	a->n4 = a->n6 = 0;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			a->n4++;
		else if (ai->ai_family == AF_INET6)
			a->n6++;
	}
	if (res)
		freeaddrinfo(res);
	return 1000 + a->rc;
}

static struct gai_arg gai_here;

struct gai_task {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	struct gai_arg a;
};

static int gai_step(myriad_task_t *self, void *p)
{
	struct gai_task *st = p;
	int64_t r;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, r, myriad_io_blocking(self, &st->op, gai_fn, &st->a));
	CHECK_EQ(r, 1000 + gai_here.rc);
	CHECK_EQ(st->a.rc, gai_here.rc);
	CHECK_EQ(st->a.n4, gai_here.n4);
	CHECK_EQ(st->a.n6, gai_here.n6);
	MYRIAD_END(st);
}

struct blk_root {
	MYRIAD_CORO_FIELD;
	int n, ngai;
};

static int blk_root_step(myriad_task_t *self, void *p)
{
	struct blk_root *st = p;
	struct blocker b;
	struct gai_task g;
	int i;

	MYRIAD_BEGIN(st);
	for (i = 0; i < st->n; i++) {
		memset(&b, 0, sizeof(b));
		b.arg.id = i;
		b.arg.ms = 10;
		b.arg.meet = !getenv("MYRIAD_OFFLOAD_THREADS");
		REQUIRE(myriad_task_spawn(self, blocker_step, &b, sizeof(b), 0,
					  NULL),
			"spawn");
	}
	for (i = 0; i < st->ngai; i++) {
		memset(&g, 0, sizeof(g));
		REQUIRE(myriad_task_spawn(self, gai_step, &g, sizeof(g), 0,
					  NULL),
			"spawn");
	}
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

/* Cancelled first: the function never runs. */
struct blk_cancelled {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	struct sleep_arg arg;
};

static int blk_cancelled_step(myriad_task_t *self, void *p)
{
	struct blk_cancelled *st = p;
	int64_t r;

	MYRIAD_BEGIN(st);
	CHECK_EQ(myriad_task_cancel(self), 0);
	MYRIAD_IO(st, r, myriad_io_blocking(self, &st->op, sleep_fn, &st->arg));
	CHECK_ERR(r, -ECANCELED);
	MYRIAD_END(st);
}

static int quitters_gone(void *p)
{
	return atomic_load(&fn_runs) == *(int *)p &&
	       myriad_rt_tasks_live(rt) == 0;
}

static void test_blocking(void)
{
	struct blk_root r = { .n = (int)t_scaled_min(64, 16), .ngai = 4 };
	struct blk_cancelled c;
	struct blocker q;
	struct addrinfo hints, *res = NULL, *ai;
	int i, runs, want;
	double t0;

	t_phase("blocking pool");
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	gai_here.rc = getaddrinfo("localhost", "80", &hints, &res);
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			gai_here.n4++;
		else if (ai->ai_family == AF_INET6)
			gai_here.n6++;
	}
	if (res)
		freeaddrinfo(res);

	t0 = t_now();
	CHECK_EQ(t_run(rt, blk_root_step, &r, sizeof(r), NULL, "blocking"), 0);
	printf("files: %d 10 ms calls on the pool in %.0f ms, at most %d at "
	       "once\n",
	       r.n, (t_now() - t0) * 1e3, atomic_load(&fn_max));
	CHECK_EQ(atomic_load(&fn_runs), r.n);
	CHECK_EQ(atomic_load(&fn_on_worker), 0);
	if (!getenv("MYRIAD_OFFLOAD_THREADS"))
		CHECK(atomic_load(&fn_max) >= 2,
		      "the pool ran one call at a time");

	t_phase("blocking, cancelled first");
	memset(&c, 0, sizeof(c));
	runs = atomic_load(&fn_runs);
	CHECK_ERR(t_run(rt, blk_cancelled_step, &c, sizeof(c), NULL,
			"cancelled blocker"),
		  -ECANCELED);
	CHECK_EQ(atomic_load(&fn_runs), runs);

	t_phase("blocking, the task finishes first");
	want = runs + 8;
	for (i = 0; i < 8; i++) {
		memset(&q, 0, sizeof(q));
		q.quit = 1;
		q.arg.id = i;
		q.arg.ms = 30;
		REQUIRE(myriad_rt_spawn(rt, blocker_step, &q, sizeof(q),
					NULL) == 0,
			"spawn");
	}
	CHECK(t_wait_until(quitters_gone, &want, 20),
	      "%d of %d calls ran, %lld tasks live", atomic_load(&fn_runs),
	      want, (long long)myriad_rt_tasks_live(rt));
}

int main(int argc, char **argv)
{
	unsigned workers;

	t_name = "blocking";
	workers = t_parse_workers(argc, argv);
	t_watchdog(60);
	rt = t_rt_new(workers);
	test_blocking();
	t_rt_done(rt);
	return t_result();
}
