/* SPDX-License-Identifier: MIT */
/*
 * bench/common.c: myriad-bench's shared state and figures: the count-down's
 * struct, wall time, memory from /proc/self/status, CPU time, descriptors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"

struct bench B;

int run_root(myriad_rt_t *rt, myriad_step_fn step)
{
	struct root st = { 0 };

	return myriad_rt_block_on(rt, step, &st, sizeof(st), NULL);
}

double now_s(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec * 1e-9;
}

double wall_s(void)
{
	return now_s(&B.t1) - now_s(&B.t0);
}

long status_kb(const char *key)
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
long peak_rss_kb(void)
{
	return status_kb("VmHWM:");
}

double cpu_seconds(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec * 1e-6 +
	       (double)ru->ru_stime.tv_sec + ru->ru_stime.tv_usec * 1e-6;
}

int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The descriptors this process may have: RLIMIT_NOFILE's hard limit. */
uint64_t nofile_max(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	return rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max;
}

/*
 * The soft RLIMIT_NOFILE up to the hard limit, and the hard limit up to
 * 'need' where the process may (as root): as the peers do. Exits 2 when
 * 'need' descriptors cannot be had, saying what they are for ('what') and
 * how many of the workload's 'unit' fit ('per' descriptors each, besides
 * 'spare').
 */
void raise_nofile(uint64_t need, const char *what, const char *unit,
		  uint64_t per, uint64_t spare)
{
	struct rlimit rl, up = { need, need };

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		fprintf(stderr, "myriad-bench: getrlimit: %s\n",
			strerror(errno));
		exit(2);
	}
	if (rl.rlim_max < need && setrlimit(RLIMIT_NOFILE, &up) == 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < need) {
		fprintf(stderr,
			"myriad-bench: %s needs %" PRIu64
			" file descriptors, RLIMIT_NOFILE hard limit is %" PRIu64
			": raise it (ulimit -Hn) or use %s %" PRIu64
			" or fewer\n",
			what, need, (uint64_t)rl.rlim_max, unit,
			rl.rlim_max > spare
				? ((uint64_t)rl.rlim_max - spare) / per
				: 0);
		exit(2);
	}
}
