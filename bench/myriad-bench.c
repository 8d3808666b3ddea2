/* SPDX-License-Identifier: MIT */
/*
 * bench/myriad-bench.c: the throughput benchmark of shared/BENCH.md on
 * libmyriad's public API: spawn, chain, fib, yield, pingpong; one RESULT
 * line per run on stdout, progress on stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <myriad.h>

/* What every workload shares: the count-down and the root's waker. */
struct bench {
	_Atomic int64_t left;	   /* tasks still to finish */
	myriad_waker_t root;	   /* woken by the last one */
	struct timespec t0, t1;	   /* first spawn, last completion */
	struct timespec t_spawned; /* park: all spawned */
	int64_t n, m;		   /* workload parameters */
	myriad_chan_t **chans;	   /* pingpong */
	_Atomic int failed;	   /* a spawn failed: -errno */
};

static struct bench B;

static double now_s(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec * 1e-9;
}

static double wall_s(void)
{
	return now_s(&B.t1) - now_s(&B.t0);
}

/* A line of /proc/self/status in kB ("VmRSS:", "VmHWM:"), or -1. */
static long status_kb(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = atol(line + strlen(key));
	fclose(f);
	return v;
}

/*
 * VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the process
 * that launched us (a Python harness would report its own peak).
 */
static long peak_rss_kb(void)
{
	return status_kb("VmHWM:");
}

static void usage(const char *msg)
{
	fprintf(stderr, "myriad-bench: %s\n", msg);
	fprintf(stderr,
		"usage: myriad-bench <spawn|chain|fib|yield|pingpong|park> [--workers N]\n"
		"         spawn|chain --n N    fib --n N    yield --tasks T --yields Y\n"
		"         pingpong --pairs P --rounds R    park --n N --sleep-ms S\n");
	exit(2);
}

/* One task finished: the last wakes the root and stamps the end time. */
static void count_down(void)
{
	if (atomic_fetch_sub_explicit(&B.left, 1, memory_order_acq_rel) == 1) {
		clock_gettime(CLOCK_MONOTONIC, &B.t1);
		myriad_waker_wake(B.root);
	}
}

/*
 * Spawn, or mark the run failed and wake the root, which stops waiting;
 * main then exits 1 without a RESULT line. Returns what
 * myriad_task_spawn() returns (NULL for a detached task).
 */
static myriad_task_t *spawn(myriad_task_t *self, myriad_step_fn fn,
			    const void *init, size_t size, unsigned flags)
{
	myriad_task_t *t;
	int err, none = 0;

	t = myriad_task_spawn(self, fn, init, size, flags, &err);
	if (err && atomic_compare_exchange_strong(&B.failed, &none, err))
		myriad_waker_wake(B.root);
	return t;
}

/* What a root waits for: every task finished, or a spawn failed. */
static bool run_over(void)
{
	return atomic_load(&B.left) == 0 || atomic_load(&B.failed);
}

/* The root of spawn, chain, yield and pingpong: start, then wait. */
struct root {
	MYRIAD_CORO_FIELD;
	int64_t i;
};

/* ---- spawn: N empty tasks, each counting down ---- */

static int empty_step(myriad_task_t *self, void *st)
{
	count_down();
	return MYRIAD_DONE;
}

static int spawn_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		spawn(self, empty_step, NULL, 0, MYRIAD_SPAWN_DETACHED);
		/* Give the spawned tasks a turn on this worker too. */
		if ((st->i & 255) == 255)
			MYRIAD_YIELD(st);
	}
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- chain: task i spawns task i+1 and ends ---- */

struct link {
	int64_t i;
};

static int chain_step(myriad_task_t *self, void *p)
{
	struct link *st = p, next = { st->i + 1 };

	if (next.i < B.n)
		spawn(self, chain_step, &next, sizeof(next),
		      MYRIAD_SPAWN_DETACHED);
	count_down();
	return MYRIAD_DONE;
}

static int chain_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct link first = { 0 };

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	spawn(self, chain_step, &first, sizeof(first), MYRIAD_SPAWN_DETACHED);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- fib: a task per call, both children spawned, then joined ---- */

struct fib {
	MYRIAD_CORO_FIELD;
	int n;
	myriad_task_t *a, *b;
};

static int fib_step(myriad_task_t *self, void *p)
{
	struct fib *st = p;
	struct fib c = { 0 };

	MYRIAD_BEGIN(st);
	if (st->n < 2) {
		myriad_task_set_result(self, st->n);
		return MYRIAD_DONE;
	}
	c.n = st->n - 1;
	st->a = spawn(self, fib_step, &c, sizeof(c), 0);
	c.n = st->n - 2;
	st->b = spawn(self, fib_step, &c, sizeof(c), 0);
	MYRIAD_JOIN(st, self);
	myriad_task_set_result(self, myriad_task_result(st->a) +
					     myriad_task_result(st->b));
	MYRIAD_END(st);
}

static int fib_root(myriad_task_t *self, void *p)
{
	struct fib *st = p;
	struct fib c = { 0 };

	MYRIAD_BEGIN(st);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	c.n = st->n;
	st->a = spawn(self, fib_step, &c, sizeof(c), 0);
	MYRIAD_JOIN(st, self);
	clock_gettime(CLOCK_MONOTONIC, &B.t1);
	myriad_task_set_result(self, myriad_task_result(st->a));
	MYRIAD_END(st);
}

/* ---- yield: T tasks each yield Y times ---- */

struct yielder {
	MYRIAD_CORO_FIELD;
	int64_t i;
};

static int yield_step(myriad_task_t *self, void *p)
{
	struct yielder *st = p;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < B.m; st->i++)
		MYRIAD_YIELD(st);
	count_down();
	MYRIAD_END(st);
}

static int yield_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++)
		spawn(self, yield_step, NULL, sizeof(struct yielder),
		      MYRIAD_SPAWN_DETACHED);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- pingpong: P pairs pass a token R times, two 1-slot channels ---- */

struct player {
	MYRIAD_CORO_FIELD;
	int64_t i;
	int64_t tok;
	myriad_chan_t *in, *out;
	bool serve; /* ping sends first */
};

static int player_step(myriad_task_t *self, void *p)
{
	struct player *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < B.m; st->i++) {
		if (st->serve) {
			MYRIAD_SEND(st, self, st->out, &st->tok, rc);
			if (rc < 0)
				break;
			MYRIAD_RECV(st, self, st->in, &st->tok, rc);
		} else {
			MYRIAD_RECV(st, self, st->in, &st->tok, rc);
			if (rc < 0)
				break;
			st->tok++;
			MYRIAD_SEND(st, self, st->out, &st->tok, rc);
		}
		if (rc < 0)
			break;
	}
	count_down();
	MYRIAD_END(st);
}

static int pingpong_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct player pl;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		memset(&pl, 0, sizeof(pl));
		pl.in = B.chans[2 * st->i + 1];
		pl.out = B.chans[2 * st->i];
		pl.serve = true;
		spawn(self, player_step, &pl, sizeof(pl),
		      MYRIAD_SPAWN_DETACHED);
		pl.in = B.chans[2 * st->i];
		pl.out = B.chans[2 * st->i + 1];
		pl.serve = false;
		spawn(self, player_step, &pl, sizeof(pl),
		      MYRIAD_SPAWN_DETACHED);
	}
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- park: N tasks each sleep S ms, all alive at once ---- */

/*
 * Per worker, on their own cache lines: ten million wake-ups must not
 * queue on one shared counter (the runtime's figure, not the benchmark's).
 */
struct park_shard {
	_Atomic int64_t finished, late_max_ns;
} __attribute__((aligned(64)));

static struct park_shard *shards;
static unsigned nshards;
static _Atomic int64_t alive_max;
static uint64_t park_ns;

/* The whole state is the timer: 64 + 32 bytes a task. */
static int park_step(myriad_task_t *self, void *p)
{
	myriad_timer_t *tm = p;
	struct park_shard *sh;
	int64_t late;
	int rc;

	rc = myriad_sleep(self, tm, park_ns);
	if (rc == -EAGAIN)
		return MYRIAD_PENDING;
	late = (int64_t)(myriad_now_ns() - myriad_timer_deadline(tm));
	/* Only this worker writes its shard: no read-modify-write. */
	sh = &shards[(unsigned)myriad_current_worker() % nshards];
	if (late > atomic_load_explicit(&sh->late_max_ns, memory_order_relaxed))
		atomic_store_explicit(&sh->late_max_ns, late,
				      memory_order_relaxed);
	atomic_store_explicit(
		&sh->finished,
		atomic_load_explicit(&sh->finished, memory_order_relaxed) + 1,
		memory_order_relaxed);
	count_down();
	return MYRIAD_DONE;
}

static int64_t park_late_ns(void)
{
	int64_t m = 0;
	unsigned k;

	for (k = 0; k < nshards; k++)
		if (atomic_load(&shards[k].late_max_ns) > m)
			m = atomic_load(&shards[k].late_max_ns);
	return m;
}

/* Alive now: spawned so far minus those finished. */
static void park_note_alive(int64_t spawned)
{
	int64_t a = spawned;
	unsigned k;

	for (k = 0; k < nshards; k++)
		a -= atomic_load(&shards[k].finished);
	if (a > atomic_load(&alive_max))
		atomic_store(&alive_max, a);
}

static int park_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		spawn(self, park_step, NULL, sizeof(myriad_timer_t),
		      MYRIAD_SPAWN_DETACHED);
		if ((st->i & 1023) == 1023) {
			park_note_alive(st->i + 1);
			MYRIAD_YIELD(st);
		}
	}
	park_note_alive(B.n);
	clock_gettime(CLOCK_MONOTONIC, &B.t_spawned);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- driver ---- */

/*
 * Progress on stderr for runs over a second: a line a second with the
 * tasks still to finish, never on stdout (scripts read RESULT there).
 */
static _Atomic bool finished;

static void *progress(void *arg)
{
	const char *wl = arg;
	int secs = 0;

	for (;;) {
		usleep(100000);
		if (atomic_load(&finished))
			return NULL;
		if (++secs % 10)
			continue;
		fprintf(stderr, "myriad-bench: %s: running for %d s\n", wl,
			secs / 10);
	}
}

static int64_t parse_int(const char *flag, const char *v, int64_t lo,
			 int64_t hi)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi) {
		char msg[160];

		snprintf(msg, sizeof(msg), "bad value '%s' for %s", v, flag);
		usage(msg);
	}
	return x;
}

int main(int argc, char **argv)
{
	struct myriad_rt_opts o = { .sz = sizeof(o) };
	const char *wl;
	myriad_rt_t *rt;
	int64_t n = -1, tasks = 0, res = 0;
	int64_t tasks_opt = -1, yields = -1, pairs = -1, rounds = -1;
	int64_t sleep_ms = -1;
	long rss_before = 0;
	unsigned workers = 0;
	int i, r, err;
	myriad_step_fn root = NULL;
	struct fib froot = { 0 };
	struct root rroot = { 0 };
	double w;

	if (argc < 2)
		usage("missing workload");
	wl = argv[1];
	/* Workloads of later issues: whatever their flags, say so. */
	if (!strcmp(wl, "echo") || !strcmp(wl, "agents") ||
	    !strcmp(wl, "noisy")) {
		printf("RESULT workload=%s unsupported=1\n", wl);
		return 0;
	}
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (i + 1 >= argc)
			usage("flag without a value");
		if (!strcmp(a, "--workers"))
			workers = (unsigned)parse_int(a, argv[++i], 1,
						      MYRIAD_WORKERS_MAX);
		else if (!strcmp(a, "--n"))
			n = parse_int(a, argv[++i], 0, INT64_C(1) << 40);
		else if (!strcmp(a, "--tasks"))
			tasks_opt =
				parse_int(a, argv[++i], 1, INT64_C(1) << 32);
		else if (!strcmp(a, "--yields"))
			yields = parse_int(a, argv[++i], 0, INT64_C(1) << 40);
		else if (!strcmp(a, "--pairs"))
			pairs = parse_int(a, argv[++i], 1, INT64_C(1) << 24);
		else if (!strcmp(a, "--rounds"))
			rounds = parse_int(a, argv[++i], 0, INT64_C(1) << 40);
		else if (!strcmp(a, "--sleep-ms"))
			sleep_ms = parse_int(a, argv[++i], 0, INT64_C(1) << 32);
		else {
			char msg[160];

			snprintf(msg, sizeof(msg), "unknown flag '%s'", a);
			usage(msg);
		}
	}

	if (!strcmp(wl, "spawn") || !strcmp(wl, "chain")) {
		if (tasks_opt >= 0 || yields >= 0 || pairs >= 0 || rounds >= 0)
			usage("spawn and chain take --n only");
		B.n = n >= 0 ? n : 1000000;
		if (B.n < 1)
			usage("--n must be at least 1");
		tasks = B.n;
		root = !strcmp(wl, "spawn") ? spawn_root : chain_root;
	} else if (!strcmp(wl, "fib")) {
		if (sleep_ms >= 0)
			usage("fib takes --n only");
		if (tasks_opt >= 0 || yields >= 0 || pairs >= 0 || rounds >= 0)
			usage("fib takes --n only");
		B.n = n >= 0 ? n : 30;
		if (B.n > 40)
			usage("--n over 40 for fib");
		froot.n = (int)B.n;
	} else if (!strcmp(wl, "yield")) {
		if (n >= 0 || pairs >= 0 || rounds >= 0)
			usage("yield takes --tasks and --yields");
		B.n = tasks_opt >= 0 ? tasks_opt : 1000;
		B.m = yields >= 0 ? yields : 1000;
		tasks = B.n;
		root = yield_root;
	} else if (!strcmp(wl, "pingpong")) {
		if (n >= 0 || tasks_opt >= 0 || yields >= 0)
			usage("pingpong takes --pairs and --rounds");
		B.n = pairs >= 0 ? pairs : 1000;
		B.m = rounds >= 0 ? rounds : 1000;
		tasks = 2 * B.n;
		root = pingpong_root;
	} else if (!strcmp(wl, "park")) {
		if (tasks_opt >= 0 || yields >= 0 || pairs >= 0 || rounds >= 0)
			usage("park takes --n and --sleep-ms");
		B.n = n >= 0 ? n : 1000000;
		if (B.n < 1)
			usage("--n must be at least 1");
		park_ns =
			(uint64_t)(sleep_ms >= 0 ? sleep_ms : 20000) * 1000000u;
		tasks = B.n;
		root = park_root;
	} else {
		usage("unknown workload");
	}

	if (sleep_ms >= 0 && strcmp(wl, "park"))
		usage("--sleep-ms is for park only");
	o.workers = workers;
	rt = myriad_rt_create(&o, &err);
	if (!rt) {
		fprintf(stderr, "myriad-bench: myriad_rt_create: %s\n",
			strerror(-err));
		return 1;
	}
	workers = (unsigned)myriad_rt_workers(rt);
	atomic_store(&B.left, tasks);
	nshards = workers;
	shards = aligned_alloc(64, sizeof(*shards) * nshards);
	if (!shards)
		return 1;
	memset(shards, 0, sizeof(*shards) * nshards);

	if (!strcmp(wl, "pingpong")) {
		B.chans = calloc((size_t)(2 * B.n), sizeof(*B.chans));
		for (i = 0; i < 2 * B.n; i++) {
			B.chans[i] = myriad_chan_create(rt, sizeof(int64_t), 1,
							&err);
			if (!B.chans[i]) {
				fprintf(stderr, "chan_create: %s\n",
					strerror(-err));
				return 1;
			}
		}
	}

	rss_before = status_kb("VmRSS:");
	pthread_t prog;
	bool prog_ok = pthread_create(&prog, NULL, progress, (void *)wl) == 0;

	if (!strcmp(wl, "fib")) {
		r = myriad_rt_block_on(rt, fib_root, &froot, sizeof(froot),
				       &res);
		/* fib(n) makes 2 fib(n+1) - 1 calls. */
		int64_t a = 0, b = 1, k;

		for (k = 0; k <= B.n; k++) {
			int64_t c = a + b;

			a = b;
			b = c;
		}
		tasks = 2 * a - 1;
	} else {
		r = myriad_rt_block_on(rt, root, &rroot, sizeof(rroot), NULL);
	}
	atomic_store(&finished, true);
	if (prog_ok)
		pthread_join(prog, NULL);
	if (r < 0) {
		fprintf(stderr, "myriad-bench: run: %s\n", strerror(-r));
		return 1;
	}
	if (B.failed) {
		fprintf(stderr, "myriad-bench: spawn: %s\n",
			strerror(-B.failed));
		return 1;
	}
	if (getenv("MYRIAD_BENCH_STATS")) {
		uint64_t c[MYRIAD_CTR__COUNT];
		unsigned k, j;

		for (k = 0; k < workers; k++) {
			if (myriad_rt_counters(rt, k, c, MYRIAD_CTR__COUNT) < 0)
				break;
			fprintf(stderr, "worker %u:", k);
			for (j = 0; j < MYRIAD_CTR__COUNT; j++)
				fprintf(stderr, " %s=%" PRIu64,
					myriad_counter_name(j), c[j]);
			fprintf(stderr, "\n");
		}
	}
	if (B.chans) {
		for (i = 0; i < 2 * B.n; i++)
			myriad_chan_destroy(B.chans[i]);
		free(B.chans);
	}
	r = myriad_rt_destroy(rt);
	if (r < 0) {
		fprintf(stderr, "myriad-bench: destroy: %s\n", strerror(-r));
		return 1;
	}

	w = wall_s();
	if (w <= 0)
		w = 1e-9;
	printf("RESULT workload=%s workers=%u wall_s=%.6f tasks=%" PRId64
	       " peak_rss_kb=%ld",
	       wl, workers, w, tasks, peak_rss_kb());
	if (!strcmp(wl, "spawn"))
		printf(" tasks_per_s=%.0f ns_per_task=%.1f", tasks / w,
		       w * 1e9 / tasks);
	else if (!strcmp(wl, "chain"))
		printf(" tasks_per_s=%.0f", tasks / w);
	else if (!strcmp(wl, "fib"))
		printf(" result=%" PRId64 " tasks_per_s=%.0f", res, tasks / w);
	else if (!strcmp(wl, "yield"))
		printf(" switches_per_s=%.0f", (double)B.n * B.m / w);
	else if (!strcmp(wl, "pingpong"))
		printf(" msgs_per_s=%.0f", 2.0 * B.n * B.m / w);
	else if (!strcmp(wl, "park")) {
		struct rusage ru;
		int64_t am = atomic_load(&alive_max);

		getrusage(RUSAGE_SELF, &ru);
		printf(" alive_max=%lld bytes_per_task=%.1f spawn_s=%.6f"
		       " late_ms=%.3f minflt=%ld",
		       (long long)am,
		       am ? (status_kb("VmHWM:") - rss_before) * 1024.0 / am
			  : 0.0,
		       now_s(&B.t_spawned) - now_s(&B.t0), park_late_ns() / 1e6,
		       ru.ru_minflt);
	}
	printf("\n");
	return 0;
}
