/* SPDX-License-Identifier: MIT */
/*
 * myriad/time.h: sleeping and deadlines. A sleeping task costs its header,
 * its state (where the timer lives) and a slot in its worker's timing
 * wheel: no thread, no allocation, no system call per timer.
 */
#ifndef MYRIAD_TIME_H
#define MYRIAD_TIME_H

#include <myriad/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A timer. Put one in the task's state; all-zero (as a zeroed state is)
 * means idle. Opaque; 32 bytes.
 */
typedef struct myriad_timer {
	void *opaque_[4];
} myriad_timer_t;

/* CLOCK_MONOTONIC now, in nanoseconds. */
MYRIAD_API uint64_t myriad_now_ns(void);

/*
 * Sleep until CLOCK_MONOTONIC reaches 'deadline_ns' (rounded up to the
 * timer resolution, 1 ms: never early). Call from the running task 'self':
 * the first call arms 'tm' and returns -EAGAIN: return MYRIAD_PENDING and
 * call again with the same timer when run. It returns 0 once the deadline
 * has passed (the timer is idle again, ready for the next sleep), -EAGAIN
 * while it has not (a wake from elsewhere), -ECANCELED if the task was
 * cancelled (the timer is disarmed), -EINVAL (NULL arguments, self not the
 * running task). While armed, the deadline of the arming call counts.
 * A task waits on one thing at a time: arming a timer gives up a channel
 * wait or another timer, and a channel operation disarms the timer.
 */
MYRIAD_API int myriad_sleep_until(myriad_task_t *self, myriad_timer_t *tm,
				  uint64_t deadline_ns);

/* myriad_sleep_until(self, tm, now + ns) at arming time. */
MYRIAD_API int myriad_sleep(myriad_task_t *self, myriad_timer_t *tm,
			    uint64_t ns);

/*
 * The deadline 'tm' was last armed with, in nanoseconds, as the timer
 * keeps it (rounded up to whole milliseconds); 0 if never armed.
 */
MYRIAD_API uint64_t myriad_timer_deadline(const myriad_timer_t *tm);

/* Disarm 'tm' (no-op when idle). Returns 0, or -EINVAL. */
MYRIAD_API int myriad_timer_cancel(myriad_task_t *self, myriad_timer_t *tm);

#ifdef __cplusplus
}
#endif
#endif
