/* SPDX-License-Identifier: MIT */
/*
 * io/io.h: what a worker's run loop calls in io/ (its timers now; its
 * ring's operations later), and the completion kinds of its ring. sched/
 * drives the ring; io/ wakes tasks only through the state word protocol.
 */
#ifndef MYRIAD_IO_H
#define MYRIAD_IO_H

#include "sched/sched.h"

/*
 * A completion's user_data: the low bits say whose it is, the rest is
 * theirs. Wakes between workers are park.c's; timeouts are timer.c's.
 */
#define IO_UD_KIND 7ull
#define IO_UD_WAKE 1ull	    /* a wake posted by another thread */
#define IO_UD_MSG_SENT 2ull /* our MSG_RING, reported only on failure */
#define IO_UD_TIMEOUT 3ull  /* the timeout armed for the earliest timer */
#define IO_UD_SHIFT 8

int io_worker_init(struct worker *w);
void io_worker_fini(struct worker *w);
/* Fire the timers that are due and queue their tasks. */
void io_timers_poll(struct worker *w);
/* Before parking: arm a timeout for the earliest deadline. */
void io_timers_arm(struct worker *w);
/* A completion of io/'s own (not a wake). */
void io_cqe(struct worker *w, const struct io_uring_cqe *cqe);

#endif
