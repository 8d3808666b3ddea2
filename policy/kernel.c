/* SPDX-License-Identifier: MIT */
/*
 * policy/kernel.c: the kernel-aware placement policy. It reads what the
 * kernel does to each worker thread (myriad_rt_signals(): preemptions,
 * run-queue delay, time on CPU) over short periods and acts on it: steal
 * first from workers whose CPU is contended, pin the workers one to a CPU
 * while all of them run, and run fewer workers while the process gets
 * less than half a CPU per worker it has (the surplus parks, the rest
 * are unpinned, and the kernel moves them onto the CPUs it freed).
 */
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <myriad.h>

#include "base/random.h"

#define KP_MAX 1024
#define KP_PERIOD_NS 20000000ull /* 20 ms between looks */
/*
 * Calm periods before growing back by one worker (step 5): doubled after
 * each growth that contention undid within KP_UNDONE times the wait, up to
 * KP_GROW_MAX (1.28 s); back to KP_GROW_MIN after KP_SETTLED periods
 * without a change.
 */
#define KP_GROW_MIN 2
#define KP_GROW_MAX 64
#define KP_UNDONE 4
#define KP_SETTLED 100
/*
 * Step 5's look at idle CPUs: over at least this long (/proc/stat counts in
 * clock ticks, 10 ms), and growth needs this much of a CPU idle.
 */
#define KP_IDLE_WINDOW_NS 50000000ull
#define KP_IDLE_MIN 0.5
/*
 * Step 4: a worker is kept while it gets this much of a CPU or more: R's
 * fraction is rounded up from 1 - KP_KEEP (0.4; a worker pinned beside a
 * CPU hog gets 0.5 on average and 0.4 to 0.6 over one period).
 */
#define KP_KEEP 0.6
/* Step 4: periods of contention (20 ms each) that a shrink needs. */
#define KP_VOTES 5

struct kp_prev {
	uint64_t oncpu, rq, preempt;
};

struct kpol {
	myriad_rt_t *rt;
	unsigned n;
	_Atomic unsigned active;
	_Atomic int busy; /* one updater at a time */
	_Atomic uint64_t last_ns;
	unsigned shrink_votes, calm;
	double R_sum;	       /* step 4: R summed over the votes */
	unsigned grow_wait;    /* step 5: calm periods needed to grow */
	unsigned since_change; /* periods since 'active' last changed */
	bool grew;	       /* ... and that change was a growth */
	int stat_fd;	       /* /proc/stat, or -1: step 5 grows blind */
	char *stat_buf;
	size_t stat_cap;
	cpu_set_t cpus;		     /* ours: the affinity mask at init */
	uint64_t mark_ns, mark_idle; /* step 5's window: start, idle ticks */
	bool primed;
	_Atomic uint8_t hot[KP_MAX]; /* contended in the last period */
	struct kp_prev prev[KP_MAX];
};

/* Idle and iowait ticks of our CPUs in /proc/stat; false if unknown. */
static bool kp_idle_ticks(struct kpol *k, uint64_t *out)
{
	unsigned long long v[5];
	uint64_t sum = 0;
	bool any = false;
	char *p, *nl, *e;
	unsigned long cpu;
	ssize_t n;

	if (k->stat_fd < 0)
		return false;
	n = pread(k->stat_fd, k->stat_buf, k->stat_cap - 1, 0);
	if (n <= 0)
		return false;
	k->stat_buf[n] = 0;
	/* "cpu  ..." (all), then "cpuN user nice system idle iowait ...". */
	for (p = k->stat_buf; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = 0;
		if (strncmp(p, "cpu", 3))
			break;
		if (p[3] < '0' || p[3] > '9')
			continue;
		cpu = strtoul(p + 3, &e, 10);
		if (sscanf(e, "%llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4]) != 5)
			return false;
		any = true;
		if (cpu < CPU_SETSIZE && CPU_ISSET(cpu, &k->cpus))
			sum += v[3] + v[4];
	}
	*out = sum;
	return any;
}

/* Step 5: start a window. */
static void kp_idle_mark(struct kpol *k, uint64_t now)
{
	k->mark_ns = kp_idle_ticks(k, &k->mark_idle) ? now : 0;
}

/*
 * Step 5: CPUs idle since the mark; -1 when unknown, -2 when the window is
 * still too short to tell.
 */
static double kp_idle_since(struct kpol *k, uint64_t now)
{
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t t;

	if (!k->mark_ns || hz <= 0)
		return -1;
	if (now - k->mark_ns < KP_IDLE_WINDOW_NS)
		return -2;
	if (!kp_idle_ticks(k, &t))
		return -1;
	return (double)(t - k->mark_idle) / (double)hz /
	       ((double)(now - k->mark_ns) * 1e-9);
}

/*
 * The decision ladder, run by one worker at a time every KP_PERIOD_NS
 * (from active_workers, which workers call every few dozen ticks):
 * 1. No signals (not open, or not yet a full period): change nothing.
 * 2. Per worker over the period: w_i = run-queue delay (runnable, not
 *    running), r_i = time on CPU, p_i = involuntary preemptions. The
 *    worker is hot (its CPU is contended) when it waited more than a
 *    fifth of the period and was preempted: somebody else runs there.
 *    Both times are credited by the kernel's switch events (eBPF: when
 *    the thread leaves or gets its CPU), so a worker that ran the whole
 *    period without a switch shows r_i = w_i = 0 there and a lump later.
 * 3. Steal victims: hot workers first (their tasks wait with them), then
 *    the default random rotation. Spawns and wakes stay local: sending a
 *    hot worker's spawns to the (FIFO) inject queue turned fork-join
 *    depth-first into breadth-first (the noisy bench: 0.6x the default
 *    policy's throughput, 2.7x its memory); a hot worker's queue is
 *    stolen from first instead, and step 4 parks it when CPUs are short.
 * 4. Over the active workers: CPUs wanted but not given, W = sum w_i /
 *    period; CPUs received, R = sum of each one's share r_i / (r_i + w_i)
 *    (1 when it neither ran nor waited by the switch events' account: a
 *    whole CPU it never left). When W > 0.25 (a quarter of a CPU waits)
 *    for KP_VOTES periods in a row, run floor(R + KP_KEEP) workers, R
 *    the mean over those periods (at least 1, at most all): a worker
 *    that gets about half of its CPU adds that half, so it stays (a hog
 *    on one of 2 CPUs: R = 1.5, both workers; on one of 16: R = 15.5,
 *    all 16); with less (two neighbours on its CPU; a quota of one CPU
 *    for two workers: R = 1.0) the surplus parks. The workers are
 *    pinned one to a CPU while all of them run
 *    (MYRIAD_POLICY_PIN): unpinned, the kernel's balancer put both
 *    workers on the CPU without the neighbour for long stretches (the
 *    noisy bench's debug: both on CPU 1, 0.5 each), and the process had
 *    one CPU instead of 1.5. Pinned, the one beside the neighbour keeps
 *    its half, and step 3 steals from it first. While some workers park,
 *    the rest are unpinned, so the kernel moves them to the free CPUs.
 *    The cost is the tail of the work that waits on the worker beside
 *    the neighbour while it is preempted (noisy: p99 some tens of ms,
 *    against under a millisecond with one worker parked).
 * 5. When W < 0.05 for grow_wait periods in a row, grow back by one
 *    worker if our CPUs (the affinity mask) had at least KP_IDLE_MIN of
 *    a CPU idle over those periods (/proc/stat; unreadable: grow anyway),
 *    else look again after as many. The calm may be the shrink's own
 *    doing: the parked worker no longer meets the neighbour, whose CPU is
 *    not idle (a blind growth there put the worker back beside it and
 *    step 4 took it away again, every 40 ms to 1.3 s). Contention that
 *    idle CPUs do not show (a cgroup quota) still undoes growths: one
 *    undone within KP_UNDONE * grow_wait periods doubles grow_wait
 *    (KP_GROW_MIN up to KP_GROW_MAX periods), and KP_SETTLED periods
 *    without a change bring it back to KP_GROW_MIN. With the workers
 *    pinned (a CPU of the mask for each) /proc/stat is not read and the
 *    growth is blind: the worker comes back pinned beside the neighbour,
 *    gets its half, and step 4 keeps it (a shrink on one unlucky mean is
 *    undone); a quota takes it away again, and the doubling spaces the
 *    tries.
 */
static void kp_update(struct kpol *k)
{
	struct myriad_worker_signals s;
	uint64_t now = myriad_now_ns(), dt, sum_rq = 0;
	unsigned i,
		act = atomic_load_explicit(&k->active, memory_order_relaxed);
	int z = 0;
	double R = 0, W;

	if (now - atomic_load_explicit(&k->last_ns, memory_order_relaxed) <
		    KP_PERIOD_NS ||
	    !atomic_compare_exchange_strong(&k->busy, &z, 1))
		return;
	dt = now - atomic_load_explicit(&k->last_ns, memory_order_relaxed);
	if (dt < KP_PERIOD_NS)
		goto out;
	atomic_store_explicit(&k->last_ns, now, memory_order_relaxed);
	for (i = 0; i < k->n; i++) {
		uint64_t don, drq, dpre;

		/* Step 1. */
		if (myriad_rt_signals(k->rt, i, &s) < 0)
			goto out;
		don = s.oncpu_ns - k->prev[i].oncpu;
		drq = s.rq_delay_ns - k->prev[i].rq;
		dpre = s.preempt - k->prev[i].preempt;
		k->prev[i].oncpu = s.oncpu_ns;
		k->prev[i].rq = s.rq_delay_ns;
		k->prev[i].preempt = s.preempt;
		if (!k->primed)
			continue;
		/* Step 2. */
		atomic_store_explicit(&k->hot[i], drq > dt / 5 && dpre > 0,
				      memory_order_relaxed);
		/* Step 4: parked workers neither want nor get a CPU. */
		if (i >= act)
			continue;
		sum_rq += drq;
		R += don + drq ? (double)don / (double)(don + drq) : 1.0;
	}
	if (!k->primed) {
		k->primed = true;
		goto out;
	}
	W = (double)sum_rq / (double)dt;
	k->since_change++;
	/* Step 4. */
	if (W > 0.25) {
		k->calm = 0;
		k->R_sum += R;
		if (++k->shrink_votes >= KP_VOTES) {
			unsigned want =
				(unsigned)(k->R_sum / KP_VOTES + KP_KEEP);

			if (want < 1)
				want = 1;
			if (want < act) {
				act = want;
				/* Step 5: a growth undone. */
				if (k->grew &&
				    k->since_change <
					    KP_UNDONE * k->grow_wait &&
				    (k->grow_wait *= 2) > KP_GROW_MAX)
					k->grow_wait = KP_GROW_MAX;
				k->since_change = 0;
				k->grew = false;
			}
			k->shrink_votes = 0;
			k->R_sum = 0;
		}
	} else {
		k->shrink_votes = 0;
		k->R_sum = 0;
		/* Step 5. */
		if (k->since_change > KP_SETTLED)
			k->grow_wait = KP_GROW_MIN;
		if (W < 0.05 && act < k->n) {
			double idle;

			if (++k->calm == 1)
				kp_idle_mark(k, now);
			if (k->calm < k->grow_wait)
				goto done;
			idle = kp_idle_since(k, now);
			if (idle == -1 || idle >= KP_IDLE_MIN) {
				act++;
				k->calm = 0;
				k->since_change = 0;
				k->grew = true;
			} else if (idle >= 0) {
				/* Nothing idle: the neighbour is still there. */
				kp_idle_mark(k, now);
				k->calm = 1;
			}
		}
	}
done:
	atomic_store_explicit(&k->active, act, memory_order_relaxed);
out:
	atomic_store_explicit(&k->busy, 0, memory_order_release);
}

static int kp_init(void **ctx, const struct myriad_policy_env *env)
{
	struct kpol *k;
	unsigned i;

	if (env->sz < sizeof(*env) || !env->rt || env->workers > KP_MAX)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->rt = env->rt;
	k->n = env->workers;
	atomic_init(&k->active, env->workers);
	atomic_init(&k->busy, 0);
	k->grow_wait = KP_GROW_MIN;
	/*
	 * Step 5's /proc/stat, only where the runtime does not pin the
	 * workers (MYRIAD_POLICY_PIN: fewer CPUs in the mask than workers);
	 * pinned, the growth is blind, as when the file cannot be read. Room
	 * for every CPU line of the mask (at most ~230 bytes each).
	 */
	k->stat_fd = -1;
	if (sched_getaffinity(0, sizeof(k->cpus), &k->cpus) == 0 &&
	    (unsigned)CPU_COUNT(&k->cpus) < k->n) {
		for (i = 0; i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, &k->cpus))
				k->stat_cap = 256 * ((size_t)i + 2) + 256;
		k->stat_buf = k->stat_cap ? malloc(k->stat_cap) : NULL;
		if (k->stat_buf)
			k->stat_fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
	}
	for (i = 0; i < KP_MAX; i++)
		atomic_init(&k->hot[i], 0);
	atomic_init(&k->last_ns, myriad_now_ns());
	*ctx = k;
	return 0;
}

static void kp_fini(void *ctx)
{
	struct kpol *k = ctx;

	if (k->stat_fd >= 0)
		close(k->stat_fd);
	free(k->stat_buf);
	free(k);
}

/* Step 3: hot workers first, then a random rotation over the others. */
static int kp_steal_victim(void *ctx, unsigned self, unsigned attempt,
			   uint64_t *rng)
{
	struct kpol *k = ctx;
	unsigned n = k->n, start, v, i, seen = 0;

	if (n < 2 || attempt + 1 >= n)
		return -1;
	if (attempt == 0) {
		rng_next(rng);
		*rng |= 1;
	}
	start = (unsigned)((*rng >> 33) % (n - 1));
	/* The attempt-th hot worker, in the rotation's order. */
	for (i = 0; i + 1 < n; i++) {
		v = (self + 1 + (start + i) % (n - 1)) % n;
		if (atomic_load_explicit(&k->hot[v], memory_order_relaxed) &&
		    seen++ == attempt)
			return (int)v;
	}
	/* Then the others, skipping the hot ones already tried. */
	attempt -= seen;
	for (i = 0; i + 1 < n; i++) {
		v = (self + 1 + (start + i) % (n - 1)) % n;
		if (atomic_load_explicit(&k->hot[v], memory_order_relaxed))
			continue;
		if (attempt-- == 0)
			return (int)v;
	}
	return -1;
}

static unsigned kp_active_workers(void *ctx)
{
	struct kpol *k = ctx;

	kp_update(k);
	return atomic_load_explicit(&k->active, memory_order_relaxed);
}

const struct myriad_policy_ops myriad_policy_kernel = {
	.sz = sizeof(struct myriad_policy_ops),
	.name = "kernel",
	.init = kp_init,
	.fini = kp_fini,
	.steal_victim = kp_steal_victim,
	.spawn_place = NULL, /* step 3: local */
	.active_workers = kp_active_workers,
	.flags = MYRIAD_POLICY_SIGNALS | MYRIAD_POLICY_PIN,
};
