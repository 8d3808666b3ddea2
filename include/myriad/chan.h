/* SPDX-License-Identifier: MIT */
/*
 * myriad/chan.h: bounded multi-producer multi-consumer channels between
 * tasks. A full send or an empty receive parks the task, never a thread.
 */
#ifndef MYRIAD_CHAN_H
#define MYRIAD_CHAN_H

#include <myriad/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct myriad_chan myriad_chan_t;

/* The largest element and capacity a channel accepts. */
#define MYRIAD_CHAN_ELEM_MAX 4096
#define MYRIAD_CHAN_CAP_MAX (1u << 24)

/*
 * Create a channel of 'capacity' slots of 'elem_size' bytes each, for tasks
 * of runtime 'rt'. Returns it, or NULL with *err set: -EINVAL (rt NULL,
 * elem_size 0 or over MYRIAD_CHAN_ELEM_MAX, capacity 0 or over
 * MYRIAD_CHAN_CAP_MAX), -ENOMEM. 'err' may be NULL.
 */
MYRIAD_API myriad_chan_t *myriad_chan_create(myriad_rt_t *rt, size_t elem_size,
					     size_t capacity, int *err);

/*
 * Send from a running task. Returns 0 when the element was copied in;
 * -EAGAIN when the channel is full (or the task's cooperative budget is
 * spent): the task is registered to be woken, so return MYRIAD_PENDING and
 * call myriad_chan_send() again with the same element when run next.
 * -EPIPE if the channel is closed, -ECANCELED if the task is cancelled (it
 * is then deregistered), -ENOMEM, -EINVAL (NULL arguments, self not the
 * running task).
 */
MYRIAD_API int myriad_chan_send(myriad_task_t *self, myriad_chan_t *ch,
				const void *elem);

/*
 * Receive into 'out' from a running task. Returns 0 with an element;
 * -EAGAIN when empty (or the budget is spent; return MYRIAD_PENDING and call
 * again when run); -EPIPE once the channel is closed and drained;
 * -ECANCELED, -ENOMEM, -EINVAL as for send.
 */
MYRIAD_API int myriad_chan_recv(myriad_task_t *self, myriad_chan_t *ch,
				void *out);

/*
 * Give up a wait that myriad_chan_send()/recv() registered (a task that
 * returned MYRIAD_PENDING after -EAGAIN and then chose not to retry).
 * Tasks that finish are deregistered on their own. Returns 0 or -EINVAL.
 */
MYRIAD_API int myriad_chan_abandon(myriad_task_t *self, myriad_chan_t *ch);

/*
 * Non-blocking send and receive, from any thread. Return 0, -EAGAIN (full
 * or empty), -EPIPE (closed; for receive: closed and drained), -EINVAL.
 */
MYRIAD_API int myriad_chan_try_send(myriad_chan_t *ch, const void *elem);
MYRIAD_API int myriad_chan_try_recv(myriad_chan_t *ch, void *out);

/*
 * Close: later sends fail with -EPIPE, receivers drain what is left and
 * then get -EPIPE; every waiting task is woken. Returns 0 (also when already
 * closed) or -EINVAL.
 */
MYRIAD_API int myriad_chan_close(myriad_chan_t *ch);

/* Elements currently buffered, or -EINVAL. */
MYRIAD_API int64_t myriad_chan_len(myriad_chan_t *ch);

/*
 * Free the channel. Returns 0, -EINVAL, or -EBUSY while tasks of a running
 * runtime are still registered as waiting on it (close it and let them
 * finish first). After myriad_rt_shutdown() it always succeeds; destroy
 * channels before myriad_rt_destroy().
 */
MYRIAD_API int myriad_chan_destroy(myriad_chan_t *ch);

#ifdef __cplusplus
}
#endif
#endif
