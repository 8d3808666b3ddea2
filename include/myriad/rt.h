/* SPDX-License-Identifier: MIT */
/*
 * myriad/rt.h: a runtime's life: create it, spawn into it from any thread,
 * run a root task to completion, shut it down and free it.
 */
#ifndef MYRIAD_RT_H
#define MYRIAD_RT_H

#include <myriad/common.h>
#include <myriad/task.h>

#ifdef __cplusplus
extern "C" {
#endif

struct myriad_policy_ops;

/* The most workers a runtime may have. */
#define MYRIAD_WORKERS_MAX 1024

/*
 * Options for myriad_rt_create(). Set 'sz' to sizeof(struct
 * myriad_rt_opts); fields past 'sz' take their defaults, so callers built
 * against an older header keep working. All-zero fields mean "default".
 */
struct myriad_rt_opts {
	size_t sz;
	/*
	 * Worker threads. 0: the environment variable MYRIAD_WORKERS if set,
	 * else one per usable CPU: the CPUs in the affinity mask, capped by
	 * the cgroup v2 cpu.max quota (rounded up).
	 */
	unsigned workers;
	/*
	 * Overrides the cgroup quota read when counting CPUs, in cpu.max's
	 * own format ("max 100000" or "150000 100000"). NULL: the
	 * environment variable MYRIAD_CPU_MAX, else the process's cgroup.
	 */
	const char *cpu_max;
	/*
	 * Placement policy; NULL: MYRIAD_POLICY in the environment ("default"
	 * or "kernel"), else myriad_policy_default.
	 */
	const struct myriad_policy_ops *policy;
	/* Passed to the policy's init callback. */
	void *policy_arg;
	/*
	 * Submission queue entries of each worker's io_uring (a power of two,
	 * 2 to 32768; 0: 256). The completion queue is four times larger
	 * (at most 65536 entries).
	 * A full submission queue is flushed, never dropped.
	 */
	unsigned ring_entries;
	/*
	 * Publish the per-worker counters in shared memory for other
	 * processes (myriad/stats.h, struct myriad_shm); also turned on by
	 * the environment variable MYRIAD_STATS_SHM=1.
	 */
	bool stats_shm;
	/*
	 * Scheduler signals (myriad/stats.h): 0 when the policy asks for them
	 * or MYRIAD_SIGNALS says so, 1 on, -1 off.
	 */
	int signals;
};

/*
 * Create a runtime and start its workers. 'opts' may be NULL (defaults).
 * Returns the runtime, or NULL with *err set: -EINVAL (opts->sz too small,
 * workers over MYRIAD_WORKERS_MAX, malformed cpu_max, ring_entries not
 * a power of two in range, policy ops missing a
 * required callback), -ENOMEM, or the negative errno of a failed thread,
 * ring or arena creation. 'err' may be NULL.
 */
MYRIAD_API myriad_rt_t *myriad_rt_create(const struct myriad_rt_opts *opts,
					 int *err);

/*
 * Stop the runtime: workers finish the step they are running and exit; no
 * step starts afterwards. Tasks still queued or pending are not run; they
 * are freed by myriad_rt_destroy(). Threads blocked in myriad_handle_join()
 * return -ESHUTDOWN. Idempotent; must not be called from a worker thread.
 * Returns 0, -EINVAL (rt NULL) or -EDEADLK (called from a worker).
 */
MYRIAD_API int myriad_rt_shutdown(myriad_rt_t *rt);

/*
 * Shut down (as myriad_rt_shutdown()) and free the runtime and every task
 * it still holds, queued or pending. Handles must be released first:
 * with handles outstanding it returns -EBUSY after shutting down, and can
 * be called again once they are released. Returns 0, -EINVAL (rt NULL),
 * -EBUSY or -EDEADLK (called from a worker).
 */
MYRIAD_API int myriad_rt_destroy(myriad_rt_t *rt);

/* The number of worker threads, or -EINVAL. */
MYRIAD_API int myriad_rt_workers(const myriad_rt_t *rt);

/*
 * A handle on a task spawned with myriad_rt_spawn(): join it from any
 * thread, cancel it, then release it.
 */
typedef struct myriad_task myriad_handle_t;

/*
 * Spawn a top-level task from any thread (a worker or not). 'init' (may be
 * NULL) is copied into a state of 'size' bytes. With 'handle' non-NULL a
 * handle is returned through it and must be released with
 * myriad_handle_release(); with NULL the task is detached.
 * Returns 0, or -EINVAL (rt or fn NULL, size over MYRIAD_STATE_MAX),
 * -ENOMEM, -ESHUTDOWN.
 */
MYRIAD_API int myriad_rt_spawn(myriad_rt_t *rt, myriad_step_fn fn,
			       const void *init, size_t size,
			       myriad_handle_t **handle);

/*
 * Wait, blocking the calling thread, until the task finishes; stores its
 * result in *result (may be NULL). 'timeout_ns' < 0 waits forever.
 * Returns 0 (finished), -ECANCELED (finished after being cancelled),
 * -ETIMEDOUT, -ESHUTDOWN (the runtime stopped first), -EINVAL (h NULL),
 * -EDEADLK (called from one of the runtime's workers, which must never
 * block: join children with myriad_task_join() instead).
 */
MYRIAD_API int myriad_handle_join(myriad_handle_t *h, int64_t *result,
				  int64_t timeout_ns);

/* Cancel the task behind a handle (see myriad_task_cancel()). 0 or -EINVAL. */
MYRIAD_API int myriad_handle_cancel(myriad_handle_t *h);

/*
 * Release a handle; the task runs on if unfinished and is freed when done.
 * Returns 0 or -EINVAL. The handle must not be used afterwards.
 */
MYRIAD_API int myriad_handle_release(myriad_handle_t *h);

/*
 * Run a root task to completion from a thread outside the runtime: spawn,
 * join, release. Returns as myriad_handle_join() does (without timeout).
 */
MYRIAD_API int myriad_rt_block_on(myriad_rt_t *rt, myriad_step_fn fn,
				  const void *init, size_t size,
				  int64_t *result);

#ifdef __cplusplus
}
#endif
#endif
