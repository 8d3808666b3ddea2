/* SPDX-License-Identifier: MIT */
/*
 * tests/bpf/proc.c: the /proc source: the same fields as eBPF, coarser.
 * Forced with SIGNALS_FORCE_PROC (as root, compared with eBPF on the same
 * threads), or --unprivileged: drops root first, and signals_open() must
 * fall back to /proc on its own, saying why.
 */
#include <grp.h>
#include <sys/prctl.h>

#include "bpf_test.h"

#define TASK_BLOCKS 42
#define TASK_BURNS 43

static _Atomic int script_done;

__attribute__((noinline)) static void step_sleeps(void)
{
	t_sleep_ms(50);
}

/* A sleep outside a step, a step that sleeps 50 ms, one that computes. */
static void script(struct t_thread *t)
{
	t_sleep_ms(30);
	signals_step_begin_at(t->s, t->worker, TASK_BLOCKS,
			      (const void *)step_sleeps,
			      clock_ns(CLOCK_MONOTONIC));
	step_sleeps();
	signals_step_end(t->s, t->worker);
	signals_step_begin(t->s, t->worker, TASK_BURNS, (const void *)script);
	t_burn_ms(30);
	signals_step_end(t->s, t->worker);
	t_sleep_ms(20);
	atomic_store(&script_done, 1);
}

/* The runtime polls on its ticks; here the main thread, every 1 ms. */
static void poll_until_done(struct signals *s)
{
	while (!atomic_load(&script_done)) {
		signals_poll(s, clock_ns(CLOCK_MONOTONIC));
		t_sleep_ms(1);
	}
	signals_poll(s, clock_ns(CLOCK_MONOTONIC) + SIGNALS_PERIOD_NS);
}

static void check_blocking(struct signals *s)
{
	struct t_thread t = { .cpu = -1, .fn = script, .s = s, .worker = 0 };
	struct signals_block ev[SIGNALS_BLOCK_RING];
	struct worker_signals ws;
	int n, i;

	/* The default 10 ms period: a 50 ms block is seen 4 or 5 times. */
	signals_set_period(s, 0);
	t_thread_start(&t);
	CHECK_EQ(signals_register(s, 0, t.tid), 0);
	atomic_store(&script_done, 0);
	atomic_store(&t.go, 1);
	poll_until_done(s);
	pthread_join(t.th, NULL);
	n = signals_blocks(s, 0, ev, SIGNALS_BLOCK_RING);
	signals_read(s, 0, &ws);
	t_print("blocking script", &ws);
	for (i = 0; i < n; i++)
		printf("block: task %" PRIu64 " blocked about %.1f ms%s\n",
		       ev[i].task_id, ev[i].blocked_ns / 1e6,
		       ev[i].fn == (uint64_t)(uintptr_t)step_sleeps
			       ? " in step_sleeps"
			       : "");
	CHECK_EQ(n, 1);
	CHECK_EQ(ws.blocks, (uint64_t)n);
	if (n >= 1) {
		CHECK_EQ(ev[0].task_id, TASK_BLOCKS);
		CHECK(ev[0].fn == (uint64_t)(uintptr_t)step_sleeps,
		      "fn %#" PRIx64, ev[0].fn);
		/* Polls 10 ms apart: the estimate is within a period or so. */
		CHECK(ev[0].blocked_ns >= 30000000 &&
			      ev[0].blocked_ns <= 90000000,
		      "blocked about %" PRIu64 " ns, expected about 50 ms",
		      ev[0].blocked_ns);
		CHECK_EQ(ev[0].state, 1);
	}
	CHECK(ws.voluntary >= 3, "voluntary %" PRIu64, ws.voluntary);
	CHECK(ws.oncpu_ns >= 25000000, "oncpu %" PRIu64, ws.oncpu_ns);
	CHECK(ws.offcpu_ns >= 80000000, "offcpu %" PRIu64, ws.offcpu_ns);
	signals_set_period(s, 1);
}

/*
 * A busy worker and a hog on one CPU for 600 ms: preemptions, run-queue
 * delay, CPU and timeslices from /proc. With eBPF open on the same threads
 * (root), both must agree: they count the kernel's own events.
 */
static void check_hog(struct signals *s, struct signals *bpf)
{
	struct t_thread w = { .cpu = -1, .fn = t_spin };
	struct t_thread hog = { .cpu = -1, .fn = t_spin };
	struct worker_signals a, b, d, ba, bb, bd;
	int cpu0, cpu1;

	t_cpus(&cpu0, &cpu1);
	w.cpu = hog.cpu = cpu0;
	t_thread_start(&w);
	t_thread_start(&hog);
	CHECK_EQ(signals_register(s, 1, w.tid), 0);
	if (bpf)
		CHECK_EQ(signals_register(bpf, 1, w.tid), 0);
	atomic_store(&w.go, 1);
	atomic_store(&hog.go, 1);
	t_sleep_ms(20);
	t_snap(s, 1, &a);
	if (bpf)
		signals_read(bpf, 1, &ba);
	t_sleep_ms(600);
	t_snap(s, 1, &b);
	if (bpf)
		signals_read(bpf, 1, &bb);
	t_delta(&d, &a, &b);
	t_print("proc: worker + hog", &d);
	CHECK(d.preempt >= 20, "preempt %" PRIu64, d.preempt);
	CHECK(d.rq_delay_ns >= 100000000, "rq_delay %" PRIu64, d.rq_delay_ns);
	CHECK(d.switch_in >= 20, "timeslices %" PRIu64, d.switch_in);
	CHECK_EQ(d.rq_delay_count, d.switch_in);
	CHECK(d.oncpu_ns >= 100000000, "oncpu %" PRIu64, d.oncpu_ns);
	CHECK_EQ(d.cpu, cpu0);
	CHECK_EQ(d.have, 0);
	CHECK_EQ(d.rq_hist[0] + d.rq_hist[20] + d.rq_delay_max_ns, 0);
	CHECK(d.stamp_ns > 0, "stamp %" PRIu64, d.stamp_ns);
	if (bpf) {
		t_delta(&bd, &ba, &bb);
		t_print("bpf:  worker + hog", &bd);
		/* Not the same instants: a few slices apart at most. */
		CHECK(llabs((long long)d.preempt - (long long)bd.preempt) <=
			      (long long)bd.preempt / 10 + 10,
		      "preempt: proc %" PRIu64 ", bpf %" PRIu64, d.preempt,
		      bd.preempt);
		CHECK(llabs((long long)d.rq_delay_ns -
			    (long long)bd.rq_delay_ns) <=
			      (long long)bd.rq_delay_ns / 5 + 20000000,
		      "rq_delay: proc %" PRIu64 ", bpf %" PRIu64, d.rq_delay_ns,
		      bd.rq_delay_ns);
		CHECK(llabs((long long)d.switch_in - (long long)bd.switch_in) <=
			      (long long)bd.switch_in / 10 + 10,
		      "switch_in: proc %" PRIu64 ", bpf %" PRIu64, d.switch_in,
		      bd.switch_in);
		CHECK_EQ(d.migrations, bd.migrations);
	}
	t_thread_join(&hog);
	t_thread_join(&w);
}

static void drop_root(void)
{
	if (geteuid() != 0)
		return;
	/* nobody: no capabilities left, in every thread (glibc's setxid). */
	REQUIRE(setgroups(0, NULL) == 0 &&
			setresgid(65534, 65534, 65534) == 0 &&
			setresuid(65534, 65534, 65534) == 0,
		"cannot drop root: %s", strerror(errno));
	prctl(PR_SET_DUMPABLE, 1);
}

int main(int argc, char **argv)
{
	struct signals *s, *bpf = NULL;
	struct cgroup_signals cg;
	int unpriv = 0, err = 0, r;

	t_name = "bpf/proc";
	if (argc == 2 && !strcmp(argv[1], "--unprivileged"))
		unpriv = 1;
	else if (argc != 1)
		REQUIRE(0, "usage: %s [--unprivileged]", argv[0]);
	t_watchdog(10);

	if (unpriv) {
		drop_root();
		/* No flag: eBPF is tried, refused, and /proc takes over. */
		s = signals_open(NULL, 2, 0, &err);
		REQUIRE(s != NULL, "signals_open: %s", strerror(-err));
		printf("uid %d: source %s, because: %s\n", (int)getuid(),
		       signals_source(s) == SIGNALS_BPF ? "bpf" : "proc",
		       signals_error(s));
		CHECK_EQ(signals_source(s), SIGNALS_PROC);
		CHECK(strlen(signals_error(s)) > 0, "no reason given");
		CHECK(!signals_open(NULL, 2, SIGNALS_REQUIRE_BPF, &err), "bpf");
		CHECK(err == -EPERM || err == -ENOTSUP, "err %d", err);
	} else {
		s = signals_open(NULL, 2, SIGNALS_FORCE_PROC, &err);
		REQUIRE(s != NULL, "signals_open: %s", strerror(-err));
		CHECK_EQ(signals_source(s), SIGNALS_PROC);
		printf("forced: %s\n", signals_error(s));
		/* As root, eBPF beside it, to compare. */
		bpf = signals_open(NULL, 2, SIGNALS_REQUIRE_BPF, &err);
		printf("eBPF beside it for comparison: %s\n",
		       bpf ? "yes" : strerror(-err));
	}
	CHECK_EQ(signals_open(NULL, 2, SIGNALS_FORCE_PROC | SIGNALS_REQUIRE_BPF,
			      &err),
		 NULL);
	CHECK_EQ(err, -EINVAL);
	CHECK_EQ(signals_open(NULL, 0, 0, &err), NULL);

	t_phase("blocking");
	check_blocking(s);
	t_phase("hog");
	signals_set_period(s, 1);
	check_hog(s, bpf);

	r = signals_cgroup(s, &cg);
	if (r == 0)
		printf("cgroup v%d cpu.stat: nr_periods %" PRIu64
		       " nr_throttled %" PRIu64
		       " throttled %.1f ms, quota %" PRId64 " us per %" PRIu64
		       " us\n",
		       cg.version, cg.nr_periods, cg.nr_throttled,
		       cg.throttled_ns / 1e6, cg.quota_us, cg.period_us);
	else
		printf("cgroup cpu.stat: not found (%s)\n", strerror(-r));
	CHECK(r == 0 || r == -ENOENT, "signals_cgroup: %d", r);
	CHECK(r != 0 || cg.nr_throttled <= cg.nr_periods,
	      "throttled %" PRIu64 " of %" PRIu64, cg.nr_throttled,
	      cg.nr_periods);

	signals_close(bpf);
	signals_close(s);
	return t_result();
}
