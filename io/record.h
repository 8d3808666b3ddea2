/* SPDX-License-Identifier: MIT */
/*
 * io/record.h: an I/O record (myriad_io_t, in its task's state): its
 * layout and kinds, and the calls of the modules above io/ whose
 * records complete through them rather than through a ring.
 */
#ifndef MYRIAD_IO_RECORD_H
#define MYRIAD_IO_RECORD_H

#include "io/driver.h"
#include "io/timer.h"

struct io_op;

/*
 * What io/ calls on a record of kind IOK_EXT, given by the module that
 * starts it (io_ext_start()): io/ knows nothing else of it.
 */
struct io_ext_ops {
	/*
	 * The record's task asked for a cancel while the record is in
	 * flight (OP_CANCELLED is set): have it completed soon, with the
	 * task's reason. The task's step, on whatever worker it runs.
	 */
	void (*cancel)(struct io_op *op);
	/*
	 * The record's kept result goes (its task ended, or the record is
	 * reused): free what u.ext.ctx holds. The task's step or its end.
	 */
	void (*drop)(struct io_op *op);
};

/* An operation record (myriad_io_t), in its task's state. See record.c. */
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
			void *ctx; /* the starting module's (a call) */
			const struct io_ext_ops *ops;
		} ext;
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
	IOK_EXT,   /* completed by a module above io/ (u.ext) */
};

/*
 * For modules above io/ that complete records themselves: the common entry
 * (1: start a new operation; 0: done, read it with io_op_result(); else
 * the value to return), starting an IOK_EXT record counted in the task
 * like an operation, with the module's 'ops' and 'ctx', and completing it
 * from any thread ('w' NULL outside the workers).
 */
int io_op_enter(struct worker *w, struct myriad_task *self, struct io_op *op,
		uint8_t kind);
int io_op_result(struct myriad_task *self, struct io_op *op);
void io_ext_start(struct worker *w, struct myriad_task *self, struct io_op *op,
		  const struct io_ext_ops *ops, void *ctx);
void io_ext_complete(struct worker *w, struct io_op *op, int32_t res);
/* A poll whose completion pushes the record on '*stack', then wakes. */
int io_polln(struct myriad_task *self, struct io_op *op, int fd,
	     unsigned events, _Atomic(struct io_op *) *stack);
/* A deadline set with myriad_io_deadline() for the next start (ns), or 0. */
uint64_t io_op_take_deadline(struct io_op *op);
/* The kept result of a finished record goes (task end, reuse). */
void io_op_drop(struct myriad_rt *rt, struct io_op *op);

#endif
