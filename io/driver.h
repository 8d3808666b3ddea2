/* SPDX-License-Identifier: MIT */
/*
 * io/driver.h: io/'s side of the scheduler's driver (sched/driver.h): each
 * worker's ring, timers and I/O state, the runtime's outside ring and
 * blocking pool, and the completion kinds of a worker's ring.
 */
#ifndef MYRIAD_IO_DRIVER_H
#define MYRIAD_IO_DRIVER_H

#include <liburing.h>

#include "sched/sched.h"

struct wheel;
struct io_bufring;
struct io_op;
struct offload;

/*
 * A completion's user_data: the low bits say whose it is, the rest is
 * theirs (an index shifted by IO_UD_SHIFT, or an 8-aligned record
 * pointer). Wakes between workers are ring.c's; timeouts are timer.c's;
 * operations are record.c's. user_data 0 is ignored.
 */
#define IO_UD_KIND 7ull
#define IO_UD_WAKE 1ull	    /* a wake posted by another thread */
#define IO_UD_MSG_SENT 2ull /* our MSG_RING, reported only on failure */
#define IO_UD_TIMEOUT 3ull  /* the timeout armed for the earliest timer */
#define IO_UD_OP 4ull	    /* an operation's completion: record | 4 */
#define IO_UD_LTMO 5ull	    /* its linked timeout's: record | 5 */
#define IO_UD_XCANCEL 6ull  /* another worker asks us to cancel: rec | 6 */
#define IO_UD_XSENT 7ull    /* that request failed to post: rec | 7 */
#define IO_UD_SHIFT 8

/*
 * A worker's I/O state (its w->drv), created in its own thread. Owner
 * only unless said otherwise.
 */
struct io_worker {
	struct io_uring uring; /* parks here, and runs the tasks' I/O */
	bool uring_ok;
	unsigned uring_flags;

	/* Timers armed by tasks run here (timer.c), under wlock. */
	struct wheel *wheel;
	struct spin wlock;
	_Atomic uint64_t timer_next; /* earliest deadline (ms), a hint */
	bool tmo_armed;		     /* a ring timeout is in flight ... */
	uint64_t tmo_ms;	     /* ... for this deadline */
	struct __kernel_timespec tmo_ts;

	/* Operations (record.c, bufring.c). */
	uint64_t inflight;	 /* records whose completion is due here */
	unsigned queued;	 /* SQEs queued since the last enter */
	bool draining;		 /* shutdown: cancel everything, reap */
	struct io_bufring *bufs; /* provided buffers for recv_buf */
	struct io_op **retry;	 /* recvs that found no buffer */
	unsigned nretry, retry_cap;
	_Atomic uint64_t bufs_back; /* buffers given back, any thread */
	uint64_t bufs_seen;
} __attribute__((aligned(CACHELINE)));

/* The runtime's I/O state (its rt->drv_ctx). */
struct io_rt {
	unsigned ring_entries; /* of each worker's ring */
	/* Outside threads wake workers through this ring, under olock. */
	pthread_mutex_t olock;
	struct io_uring oring;
	bool oring_ok;
	/* The blocking-call pool (offload.c), started on first use. */
	struct offload *offload;
	pthread_mutex_t offload_lock;
};

static inline struct io_worker *worker_io(const struct worker *w)
{
	return w->drv;
}

static inline struct io_rt *rt_io(const struct myriad_rt *rt)
{
	return rt->drv_ctx;
}

/* driver.c: the table myriad_rt_create() hands the scheduler. */
extern const struct sched_driver io_driver;

/* ring.c: the worker's ring, where it parks and wakes arrive */
int ring_init(struct worker *w, unsigned entries);
void ring_fini(struct worker *w);
void ring_park(struct worker *w);
bool ring_unpark(struct myriad_rt *rt, struct worker *from,
		 struct worker *target);
/* Reap every completion the ring holds, overflowed ones too; no wait. */
void ring_reap(struct worker *w);

/* Submit what the tick queued and reap what completed: one enter. */
void io_tick(struct worker *w);
/* Shutdown, in the worker's thread: cancel everything in flight, reap. */
void io_drain(struct worker *w);

/* record.c: a completion of an operation (IO_UD_OP and above) */
void io_op_cqe(struct worker *w, const struct io_uring_cqe *cqe);
/* The task's side: cancel its operations; at DONE, settle its records. */
void io_task_cancel(struct worker *w, struct myriad_task *t);
void io_task_finish(struct worker *w, struct myriad_task *t);

/* offload.c: the blocking-call pool's end (the workers are joined) */
void offload_stop(struct myriad_rt *rt);

#endif
