/* SPDX-License-Identifier: MIT */
/*
 * fleet/conn.c: one Redis connection: hiredis's async context driven by a
 * myriad task on io_uring polls and the timer wheel, with command timeouts
 * and reconnection with backoff.
 *
 * The driver is an ordinary (urgent) task that owns the hiredis context;
 * every hiredis call is made from its step, so hiredis needs no lock. The
 * adapter hooks (ev.addRead/delRead/addWrite/delWrite) only note what the
 * socket waits for; the step arms one io_uring poll for it and hands
 * readiness to redisAsyncHandleRead/Write. Submitters on any thread queue
 * commands under the lock and wake the driver; while Redis is away the
 * commands wait in that queue (bounded in number, and each for
 * o.down_wait_ns), and the driver reconnects after a backoff with full
 * jitter: a random delay in [0, min(max, base * 2^fails)].
 *
 * Timeouts (hiredis 0.14 has none): replies come in the order commands
 * were sent, so each command's deadline is max(its own, the one before
 * it) and only the oldest unanswered command needs a timer. When it
 * passes, Redis is taken to be gone: the context is freed, which ends
 * every sent command (-ETIMEDOUT for those past their deadline,
 * -ECONNRESET for the rest: either may have run), and a reconnect
 * follows. A command's reply can therefore never reach another command.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/internal.h"
#include "sched/sched.h"

struct fsock {
	struct io_op rec; /* first: the poll's record */
	struct fconn *c;
	struct fsock *next; /* every socket of the connection */
	int fd;
	unsigned want;	/* POLLIN | POLLOUT, from the hooks */
	unsigned armed; /* events of the poll in flight, 0 if none */
	bool dead;	/* hiredis closed it: free once its poll ended */
};

static void hook_add_read(void *p)
{
	((struct fsock *)p)->want |= POLLIN;
}

static void hook_del_read(void *p)
{
	((struct fsock *)p)->want &= ~(unsigned)POLLIN;
}

static void hook_add_write(void *p)
{
	((struct fsock *)p)->want |= POLLOUT;
}

static void hook_del_write(void *p)
{
	((struct fsock *)p)->want &= ~(unsigned)POLLOUT;
}

static void backoff(struct fconn *c, uint64_t now)
{
	uint64_t cap = c->o.backoff_base_ns;
	unsigned i;

	for (i = 0; i < c->fails && cap < c->o.backoff_max_ns; i++)
		cap *= 2;
	if (cap > c->o.backoff_max_ns)
		cap = c->o.backoff_max_ns;
	c->fails++;
	c->retry_at = now + rng_next(&c->rng) % (cap + 1);
}

/*
 * hiredis frees the context (an error, EOF, or our redisAsyncFree): the
 * socket goes, and the connection is down. The fd is closed right after
 * this returns; the poll still in flight is cancelled by its record, and
 * the record is freed once it completes.
 */
static void hook_cleanup(void *p)
{
	struct fsock *s = p;
	struct fconn *c = s->c;

	s->dead = true;
	s->want = 0;
	if (s->armed)
		myriad_io_cancel(c->self, (myriad_io_t *)&s->rec);
	if (c->sock == s) {
		c->sock = NULL;
		c->ac = NULL;
		if (c->state != CONN_STOPPED) {
			if (atomic_load_explicit(&c->up, memory_order_relaxed))
				atomic_fetch_add(&c->drops, 1);
			c->state = CONN_DOWN;
			backoff(c, myriad_now_ns());
		}
		atomic_store(&c->up, 0);
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct fconn *c = ac->data;

	if (status != REDIS_OK) {
		atomic_store(&c->last_err, -ECONNREFUSED);
		return; /* hiredis frees the context next: hook_cleanup */
	}
	c->state = CONN_UP;
	c->fails = 0;
	atomic_store(&c->up, 1);
	atomic_store(&c->ever_up, 1);
	atomic_store(&c->last_err, 0);
	atomic_fetch_add(&c->connects, 1);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	(void)ac;
	(void)status; /* hook_cleanup has done the work */
}

/* A reply, or the end of every sent command when the context is freed. */
static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fconn *c = ac->data;
	struct fcmd *cmd = priv;
	int err = 0;

	/* Replies come in order: this is the oldest command sent. */
	c->fhead = cmd->next;
	if (!c->fhead)
		c->ftail = NULL;
	if (!reply)
		err = cmd->deadline_ns <= myriad_now_ns() ? -ETIMEDOUT
							  : -ECONNRESET;
	cmd->done(cmd, reply, err);
}

static void start_connect(struct fconn *c, uint64_t now)
{
	redisAsyncContext *ac;
	struct fsock *s;

	ac = c->path[0] ? redisAsyncConnectUnix(c->path)
			: redisAsyncConnect(c->host, c->port);
	if (!ac || ac->err || ac->c.fd < 0) {
		atomic_store(&c->last_err, -ECONNREFUSED);
		if (ac)
			redisAsyncFree(ac);
		backoff(c, now);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		redisAsyncFree(ac);
		backoff(c, now);
		return;
	}
	s->c = c;
	s->fd = ac->c.fd;
	s->next = c->socks;
	c->socks = s;
	c->sock = s;
	c->ac = ac;
	ac->data = c;
	ac->ev.data = s;
	ac->ev.addRead = hook_add_read;
	ac->ev.delRead = hook_del_read;
	ac->ev.addWrite = hook_add_write;
	ac->ev.delWrite = hook_del_write;
	ac->ev.cleanup = hook_cleanup;
	c->state = CONN_CONNECTING;
	c->connect_deadline = now + c->o.connect_timeout_ns;
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	redisAsyncSetConnectCallback(ac, on_connect); /* wants a write */
}

static void end_cmd(struct fcmd *cmd, int err)
{
	free(cmd->buf);
	cmd->buf = NULL;
	cmd->done(cmd, NULL, err);
}

/* Hand queued commands to hiredis (up), or end those waited too long. */
static void flush_queue(struct fconn *c, uint64_t now)
{
	struct fcmd *q, *n;
	uint64_t dl;

	pthread_mutex_lock(&c->lock);
	if (c->state != CONN_UP && !c->stop) {
		/* Down: the queue waits; its deadlines are in order. */
		q = NULL;
		while (c->qhead && c->qhead->deadline_ns <= now) {
			n = c->qhead;
			c->qhead = n->next;
			c->nq--;
			n->next = q;
			q = n;
		}
		if (!c->qhead)
			c->qtail = NULL;
		pthread_mutex_unlock(&c->lock);
		for (; q; q = n) {
			n = q->next;
			end_cmd(q, -ENOTCONN);
		}
		return;
	}
	q = c->qhead;
	c->qhead = c->qtail = NULL;
	c->nq = 0;
	pthread_mutex_unlock(&c->lock);
	for (; q; q = n) {
		n = q->next;
		if (c->state != CONN_UP) {
			end_cmd(q, -ESHUTDOWN);
			continue;
		}
		dl = now + c->o.command_timeout_ns + q->extra_ns;
		if (c->ftail && c->ftail->deadline_ns > dl)
			dl = c->ftail->deadline_ns;
		q->deadline_ns = dl;
		q->next = NULL;
		if (c->ftail)
			c->ftail->next = q;
		else
			c->fhead = q;
		c->ftail = q;
		if (redisAsyncFormattedCommand(c->ac, on_reply, q, q->buf,
					       q->len) != REDIS_OK) {
			/* Not taken (the context is going): end it here. */
			c->ftail = NULL;
			for (struct fcmd *p = c->fhead; p; p = p->next)
				if (p->next == q)
					c->ftail = p;
			if (c->ftail)
				c->ftail->next = NULL;
			else
				c->fhead = NULL;
			end_cmd(q, -ECONNRESET);
			continue;
		}
		free(q->buf);
		q->buf = NULL;
	}
}

/*
 * hiredis writes with write(2): a peer gone raises SIGPIPE, which would
 * kill a program that did not ignore it. The library must not: block it
 * on this thread around the write, and take back one it raised.
 */
static void handle_write(struct fconn *c)
{
	struct timespec zero = { 0, 0 };
	sigset_t pipe, old, pend;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &old);
	redisAsyncHandleWrite(c->ac);
	if (sigismember(&old, SIGPIPE))
		return;
	if (!sigpending(&pend) && sigismember(&pend, SIGPIPE))
		sigtimedwait(&pipe, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void sock_arm(struct fconn *c, struct fsock *s)
{
	int r;

	if (s->dead || s->armed || !s->want)
		return;
	r = io_polln(c->self, &s->rec, s->fd, s->want, &c->ready);
	if (r == -EAGAIN)
		s->armed = s->want;
}

static void sock_free(struct fconn *c, struct fsock *s)
{
	struct fsock **pp;

	for (pp = &c->socks; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s);
}

static void handle_ready(struct fconn *c)
{
	struct io_op *r, *nr;

	r = atomic_exchange_explicit(&c->ready, NULL, memory_order_acquire);
	for (; r; r = nr) {
		struct fsock *s = (struct fsock *)r;
		int ev;

		nr = r->u.ntf.snext;
		ev = io_polln(c->self, &s->rec, s->fd, 0, &c->ready);
		s->armed = 0;
		if (s->dead) {
			sock_free(c, s);
			continue;
		}
		if (ev > 0 && c->ac && c->sock == s) {
			if (ev & (POLLIN | POLLHUP | POLLERR))
				redisAsyncHandleRead(c->ac);
			if (c->ac && c->sock == s && (ev & POLLOUT))
				handle_write(c);
		}
	}
}

static void stop_all(struct fconn *c)
{
	struct fcmd *q, *n;

	c->state = CONN_STOPPED;
	if (c->ac)
		redisAsyncFree(c->ac); /* sent commands end, -ECONNRESET */
	c->ac = NULL;
	pthread_mutex_lock(&c->lock);
	q = c->qhead;
	c->qhead = c->qtail = NULL;
	c->nq = 0;
	pthread_mutex_unlock(&c->lock);
	for (; q; q = n) {
		n = q->next;
		end_cmd(q, -ESHUTDOWN);
	}
}

static int conn_step(myriad_task_t *self, void *state)
{
	struct fconn *c = *(struct fconn **)state;
	uint64_t now, wake;
	bool stop;
	int guard, rc;

	if (c->self != self) {
		c->self = self;
		task_set_urgent(self); /* ahead of the tasks it serves */
	}
	for (guard = 0; guard < 64; guard++) {
		handle_ready(c);
		now = myriad_now_ns();
		pthread_mutex_lock(&c->lock);
		stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop) {
			if (c->state != CONN_STOPPED)
				stop_all(c);
			myriad_timer_cancel(self, &c->tm);
			return MYRIAD_DONE; /* polls in flight end first */
		}
		if (c->state == CONN_DOWN && now >= c->retry_at)
			start_connect(c, now);
		if (c->state == CONN_CONNECTING && now >= c->connect_deadline) {
			atomic_store(&c->last_err, -ETIMEDOUT);
			redisAsyncFree(c->ac); /* hook_cleanup: down */
		}
		/* The oldest sent command past its deadline: Redis is gone. */
		if (c->state == CONN_UP && c->fhead &&
		    c->fhead->deadline_ns <= now) {
			atomic_fetch_add(&c->timeouts, 1);
			atomic_store(&c->last_err, -ETIMEDOUT);
			redisAsyncFree(c->ac);
		}
		flush_queue(c, now);
		/*
		 * Write at once what hiredis holds, whatever the poll waits
		 * for; a poll for POLLOUT is needed only when the socket's
		 * buffer is full.
		 */
		if (c->state == CONN_UP && c->sock && (c->sock->want & POLLOUT))
			handle_write(c);
		if (atomic_load_explicit(&c->ready, memory_order_acquire))
			continue;
		if (c->sock) {
			/* A poll armed for less than is wanted now: again. */
			if (c->sock->armed && (c->sock->want & ~c->sock->armed))
				myriad_io_cancel(self,
						 (myriad_io_t *)&c->sock->rec);
			sock_arm(c, c->sock);
		}
		wake = UINT64_MAX;
		if (c->state == CONN_DOWN)
			wake = c->retry_at;
		else if (c->state == CONN_CONNECTING)
			wake = c->connect_deadline;
		else if (c->fhead)
			wake = c->fhead->deadline_ns;
		/*
		 * Output left while the poll waits for input only: its cancel
		 * re-arms it for both, and a write is tried again within a
		 * millisecond in case the cancel found the poll gone.
		 */
		if (c->sock && (c->sock->want & POLLOUT) &&
		    !(c->sock->armed & POLLOUT) && c->sock->armed &&
		    now + 1000000 < wake)
			wake = now + 1000000;
		pthread_mutex_lock(&c->lock);
		if (c->qhead && c->state != CONN_UP &&
		    c->qhead->deadline_ns < wake)
			wake = c->qhead->deadline_ns;
		stop = c->qhead && c->state == CONN_UP;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			continue; /* submitted while we looked */
		myriad_timer_cancel(self, &c->tm);
		if (wake == UINT64_MAX)
			return MYRIAD_PENDING;
		rc = myriad_sleep_until(self, &c->tm, wake);
		if (rc != 0) /* armed (-EAGAIN); 0: passed, look again */
			return MYRIAD_PENDING;
	}
	return MYRIAD_YIELD;
}

int fconn_open(struct fconn *c, myriad_rt_t *rt,
	       const struct myriad_fleet_opts *o, const char *host, int port,
	       const char *path)
{
	struct fconn *cp = c;
	int r;

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->o = *o;
	c->rt = rt;
	snprintf(c->host, sizeof(c->host), "%s", host ? host : "");
	c->port = port;
	snprintf(c->path, sizeof(c->path), "%s", path ? path : "");
	c->rng = rng_seed((uint64_t)(uintptr_t)c, myriad_now_ns());
	c->state = CONN_DOWN;
	c->retry_at = 0;
	r = myriad_rt_spawn(rt, conn_step, &cp, sizeof(cp), &c->handle);
	if (r < 0) {
		pthread_mutex_destroy(&c->lock);
		return r;
	}
	c->waker.rt = rt;
	c->waker.task = c->handle;
	return 0;
}

void fconn_close(struct fconn *c)
{
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_mutex_unlock(&c->lock);
	myriad_waker_wake(c->waker);
	myriad_handle_join(c->handle, NULL, -1);
	myriad_handle_release(c->handle);
	/* The driver and its polls are done: no record is in use. */
	while (c->socks)
		sock_free(c, c->socks);
	pthread_mutex_destroy(&c->lock);
}

int fconn_submit(struct fconn *c, struct fcmd *cmd)
{
	bool was_empty;

	cmd->next = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->stop) {
		pthread_mutex_unlock(&c->lock);
		free(cmd->buf);
		cmd->buf = NULL;
		return -ESHUTDOWN;
	}
	if (c->nq >= c->o.max_queued) {
		pthread_mutex_unlock(&c->lock);
		free(cmd->buf);
		cmd->buf = NULL;
		return -EAGAIN;
	}
	/* While queued, the deadline is how long it may wait for Redis. */
	cmd->deadline_ns = myriad_now_ns() + c->o.down_wait_ns;
	was_empty = !c->qhead;
	if (c->qtail)
		c->qtail->next = cmd;
	else
		c->qhead = cmd;
	c->qtail = cmd;
	c->nq++;
	pthread_mutex_unlock(&c->lock);
	if (was_empty)
		myriad_waker_wake(c->waker);
	return 0;
}
