/* SPDX-License-Identifier: MIT */
/*
 * io/wheel.c: the timing wheel. A deadline goes to the level of the
 * highest 6-bit group in which it differs from 'now', in the slot given by
 * its bits there; a slot is taken when time reaches its start, and what is
 * not yet due cascades down to a finer level.
 */
#include <errno.h>

#include "base/log2.h"
#include "wheel.h"

/*
 * Why no timer fires early, late or twice:
 * 1. A node at level L, slot S has a deadline inside S's range of the
 *    current rotation of L (or, at the top level, of a later rotation:
 *    then it is re-inserted when the slot comes round), and every node
 *    whose deadline is <= now has been taken: the slot containing 'now' at
 *    every level is empty after wheel_advance().
 * 2. wheel_next() returns the start of the earliest non-empty slot over all
 *    levels; no node's deadline is before it.
 * 3. wheel_advance() takes slots in order of their start while that start
 *    is <= now, sets 'now' to it, fires the nodes due by then and
 *    re-inserts the others, which land in a finer level (their deadline
 *    differs from the new 'now' only below this level), or in the same
 *    top-level slot a rotation later. Slots are taken in order of start,
 *    so nodes fire in deadline order. Each node is unlinked before it is
 *    fired, so it fires once.
 */

static unsigned level_for(uint64_t now, uint64_t when)
{
	uint64_t masked = (now ^ when) | (WHEEL_SLOTS - 1);
	unsigned sig = log2_u64(masked);
	unsigned level = sig / WHEEL_BITS;

	return level < WHEEL_LEVELS ? level : WHEEL_LEVELS - 1;
}

static unsigned slot_for(uint64_t when, unsigned level)
{
	return (unsigned)(when >> (level * WHEEL_BITS)) & (WHEEL_SLOTS - 1);
}

void wheel_init(struct wheel *w, uint64_t now)
{
	unsigned l, s;

	w->now = now;
	w->count = 0;
	for (l = 0; l < WHEEL_LEVELS; l++) {
		w->occupied[l] = 0;
		for (s = 0; s < WHEEL_SLOTS; s++) {
			w->slot[l][s].next = &w->slot[l][s];
			w->slot[l][s].prev = &w->slot[l][s];
		}
	}
}

/* Link a node into the slot of its deadline (its level: how far off). */
static void slot_link(struct wheel *w, struct wheel_node *n)
{
	uint64_t when = wheel_when(n);
	unsigned l = level_for(w->now, when), s = slot_for(when, l);
	struct wheel_node *head = &w->slot[l][s];

	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
	w->occupied[l] |= UINT64_C(1) << s;
}

int wheel_insert(struct wheel *w, struct wheel_node *n)
{
	if (wheel_when(n) <= w->now)
		return -ETIME;
	slot_link(w, n);
	w->count++;
	return 0;
}

void wheel_remove(struct wheel *w, struct wheel_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = NULL;
	w->count--;
}

/* The earliest non-empty slot at level l: its start, or UINT64_MAX. */
static uint64_t level_next(const struct wheel *w, unsigned l, unsigned *slot)
{
	uint64_t bits = w->occupied[l], rot, start, range;
	unsigned shift = l * WHEEL_BITS, now_slot, s;

	if (!bits)
		return UINT64_MAX;
	now_slot = slot_for(w->now, l);
	/* At the top, the slot holding 'now' is the last of the rotation. */
	if (l == WHEEL_LEVELS - 1 && (bits & ~(UINT64_C(1) << now_slot)))
		bits &= ~(UINT64_C(1) << now_slot);
	rot = (bits >> now_slot) | (now_slot ? bits << (64 - now_slot) : 0);
	s = (now_slot + (unsigned)__builtin_ctzll(rot)) & (WHEEL_SLOTS - 1);
	*slot = s;
	range = UINT64_C(1) << (shift + WHEEL_BITS);
	start = (w->now & ~(range - 1)) + ((uint64_t)s << shift);
	if (s == now_slot) {
		/*
		 * Below the top, the slot holding 'now' is empty (step 1): a
		 * stale hint, taken (and cleared) at once. At the top it holds
		 * only deadlines of a later rotation.
		 */
		if (l < WHEEL_LEVELS - 1)
			return w->now;
		return start + range;
	}
	if (s < now_slot)
		start += range; /* the next rotation */
	return start;
}

/* The earliest non-empty slot over all levels (step 2): its start. */
static uint64_t earliest(const struct wheel *w, unsigned *level, unsigned *slot)
{
	uint64_t best = UINT64_MAX, t;
	unsigned l, s;

	for (l = 0; l < WHEEL_LEVELS; l++) {
		t = level_next(w, l, &s);
		if (t < best) {
			best = t;
			*level = l;
			*slot = s;
		}
	}
	return best;
}

uint64_t wheel_next(const struct wheel *w)
{
	unsigned l, s;

	return w->count ? earliest(w, &l, &s) : UINT64_MAX;
}

size_t wheel_advance(struct wheel *w, uint64_t now,
		     void (*fire)(struct wheel_node *n, void *ctx), void *ctx)
{
	size_t fired = 0;

	while (w->count) {
		unsigned bl = 0, bs = 0;
		uint64_t best = earliest(w, &bl, &bs);
		struct wheel_node *head, *n, *next;

		if (best > now)
			break;
		/* Take the whole slot (step 3). */
		head = &w->slot[bl][bs];
		n = head->next;
		head->next = head->prev = head;
		w->occupied[bl] &= ~(UINT64_C(1) << bs);
		if (best > w->now)
			w->now = best;
		/*
		 * Fire what is due at the slot's start; the rest cascades to
		 * finer slots, taken in order by the next rounds, so that
		 * timers fire in deadline order.
		 */
		for (; n != head; n = next) {
			next = n->next;
			if (wheel_when(n) <= w->now) {
				n->next = n->prev = NULL;
				w->count--;
				fired++;
				fire(n, ctx);
			} else {
				slot_link(w, n);
			}
		}
	}
	if (now > w->now)
		w->now = now;
	return fired;
}
