/* SPDX-License-Identifier: MIT */
/*
 * bench/fleet.c: the fleet workload: T tasks through a redis-server of its
 * own, run by W `myriad-fleet run` processes, every result read back.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "bench.h"

#define QUEUE "bench"
#define SHARDS 4
#define BATCH 1000
#define PROCS_MAX 64

extern char **environ;

static struct {
	int64_t procs;
	bool fib;
	char dir[64], sock[96], url[112], fleet_bin[PATH_MAX];
	pid_t redis, workers[PROCS_MAX];
	double redis_cpu;   /* Redis's CPU seconds over the run */
	double inproc_wall; /* the same tasks spawned in this process */
	int64_t lost, duplicated;
	uint8_t *seen; /* results per task id (saturating) */
} F;

static long long fib(int n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static volatile int fib_n = 20; /* not folded at compile time */
static _Atomic long long sink;

static int64_t fleet_parse(const struct bench_args *a)
{
	if (a->n >= 0 || a->yields >= 0 || a->pairs >= 0 || a->rounds >= 0)
		usage("fleet takes --tasks, --procs and --task only");
	F.procs = a->procs >= 0 ? a->procs : 1;
	if (a->task && strcmp(a->task, "empty") && strcmp(a->task, "fib"))
		usage("--task is empty or fib");
	F.fib = a->task && !strcmp(a->task, "fib");
	return a->tasks >= 0 ? a->tasks : 100000;
}

/* A child process with stdout to /dev/null; its pid, or -1. */
static pid_t start(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r) {
		fprintf(stderr, "myriad-bench: fleet: %s: %s\n", argv[0],
			strerror(r));
		return -1;
	}
	return pid;
}

static void stop(pid_t *pid, int sig)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

/* However the run ends: no redis-server or worker left behind. */
static void cleanup(void)
{
	char path[384];
	struct dirent *e;
	DIR *d;
	int64_t i;

	for (i = 0; i < F.procs && i < PROCS_MAX; i++)
		stop(&F.workers[i], SIGKILL);
	stop(&F.redis, SIGKILL);
	if (!F.dir[0] || !(d = opendir(F.dir)))
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", F.dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(F.dir);
	F.dir[0] = 0;
}

static redisContext *redis_connect(void)
{
	redisContext *c = redisConnectUnix(F.sock);

	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	return c;
}

static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "myriad-bench: fleet: redis: %s\n",
			r ? r->str : c->errstr);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* used_cpu_sys + used_cpu_user of INFO cpu, or -1. */
static double redis_cpu_s(redisContext *c)
{
	redisReply *r = cmd(c, "INFO cpu");
	const char *p;
	double s = -1;

	if (r && r->type == REDIS_REPLY_STRING &&
	    (p = strstr(r->str, "used_cpu_sys:")))
		s = strtod(p + 13, NULL);
	if (r && s >= 0 && (p = strstr(r->str, "used_cpu_user:")))
		s += strtod(p + 14, NULL);
	freeReplyObject(r);
	return s;
}

static long long xlen(redisContext *c, const char *key)
{
	redisReply *r = cmd(c, "XLEN %s", key);
	long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

	freeReplyObject(r);
	return n;
}

/* myriad-fleet beside this binary (installed) or in the build tree. */
static bool find_fleet(void)
{
	static const char *const rel[] = {
		"myriad-fleet", "../tools/myriad-fleet/myriad-fleet"
	};
	char self[PATH_MAX - 64], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	size_t i;

	if (getenv("MYRIAD_BENCH_FLEET")) {
		snprintf(F.fleet_bin, sizeof(F.fleet_bin), "%s",
			 getenv("MYRIAD_BENCH_FLEET"));
		return true;
	}
	if (n <= 0)
		return false;
	self[n] = 0;
	slash = strrchr(self, '/');
	if (!slash)
		return false;
	*slash = 0;
	for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(F.fleet_bin, sizeof(F.fleet_bin), "%s/%s", self,
			 rel[i]);
		if (access(F.fleet_bin, X_OK) == 0)
			return true;
	}
	return false;
}

/* Before the runtime: the redis-server, on a unix socket of its own. */
static int fleet_prepare(struct myriad_rt_opts *o)
{
	char *argv[] = { "redis-server", "--port", "0",	  "--unixsocket",
			 F.sock,	 "--save", "",	  "--appendonly",
			 "no",		 "--dir",  F.dir, NULL };
	redisContext *c = NULL;
	int i;

	if (!find_fleet()) {
		fprintf(stderr, "myriad-bench: fleet: no myriad-fleet beside "
				"this binary ($MYRIAD_BENCH_FLEET)\n");
		return 1;
	}
	snprintf(F.dir, sizeof(F.dir), "/tmp/myriad-bench-fleet-XXXXXX");
	if (!mkdtemp(F.dir)) {
		fprintf(stderr, "myriad-bench: fleet: mkdtemp: %s\n",
			strerror(errno));
		F.dir[0] = 0;
		return 1;
	}
	snprintf(F.sock, sizeof(F.sock), "%s/redis.sock", F.dir);
	snprintf(F.url, sizeof(F.url), "unix://%s", F.sock);
	atexit(cleanup);
	F.redis = start(argv);
	if (F.redis < 0)
		return 1;
	for (i = 0; i < 200 && !c; i++) {
		usleep(50000);
		c = redis_connect();
	}
	if (!c) {
		fprintf(stderr, "myriad-bench: fleet: redis-server did not "
				"start\n");
		return 1;
	}
	redisFree(c);
	return 0;
}

/* The same task in this process: a detached task each, counted down. */
static int inproc_step(myriad_task_t *self, void *st)
{
	if (F.fib)
		atomic_fetch_add_explicit(&sink, fib(fib_n),
					  memory_order_relaxed);
	count_down();
	return MYRIAD_DONE;
}

static int inproc_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		spawn(self, inproc_step, NULL, 0, MYRIAD_SPAWN_DETACHED);
		if ((st->i & 255) == 255)
			MYRIAD_YIELD(st);
	}
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

static int submit_all(myriad_fleet_t *f, int64_t n)
{
	static struct myriad_fleet_entry e[BATCH];
	static char ids[BATCH][24];
	static int rc[BATCH];
	int64_t i = 0;
	int k, m, r;

	while (i < n) {
		for (k = 0; k < BATCH && i + k < n; k++) {
			snprintf(ids[k], sizeof(ids[k]), "t%" PRId64, i + k);
			e[k] = (struct myriad_fleet_entry){
				ids[k], F.fib ? "fib" : "empty",
				F.fib ? "20" : "", F.fib ? 2 : 0
			};
		}
		r = myriad_fleet_submit(f, QUEUE, e, (size_t)k, 0, rc);
		if (r < 0)
			return r;
		for (m = 0; m < k; m++)
			if (rc[m] < 0)
				return rc[m];
		i += k;
	}
	return 0;
}

static int count_result(void *arg, const struct myriad_fleet_result *r)
{
	char *end;
	long long i;

	snprintf(arg, 64, "%s", r->stream_id);
	i = r->id[0] == 't' ? strtoll(r->id + 1, &end, 10) : -1;
	if (i < 0 || i >= B.n || *end)
		return 0;
	if (F.seen[i] < 255)
		F.seen[i]++;
	return 0;
}

static int read_back(myriad_fleet_t *f)
{
	char after[64] = "0";
	int64_t i;
	int r;

	F.seen = calloc((size_t)B.n, 1);
	if (!F.seen)
		return -ENOMEM;
	do {
		r = myriad_fleet_results(f, QUEUE, after, 10000, count_result,
					 after);
		if (r < 0)
			return r;
	} while (r > 0);
	for (i = 0; i < B.n; i++) {
		F.lost += !F.seen[i];
		F.duplicated += F.seen[i] > 1;
	}
	return 0;
}

/*
 * Every worker connected (two connections each, beside this program's
 * three: the fleet's two and this one); a worker joins right after.
 */
static bool all_joined(redisContext *c)
{
	redisReply *r = cmd(c, "INFO clients");
	const char *p;
	bool ok = false;

	if (r && r->type == REDIS_REPLY_STRING &&
	    (p = strstr(r->str, "connected_clients:")))
		ok = strtoll(p + 18, NULL, 10) >= 3 + 2 * F.procs;
	freeReplyObject(r);
	return ok;
}

static int fleet_run(myriad_rt_t *rt, int64_t *tasks)
{
	struct myriad_fleet_opts fo = { .sz = sizeof(fo), .url = F.url };
	char results_key[64], name[16];
	struct timespec t0;
	redisContext *c;
	myriad_fleet_t *f;
	double cpu0, cpu1;
	int64_t i;
	int r, err;

	B.n = *tasks;
	/* 1. The in-process spawn of the same tasks: the baseline. */
	r = run_root(rt, inproc_root);
	if (r < 0 || B.failed)
		return r < 0 ? r : B.failed;
	F.inproc_wall = wall_s();

	/* 2. The queue and its workers, all joined before the clock. */
	f = myriad_fleet_open(rt, &fo, &err);
	if (!f)
		return err;
	r = myriad_fleet_queue_create(f, QUEUE, SHARDS);
	c = redis_connect();
	if (r < 0 || !c)
		goto out;
	for (i = 0; i < F.procs; i++) {
		char *argv[] = { F.fleet_bin, "--url",	   F.url, "run",
				 QUEUE,	      "--workers", "1",	  "--consumer",
				 name,	      NULL };

		snprintf(name, sizeof(name), "w%" PRId64, i);
		F.workers[i] = start(argv);
		if (F.workers[i] < 0) {
			r = -ECHILD;
			goto out;
		}
	}
	for (i = 0; i < 400 && !all_joined(c); i++)
		usleep(50000);

	/* 3. Submit (pipelined batches), wait for every result. */
	snprintf(results_key, sizeof(results_key), "{%s}:results", QUEUE);
	cpu0 = redis_cpu_s(c);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = submit_all(f, B.n);
	if (r < 0)
		goto out;
	while (xlen(c, results_key) < B.n) {
		for (i = 0; i < F.procs; i++)
			if (waitpid(F.workers[i], NULL, WNOHANG) ==
			    F.workers[i]) {
				fprintf(stderr,
					"myriad-bench: fleet: worker "
					"%" PRId64 " exited\n",
					i);
				F.workers[i] = 0;
				r = -ECHILD;
				goto out;
			}
		usleep(2000);
	}
	clock_gettime(CLOCK_MONOTONIC, &B.t1);
	B.t0 = t0;
	cpu1 = redis_cpu_s(c);
	F.redis_cpu = cpu1 - cpu0;

	/* 4. Drain the workers, read every result back. */
	for (i = 0; i < F.procs; i++)
		stop(&F.workers[i], SIGTERM);
	r = read_back(f);
out:
	if (c)
		redisFree(c);
	myriad_fleet_close(f);
	return r;
}

static int fleet_check(int r)
{
	if (r < 0)
		fprintf(stderr, "myriad-bench: fleet: %s\n", strerror(-r));
	return r < 0;
}

static int fleet_teardown(void)
{
	cleanup();
	free(F.seen);
	return 0;
}

static void fleet_result(double w, int64_t tasks)
{
	printf(" procs=%" PRId64 " task=%s tasks_per_s=%.0f "
	       "redis_cpu_s_per_task=%.9f lost=%" PRId64 " duplicated=%" PRId64
	       " overhead_us_per_task=%.3f inproc_us_per_task=%.3f",
	       F.procs, F.fib ? "fib" : "empty", tasks / w,
	       F.redis_cpu / (double)tasks, F.lost, F.duplicated,
	       (w - F.inproc_wall) * 1e6 / (double)tasks,
	       F.inproc_wall * 1e6 / (double)tasks);
}

const struct workload wl_fleet = {
	.name = "fleet",
	.usage = "fleet --tasks T --procs W --task empty|fib",
	.parse = fleet_parse,
	.prepare = fleet_prepare,
	.run = fleet_run,
	.check = fleet_check,
	.teardown = fleet_teardown,
	.result = fleet_result,
};
