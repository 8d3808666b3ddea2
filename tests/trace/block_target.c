/* SPDX-License-Identifier: MIT */
/*
 * tests/trace/block_target.c: a myriad process for myriad-trace's tests:
 * on 2 workers, a task whose step sleeps 50 ms (it blocks its worker in
 * the kernel) and one whose step computes for about a millisecond (it
 * never blocks). Prints "ready" once both run; ends, cancelling both and
 * destroying the runtime, when its standard input closes.
 */
#include <sys/prctl.h>

#include "helpers.h"

#define SLEEP_MS 50

static _Atomic int started;

/* Named in the tests: keep it a function of its own. */
__attribute__((noinline)) static int step_sleeps(myriad_task_t *self,
						 void *state)
{
	struct timespec ts = { 0, SLEEP_MS * 1000000L };

	(void)state;
	atomic_fetch_or(&started, 1);
	if (myriad_task_cancelled(self))
		return MYRIAD_DONE;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return MYRIAD_YIELD;
}

__attribute__((noinline)) static int step_burns(myriad_task_t *self,
						void *state)
{
	volatile uint64_t x = 0;
	double end = t_now() + 0.001;

	(void)state;
	atomic_fetch_or(&started, 2);
	if (myriad_task_cancelled(self))
		return MYRIAD_DONE;
	while (t_now() < end)
		for (unsigned i = 0; i < 1000; i++)
			x = x + i;
	return MYRIAD_YIELD;
}

int main(void)
{
	struct myriad_rt_opts o = { .sz = sizeof(o), .workers = 2 };
	myriad_handle_t *h[2] = { NULL, NULL };
	myriad_rt_t *rt;
	char buf[64];
	int err = 0, i;

	t_name = "trace/block_target";
	/* If the test dies, so does its target. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rt = myriad_rt_create(&o, &err);
	REQUIRE(rt, "myriad_rt_create: %s", strerror(-err));
	err = myriad_rt_spawn(rt, step_sleeps, NULL, 0, &h[0]);
	REQUIRE(err == 0, "spawn: %s", strerror(-err));
	err = myriad_rt_spawn(rt, step_burns, NULL, 0, &h[1]);
	REQUIRE(err == 0, "spawn: %s", strerror(-err));
	while (atomic_load(&started) != 3)
		t_sleep_ms(1);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	/* The reader stops at "ready": nothing more goes to its pipe. */
	if (!freopen("/dev/null", "w", stdout))
		return T_FAIL;
	while (read(0, buf, sizeof(buf)) > 0)
		;
	for (i = 0; i < 2; i++) {
		int64_t r;

		myriad_handle_cancel(h[i]);
		err = myriad_handle_join(h[i], &r, 10 * 1000000000ll);
		CHECK(err == 0 || err == -ECANCELED, "join %d: %s", i,
		      strerror(-err));
		myriad_handle_release(h[i]);
	}
	CHECK(myriad_rt_destroy(rt) == 0, "myriad_rt_destroy");
	return t_result();
}
