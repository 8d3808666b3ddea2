/* SPDX-License-Identifier: MIT */
/*
 * sched/queue.c: a worker's local run queue (a concurrencykit ck_ring in
 * SPMC mode: the owner pushes, owner and thieves pop), its LIFO slot for
 * the task just woken, and its stack of tasks just spawned.
 */
#include <stdlib.h>

#include "sched.h"

/*
 * Why no task is lost or duplicated here:
 *
 * 1. The ring is ck's SPMC ring: only the owner enqueues; every dequeue
 *    (owner or thief) claims a slot with a compare-and-swap on the consumer
 *    head, so each pushed pointer is returned to exactly one caller.
 * 2. The LIFO slot holds at most one task. Only the owner puts a task in
 *    it; anyone takes it out with an exchange to NULL, so exactly one taker
 *    gets a given task. The owner puts into an empty slot with a plain
 *    store (nobody else can fill it), and into a full slot with an
 *    exchange, so a task that a thief took meanwhile is not pushed twice:
 *    the exchange returns what is really there (NULL if stolen).
 * 3. A push that finds the ring full moves half of the ring and the new
 *    task to the inject queue: the tasks change queue, none is dropped.
 * 4. The spawn stack is the owner's alone (no atomics): the newest spawn
 *    runs first, so fork-join code runs depth-first and its queue stays
 *    small. It is not stealable; instead its owner moves the oldest half
 *    (the largest subtrees) into the ring when it fills, and all of it
 *    whenever another worker searches or sleeps (lq_spill, before each
 *    step), so that no task sits there through a step while a worker idles.
 * 5. Task contents are published by the release that made the task
 *    SCHEDULED and read after the worker's acquire of the state word (see
 *    task.c), so the ring only has to carry the pointer.
 */

int lq_init(struct worker *w)
{
	w->buf = calloc(MYRIAD_LQ_CAP, sizeof(*w->buf));
	if (!w->buf)
		return -ENOMEM;
	ck_ring_init(&w->ring, MYRIAD_LQ_CAP);
	atomic_init(&w->lifo, NULL);
	return 0;
}

void lq_fini(struct worker *w)
{
	free(w->buf);
	w->buf = NULL;
}

unsigned lq_len(struct worker *w)
{
	return ck_ring_size(&w->ring) +
	       (atomic_load_explicit(&w->lifo, memory_order_relaxed) != NULL);
}

/* The ring is full: move half of it and 't' to the inject queue (step 3). */
static void lq_overflow(struct worker *w, struct myriad_task *t)
{
	struct myriad_task *v[MYRIAD_LQ_CAP / 2 + 1];
	unsigned n = 0;

	while (n < MYRIAD_LQ_CAP / 2 &&
	       ck_ring_dequeue_spmc(&w->ring, w->buf, &v[n])) {
		RING_GOT(v[n]);
		n++;
	}
	v[n++] = t;
	inject_push_batch(&w->rt->inject, v, n);
	CTR_INC(w, MYRIAD_CTR_OVERFLOWS);
	w->need_notify = true;
}

void lq_push(struct worker *w, struct myriad_task *t)
{
	RING_PUT(t);
	if (unlikely(!ck_ring_enqueue_spmc(&w->ring, w->buf, t)))
		lq_overflow(w, t);
	w->need_notify = true;
}

void lq_push_lifo(struct worker *w, struct myriad_task *t)
{
	struct myriad_task *old;

	/* Step 2: an empty slot can only be filled by its owner. */
	if (!atomic_load_explicit(&w->lifo, memory_order_relaxed)) {
		atomic_store_explicit(&w->lifo, t, memory_order_release);
		return;
	}
	old = atomic_exchange_explicit(&w->lifo, t, memory_order_acq_rel);
	if (old)
		lq_push_stack(w, old);
}

/*
 * Step 4: move the 'n' oldest tasks of the stack (the largest subtrees)
 * into the ring, as far as the ring has room: the inject queue is the last
 * resort (only when both are full), since whoever polls it starts a large
 * subtree on top of its own and fork-join code then spreads breadth-first.
 */
static void spill(struct worker *w, unsigned n)
{
	unsigned room = MYRIAD_LQ_CAP - 1 - ck_ring_size(&w->ring), i;

	/* Children of the running step become stealable: count them first. */
	join_flush(w);

	if (n > room)
		n = room ? room : 1;
	for (i = 0; i < n; i++)
		lq_push(w, w->stack[i]);
	for (i = n; i < w->stack_n; i++)
		w->stack[i - n] = w->stack[i];
	w->stack_n -= n;
}

/* Another worker is idle: make the whole stack stealable. */
void lq_spill(struct worker *w)
{
	spill(w, w->stack_n);
}

void lq_push_stack(struct worker *w, struct myriad_task *t)
{
	/* Full: the oldest half (the largest subtrees) goes to the ring. */
	if (unlikely(w->stack_n == MYRIAD_STACK_CAP))
		spill(w, w->stack_n - w->stack_n / 2);
	w->stack[w->stack_n++] = t;
}

struct myriad_task *lq_pop_stack(struct worker *w)
{
	if (!w->stack_n)
		return NULL;
	return w->stack[--w->stack_n];
}

struct myriad_task *lq_pop(struct worker *w)
{
	struct myriad_task *t;

	if (ck_ring_dequeue_spmc(&w->ring, w->buf, &t)) {
		RING_GOT(t);
		return t;
	}
	return NULL;
}

struct myriad_task *lq_pop_lifo(struct worker *w)
{
	if (!atomic_load_explicit(&w->lifo, memory_order_relaxed))
		return NULL;
	return atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel);
}

/*
 * Take up to half (rounded up) of the victim's ring: the first task is
 * returned to run, the rest go into the thief's own ring, which is empty
 * (thieves only steal when they have nothing) and so has room: the
 * victim's ring holds at most MYRIAD_LQ_CAP - 1.
 */
struct myriad_task *lq_steal_half(struct worker *w, struct worker *victim)
{
	unsigned n = ck_ring_size(&victim->ring);
	struct myriad_task *first = NULL, *t;

	n -= n / 2;
	while (n--) {
		if (!ck_ring_dequeue_spmc(&victim->ring, victim->buf, &t))
			break;
		RING_GOT(t);
		if (!first) {
			first = t;
			continue;
		}
		RING_PUT(t);
		if (unlikely(!ck_ring_enqueue_spmc(&w->ring, w->buf, t)))
			inject_push(&w->rt->inject, t);
	}
	return first;
}

/*
 * Take the victim's LIFO slot. Thieves only do this when no ring had work:
 * a worker stuck in a long step must not hold its LIFO task hostage.
 */
struct myriad_task *lq_steal_lifo(struct worker *victim)
{
	if (!atomic_load_explicit(&victim->lifo, memory_order_relaxed))
		return NULL;
	return atomic_exchange_explicit(&victim->lifo, NULL,
					memory_order_acq_rel);
}
