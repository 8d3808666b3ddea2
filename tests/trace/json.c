/* SPDX-License-Identifier: MIT */
/*
 * tests/trace/json.c: myriad-trace --json against a running myriad-bench:
 * well-formed intervals, and counts that agree with the runtime's own.
 *
 *   test-trace-json --trace PATH --bench PATH --source bpf|shm
 *                   [--workers N] [--have-bpf 0|1]
 *
 * Starts `myriad-bench yield --tasks 1000 --yields 2000000 --workers N`
 * with MYRIAD_STATS_SHM=1 (it runs for seconds), and `myriad-trace --json
 * --duration 2 --interval 0.5 PID` (with --no-bpf for the shm source).
 * Meanwhile a sampler thread reads the runtime's counters in
 * /dev/shm/myriad.PID.0 and the kernel's involuntary switches in
 * /proc/PID/task/TID/status every 0.5 ms, with the times just before and
 * just after each read.
 *
 * Agreement is checked by brackets, not by a tolerance in time: the
 * counters only grow, the tool reads every worker's counts within
 * [ts - read_s, ts] of each interval, so over intervals 1..n-1 its sum is
 * C(r_last) - C(r_first) with both read times bracketed; a sample that
 * ended before an instant is a lower bound of the counter there, one that
 * began after it an upper bound. However late the sampler or the tool
 * gets a CPU, the true count lies between the bounds, and a tool that
 * misattributes, drops or doubles an interval's counts falls outside
 * them (each end of the bracket is a few ms of a worker's steps; an
 * interval is 0.5 s of them). With the shm source the tool reads the very
 * counters the sampler reads. With the eBPF source it counts the run
 * probe, and the shm slot trails the true count by at most 61 steps (a
 * worker publishes it every 61 loop ticks and when it parks): RUN_LAG at
 * each end. The eBPF preemption count (preempted, or switched out
 * runnable) is not the kernel's nivcsw counter itself: a loose bound.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <jansson.h>

#include "helpers.h"
#include "trace_test.h"
#include <myriad/stats.h>

#define MAXW 64
#define NSAMPLES 65536
#define RUN_LAG 62 /* eBPF source: the shm slot's lag, plus the probe's */

struct snap {
	double t0, t1; /* CLOCK_REALTIME, s: just before and after the reads */
	double run[MAXW];
	double preempt[MAXW];
};

static struct snap *snaps;
static _Atomic unsigned nsnaps;
static _Atomic int sampler_stop;
static const volatile struct myriad_shm *shm;
static unsigned nw;
static pid_t bench_pid;
static int status_fd[MAXW];
/* Steps each worker ran over the intervals (check_interval()). */
static long long ran[MAXW];

static double now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long nivcsw(int fd)
{
	char buf[2048];
	const char *p;
	ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);

	if (r <= 0)
		return -1;
	buf[r] = '\0';
	p = strstr(buf, "nonvoluntary_ctxt_switches:");
	return p ? atoll(p + 27) : -1;
}

static void *sampler(void *arg)
{
	unsigned i, n;

	(void)arg;
	while (!atomic_load(&sampler_stop)) {
		n = atomic_load(&nsnaps);
		if (n < NSAMPLES) {
			struct snap *s = &snaps[n];
			double t0 = now_real();

			for (i = 0; i < nw; i++) {
				s->run[i] = (double)__atomic_load_n(
					&shm->w[i].ctr[MYRIAD_CTR_RUN],
					__ATOMIC_RELAXED);
				s->preempt[i] = (double)nivcsw(status_fd[i]);
			}
			s->t0 = t0;
			s->t1 = now_real();
			atomic_store(&nsnaps, n + 1);
		}
		usleep(500);
	}
	return NULL;
}

static double real_of(json_t *o, const char *key)
{
	return json_real_value(json_object_get(o, key));
}

static double value(const struct snap *s, unsigned w, bool preempt)
{
	return preempt ? s->preempt[w] : s->run[w];
}

/* A lower bound of worker w's counter at t: the last sample ended by t. */
static bool below(double t, unsigned w, bool preempt, double *out)
{
	unsigned n = atomic_load(&nsnaps), i;

	for (i = n; i-- > 0;)
		if (snaps[i].t1 <= t) {
			*out = value(&snaps[i], w, preempt);
			return true;
		}
	return false;
}

/* An upper bound at t: the first sample begun at or after t. */
static bool above(double t, unsigned w, bool preempt, double *out)
{
	unsigned n = atomic_load(&nsnaps), i;

	for (i = 0; i < n; i++)
		if (snaps[i].t0 >= t) {
			*out = value(&snaps[i], w, preempt);
			return true;
		}
	return false;
}

static pid_t start_bench(const char *bench, const char *workers)
{
	pid_t p = fork();

	if (p == 0) {
		int fd = open("/dev/null", O_WRONLY);

		/* If this test dies (the watchdog), the bench goes with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);

		dup2(fd, 1);
		dup2(fd, 2);
		setenv("MYRIAD_STATS_SHM", "1", 1);
		execl(bench, bench, "yield", "--tasks", "1000", "--yields",
		      "2000000", "--workers", workers, (char *)NULL);
		_exit(127);
	}
	return p;
}

/* The bench's shm file, once its header and every tid are there. */
static const volatile struct myriad_shm *wait_shm(pid_t pid, char *path,
						  size_t len)
{
	const volatile struct myriad_shm *m;
	struct stat st;
	double end = t_now() + 10;
	unsigned i;
	void *p;
	int fd;

	snprintf(path, len, "/dev/shm/myriad.%d.0", (int)pid);
	while (t_now() < end) {
		fd = open(path, O_RDONLY);
		if (fd >= 0 && fstat(fd, &st) == 0 &&
		    (size_t)st.st_size > sizeof(*m)) {
			p = mmap(NULL, (size_t)st.st_size, PROT_READ,
				 MAP_SHARED, fd, 0);
			close(fd);
			if (p == MAP_FAILED)
				return NULL;
			m = p;
			while (t_now() < end &&
			       __atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) !=
				       MYRIAD_SHM_MAGIC)
				t_sleep_ms(5);
			for (i = 0; i < m->nworkers; i++)
				if (!m->w[i].tid)
					break;
			if (i == m->nworkers && m->nworkers)
				return m;
			return NULL;
		}
		if (fd >= 0)
			close(fd);
		t_sleep_ms(10);
	}
	return NULL;
}

static bool is_count(json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* One interval object: its shape and internal sums. */
static void check_interval(json_t *o, const char *source, unsigned k)
{
	json_t *ws = json_object_get(o, "workers");
	json_t *tot = json_object_get(o, "totals");
	static const char *const ctrs[] = { "run",	   "steals",
					    "parks",	   "wakes",
					    "queue_len",   "preempt",
					    "rq_delay_ns", "oncpu_ns" };
	long long sum[8] = { 0 };
	bool seen[MAXW] = { false };
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	size_t i, c;

	CHECK(json_is_string(json_object_get(o, "type")) &&
		      !strcmp(json_string_value(json_object_get(o, "type")),
			      "interval"),
	      "interval %u: type is not \"interval\"", k);
	CHECK(json_is_real(json_object_get(o, "ts")),
	      "interval %u: ts not a number", k);
	CHECK(json_is_real(json_object_get(o, "interval_s")) &&
		      json_real_value(json_object_get(o, "interval_s")) > 0,
	      "interval %u: interval_s is not a positive number", k);
	CHECK(json_is_real(json_object_get(o, "read_s")) &&
		      json_real_value(json_object_get(o, "read_s")) >= 0,
	      "interval %u: read_s is not a number >= 0", k);
	CHECK(json_is_string(json_object_get(o, "source")) &&
		      !strcmp(json_string_value(json_object_get(o, "source")),
			      source),
	      "interval %u: source is not %s", k, source);
	REQUIRE(json_is_array(ws) && json_array_size(ws) == nw,
		"interval %u: %zu workers, want %u", k,
		json_is_array(ws) ? json_array_size(ws) : 0, nw);
	REQUIRE(json_is_object(tot), "interval %u: no totals", k);
	for (i = 0; i < nw; i++) {
		json_t *w = json_array_get(ws, i);
		json_int_t idx = json_integer_value(json_object_get(w, "idx"));
		json_int_t tid = json_integer_value(json_object_get(w, "tid"));
		json_int_t cpu = json_integer_value(json_object_get(w, "cpu"));

		REQUIRE(idx >= 0 && (unsigned)idx < nw && !seen[idx],
			"interval %u: worker %zu: idx %lld", k, i,
			(long long)idx);
		seen[idx] = true;
		CHECK(tid == shm->w[idx].tid,
		      "interval %u: worker %lld: tid %lld, shm says %d", k,
		      (long long)idx, (long long)tid, shm->w[idx].tid);
		CHECK(cpu >= 0 && cpu < ncpu, "interval %u: cpu %lld", k,
		      (long long)cpu);
		for (c = 0; c < 8; c++) {
			json_t *v = json_object_get(w, ctrs[c]);

			CHECK(is_count(v),
			      "interval %u: worker %lld: %s not a count", k,
			      (long long)idx, ctrs[c]);
			sum[c] += json_integer_value(v);
		}
		ran[idx] += json_integer_value(json_object_get(w, "run"));
	}
	/*
	 * The whole runtime runs the benchmark's steps in every interval;
	 * one worker of eight on two loaded CPUs (TSan) may get no CPU in
	 * one of them (each worker's run over the whole trace: main()).
	 */
	CHECK(sum[0] > 0, "interval %u: no worker ran anything", k);
	for (c = 0; c < 8; c++)
		CHECK(json_integer_value(json_object_get(tot, ctrs[c])) ==
			      sum[c],
		      "interval %u: totals.%s %lld, the workers' sum %lld", k,
		      ctrs[c],
		      (long long)json_integer_value(
			      json_object_get(tot, ctrs[c])),
		      sum[c]);
}

int main(int argc, char **argv)
{
	const char *trace = arg(argc, argv, "--trace", NULL);
	const char *bench = arg(argc, argv, "--bench", NULL);
	const char *source = arg(argc, argv, "--source", "bpf");
	bool bpf = !strcmp(source, "bpf");
	char shm_path[64], path[96], *line = NULL, pidbuf[16];
	json_t *iv[64];
	unsigned niv = 0, i, k;
	double traced_s = 0;
	size_t cap = 0;
	pthread_t th;
	int pfd[2], st;
	pid_t tp;
	FILE *f;

	t_name = "trace/json";
	if (!trace || !bench) {
		fprintf(stderr,
			"usage: %s --trace PATH --bench PATH "
			"--source bpf|shm [--workers N] [--have-bpf 0|1]\n",
			argv[0]);
		return T_FAIL;
	}
	if (bpf && geteuid() != 0) {
		t_skip("the eBPF source needs root (or CAP_BPF+CAP_PERFMON)");
		return T_SKIP;
	}
	if (bpf && !strcmp(arg(argc, argv, "--have-bpf", "1"), "0")) {
		t_skip("myriad-trace was built without its eBPF probes");
		return T_SKIP;
	}
	t_watchdog(60);
	snaps = calloc(NSAMPLES, sizeof(*snaps));
	REQUIRE(snaps, "out of memory");

	bench_pid = start_bench(bench, arg(argc, argv, "--workers", "2"));
	REQUIRE(bench_pid > 0, "fork: %s", strerror(errno));
	shm = wait_shm(bench_pid, shm_path, sizeof(shm_path));
	if (!shm) {
		kill(bench_pid, SIGKILL);
		waitpid(bench_pid, NULL, 0);
		REQUIRE(false, "%s: no shm file with MYRIAD_STATS_SHM=1",
			bench);
	}
	nw = shm->nworkers;
	REQUIRE(nw >= 1 && nw <= MAXW, "shm: %u workers", nw);
	for (i = 0; i < nw; i++) {
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status",
			 (int)bench_pid, shm->w[i].tid);
		status_fd[i] = open(path, O_RDONLY);
		REQUIRE(status_fd[i] >= 0, "%s: %s", path, strerror(errno));
	}
	REQUIRE(pthread_create(&th, NULL, sampler, NULL) == 0, "pthread");
	/* Samples before the tool's first interval begins, even when the
	 * sampler thread is slow to get a CPU (a loaded machine). */
	for (i = 0; i < 2000 && atomic_load(&nsnaps) < 2; i++)
		t_sleep_ms(1);

	/* myriad-trace --json --duration 2 --interval 0.5 [--no-bpf] PID */
	REQUIRE(pipe(pfd) == 0, "pipe");
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)bench_pid);
	tp = fork();
	if (tp == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		if (bpf)
			execl(trace, trace, "--json", "--duration", "2",
			      "--interval", "0.5", pidbuf, (char *)NULL);
		else
			execl(trace, trace, "--json", "--duration", "2",
			      "--interval", "0.5", "--no-bpf", pidbuf,
			      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	while (getline(&line, &cap, f) > 0 && niv < 64) {
		json_error_t e;
		json_t *o = json_loads(line, 0, &e);

		CHECK(o && json_is_object(o), "not a JSON object (%s): %s",
		      e.text, line);
		if (o)
			iv[niv++] = o;
	}
	fclose(f);
	free(line);
	REQUIRE(waitpid(tp, &st, 0) == tp, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "myriad-trace: status %d, want exit 0", st);
	/* The sampler passes the last interval's end (up to 2 s late). */
	if (niv) {
		double t_last =
			json_real_value(json_object_get(iv[niv - 1], "ts"));
		unsigned n;

		for (i = 0; i < 2000; i++) {
			n = atomic_load(&nsnaps);
			if (n >= NSAMPLES || (n && snaps[n - 1].t0 > t_last))
				break;
			t_sleep_ms(1);
		}
	}
	t_sleep_ms(5);
	atomic_store(&sampler_stop, 1);
	pthread_join(th, NULL);
	kill(bench_pid, SIGKILL);
	waitpid(bench_pid, NULL, 0);
	/* Killed, it did not remove its file. */
	unlink(shm_path);

	/*
	 * 2 s in 0.5 s intervals: 4. The tool sleeps to absolute times, so by
	 * interval k at least min(0.5 (k + 1), 2) s have passed, however late
	 * it woke; and each interval's length (monotonic, from just before
	 * one interval's reads to just before the next's) is the difference
	 * of the wall-clock instants its reads began, ts - read_s.
	 */
	REQUIRE(niv >= 3 && niv <= 5, "%u intervals, want 4", niv);
	for (k = 0; k < niv; k++) {
		double want_s = 0.5 * (k + 1) < 2 ? 0.5 * (k + 1) : 2;

		check_interval(iv[k], bpf ? "bpf" : "shm+proc", k);
		traced_s += real_of(iv[k], "interval_s");
		CHECK(traced_s >= want_s - 1e-3,
		      "intervals 0..%u cover %.3f s, want at least %.1f", k,
		      traced_s, want_s);
		if (k) {
			double began =
				real_of(iv[k], "ts") - real_of(iv[k], "read_s");
			double prev = real_of(iv[k - 1], "ts") -
				      real_of(iv[k - 1], "read_s");

			CHECK(real_of(iv[k], "ts") > real_of(iv[k - 1], "ts"),
			      "interval %u: ts does not grow", k);
			CHECK(fabs(began - prev -
				   real_of(iv[k], "interval_s")) < 2e-3,
			      "interval %u: interval_s %.6f, its reads began "
			      "%.6f s after the last interval's",
			      k, real_of(iv[k], "interval_s"), began - prev);
		}
	}
	for (k = 0; k < nw; k++)
		CHECK(ran[k] > 0, "worker %u ran nothing in %u intervals", k,
		      niv);
	if (t_failures)
		return t_result();

	/*
	 * Agreement: each worker's run (and preemptions) summed over
	 * intervals 1..n-1 lies between the bounds the samples give for the
	 * counter's growth from interval 0's reads to the last interval's.
	 */
	{
		/* The JSON has microseconds: widen each end by 2. */
		double f0 =
			real_of(iv[0], "ts") - real_of(iv[0], "read_s") - 2e-6;
		double f1 = real_of(iv[0], "ts") + 2e-6;
		double l0 = real_of(iv[niv - 1], "ts") -
			    real_of(iv[niv - 1], "read_s") - 2e-6;
		double l1 = real_of(iv[niv - 1], "ts") + 2e-6;
		double lag = bpf ? RUN_LAG : 0;

		for (i = 0; i < nw; i++) {
			long long tr = 0, tp_ = 0;
			double lo_a, lo_b, hi_a, hi_b, lo, hi;

			for (k = 1; k < niv; k++) {
				json_t *ws = json_object_get(iv[k], "workers");
				size_t j;

				for (j = 0; j < json_array_size(ws); j++) {
					json_t *w = json_array_get(ws, j);

					if (json_integer_value(json_object_get(
						    w, "idx")) != (json_int_t)i)
						continue;
					tr += json_integer_value(
						json_object_get(w, "run"));
					tp_ += json_integer_value(
						json_object_get(w, "preempt"));
				}
			}
			REQUIRE(below(l0, i, false, &lo_b) &&
					above(f1, i, false, &lo_a) &&
					above(l1, i, false, &hi_b) &&
					below(f0, i, false, &hi_a),
				"worker %u: no shm samples around the tool's "
				"reads",
				i);
			lo = lo_b - lo_a - lag;
			hi = hi_b - hi_a + lag;
			printf("worker %u: run %lld (myriad-trace, %s), the "
			       "runtime's counters say %.0f..%.0f\n",
			       i, tr, source, lo, hi);
			CHECK(tr >= lo && tr <= hi,
			      "worker %u: run %lld, the runtime counted "
			      "%.0f..%.0f",
			      i, tr, lo, hi);
			/*
			 * Preemptions: the kernel's own count (nivcsw); /proc
			 * is the very counter, eBPF counts the same switches
			 * its own way (few per second): a loose bound there.
			 */
			if (below(l0, i, true, &lo_b) &&
			    above(f1, i, true, &lo_a) &&
			    above(l1, i, true, &hi_b) &&
			    below(f0, i, true, &hi_a)) {
				lo = lo_b - lo_a;
				hi = hi_b - hi_a;
				if (bpf) {
					lo -= 10 + 0.2 * lo;
					hi += 10 + 0.2 * hi;
				}
				printf("worker %u: preempt %lld, /proc's "
				       "nonvoluntary_ctxt_switches say "
				       "%.0f..%.0f\n",
				       i, tp_, lo, hi);
				CHECK(tp_ >= lo && tp_ <= hi,
				      "worker %u: preempt %lld, the kernel "
				      "counted %.0f..%.0f",
				      i, tp_, lo, hi);
			}
		}
	}
	for (k = 0; k < niv; k++)
		json_decref(iv[k]);
	free(snaps);
	return t_result();
}
