/* SPDX-License-Identifier: MIT */
/*
 * servers/loadgen.c: a closed-loop load generator for the mock
 * servers: C keep-alive connections, each with one request in flight, a
 * new one sent as soon as the answer is read; requests per second and
 * latency over a measured window after a warm-up. Plain epoll, like the
 * servers, so that it measures them and nothing else.
 *
 *   loadgen --port P [--mode chat|embed|stream|tool] [--conns C]
 *           [--duration S] [--warmup S] [--threads N] [--host A]
 *
 * Prints one line on stdout:
 *   RESULT loadgen mode=.. conns=.. threads=.. duration_s=.. requests=..
 *          req_per_s=.. p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. errors=..
 *          rejected_429=.. connect_s=..
 * Only libc: cc -O2 -o loadgen loadgen.c srv.c
 */
#include "srv.h"

#define PROG "loadgen"

enum mode { M_CHAT, M_EMBED, M_STREAM, M_TOOL };

static struct {
	const char *host;
	int port;
	int mode;
	long conns;
	double duration, warmup;
	int threads;
} O = {
	.host = "127.0.0.1",
	.conns = 1000,
	.duration = 5,
	.warmup = 1,
	.threads = 1,
};

static const char *const mode_name[] = { "chat", "embed", "stream", "tool" };
static char req[1024];
static size_t req_len;

enum { G_CONNECTING, G_BUSY };

struct gconn {
	int fd;
	int state;
	uint64_t sent;
	size_t soff; /* bytes of the request sent */
	char *buf;
	size_t len, cap;
};

struct gthread {
	pthread_t tid;
	long first, n;
	struct gconn *c;
	int ep;
	uint64_t t_start, t_end; /* the measured window */
	uint64_t done, errors, r429, connected;
	uint32_t *lat; /* us */
	size_t nlat, caplat;
	uint64_t t_connected;
};

static uint64_t t0;

static void g_connect(struct gthread *T, struct gconn *c)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct epoll_event ev;
	int one = 1;

	a.sin_port = htons((uint16_t)O.port);
	inet_pton(AF_INET, O.host, &a.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		srv_die(PROG, "socket");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) &&
	    errno != EINPROGRESS)
		srv_die(PROG, "connect");
	c->state = G_CONNECTING;
	c->len = 0;
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = c;
	if (epoll_ctl(T->ep, EPOLL_CTL_ADD, c->fd, &ev))
		srv_die(PROG, "epoll_ctl");
}

static void g_send(struct gconn *c, uint64_t now)
{
	ssize_t n;

	if (!c->soff)
		c->sent = now;
	while (c->soff < req_len) {
		n = send(c->fd, req + c->soff, req_len - c->soff, 0);
		if (n < 0)
			return; /* EAGAIN: on EPOLLOUT; errors: on read */
		c->soff += (size_t)n;
	}
}

/*
 * The length of the whole answer at the head of buf, 0 if incomplete;
 * *status is set. -1: not HTTP.
 */
static long http_answer(const char *b, size_t n, int *status)
{
	const char *he = memmem(b, n, "\r\n\r\n", 4), *p;
	size_t hl, cl = 0, off;

	if (!he)
		return 0;
	if (n < 12 || memcmp(b, "HTTP/1.", 7))
		return -1;
	*status = atoi(b + 9);
	hl = (size_t)(he + 4 - b);
	p = strcasestr(b, "\r\ncontent-length:");
	if (p && p < he) {
		cl = strtoul(p + 17, NULL, 10);
		return hl + cl <= n ? (long)(hl + cl) : 0;
	}
	p = strcasestr(b, "\r\ntransfer-encoding: chunked");
	if (!p || p > he)
		return -1;
	for (off = hl;;) {
		const char *e = memmem(b + off, n - off, "\r\n", 2);
		size_t sz;

		if (!e)
			return 0;
		sz = strtoul(b + off, NULL, 16);
		off = (size_t)(e + 2 - b) + sz + 2;
		if (off > n)
			return 0;
		if (!sz)
			return (long)off;
	}
}

static void record(struct gthread *T, struct gconn *c, uint64_t now, int ok,
		   int is429)
{
	if (now < T->t_start || now >= T->t_end)
		return;
	T->done++;
	if (!ok)
		T->errors++;
	if (is429)
		T->r429++;
	if (T->nlat == T->caplat) {
		T->caplat = T->caplat ? 2 * T->caplat : 65536;
		T->lat = srv_xrealloc(T->lat, T->caplat * sizeof(*T->lat));
	}
	T->lat[T->nlat++] = (uint32_t)((now - c->sent) / 1000);
}

/* Read, and account for each whole answer. -1: the connection failed. */
static int g_read(struct gthread *T, struct gconn *c, uint64_t now)
{
	for (;;) {
		ssize_t n;
		long al;
		int status = 0;

		if (c->cap - c->len < 4096) {
			c->cap = c->cap ? 2 * c->cap : 8192;
			c->buf = srv_xrealloc(c->buf, c->cap + 1);
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (n < 0)
			return 0;
		c->len += (size_t)n;
		c->buf[c->len] = 0;
		if (O.mode == M_TOOL) {
			char *nl = memchr(c->buf, '\n', c->len);

			if (!nl)
				continue;
			al = nl + 1 - c->buf;
			status = (size_t)al == req_len + 3 &&
						 !memcmp(c->buf, "ok ", 3) &&
						 !memcmp(c->buf + 3, req,
							 req_len)
					 ? 200
					 : 0;
		} else {
			al = http_answer(c->buf, c->len, &status);
			if (al < 0)
				return -1;
			if (!al)
				continue;
		}
		record(T, c, now, status == 200, status == 429);
		c->len -= (size_t)al;
		memmove(c->buf, c->buf + al, c->len);
		c->soff = 0;
		g_send(c, now);
	}
}

static void *g_run(void *arg)
{
	struct gthread *T = arg;
	struct epoll_event evs[512];
	long i;

	T->ep = epoll_create1(EPOLL_CLOEXEC);
	if (T->ep < 0)
		srv_die(PROG, "epoll_create1");
	for (i = 0; i < T->n; i++)
		g_connect(T, &T->c[i]);
	for (;;) {
		uint64_t now = srv_now_ns();
		int n, k;

		if (now >= T->t_end)
			break;
		n = epoll_wait(T->ep, evs, 512, 50);
		now = srv_now_ns();
		for (k = 0; k < n; k++) {
			struct gconn *c = evs[k].data.ptr;

			if (c->state == G_CONNECTING) {
				int err = 0;
				socklen_t el = sizeof(err);

				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err,
					   &el);
				if (err || !(evs[k].events & EPOLLOUT)) {
					close(c->fd);
					T->errors++;
					g_connect(T, c);
					continue;
				}
				c->state = G_BUSY;
				if (++T->connected == (uint64_t)T->n)
					T->t_connected = now;
				c->soff = 0;
				g_send(c, now);
				continue;
			}
			if (g_read(T, c, now) < 0) {
				close(c->fd);
				if (now >= T->t_start && now < T->t_end)
					T->errors++;
				g_connect(T, c);
				continue;
			}
			if (c->soff < req_len)
				g_send(c, now);
		}
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: " PROG " --port P [--mode chat|embed|stream|tool] "
		"[--conns C] [--duration S]\n"
		"               [--warmup S] [--threads N] [--host A]\n");
	exit(code);
}

int main(int argc, char **argv)
{
	struct gthread *T;
	uint32_t *all;
	size_t nall = 0, k;
	uint64_t done = 0, errors = 0, r429 = 0, tc = 0;
	int i;

	for (i = 1; i < argc; i++) {
		char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage(0);
		i++;
		if (!strcmp(a, "--port"))
			O.port = (int)srv_arg_int(PROG, a, v, 1, 65535);
		else if (!strcmp(a, "--host"))
			O.host = v;
		else if (!strcmp(a, "--conns"))
			O.conns = (long)srv_arg_int(PROG, a, v, 1, 1000000);
		else if (!strcmp(a, "--duration"))
			O.duration = srv_arg_double(PROG, a, v, 0.1, 3600);
		else if (!strcmp(a, "--warmup"))
			O.warmup = srv_arg_double(PROG, a, v, 0, 3600);
		else if (!strcmp(a, "--threads"))
			O.threads = (int)srv_arg_int(PROG, a, v, 1, 64);
		else if (!strcmp(a, "--mode")) {
			for (O.mode = 0; O.mode < 4; O.mode++)
				if (v && !strcmp(v, mode_name[O.mode]))
					break;
			if (O.mode == 4)
				usage(2);
		} else {
			fprintf(stderr, PROG ": unknown option '%s'\n", a);
			usage(2);
		}
	}
	if (!O.port)
		usage(2);
	if (O.mode == M_TOOL) {
		req_len = (size_t)snprintf(req, sizeof(req),
					   "search the web for myriad\n");
	} else {
		const char *path = O.mode == M_EMBED ? "/v1/embeddings"
						     : "/v1/chat/completions";
		const char *body =
			O.mode == M_EMBED
				? "{\"model\":\"mock\",\"input\":\"the agent's "
				  "observation\"}"
			: O.mode == M_STREAM
				? "{\"model\":\"mock\",\"stream\":true,"
				  "\"messages\":[{\"role\":\"user\",\"content\":"
				  "\"what next?\"}]}"
				: "{\"model\":\"mock\",\"messages\":[{\"role\":"
				  "\"user\",\"content\":\"what next?\"}]}";

		req_len = (size_t)snprintf(req, sizeof(req),
					   "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
					   "Content-Type: application/json\r\n"
					   "Content-Length: %zu\r\n\r\n%s",
					   path, O.host, O.port, strlen(body),
					   body);
	}
	signal(SIGPIPE, SIG_IGN);
	srv_raise_nofile();
	T = calloc((size_t)O.threads, sizeof(*T));
	t0 = srv_now_ns();
	for (i = 0; i < O.threads; i++) {
		T[i].first = O.conns * i / O.threads;
		T[i].n = O.conns * (i + 1) / O.threads - T[i].first;
		T[i].c = calloc((size_t)T[i].n, sizeof(struct gconn));
		T[i].t_start = t0 + (uint64_t)(O.warmup * 1e9);
		T[i].t_end = T[i].t_start + (uint64_t)(O.duration * 1e9);
		if (pthread_create(&T[i].tid, NULL, g_run, &T[i]))
			srv_die(PROG, "pthread_create");
	}
	for (i = 0; i < O.threads; i++) {
		pthread_join(T[i].tid, NULL);
		done += T[i].done;
		errors += T[i].errors;
		r429 += T[i].r429;
		nall += T[i].nlat;
		if (T[i].t_connected > tc)
			tc = T[i].t_connected;
		if (!T[i].t_connected)
			tc = UINT64_MAX;
	}
	all = malloc((nall + 1) * sizeof(*all));
	for (i = 0, k = 0; i < O.threads; i++) {
		memcpy(all + k, T[i].lat, T[i].nlat * sizeof(*all));
		k += T[i].nlat;
	}
	qsort(all, nall, sizeof(*all), cmp_u32);
#define PCT(p) (nall ? all[(size_t)((double)(nall - 1) * (p))] / 1000.0 : 0)
	printf("RESULT loadgen mode=%s conns=%ld threads=%d duration_s=%.2f "
	       "requests=%" PRIu64 " req_per_s=%.1f p50_ms=%.3f p90_ms=%.3f "
	       "p99_ms=%.3f max_ms=%.3f errors=%" PRIu64
	       " rejected_429=%" PRIu64 " connect_s=%.3f\n",
	       mode_name[O.mode], O.conns, O.threads, O.duration, done,
	       (double)done / O.duration, PCT(0.5), PCT(0.9), PCT(0.99),
	       PCT(1.0), errors, r429,
	       tc == UINT64_MAX ? -1.0 : (double)(tc - t0) / 1e9);
	return tc == UINT64_MAX ? 1 : 0;
}
