/* SPDX-License-Identifier: MIT */
/*
 * tests/bpf/proc.c: the /proc source: the same fields as eBPF, coarser.
 * Forced with SIGNALS_FORCE_PROC (as root, compared with eBPF on the same
 * threads), or --unprivileged: drops root first, and signals_open() must
 * fall back to /proc on its own, saying why.
 */
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>

#include "bpf_test.h"

#define TASK_BLOCKS 42
#define TASK_BURNS 43

static _Atomic int script_done, in_step, step_over, may_exit;
static int blk_pipe[2];
static uint64_t step_start;

/* Asleep in the kernel until the test writes a byte to the pipe. */
__attribute__((noinline)) static void step_sleeps(void)
{
	char c;

	while (read(blk_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
}

/*
 * A sleep outside a step, a step asleep in the kernel until the test ends
 * it, one that computes; then it waits to be let go, so that the last poll
 * still finds the thread.
 */
static void script(struct t_thread *t)
{
	t_sleep_ms(30);
	step_start = clock_ns(CLOCK_MONOTONIC);
	signals_step_begin_at(t->s, t->worker, TASK_BLOCKS,
			      (const void *)step_sleeps, step_start);
	atomic_store(&in_step, 1);
	step_sleeps();
	signals_step_end(t->s, t->worker);
	atomic_store(&step_over, 1);
	signals_step_begin(t->s, t->worker, TASK_BURNS, (const void *)script);
	t_burn_ms(30);
	signals_step_end(t->s, t->worker);
	t_sleep_ms(20);
	atomic_store(&script_done, 1);
	while (!atomic_load(&may_exit))
		t_sleep_ms(1);
}

/*
 * Thread 'tid' is blocked in read(2) of the pipe: the kernel says so in
 * /proc/self/task/TID/syscall (or, where that file cannot be read, its
 * state is S once the step began).
 */
static bool blocked_in_read(pid_t tid)
{
	char path[64], buf[256];
	long nr = -1;
	unsigned long fd = 0;
	int f, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f >= 0) {
		n = (int)read(f, buf, sizeof(buf) - 1);
		close(f);
		if (n > 0) {
			buf[n] = '\0';
			return sscanf(buf, "%ld %lx", &nr, &fd) == 2 &&
			       nr == SYS_read &&
			       fd == (unsigned long)blk_pipe[0];
		}
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	n = (int)read(f, buf, sizeof(buf) - 1);
	close(f);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, ") S ") != NULL;
}

static int flag_set(void *p)
{
	return atomic_load((_Atomic int *)p);
}

static int step_blocked(void *p)
{
	return atomic_load(&in_step) && blocked_in_read(*(pid_t *)p);
}

/* A poll at a time of the test's choosing: that time, after the poll. */
static uint64_t poll_now(struct signals *s)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);

	CHECK_EQ(signals_poll(s, now), 1);
	return now;
}

/*
 * The /proc source sees a block through its polls: the thread asleep in a
 * step at one poll, and again at the next. The test makes the polls
 * itself, at instants it knows, while the thread is known to be blocked
 * (in read(2) of a pipe only the test writes to): the first at n1, the
 * next 50 ms later at n2; the pipe is written, the step ends, and the
 * poll at n3 no longer sees it. Whatever the machine's delays, the block
 * reported then began between the step's start and n1 and ended between
 * n2 and n3: it lasted at least n2 - n1 and at most n3 - the step's start.
 */
static void check_blocking(struct signals *s)
{
	struct t_thread t = { .cpu = -1, .fn = script, .s = s, .worker = 0 };
	struct signals_block ev[SIGNALS_BLOCK_RING];
	struct worker_signals ws;
	uint64_t n1, n2, n3, end;
	pid_t tid;
	int n, i;

	signals_set_period(s, 1);
	REQUIRE(pipe2(blk_pipe, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	t_thread_start(&t);
	tid = t.tid;
	CHECK_EQ(signals_register(s, 0, tid), 0);
	atomic_store(&t.go, 1);
	REQUIRE(t_wait_until(step_blocked, &tid, 20),
		"the script's step never blocked in read(2)");
	n1 = poll_now(s);
	t_sleep_ms(50);
	n2 = poll_now(s);
	REQUIRE(write(blk_pipe[1], "x", 1) == 1, "write: %s", strerror(errno));
	REQUIRE(t_wait_until(flag_set, &step_over, 20), "the step never ended");
	n3 = poll_now(s);
	REQUIRE(t_wait_until(flag_set, &script_done, 20),
		"the script never ended");
	/* The thread waits to be let go: this poll reads all it did. */
	poll_now(s);
	n = signals_blocks(s, 0, ev, SIGNALS_BLOCK_RING);
	signals_read(s, 0, &ws);
	atomic_store(&may_exit, 1);
	pthread_join(t.th, NULL);
	close(blk_pipe[0]);
	close(blk_pipe[1]);
	t_print("blocking script", &ws);
	for (i = 0; i < n; i++)
		printf("block: task %" PRIu64 " blocked about %.1f ms (%.1f ms "
		       "between the polls that saw it)%s\n",
		       ev[i].task_id, ev[i].blocked_ns / 1e6, (n2 - n1) / 1e6,
		       ev[i].fn == (uint64_t)(uintptr_t)step_sleeps
			       ? " in step_sleeps"
			       : "");
	CHECK_EQ(n, 1);
	CHECK_EQ(ws.blocks, (uint64_t)n);
	if (n >= 1) {
		CHECK_EQ(ev[0].task_id, TASK_BLOCKS);
		CHECK(ev[0].fn == (uint64_t)(uintptr_t)step_sleeps,
		      "fn %#" PRIx64, ev[0].fn);
		end = ev[0].start_ns + ev[0].blocked_ns;
		CHECK(ev[0].start_ns >= step_start && ev[0].start_ns <= n1,
		      "the block began at +%.3f ms, not between the step's "
		      "start (+0) and the first poll that saw it (+%.3f ms)",
		      ((double)ev[0].start_ns - (double)step_start) / 1e6,
		      (n1 - step_start) / 1e6);
		CHECK(end >= n2 && end <= n3,
		      "the block ended at +%.3f ms, not between the last poll "
		      "that saw it (+%.3f ms) and the first that did not "
		      "(+%.3f ms)",
		      ((double)end - (double)step_start) / 1e6,
		      (n2 - step_start) / 1e6, (n3 - step_start) / 1e6);
		CHECK_EQ(ev[0].state, 1);
	}
	/* 30 ms of CPU; asleep 30 ms, 50 ms or more, 20 ms: from schedstat. */
	CHECK(ws.voluntary >= 3, "voluntary %" PRIu64, ws.voluntary);
	CHECK(ws.oncpu_ns >= 25000000, "oncpu %" PRIu64, ws.oncpu_ns);
	CHECK(ws.offcpu_ns >= 80000000, "offcpu %" PRIu64, ws.offcpu_ns);
}

/* A counter of the kernel's events: /proc's delta within eBPF's reads. */
/*
 * One either way: /proc's schedstat counts a timeslice when it begins
 * (sched_info_arrive), the probes when the switch is traced; a slice that
 * begins while a read is under way can be in one count and not yet in the
 * other (seen in CI: proc 268, bpf 267..267).
 */
#define CHECK_WITHIN(f, d, b0a, b1a, b0b, b1b)                              \
	CHECK((d)->f + 1 >= (b0b)->f - (b1a)->f &&                          \
		      (d)->f <= (b1b)->f - (b0a)->f + 1,                    \
	      #f ": proc %" PRIu64 ", bpf between %" PRIu64 " and %" PRIu64 \
		 " (one either way)",                                       \
	      (d)->f, (b0b)->f - (b1a)->f, (b1b)->f - (b0a)->f)

/*
 * A busy worker and a hog on one CPU for 600 ms: preemptions, run-queue
 * delay, CPU and timeslices from /proc. With eBPF open on the same threads
 * (root), both count the kernel's own events: /proc's counts of a window
 * lie between eBPF's read just inside and just outside it.
 */
static void check_hog(struct signals *s, struct signals *bpf)
{
	struct t_thread w = { .cpu = -1, .fn = t_spin };
	struct t_thread hog = { .cpu = -1, .fn = t_spin };
	struct worker_signals a, b, d, ha, hb;
	struct worker_signals ba[2], bb[2], bha, bhb, bd;
	uint64_t slack;
	int cpu0, cpu1;

	t_cpus(&cpu0, &cpu1);
	w.cpu = hog.cpu = cpu0;
	t_thread_start(&w);
	t_thread_start(&hog);
	/* The worker first: /proc reads slot 0 before slot 1. */
	CHECK_EQ(signals_register(s, 0, w.tid), 0);
	CHECK_EQ(signals_register(s, 1, hog.tid), 0);
	if (bpf) {
		CHECK_EQ(signals_register(bpf, 0, w.tid), 0);
		CHECK_EQ(signals_register(bpf, 1, hog.tid), 0);
	}
	atomic_store(&w.go, 1);
	atomic_store(&hog.go, 1);
	t_sleep_ms(20);
	if (bpf)
		signals_read(bpf, 0, &ba[0]);
	t_snap(s, 0, &a);
	signals_read(s, 1, &ha);
	if (bpf) {
		signals_read(bpf, 0, &ba[1]);
		signals_read(bpf, 1, &bha);
	}
	t_sleep_ms(600);
	if (bpf) {
		signals_read(bpf, 0, &bb[0]);
		signals_read(bpf, 1, &bhb);
	}
	t_snap(s, 0, &b);
	signals_read(s, 1, &hb);
	if (bpf)
		signals_read(bpf, 0, &bb[1]);
	t_delta(&d, &a, &b);
	t_print("proc: worker + hog", &d);
	CHECK(d.preempt >= 1 && d.switch_in >= 1,
	      "a spinner beside a hog on its CPU: preempt %" PRIu64
	      ", timeslices %" PRIu64,
	      d.preempt, d.switch_in);
	CHECK_EQ(d.rq_delay_count, d.switch_in);
	CHECK_EQ(d.cpu, cpu0);
	CHECK_EQ(d.have, 0);
	CHECK_EQ(d.rq_hist[0] + d.rq_hist[20] + d.rq_delay_max_ns, 0);
	CHECK(d.stamp_ns > 0, "stamp %" PRIu64, d.stamp_ns);
	t_check_cover("proc", s, &a, &ha, &b, &hb);
	if (bpf) {
		t_delta(&bd, &ba[1], &bb[0]);
		t_print("bpf:  worker + hog", &bd);
		CHECK_WITHIN(preempt, &d, &ba[0], &ba[1], &bb[0], &bb[1]);
		CHECK_WITHIN(voluntary, &d, &ba[0], &ba[1], &bb[0], &bb[1]);
		CHECK_WITHIN(switch_in, &d, &ba[0], &ba[1], &bb[0], &bb[1]);
		/*
		 * The same waits, each timed by the kernel's run-queue clock
		 * and by the probes' clock a few microseconds apart.
		 */
		slack = 1000000 +
			50000 * (bb[1].rq_delay_count - ba[0].rq_delay_count) +
			(bb[1].rq_delay_ns - ba[0].rq_delay_ns) / 10;
		CHECK(d.rq_delay_ns + slack >=
				      bb[0].rq_delay_ns - ba[1].rq_delay_ns &&
			      d.rq_delay_ns <= bb[1].rq_delay_ns -
						       ba[0].rq_delay_ns +
						       slack,
		      "rq_delay: proc %" PRIu64 " ns, bpf between %" PRIu64
		      " and %" PRIu64 " ns",
		      d.rq_delay_ns, bb[0].rq_delay_ns - ba[1].rq_delay_ns,
		      bb[1].rq_delay_ns - ba[0].rq_delay_ns);
		CHECK_EQ(d.migrations, bd.migrations);
		t_check_cover("bpf", bpf, &ba[0], &bha, &bb[0], &bhb);
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
	t_watchdog(25);

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
