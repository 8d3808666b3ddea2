/* SPDX-License-Identifier: MIT */
/*
 * myriad/policy.h: the one interface through which the scheduler asks a
 * placement policy where to steal from, where new tasks go and how many
 * workers should be active.
 */
#ifndef MYRIAD_POLICY_H
#define MYRIAD_POLICY_H

#include <myriad/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where a new task goes (answer of spawn_place). */
enum myriad_place {
	MYRIAD_PLACE_LOCAL = 0,	 /* the spawning worker's own queue */
	MYRIAD_PLACE_INJECT = 1, /* the global inject queue: any worker */
};

/* What the runtime tells a policy when it starts. */
struct myriad_policy_env {
	size_t sz;
	unsigned workers; /* worker threads */
	void *arg;	  /* myriad_rt_opts.policy_arg */
	/*
	 * The runtime, for myriad_rt_signals() from the callbacks (not from
	 * init: the workers have not started yet).
	 */
	myriad_rt_t *rt;
};

/* myriad_policy_ops.flags */
enum {
	/* Open the scheduler signals (myriad_rt_signals()) for this policy. */
	MYRIAD_POLICY_SIGNALS = 1u << 0,
	/*
	 * Pin worker i to the i-th CPU of the affinity mask the process has
	 * at myriad_rt_create() while every worker is active, so that the
	 * kernel's balancer cannot stack two workers on one CPU beside a
	 * neighbour pinned to another; unpinned (the whole mask) while
	 * active_workers() keeps some parked, so that the kernel moves the
	 * active ones onto the CPUs it has free. Ignored when the mask has
	 * fewer CPUs than there are workers, or when pinning fails. A thread
	 * that a task creates inherits its worker's CPU (the runtime's own,
	 * the offload pool, get the whole mask).
	 */
	MYRIAD_POLICY_PIN = 1u << 1,
};

/*
 * A placement policy. The scheduler calls these from worker threads, many
 * at once: callbacks must be thread-safe and must not block. Optional
 * callbacks may be NULL (the default behaviour is then used).
 */
struct myriad_policy_ops {
	size_t sz; /* sizeof(struct myriad_policy_ops) */
	const char *name;

	/*
	 * Optional. Set up the policy's private state (*ctx). Returns 0 or a
	 * negative errno, which fails myriad_rt_create() with that error.
	 */
	int (*init)(void **ctx, const struct myriad_policy_env *env);

	/* Optional. Free what init set up; called after the workers stop. */
	void (*fini)(void *ctx);

	/*
	 * Required. Worker 'self' is searching for work: return the index of
	 * the worker to try to steal from at try number 'attempt' (0, 1, ...
	 * up to workers - 2), or -1 to stop searching. 'rng' is the caller's
	 * private random state (xorshift64, never 0) for the policy to use.
	 * Returning 'self' or an out-of-range index ends the search too.
	 */
	int (*steal_victim)(void *ctx, unsigned self, unsigned attempt,
			    uint64_t *rng);

	/*
	 * Optional. Where a task spawned or woken on worker 'self' goes:
	 * enum myriad_place. NULL: always MYRIAD_PLACE_LOCAL.
	 */
	int (*spawn_place)(void *ctx, unsigned self);

	/*
	 * Optional. How many workers should be active (1..workers); workers
	 * with an index at or above it park until it grows again. Asked every
	 * few dozen scheduling ticks. NULL: all workers.
	 */
	unsigned (*active_workers)(void *ctx);

	/* MYRIAD_POLICY_* flags. */
	unsigned flags;
};

/* The default policy: random victim, local spawn, all workers active. */
MYRIAD_API extern const struct myriad_policy_ops myriad_policy_default;

/*
 * The kernel-aware policy: it reads what the kernel does to the worker
 * threads (myriad_rt_signals(): eBPF probes, else /proc), steals first
 * from workers whose CPU is contended, and parks surplus workers while the
 * process gets fewer whole CPUs than it has workers (noisy neighbours,
 * cgroup throttling), bringing them back when CPUs are idle again. Spawns
 * stay local (sending a contended worker's spawns to the global queue made
 * fork-join breadth-first). Its decision ladder is numbered in
 * policy/kernel.c. Selected with
 * opts.policy, or MYRIAD_POLICY=kernel in the environment.
 */
MYRIAD_API extern const struct myriad_policy_ops myriad_policy_kernel;

#ifdef __cplusplus
}
#endif
#endif
