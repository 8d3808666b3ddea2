/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/shutdown.c: shutdown and destroy with thousands of tasks
 * still queued (yielding) or pending forever (on channels): no step runs
 * after they return, spawns and wakes fail with -ESHUTDOWN, joins blocked
 * on a task that never ends return -ESHUTDOWN, destroy waits for handles
 * (-EBUSY), and create/destroy cycles leak no fds or threads.
 *   shutdown [--workers N]
 */
#include <dirent.h>
#include <pthread.h>

#include "helpers.h"

#define YIELDERS 2000
#define WAITERS 2000
#define NCH 4

static _Atomic int64_t steps; /* every step of every task */
static _Atomic int registered;
static myriad_waker_t some_waker;
static _Atomic int have_waker;

static int yield_step(myriad_task_t *self, void *p)
{
	atomic_fetch_add(&steps, 1);
	return MYRIAD_YIELD;
}

struct waiter {
	myriad_chan_t *ch;
	int reg;
	int64_t v;
};

static int wait_step(myriad_task_t *self, void *p)
{
	struct waiter *st = p;
	int rc;

	atomic_fetch_add(&steps, 1);
	rc = myriad_chan_recv(self, st->ch, &st->v);
	if (rc == -EAGAIN) {
		if (!st->reg) {
			st->reg = 1;
			if (!atomic_load(&have_waker)) {
				/* One waker, to try after shutdown. */
				if (!atomic_exchange(&have_waker, 2)) {
					some_waker = myriad_task_waker(self);
					atomic_store(&have_waker, 1);
				}
			}
			atomic_fetch_add(&registered, 1);
		}
		return MYRIAD_PENDING;
	}
	t_failf(__FILE__, __LINE__, "a waiter that is never sent to got %d",
		rc);
	return MYRIAD_DONE;
}

static int noop_step(myriad_task_t *self, void *p)
{
	atomic_fetch_add(&steps, 1);
	return MYRIAD_DONE;
}

static int all_registered(void *p)
{
	return atomic_load(&registered) == *(int *)p &&
	       atomic_load(&have_waker) == 1;
}

/* Steps do not move any more (checked over a short while). */
static void check_no_steps(int64_t before, const char *when)
{
	int i;

	for (i = 0; i < 5; i++) {
		t_sleep_ms(5);
		if (atomic_load(&steps) != before) {
			t_failf(__FILE__, __LINE__,
				"a step ran after %s returned: %" PRId64
				" steps then, %" PRId64 " now",
				when, before, atomic_load(&steps));
			return;
		}
	}
}

/* Spawn the crowd: yielders and waiters, detached. */
static void populate(myriad_rt_t *rt, myriad_chan_t **ch, int ny, int nw)
{
	int i, err, want;

	atomic_store(&registered, 0);
	atomic_store(&have_waker, 0);
	for (i = 0; i < NCH; i++) {
		ch[i] = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
		REQUIRE(ch[i], "chan_create: %d", err);
	}
	for (i = 0; i < ny; i++)
		REQUIRE(myriad_rt_spawn(rt, yield_step, NULL, 0, NULL) == 0,
			"spawn yielder");
	for (i = 0; i < nw; i++) {
		struct waiter w = { .ch = ch[i % NCH] };

		REQUIRE(myriad_rt_spawn(rt, wait_step, &w, sizeof(w), NULL) ==
				0,
			"spawn waiter");
	}
	want = nw;
	REQUIRE(t_wait_until(all_registered, &want, 30),
		"all %d waiters registered: %d", nw, atomic_load(&registered));
}

static void test_shutdown_then_destroy(unsigned workers)
{
	myriad_rt_t *rt = t_rt_new(workers);
	myriad_chan_t *ch[NCH];
	myriad_handle_t *h, *hdone;
	int64_t s, live;
	int i, r;

	t_phase("shutdown with tasks queued and pending");
	REQUIRE(myriad_rt_spawn(rt, noop_step, NULL, 0, &hdone) == 0, "spawn");
	CHECK_EQ(t_join(hdone, NULL, "noop"), 0);
	populate(rt, ch, YIELDERS, WAITERS);
	REQUIRE(myriad_rt_spawn(rt, yield_step, NULL, 0, &h) == 0, "spawn");
	for (i = 0; i < NCH; i++)
		CHECK_ERR(myriad_chan_destroy(ch[i]), -EBUSY);

	CHECK_EQ(myriad_rt_shutdown(rt), 0);
	s = atomic_load(&steps);
	check_no_steps(s, "myriad_rt_shutdown");
	CHECK_EQ(myriad_rt_shutdown(rt), 0); /* idempotent */

	/* Exact once idle: every task still held, plus the finished one. */
	live = myriad_rt_tasks_live(rt);
	CHECK(live == YIELDERS + WAITERS + 2,
	      "tasks_live after shutdown: expected %d, got %" PRId64,
	      YIELDERS + WAITERS + 2, live);

	CHECK_ERR(t_join(h, NULL, "yielder after shutdown"), -ESHUTDOWN);
	CHECK_EQ(t_join(hdone, NULL, "finished before shutdown"), 0);
	CHECK_ERR(myriad_rt_spawn(rt, noop_step, NULL, 0, NULL), -ESHUTDOWN);
	CHECK_ERR(myriad_waker_wake(some_waker), -ESHUTDOWN);
	/* After shutdown, channels can go even with registered waiters. */
	for (i = 0; i < NCH; i++)
		CHECK_EQ(myriad_chan_destroy(ch[i]), 0);

	/* Handles outstanding: -EBUSY, and still nothing runs. */
	CHECK_ERR(myriad_rt_destroy(rt), -EBUSY);
	CHECK_EQ(myriad_handle_release(hdone), 0);
	CHECK_ERR(myriad_rt_destroy(rt), -EBUSY);
	check_no_steps(s, "myriad_rt_destroy (-EBUSY)");
	CHECK_EQ(myriad_handle_release(h), 0);
	r = myriad_rt_destroy(rt);
	CHECK_EQ(r, 0);
	check_no_steps(s, "myriad_rt_destroy");
}

/* Destroy straight away, with the workers busy. */
static void test_destroy_busy(unsigned workers)
{
	myriad_rt_t *rt = t_rt_new(workers);
	myriad_chan_t *ch[NCH];
	int64_t s;
	int i;

	t_phase("destroy with tasks running");
	populate(rt, ch, YIELDERS, WAITERS / 4);
	/* Channels first (documented), which needs the runtime stopped. */
	CHECK_EQ(myriad_rt_shutdown(rt), 0);
	for (i = 0; i < NCH; i++)
		CHECK_EQ(myriad_chan_destroy(ch[i]), 0);
	CHECK_EQ(myriad_rt_destroy(rt), 0);
	s = atomic_load(&steps);
	check_no_steps(s, "myriad_rt_destroy");

	/* No channels: destroy directly from a running state. */
	rt = t_rt_new(workers);
	for (i = 0; i < YIELDERS; i++)
		REQUIRE(myriad_rt_spawn(rt, yield_step, NULL, 0, NULL) == 0,
			"spawn");
	CHECK_EQ(myriad_rt_destroy(rt), 0);
	s = atomic_load(&steps);
	check_no_steps(s, "myriad_rt_destroy");
}

/* ---- joins blocked on a task that never ends ---- */

struct joiner {
	myriad_handle_t *h;
	int r;
};

static void *join_thread(void *p)
{
	struct joiner *j = p;

	j->r = myriad_handle_join(j->h, NULL, -1);
	return NULL;
}

static void test_join_shutdown(unsigned workers)
{
	myriad_rt_t *rt = t_rt_new(workers);
	myriad_chan_t *ch[NCH];
	struct joiner j[3];
	pthread_t th[3];
	myriad_handle_t *h;
	struct waiter w;
	int i, want = 1;

	t_phase("join blocked forever, then shutdown");
	atomic_store(&registered, 0);
	atomic_store(&have_waker, 0);
	for (i = 0; i < NCH; i++)
		ch[i] = myriad_chan_create(rt, sizeof(int64_t), 1, NULL);
	memset(&w, 0, sizeof(w));
	w.ch = ch[0];
	REQUIRE(myriad_rt_spawn(rt, wait_step, &w, sizeof(w), &h) == 0,
		"spawn");
	REQUIRE(t_wait_until(all_registered, &want, 20), "registered");
	/* Not finished: a timed join times out. */
	CHECK_ERR(myriad_handle_join(h, NULL, 1000000), -ETIMEDOUT);
	for (i = 0; i < 3; i++) {
		j[i].h = h;
		j[i].r = 1;
		pthread_create(&th[i], NULL, join_thread, &j[i]);
	}
	t_sleep_ms(30); /* let them block (either way they must return) */
	CHECK_EQ(myriad_rt_shutdown(rt), 0);
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CHECK_ERR(j[i].r, -ESHUTDOWN);
	}
	CHECK_ERR(myriad_handle_join(h, NULL, -1), -ESHUTDOWN);
	CHECK_EQ(myriad_handle_release(h), 0);
	for (i = 0; i < NCH; i++)
		CHECK_EQ(myriad_chan_destroy(ch[i]), 0);
	CHECK_EQ(myriad_rt_destroy(rt), 0);
}

/* ---- create/destroy cycles ---- */

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int threads_back(void *p)
{
	return count_dir("/proc/self/task") <= *(int *)p;
}

static void test_cycles(unsigned workers)
{
	int fds0, fds1, thr0, thr1, i, j, n = (int)t_scaled_min(100, 20);
	myriad_rt_t *rt;
	myriad_handle_t *h;

	t_phase("create/destroy cycles");
	/* One cycle first: lazily created library state is not a leak. */
	rt = t_rt_new(workers);
	CHECK_EQ(myriad_rt_destroy(rt), 0);
	fds0 = count_dir("/proc/self/fd");
	thr0 = count_dir("/proc/self/task");
	for (i = 0; i < n; i++) {
		rt = t_rt_new(workers);
		for (j = 0; j < 50; j++)
			myriad_rt_spawn(rt, yield_step, NULL, 0, NULL);
		REQUIRE(myriad_rt_spawn(rt, noop_step, NULL, 0, &h) == 0,
			"spawn");
		CHECK_EQ(t_join(h, NULL, "cycle"), 0);
		CHECK_EQ(myriad_handle_release(h), 0);
		CHECK_EQ(myriad_rt_destroy(rt), 0);
	}
	fds1 = count_dir("/proc/self/fd");
	/*
	 * pthread_join() returns once the kernel cleared the thread's tid,
	 * which it does before it takes the thread out of /proc/self/task:
	 * a joined thread may still be listed for a moment (longer on a
	 * loaded machine). A leaked thread stays listed.
	 */
	t_wait_until(threads_back, &thr0, 20);
	thr1 = count_dir("/proc/self/task");
	CHECK(fds1 == fds0,
	      "open fds after %d create/destroy cycles: "
	      "expected %d, got %d",
	      n, fds0, fds1);
	CHECK(thr1 == thr0,
	      "threads after %d create/destroy cycles: "
	      "expected %d, got %d",
	      n, thr0, thr1);
}

int main(int argc, char **argv)
{
	unsigned workers;

	t_name = "shutdown";
	workers = t_parse_workers(argc, argv);
	t_watchdog(55);
	test_shutdown_then_destroy(workers);
	test_destroy_busy(workers);
	test_join_shutdown(workers);
	test_cycles(workers);
	return t_result();
}
