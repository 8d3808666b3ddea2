/* SPDX-License-Identifier: MIT */
/*
 * sched/chan.c: bounded MPMC channels. A task that finds the channel full
 * (send) or empty (receive) is queued as a waiter and parks; the operation
 * on the other side wakes one waiter, which retries.
 */
#include <stdlib.h>
#include <string.h>

#include "sched.h"

/*
 * Why every element is received exactly once and no waiter is lost:
 *
 * 1. The buffer and both waiter queues change only under the channel's
 *    lock; an element is copied in and out under it, so each is taken once.
 * 2. A task registers as a waiter under the lock, after seeing the channel
 *    full or empty under that same lock; whoever changes that afterwards
 *    holds the lock too and finds the waiter queued. It takes the waiter off
 *    the queue, marks it popped (CW_POPPED in the task's 'wait' word) and
 *    moves its state word toward running (task.c), still under the lock.
 * 3. The woken task retries the operation. If another task took the
 *    element first, it simply queues again: a wake is a hint, the buffer is
 *    the truth.
 * 4. A popped waiter that will not retry (it finished, was cancelled, or
 *    abandons the wait) passes the wake on to the next waiter of its kind
 *    when it deregisters, so the wake meant for "an element is there" is
 *    not swallowed.
 * 5. Lifetime: a task's 'wait' word is written by the task itself and by
 *    the popper, both under the lock; the popper never touches the task
 *    after unlocking except to queue it if it moved it IDLE->SCHEDULED (a
 *    queued task cannot finish). A task that finds 'wait' set takes the lock
 *    before it finishes, so it cannot be freed while a popper still holds it.
 */

#define CW_RECV ((uintptr_t)1)
#define CW_POPPED ((uintptr_t)2)
#define CW_MASK ((uintptr_t)3)

struct waitq {
	struct myriad_task **v;
	size_t head, len, cap;
};

struct myriad_chan {
	struct spin lock;
	struct myriad_rt *rt;
	size_t esz, cap, head, count;
	bool closed;
	size_t refs; /* tasks whose 'wait' names this channel */
	unsigned char *buf;
	struct waitq sendq, recvq;
};

static int waitq_push(struct waitq *q, struct myriad_task *t)
{
	if (q->len == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 4, i;
		struct myriad_task **nv = malloc(ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		for (i = 0; i < q->len; i++)
			nv[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = nv;
		q->cap = ncap;
		q->head = 0;
	}
	q->v[(q->head + q->len) % q->cap] = t;
	q->len++;
	return 0;
}

static struct myriad_task *waitq_pop(struct waitq *q)
{
	struct myriad_task *t;

	if (!q->len)
		return NULL;
	t = q->v[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return t;
}

/* Remove 't' from anywhere in the queue (cancellation, spurious wakes). */
static bool waitq_remove(struct waitq *q, struct myriad_task *t)
{
	size_t i, j;

	for (i = 0; i < q->len; i++) {
		if (q->v[(q->head + i) % q->cap] != t)
			continue;
		for (j = i; j + 1 < q->len; j++)
			q->v[(q->head + j) % q->cap] =
				q->v[(q->head + j + 1) % q->cap];
		q->len--;
		return true;
	}
	return false;
}

/*
 * Pop a waiter and move it toward running, under the lock (step 2).
 * Returns the task if the caller must queue it after unlocking.
 */
static struct myriad_task *pop_waiter(struct waitq *q)
{
	struct myriad_task *t = waitq_pop(q);
	uintptr_t w;

	if (!t)
		return NULL;
	w = atomic_load_explicit(&t->wait, memory_order_relaxed);
	atomic_store_explicit(&t->wait, w | CW_POPPED, memory_order_relaxed);
	return task_wake_prepare(t) ? t : NULL;
}

/*
 * Drop 't's registration on the channel whose lock is held. 'retrying':
 * the task is about to try the same operation again, so a wake it got need
 * not be passed on. Returns a task to queue after unlocking, or NULL.
 */
static struct myriad_task *
deregister_locked(struct myriad_chan *ch, struct myriad_task *t, bool retrying)
{
	uintptr_t w = atomic_load_explicit(&t->wait, memory_order_relaxed);
	struct waitq *q = (w & CW_RECV) ? &ch->recvq : &ch->sendq;
	struct myriad_task *pass = NULL;

	if (!(w & CW_POPPED))
		waitq_remove(q, t);
	else if (!retrying)
		pass = pop_waiter(q); /* step 4 */
	atomic_store_explicit(&t->wait, 0, memory_order_release);
	ch->refs--;
	return pass;
}

static void deregister(struct myriad_task *t, bool retrying)
{
	uintptr_t w = atomic_load_explicit(&t->wait, memory_order_acquire);
	struct myriad_chan *ch = (struct myriad_chan *)(w & ~CW_MASK);
	struct myriad_task *pass;

	if (!ch)
		return;
	spin_lock(&ch->lock);
	pass = deregister_locked(ch, t, retrying);
	spin_unlock(&ch->lock);
	if (pass)
		task_schedule(ch->rt, pass);
}

void chan_task_finished(struct myriad_task *t)
{
	deregister(t, false);
}

myriad_chan_t *myriad_chan_create(myriad_rt_t *rt, size_t elem_size,
				  size_t capacity, int *err)
{
	struct myriad_chan *ch;
	int e = -EINVAL;

	if (!rt || !elem_size || elem_size > MYRIAD_CHAN_ELEM_MAX ||
	    !capacity || capacity > MYRIAD_CHAN_CAP_MAX)
		goto err;
	e = -ENOMEM;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		goto err;
	ch->buf = malloc(elem_size * capacity);
	if (!ch->buf) {
		free(ch);
		goto err;
	}
	ch->rt = rt;
	ch->esz = elem_size;
	ch->cap = capacity;
	atomic_init(&ch->lock.v, 0);
	return ch;
err:
	if (err)
		*err = e;
	return NULL;
}

/*
 * Common prologue of send and receive from a task: validate, drop a stale
 * registration on another channel, spend budget. Returns 0 to go on.
 */
static int op_begin(myriad_task_t *self, myriad_chan_t *ch, const void *p,
		    uintptr_t kind)
{
	struct worker *w = cur_worker();
	uintptr_t reg;

	if (!self || !ch || !p || !w || w->current != self)
		return -EINVAL;
	reg = atomic_load_explicit(&self->wait, memory_order_acquire);
	if (reg & TW_TIMER) {
		w->rt->drv->timer_release(self); /* one wait at a time */
		reg = 0;
	}
	if (reg && (reg & ~CW_MASK) != (uintptr_t)ch)
		deregister(self, false);
	else if (reg && (reg & CW_RECV) != kind)
		deregister(self, false);
	if (myriad_task_cancelled(self)) {
		deregister(self, false);
		return -ECANCELED;
	}
	/*
	 * The cooperative budget: a task whose operations always succeed
	 * would never return PENDING; after 128 it is sent behind the others
	 * (it is notified, so it runs again from the back of the queue).
	 */
	if (unlikely(--w->budget < 0)) {
		task_wake_prepare(self);
		return -EAGAIN;
	}
	return 0;
}

int myriad_chan_send(myriad_task_t *self, myriad_chan_t *ch, const void *elem)
{
	struct myriad_task *wake = NULL;
	int r = op_begin(self, ch, elem, 0);

	if (r)
		return r;
	spin_lock(&ch->lock);
	if (atomic_load_explicit(&self->wait, memory_order_relaxed))
		wake = deregister_locked(ch, self, true);
	if (ch->closed) {
		r = -EPIPE;
	} else if (ch->count < ch->cap) {
		memcpy(ch->buf + ((ch->head + ch->count) % ch->cap) * ch->esz,
		       elem, ch->esz);
		ch->count++;
		if (!wake)
			wake = pop_waiter(&ch->recvq);
		r = 0;
	} else {
		r = waitq_push(&ch->sendq, self);
		if (r == 0) {
			atomic_store_explicit(&self->wait, (uintptr_t)ch,
					      memory_order_relaxed);
			ch->refs++;
			r = -EAGAIN;
		}
	}
	spin_unlock(&ch->lock);
	if (wake)
		task_schedule(ch->rt, wake);
	return r;
}

int myriad_chan_recv(myriad_task_t *self, myriad_chan_t *ch, void *out)
{
	struct myriad_task *wake = NULL;
	int r = op_begin(self, ch, out, CW_RECV);

	if (r)
		return r;
	spin_lock(&ch->lock);
	if (atomic_load_explicit(&self->wait, memory_order_relaxed))
		wake = deregister_locked(ch, self, true);
	if (ch->count) {
		memcpy(out, ch->buf + ch->head * ch->esz, ch->esz);
		ch->head = (ch->head + 1) % ch->cap;
		ch->count--;
		if (!wake)
			wake = pop_waiter(&ch->sendq);
		r = 0;
	} else if (ch->closed) {
		r = -EPIPE;
	} else {
		r = waitq_push(&ch->recvq, self);
		if (r == 0) {
			atomic_store_explicit(&self->wait,
					      (uintptr_t)ch | CW_RECV,
					      memory_order_relaxed);
			ch->refs++;
			r = -EAGAIN;
		}
	}
	spin_unlock(&ch->lock);
	if (wake)
		task_schedule(ch->rt, wake);
	return r;
}

int myriad_chan_abandon(myriad_task_t *self, myriad_chan_t *ch)
{
	uintptr_t reg;

	if (!self || !ch)
		return -EINVAL;
	reg = atomic_load_explicit(&self->wait, memory_order_acquire);
	if ((reg & ~CW_MASK) == (uintptr_t)ch)
		deregister(self, false);
	return 0;
}

int myriad_chan_try_send(myriad_chan_t *ch, const void *elem)
{
	struct myriad_task *wake = NULL;
	int r;

	if (!ch || !elem)
		return -EINVAL;
	spin_lock(&ch->lock);
	if (ch->closed) {
		r = -EPIPE;
	} else if (ch->count < ch->cap) {
		memcpy(ch->buf + ((ch->head + ch->count) % ch->cap) * ch->esz,
		       elem, ch->esz);
		ch->count++;
		wake = pop_waiter(&ch->recvq);
		r = 0;
	} else {
		r = -EAGAIN;
	}
	spin_unlock(&ch->lock);
	if (wake)
		task_schedule(ch->rt, wake);
	return r;
}

int myriad_chan_try_recv(myriad_chan_t *ch, void *out)
{
	struct myriad_task *wake = NULL;
	int r;

	if (!ch || !out)
		return -EINVAL;
	spin_lock(&ch->lock);
	if (ch->count) {
		memcpy(out, ch->buf + ch->head * ch->esz, ch->esz);
		ch->head = (ch->head + 1) % ch->cap;
		ch->count--;
		wake = pop_waiter(&ch->sendq);
		r = 0;
	} else {
		r = ch->closed ? -EPIPE : -EAGAIN;
	}
	spin_unlock(&ch->lock);
	if (wake)
		task_schedule(ch->rt, wake);
	return r;
}

int myriad_chan_close(myriad_chan_t *ch)
{
	struct myriad_task *t;

	if (!ch)
		return -EINVAL;
	spin_lock(&ch->lock);
	ch->closed = true;
	/*
	 * Wake everyone; queue them under the lock (close is rare, and the
	 * tasks are held here by their registrations until they take it).
	 */
	while (ch->recvq.len || ch->sendq.len) {
		t = pop_waiter(ch->recvq.len ? &ch->recvq : &ch->sendq);
		if (t)
			task_schedule(ch->rt, t);
	}
	spin_unlock(&ch->lock);
	return 0;
}

int64_t myriad_chan_len(myriad_chan_t *ch)
{
	int64_t n;

	if (!ch)
		return -EINVAL;
	spin_lock(&ch->lock);
	n = (int64_t)ch->count;
	spin_unlock(&ch->lock);
	return n;
}

int myriad_chan_destroy(myriad_chan_t *ch)
{
	if (!ch)
		return -EINVAL;
	spin_lock(&ch->lock);
	/* Registrations of a stopped runtime's tasks no longer count. */
	if (ch->refs && !atomic_load(&ch->rt->shutdown)) {
		spin_unlock(&ch->lock);
		return -EBUSY;
	}
	spin_unlock(&ch->lock);
	free(ch->sendq.v);
	free(ch->recvq.v);
	free(ch->buf);
	free(ch);
	return 0;
}
