/* SPDX-License-Identifier: MIT */
/*
 * tests/bpf/hog.c: a CPU hog pinned to the CPU of a busy registered worker:
 * each waits on the run queue while the other runs, and the signals say
 * so: the worker's run-queue delay covers the hog's time on CPU and the
 * hog's the worker's, both seen on that CPU, the worker preempted and
 * never asleep. --source bpf (root) or proc.
 *
 * Not checked: how many preemptions, or how much delay against a run
 * without the hog. That depends on what else the machine runs (other load
 * on the CPU takes from both and adds to both); what is checked holds
 * whatever it runs.
 */
#include "bpf_test.h"

#define PHASE_MS 500

static void check_consistent(const char *what, const struct worker_signals *w)
{
	uint64_t sum = 0, diff;
	unsigned i;

	/*
	 * eBPF: a spinner is off its CPU only while preempted: its off-CPU
	 * time is its run-queue delay, but for its few voluntary switches.
	 * (/proc's off-CPU time is the poll's clock less the CPU time, which
	 * differs from the delay by the wait under way at each poll: not
	 * compared.)
	 */
	diff = w->offcpu_ns > w->rq_delay_ns ? w->offcpu_ns - w->rq_delay_ns
					     : w->rq_delay_ns - w->offcpu_ns;
	CHECK(diff <= w->rq_delay_ns / 5 + 5000000,
	      "%s: offcpu %" PRIu64 " vs rq_delay %" PRIu64, what, w->offcpu_ns,
	      w->rq_delay_ns);
	/* Every measured wait is in one histogram bucket (a few in flight). */
	for (i = 0; i < SIGNALS_HIST_BUCKETS; i++)
		sum += w->rq_hist[i];
	CHECK(sum + 2 >= w->rq_delay_count && sum <= w->rq_delay_count + 2,
	      "%s: histogram holds %" PRIu64 ", count %" PRIu64, what, sum,
	      w->rq_delay_count);
	CHECK(w->rq_delay_max_ns <= w->rq_delay_ns || !w->rq_delay_count,
	      "%s: max %" PRIu64, what, w->rq_delay_max_ns);
}

static void print_hist(const struct worker_signals *w)
{
	unsigned i;

	printf("  run-queue delay histogram (log2 ns):");
	for (i = 0; i < SIGNALS_HIST_BUCKETS; i++)
		if (w->rq_hist[i])
			printf(" [%.0fus,%.0fus) %" PRIu64,
			       (double)(1ull << i) / 1e3,
			       (double)(2ull << i) / 1e3, w->rq_hist[i]);
	printf("\n");
}

int main(int argc, char **argv)
{
	const char *source;
	struct t_thread worker = { .cpu = -1, .fn = t_spin };
	struct t_thread hog = { .cpu = -1, .fn = t_spin };
	struct worker_signals wa, wb, ha, hb, w, h;
	struct signals *s;
	int cpu0, cpu1, exact;
	pid_t tids[2];

	t_name = "bpf/hog";
	source = t_parse_source(argc, argv);
	t_watchdog(25);
	t_cpus(&cpu0, &cpu1);
	REQUIRE(cpu0 >= 0, "no usable CPU");

	/* Both on one CPU from their start; the worker in slot 0. */
	worker.cpu = hog.cpu = cpu0;
	t_thread_start(&worker);
	t_thread_start(&hog);
	tids[0] = worker.tid;
	tids[1] = hog.tid;
	s = t_open_source(source, tids, 2, 0);
	exact = signals_source(s) == SIGNALS_BPF;
	printf("source %s; hog and worker on CPU %d\n", exact ? "bpf" : "proc",
	       cpu0);
	atomic_store(&worker.go, 1);
	atomic_store(&hog.go, 1);

	t_phase("pinned");
	t_sleep_ms(20);
	t_snap(s, 0, &wa);
	signals_read(s, 1, &ha);
	t_sleep_ms(PHASE_MS);
	t_snap(s, 0, &wb);
	signals_read(s, 1, &hb);
	t_delta(&w, &wa, &wb);
	t_delta(&h, &ha, &hb);
	t_print("worker beside the hog", &w);
	t_print("the hog", &h);
	CHECK_EQ(w.cpu, cpu0);
	CHECK_EQ(h.cpu, cpu0);
	/* A spinner never sleeps, and shares its CPU: it was preempted. */
	CHECK(w.voluntary <= 2, "voluntary %" PRIu64, w.voluntary);
	CHECK(w.preempt >= 1 && h.preempt >= 1,
	      "preempted: worker %" PRIu64 ", hog %" PRIu64, w.preempt,
	      h.preempt);
	t_check_cover(source, s, &wa, &ha, &wb, &hb);
	if (exact) {
		check_consistent("worker", &w);
		print_hist(&w);
		printf("  longest wait %.2f ms\n", w.rq_delay_max_ns / 1e6);
	}

	t_thread_join(&hog);
	t_thread_join(&worker);
	signals_close(s);
	return t_result();
}
