/* SPDX-License-Identifier: MIT */
/*
 * infer/queue.c: the pool's queue: calls ready to go in a list per
 * fairness key and class, keys served by deficit round robin, batch calls
 * promoted after batch_promote_ns, heaps of deadlines and of calls that
 * wait for a time (backoff, cooldown). All under the pool lock.
 *
 * Every operation is O(1) or O(log n) in the calls queued: a million
 * calls of one key are one list; the ring holds only keys with calls.
 */
#include <errno.h>
#include <string.h>

#include "infer/internal.h"

#define DRR_Q_MIN 4096
/* Batch calls promoted per admission at most (the rest next time). */
#define PROMOTE_MAX 16

/* ---- the heaps: 'dl' by deadline_ns, 'nb' by not_before_ns ---- */

static uint64_t hkey(struct icall *c, bool dl)
{
	return dl ? c->deadline_ns : c->not_before_ns;
}

static size_t *hidx(struct icall *c, bool dl)
{
	return dl ? &c->dl_idx : &c->nb_idx;
}

static void hset(struct icall **h, size_t i, struct icall *c, bool dl)
{
	h[i] = c;
	*hidx(c, dl) = i + 1;
}

static void hup(struct icall **h, size_t i, bool dl)
{
	struct icall *c = h[i];

	while (i) {
		size_t up = (i - 1) / 2;

		if (hkey(h[up], dl) <= hkey(c, dl))
			break;
		hset(h, i, h[up], dl);
		i = up;
	}
	hset(h, i, c, dl);
}

static void hdown(struct icall **h, size_t n, size_t i, bool dl)
{
	struct icall *c = h[i];

	for (;;) {
		size_t l = 2 * i + 1, m = l;

		if (l >= n)
			break;
		if (l + 1 < n && hkey(h[l + 1], dl) < hkey(h[l], dl))
			m = l + 1;
		if (hkey(h[m], dl) >= hkey(c, dl))
			break;
		hset(h, i, h[m], dl);
		i = m;
	}
	hset(h, i, c, dl);
}

static int hpush(struct icall ***h, size_t *n, size_t *cap, struct icall *c,
		 bool dl)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct icall **nh = mem_realloc(*h, nc * sizeof(*nh));

		if (!nh)
			return -ENOMEM;
		*h = nh;
		*cap = nc;
	}
	hset(*h, (*n)++, c, dl);
	hup(*h, *n - 1, dl);
	return 0;
}

static void hdel(struct icall **h, size_t *n, struct icall *c, bool dl)
{
	size_t i = *hidx(c, dl) - 1;

	*hidx(c, dl) = 0;
	if (i == --*n)
		return;
	hset(h, i, h[*n], dl);
	hup(h, i, dl);
	hdown(h, *n, *hidx(h[i], dl) - 1, dl);
}

/* ---- fairness keys ---- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

struct fkey *q_key(struct myriad_infer *p, const char *name)
{
	uint64_t h;
	struct fkey *k;
	size_t n, i;

	if (!*name && p->defkey)
		return p->defkey;
	h = hash_str(name);
	for (k = p->kcap ? p->keys[h & (p->kcap - 1)] : NULL; k; k = k->hnext)
		if (k->hash == h && !strcmp(k->name, name))
			return k;
	if (p->nkeys >= p->kcap / 2) {
		size_t nc = p->kcap ? p->kcap * 2 : 64;
		struct fkey **nk = mem_alloc(nc * sizeof(*nk)), *x;

		if (!nk)
			return NULL;
		memset(nk, 0, nc * sizeof(*nk));
		for (i = 0; i < p->kcap; i++)
			while ((x = p->keys[i])) {
				p->keys[i] = x->hnext;
				x->hnext = nk[x->hash & (nc - 1)];
				nk[x->hash & (nc - 1)] = x;
			}
		mem_free(p->keys);
		p->keys = nk;
		p->kcap = nc;
	}
	n = strlen(name);
	k = mem_zalloc(sizeof(*k) + n + 1);
	if (!k)
		return NULL;
	memcpy(k->name, name, n + 1);
	k->hash = h;
	k->weight = 1;
	k->hnext = p->keys[h & (p->kcap - 1)];
	p->keys[h & (p->kcap - 1)] = k;
	p->nkeys++;
	if (!*name)
		p->defkey = k;
	return k;
}

void q_fini(struct myriad_infer *p)
{
	struct fkey *k;
	size_t i;

	for (i = 0; i < p->kcap; i++)
		while ((k = p->keys[i])) {
			p->keys[i] = k->hnext;
			mem_free(k);
		}
	mem_free(p->keys);
	mem_free(p->dl);
	mem_free(p->nb);
}

static uint64_t quantum(struct myriad_infer *p, struct fkey *k)
{
	return (p->drr_q > DRR_Q_MIN ? p->drr_q : DRR_Q_MIN) * k->weight;
}

/* The ring of class 'cl' moves on to the next key, which gets its turn's
 * credit. */
static void ring_advance(struct myriad_infer *p, int cl)
{
	struct fkey *k = p->cur[cl]->q[cl].rnext;

	p->cur[cl] = k;
	k->q[cl].deficit += (int64_t)quantum(p, k);
}

static void ring_add(struct myriad_infer *p, struct fkey *k, int cl)
{
	struct fq *q = &k->q[cl];
	struct fkey *c = p->cur[cl];

	q->in_ring = true;
	if (!c) {
		q->rnext = q->rprev = k;
		p->cur[cl] = k;
		q->deficit = (int64_t)quantum(p, k);
		return;
	}
	/* At the end of the round: just before the key served now. */
	q->deficit = 0;
	q->rnext = c;
	q->rprev = c->q[cl].rprev;
	q->rprev->q[cl].rnext = k;
	c->q[cl].rprev = k;
}

static void ring_del(struct myriad_infer *p, struct fkey *k, int cl)
{
	struct fq *q = &k->q[cl];

	q->in_ring = false;
	q->deficit = 0;
	if (q->rnext == k) {
		p->cur[cl] = NULL;
		return;
	}
	q->rprev->q[cl].rnext = q->rnext;
	q->rnext->q[cl].rprev = q->rprev;
	if (p->cur[cl] == k) {
		p->cur[cl] = q->rnext;
		q->rnext->q[cl].deficit += (int64_t)quantum(p, q->rnext);
	}
}

/* ---- ready lists ---- */

static void ready_add(struct myriad_infer *p, struct icall *c, bool front,
		      uint64_t now)
{
	struct fq *q = &c->key->q[c->prio];

	if (front && q->head) {
		c->prev = NULL;
		c->next = q->head;
		q->head->prev = c;
		q->head = c;
	} else {
		c->next = NULL;
		c->prev = q->tail;
		if (q->tail)
			q->tail->next = c;
		else
			q->head = c;
		q->tail = c;
	}
	q->n++;
	p->nready[c->prio]++;
	if (!q->in_ring)
		ring_add(p, c->key, c->prio);
	c->where = QW_READY;
	c->ready_ns = now;
	if (c->prio == MYRIAD_INFER_BATCH) {
		c->anext = NULL;
		c->aprev = p->agtail;
		if (p->agtail)
			p->agtail->anext = c;
		else
			p->aghead = c;
		p->agtail = c;
	}
}

static void ready_del(struct myriad_infer *p, struct icall *c)
{
	struct fq *q = &c->key->q[c->prio];

	if (c->prev)
		c->prev->next = c->next;
	else
		q->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		q->tail = c->prev;
	c->next = c->prev = NULL;
	q->n--;
	p->nready[c->prio]--;
	if (!q->n)
		ring_del(p, c->key, c->prio);
	if (c->prio == MYRIAD_INFER_BATCH) {
		if (c->aprev)
			c->aprev->anext = c->anext;
		else
			p->aghead = c->anext;
		if (c->anext)
			c->anext->aprev = c->aprev;
		else
			p->agtail = c->aprev;
		c->anext = c->aprev = NULL;
	}
	c->where = QW_NONE;
}

/* ---- the queue ---- */

void q_push(struct myriad_infer *p, struct icall *c)
{
	uint64_t now = myriad_now_ns();

	p->nqueued++;
	if (c->cost > p->drr_q)
		p->drr_q = c->cost;
	/* Cancelled before it got here (call.c:3): to the dead list. */
	if (atomic_load_explicit(&c->cancel, memory_order_acquire)) {
		c->where = QW_DEAD;
		c->next = p->dead;
		p->dead = c;
		return;
	}
	/* On no memory for a heap entry the call still waits: a deadline
	 * is then seen when it comes up, a backoff is cut short. */
	if (c->deadline_ns && !c->dl_idx)
		(void)hpush(&p->dl, &p->ndl, &p->dlcap, c, true);
	if (c->not_before_ns > now &&
	    !hpush(&p->nb, &p->nnb, &p->nbcap, c, false)) {
		c->where = QW_DELAYED;
		return;
	}
	ready_add(p, c, c->attempts > 0, now);
}

void q_del(struct myriad_infer *p, struct icall *c)
{
	if (c->where == QW_READY)
		ready_del(p, c);
	else if (c->where == QW_DELAYED)
		hdel(p->nb, &p->nnb, c, false);
	if (c->dl_idx)
		hdel(p->dl, &p->ndl, c, true);
	c->where = QW_NONE;
	p->nqueued--;
}

void q_delay(struct myriad_infer *p, struct icall *c, uint64_t when)
{
	ready_del(p, c);
	c->not_before_ns = when;
	if (hpush(&p->nb, &p->nnb, &p->nbcap, c, false))
		ready_add(p, c, true, myriad_now_ns());
	else
		c->where = QW_DELAYED;
}

struct icall *q_any(struct myriad_infer *p)
{
	int cl;

	if (p->nnb)
		return p->nb[0];
	for (cl = 0; cl < 2; cl++)
		if (p->cur[cl])
			return p->cur[cl]->q[cl].head;
	return NULL;
}

uint64_t q_next_deadline(struct myriad_infer *p)
{
	return p->ndl ? p->dl[0]->deadline_ns : UINT64_MAX;
}

struct icall *q_expired(struct myriad_infer *p, uint64_t now)
{
	return p->ndl && p->dl[0]->deadline_ns <= now ? p->dl[0] : NULL;
}

/* Batch calls that waited batch_promote_ns join the interactive ones. */
static void promote(struct myriad_infer *p, uint64_t now, uint64_t *next)
{
	struct icall *c;
	int n;

	for (n = 0; (c = p->aghead) && n < PROMOTE_MAX; n++) {
		if (c->ready_ns + p->o.batch_promote_ns > now) {
			if (c->ready_ns + p->o.batch_promote_ns < *next)
				*next = c->ready_ns + p->o.batch_promote_ns;
			return;
		}
		ready_del(p, c);
		c->prio = MYRIAD_INFER_INTERACTIVE;
		ready_add(p, c, false, now);
		p->st.promoted++;
	}
	if (p->aghead)
		*next = now; /* more to promote: come back at once */
}

struct icall *q_peek(struct myriad_infer *p, uint64_t now, uint64_t *next)
{
	struct icall *c;
	int cl;

	/* Calls whose time came: ahead of their key's others (retries). */
	while (p->nnb && p->nb[0]->not_before_ns <= now) {
		c = p->nb[0];
		hdel(p->nb, &p->nnb, c, false);
		ready_add(p, c, true, now);
	}
	if (p->nnb && p->nb[0]->not_before_ns < *next)
		*next = p->nb[0]->not_before_ns;
	if (p->aghead)
		promote(p, now, next);
	for (cl = 0; cl < 2; cl++) {
		if (!p->cur[cl])
			continue;
		/* Deficit round robin: the key at the ring's cursor goes
		 * while its credit covers its next call. Each turn adds at
		 * least one call's worth (quantum >= the largest cost). */
		for (;;) {
			struct fkey *k = p->cur[cl];

			c = k->q[cl].head;
			if (k->q[cl].deficit >= (int64_t)c->cost)
				return c;
			ring_advance(p, cl);
		}
	}
	return NULL;
}

void q_take(struct myriad_infer *p, struct icall *c)
{
	c->key->q[c->prio].deficit -= (int64_t)c->cost;
	if (c->prio == MYRIAD_INFER_INTERACTIVE)
		p->st.admitted_interactive++;
	else
		p->st.admitted_batch++;
	q_del(p, c);
}
