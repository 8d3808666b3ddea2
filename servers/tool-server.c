/* SPDX-License-Identifier: MIT */
/*
 * servers/tool-server.c: the tool server of the `agents` benchmark
 * step: a line protocol over TCP with keep-alive. A request is one line
 * ending in '\n' (at most 1 KiB with it); after --tool-ms it is answered
 * with "ok <the line without its newline>\n". The line "STATS" is
 * answered at once with one line of JSON counters, "RESET-STATS" zeroes
 * them and is answered "ok RESET-STATS" at once.
 *
 * Plain epoll (edge-triggered) and a timer min-heap, not myriad: like the
 * LLM server it is the fixed ground every runtime under comparison is
 * measured against, so it must not share the scheduler being measured.
 * Optionally N threads (--threads), each its own loop on an SO_REUSEPORT
 * listener. Only libc: cc -O2 -o tool-server tool-server.c srv.c
 * After listening it prints "PORT <n>" on stdout.
 */
#include "srv.h"

#include <stdatomic.h>
#include <stddef.h>

#define PROG "tool-server"
#define LINE_MAX_BYTES 1024
#define OBUF_BYTES (LINE_MAX_BYTES + 512)

static struct {
	int port;
	const char *bind;
	long max_conns;
	uint64_t tool_ns;
	int threads;
} O = {
	.bind = "127.0.0.1",
	.tool_ns = 2000000,
	.threads = 1,
};

/* Counters shared by the threads (relaxed: they are statistics). */
#define STAT_FIELDS(X)               \
	X(requests)                  \
	X(completed)                 \
	X(in_service_max)            \
	X(client_closed_mid_request) \
	X(connections_accepted)      \
	X(bad_requests)

static struct {
#define X(f) _Atomic uint64_t f;
	STAT_FIELDS(X)
#undef X
	_Atomic long in_service;
	_Atomic long open;
} S;

#define INC(f) atomic_fetch_add_explicit(&S.f, 1, memory_order_relaxed)
#define GET(f) atomic_load_explicit(&S.f, memory_order_relaxed)

enum {
	T_READ,	  /* reading a line */
	T_WAIT,	  /* the line waits tool_ms; timer armed */
	T_WRITE,  /* the answer is being written */
	T_LINGER, /* our side shut: discard input until EOF or the timer */
};

struct loop;

struct tconn {
	struct srv_conn s; /* first: the loop hands back &c->s */
	struct loop *L;
	uint8_t state, close_after, counted;
	size_t rlen;   /* bytes buffered */
	uint16_t line; /* the line's length with '\n' */
	uint16_t olen, ooff;
	char rbuf[LINE_MAX_BYTES];
	char obuf[OBUF_BYTES];
};

struct loop {
	struct srv_loop loop; /* first: srv_loop hands back &L->loop */
	long open;
};

/* No more connections now: --max-conns are open, over all threads. */
static int conns_full(struct srv_loop *l)
{
	return O.max_conns &&
	       atomic_load_explicit(&S.open, memory_order_relaxed) >=
		       O.max_conns;
}

static void conn_free(struct tconn *c, int by_client)
{
	struct loop *L = c->L;

	if (c->state == T_WAIT)
		atomic_fetch_sub_explicit(&S.in_service, 1,
					  memory_order_relaxed);
	if (by_client && c->state != T_READ && c->state != T_LINGER)
		INC(client_closed_mid_request);
	srv_timer_del(&L->loop.heap, &c->s.tm);
	close(c->s.fd);
	free(c);
	atomic_fetch_sub_explicit(&S.open, 1, memory_order_relaxed);
	L->open--;
	srv_accept_resume(&L->loop);
}

/* Returns -1 if c was freed. */
static int conn_read(struct tconn *c)
{
	switch (srv_recv(&c->s, c->rbuf, &c->rlen, sizeof(c->rbuf),
			 c->state == T_LINGER)) {
	case SRV_RECV_AGAIN:
		return 0;
	case SRV_RECV_FULL: /* a line at a time: read on when used */
		c->s.rpaused = 1;
		return 0;
	}
	conn_free(c, 1);
	return -1;
}

static int conn_flush(struct tconn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = send(c->s.fd, c->obuf + c->ooff,
				 (size_t)(c->olen - c->ooff), 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			conn_free(c, 1);
			return -1;
		}
		c->ooff += (uint16_t)n;
	}
	c->ooff = c->olen = 0;
	return 0;
}

static void put(struct tconn *c, const char *p, size_t n)
{
	memcpy(c->obuf + c->olen, p, n);
	c->olen += (uint16_t)n;
}

/* The line as sent, without '\n' (and without a '\r' before it). */
static int line_is(const struct tconn *c, const char *w)
{
	size_t n = strlen(w), l = c->line - 1u;

	if (l && c->rbuf[l - 1] == '\r')
		l--;
	return l == n && !memcmp(c->rbuf, w, n);
}

static void consume_line(struct tconn *c)
{
	c->rlen -= c->line;
	memmove(c->rbuf, c->rbuf + c->line, c->rlen);
	c->line = 0;
}

static void put_stat(struct tconn *c, const char *k, uint64_t v)
{
	c->olen +=
		(uint16_t)snprintf(c->obuf + c->olen, sizeof(c->obuf) - c->olen,
				   "\"%s\":%" PRIu64 ",", k, v);
}

/* One line of JSON, about 250 bytes: obuf holds it. */
static void reply_stats(struct tconn *c)
{
	put(c, "{", 1);
#define X(f) put_stat(c, #f, GET(f));
	STAT_FIELDS(X)
#undef X
	put_stat(c, "open_connections", (uint64_t)GET(open));
	put_stat(c, "in_service", (uint64_t)GET(in_service));
	put_stat(c, "threads", (uint64_t)O.threads);
	c->olen +=
		(uint16_t)snprintf(c->obuf + c->olen, sizeof(c->obuf) - c->olen,
				   "\"tool_ms\":%.3f}\n", O.tool_ns / 1e6);
}

/* 1: a request was taken (state changed); 0: need more bytes. */
static int parse_one(struct tconn *c)
{
	struct loop *L = c->L;
	char *nl = memchr(c->rbuf, '\n', c->rlen);
	long now_in;

	if (!nl) {
		if (c->rlen == sizeof(c->rbuf)) {
			static const char e[] = "err line too long\n";

			INC(bad_requests);
			put(c, e, sizeof(e) - 1);
			c->close_after = 1;
			c->state = T_WRITE;
			c->rlen = 0;
			return 1;
		}
		return 0;
	}
	c->line = (uint16_t)(nl - c->rbuf + 1);
	if (line_is(c, "STATS")) {
		reply_stats(c);
		consume_line(c);
		c->state = T_WRITE;
		return 1;
	}
	if (line_is(c, "RESET-STATS")) {
#define X(f) atomic_store_explicit(&S.f, 0, memory_order_relaxed);
		STAT_FIELDS(X)
#undef X
		atomic_store_explicit(&S.in_service_max,
				      (uint64_t)GET(in_service),
				      memory_order_relaxed);
		put(c, "ok RESET-STATS\n", 15);
		consume_line(c);
		c->state = T_WRITE;
		return 1;
	}
	INC(requests);
	now_in = atomic_fetch_add_explicit(&S.in_service, 1,
					   memory_order_relaxed) +
		 1;
	for (;;) {
		uint64_t m = GET(in_service_max);

		if ((uint64_t)now_in <= m ||
		    atomic_compare_exchange_weak_explicit(
			    &S.in_service_max, &m, (uint64_t)now_in,
			    memory_order_relaxed, memory_order_relaxed))
			break;
	}
	c->state = T_WAIT;
	srv_timer_set(&L->loop.heap, &c->s.tm, L->loop.now + O.tool_ns);
	return 1;
}

/*
 * Close our side (FIN) and discard what the client still sends until it
 * closes too, or a second passes: closing with unread input would send an
 * RST that can destroy the answer before the client reads it.
 */
static int conn_linger(struct tconn *c)
{
	c->state = T_LINGER;
	c->s.rpaused = 0;
	if (srv_linger(&c->L->loop, c->s.fd, &c->s.tm, 1000000000ull)) {
		conn_free(c, 0);
		return -1;
	}
	return conn_read(c);
}

/* Flush, finish an answer, take the next line. -1 if c was freed. */
static int conn_kick(struct tconn *c)
{
	for (;;) {
		if (c->ooff < c->olen) {
			if (conn_flush(c) < 0)
				return -1;
			if (c->ooff < c->olen)
				return 0;
		}
		if (c->state == T_WRITE) {
			if (c->counted)
				INC(completed);
			c->counted = 0;
			c->state = T_READ;
			if (c->close_after)
				return conn_linger(c);
			if (srv_resume(&c->L->loop, &c->s) < 0)
				return -1;
		}
		if (c->state != T_READ || !parse_one(c))
			return 0;
	}
}

static void on_timer(struct tconn *c)
{
	if (c->state == T_LINGER) {
		conn_free(c, 0);
		return;
	}
	put(c, "ok ", 3);
	put(c, c->rbuf, c->line); /* with its '\n' */
	consume_line(c);
	atomic_fetch_sub_explicit(&S.in_service, 1, memory_order_relaxed);
	c->counted = 1;
	c->state = T_WRITE;
	conn_kick(c);
}

/* A connection accepted on l: its record. */
static int conn_new(struct srv_loop *l, int fd)
{
	struct loop *L = (struct loop *)l;
	struct tconn *c = malloc(sizeof(*c));

	if (!c) {
		close(fd);
		return -1;
	}
	memset(c, 0, offsetof(struct tconn, rbuf));
	c->L = L;
	c->s.fd = fd;
	if (srv_conn_add(l, fd, c))
		return 0;
	INC(connections_accepted);
	atomic_fetch_add_explicit(&S.open, 1, memory_order_relaxed);
	L->open++;
	return 0;
}

/* The loop's operations on a connection (its record starts with s). */
static int loop_read(struct srv_conn *s)
{
	return conn_read((struct tconn *)s);
}

static void loop_kick(struct srv_conn *s)
{
	conn_kick((struct tconn *)s);
}

static void loop_timer(struct srv_conn *s)
{
	on_timer((struct tconn *)s);
}

static void *loop_run(void *arg)
{
	struct loop *L = arg;

	srv_run(&L->loop); /* returns on a signal, in the first loop */
	exit(0);	   /* every thread's sockets close */
}

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: " PROG " [options]\n"
		"  --port N        listen port, 0: ephemeral (default 0)\n"
		"  --bind ADDR     IPv4 address (default 127.0.0.1)\n"
		"  --tool-ms MS    delay before each answer (default 2)\n"
		"  --max-conns N   connections at once, 0: no limit\n"
		"  --threads N     event loops on SO_REUSEPORT listeners (default 1)\n"
		"Protocol: \"<line>\\n\" -> after tool-ms \"ok <line>\\n\"; \"STATS\\n\" -> "
		"one JSON line;\n\"RESET-STATS\\n\" -> \"ok RESET-STATS\\n\".\n"
		"Prints \"PORT <n>\" on stdout once listening.\n");
	exit(code);
}

int main(int argc, char **argv)
{
	struct loop *loops;
	int i, port, sfd;

	for (i = 1; i < argc; i++) {
		char *a = argv[i], *v = NULL, *eq;

		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage(0);
		eq = strncmp(a, "--", 2) ? NULL : strchr(a, '=');
		if (eq) {
			*eq = 0;
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		}
		if (!strcmp(a, "--port"))
			O.port = (int)srv_arg_int(PROG, a, v, 0, 65535);
		else if (!strcmp(a, "--bind"))
			O.bind = v;
		else if (!strcmp(a, "--tool-ms"))
			O.tool_ns = (uint64_t)(srv_arg_double(PROG, a, v, 0,
							      3.6e6) *
					       1e6);
		else if (!strcmp(a, "--max-conns"))
			O.max_conns = (long)srv_arg_int(PROG, a, v, 0, 1 << 30);
		else if (!strcmp(a, "--threads"))
			O.threads = (int)srv_arg_int(PROG, a, v, 1, 256);
		else {
			fprintf(stderr, PROG ": unknown option '%s'\n", a);
			usage(2);
		}
	}
	srv_raise_nofile();
	loops = calloc((size_t)O.threads, sizeof(*loops));
	if (!loops)
		srv_die(PROG, "calloc");
	sfd = srv_signals();
	if (sfd < 0)
		srv_die(PROG, "signalfd");
	port = O.port;
	for (i = 0; i < O.threads; i++) {
		struct srv_loop *l = &loops[i].loop;

		l->prog = PROG;
		l->full = conns_full;
		l->conn_new = conn_new;
		l->read = loop_read;
		l->kick = loop_kick;
		l->timer = loop_timer;
		/* The first listener picks the port (maybe ephemeral), the
		 * others join it; the first loop reads the signals. */
		srv_loop_open(l, O.bind, port, O.threads > 1, &port,
			      i ? -1 : sfd);
	}
	printf("PORT %d\n", port);
	fflush(stdout);
	for (i = 1; i < O.threads; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, loop_run, &loops[i]))
			srv_die(PROG, "pthread_create");
	}
	loop_run(&loops[0]);
	return 0;
}
