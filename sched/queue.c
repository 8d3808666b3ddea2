/* SPDX-License-Identifier: MIT */
/*
 * sched/queue.c: a worker's local run queue (a concurrencykit ck_ring in
 * SPMC mode: the owner pushes, owner and thieves pop), its LIFO slot for
 * the task just woken, and its stack of tasks just spawned.
 */
#include <linux/membarrier.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

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
 * 4. The spawn stack is its owner's (no locked instruction on it): the
 *    newest spawn runs first, so fork-join code runs depth-first and its
 *    queue stays small. Searchers do not steal from it; instead its owner
 *    moves the oldest half (the largest subtrees) into the ring when it
 *    fills, and all of it whenever another worker sleeps (lq_spill, before
 *    each step). Only a worker stuck in one step has its stack taken over,
 *    by steps 6-11.
 * 5. Task contents are published by the release that made the task
 *    SCHEDULED and read after the worker's acquire of the state word (see
 *    task.c), so the ring only has to carry the pointer.
 *
 * The takeover of a stuck worker's spawn stack. Tasks a step spawned
 * before it blocked in the kernel (or while it computes for long) would
 * wait on the stack until the step returns; another worker takes them.
 * The owner keeps pushing during the step, so owner and thief race; the
 * owner's pushes and pops stay plain loads and stores, and the cost of
 * the race is on the thief (Go's sysmon retakes a P from a thread stuck in
 * a system call; here the monitor only finds the step, sysmon.c, and a
 * searching worker takes its stack).
 *
 * 6. The stack is open to a thief only inside a step window: 'stk_win' is
 *    non-zero from the step's start to its end. Inside a window the owner
 *    only pushes (a spawn; a task the LIFO slot gives up). Everything that
 *    removes or moves entries (pop, spill) or flushes the pending join
 *    count runs with the window closed: between steps, or inside
 *    stk_hold()/stk_unhold(), which closes it the way step 8 does and then
 *    stores the same window again.
 * 7. Opening a window is one release store (stk_open(), sched.h): a thief
 *    that reads the window with acquire sees the stack and the join count
 *    as they were when it opened. A push stores the entry, then 'stack_n'
 *    with release, so a thief that reads 'stack_n' (acquire) sees the
 *    entries below it and the join count the spawn raised before them.
 * 8. Closing is an asymmetric Dekker: the owner stores 0 to 'stk_win', a
 *    compiler barrier, then loads 'stk_steal' (stk_close(), sched.h); a
 *    thief sets the claim bit of 'stk_steal' (compare-and-swap), calls
 *    membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), then loads 'stk_win'.
 *    The membarrier makes every running thread of the process pass a full
 *    barrier (a thread not running has passed one at its context switch):
 *    the owner's store and load are either both before that point (the
 *    store is visible to the thief's load, which finds the window closed
 *    or a later one) or the load is after it (and sees the claim). So a
 *    thief that reads an open window has the owner inside it, and the
 *    owner cannot get past its next close before the claim is released:
 *    it waits there (stk_reclaim()), then takes the thief's note.
 * 9. Inside, the thief takes the entries from the note's base up to
 *    'stack_n' (acquire), oldest first. Children the running step spawned
 *    are not in its join count yet (sched/task.c:5), so before any taken
 *    task can run the thief adds the step's pending count (join_pending,
 *    read after 'stack_n', so it covers every child it takes), less what
 *    earlier thieves of this window added, to the running task's state
 *    word; the task is the window's, alive until its step ends, which
 *    waits for the claim. Its note (release, clearing the claim) says:
 *    entries below 'stack_n' are taken, this much of the count is added.
 *    A thief that finds the window closed or changed puts the word back
 *    as it was: it took nothing.
 * 10. The owner, at a close that sees a note (acquire), takes it (a
 *    compare-and-swap to 0: a thief may claim meanwhile, only to find the
 *    window closed and put the word back), drops the taken entries by
 *    moving the rest down, and subtracts the added count from its pending
 *    count. So each entry goes to exactly one of owner and thief: a thief
 *    takes a range once (the base moves past it), entries pushed after its
 *    read of 'stack_n' lie above the range and stay, and no entry moves
 *    while a thief is inside. The join count is added once: by the thief
 *    for what it saw, by the owner's flush or closing compare-and-swap for
 *    the rest. No task is lost or run twice.
 * 11. Every shared field here is a C11 atomic, so ThreadSanitizer checks
 *    them; it does not model membarrier(), which only orders what the
 *    atomics already make race-free. Without membarrier() (old kernels,
 *    valgrind) no thief claims (sysmon.c): the close costs a store, a load
 *    and a branch, and the stack stays the owner's as in step 4.
 */

#define STK_CLAIM 1ull
#define STK_BASE(c) ((unsigned)(((c) >> 1) & 0x7fffffffu))
#define STK_JOIN(c) ((uint32_t)((c) >> 32))
#define STK_NOTE(base, join) \
	(((uint64_t)(join) << 32) | ((uint64_t)(base) << 1))

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

/* Step 8 and 10: wait for a thief inside, then take its note. */
void stk_reclaim(struct worker *w)
{
	uint64_t c = atomic_load_explicit(&w->stk_steal, memory_order_acquire);
	unsigned n, base, i, spins = 0;

	for (;;) {
		if (c & STK_CLAIM) {
			/* Inside, or leaving empty-handed: a short wait. */
			if (++spins < 128)
				cpu_relax();
			else
				sched_yield();
			c = atomic_load_explicit(&w->stk_steal,
						 memory_order_acquire);
			continue;
		}
		if (!c)
			return;
		if (atomic_compare_exchange_weak_explicit(&w->stk_steal, &c, 0,
							  memory_order_acquire,
							  memory_order_acquire))
			break;
	}
	base = STK_BASE(c);
	n = atomic_load_explicit(&w->stack_n, memory_order_relaxed);
	for (i = base; i < n; i++)
		atomic_store_explicit(
			&w->stack[i - base],
			atomic_load_explicit(&w->stack[i],
					     memory_order_relaxed),
			memory_order_relaxed);
	atomic_store_explicit(&w->stack_n, n - base, memory_order_relaxed);
	atomic_store_explicit(
		&w->join_pending,
		atomic_load_explicit(&w->join_pending, memory_order_relaxed) -
			STK_JOIN(c),
		memory_order_relaxed);
}

/* Step 6: close the window for a while; returns what to restore. */
uintptr_t stk_hold(struct worker *w)
{
	uintptr_t win = atomic_load_explicit(&w->stk_win, memory_order_relaxed);

	if (win)
		stk_close(w);
	return win;
}

void stk_unhold(struct worker *w, uintptr_t win)
{
	if (win)
		atomic_store_explicit(&w->stk_win, win, memory_order_release);
}

/*
 * Step 4: move the oldest tasks of the stack (the largest subtrees) into
 * the ring, all of them or ('all' false) half, as far as the ring has
 * room: the inject queue is the last resort (only when both are full),
 * since whoever polls it starts a large subtree on top of its own and
 * fork-join code then spreads breadth-first.
 */
static void spill(struct worker *w, bool all)
{
	uintptr_t held = stk_hold(w); /* step 6: a thief may have taken some */
	unsigned sn = atomic_load_explicit(&w->stack_n, memory_order_relaxed);
	unsigned room, n, i;

	/* Children of the running step become stealable: count them first. */
	join_flush(w);

	if (all)
		n = sn;
	else
		n = sn == MYRIAD_STACK_CAP ? sn - sn / 2 : 0;
	room = MYRIAD_LQ_CAP - 1 - ck_ring_size(&w->ring);
	if (n > room)
		n = room ? room : 1;
	for (i = 0; i < n; i++)
		lq_push(w, atomic_load_explicit(&w->stack[i],
						memory_order_relaxed));
	for (i = n; i < sn; i++)
		atomic_store_explicit(
			&w->stack[i - n],
			atomic_load_explicit(&w->stack[i],
					     memory_order_relaxed),
			memory_order_relaxed);
	atomic_store_explicit(&w->stack_n, sn - n, memory_order_relaxed);
	stk_unhold(w, held);
}

/* Another worker is idle: make the whole stack stealable. */
void lq_spill(struct worker *w)
{
	spill(w, true);
}

/* Step 7: the entry, then the count (release). */
void lq_push_stack(struct worker *w, struct myriad_task *t)
{
	unsigned n = atomic_load_explicit(&w->stack_n, memory_order_relaxed);

	/* Full: the oldest half (the largest subtrees) goes to the ring. */
	if (unlikely(n == MYRIAD_STACK_CAP)) {
		spill(w, false);
		n = atomic_load_explicit(&w->stack_n, memory_order_relaxed);
	}
	atomic_store_explicit(&w->stack[n], t, memory_order_relaxed);
	atomic_store_explicit(&w->stack_n, n + 1, memory_order_release);
}

/* Between steps only (step 6): no thief is inside. */
struct myriad_task *lq_pop_stack(struct worker *w)
{
	unsigned n = atomic_load_explicit(&w->stack_n, memory_order_relaxed);

	assert(!atomic_load_explicit(&w->stk_win, memory_order_relaxed));
	if (!n)
		return NULL;
	atomic_store_explicit(&w->stack_n, n - 1, memory_order_relaxed);
	return atomic_load_explicit(&w->stack[n - 1], memory_order_relaxed);
}

/* Stack entries not taken by a thief yet; any thread, a snapshot. */
unsigned lq_stack_len(struct worker *w)
{
	uint64_t c = atomic_load_explicit(&w->stk_steal, memory_order_relaxed);
	unsigned n = atomic_load_explicit(&w->stack_n, memory_order_relaxed);

	return n > STK_BASE(c) ? n - STK_BASE(c) : 0;
}

/*
 * Does 'victim' hold stack entries in the window the monitor found stuck?
 * (Searchers and the parking re-check ask; sysmon.c marks.)
 */
bool lq_stack_stuck(struct worker *victim)
{
	uintptr_t win =
		atomic_load_explicit(&victim->stk_win, memory_order_relaxed);
	uint64_t c;

	if (!win || win != atomic_load_explicit(&victim->stk_stuck,
						memory_order_relaxed))
		return false;
	c = atomic_load_explicit(&victim->stk_steal, memory_order_relaxed);
	return !(c & STK_CLAIM) &&
	       atomic_load_explicit(&victim->stack_n, memory_order_relaxed) >
		       STK_BASE(c);
}

/*
 * Steps 8 and 9, the thief's side: take the stack entries of 'victim' if
 * it is still in window 'win' (the stuck one), oldest first, into 'v'
 * (room for MYRIAD_STACK_CAP). Returns how many (0: it moved on, another
 * thief is inside, or nothing was left).
 */
unsigned lq_take_stack(struct worker *victim, uintptr_t win,
		       struct myriad_task **v)
{
	uint64_t c =
		atomic_load_explicit(&victim->stk_steal, memory_order_relaxed);
	uint64_t note;
	struct myriad_task *cur;
	unsigned base, top, i, n = 0;
	uint32_t jp, add;

	if (!win || (c & STK_CLAIM) ||
	    !atomic_compare_exchange_strong_explicit(
		    &victim->stk_steal, &c, c | STK_CLAIM, memory_order_acquire,
		    memory_order_relaxed))
		return 0;
	note = c;
	/* Step 8: the fence for both sides. */
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0))
		goto out;
	if (atomic_load_explicit(&victim->stk_win, memory_order_acquire) != win)
		goto out;
	/* Step 9. */
	base = STK_BASE(c);
	top = atomic_load_explicit(&victim->stack_n, memory_order_acquire);
	for (i = base; i < top; i++)
		v[n++] = atomic_load_explicit(&victim->stack[i],
					      memory_order_relaxed);
	if (!n)
		goto out;
	jp = atomic_load_explicit(&victim->join_pending, memory_order_relaxed);
	add = jp - STK_JOIN(c);
	if (add) {
		cur = (struct myriad_task *)(win & ~(uintptr_t)15);
		atomic_fetch_add_explicit(&cur->state,
					  (uint64_t)add * TS_JOIN_ONE,
					  memory_order_relaxed);
	}
	note = STK_NOTE(top, jp);
out:
	atomic_store_explicit(&victim->stk_steal, note, memory_order_release);
	return n;
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
