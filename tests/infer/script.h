/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/script.h: a scripted HTTP responder on 127.0.0.1 for the
 * inference tests: each request is recorded (request line, headers, body)
 * and answered with the next scripted reply, written as raw bytes in the
 * pieces the script says (split points, a pause between them), so a test
 * controls exactly what the client reads and sees what it sent.
 */
#ifndef MYRIAD_TESTS_INFER_SCRIPT_H
#define MYRIAD_TESTS_INFER_SCRIPT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "helpers.h"

#define SCRIPT_MAX 64
#define SCRIPT_REQ_MAX 65536

struct script_reply {
	char *bytes; /* the whole answer: status line, headers, body */
	size_t len;
	size_t split[4]; /* offsets where a new write begins; 0: none */
};

struct script {
	int lfd, port;
	pthread_t th;
	_Atomic int stop;
	char url[64];
	pthread_mutex_t mu;
	struct script_reply reply[SCRIPT_MAX];
	int nreply;	       /* replies scripted */
	int nreq;	       /* requests answered */
	char *req[SCRIPT_MAX]; /* what each request was (head and body) */
};

/* A reply: status line "HTTP/1.1 200 OK", extra header lines (each ending
 * CRLF, or ""), a content type, the body; split points follow. */
static inline void script_add(struct script *s, const char *status,
			      const char *headers, const char *ctype,
			      const char *body, size_t split1, size_t split2)
{
	struct script_reply *r;
	size_t bl = strlen(body), hl;
	char head[1024];

	pthread_mutex_lock(&s->mu);
	REQUIRE(s->nreply < SCRIPT_MAX, "script: too many replies");
	r = &s->reply[s->nreply];
	hl = (size_t)snprintf(head, sizeof(head),
			      "%s\r\n%sContent-Type: %s\r\n"
			      "Content-Length: %zu\r\n\r\n",
			      status, headers, ctype, bl);
	r->bytes = malloc(hl + bl + 1);
	REQUIRE(r->bytes, "out of memory");
	memcpy(r->bytes, head, hl);
	memcpy(r->bytes + hl, body, bl + 1);
	r->len = hl + bl;
	memset(r->split, 0, sizeof(r->split));
	/* Split points count from the body's start. */
	if (split1 && split1 < bl)
		r->split[0] = hl + split1;
	if (split2 && split2 < bl && split2 > split1)
		r->split[1] = hl + split2;
	s->nreply++;
	pthread_mutex_unlock(&s->mu);
}

static inline void script_json(struct script *s, const char *body)
{
	script_add(s, "HTTP/1.1 200 OK", "", "application/json", body, 0, 0);
}

/* The request 'i' (NULL if none yet): its head, a blank line, its body. */
static inline const char *script_req(struct script *s, int i)
{
	const char *r;

	pthread_mutex_lock(&s->mu);
	r = i < s->nreq ? s->req[i] : NULL;
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Send reply 'r' in its pieces, a millisecond apart. */
static inline void script_send(int fd, const struct script_reply *r)
{
	size_t at = 0, k, end;

	for (k = 0; k <= 4; k++) {
		end = k < 4 && r->split[k] ? r->split[k] : r->len;
		if (end > at && send(fd, r->bytes + at, end - at,
				     MSG_NOSIGNAL) != (ssize_t)(end - at))
			return;
		at = end;
		if (at == r->len)
			return;
		t_sleep_ms(1);
	}
}

/* One whole request in buf[0..len): answered; bytes used, or 0. */
static inline size_t script_one(struct script *s, int fd, const char *buf,
				size_t len)
{
	const char *he = memmem(buf, len, "\r\n\r\n", 4), *cl;
	struct script_reply r = { 0 };
	size_t hl, bl = 0;
	int i;

	if (!he)
		return 0;
	hl = (size_t)(he + 4 - buf);
	cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl && cl < he)
		bl = strtoul(cl + 17, NULL, 10);
	if (len < hl + bl)
		return 0;
	pthread_mutex_lock(&s->mu);
	i = s->nreq;
	if (i < SCRIPT_MAX) {
		s->req[i] = strndup(buf, hl + bl);
		if (i < s->nreply)
			r = s->reply[i];
		s->nreq++;
	}
	pthread_mutex_unlock(&s->mu);
	if (!r.bytes) {
		static const char none[] =
			"HTTP/1.1 500 Internal Server Error\r\n"
			"Content-Length: 0\r\n\r\n";

		send(fd, none, sizeof(none) - 1, MSG_NOSIGNAL);
	} else {
		script_send(fd, &r);
	}
	return hl + bl;
}

static inline void *script_main(void *arg)
{
	struct script *s = arg;
	struct pollfd pf[1 + 16];
	static __thread char *bufs[16];
	size_t lens[16];
	int nc = 0, i, one = 1;

	for (i = 0; i < 16; i++)
		if (!bufs[i])
			bufs[i] = malloc(SCRIPT_REQ_MAX);
	while (!atomic_load(&s->stop)) {
		pf[0].fd = s->lfd;
		pf[0].events = POLLIN;
		for (i = 0; i < nc; i++)
			pf[1 + i].events = POLLIN;
		if (poll(pf, (nfds_t)(1 + nc), 20) <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && nc < 16) {
			int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
				pf[1 + nc].fd = fd;
				pf[1 + nc].revents = 0;
				lens[nc++] = 0;
			}
		}
		for (i = 0; i < nc; i++) {
			ssize_t got;
			size_t used;

			if (!(pf[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = recv(pf[1 + i].fd, bufs[i] + lens[i],
				   SCRIPT_REQ_MAX - 1 - lens[i], 0);
			if (got <= 0) {
				char *b = bufs[i];

				close(pf[1 + i].fd);
				nc--;
				pf[1 + i] = pf[1 + nc];
				lens[i] = lens[nc];
				bufs[i] = bufs[nc];
				bufs[nc] = b;
				i--;
				continue;
			}
			lens[i] += (size_t)got;
			bufs[i][lens[i]] = 0;
			while ((used = script_one(s, pf[1 + i].fd, bufs[i],
						  lens[i]))) {
				memmove(bufs[i], bufs[i] + used,
					lens[i] - used);
				lens[i] -= used;
				bufs[i][lens[i]] = 0;
			}
		}
	}
	for (i = 0; i < nc; i++)
		close(pf[1 + i].fd);
	for (i = 0; i < 16; i++) {
		free(bufs[i]);
		bufs[i] = NULL;
	}
	return NULL;
}

static inline void script_start(struct script *s)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(s->lfd >= 0, "socket: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			listen(s->lfd, 64) == 0 &&
			getsockname(s->lfd, (struct sockaddr *)&a, &al) == 0,
		"listen: %s", strerror(errno));
	s->port = ntohs(a.sin_port);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d/v1", s->port);
	REQUIRE(pthread_create(&s->th, NULL, script_main, s) == 0,
		"pthread_create");
}

static inline void script_stop(struct script *s)
{
	int i;

	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
	close(s->lfd);
	for (i = 0; i < SCRIPT_MAX; i++) {
		free(s->reply[i].bytes);
		free(s->req[i]);
	}
	pthread_mutex_destroy(&s->mu);
}

#endif
