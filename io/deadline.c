/* SPDX-License-Identifier: MIT */
/*
 * io/deadline.c: deadlines: an operation's (a linked timeout, set with
 * myriad_io_deadline()) and a task's (a timer that cancels it with -ETIME).
 */
#include <string.h>

#include "io/internal.h"

/* The linked timeout behind 'sqe' (the SQE just taken) for op's deadline. */
void link_timeout(struct worker *w, struct io_op *op, struct io_uring_sqe *sqe)
{
	struct io_uring_sqe *l;

	sqe->flags |= IOSQE_IO_LINK;
	l = get_sqe(w);
	io_uring_prep_link_timeout(l, &op->u.ts, IORING_TIMEOUT_ABS);
	l->user_data = (uint64_t)(uintptr_t)op | IO_UD_LTMO;
}

int myriad_io_deadline(myriad_io_t *rec, uint64_t deadline_ns)
{
	struct io_op *op = (struct io_op *)rec;

	if (!op)
		return -EINVAL;
	if ((st_load(op) & OP_PHASE) == OP_FLIGHT)
		return -EBUSY;
	if (op->kind == IOK_DEADLINE && (op->oflags & OF_LISTED))
		return -EINVAL;
	/*
	 * The deadline shares the record's union with what a finished record
	 * keeps: an inference call's result (until myriad_infer_release() or
	 * the next start) and an accept's queue of descriptors. Writing it
	 * there lost them (a crash at the next start, which drops the result
	 * through a pointer the deadline overwrote).
	 */
	if ((op->oflags & OF_HOLD) || (op->kind == IOK_ACCEPT && op->u.acc.q))
		return -EBUSY;
	op->u.ts.tv_sec = (long long)(deadline_ns / 1000000000u);
	op->u.ts.tv_nsec = (long long)(deadline_ns % 1000000000u);
	op->oflags |= OF_DEADLINE;
	return 0;
}

int myriad_task_deadline(myriad_task_t *self, myriad_io_t *rec,
			 uint64_t deadline_ns)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)rec;
	uint64_t now = myriad_now_ns();
	int r;

	if (!self || !op || !w || w->current != self)
		return -EINVAL;
	if (deadline_ns <= now) {
		/* Passed already: cancelled now, not at the next tick. */
		if (op->kind == IOK_DEADLINE && (op->oflags & OF_LISTED))
			timer_disarm(w->rt, &op->u.tm);
		task_cancel_flags(self, TF_TIMEDOUT);
		return -ETIME;
	}
	if (op->kind == IOK_DEADLINE && (op->oflags & OF_LISTED)) {
		timer_disarm(w->rt, &op->u.tm); /* move it */
	} else {
		if ((st_load(op) & OP_PHASE) != OP_IDLE)
			return -EINVAL;
		op_buf_release(w->rt, op);
		memset(op, 0, sizeof(*op));
		op->kind = IOK_DEADLINE;
		op->task = self;
		op_list_add(self, op);
	}
	r = timer_arm(w, &op->u.tm, self, deadline_ns, true, now);
	if (r == 0) {
		task_cancel_flags(self, TF_TIMEDOUT);
		return -ETIME;
	}
	return 0;
}

uint64_t io_op_take_deadline(struct io_op *op)
{
	uint64_t d;

	if (!(op->oflags & OF_DEADLINE))
		return 0;
	op->oflags &= ~OF_DEADLINE;
	d = (uint64_t)op->u.ts.tv_sec * 1000000000u +
	    (uint64_t)op->u.ts.tv_nsec;
	return d ? d : 1;
}
