/* SPDX-License-Identifier: MIT */
/*
 * sched/inject.c: the global inject queue, for spawns from outside the
 * runtime and local-queue overflow: a concurrencykit MPMC ring, with an
 * unbounded overflow list behind it so that nothing is ever dropped.
 */
#include <stdlib.h>

#include "sched.h"

/*
 * Why no task is lost or duplicated:
 *
 * 1. The ring is ck's MPMC ring: each enqueued pointer is dequeued by
 *    exactly one consumer.
 * 2. When the ring is full a push goes to the overflow list under the
 *    spin lock, linked through the task's 'next' field (a queued task is in
 *    no other list that uses it). The push never fails.
 * 3. While the overflow list is non-empty, pushes go to it too, so the ring
 *    drains first and the order stays first-in first-out (apart from
 *    pushes racing with the moment the list empties, which only reorders).
 * 4. A pop tries the ring, then the list; 'olen' is only a hint for the
 *    fast path, the list itself is read under the lock.
 */

int inject_init(struct inject *q)
{
	q->buf = calloc(MYRIAD_INJECT_CAP, sizeof(*q->buf));
	if (!q->buf)
		return -ENOMEM;
	ck_ring_init(&q->ring, MYRIAD_INJECT_CAP);
	q->ohead = q->otail = NULL;
	atomic_init(&q->olen, 0);
	atomic_init(&q->lock.v, 0);
	return 0;
}

void inject_fini(struct inject *q)
{
	free(q->buf);
	q->buf = NULL;
}

void inject_push(struct inject *q, struct myriad_task *t)
{
	if (atomic_load_explicit(&q->olen, memory_order_relaxed) == 0 &&
	    ck_ring_enqueue_mpmc(&q->ring, q->buf, t))
		return;
	t->next = NULL;
	spin_lock(&q->lock);
	if (q->otail)
		q->otail->next = t;
	else
		q->ohead = t;
	q->otail = t;
	atomic_store_explicit(&q->olen,
			      atomic_load_explicit(&q->olen,
						   memory_order_relaxed) + 1,
			      memory_order_release);
	spin_unlock(&q->lock);
}

struct myriad_task *inject_pop(struct inject *q)
{
	struct myriad_task *t;

	if (ck_ring_dequeue_mpmc(&q->ring, q->buf, &t))
		return t;
	if (atomic_load_explicit(&q->olen, memory_order_acquire) == 0)
		return NULL;
	spin_lock(&q->lock);
	t = q->ohead;
	if (t) {
		q->ohead = t->next;
		if (!q->ohead)
			q->otail = NULL;
		atomic_store_explicit(&q->olen,
				      atomic_load_explicit(&q->olen,
							   memory_order_relaxed) - 1,
				      memory_order_release);
	}
	spin_unlock(&q->lock);
	return t;
}

size_t inject_len(struct inject *q)
{
	return ck_ring_size(&q->ring) +
	       atomic_load_explicit(&q->olen, memory_order_relaxed);
}

bool inject_empty(struct inject *q)
{
	return inject_len(q) == 0;
}
