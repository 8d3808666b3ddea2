/* SPDX-License-Identifier: MIT */
/*
 * myriad/stats.h: per-worker counters (spawned, run, stolen, ...) and the
 * count of live tasks, for diagnostics and tests.
 */
#ifndef MYRIAD_STATS_H
#define MYRIAD_STATS_H

#include <myriad/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One counter per worker for each of these. */
enum myriad_counter {
	MYRIAD_CTR_SPAWNED,	 /* tasks spawned on this worker */
	MYRIAD_CTR_RUN,		 /* steps run */
	MYRIAD_CTR_STOLEN,	 /* tasks this worker took from others */
	MYRIAD_CTR_STEAL_FAILS,	 /* searches that found nothing */
	MYRIAD_CTR_PARKS,	 /* times this worker went to sleep */
	MYRIAD_CTR_WAKES,	 /* times it was woken by another thread */
	MYRIAD_CTR_NOTIFIES,	 /* wake-ups it sent to sleeping workers */
	MYRIAD_CTR_INJECT_POLLS, /* tasks taken from the global inject queue */
	MYRIAD_CTR_LIFO_RUNS,	 /* steps run from the LIFO slot */
	MYRIAD_CTR_OVERFLOWS,	 /* local queue spills to the inject queue */
	MYRIAD_CTR_IO_OPS,	 /* I/O operations started by its tasks */
	MYRIAD_CTR_IO_ENTERS,	 /* io_uring_enter calls on its ring */
	MYRIAD_CTR__COUNT
};

/* The counter's name ("spawned", ...), or NULL if out of range. */
MYRIAD_API const char *myriad_counter_name(unsigned ctr);

/*
 * Copy up to 'n' counters of worker 'worker' into 'out' (indexed by enum
 * myriad_counter). The counters are read while the worker runs, so each is
 * exact only once the runtime is idle. Returns the number copied,
 * -EINVAL (rt or out NULL, worker out of range) or -ENOTSUP when the
 * library was built with counters compiled out (-Dcounters=false).
 */
MYRIAD_API int myriad_rt_counters(const myriad_rt_t *rt, unsigned worker,
				  uint64_t *out, size_t n);

/*
 * Tasks allocated and not yet freed (queued, running, pending, or finished
 * children not yet reaped by their parent). Exact once the runtime is idle.
 * Returns the count or -EINVAL.
 */
MYRIAD_API int64_t myriad_rt_tasks_live(const myriad_rt_t *rt);

#ifdef __cplusplus
}
#endif
#endif
