/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/conn.c: the connections of the mock LLM server: accepted,
 * read, written (a few bytes at a time when dripping), lingering, freed, and
 * driven from one request to the next.
 */
#include "llm.h"

#include <sys/uio.h>

/* No more connections now: --max-conns are open. */
int conns_full(struct srv_loop *l)
{
	return O.max_conns && L.open >= O.max_conns;
}

/*
 * Close and free c. by_client: the peer closed or failed, which counts as
 * a mid-request close while a request is queued, in service or being
 * answered. reset: close with SO_LINGER 0 (an RST).
 */
void conn_free(struct conn *c, int by_client, int reset)
{
	if (by_client && c->state != C_READ && c->state != C_LINGER)
		S.client_closed_mid_request++;
	if (c->state == C_QUEUED)
		q_unlink(c);
	else if (c->state == C_SERVICE)
		slot_release(L.loop.now);
	srv_timer_del(&L.loop.heap, &c->s.tm);
	if (reset) {
		struct linger lg = { 1, 0 };

		setsockopt(c->s.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(c->s.fd);
	free(c->rbuf);
	free(c->obuf);
	free(c->r.body);
	json_decref(c->r.ans);
	free(c);
	L.open--;
	srv_accept_resume(&L.loop);
}

/*
 * Read what the socket has (edge-triggered: until EAGAIN, or a short read
 * unless the peer has shut down). Returns -1 if c was freed.
 */
static int conn_read(struct conn *c)
{
	for (;;) {
		if (c->rlen == c->rcap) {
			size_t lim = MAX_HDR + O.max_body;

			if (c->rcap >= lim) {
				c->s.rpaused = 1;
				return 0;
			}
			c->rcap = c->rcap ? 2 * c->rcap : RBUF_MIN;
			if (c->rcap > lim)
				c->rcap = lim;
			c->rbuf = srv_xrealloc(c->rbuf, c->rcap);
		}
		switch (srv_recv(&c->s, c->rbuf, &c->rlen, c->rcap,
				 c->state == C_LINGER)) {
		case SRV_RECV_AGAIN:
			return 0;
		case SRV_RECV_FULL:
			continue;
		}
		conn_free(c, 1, 0); /* EOF or error */
		return -1;
	}
}

/*
 * Write what is queued, a few bytes per drip_ns when dripping. Returns -1
 * if c was freed (the peer went away).
 */
static int conn_flush(struct conn *c)
{
	while (out_pending(c)) {
		size_t a = c->olen - c->ooff, b = c->extlen - c->extoff;
		size_t lim = (size_t)-1;
		struct iovec iov[2];
		int cnt = 0;
		ssize_t n;

		if (c->drip) {
			if (c->drip_hdr) {
				lim = c->drip_hdr;
			} else if (L.loop.now < c->drip_at) {
				if (!c->s.tm.idx)
					srv_timer_set(&L.loop.heap, &c->s.tm,
						      c->drip_at);
				return 0;
			} else {
				lim = O.drip_bytes;
			}
		}
		if (a) {
			iov[cnt].iov_base = c->obuf + c->ooff;
			iov[cnt++].iov_len = a < lim ? a : lim;
			lim -= iov[cnt - 1].iov_len;
		}
		if (b && lim) {
			iov[cnt].iov_base = (char *)c->ext + c->extoff;
			iov[cnt++].iov_len = b < lim ? b : lim;
		}
		n = writev(c->s.fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			conn_free(c, 1, 0);
			return -1;
		}
		if ((size_t)n <= a) {
			c->ooff += (size_t)n;
		} else {
			c->ooff = c->olen;
			c->extoff += (size_t)n - a;
		}
		if (c->drip) {
			if (c->drip_hdr) {
				c->drip_hdr -= (size_t)n;
				if (!c->drip_hdr)
					c->drip_at = L.loop.now + O.drip_ns;
			} else {
				c->drip_at = L.loop.now + O.drip_ns;
			}
		}
	}
	c->ooff = c->olen = 0;
	c->ext = NULL;
	c->extlen = c->extoff = 0;
	return 0;
}

/*
 * Close our side (FIN) and discard what the client still sends until it
 * closes too, or LINGER_NS passes: closing with unread input would send
 * an RST that can destroy the answer before the client reads it.
 */
#define LINGER_NS (1000 * NSEC_MS)

static int conn_linger(struct conn *c)
{
	c->state = C_LINGER;
	c->rlen = 0;
	c->s.rpaused = 0;
	if (srv_linger(&L.loop, c->s.fd, &c->s.tm, LINGER_NS)) {
		conn_free(c, 0, 0);
		return -1;
	}
	return conn_read(c);
}

/*
 * Drive c as far as it can go: flush, finish an answer, read and parse
 * the next request. Returns -1 if c was freed.
 */
int conn_kick(struct conn *c)
{
	for (;;) {
		if (out_pending(c)) {
			if (conn_flush(c) < 0)
				return -1;
			if (out_pending(c))
				return 0;
		}
		if (c->state == C_WRITE) {
			if (c->resp_ok)
				S.completed++;
			c->resp_ok = 0;
			c->drip = 0;
			c->state = C_READ;
			if (!c->keepalive)
				c->close_after = 1;
		}
		if (c->state != C_READ)
			return 0;
		if (c->close_after)
			return conn_linger(c);
		if (srv_resume(&L.loop, &c->s) < 0)
			return -1;
		/* Nothing more to parse: done, unless a 100 Continue
		 * was queued (flushed on the next pass). */
		if (!parse_one(c) && !out_pending(c))
			return 0;
	}
}

/* A connection accepted: its record. */
int conn_new(struct srv_loop *l, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return -1;
	}
	c->s.fd = fd;
	if (srv_conn_add(l, fd, c))
		return 0;
	S.connections_accepted++;
	L.open++;
	return 0;
}

/* The loop's operations on a connection (its record starts with s). */
int loop_read(struct srv_conn *s)
{
	return conn_read((struct conn *)s);
}

void loop_kick(struct srv_conn *s)
{
	conn_kick((struct conn *)s);
}

void loop_timer(struct srv_conn *s)
{
	on_timer((struct conn *)s);
}
