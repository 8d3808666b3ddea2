/* SPDX-License-Identifier: MIT */
/*
 * sched/inject.c: the global inject queue, for spawns from outside the
 * runtime and local-queue overflow: a concurrencykit ring (lock-free pops,
 * producers serialized), with an unbounded overflow list behind it so that
 * nothing is ever dropped.
 */
#include <sched.h>
#include <stdlib.h>

#include "sched.h"

struct ochunk {
	struct ochunk *next;
	unsigned head, tail; /* tasks[head..tail) are queued */
	struct myriad_task *tasks[OCHUNK_CAP];
};

/*
 * Why no task is lost or duplicated:
 *
 * 1. Producers take the spin lock, so the ring has one producer at a time
 *    and is used through ck's SPMC calls: ck's own MPMC enqueue makes each
 *    producer wait, spinning, for the ones before it to commit, and a
 *    producer preempted there (more threads than CPUs) stalls every other
 *    one; our lock yields the CPU instead. Consumers stay lock-free: ck's
 *    dequeue claims a slot with a compare-and-swap, so each pushed pointer
 *    is returned to exactly one consumer.
 * 2. When the ring is full a push goes to the overflow list, a list of
 *    arrays of task pointers (chunks), under the same lock: the tasks
 *    themselves are not touched, so a long overflow costs no cache misses
 *    on cold task headers. A push never fails: if no chunk can be
 *    allocated it waits, yielding, for the consumers to make room.
 * 3. While the overflow list is non-empty, pushes go to it too, so the ring
 *    drains first and the order stays first-in first-out.
 * 4. A pop tries the ring, then the list; 'olen' is only a hint for the
 *    fast path, the list itself is read under the lock.
 */

int inject_init(struct inject *q)
{
	q->buf = calloc(MYRIAD_INJECT_CAP, sizeof(*q->buf));
	if (!q->buf)
		return -ENOMEM;
	ck_ring_init(&q->ring, MYRIAD_INJECT_CAP);
	q->ohead = q->otail = q->ospare = NULL;
	atomic_init(&q->olen, 0);
	atomic_init(&q->lock.v, 0);
	return 0;
}

void inject_fini(struct inject *q)
{
	struct ochunk *c, *n;

	for (c = q->ohead; c; c = n) {
		n = c->next;
		free(c);
	}
	free(q->ospare);
	q->ohead = q->otail = q->ospare = NULL;
	free(q->buf);
	q->buf = NULL;
}

/* Under the lock: one task onto the ring, or the overflow list (step 2). */
static void push_locked(struct inject *q, struct myriad_task *t)
{
	size_t olen = atomic_load_explicit(&q->olen, memory_order_relaxed);
	struct ochunk *c;

	RING_PUT(t);
	if (olen == 0 && ck_ring_enqueue_spmc(&q->ring, q->buf, t))
		return;
	c = q->otail;
	if (!c || c->tail == OCHUNK_CAP) {
		c = q->ospare;
		q->ospare = NULL;
		while (!c && !(c = malloc(sizeof(*c)))) {
			/* Out of memory: wait for room in the ring. */
			spin_unlock(&q->lock);
			sched_yield();
			spin_lock(&q->lock);
			if (!atomic_load_explicit(&q->olen,
						  memory_order_relaxed) &&
			    ck_ring_enqueue_spmc(&q->ring, q->buf, t))
				return;
			olen = atomic_load_explicit(&q->olen,
						    memory_order_relaxed);
			if (q->otail && q->otail->tail < OCHUNK_CAP) {
				c = q->otail;
				goto add;
			}
			c = q->ospare;
			q->ospare = NULL;
		}
		c->next = NULL;
		c->head = c->tail = 0;
		if (q->otail)
			q->otail->next = c;
		else
			q->ohead = c;
		q->otail = c;
	}
add:
	c->tasks[c->tail++] = t;
	atomic_store_explicit(&q->olen, olen + 1, memory_order_release);
}

void inject_push(struct inject *q, struct myriad_task *t)
{
	spin_lock(&q->lock);
	push_locked(q, t);
	spin_unlock(&q->lock);
}

void inject_push_batch(struct inject *q, struct myriad_task **v, unsigned n)
{
	unsigned i;

	spin_lock(&q->lock);
	for (i = 0; i < n; i++)
		push_locked(q, v[i]);
	spin_unlock(&q->lock);
}

struct myriad_task *inject_pop(struct inject *q)
{
	struct myriad_task *t;
	struct ochunk *c;

	if (ck_ring_dequeue_spmc(&q->ring, q->buf, &t)) {
		RING_GOT(t);
		return t;
	}
	if (atomic_load_explicit(&q->olen, memory_order_acquire) == 0)
		return NULL;
	spin_lock(&q->lock);
	c = q->ohead;
	t = NULL;
	if (c && c->head < c->tail) {
		t = c->tasks[c->head++];
		if (c->head == c->tail) {
			/* Drained: keep one chunk for the next overflow. */
			q->ohead = c->next;
			if (!q->ohead)
				q->otail = NULL;
			if (!q->ospare)
				q->ospare = c;
			else
				free(c);
		}
		atomic_store_explicit(
			&q->olen,
			atomic_load_explicit(&q->olen, memory_order_relaxed) -
				1,
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
