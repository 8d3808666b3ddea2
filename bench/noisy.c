/* SPDX-License-Identifier: MIT */
/*
 * bench/noisy.c: the noisy workload: fork-join fib rounds while a CPU hog
 * is pinned to one core, under the default or the kernel-aware policy.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/*
 * As the Go and Tokio peers do it (bench/peers/):
 * - The hog: a process forked before the runtime exists (so it shares
 *   nothing with it), pinned with sched_setaffinity to CPU --hog-cpu
 *   (default 0), spinning in user space without system calls; the run
 *   starts once it says it is pinned, and it is killed (SIGKILL) after the
 *   last round. PR_SET_PDEATHSIG kills it if we die first.
 * - The work: --rounds (default 10) rounds, one after the other, each a
 *   fork-join fib(n) exactly as the fib workload (a task per call, no
 *   cutoff). tasks = rounds * (2 fib(n+1) - 1); tasks_per_s = tasks /
 *   wall_s, wall_s from the first spawn to the last round joined.
 * - The unit of p99_us: a fib(u) sub-job, u = n - 12 (at least 1), of
 *   which each round has fib(13) = 233 for n >= 13: its latency runs from
 *   the first step of the fib(u) call to its result (its whole subtree
 *   done), so a piece of it stuck on a worker the hog preempts shows.
 *   Nearest rank over every unit of every round (p50_us likewise).
 * - --policy default|kernel: myriad_policy_default or myriad_policy_kernel
 *   set explicitly (MYRIAD_POLICY is not read); with kernel, the signals'
 *   source (eBPF or /proc) goes to stderr.
 * MYRIAD_BENCH_NOISY_DEBUG=1 prints on stderr, every 20 ms, each worker's
 * signals over the period (time on CPU, run-queue delay, preemptions, its
 * CPU) and the active worker count the policy last chose (the kernel
 * policy is wrapped to see it; with the default policy the signals are
 * opened for the print, which the measured runs never do).
 */
#define NOISY_UNIT_DEPTH 12
#define NOISY_DEBUG_PERIOD_NS 20000000ull

static struct {
	int64_t rounds;
	int unit;		   /* u: the fib(u) calls are the units */
	int hog_cpu;		   /* -1: no hog (a diagnostic) */
	pid_t hog;		   /* the hog process, or -1 */
	bool kernel;		   /* --policy kernel */
	uint64_t *lats;		   /* every unit's latency, ns */
	size_t nlats;		   /* room in lats */
	_Atomic size_t next;	   /* the next free slot */
	_Atomic unsigned active;   /* debug: the policy's last answer */
	_Atomic int64_t bad_round; /* a round whose result was wrong */
} N = { .hog = -1 };

/* How many calls fib(u) makes in the tree of fib(n): 0 when n < u. */
static int64_t noisy_units_per_round(int n, int u)
{
	int64_t c[64] = { 0 };
	int j;

	for (j = 0; j <= n; j++)
		c[j] = j == u ? 1 : j > u && j >= 2 ? c[j - 1] + c[j - 2] : 0;
	return c[n];
}

struct nfib {
	MYRIAD_CORO_FIELD;
	int n;
	uint64_t t0; /* a unit's first step */
	myriad_task_t *a, *b;
};

static int noisy_fib_step(myriad_task_t *self, void *p)
{
	struct nfib *st = p;
	struct nfib c = { 0 };
	size_t k;

	MYRIAD_BEGIN(st);
	if (st->n == N.unit)
		st->t0 = myriad_now_ns();
	if (st->n < 2) {
		myriad_task_set_result(self, st->n);
	} else {
		c.n = st->n - 1;
		st->a = spawn(self, noisy_fib_step, &c, sizeof(c), 0);
		c.n = st->n - 2;
		st->b = spawn(self, noisy_fib_step, &c, sizeof(c), 0);
		MYRIAD_JOIN(st, self);
		myriad_task_set_result(self, myriad_task_result(st->a) +
						     myriad_task_result(st->b));
	}
	if (st->n == N.unit) {
		k = atomic_fetch_add_explicit(&N.next, 1, memory_order_relaxed);
		if (k < N.nlats)
			N.lats[k] = myriad_now_ns() - st->t0;
	}
	MYRIAD_END(st);
}

struct noisy_root {
	MYRIAD_CORO_FIELD;
	int64_t r;
	myriad_task_t *a;
};

static int noisy_root_step(myriad_task_t *self, void *p)
{
	struct noisy_root *st = p;
	struct nfib c = { 0 };

	MYRIAD_BEGIN(st);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->r = 0; st->r < N.rounds && !B.failed; st->r++) {
		c.n = (int)B.n;
		st->a = spawn(self, noisy_fib_step, &c, sizeof(c), 0);
		MYRIAD_JOIN(st, self);
		if (st->a)
			myriad_task_set_result(self, myriad_task_result(st->a));
	}
	clock_gettime(CLOCK_MONOTONIC, &B.t1);
	MYRIAD_END(st);
}

/* Exits 2 when 'cpu' is not one this process may run on. */
static void noisy_check_cpu(int cpu)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0) {
		fprintf(stderr, "myriad-bench: noisy: sched_getaffinity: %s\n",
			strerror(errno));
		exit(1);
	}
	if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set)) {
		fprintf(stderr,
			"myriad-bench: noisy: --hog-cpu %d is not in this process's CPU affinity mask\n",
			cpu);
		exit(2);
	}
}

/* The hog: forked, pinned, spinning; returns once it runs pinned. */
static bool noisy_hog_start(int cpu)
{
	pid_t parent = getpid();
	int fds[2];
	char c = 0;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "myriad-bench: noisy: pipe: %s\n",
			strerror(errno));
		return false;
	}
	fflush(NULL);
	N.hog = fork();
	if (N.hog < 0) {
		fprintf(stderr, "myriad-bench: noisy: fork: %s\n",
			strerror(errno));
		return false;
	}
	if (N.hog == 0) {
		cpu_set_t set;
		volatile uint64_t spin = 0;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		prctl(PR_SET_NAME, "myriad-hog");
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			_exit(3);
		if (write(fds[1], "r", 1) != 1)
			_exit(4);
		close(fds[1]);
		for (;;)
			spin++;
	}
	close(fds[1]);
	do
		n = read(fds[0], &c, 1);
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	if (n != 1) {
		fprintf(stderr,
			"myriad-bench: noisy: the hog could not pin itself to CPU %d\n",
			cpu);
		return false;
	}
	return true;
}

static void noisy_hog_stop(void)
{
	int status;

	if (N.hog <= 0)
		return;
	kill(N.hog, SIGKILL);
	waitpid(N.hog, &status, 0);
	N.hog = -1;
}

/* The kernel policy with active_workers watched (debug only). */
static struct myriad_policy_ops noisy_watched;

static unsigned noisy_watch_active(void *ctx)
{
	unsigned a = myriad_policy_kernel.active_workers(ctx);

	atomic_store_explicit(&N.active, a, memory_order_relaxed);
	return a;
}

/* MYRIAD_BENCH_NOISY_DEBUG: the signals per worker every 20 ms. */
static _Atomic bool noisy_debug_stop;

static void *noisy_debug_main(void *arg)
{
	myriad_rt_t *rt = arg;
	unsigned n = (unsigned)myriad_rt_workers(rt), i;
	struct myriad_worker_signals *prev = calloc(n, sizeof(*prev)), s;
	uint64_t t0 = myriad_now_ns(), last = t0, now;

	if (!prev)
		return NULL;
	for (i = 0; i < n; i++)
		myriad_rt_signals(rt, i, &prev[i]);
	while (!atomic_load(&noisy_debug_stop)) {
		struct timespec ts = { 0, (long)NOISY_DEBUG_PERIOD_NS };
		char line[512];
		int len;

		nanosleep(&ts, NULL);
		now = myriad_now_ns();
		len = snprintf(line, sizeof(line),
			       "noisy-debug t=%.3f active=%u", (now - t0) / 1e9,
			       atomic_load(&N.active));
		for (i = 0; i < n && len < (int)sizeof(line); i++) {
			if (myriad_rt_signals(rt, i, &s) < 0)
				break;
			len += snprintf(
				line + len, sizeof(line) - (size_t)len,
				" w%u[cpu=%d on=%.2f rq=%.2f pre=%" PRIu64 "]",
				i, s.cpu,
				(double)(s.oncpu_ns - prev[i].oncpu_ns) /
					(double)(now - last),
				(double)(s.rq_delay_ns - prev[i].rq_delay_ns) /
					(double)(now - last),
				s.preempt - prev[i].preempt);
			prev[i] = s;
		}
		last = now;
		fprintf(stderr, "%s\n", line);
	}
	free(prev);
	return NULL;
}

static const char *policy; /* "default" or "kernel" */
static bool noisy_debug;   /* MYRIAD_BENCH_NOISY_DEBUG */

/* --n N (30) --policy default|kernel --rounds R (10) --hog-cpu C (0) */
static int64_t noisy_parse(const struct bench_args *a)
{
	if (a->tasks >= 0 || a->yields >= 0 || a->pairs >= 0)
		usage("noisy takes --n --policy --rounds --hog-cpu");
	B.n = a->n >= 0 ? a->n : 30;
	if (B.n < 2 || B.n > 40)
		usage("--n from 2 to 40 for noisy");
	N.rounds = a->rounds >= 0 ? a->rounds : 10;
	if (N.rounds < 1)
		usage("--rounds must be at least 1 for noisy");
	policy = a->policy ? a->policy : "default";
	if (strcmp(policy, "default") && strcmp(policy, "kernel"))
		usage("--policy is default or kernel");
	N.kernel = !strcmp(policy, "kernel");
	N.hog_cpu = a->hog_cpu >= -1 ? (int)a->hog_cpu : 0;
	N.unit = B.n - NOISY_UNIT_DEPTH >= 1 ? (int)B.n - NOISY_UNIT_DEPTH : 1;
	N.nlats = (size_t)(N.rounds * noisy_units_per_round((int)B.n, N.unit));
	noisy_debug = getenv("MYRIAD_BENCH_NOISY_DEBUG") &&
		      *getenv("MYRIAD_BENCH_NOISY_DEBUG") &&
		      strcmp(getenv("MYRIAD_BENCH_NOISY_DEBUG"), "0");
	return 0;
}

static int noisy_prepare(struct myriad_rt_opts *o)
{
	N.lats = calloc(N.nlats, sizeof(*N.lats));
	if (!N.lats) {
		fprintf(stderr, "myriad-bench: noisy: out of memory\n");
		return 1;
	}
	if (N.kernel && noisy_debug) {
		noisy_watched = myriad_policy_kernel;
		noisy_watched.active_workers = noisy_watch_active;
		o->policy = &noisy_watched;
	} else {
		o->policy = N.kernel ? &myriad_policy_kernel
				     : &myriad_policy_default;
	}
	if (noisy_debug && !N.kernel)
		o->signals = 1;
	/* Before any thread exists: the hog is forked. */
	if (N.hog_cpu >= 0) {
		noisy_check_cpu(N.hog_cpu);
		atexit(noisy_hog_stop);
		if (!noisy_hog_start(N.hog_cpu))
			return 1;
	}
	return 0;
}

/* The signals' source, said when they matter. */
static int noisy_setup(myriad_rt_t *rt)
{
	const char *why = "";
	int src = myriad_rt_signals_source(rt, &why);

	atomic_store(&N.active, (unsigned)myriad_rt_workers(rt));
	if (N.kernel || noisy_debug)
		fprintf(stderr,
			"myriad-bench: noisy: policy %s, signals from %s%s%s\n",
			policy,
			src == MYRIAD_SIG_BPF	 ? "eBPF"
			: src == MYRIAD_SIG_PROC ? "/proc"
						 : "nowhere",
			why && *why ? ": " : "", why ? why : "");
	return 0;
}

static int64_t res; /* the last round's fib(n) */
/* fib(n) and fib(n + 1), for the check and the task count */
static int64_t fib_n, fib_n1;

static int noisy_run(myriad_rt_t *rt, int64_t *tasks)
{
	struct noisy_root nroot = { 0 };
	pthread_t noisy_dbg;
	bool noisy_dbg_ok = false;
	int64_t a = 0, b = 1, k, c;
	int r;

	if (noisy_debug)
		noisy_dbg_ok = pthread_create(&noisy_dbg, NULL,
					      noisy_debug_main, rt) == 0;
	r = myriad_rt_block_on(rt, noisy_root_step, &nroot, sizeof(nroot),
			       &res);
	noisy_hog_stop();
	if (noisy_dbg_ok) {
		atomic_store(&noisy_debug_stop, true);
		pthread_join(noisy_dbg, NULL);
	}
	for (k = 0; k <= B.n; k++) {
		c = a + b;
		a = b;
		b = c;
	}
	/* a = fib(n + 1): fib(n) makes 2 fib(n + 1) - 1 calls. */
	*tasks = N.rounds * (2 * a - 1);
	fib_n1 = a;
	fib_n = b - a;
	return r;
}

static int noisy_check(int r)
{
	if (r >= 0 && !B.failed && res != fib_n) {
		fprintf(stderr,
			"myriad-bench: noisy: fib(%" PRId64
			") came out %" PRId64 ", not %" PRId64 "\n",
			B.n, res, fib_n);
		return 1;
	}
	return 0;
}

static void noisy_result(double w, int64_t tasks)
{
	size_t nl = atomic_load(&N.next);

	if (nl > N.nlats)
		nl = N.nlats;
	/* Nearest rank over every unit, as the peers. */
	qsort(N.lats, nl, sizeof(*N.lats), cmp_u64);
	printf(" policy=%s tasks_per_s=%.0f p99_us=%.1f p50_us=%.1f"
	       " hog_cpu=%d unit_n=%d units=%zu",
	       policy, tasks / w,
	       nl ? N.lats[(nl * 99 + 99) / 100 - 1] / 1e3 : 0.0,
	       nl ? N.lats[(nl * 50 + 99) / 100 - 1] / 1e3 : 0.0, N.hog_cpu,
	       N.unit, nl);
}

const struct workload wl_noisy = {
	.name = "noisy",
	.usage = "noisy --n N --policy default|kernel [--rounds R]\n"
		 "               [--hog-cpu C]  (C = -1: no hog)",
	.parse = noisy_parse,
	.prepare = noisy_prepare,
	.setup = noisy_setup,
	.run = noisy_run,
	.check = noisy_check,
	.result = noisy_result,
};
