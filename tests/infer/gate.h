/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/gate.h: a responder on 127.0.0.1 for the admission tests
 * that holds every answer while its gate is closed and records, in order,
 * the first character of each request's first message content (the
 * tests' marker of who sent it), so that with a window of one the order
 * of requests is the order of admission. It answers a fixed chat
 * completion (usage total_tokens 2), or 500 with an error body.
 */
#ifndef MYRIAD_TESTS_INFER_GATE_H
#define MYRIAD_TESTS_INFER_GATE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "helpers.h"

#define GATE_CONNS 64
#define GATE_BUF 65536
#define GATE_ORDER_MAX (1 << 22)

struct gate {
	int lfd, port;
	pthread_t th;
	_Atomic int stop;
	char url[64];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open;
	int fail;    /* answer 500 */
	char *order; /* markers, in the order the requests came */
	_Atomic long n;
};

static const char gate_ok[] =
	"{\"id\":\"chatcmpl-g\",\"object\":\"chat.completion\",\"created\":1,"
	"\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
	"\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"stop\"}],"
	"\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,"
	"\"total_tokens\":2}}";
static const char gate_err[] =
	"{\"error\":{\"message\":\"down\",\"type\":\"server_error\","
	"\"param\":null,\"code\":null}}";

static inline void gate_set(struct gate *g, int open)
{
	pthread_mutex_lock(&g->mu);
	g->open = open;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* One whole request in buf[0..len): recorded, answered; bytes used. */
static inline size_t gate_one(struct gate *g, int fd, const char *buf,
			      size_t len)
{
	const char *he = memmem(buf, len, "\r\n\r\n", 4), *cl, *m;
	size_t hl, bl = 0;
	char head[256];
	const char *body;
	long i;
	int n;

	if (!he)
		return 0;
	hl = (size_t)(he + 4 - buf);
	cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl && cl < he)
		bl = strtoul(cl + 17, NULL, 10);
	if (len < hl + bl)
		return 0;
	m = memmem(buf + hl, bl, "\"content\":\"", 11);
	i = atomic_load(&g->n);
	if (i < GATE_ORDER_MAX)
		g->order[i] = m && m + 11 < buf + hl + bl ? m[11] : '?';
	atomic_store(&g->n, i + 1);
	pthread_mutex_lock(&g->mu);
	while (!g->open && !atomic_load(&g->stop))
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	body = g->fail ? gate_err : gate_ok;
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     g->fail ? "500 Internal Server Error" : "200 OK",
		     strlen(body));
	send(fd, head, (size_t)n, MSG_NOSIGNAL);
	send(fd, body, strlen(body), MSG_NOSIGNAL);
	return hl + bl;
}

static inline void *gate_main(void *arg)
{
	struct gate *g = arg;
	struct pollfd pf[1 + GATE_CONNS];
	char *bufs[GATE_CONNS];
	size_t lens[GATE_CONNS];
	int nc = 0, i, one = 1;

	for (i = 0; i < GATE_CONNS; i++)
		bufs[i] = malloc(GATE_BUF);
	while (!atomic_load(&g->stop)) {
		pf[0].fd = g->lfd;
		pf[0].events = POLLIN;
		for (i = 0; i < nc; i++)
			pf[1 + i].events = POLLIN;
		if (poll(pf, (nfds_t)(1 + nc), 20) <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && nc < GATE_CONNS) {
			int fd = accept4(g->lfd, NULL, NULL, SOCK_CLOEXEC);

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
				   GATE_BUF - 1 - lens[i], 0);
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
			while ((used = gate_one(g, pf[1 + i].fd, bufs[i],
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
	for (i = 0; i < GATE_CONNS; i++)
		free(bufs[i]);
	return NULL;
}

static inline void gate_start(struct gate *g, int open, int fail)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->open = open;
	g->fail = fail;
	g->order = calloc(GATE_ORDER_MAX, 1);
	REQUIRE(g->order, "out of memory");
	g->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(g->lfd >= 0, "socket: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(g->lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			listen(g->lfd, 64) == 0 &&
			getsockname(g->lfd, (struct sockaddr *)&a, &al) == 0,
		"listen: %s", strerror(errno));
	g->port = ntohs(a.sin_port);
	snprintf(g->url, sizeof(g->url), "http://127.0.0.1:%d/v1", g->port);
	REQUIRE(pthread_create(&g->th, NULL, gate_main, g) == 0,
		"pthread_create");
}

static inline void gate_stop(struct gate *g)
{
	atomic_store(&g->stop, 1);
	gate_set(g, 1);
	pthread_join(g->th, NULL);
	close(g->lfd);
	free(g->order);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

#endif
