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
 * /proc/PID/task/TID/status every 0.5 ms, with the time of each read, so
 * that the runtime's count at any instant (an interval's start, ts -
 * interval_s, and end, ts) is known by interpolation, without depending
 * on when this process gets a CPU to read the tool's line.
 *
 * Tolerance for `run` (per worker, over the whole traced window): each
 * worker publishes its slot every 61 steps and when it parks, so the shm
 * value trails the true count by at most 60 steps at each end (120 per
 * worker); the sampler reads at most every 0.5 ms, and a starved sampler
 * leaves wider gaps that interpolation bridges at the average rate: 2% of
 * the count covers a 30 ms gap at each end of the 1.5-2 s window. With
 * the eBPF source both sides count the same event (CTR_INC(RUN) sits
 * beside the run probe in sched/task.c); with the shm source the tool
 * reads the same counters and the check is of its arithmetic.
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
#define RUN_SLACK_STEPS 120 /* per worker: 60 steps of lag at each end */
#define RUN_SLACK_FRAC 0.02

struct snap {
	double t; /* CLOCK_REALTIME, s */
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
			/* The reads' midpoint: they take some microseconds. */
			s->t = (t0 + now_real()) / 2;
			atomic_store(&nsnaps, n + 1);
		}
		usleep(500);
	}
	return NULL;
}

/* Worker w's counter at time t (the snapshots' linear interpolation). */
static bool at(double t, unsigned w, bool preempt, double *out, double *gap)
{
	unsigned n = atomic_load(&nsnaps), i;
	const struct snap *a, *b;
	double va, vb, f;

	for (i = 1; i < n; i++) {
		a = &snaps[i - 1];
		b = &snaps[i];
		if (b->t < t)
			continue;
		if (a->t > t)
			return false;
		va = preempt ? a->preempt[w] : a->run[w];
		vb = preempt ? b->preempt[w] : b->run[w];
		f = b->t > a->t ? (t - a->t) / (b->t - a->t) : 0;
		*out = va + f * (vb - va);
		*gap = b->t - a->t;
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
		      json_real_value(json_object_get(o, "interval_s")) > 0.1 &&
		      json_real_value(json_object_get(o, "interval_s")) < 1.0,
	      "interval %u: interval_s not about 0.5", k);
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
	double traced_s = 0, gap;
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
			if (n >= NSAMPLES || (n && snaps[n - 1].t > t_last))
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

	/* 2 s in 0.5 s intervals: 4, the last possibly a little short. */
	REQUIRE(niv >= 3 && niv <= 5, "%u intervals, want 4", niv);
	for (k = 0; k < niv; k++) {
		check_interval(iv[k], bpf ? "bpf" : "shm+proc", k);
		traced_s +=
			json_real_value(json_object_get(iv[k], "interval_s"));
		if (k)
			CHECK(json_real_value(json_object_get(iv[k], "ts")) >
				      json_real_value(
					      json_object_get(iv[k - 1], "ts")),
			      "interval %u: ts does not grow", k);
	}
	for (k = 0; k < nw; k++)
		CHECK(ran[k] > 0, "worker %u ran nothing in %u intervals", k,
		      niv);
	CHECK(traced_s > 1.8 && traced_s < 2.3,
	      "intervals cover %.3f s, want 2", traced_s);
	if (t_failures)
		return t_result();

	/*
	 * Agreement: each worker's run summed over the intervals against the
	 * runtime's counter from the first interval's start to the last's
	 * end.
	 */
	{
		double t_begin =
			json_real_value(json_object_get(iv[0], "ts")) -
			json_real_value(json_object_get(iv[0], "interval_s"));
		double t_end =
			json_real_value(json_object_get(iv[niv - 1], "ts"));

		for (i = 0; i < nw; i++) {
			long long tr = 0, tp_ = 0;
			double a, b, pa, pb, g2, want, diff, tol;

			for (k = 0; k < niv; k++) {
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
			REQUIRE(at(t_begin, i, false, &a, &gap) &&
					at(t_end, i, false, &b, &g2),
				"worker %u: no shm samples around the traced "
				"window",
				i);
			want = b - a;
			diff = fabs((double)tr - want);
			tol = RUN_SLACK_STEPS + RUN_SLACK_FRAC * want;
			printf("worker %u: run %lld (myriad-trace, %s) vs %.0f "
			       "(shm counters), diff %.0f, tolerance %.0f; "
			       "sampler gaps %.2f/%.2f ms\n",
			       i, tr, source, want, diff, tol, gap * 1e3,
			       g2 * 1e3);
			CHECK(diff <= tol,
			      "worker %u: run %lld, the runtime counted %.0f "
			      "(tolerance %.0f)",
			      i, tr, want, tol);
			CHECK(want > 1000,
			      "worker %u: the bench ran %.0f steps", i, want);
			/*
			 * Preemptions: the kernel's own count (nivcsw) over
			 * the same window; eBPF counts the same switches
			 * (preempted, or switched out runnable), /proc reads
			 * the very counter. Few per second: a loose bound.
			 */
			if (at(t_begin, i, true, &pa, &gap) &&
			    at(t_end, i, true, &pb, &g2)) {
				double pw = pb - pa;

				printf("worker %u: preempt %lld vs %.0f "
				       "(/proc nonvoluntary_ctxt_switches)\n",
				       i, tp_, pw);
				CHECK(fabs((double)tp_ - pw) <= 10 + 0.2 * pw,
				      "worker %u: preempt %lld, the kernel "
				      "counted %.0f",
				      i, tp_, pw);
			}
		}
	}
	for (k = 0; k < niv; k++)
		json_decref(iv[k]);
	free(snaps);
	return t_result();
}
