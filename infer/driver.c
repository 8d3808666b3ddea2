/* SPDX-License-Identifier: MIT */
/*
 * infer/driver.c: the driver task: one curl multi handle, its sockets on
 * io_uring polls, its timeout on the timer wheel, and the step that runs it.
 *
 * Drivers: each driver is an ordinary myriad task that owns one curl
 * multi handle. It waits for three things at once, none of them on a
 * thread: its sockets (one io_uring poll per curl socket, whose completion
 * pushes the poll's record on the driver's ready stack), curl's timeout
 * (a timer on the wheel), and new work (a waker: calls queued by agents,
 * cancellations). A step handles what is ready, admits queued calls into
 * free windows, re-arms polls and the timer, and parks.
 */
#include <poll.h>
#include <stdlib.h>

#include "infer/internal.h"

static unsigned poll_events(int want)
{
	unsigned ev = 0;

	if (want == CURL_POLL_IN || want == CURL_POLL_INOUT)
		ev |= POLLIN;
	if (want == CURL_POLL_OUT || want == CURL_POLL_INOUT)
		ev |= POLLOUT;
	return ev;
}

/* Arm (or re-arm) the poll of 's' for what curl wants now. */
static void sock_arm(struct driver *d, struct sock *s)
{
	unsigned ev = poll_events(s->want);
	int r;

	if (s->dead || s->armed || !ev)
		return;
	r = io_polln(d->self, &s->rec, s->fd, ev, &d->ready);
	if (r == -EAGAIN)
		s->armed = (int)ev;
}

static struct sock *sock_new(struct driver *d, curl_socket_t fd)
{
	struct sock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->d = d;
	s->fd = fd;
	s->anext = d->socks;
	if (d->socks)
		d->socks->aprev = s;
	d->socks = s;
	return s;
}

static void sock_free(struct sock *s)
{
	struct driver *d = s->d;

	if (s->aprev)
		s->aprev->anext = s->anext;
	else
		d->socks = s->anext;
	if (s->anext)
		s->anext->aprev = s->aprev;
	free(s);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *arg,
		     void *sockp)
{
	struct driver *d = arg;
	struct sock *s = sockp;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			s->dead = true;
			s->want = 0;
			curl_multi_assign(d->multi, fd, NULL);
			if (s->armed)
				myriad_io_cancel(d->self,
						 (myriad_io_t *)&s->rec);
			else if (!s->in_ready)
				sock_free(s);
		}
		return 0;
	}
	if (!s) {
		s = sock_new(d, fd);
		if (!s)
			return -1;
		curl_multi_assign(d->multi, fd, s);
	}
	s->want = what;
	if (s->armed && s->armed != (int)poll_events(what))
		myriad_io_cancel(d->self, (myriad_io_t *)&s->rec);
	else if (!s->in_ready)
		sock_arm(d, s);
	return 0;
}

static int on_timer(CURLM *m, long ms, void *arg)
{
	struct driver *d = arg;

	(void)m;
	d->curl_deadline_ns =
		ms < 0 ? UINT64_MAX : myriad_now_ns() + (uint64_t)ms * 1000000u;
	return 0;
}

static void cancels(struct driver *d)
{
	struct icall *c, *n;
	int why;

	for (c = d->active; c; c = n) {
		n = c->next;
		why = atomic_load_explicit(&c->cancel, memory_order_acquire);
		if (!why &&
		    !atomic_load_explicit(&d->stop, memory_order_relaxed))
			continue;
		transfer_end(d, c);
		call_complete(d, c, why ? why : -ESHUTDOWN,
			      why ? "cancelled" : "pool destroyed");
	}
}

static void drain_curl(struct driver *d)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(d->multi, &left))) {
		struct icall *c = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &c);
		if (c)
			transfer_done(d, c, m->data.result);
	}
}

int driver_step(myriad_task_t *self, void *state)
{
	struct driver *d = *(struct driver **)state;
	struct io_op *r, *nr;
	uint64_t wake, next;
	int running, rc, guard;

	if (d->self != self) {
		d->self = self;
		task_set_urgent(self); /* sched/task.c: ahead of the agents */
	}
	for (guard = 0; guard < 64; guard++) {
		/* Sockets that are ready (or whose poll ended). */
		r = atomic_exchange_explicit(&d->ready, NULL,
					     memory_order_acquire);
		for (; r; r = nr) {
			struct sock *s = (struct sock *)r;
			int ev, flags = 0;

			nr = r->u.ntf.snext;
			ev = io_polln(self, &s->rec, s->fd, 0, &d->ready);
			s->armed = 0;
			if (s->dead) {
				sock_free(s);
				continue;
			}
			if (ev > 0) {
				if (ev & (POLLIN | POLLHUP))
					flags |= CURL_CSELECT_IN;
				if (ev & POLLOUT)
					flags |= CURL_CSELECT_OUT;
				if (ev & POLLERR)
					flags |= CURL_CSELECT_ERR;
				s->in_ready = true;
				curl_multi_socket_action(d->multi, s->fd, flags,
							 &running);
				s->in_ready = false;
				if (s->dead) {
					sock_free(s);
					continue;
				}
			}
			sock_arm(d, s); /* one-shot: again for what is wanted */
		}
		if (atomic_load_explicit(&d->pool->ncancel,
					 memory_order_acquire) ||
		    atomic_load_explicit(&d->stop, memory_order_relaxed))
			cancels(d);
		if (d->curl_deadline_ns <= myriad_now_ns()) {
			d->curl_deadline_ns = UINT64_MAX;
			curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT,
						 0, &running);
		}
		drain_curl(d);
		next = admit(d);
		drain_curl(d);
		if (atomic_load_explicit(&d->stop, memory_order_relaxed) &&
		    !d->active) {
			myriad_timer_cancel(self, &d->tm);
			return MYRIAD_DONE; /* polls in flight end first */
		}
		wake = d->curl_deadline_ns < next ? d->curl_deadline_ns : next;
		if (atomic_load_explicit(&d->ready, memory_order_acquire))
			continue;
		if (wake == UINT64_MAX) {
			myriad_timer_cancel(self, &d->tm);
			return MYRIAD_PENDING;
		}
		myriad_timer_cancel(self, &d->tm);
		rc = myriad_sleep_until(self, &d->tm, wake);
		if (rc != 0) /* armed (-EAGAIN); 0: passed, look again */
			return MYRIAD_PENDING;
	}
	return MYRIAD_YIELD;
}

/* Driver 'i' of 'p': its multi handle and curl's callbacks; 0 or -EIO. */
int driver_init(struct myriad_infer *p, unsigned i)
{
	struct driver *d = &p->drv[i];

	d->pool = p;
	d->curl_deadline_ns = UINT64_MAX;
	d->rng = rng_seed(i, myriad_now_ns());
	d->multi = curl_multi_init();
	if (!d->multi)
		return -EIO;
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, 4096L);
	return 0;
}

/* After the driver task was joined: its multi, kept handles and sockets. */
void driver_fini(struct driver *d)
{
	curl_multi_cleanup(d->multi);
	while (d->neasy)
		curl_easy_cleanup(d->easy_free[--d->neasy]);
	/* The driver and its polls are done: no record is in use. */
	while (d->socks)
		sock_free(d->socks);
}
