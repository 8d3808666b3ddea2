/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/kernel_policy.c: the kernel-aware policy and the scheduler
 * signals in the runtime: with myriad_policy_kernel the signals are open
 * (eBPF as root, /proc otherwise, never none), fork-join results stay
 * exact, the per-worker signals move, and a step that sleeps 50 ms in the
 * kernel is reported as a block of that task and that step function (with
 * eBPF: off its CPU inside the sleep, and back on after its end). With
 * --proc the /proc source is forced (MYRIAD_SIGNALS).
 */
#include "helpers.h"

#define SLEEP_NS 50000000ull
#define TRIES 64

/* One sleeper's run: its times (CLOCK_MONOTONIC, as the blocks' at_ns). */
struct
try {
	const void *task;
	uint64_t slept, woke;
};

static struct try tries[TRIES];

/* Blocks its worker in the kernel until 50 ms after it began. */
static int sleeper(myriad_task_t *self, void *p)
{
	struct try *t = *(struct try **)p;
	struct timespec until;
	uint64_t end;

	(void)self;
	t->slept = myriad_now_ns();
	end = t->slept + SLEEP_NS;
	until.tv_sec = (time_t)(end / 1000000000u);
	until.tv_nsec = (long)(end % 1000000000u);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL))
		;
	t->woke = myriad_now_ns();
	return MYRIAD_DONE;
}

/* Any time on CPU counted for any worker (/proc: at its next poll). */
static int some_oncpu(void *p)
{
	myriad_rt_t *rt = p;
	struct myriad_worker_signals s;
	int w, n = myriad_rt_workers(rt);

	for (w = 0; w < n; w++)
		if (myriad_rt_signals(rt, (unsigned)w, &s) == 0 && s.oncpu_ns)
			return 1;
	return 0;
}

/*
 * Does block 'b' (read at 'now') belong to try 'k', as its source can
 * guarantee? eBPF records the sleep itself: it went off its CPU after
 * 'slept', back on after the timer (at 'slept' + 50 ms or later) and before
 * 'woke'. /proc records a block when a poll saw the worker asleep in the
 * step: its task and step, a block that ended before it was read; how
 * long depends on when the polls came, so its length is not checked here
 * (tests/bpf/proc.c checks it against polls it makes itself).
 */
static bool block_of(const struct myriad_block *b, const struct try *t,
		     uint64_t now, bool exact)
{
	if (b->task != t->task || b->step != (const void *)sleeper)
		return false;
	if (!exact)
		return b->blocked_ns > 0 && b->at_ns + b->blocked_ns <= now;
	return b->at_ns >= t->slept && b->at_ns + b->blocked_ns <= t->woke &&
	       b->at_ns + b->blocked_ns >= t->slept + SLEEP_NS;
}

/*
 * Sleepers until one's block is reported. With eBPF the first is (the
 * probe records it before the step returns). With /proc a block is seen
 * only if a poll (10 ms period) came while the worker slept, which a
 * loaded machine may deny a try: tries go on until one is seen, or the
 * time is up (a block the polls never report fails the test).
 */
static void check_block(myriad_rt_t *rt, bool exact)
{
	unsigned workers = (unsigned)myriad_rt_workers(rt);
	struct myriad_block b[16];
	double end = t_now() + 30.0 * T_SLOW;
	int n = 0, k, i, found = -1;
	unsigned w;

	while (found < 0 && n < TRIES && t_now() < end) {
		struct try *t = &tries[n++];
		myriad_handle_t *h;

		CHECK_EQ(myriad_rt_spawn(rt, sleeper, &t, sizeof(t), &h), 0);
		t->task = h;
		CHECK_EQ(t_join(h, NULL, "sleeper"), 0);
		CHECK(t->woke >= t->slept + SLEEP_NS, "slept %.1f ms",
		      (t->woke - t->slept) / 1e6);
		/*
		 * Read for a while: /proc ends a block at the poll after it.
		 * Blocks of earlier tries still count (their handles are held
		 * to the end, so no later task has their address).
		 */
		do {
			uint64_t now = myriad_now_ns();

			t_sleep_ms(exact ? 0 : 20);
			for (w = 0; w < workers && found < 0; w++) {
				k = myriad_rt_blocks(rt, w, b, 16);
				CHECK(k >= 0, "myriad_rt_blocks: %d", k);
				for (i = 0; i < k && found < 0; i++)
					for (int j = 0; j < n; j++)
						if (block_of(&b[i], &tries[j],
							     now, exact)) {
							found = j;
							printf("%s: try %d: block "
							       "of %.1f ms on "
							       "worker %u\n",
							       t_name, j,
							       b[i].blocked_ns /
								       1e6,
							       w);
							break;
						}
			}
		} while (found < 0 && !exact &&
			 myriad_now_ns() < t->woke + 500000000ull);
	}
	for (k = 0; k < n; k++)
		myriad_handle_release((myriad_handle_t *)tries[k].task);
	if (found < 0)
		for (w = 0; w < workers; w++) {
			k = myriad_rt_blocks(rt, w, b, 16);
			fprintf(stderr, "%s: worker %u: %d blocks%s\n", t_name,
				w, k, k > 0 ? ", newest:" : "");
			for (i = 0; i < k && i < 3; i++)
				fprintf(stderr,
					"  task %p step %p at %.1f ms, "
					"%.1f ms\n",
					b[i].task, b[i].step,
					(double)b[i].at_ns / 1e6,
					b[i].blocked_ns / 1e6);
		}
	CHECK(found >= 0,
	      "%d sleeps of 50 ms in a step: none reported as a block of its "
	      "task and step%s",
	      n, exact ? " within the sleep" : "");
}

int main(int argc, char **argv)
{
	unsigned workers;
	struct myriad_rt_opts o = { .sz = sizeof(o) };
	struct t_fib root = { 0 };
	myriad_rt_t *rt;
	const char *why = NULL;
	int64_t res = 0;
	int err, src, i;
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
	t_phase("signals");
	CHECK(t_wait_until(some_oncpu, rt, 20), "no time on CPU counted");

	/* A blocking step is reported with its task, step and duration. */
	t_phase("block");
	check_block(rt, src == MYRIAD_SIG_BPF);
	CHECK_EQ(myriad_rt_destroy(rt), 0);
	return t_result();
}
