/* SPDX-License-Identifier: MIT */
/*
 * sched/cpus.c: how many workers (the options, MYRIAD_WORKERS, the
 * affinity mask and the cgroup's cpu.max quota) and, to pin them, where.
 */
#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

/*
 * Parse cgroup v2 cpu.max ("max 100000" or "QUOTA PERIOD") into a CPU count
 * rounded up; 0 means no limit. Returns -EINVAL when malformed.
 */
static int parse_cpu_max(const char *s, unsigned *cpus)
{
	unsigned long long quota, period = 100000;
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (strncmp(s, "max", 3) == 0) {
		*cpus = 0;
		s += 3;
		if (*s && !isspace((unsigned char)*s))
			return -EINVAL;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	quota = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	s = end;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s && *s != '\n') {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		period = strtoull(s, &end, 10);
		if (errno || end == s)
			return -EINVAL;
		s = end;
		while (isspace((unsigned char)*s))
			s++;
		if (*s)
			return -EINVAL;
	}
	if (period == 0 || quota == 0)
		return -EINVAL;
	quota = (quota + period - 1) / period;
	*cpus = quota > MYRIAD_WORKERS_MAX ? MYRIAD_WORKERS_MAX
					   : (unsigned)quota;
	return 0;
}

/* The tightest cpu.max on the path from this process's cgroup to the root. */
static unsigned cgroup_cpus(void)
{
	char line[4096], path[4400], buf[128];
	unsigned best = 0, c;
	FILE *f;
	char *p;

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return 0;
	p = NULL;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			p = line + 3;
			p[strcspn(p, "\n")] = 0;
			break;
		}
	}
	fclose(f);
	if (!p)
		return 0;
	for (;;) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max",
			 strcmp(p, "/") ? p : "");
		f = fopen(path, "re");
		if (f) {
			if (fgets(buf, sizeof(buf), f) &&
			    parse_cpu_max(buf, &c) == 0 && c &&
			    (!best || c < best))
				best = c;
			fclose(f);
		}
		char *slash = strrchr(p, '/');

		if (!slash || slash == p)
			break;
		*slash = 0;
	}
	return best;
}

/*
 * MYRIAD_POLICY_PIN: worker i gets the i-th CPU of the affinity mask the
 * process has now, when the mask has a CPU for every worker. The workers
 * pin and unpin themselves (worker.c, pin_update()).
 */
int pin_plan(struct myriad_rt *rt)
{
	unsigned i = 0, c;

	atomic_init(&rt->pin_on, false);
	if (!(pol_flags(rt->pol) & MYRIAD_POLICY_PIN) ||
	    sched_getaffinity(0, sizeof(rt->pin_mask), &rt->pin_mask) ||
	    (unsigned)CPU_COUNT(&rt->pin_mask) < rt->nworkers)
		return 0;
	rt->pin_cpu = malloc(rt->nworkers * sizeof(*rt->pin_cpu));
	if (!rt->pin_cpu)
		return -ENOMEM;
	for (c = 0; c < CPU_SETSIZE && i < rt->nworkers; c++)
		if (CPU_ISSET(c, &rt->pin_mask))
			rt->pin_cpu[i++] = (int)c;
	atomic_init(&rt->pin_on, true);
	return 0;
}

int count_workers(const struct myriad_rt_opts *o, unsigned *out)
{
	const char *env, *cmax;
	unsigned n, q;
	cpu_set_t set;
	int r;

	if (OPT_HAS(o, workers) && o->workers) {
		*out = o->workers;
		return 0;
	}
	env = getenv("MYRIAD_WORKERS");
	if (env && *env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);

		if (*end || v == 0 || v > MYRIAD_WORKERS_MAX)
			return -EINVAL;
		*out = (unsigned)v;
		return 0;
	}
	n = 1;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = (unsigned)CPU_COUNT(&set);
	if (n < 1)
		n = 1;
	cmax = (OPT_HAS(o, cpu_max) && o->cpu_max) ? o->cpu_max
						   : getenv("MYRIAD_CPU_MAX");
	if (cmax) {
		r = parse_cpu_max(cmax, &q);
		if (r < 0)
			return r;
	} else {
		q = cgroup_cpus();
	}
	if (q && q < n)
		n = q;
	if (n > MYRIAD_WORKERS_MAX)
		n = MYRIAD_WORKERS_MAX;
	*out = n;
	return 0;
}
