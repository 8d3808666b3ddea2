/* SPDX-License-Identifier: MIT */
/*
 * infer/admit.c: the pool's queue of calls and their admission into free
 * endpoint windows, least outstanding first, after cooldowns and backoff.
 */
#include <errno.h>

#include "infer/internal.h"

/* ---- the queue (pool lock) ---- */

void q_push(struct myriad_infer *p, struct icall *c)
{
	c->next = NULL;
	c->prev = p->qtail;
	if (p->qtail)
		p->qtail->next = c;
	else
		p->qhead = c;
	p->qtail = c;
	p->nqueued++;
	if (c->deadline_ns)
		p->nqdeadline++;
}

static void q_del(struct myriad_infer *p, struct icall *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		p->qhead = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		p->qtail = c->prev;
	c->next = c->prev = NULL;
	p->nqueued--;
	if (c->deadline_ns)
		p->nqdeadline--;
}

/* The endpoint for a new attempt: least outstanding / window. */
static int pick_endpoint(struct myriad_infer *p, uint64_t now,
			 uint64_t *cool_min)
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
		if (l < bl) {
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

/*
 * Admit queued calls whose time has come into free windows (cancelled
 * ones complete here). Returns the earliest time a waiting call could go.
 */
uint64_t admit(struct driver *d)
{
	struct myriad_infer *p = d->pool;
	uint64_t now = myriad_now_ns(), next = UINT64_MAX, cool = UINT64_MAX;
	struct icall *c, *n;
	bool full = false;
	int ep, r, why;

	pthread_mutex_lock(&p->lock);
	for (c = p->qhead; c; c = n) {
		n = c->next;
		why = atomic_load_explicit(&c->cancel, memory_order_acquire);
		if (why ||
		    atomic_load_explicit(&d->stop, memory_order_relaxed)) {
			q_del(p, c);
			pthread_mutex_unlock(&p->lock);
			call_complete(d, c, why ? why : -ESHUTDOWN,
				      why ? "cancelled" : "pool destroyed");
			pthread_mutex_lock(&p->lock);
			n = p->qhead; /* the list may have changed */
			continue;
		}
		if (c->deadline_ns && c->deadline_ns <= now) {
			q_del(p, c);
			pthread_mutex_unlock(&p->lock);
			call_complete(d, c, -ETIME,
				      "deadline passed in the queue");
			pthread_mutex_lock(&p->lock);
			n = p->qhead;
			continue;
		}
		if (c->deadline_ns && c->deadline_ns < next)
			next = c->deadline_ns; /* wake for it */
		if (full) {
			/* Only cancellations and deadlines matter now. */
			if (!p->nqdeadline &&
			    !atomic_load_explicit(&p->ncancel,
						  memory_order_acquire))
				break;
			continue;
		}
		if (c->not_before_ns > now) {
			if (c->not_before_ns < next)
				next = c->not_before_ns;
			continue;
		}
		if (!atomic_load_explicit(&p->neps, memory_order_acquire)) {
			q_del(p, c);
			pthread_mutex_unlock(&p->lock);
			call_complete(d, c, MYRIAD_INFER_ENOENDPOINT,
				      "the pool has no endpoint");
			pthread_mutex_lock(&p->lock);
			n = p->qhead;
			continue;
		}
		ep = pick_endpoint(p, now, &cool);
		if (ep < 0) {
			if (cool != UINT64_MAX) {
				/* Released after the cooldown, spread. */
				c->not_before_ns =
					cool +
					rng_next(&d->rng) %
						(p->o.cooldown_jitter_ns + 1);
				if (c->not_before_ns < next)
					next = c->not_before_ns;
				cool = UINT64_MAX;
				continue;
			}
			/* Every window is full: wait for a slot, but finish the
			 * scan for cancelled calls and deadlines behind. */
			full = true;
			continue;
		}
		if (!window_take(&p->eps[ep])) {
			n = c; /* lost the slot to another driver: pick again */
			continue;
		}
		q_del(p, c);
		pthread_mutex_unlock(&p->lock);
		r = transfer_start(d, c, ep);
		if (r < 0 && !c->drv) /* never reached the multi */
			atomic_fetch_sub_explicit(&p->eps[ep].inflight, 1,
						  memory_order_relaxed);
		if (r < 0)
			call_complete(d, c, r,
				      r == -ETIME
					      ? "deadline passed in the queue"
					      : "could not start the transfer");
		pthread_mutex_lock(&p->lock);
		n = p->qhead;
	}
	pthread_mutex_unlock(&p->lock);
	return next;
}
