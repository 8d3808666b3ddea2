/* SPDX-License-Identifier: MIT */
/*
 * io/timer.h: timers in task state (myriad_timer_t, task deadlines) on
 * each worker's timing wheel, and the ring timeout of a parked worker.
 */
#ifndef MYRIAD_IO_TIMER_H
#define MYRIAD_IO_TIMER_H

#include "io/driver.h"
#include "io/wheel.h"

/* A timer (myriad_timer_t): a wheel node and the task it wakes. */
struct timer {
	struct wheel_node node; /* when: deadline ms | worker | state */
	struct myriad_task *task;
};

/* The worker's wheel (its thread, at start) and its end. */
int timers_init(struct worker *w);
void timers_fini(struct worker *w);
/* Fire the timers that are due and queue their tasks. */
void timers_poll(struct worker *w);
/* Before parking: arm a ring timeout for the earliest deadline. */
void timers_arm(struct worker *w);
/* That timeout completed (IO_UD_TIMEOUT). */
void timers_timeout_cqe(struct worker *w, const struct io_uring_cqe *cqe);

/*
 * For task deadlines. now_ns: the clock when the caller read it, or 0 to
 * have it read (a deadline that has passed is not armed: 0).
 */
int timer_arm(struct worker *w, struct timer *tm, struct myriad_task *t,
	      uint64_t deadline_ns, bool deadline, uint64_t now_ns);
void timer_disarm(struct myriad_rt *rt, struct timer *tm);
/* The task's wait word names a timer: disarm it (the driver's hook). */
void timer_release(struct myriad_task *t);

#endif
