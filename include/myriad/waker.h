/* SPDX-License-Identifier: MIT */
/*
 * myriad/waker.h: how a wake source (I/O, a timer, a channel, another
 * library's callback) makes a pending task run again, exactly once.
 */
#ifndef MYRIAD_WAKER_H
#define MYRIAD_WAKER_H

#include <myriad/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A waker names a task and its runtime. It is a plain value: copying it
 * costs nothing and it holds no reference. The wake source that holds it
 * must give it up before the task can finish (the task deregisters from
 * its wake source, or the source fires first): a waker used after its task
 * finished touches freed memory.
 */
typedef struct myriad_waker {
	myriad_rt_t *rt;
	myriad_task_t *task;
} myriad_waker_t;

/*
 * The running task's waker. Valid only when called from the running task's
 * own step ('self'); returns a waker with task NULL otherwise.
 */
MYRIAD_API myriad_waker_t myriad_task_waker(myriad_task_t *self);

/*
 * Wake the task: if it is pending it is scheduled to run; if it is running
 * it runs once more after this step; if it is already scheduled nothing
 * happens. Never runs it twice or concurrently, never loses the wake.
 * Callable from any thread. Returns 1 if this call scheduled the task, 0 if
 * it was already scheduled, running (now notified) or finished, -EINVAL if
 * the waker is empty, -ESHUTDOWN if the runtime has stopped.
 */
MYRIAD_API int myriad_waker_wake(myriad_waker_t w);

#ifdef __cplusplus
}
#endif
#endif
