/* SPDX-License-Identifier: MIT */
/*
 * io/io.h: what a worker's run loop calls in io/ (its timers now; its
 * ring's operations later), and the completion kinds of its ring. sched/
 * drives the ring; io/ wakes tasks only through the state word protocol.
 */
#ifndef MYRIAD_IO_INTERNAL_H
#define MYRIAD_IO_INTERNAL_H

#include "sched/sched.h"
#include "io/wheel.h"

/*
 * A completion's user_data: the low bits say whose it is, the rest is
 * theirs (an index shifted by IO_UD_SHIFT, or an 8-aligned record
 * pointer). Wakes between workers are park.c's; timeouts are timer.c's;
 * operations are ops.c's. user_data 0 is ignored.
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

/* A timer (myriad_timer_t): a wheel node and the task it wakes. */
struct timer {
	struct wheel_node node; /* when: deadline ms | worker | state */
	struct myriad_task *task;
};

/* An operation record (myriad_io_t), in its task's state. See ops.c. */
struct io_op {
	_Atomic uint32_t st; /* phase and flags, shared with the ring owner */
	int32_t res;	     /* the kernel's result */
	uint32_t cflags;     /* the completion's flags (buffer id) */
	uint16_t worker;     /* the ring it was submitted to */
	uint8_t kind;	     /* enum io_kind */
	uint8_t oflags;	     /* the task's own flags */
	struct myriad_task *task;
	struct io_op *next; /* the task's list of records in use */
	union {
		struct __kernel_timespec ts; /* linked timeout, absolute */
		struct {
			int *q; /* accepted, not yet returned */
			uint32_t head, n, cap;
			struct spin lock;
		} acc;
		struct timer tm; /* a task deadline's timer */
		struct {
			myriad_blocking_fn fn;
			void *arg;
			int64_t ret;
			struct io_op *qnext; /* the pool's queue */
		} blk;
		struct {
			/* completed records are pushed here (lock-free) */
			_Atomic(struct io_op *) *stack;
			struct io_op *snext;
		} ntf;
		struct {
			struct icall *c; /* infer/infer.c's call */
		} inf;
	} u;
};

enum io_kind {
	IOK_NONE,
	IOK_ACCEPT,
	IOK_CONNECT,
	IOK_SEND,
	IOK_RECV,
	IOK_RECV_BUF,
	IOK_READ,
	IOK_WRITE,
	IOK_OPENAT,
	IOK_CLOSE,
	IOK_POLL,
	IOK_BLOCKING,
	IOK_DEADLINE,
	IOK_POLLN, /* a poll whose completion is pushed on a stack */
	IOK_INFER, /* an inference call (infer/infer.c) */
};

struct icall;

int io_worker_init(struct worker *w);
void io_worker_fini(struct worker *w);
/* Fire the timers that are due and queue their tasks. */
void io_timers_poll(struct worker *w);
/* Before parking: arm a timeout for the earliest deadline. */
void io_timers_arm(struct worker *w);
/* A completion of io/'s own (not a wake). */
void io_cqe(struct worker *w, const struct io_uring_cqe *cqe);

/* ops.c: the worker's side */
void io_op_cqe(struct worker *w, const struct io_uring_cqe *cqe);
int io_ops_init(struct worker *w);
/* Submit what the tick queued and reap what completed: one enter. */
void io_tick(struct worker *w);
/* Shutdown, in the worker's thread: cancel everything in flight, reap. */
void io_drain(struct worker *w);
/* The task's side: cancel its operations; at DONE, settle its records. */
void io_task_cancel(struct worker *w, struct myriad_task *t);
void io_task_finish(struct worker *w, struct myriad_task *t);

/*
 * ops.c, for modules that complete records themselves (infer/): the
 * common entry (1: start a new operation; 0: done, read it with
 * io_op_result(); else the value to return), starting a record counted
 * in the task like an operation, and completing it from any thread ('w'
 * NULL outside the workers).
 */
int io_op_enter(struct worker *w, struct myriad_task *self, struct io_op *op,
		uint8_t kind);
int io_op_result(struct myriad_task *self, struct io_op *op);
void io_ext_start(struct worker *w, struct myriad_task *self, struct io_op *op,
		  uint8_t kind);
void io_ext_complete(struct worker *w, struct io_op *op, int32_t res);
/* A poll whose completion pushes the record on '*stack', then wakes. */
int io_polln(struct myriad_task *self, struct io_op *op, int fd,
	     unsigned events, _Atomic(struct io_op *) *stack);
/* A deadline set with myriad_io_deadline() for the next start (ns), or 0. */
uint64_t io_op_take_deadline(struct io_op *op);
/* The kept result of a finished record goes (task end, reuse). */
void io_op_drop(struct myriad_rt *rt, struct io_op *op);

/* infer/infer.c: cancel a call in flight; free a finished call */
void infer_cancel(struct io_op *op);
void infer_drop(struct io_op *op);

/*
 * timer.c, for task deadlines. now_ns: the clock when the caller read it,
 * or 0 to have it read (a deadline that has passed is not armed: 0).
 */
int timer_arm(struct worker *w, struct timer *tm, struct myriad_task *t,
	      uint64_t deadline_ns, bool deadline, uint64_t now_ns);
void timer_disarm(struct myriad_rt *rt, struct timer *tm);

/* offload.c */
int offload_submit(struct myriad_rt *rt, struct io_op *op);
void offload_stop(struct myriad_rt *rt);

#endif
