/* SPDX-License-Identifier: MIT */
/*
 * tests/bpf/bpf_test.h: what the signals tests share: plain pthreads that
 * publish their tid, CPU pinning, opening a given source (or skipping),
 * and printing a worker's signals.
 */
#ifndef MYRIAD_TESTS_BPF_TEST_H
#define MYRIAD_TESTS_BPF_TEST_H

#include <pthread.h>
#include <sys/syscall.h>

#include "helpers.h"
#include "signals/signals.h"

static inline pid_t t_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* A thread that runs fn(t) once its tid is published. */
struct t_thread {
	pthread_t th;
	_Atomic pid_t tid;
	_Atomic int stop;
	_Atomic int go;
	int cpu; /* pinned there before fn, or -1 */
	void (*fn)(struct t_thread *);
	struct signals *s;
	unsigned worker;
	void *arg;
};

/* Pin thread 'tid' (0: the caller) to one CPU: 0 or -errno. */
static inline int t_pin(pid_t tid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(tid, sizeof(set), &set) ? -errno : 0;
}

/* Let thread 'tid' run on every CPU the process may use. */
static inline int t_unpin(pid_t tid)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	return sched_setaffinity(tid, sizeof(set), &set) ? -errno : 0;
}

/* The process's usable CPUs: how many, and the first two. */
static inline int t_cpus(int *first, int *second)
{
	cpu_set_t set;
	int i, n = 0;

	*first = *second = -1;
	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	for (i = 0; i < CPU_SETSIZE; i++) {
		if (!CPU_ISSET(i, &set))
			continue;
		if (n == 0)
			*first = i;
		else if (n == 1)
			*second = i;
		n++;
	}
	return n;
}

static void *t_thread_main(void *p)
{
	struct t_thread *t = p;

	if (t->cpu >= 0 && t_pin(0, t->cpu))
		fprintf(stderr, "%s: cannot pin to CPU %d\n", t_name, t->cpu);
	atomic_store(&t->tid, t_gettid());
	while (!atomic_load(&t->go))
		t_sleep_ms(1);
	t->fn(t);
	return NULL;
}

/* Start the thread; returns once its tid is known (fn waits for go). */
static inline void t_thread_start(struct t_thread *t)
{
	int r = pthread_create(&t->th, NULL, t_thread_main, t);

	REQUIRE(r == 0, "pthread_create: %s", strerror(r));
	while (!atomic_load(&t->tid))
		sched_yield();
}

static inline void t_thread_join(struct t_thread *t)
{
	atomic_store(&t->stop, 1);
	atomic_store(&t->go, 1);
	pthread_join(t->th, NULL);
}

/* Burn CPU until stopped. */
static inline void t_spin(struct t_thread *t)
{
	volatile uint64_t x = 0;
	unsigned i;

	while (!atomic_load_explicit(&t->stop, memory_order_relaxed))
		for (i = 0; i < 10000; i++)
			x = x + i;
}

/* Thread CPU time in seconds. */
static inline double t_cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Burn 'ms' of this thread's CPU time without sleeping (longer in wall
 * time when other load shares the CPU).
 */
static inline void t_burn_ms(unsigned ms)
{
	double end = t_cpu_now() + ms / 1000.0;
	volatile uint64_t x = 0;
	unsigned i;

	while (t_cpu_now() < end)
		for (i = 0; i < 1000; i++)
			x = x + i;
}

/*
 * Open 'source' ("bpf" or "proc") for the tids. eBPF that cannot load for
 * want of privileges or of a build with the probes skips the test (77);
 * eBPF that fails otherwise fails it, with libbpf's messages.
 */
static inline struct signals *
t_open_source(const char *source, const pid_t *tids, unsigned n, unsigned extra)
{
	struct signals *s;
	int err = 0;

	if (!strcmp(source, "proc")) {
		s = signals_open(tids, n, SIGNALS_FORCE_PROC | extra, &err);
		REQUIRE(s != NULL, "signals_open(proc): %s", strerror(-err));
		REQUIRE(signals_source(s) == SIGNALS_PROC, "source %d",
			signals_source(s));
		/* Tests read right after polling: no rate limit. */
		signals_set_period(s, 1);
		return s;
	}
	REQUIRE(!strcmp(source, "bpf"), "unknown source '%s'", source);
	s = signals_open(tids, n, SIGNALS_REQUIRE_BPF | extra, &err);
	if (s)
		return s;
	if (err == -EPERM)
		t_skip("the eBPF probes need root (or CAP_BPF+CAP_PERFMON): "
		       "run this test as root to check them");
	if (err == -ENOTSUP)
		t_skip("myriad_signals was built without the eBPF probes "
		       "(clang, bpftool or the kernel's BTF missing at "
		       "configure time: see meson's 'bpf:' message)");
	/* Privileged and still refused: say why, with libbpf's words. */
	s = signals_open(tids, n, 0, &err);
	fprintf(stderr, "%s: eBPF did not load: %s\nlibbpf said:\n%s\n", t_name,
		s ? signals_error(s) : strerror(-err), s ? signals_log(s) : "");
	signals_close(s);
	REQUIRE(0, "eBPF probes did not load with privileges (%s)",
		strerror(-err));
	return NULL;
}

/* Poll now (the tests set the period to 1 ns), then read. */
static inline void t_snap(struct signals *s, unsigned worker,
			  struct worker_signals *out)
{
	int r = signals_poll(s, clock_ns(CLOCK_MONOTONIC));

	CHECK(r >= 0, "signals_poll: %d", r);
	signals_read(s, worker, out);
}

/* d = b - a for the counters (cpu and on_cpu from b). */
static inline void t_delta(struct worker_signals *d,
			   const struct worker_signals *a,
			   const struct worker_signals *b)
{
	unsigned i;

	*d = *b;
	d->preempt -= a->preempt;
	d->voluntary -= a->voluntary;
	d->switch_in -= a->switch_in;
	d->wakeups -= a->wakeups;
	d->rq_delay_ns -= a->rq_delay_ns;
	d->rq_delay_count -= a->rq_delay_count;
	d->oncpu_ns -= a->oncpu_ns;
	d->offcpu_ns -= a->offcpu_ns;
	d->migrations -= a->migrations;
	d->blocks -= a->blocks;
	d->blocked_ns -= a->blocked_ns;
	for (i = 0; i < SIGNALS_HIST_BUCKETS; i++)
		d->rq_hist[i] -= a->rq_hist[i];
}

static inline void t_print(const char *label, const struct worker_signals *w)
{
	printf("%-22s preempt %6" PRIu64 "  voluntary %6" PRIu64
	       "  rq_delay %8.2f ms (%" PRIu64 " waits)  oncpu %8.2f ms"
	       "  offcpu %8.2f ms  migrations %4" PRIu64 "  cpu %d%s\n",
	       label, w->preempt, w->voluntary, w->rq_delay_ns / 1e6,
	       w->rq_delay_count, w->oncpu_ns / 1e6, w->offcpu_ns / 1e6,
	       w->migrations, w->cpu, w->on_cpu ? " (on cpu)" : "");
}

/*
 * Snapshots of thread 'slot' until it was switched in after 'since' (its
 * timeslices moved; 'out' may be 'since'), then one more: every wait of it
 * that was under way at 'since' has ended and is counted, and what its
 * switch-in stored (its CPU) is read whole. However long a loaded machine
 * keeps it off a CPU; false after 10 s (times T_SLOW).
 */
static inline bool t_ran_since(struct signals *s, unsigned slot,
			       const struct worker_signals *since,
			       struct worker_signals *out)
{
	double end = t_now() + 10.0 * T_SLOW;
	uint64_t before = since->switch_in;

	do {
		t_snap(s, slot, out);
		if (out->switch_in > before) {
			t_snap(s, slot, out);
			return true;
		}
		t_sleep_ms(1);
	} while (t_now() < end);
	return false;
}

/*
 * Two spinners pinned to one CPU, the waiter 'w' in slot 0 and the runner
 * 'h' in slot 1, read at a (wa before ha) and b (wb before hb): while one
 * runs the other waits, so each one's run-queue delay covers the other's
 * time on CPU. Counted from the waiter's read before the runner's (its
 * waits end later, so they count) to a read of the waiter after it ran
 * again following the runner's last read (every wait that holds counted
 * CPU time has ended). Exact with either source, whatever else the machine
 * runs: with /proc, CPU time (the task clock) never exceeds the delay (the
 * run queue's clock) of the wait it lies in.
 */
static inline void t_check_cover(const char *src, struct signals *s,
				 const struct worker_signals *wa,
				 const struct worker_signals *ha,
				 const struct worker_signals *wb,
				 const struct worker_signals *hb)
{
	struct worker_signals w2, h2;

	REQUIRE(t_ran_since(s, 0, wb, &w2) && t_ran_since(s, 1, hb, &h2),
		"%s: a spinner never ran again", src);
	CHECK(hb->oncpu_ns > ha->oncpu_ns && wb->oncpu_ns > wa->oncpu_ns,
	      "%s: on CPU: hog %" PRIu64 " ns, worker %" PRIu64 " ns", src,
	      hb->oncpu_ns - ha->oncpu_ns, wb->oncpu_ns - wa->oncpu_ns);
	CHECK(hb->oncpu_ns - ha->oncpu_ns <= w2.rq_delay_ns - wa->rq_delay_ns,
	      "%s: the hog ran %" PRIu64 " ns, the worker beside it waited "
	      "%" PRIu64 " ns",
	      src, hb->oncpu_ns - ha->oncpu_ns,
	      w2.rq_delay_ns - wa->rq_delay_ns);
	CHECK(wb->oncpu_ns - wa->oncpu_ns <= h2.rq_delay_ns - ha->rq_delay_ns,
	      "%s: the worker ran %" PRIu64 " ns, the hog beside it waited "
	      "%" PRIu64 " ns",
	      src, wb->oncpu_ns - wa->oncpu_ns,
	      h2.rq_delay_ns - ha->rq_delay_ns);
}

/* Argument "--source bpf|proc" (default bpf), others fail. */
static inline const char *t_parse_source(int argc, char **argv)
{
	const char *src = "bpf";
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--source") && i + 1 < argc) {
			src = argv[++i];
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n", t_name,
				argv[i]);
			exit(T_FAIL);
		}
	}
	return src;
}

#endif
