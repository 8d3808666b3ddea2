/* SPDX-License-Identifier: MIT */
/*
 * tests/bpf/probes.c: the eBPF probes load and attach (as root, else skip),
 * count registered threads, and report a step that sleeps 50 ms as a
 * blocking event with its task id, step function and duration.
 */
#include "bpf_test.h"

#define TASK_BLOCKS 42
#define TASK_BURNS 43
#define TASK_LATE 44

/* Stand-ins for step functions: their addresses are what is reported. */
__attribute__((noinline)) static void step_sleeps(void)
{
	t_sleep_ms(50);
}

__attribute__((noinline)) static void step_burns(void)
{
	t_burn_ms(20);
}

/*
 * Around the 50 ms sleep, read by the sleeping thread itself just before it
 * and just after it returned: the clock, the thread's CPU time (the
 * kernel's, not the probes'), and its signals.
 */
static uint64_t slept_at, woke_at, cpu_at_sleep, cpu_at_wake;
static struct worker_signals sig_at_sleep, sig_at_wake;

static uint64_t thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/*
 * The worker's script: sleeps outside any step (not blocking), a step that
 * sleeps 50 ms (blocking), a step that only computes (not blocking).
 */
static void script(struct t_thread *t)
{
	struct sig_step *w = signals_step_word(t->s, t->worker);
	int i;

	for (i = 0; i < 3; i++)
		t_sleep_ms(5);
	sig_step_begin(w, TASK_BLOCKS, (const void *)step_sleeps,
		       clock_ns(CLOCK_MONOTONIC));
	signals_read(t->s, t->worker, &sig_at_sleep);
	cpu_at_sleep = thread_cpu_ns();
	slept_at = clock_ns(CLOCK_MONOTONIC);
	step_sleeps();
	woke_at = clock_ns(CLOCK_MONOTONIC);
	cpu_at_wake = thread_cpu_ns();
	signals_read(t->s, t->worker, &sig_at_wake);
	sig_step_end(w);
	signals_step_begin(t->s, t->worker, TASK_BURNS,
			   (const void *)step_burns);
	step_burns();
	signals_step_end(t->s, t->worker);
	t_sleep_ms(5);
}

/* Run the script on a fresh thread registered as worker 1 of 's'. */
static void run_script(struct signals *s, struct worker_signals *out,
		       struct signals_block *ev, int *nev, uint64_t *t0)
{
	struct t_thread t = { .cpu = -1, .fn = script, .s = s, .worker = 1 };

	t_thread_start(&t);
	CHECK_EQ(signals_register(s, 1, t.tid), 0);
	*t0 = clock_ns(CLOCK_MONOTONIC);
	atomic_store(&t.go, 1);
	pthread_join(t.th, NULL);
	signals_read(s, 1, out);
	*nev = signals_blocks(s, 1, ev, SIGNALS_BLOCK_RING);
}

int main(void)
{
	struct worker_signals ws, main_ws;
	struct signals_block ev[SIGNALS_BLOCK_RING];
	struct signals *s;
	pid_t tids[2] = { t_gettid(), 0 };
	uint64_t t0;
	int n, i, found = 0;

	t_name = "bpf/probes";
	t_watchdog(10);
	t_phase("load");
	s = t_open_source("bpf", tids, 2, 0);
	CHECK_EQ(signals_source(s), SIGNALS_BPF);
	CHECK(!strcmp(signals_error(s), ""), "error '%s'", signals_error(s));
	printf("eBPF probes loaded and attached\n");
	if (*signals_log(s))
		printf("libbpf said (captured, not printed by libbpf):\n%s\n",
		       signals_log(s));

	t_phase("script");
	run_script(s, &ws, ev, &n, &t0);
	t_print("worker (script)", &ws);
	signals_read(s, 0, &main_ws);
	t_print("main thread", &main_ws);

	/* The registered thread was seen: sleeps, wakeups, CPU time. */
	CHECK(ws.voluntary >= 4, "voluntary %" PRIu64, ws.voluntary);
	CHECK(ws.wakeups >= 4, "wakeups %" PRIu64, ws.wakeups);
	CHECK(ws.switch_in >= 4, "switch_in %" PRIu64, ws.switch_in);
	CHECK(ws.offcpu_ns >= 60000000, "offcpu %" PRIu64, ws.offcpu_ns);
	CHECK(ws.oncpu_ns >= 15000000, "oncpu %" PRIu64 " (20 ms burnt)",
	      ws.oncpu_ns);
	CHECK(ws.cpu >= 0, "cpu %d", ws.cpu);
	CHECK(ws.have & SIGNALS_HAVE_HIST, "have %#x", ws.have);
	/* The main thread (worker 0) slept in pthread_join. */
	CHECK(main_ws.voluntary >= 1, "main voluntary %" PRIu64,
	      main_ws.voluntary);

	/* Exactly one blocking event: the 50 ms sleep inside step 42. */
	for (i = 0; i < n; i++)
		printf("block: task %" PRIu64 " fn %s blocked %.2f ms "
		       "(state %u, %.2f ms into the step)\n",
		       ev[i].task_id,
		       ev[i].fn == (uint64_t)(uintptr_t)step_sleeps
			       ? "step_sleeps"
			       : "?",
		       ev[i].blocked_ns / 1e6, ev[i].state,
		       (ev[i].start_ns - ev[i].step_start_ns) / 1e6);
	CHECK_EQ(n, 1);
	CHECK_EQ(ws.blocks, 1);
	for (i = 0; i < n; i++) {
		if (ev[i].task_id != TASK_BLOCKS)
			continue;
		found = 1;
		CHECK(ev[i].fn == (uint64_t)(uintptr_t)step_sleeps,
		      "fn %#" PRIx64 ", expected step_sleeps %p", ev[i].fn,
		      (void *)step_sleeps);
		/*
		 * The sleep itself, as the clock saw it around the call: off
		 * its CPU after the call began, back on once the 50 ms had
		 * passed (the timer fires no earlier) and before it returned.
		 * How much longer than 50 ms is the machine's.
		 */
		CHECK(ev[i].start_ns >= slept_at &&
			      ev[i].start_ns + ev[i].blocked_ns <= woke_at,
		      "blocked %.3f ms at +%.3f ms, not inside the sleep "
		      "(+0 .. +%.3f ms)",
		      ev[i].blocked_ns / 1e6,
		      ((double)ev[i].start_ns - (double)slept_at) / 1e6,
		      (woke_at - slept_at) / 1e6);
		CHECK(ev[i].start_ns + ev[i].blocked_ns >= slept_at + 50000000,
		      "blocked %.3f ms at +%.3f ms: back on its CPU before the "
		      "50 ms sleep ended",
		      ev[i].blocked_ns / 1e6,
		      ((double)ev[i].start_ns - (double)slept_at) / 1e6);
		/*
		 * And off it for all of the sleep but the time the thread
		 * ran (its CPU clock) or waited for a CPU (preempted, or
		 * woken and not yet back on: in its run-queue delay).
		 */
		CHECK(ev[i].blocked_ns + (cpu_at_wake - cpu_at_sleep) +
				      (sig_at_wake.rq_delay_ns -
				       sig_at_sleep.rq_delay_ns) >=
			      woke_at - slept_at,
		      "blocked %.3f ms of a %.3f ms sleep, in which it ran "
		      "%.3f ms and waited %.3f ms for a CPU",
		      ev[i].blocked_ns / 1e6, (woke_at - slept_at) / 1e6,
		      (cpu_at_wake - cpu_at_sleep) / 1e6,
		      (sig_at_wake.rq_delay_ns - sig_at_sleep.rq_delay_ns) /
			      1e6);
		CHECK_EQ(ev[i].state, 1);
		CHECK_EQ(ev[i].seq, 1);
		CHECK(ev[i].step_start_ns >= t0 &&
			      ev[i].step_start_ns <= slept_at,
		      "step start %" PRIu64 ", sleep from %" PRIu64,
		      ev[i].step_start_ns, slept_at);
		CHECK(ws.blocked_ns == ev[i].blocked_ns, "blocked_ns %" PRIu64,
		      ws.blocked_ns);
	}
	CHECK(found, "no blocking event for task %d", TASK_BLOCKS);
	signals_close(s);

	/* SIGNALS_NO_BLOCKING: the same script, no events. */
	t_phase("no blocking");
	s = t_open_source("bpf", tids, 2, SIGNALS_NO_BLOCKING);
	run_script(s, &ws, ev, &n, &t0);
	CHECK_EQ(n, 0);
	CHECK_EQ(ws.blocks, 0);
	CHECK(ws.voluntary >= 4, "voluntary %" PRIu64, ws.voluntary);
	signals_close(s);

	/* Unregistered and out-of-range workers read as nothing. */
	s = t_open_source("bpf", NULL, 2, 0);
	signals_read(s, 0, &ws);
	CHECK_EQ(ws.cpu, -1);
	CHECK_EQ(ws.switch_in, 0);
	signals_read(s, 7, &ws);
	CHECK_EQ(ws.cpu, -1);
	CHECK_EQ(signals_blocks(s, 7, ev, 1), -EINVAL);
	CHECK_EQ(signals_register(s, 0, 999999999), -ESRCH);
	CHECK_EQ(signals_register(s, 2, t_gettid()), -EINVAL);
	signals_close(s);
	return t_result();
}
