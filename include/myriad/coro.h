/* SPDX-License-Identifier: MIT */
/*
 * myriad/coro.h: coroutine macros, in the spirit of protothreads, so that a
 * multi-step agent reads as straight-line C while staying stackless.
 */
#ifndef MYRIAD_CORO_H
#define MYRIAD_CORO_H

#include <myriad/task.h>
#include <myriad/chan.h>
#include <myriad/time.h>

/*
 * The resume point lives in the task's state: put MYRIAD_CORO_FIELD in the
 * state struct (zeroed at spawn, which means "start"). A step function then
 * wraps its body in MYRIAD_BEGIN(st) ... MYRIAD_END(st):
 *
 *	struct agent { MYRIAD_CORO_FIELD; int i; int64_t v; };
 *
 *	static int agent_step(myriad_task_t *self, void *p)
 *	{
 *		struct agent *st = p;
 *		int rc;
 *
 *		MYRIAD_BEGIN(st);
 *		for (st->i = 0; st->i < 10; st->i++) {
 *			MYRIAD_RECV(st, self, in, &st->v, rc);
 *			if (rc < 0)
 *				break;
 *			MYRIAD_YIELD(st);
 *		}
 *		MYRIAD_END(st);
 *	}
 *
 * Rules, as with any switch-based coroutine: locals do not survive a
 * suspension point (keep what must survive in the state), at most one
 * suspension macro per source line, and no suspension macro inside a
 * switch statement of your own.
 */
/* The macros' layout is part of their readability. */
/* clang-format off */
#define MYRIAD_CORO_FIELD int myriad_pc_

#if defined(__GNUC__) && __GNUC__ >= 7 || defined(__clang__)
#define MYRIAD_FALLTHROUGH_ __attribute__((fallthrough))
#else
#define MYRIAD_FALLTHROUGH_ ((void)0)
#endif

#define MYRIAD_BEGIN(st) switch ((st)->myriad_pc_) { case 0:

#define MYRIAD_END(st)                                                        \
	}                                                                     \
	(st)->myriad_pc_ = -1;                                                \
	return MYRIAD_DONE

/* Run again later, behind the tasks already queued. */
#define MYRIAD_YIELD(st)                                                      \
	do {                                                                  \
		(st)->myriad_pc_ = __LINE__;                                  \
		return MYRIAD_YIELD;                                          \
	case __LINE__:;                                                       \
	} while (0)

/*
 * Stay pending until 'cond' holds; the wake source that makes it true must
 * wake the task (a waker, a join, a channel, I/O).
 */
#define MYRIAD_WAIT_UNTIL(st, cond)                                           \
	do {                                                                  \
		(st)->myriad_pc_ = __LINE__;                                  \
		MYRIAD_FALLTHROUGH_;                                          \
	case __LINE__:                                                        \
		if (!(cond))                                                  \
			return MYRIAD_PENDING;                                \
	} while (0)

/* Wait for every child spawned so far; their results are then readable. */
#define MYRIAD_JOIN(st, self) MYRIAD_WAIT_UNTIL(st, myriad_task_join(self) <= 0)

/* Send 'elem' on 'ch', parking while full; rc gets 0 or a negative errno. */
#define MYRIAD_SEND(st, self, ch, elem, rc)                                   \
	do {                                                                  \
		(st)->myriad_pc_ = __LINE__;                                  \
		MYRIAD_FALLTHROUGH_;                                          \
	case __LINE__:                                                        \
		(rc) = myriad_chan_send((self), (ch), (elem));                \
		if ((rc) == -EAGAIN)                                          \
			return MYRIAD_PENDING;                                \
	} while (0)

/* Receive into 'out' from 'ch', parking while empty; rc as for send. */
#define MYRIAD_RECV(st, self, ch, out, rc)                                    \
	do {                                                                  \
		(st)->myriad_pc_ = __LINE__;                                  \
		MYRIAD_FALLTHROUGH_;                                          \
	case __LINE__:                                                        \
		(rc) = myriad_chan_recv((self), (ch), (out));                 \
		if ((rc) == -EAGAIN)                                          \
			return MYRIAD_PENDING;                                \
	} while (0)

/* Sleep 'ns' nanoseconds on timer 'tm'; rc gets 0 or a negative errno. */
#define MYRIAD_SLEEP(st, self, tm, ns, rc)                                    \
	do {                                                                  \
		(st)->myriad_pc_ = __LINE__;                                  \
		MYRIAD_FALLTHROUGH_;                                          \
	case __LINE__:                                                        \
		(rc) = myriad_sleep((self), (tm), (ns));                      \
		if ((rc) == -EAGAIN)                                          \
			return MYRIAD_PENDING;                                \
	} while (0)

/*
 * Run an I/O call (myriad/io.h) until it completes: 'call' is re-evaluated
 * at each wake, with the same record; rc gets its result.
 *	MYRIAD_IO(st, rc, myriad_io_recv(self, &st->op, st->fd, st->buf,
 *					 sizeof(st->buf), 0));
 */
#define MYRIAD_IO(st, rc, call)                                               \
	do {                                                                  \
		(st)->myriad_pc_ = __LINE__;                                  \
		MYRIAD_FALLTHROUGH_;                                          \
	case __LINE__:                                                        \
		(rc) = (call);                                                \
		if ((rc) == -EAGAIN)                                          \
			return MYRIAD_PENDING;                                \
	} while (0)

/* clang-format on */

#endif
