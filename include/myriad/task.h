/* SPDX-License-Identifier: MIT */
/*
 * myriad/task.h: stackless tasks: the step function, spawning children and
 * detached tasks from inside a task, join and results, yield, cancellation.
 */
#ifndef MYRIAD_TASK_H
#define MYRIAD_TASK_H

#include <myriad/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What a step returns.
 *
 * MYRIAD_DONE: the task has finished; its state is freed (a child's header
 *   stays until its parent has joined, so that the parent can read the
 *   result).
 * MYRIAD_YIELD: run me again later, behind the tasks already queued.
 * MYRIAD_PENDING: I armed a wake source (a join, a channel, I/O, a waker);
 *   run me again when it fires. A step must tolerate being run again
 *   without its condition being met (a spurious wake) and re-check it.
 */
enum myriad_poll {
	MYRIAD_DONE = 0,
	MYRIAD_YIELD = 1,
	MYRIAD_PENDING = 2,
};

/*
 * A step function. 'self' is the running task, 'state' its state (the
 * bytes given at spawn, copied into the task's own allocation). Returns an
 * enum myriad_poll value. It runs on one worker thread at a time, never
 * concurrently with itself; consecutive steps may run on different workers.
 */
typedef int (*myriad_step_fn)(myriad_task_t *self, void *state);

/* The largest state a task may carry (bytes). */
#define MYRIAD_STATE_MAX (1u << 20)

/* Flags for myriad_task_spawn(). */
enum {
	/*
	 * Not a child: the task is not joined by the spawner, is not cancelled
	 * with it, and is freed as soon as it finishes. Use it for tasks that
	 * outlive their spawner (a server's per-connection task).
	 */
	MYRIAD_SPAWN_DETACHED = 1u << 0,
};

/*
 * Spawn a task from inside a running task 'self'. 'init' (may be NULL for a
 * zeroed state) is copied into a fresh state of 'size' bytes (0 is allowed).
 *
 * By default the new task is a child of 'self': 'self' can wait for it with
 * myriad_task_join() and read its result; cancelling 'self' cancels it; and
 * 'self' does not finish before it does (a parent that returns MYRIAD_DONE
 * with children still running finishes when the last one does).
 *
 * Returns the child (valid until the parent has joined it and the step in
 * which the join returned 0 has returned; NULL for a detached task) with
 * *err set to 0, or NULL with *err set: -EINVAL (self or fn NULL, size over
 * MYRIAD_STATE_MAX, unknown flags, self not the running task), -ENOMEM,
 * -ESHUTDOWN. 'err' may be NULL.
 */
MYRIAD_API myriad_task_t *myriad_task_spawn(myriad_task_t *self,
					    myriad_step_fn fn, const void *init,
					    size_t size, unsigned flags,
					    int *err);

/*
 * Join all of self's children. Returns 0 when every child spawned so far
 * has finished (their results are then readable until this step returns),
 * or 1 when some are still running: the task is woken when the last one
 * finishes, so return MYRIAD_PENDING and call it again. -EINVAL if self is
 * NULL or not the running task.
 */
MYRIAD_API int myriad_task_join(myriad_task_t *self);

/* Set the result that the parent reads with myriad_task_result(). */
MYRIAD_API void myriad_task_set_result(myriad_task_t *self, int64_t value);

/*
 * A finished child's result (set with myriad_task_set_result(), else 0).
 * Valid only on a child that the caller has joined.
 */
MYRIAD_API int64_t myriad_task_result(const myriad_task_t *child);

/*
 * How a finished task ended: 0 normally, -ETIME if a deadline of its own or
 * of an ancestor cancelled it (myriad/io.h), -ECANCELED if it was cancelled
 * otherwise. Valid only on a child that the caller has joined.
 */
MYRIAD_API int myriad_task_status(const myriad_task_t *child);

/*
 * Cancel a task and its subtree: the task (and each of its children, at
 * their next step) sees myriad_task_cancelled() return true and is woken
 * if pending; children spawned afterwards start cancelled. Cancellation is
 * cooperative: a step sees it and returns MYRIAD_DONE. 't' must be 'self'
 * or a child of the running task that it has not yet joined and reaped.
 * Returns 0, or -EINVAL if t is NULL. Idempotent.
 */
MYRIAD_API int myriad_task_cancel(myriad_task_t *t);

/* True when 'self' or an ancestor has been cancelled. */
MYRIAD_API bool myriad_task_cancelled(const myriad_task_t *self);

/* The state of a task (the bytes after its header). */
MYRIAD_API void *myriad_task_state(myriad_task_t *t);

/*
 * The runtime the calling thread works for, or NULL on a thread that is not
 * one of a runtime's workers.
 */
MYRIAD_API myriad_rt_t *myriad_current_rt(void);

/* The index of the calling worker, or -1 outside any runtime's workers. */
MYRIAD_API int myriad_current_worker(void);

#ifdef __cplusplus
}
#endif
#endif
