/* SPDX-License-Identifier: MIT */
/*
 * sched/driver.h: the driver a worker parks on and ticks (I/O, timers,
 * wakes between workers), seen by the scheduler as one table of callbacks.
 */
#ifndef MYRIAD_SCHED_DRIVER_H
#define MYRIAD_SCHED_DRIVER_H

#include <stdbool.h>

struct myriad_rt;
struct myriad_rt_opts;
struct myriad_task;
struct worker;

/*
 * The scheduler never names the layer above it: a runtime is created with
 * a driver (rt_create()), and the public myriad_rt_create() is defined by
 * the layer that implements one (io/ passes its io_uring driver, as
 * Tokio's runtime is built around its I/O driver). The scheduler calls the
 * driver to park and to tick; the driver wakes tasks only through the state
 * word (task_op_done(), task_wake_prepare()) and the queues' push calls,
 * never by touching a run queue's insides.
 *
 * Who calls what, and from where:
 */
struct sched_driver {
	/*
	 * The runtime is being created (the creating thread, before any
	 * worker starts): the driver's per-runtime state, in rt->drv_ctx,
	 * from the options it owns. 0 or -errno. rt_fini() frees it once the
	 * workers are joined; it also runs after a failed or partial
	 * rt_init(), or none (rt->drv_ctx NULL).
	 */
	int (*rt_init)(struct myriad_rt *rt, const struct myriad_rt_opts *opts);
	void (*rt_fini)(struct myriad_rt *rt);

	/*
	 * In the worker's own thread, before any step runs: its state, in
	 * w->drv (a wake may be sent to it once every worker has started).
	 * 0 or -errno. worker_fini() frees it once every worker is joined
	 * (no wake can be sent to it any more); w->drv may be NULL.
	 */
	int (*worker_init)(struct worker *w);
	void (*worker_fini)(struct worker *w);

	/*
	 * Sleep until unpark() of this worker, a completion or a timer
	 * (sched/park.c:5): returns at once when an unpark came since the
	 * worker last registered as asleep, and moves what became due
	 * (completions, timers) toward running before it returns. The owner.
	 */
	void (*park)(struct worker *w);

	/*
	 * Wake 'target', parked or about to park: from 'from', a worker of
	 * this runtime (its own thread), or from any other thread ('from'
	 * NULL). Returns false when 'target' has nothing to wake (it never
	 * started), true when the wake is on its way.
	 */
	bool (*unpark)(struct myriad_rt *rt, struct worker *from,
		       struct worker *target);

	/*
	 * Submit what the tick queued and collect what completed, without
	 * waiting. The owner, when w->drv_busy says there may be something,
	 * and now and then while an urgent task runs here (worker.c).
	 */
	void (*poll)(struct worker *w);

	/* Every maintenance tick (the owner): poll, and fire due timers. */
	void (*maintain)(struct worker *w);

	/*
	 * The worker stops (its thread, after its last step): cancel what is
	 * in flight and collect every completion, so that nothing in the
	 * kernel points into a task once the worker is joined.
	 */
	void (*drain)(struct worker *w);

	/* Every worker is joined: stop the driver's own threads. */
	void (*stop)(struct myriad_rt *rt);

	/*
	 * The task's hooks, for a task whose 'ops' list is not empty: it was
	 * cancelled (task_cancel(): cancel what it has in flight, on whatever
	 * worker), or its step returned DONE (task_finish(): cancel what is in
	 * flight and settle what completed; the task stays, ZOMBIE, until the
	 * rest completes, and the hook runs again then). The worker running it.
	 */
	void (*task_cancel)(struct worker *w, struct myriad_task *t);
	void (*task_finish)(struct worker *w, struct myriad_task *t);

	/*
	 * The task's 'wait' word names a timer (TW_TIMER): disarm it, clear
	 * the word. The task's step or its end.
	 */
	void (*timer_release)(struct myriad_task *t);
};

/*
 * rt.c: create a runtime whose workers park on and tick 'drv'. What
 * myriad_rt_create() does, with the driver of the layer that defines it.
 */
struct myriad_rt *rt_create(const struct myriad_rt_opts *opts,
			    const struct sched_driver *drv, int *err);

#endif
