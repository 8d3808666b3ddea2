/* SPDX-License-Identifier: MIT */
/*
 * io/wheel.h: a hierarchical timing wheel (six levels of 64 slots, 1 ms
 * ticks, Tokio's layout): O(1) insert and remove, expiry in deadline order.
 */
#ifndef MYRIAD_WHEEL_H
#define MYRIAD_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WHEEL_BITS 6
#define WHEEL_SLOTS (1u << WHEEL_BITS)
#define WHEEL_LEVELS 6
/* Deadlines are in the low 48 bits of 'when'; the caller owns the rest. */
#define WHEEL_WHEN_BITS 48
#define WHEEL_WHEN_MASK ((UINT64_C(1) << WHEEL_WHEN_BITS) - 1)

/*
 * A node lives in the waiting task's state (no allocation per timer). The
 * lists are circular with one sentinel per slot, so a node unlinks itself
 * without knowing its slot.
 */
struct wheel_node {
	struct wheel_node *next, *prev;
	uint64_t when; /* deadline (ticks) | the caller's 16 high bits */
};

struct wheel {
	uint64_t now; /* every deadline <= now has fired */
	size_t count;
	uint64_t occupied[WHEEL_LEVELS]; /* hint: a set bit may be empty */
	struct wheel_node slot[WHEEL_LEVELS][WHEEL_SLOTS];
};

static inline uint64_t wheel_when(const struct wheel_node *n)
{
	return n->when & WHEEL_WHEN_MASK;
}

static inline bool wheel_linked(const struct wheel_node *n)
{
	return n->next != NULL;
}

void wheel_init(struct wheel *w, uint64_t now);

/*
 * Link 'n' (its deadline already in n->when). Returns 0, or -ETIME when the
 * deadline is not after w->now: the caller fires it itself.
 */
int wheel_insert(struct wheel *w, struct wheel_node *n);

/* Unlink a linked node. */
void wheel_remove(struct wheel *w, struct wheel_node *n);

/*
 * The earliest time at which wheel_advance() may have work: a lower bound
 * on the next deadline (exact at level 0). UINT64_MAX when empty.
 */
uint64_t wheel_next(const struct wheel *w);

/*
 * Move time to 'now': every node whose deadline is <= now is unlinked and
 * passed to fire(), in deadline order. Returns the number fired.
 */
size_t wheel_advance(struct wheel *w, uint64_t now,
		     void (*fire)(struct wheel_node *n, void *ctx), void *ctx);

#endif
