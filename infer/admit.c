/* SPDX-License-Identifier: MIT */
/*
 * infer/admit.c: admission of the queue's calls (queue.c) into free
 * endpoint windows and budgets (budget.c), least outstanding first, after
 * cooldowns and backoff.
 */
#include <errno.h>

#include "infer/internal.h"

/* The endpoint for a new attempt of 'c': least outstanding / window,
 * among those not cooling down whose budgets it fits (else *bnext: when
 * it will fit one). */
static int pick_endpoint(struct myriad_infer *p, struct icall *c, uint64_t now,
			 uint64_t *cool_min, uint64_t *bnext)
{
	unsigned n = atomic_load_explicit(&p->neps, memory_order_acquire), i;
	int best = -1;
	double bl = 2;

	for (i = 0; i < n; i++) {
		struct endpoint *e = &p->eps[i];
		unsigned f = atomic_load_explicit(&e->inflight,
						  memory_order_relaxed);
		uint64_t cu = atomic_load_explicit(&e->cool_until_ns,
						   memory_order_relaxed);
		double l;

		if (cu > now) {
			if (cu < *cool_min)
				*cool_min = cu;
			continue;
		}
		if (f >= e->window)
			continue;
		l = (double)f / e->window;
		if (l < bl && (!e->budget || budget_fits(e, c, now, bnext))) {
			bl = l;
			best = (int)i;
		}
	}
	return best;
}

/*
 * Take a slot of endpoint 'ep''s window: drivers admit concurrently, so
 * the check and the increment are one compare-and-swap. False: full.
 */
static bool window_take(struct endpoint *e)
{
	unsigned f = atomic_load_explicit(&e->inflight, memory_order_relaxed);

	do {
		if (f >= e->window)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&e->inflight, &f, f + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	return true;
}

/* Complete 'c' (taken off the queue) outside the lock. */
static void finish(struct driver *d, struct icall *c, int rc, const char *why)
{
	struct myriad_infer *p = d->pool;

	pthread_mutex_unlock(&p->lock);
	call_complete(d, c, rc, why);
	pthread_mutex_lock(&p->lock);
}

/* The slots of every window: how many calls a cooldown spreads. */
static unsigned windows(struct myriad_infer *p)
{
	unsigned n = atomic_load_explicit(&p->neps, memory_order_acquire), i,
		 w = 0;

	for (i = 0; i < n; i++)
		w += p->eps[i].window;
	return w;
}

/*
 * Admit queued calls whose time has come into free windows, in the
 * queue's order (queue.c: interactive first, fair shares by key); the
 * call due next waits for an endpoint it fits, and so do those behind it.
 * Cancelled calls and passed deadlines complete here. Returns the earliest
 * time a waiting call could go.
 */
uint64_t admit(struct driver *d)
{
	struct myriad_infer *p = d->pool;
	uint64_t now = myriad_now_ns(), next = UINT64_MAX, cool, bnext, dl;
	struct icall *c;
	int ep, r, why;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		if ((c = p->dead)) {
			p->dead = c->next;
			c->next = NULL;
			c->where = QW_NONE;
			p->nqueued--;
			why = atomic_load_explicit(&c->cancel,
						   memory_order_acquire);
			finish(d, c, why ? why : -ECANCELED, "cancelled");
			continue;
		}
		if (atomic_load_explicit(&d->stop, memory_order_relaxed)) {
			if (!(c = q_any(p)))
				break;
			q_del(p, c);
			finish(d, c, -ESHUTDOWN, "pool destroyed");
			continue;
		}
		if ((c = q_expired(p, now))) {
			q_del(p, c);
			finish(d, c, -ETIME, "deadline passed in the queue");
			continue;
		}
		c = q_peek(p, now, &next);
		if (!c)
			break;
		if (!atomic_load_explicit(&p->neps, memory_order_acquire)) {
			q_take(p, c);
			finish(d, c, MYRIAD_INFER_ENOENDPOINT,
			       "the pool has no endpoint");
			continue;
		}
		cool = bnext = UINT64_MAX;
		ep = pick_endpoint(p, c, now, &cool, &bnext);
		if (ep < 0) {
			if (bnext != UINT64_MAX) {
				/* Waits for budget; so do the calls behind. */
				if (!c->bwait_since)
					c->bwait_since = now;
				if (bnext < next)
					next = bnext;
				break;
			}
			if (cool != UINT64_MAX && p->nnb < windows(p)) {
				/* Released after the cooldown, spread. */
				q_delay(p, c,
					cool + rng_next(&d->rng) %
							(p->o.cooldown_jitter_ns +
							 1));
				continue;
			}
			if (cool != UINT64_MAX && cool < next)
				next = cool;
			/* Every window is full: wait for a slot. */
			break;
		}
		if (!window_take(&p->eps[ep]))
			continue; /* lost the slot to another driver */
		budget_take(p, &p->eps[ep], c, now);
		q_take(p, c);
		pthread_mutex_unlock(&p->lock);
		c->ep = ep;
		r = transfer_start(d, c, ep);
		if (r < 0 && !c->drv) /* never reached the multi */
			atomic_fetch_sub_explicit(&p->eps[ep].inflight, 1,
						  memory_order_relaxed);
		if (r < 0) {
			if (c->reserved)
				budget_answer(p, c, 0); /* given back */
			call_complete(d, c, r,
				      r == -ETIME
					      ? "deadline passed in the queue"
					      : "could not start the transfer");
		}
		pthread_mutex_lock(&p->lock);
	}
	dl = q_next_deadline(p);
	if (dl < next)
		next = dl;
	pthread_mutex_unlock(&p->lock);
	return next;
}
