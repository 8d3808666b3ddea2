/* SPDX-License-Identifier: MIT */
/*
 * io/internal.h: what io/'s files share about records and nothing above
 * io/ needs: the bits of a record's 'st' and 'oflags' words, and the
 * helpers that submit, start, complete, list and cancel records.
 */
#ifndef MYRIAD_IO_INTERNAL_H
#define MYRIAD_IO_INTERNAL_H

#include "io/record.h"

/* st: the phase, flags, and the kernel completions still due. */
#define OP_IDLE 0u
#define OP_FLIGHT 1u
#define OP_DONE 2u
#define OP_PHASE 3u
#define OP_XCANCEL 4u	 /* a cancel request is on its way to the owner */
#define OP_RESULT_IN 8u	 /* ... and the owner has the result already */
#define OP_TMO_FIRED 16u /* the linked timeout fired */
#define OP_CANCELLED 32u /* the task asked for a cancel */
#define OP_LINKED 64u	 /* submitted with a linked timeout */
#define OP_CQE_ONE 256u	 /* bits 8-9: kernel completions due */
#define OP_CQES(s) (((s) >> 8) & 3u)

/* oflags: the task's own. */
#define OF_LISTED 1u   /* on the task's list */
#define OF_DEADLINE 2u /* u.ts holds a deadline for the next submission */
#define OF_BUF 4u      /* holds a provided buffer (its id in cflags) */
#define OF_HOLD 8u     /* holds a finished IOK_EXT record's result */

/* A completed multishot accept that must be armed again. */
#define RES_REARM INT32_MIN

static inline uint32_t st_load(struct io_op *op)
{
	return atomic_load_explicit(&op->st, memory_order_acquire);
}

/* ring.c: submission on the worker's ring (owner) */
struct io_uring_sqe *get_sqe(struct worker *w);
/* Submit what is queued (an SQ full of our own entries empties here). */
void flush_sq(struct worker *w);

/* record.c: the record protocol (its steps 1-8) */
void op_list_add(struct myriad_task *t, struct io_op *op);
void op_list_del(struct myriad_task *t, struct io_op *op);
/* In flight and counted in the task; op_start() leaves room for an SQE. */
void op_start(struct worker *w, myriad_task_t *self, struct io_op *op,
	      uint8_t kind);
int op_commit(struct worker *w, struct io_op *op, struct io_uring_sqe *sqe);
void ext_arm(struct worker *w, struct myriad_task *self, struct io_op *op,
	     uint8_t kind);
void complete_one(struct worker *w, struct io_op *op, uint32_t add);
void op_cancel(struct worker *w, struct io_op *op);

/* deadline.c: the linked timeout of an operation's deadline */
void link_timeout(struct worker *w, struct io_op *op, struct io_uring_sqe *sqe);

/* bufring.c: provided buffers, and recvs that wait for one */
void op_buf_release(struct myriad_rt *rt, struct io_op *op);
void bufring_destroy(struct worker *w);
void retry_add(struct worker *w, struct io_op *op);
void retry_run(struct worker *w);

/* accept.c: multishot accept */
void accept_drop(struct io_op *op);
void accept_cqe(struct worker *w, struct io_op *op,
		const struct io_uring_cqe *cqe);

#endif
