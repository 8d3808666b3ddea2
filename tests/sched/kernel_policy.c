/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/kernel_policy.c: the kernel-aware policy and the scheduler
 * signals in the runtime: with myriad_policy_kernel the signals are open
 * (eBPF as root, /proc otherwise, never none), fork-join results stay
 * exact, the per-worker signals move, and a step that sleeps 50 ms in the
 * kernel is reported as a block of that task and that step function for
 * about 50 ms. With --proc the /proc source is forced (MYRIAD_SIGNALS).
 */
#include "helpers.h"

static int sleeper(myriad_task_t *self, void *p)
{
	(void)p;
	*(myriad_task_t **)myriad_task_state(self) = self;
	usleep(50000); /* blocks its worker in the kernel */
	return MYRIAD_DONE;
}

int main(int argc, char **argv)
{
	unsigned workers, w;
	struct myriad_rt_opts o = { .sz = sizeof(o) };
	struct t_fib root = { 0 };
	myriad_rt_t *rt;
	const char *why = NULL;
	int64_t res = 0;
	int err, src, i, k, found = 0;
	bool proc = false;

	t_name = "sched/kernel_policy";
	/* --proc is ours; the rest is the helpers' (--workers N). */
	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--proc")) {
			proc = true;
			memmove(&argv[i], &argv[i + 1],
				(size_t)(argc - i) * sizeof(*argv));
			argc--;
			break;
		}
	workers = t_parse_workers(argc, argv);
	if (proc)
		setenv("MYRIAD_SIGNALS", "proc", 1);
	t_watchdog(60);
	o.workers = workers;
	o.policy = &myriad_policy_kernel;
	rt = myriad_rt_create(&o, &err);
	REQUIRE(rt, "myriad_rt_create: %d", err);

	src = myriad_rt_signals_source(rt, &why);
	CHECK(src == MYRIAD_SIG_BPF || src == MYRIAD_SIG_PROC,
	      "the kernel policy runs without signals: %d (%s)", src, why);
	if (proc)
		CHECK_EQ(src, MYRIAD_SIG_PROC);
	else if (geteuid() == 0 && src != MYRIAD_SIG_BPF)
		printf("%s: note: eBPF did not load as root: %s\n", t_name,
		       why);
	printf("%s: source %s%s%s\n", t_name,
	       src == MYRIAD_SIG_BPF ? "eBPF" : "/proc", *why ? ": " : "", why);

	/* Fork-join stays exact under the policy's placement. */
	root.n = (int)t_scaled_min(24, 16);
	t_phase("fib");
	CHECK_EQ(myriad_rt_block_on(rt, t_fib_step, &root, sizeof(root), &res),
		 0);
	{
		int64_t a = 0, b = 1, t;

		for (i = 0; i < root.n; i++) {
			t = a + b;
			a = b;
			b = t;
		}
		CHECK_EQ(res, a);
	}

	/* The signals move: time on CPU was counted for the workers. */
	{
		uint64_t on = 0;
		struct myriad_worker_signals s;

		/* /proc: the next poll (10 ms period) counts the fib. */
		for (i = 0; i < 50 && !on; i++) {
			for (w = 0; w < workers; w++) {
				CHECK_EQ(myriad_rt_signals(rt, w, &s), 0);
				on += s.oncpu_ns;
			}
			if (!on)
				t_sleep_ms(10);
		}
		CHECK(on > 0, "no time on CPU counted");
	}

	/* A blocking step is reported with its task, step and duration. */
	t_phase("block");
	{
		myriad_handle_t *h;
		myriad_task_t *task;
		struct myriad_block b[16];
		uint64_t best = 0;
		int tries;

		for (tries = 0; tries < 3 && !found; tries++) {
			CHECK_EQ(myriad_rt_spawn(rt, sleeper, NULL,
						 sizeof(task), &h),
				 0);
			task = h;
			CHECK_EQ(t_join(h, NULL, "sleeper"), 0);
			/* /proc sees blocks at its period: give it a few. */
			for (i = 0; i < 50 && !found; i++) {
				t_sleep_ms(20);
				for (w = 0; w < workers && !found; w++) {
					k = myriad_rt_blocks(rt, w, b, 16);
					CHECK(k >= 0, "myriad_rt_blocks: %d",
					      k);
					/*
					 * The step may block more than once
					 * (a sanitizer's lock, a page fault
					 * under load): its longest block is
					 * the sleep.
					 */
					while (k-- > 0)
						if (b[k].task == task &&
						    b[k].step ==
							    (const void *)
								    sleeper &&
						    b[k].blocked_ns > best)
							best = b[k].blocked_ns;
					if (best >= 30000000ull) {
						found = 1;
						CHECK(best < 2000000000ull,
						      "blocked %.1f ms, slept 50",
						      best / 1e6);
						printf("%s: block of %.1f ms "
						       "reported on worker %u\n",
						       t_name, best / 1e6, w);
					}
				}
			}
			myriad_handle_release(h);
			if (!found) {
				/* Say what was seen before trying again. */
				for (w = 0; w < workers; w++) {
					k = myriad_rt_blocks(rt, w, b, 16);
					fprintf(stderr,
						"%s: try %d: worker %u: %d blocks%s\n",
						t_name, tries, w, k,
						k > 0 ? ", newest:" : "");
					for (i = 0; i < k && i < 3; i++)
						fprintf(stderr,
							"  task %p step %p %.1f ms\n",
							b[i].task, b[i].step,
							b[i].blocked_ns / 1e6);
				}
			}
		}
		CHECK(found, "the 50 ms sleep in a step was not reported");
	}
	CHECK_EQ(myriad_rt_destroy(rt), 0);
	return t_result();
}
