/* SPDX-License-Identifier: MIT */
/*
 * bench/myriad-bench.c: the throughput benchmark of docs/bench.md on
 * libmyriad's public API: the command line, the table of workloads (one
 * file each under bench/), the run, one RESULT line on stdout, progress on
 * stderr.
 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <unistd.h>

#include "agents.h"

/* In the order of the usage text. */
static const struct workload *const workloads[] = {
	&wl_spawn, &wl_chain, &wl_fib,	  &wl_yield, &wl_pingpong,
	&wl_park,  &wl_echo,  &wl_agents, &wl_noisy, &wl_fleet,
};

#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

void usage(const char *msg)
{
	size_t k;

	fprintf(stderr, "myriad-bench: %s\n", msg);
	fprintf(stderr, "usage: myriad-bench <");
	for (k = 0; k < NWORKLOADS; k++)
		fprintf(stderr, "%s%s", k ? "|" : "", workloads[k]->name);
	fprintf(stderr, "> [--workers N]");
	for (k = 0; k < NWORKLOADS; k++)
		if (workloads[k]->usage)
			fprintf(stderr, "%s%s",
				workloads[k]->usage_cont ? "    "
							 : "\n         ",
				workloads[k]->usage);
	fprintf(stderr,
		"\n"
		"           (without the ports the servers are started from\n"
		"            $MYRIAD_BENCH_SERVERS or the servers/ folder beside\n"
		"            this binary's folder, <build>/servers/)\n");
	exit(2);
}

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

/* The integer flags: where each goes in struct bench_args, its range. */
static const struct flag {
	const char *name;
	size_t off;
	int64_t lo, hi;
} flags[] = {
#define F(name, field, lo, hi)                                   \
	{                                                        \
		name, offsetof(struct bench_args, field), lo, hi \
	}
	F("--workers", workers, 1, MYRIAD_WORKERS_MAX),
	F("--n", n, 0, INT64_C(1) << 40),
	F("--tasks", tasks, 1, INT64_C(1) << 32),
	F("--yields", yields, 0, INT64_C(1) << 40),
	F("--pairs", pairs, 1, INT64_C(1) << 24),
	F("--rounds", rounds, 0, INT64_C(1) << 40),
	F("--sleep-ms", sleep_ms, 0, INT64_C(1) << 32),
	F("--conns", conns, 1, INT64_C(1) << 20),
	F("--agents", agents, 1, INT64_C(1) << 24),
	F("--steps", steps, 1, INT64_C(1) << 20),
	F("--tool-ms", tool_ms, 0, 3600000),
	F("--llm-ms", llm_ms, 1, 3600000),
	F("--llm-concurrency", llm_conc, 1, 65535),
	F("--tool-port", tool_port, 1, 65535),
	F("--llm-port", llm_port, 1, 65535),
	F("--tool-conns", tool_conns, 1, 65536),
	F("--tools", tools, 1, AGENT_TOOLS_MAX),
	F("--hog-cpu", hog_cpu, -1, CPU_SETSIZE - 1),
	F("--procs", procs, 1, 64),
#undef F
};

/* Every flag after the workload's name, into *a; usage() on a bad one. */
static void parse_args(int argc, char **argv, struct bench_args *a)
{
	size_t k;
	int i;

	for (i = 2; i < argc; i++) {
		const char *f = argv[i];

		/* --tools alone (last, or before another flag) means 1. */
		if (!strcmp(f, "--tools") &&
		    (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
			a->tools = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage("flag without a value");
		if (!strcmp(f, "--policy")) {
			a->policy = argv[++i];
			continue;
		}
		if (!strcmp(f, "--task")) {
			a->task = argv[++i];
			continue;
		}
		for (k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
			if (!strcmp(f, flags[k].name))
				break;
		if (k == sizeof(flags) / sizeof(flags[0])) {
			char msg[160];

			snprintf(msg, sizeof(msg), "unknown flag '%s'", f);
			usage(msg);
		}
		*(int64_t *)((char *)a + flags[k].off) =
			parse_int(f, argv[++i], flags[k].lo, flags[k].hi);
	}
}

/* The flags that belong to one workload, given to another. */
static void check_foreign(const char *wl, const struct bench_args *a)
{
	if ((a->policy || a->hog_cpu >= -1) && strcmp(wl, "noisy"))
		usage("--policy and --hog-cpu are for noisy only");
	if ((a->agents >= 0 || a->steps >= 0 || a->tool_ms >= 0 ||
	     a->llm_ms >= 0 || a->llm_conc >= 0 || a->tool_port >= 0 ||
	     a->llm_port >= 0 || a->tool_conns >= 0 || a->tools >= 0) &&
	    strcmp(wl, "agents"))
		usage("--agents, --steps, --tool-ms, --llm-ms, --llm-concurrency, --tool-port, --llm-port, --tool-conns and --tools are for agents only");

	if ((a->procs >= 0 || a->task) && strcmp(wl, "fleet"))
		usage("--procs and --task are for fleet only");
	if (a->sleep_ms >= 0 && strcmp(wl, "park"))
		usage("--sleep-ms is for park only");
	if (a->conns >= 0 && strcmp(wl, "echo"))
		usage("--conns is for echo only");
}

/* MYRIAD_BENCH_STATS: every worker's counters on stderr. */
static void print_counters(myriad_rt_t *rt, unsigned workers)
{
	uint64_t c[MYRIAD_CTR__COUNT];
	unsigned k, j;

	for (k = 0; k < workers; k++) {
		if (myriad_rt_counters(rt, k, c, MYRIAD_CTR__COUNT) < 0)
			break;
		fprintf(stderr, "worker %u:", k);
		for (j = 0; j < MYRIAD_CTR__COUNT; j++)
			fprintf(stderr, " %s=%" PRIu64, myriad_counter_name(j),
				c[j]);
		fprintf(stderr, "\n");
	}
}

int main(int argc, char **argv)
{
	struct myriad_rt_opts o = { .sz = sizeof(o) };
	struct bench_args a = {
		.workers = -1,
		.n = -1,
		.tasks = -1,
		.yields = -1,
		.pairs = -1,
		.rounds = -1,
		.sleep_ms = -1,
		.conns = -1,
		.agents = -1,
		.steps = -1,
		.tool_ms = -1,
		.llm_ms = -1,
		.llm_conc = -1,
		.tool_port = -1,
		.llm_port = -1,
		.tool_conns = -1,
		.tools = -1,
		.hog_cpu = -2,
		.procs = -1,
		.policy = NULL,
		.task = NULL,
	};
	const struct workload *wl = NULL;
	myriad_rt_t *rt;
	int64_t tasks;
	unsigned workers;
	pthread_t prog;
	bool prog_ok;
	size_t k;
	int r, err;
	double w;

	if (argc < 2)
		usage("missing workload");
	parse_args(argc, argv, &a);
	for (k = 0; k < NWORKLOADS; k++)
		if (!strcmp(argv[1], workloads[k]->name))
			wl = workloads[k];
	if (!wl)
		usage("unknown workload");
	tasks = wl->parse(&a);
	check_foreign(wl->name, &a);

	if (wl->prepare && wl->prepare(&o))
		return 1;
	o.workers = a.workers >= 0 ? (unsigned)a.workers : 0;
	rt = myriad_rt_create(&o, &err);
	if (!rt) {
		fprintf(stderr, "myriad-bench: myriad_rt_create: %s\n",
			strerror(-err));
		return 1;
	}
	workers = (unsigned)myriad_rt_workers(rt);
	atomic_store(&B.left, tasks);
	if (wl->setup && wl->setup(rt))
		return 1;

	B.rss_before = status_kb("VmRSS:");
	prog_ok = pthread_create(&prog, NULL, progress, argv[1]) == 0;
	r = wl->run(rt, &tasks);
	atomic_store(&finished, true);
	if (prog_ok)
		pthread_join(prog, NULL);
	if (B.failed) {
		fprintf(stderr, "myriad-bench: spawn: %s\n",
			strerror(-B.failed));
		return 1;
	}
	if (wl->check && wl->check(r))
		return 1;
	/* After the failures, which the echo root ends by cancelling itself. */
	if (r < 0) {
		fprintf(stderr, "myriad-bench: run: %s\n", strerror(-r));
		return 1;
	}
	if (wl->notes)
		wl->notes();
	if (getenv("MYRIAD_BENCH_STATS"))
		print_counters(rt, workers);
	if (wl->teardown && wl->teardown())
		return 1;
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
	       wl->name, workers, w, tasks, peak_rss_kb());
	wl->result(w, tasks);
	printf("\n");
	return 0;
}
