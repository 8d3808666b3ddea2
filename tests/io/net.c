/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net.c: sockets through the workers' rings, on 127.0.0.1: an
 * echo server (multishot accept, recv into provided buffers) and its
 * clients (connect, send, recv) in one runtime over thousands of
 * connections, every byte checked, operations batched (fewer io_enters
 * than io_ops); partial sends and small receives; a peer that
 * resets; a refused connect; a recv with a deadline; myriad_io_cancel; a
 * task deadline over a subtree; tasks that finish with a recv in flight;
 * destroy with operations in flight.
 *   net [--workers N]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "helpers.h"

static myriad_rt_t *rt;
static unsigned nworkers;

/* ---- sockets ---- */

/* A socket listening on 127.0.0.1 at an ephemeral port, or -errno. */
static int listen_any(struct sockaddr_in *addr, int backlog)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	REQUIRE(fd >= 0, "socket: %s", strerror(errno));
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(fd, (struct sockaddr *)addr, sizeof(*addr)) == 0,
		"bind: %s", strerror(errno));
	REQUIRE(backlog < 0 || listen(fd, backlog) == 0, "listen: %s",
		strerror(errno));
	REQUIRE(getsockname(fd, (struct sockaddr *)addr, &len) == 0,
		"getsockname: %s", strerror(errno));
	return fd;
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A connected TCP pair made with blocking calls: fds[0] the client. */
static void tcp_pair(int fds[2])
{
	struct sockaddr_in a;
	int lfd = listen_any(&a, 1);

	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fds[0] >= 0, "socket: %s", strerror(errno));
	REQUIRE(connect(fds[0], (struct sockaddr *)&a, sizeof(a)) == 0,
		"connect: %s", strerror(errno));
	fds[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	REQUIRE(fds[1] >= 0, "accept4: %s", strerror(errno));
	close(lfd);
	nodelay(fds[0]);
	nodelay(fds[1]);
}

/* recv(2) of what is there or arrives within 5 s: a count or -errno. */
static int recv_wait(int fd, void *buf, size_t len)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	ssize_t r;

	if (poll(&pf, 1, 5000 * T_SLOW) < 0)
		return -errno;
	r = recv(fd, buf, len, MSG_DONTWAIT);
	return r < 0 ? -errno : (int)r;
}

/* The byte at 'off' of stream 'id', round 'round'. */
static inline uint8_t pat(uint32_t id, uint32_t round, uint32_t off)
{
	uint32_t x =
		id * 2654435761u ^ (round + 1) * 40503u ^ off * 2246822519u;

	x ^= x >> 15;
	x *= 2246822519u;
	x ^= x >> 13;
	return (uint8_t)x;
}

/* Index of a counter by name, or -1 when the library has none. */
static int ctr_index(const char *name)
{
	unsigned i;
	const char *n;

	for (i = 0; i < MYRIAD_CTR__COUNT; i++) {
		n = myriad_counter_name(i);
		if (n && !strcmp(n, name))
			return (int)i;
	}
	return -1;
}

static int64_t ctr_sum(int idx)
{
	return idx < 0 ? -1 : t_counter_sum(rt, (enum myriad_counter)idx);
}

/* ---- echo: thousands of connections, both ends in this runtime ---- */

#define ECHO_ROUNDS 3
#define ECHO_MAX 6000

static _Atomic int64_t echo_accepted, echo_connected, echo_clients_done;
static _Atomic int64_t echo_bytes_sent, echo_bytes_echoed, echo_conns_done;
static _Atomic int64_t echo_clients_closed;
/* The acceptor: 0 accepting, 1 cancelled, 2 saw -ECANCELED, 3 joined. */
static _Atomic int echo_server_stage;

static int echo_len(int id, int round)
{
	return 1 + (int)(((uint32_t)id * 7919u + (uint32_t)round * 104729u) %
			 ECHO_MAX);
}

/* Server side of one connection: echo what comes until end of stream. */
struct echo_conn {
	MYRIAD_CORO_FIELD;
	myriad_io_t rop, sop, cop;
	int fd, n, off;
	const void *data;
};

static int echo_conn_step(myriad_task_t *self, void *p)
{
	struct echo_conn *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (;;) {
		MYRIAD_IO(st, rc,
			  myriad_io_recv_buf(self, &st->rop, st->fd, &st->data,
					     0));
		if (rc == 0)
			break;
		if (rc < 0) {
			t_failf(__FILE__, __LINE__,
				"server recv_buf: expected bytes or 0, "
				"got %d (%s)",
				rc, strerror(-rc));
			break;
		}
		CHECK(rc <= MYRIAD_IO_BUF_SIZE && st->data != NULL,
		      "recv_buf gave %d bytes at %p", rc, st->data);
		st->n = rc;
		for (st->off = 0; st->off < st->n; st->off += rc) {
			MYRIAD_IO(
				st, rc,
				myriad_io_send(self, &st->sop, st->fd,
					       (const char *)st->data + st->off,
					       (size_t)(st->n - st->off),
					       MSG_NOSIGNAL));
			if (rc <= 0) {
				t_failf(__FILE__, __LINE__,
					"server send: expected bytes, got %d",
					rc);
				goto out;
			}
			atomic_fetch_add(&echo_bytes_echoed, rc);
		}
		CHECK_EQ(myriad_io_buf_release(self, &st->rop), 0);
	}
out:
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->cop, st->fd));
	CHECK_ERR(rc, 0);
	atomic_fetch_add(&echo_conns_done, 1);
	MYRIAD_END(st);
}

/* The acceptor: one multishot accept for every connection. */
struct echo_server {
	MYRIAD_CORO_FIELD;
	myriad_io_t acc;
	int lfd, want, got;
};

static int echo_server_step(myriad_task_t *self, void *p)
{
	struct echo_server *st = p;
	struct echo_conn c;
	int rc, err = 0;

	MYRIAD_BEGIN(st);
	while (st->got < st->want) {
		MYRIAD_IO(st, rc,
			  myriad_io_accept(self, &st->acc, st->lfd,
					   SOCK_CLOEXEC));
		if (rc < 0) {
			t_failf(__FILE__, __LINE__,
				"accept: expected a descriptor after %d of "
				"%d, got %d (%s)",
				st->got, st->want, rc, strerror(-rc));
			break;
		}
		CHECK(fcntl(rc, F_GETFD) == FD_CLOEXEC,
		      "accepted fd %d without SOCK_CLOEXEC", rc);
		st->got++;
		atomic_fetch_add(&echo_accepted, 1);
		memset(&c, 0, sizeof(c));
		c.fd = rc;
		if (!myriad_task_spawn(self, echo_conn_step, &c, sizeof(c), 0,
				       &err)) {
			t_failf(__FILE__, __LINE__, "spawn: %d", err);
			close(rc);
		}
	}
	/* Every client is in: the cancelled accept has nothing queued. */
	CHECK_EQ(myriad_io_cancel(self, &st->acc), 0);
	atomic_store(&echo_server_stage, 1);
	MYRIAD_IO(st, rc,
		  myriad_io_accept(self, &st->acc, st->lfd, SOCK_CLOEXEC));
	CHECK_ERR(rc, -ECANCELED);
	atomic_store(&echo_server_stage, 2);
	MYRIAD_JOIN(st, self);
	atomic_store(&echo_server_stage, 3);
	MYRIAD_END(st);
}

struct echo_client {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	struct sockaddr_in addr;
	int fd, id, round, len, off;
	uint8_t buf[ECHO_MAX], rbuf[ECHO_MAX];
};

static int echo_client_step(myriad_task_t *self, void *p)
{
	struct echo_client *st = p;
	int rc, i;

	MYRIAD_BEGIN(st);
	st->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(st->fd >= 0, "socket: %s", strerror(errno));
	MYRIAD_IO(st, rc,
		  myriad_io_connect(self, &st->op, st->fd,
				    (struct sockaddr *)&st->addr,
				    sizeof(st->addr)));
	if (rc != 0) {
		CHECK_ERR(rc, 0);
		goto out;
	}
	atomic_fetch_add(&echo_connected, 1);
	for (st->round = 0; st->round < ECHO_ROUNDS; st->round++) {
		st->len = echo_len(st->id, st->round);
		for (i = 0; i < st->len; i++)
			st->buf[i] = pat((uint32_t)st->id, (uint32_t)st->round,
					 (uint32_t)i);
		for (st->off = 0; st->off < st->len; st->off += rc) {
			MYRIAD_IO(st, rc,
				  myriad_io_send(self, &st->op, st->fd,
						 st->buf + st->off,
						 (size_t)(st->len - st->off),
						 MSG_NOSIGNAL));
			if (rc <= 0) {
				t_failf(__FILE__, __LINE__,
					"client %d send: got %d (%s)", st->id,
					rc, rc < 0 ? strerror(-rc) : "");
				goto out;
			}
			atomic_fetch_add(&echo_bytes_sent, rc);
		}
		for (st->off = 0; st->off < st->len; st->off += rc) {
			MYRIAD_IO(st, rc,
				  myriad_io_recv(self, &st->op, st->fd,
						 st->rbuf + st->off,
						 (size_t)(st->len - st->off),
						 0));
			if (rc <= 0) {
				t_failf(__FILE__, __LINE__,
					"client %d recv at %d of %d: got %d "
					"(%s)",
					st->id, st->off, st->len, rc,
					rc < 0 ? strerror(-rc) : "end");
				goto out;
			}
		}
		for (i = 0; i < st->len; i++)
			if (st->rbuf[i] != st->buf[i])
				break;
		CHECK(i == st->len,
		      "client %d round %d: echoed byte %d of %d is %u, "
		      "sent %u",
		      st->id, st->round, i, st->len, st->rbuf[i], st->buf[i]);
	}
	/* Half-close: the server sees the end, closes, and so do we. */
	CHECK_EQ(shutdown(st->fd, SHUT_WR), 0);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->rbuf, 1, 0));
	CHECK_ERR(rc, 0);
	atomic_fetch_add(&echo_clients_done, 1);
out:
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	CHECK_ERR(rc, 0);
	atomic_fetch_add(&echo_clients_closed, 1);
	MYRIAD_END(st);
}

struct echo_root {
	MYRIAD_CORO_FIELD;
	struct sockaddr_in addr;
	int lfd, n;
};

static int echo_root_step(myriad_task_t *self, void *p)
{
	struct echo_root *st = p;
	struct echo_server sv;
	struct echo_client *c;
	int i, err = 0;

	MYRIAD_BEGIN(st);
	memset(&sv, 0, sizeof(sv));
	sv.lfd = st->lfd;
	sv.want = st->n;
	REQUIRE(myriad_task_spawn(self, echo_server_step, &sv, sizeof(sv), 0,
				  &err),
		"spawn server: %d", err);
	c = calloc(1, sizeof(*c));
	REQUIRE(c, "calloc");
	c->addr = st->addr;
	for (i = 0; i < st->n; i++) {
		c->id = i;
		REQUIRE(myriad_task_spawn(self, echo_client_step, c, sizeof(*c),
					  0, &err),
			"spawn client %d: %d", i, err);
	}
	free(c);
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static void echo_dump(void)
{
	fprintf(stderr,
		"  accepted %lld, connected %lld, clients done %lld, "
		"server conns done %lld, bytes sent %lld, echoed %lld, "
		"clients closed %lld, acceptor stage %d, tasks live %lld\n",
		(long long)atomic_load(&echo_accepted),
		(long long)atomic_load(&echo_connected),
		(long long)atomic_load(&echo_clients_done),
		(long long)atomic_load(&echo_conns_done),
		(long long)atomic_load(&echo_bytes_sent),
		(long long)atomic_load(&echo_bytes_echoed),
		(long long)atomic_load(&echo_clients_closed),
		atomic_load(&echo_server_stage),
		(long long)myriad_rt_tasks_live(rt));
}

/* Connections that the descriptor limit allows (two per connection). */
static int conn_budget(int want)
{
	struct rlimit rl;
	int can;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)1 << 30)
		return want;
	can = ((int)rl.rlim_cur - 256) / 2;
	if (can < want) {
		printf("net: RLIMIT_NOFILE %llu: %d connections, not %d\n",
		       (unsigned long long)rl.rlim_cur, can, want);
		want = can;
	}
	return want;
}

static void test_echo(void)
{
	struct echo_root r;
	int64_t want_bytes = 0, enters0, ops0, enters, ops;
	int ienters = ctr_index("io_enters"), iops = ctr_index("io_ops");
	int i, k;

	t_phase("echo");
	memset(&r, 0, sizeof(r));
	r.n = conn_budget((int)t_scaled_min(2000, 50));
	REQUIRE(r.n >= 10, "too few descriptors for the echo test");
	r.lfd = listen_any(&r.addr, 4096);
	for (i = 0; i < r.n; i++)
		for (k = 0; k < ECHO_ROUNDS; k++)
			want_bytes += echo_len(i, k);
	t_watchdog_dump = echo_dump;
	enters0 = ctr_sum(ienters);
	ops0 = ctr_sum(iops);
	CHECK_EQ(t_run(rt, echo_root_step, &r, sizeof(r), NULL, "echo"), 0);
	enters = ctr_sum(ienters) - enters0;
	ops = ctr_sum(iops) - ops0;
	t_watchdog_dump = NULL;
	close(r.lfd);

	CHECK_EQ(atomic_load(&echo_accepted), r.n);
	CHECK_EQ(atomic_load(&echo_connected), r.n);
	CHECK_EQ(atomic_load(&echo_clients_done), r.n);
	CHECK_EQ(atomic_load(&echo_conns_done), r.n);
	CHECK_EQ(atomic_load(&echo_clients_closed), r.n);
	CHECK_EQ(atomic_load(&echo_server_stage), 3);
	CHECK_EQ(atomic_load(&echo_bytes_sent), want_bytes);
	CHECK_EQ(atomic_load(&echo_bytes_echoed), want_bytes);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
	if (ienters < 0 || iops < 0) {
		printf("net: no io_enters/io_ops counters: batching not "
		       "checked\n");
	} else if (enters0 >= 0) {
		printf("net: echo of %d connections: %lld io_enters for %lld "
		       "io_ops\n",
		       r.n, (long long)enters, (long long)ops);
		/* Every connection ran several operations. */
		CHECK(ops >= (int64_t)r.n * (2 * ECHO_ROUNDS + 4),
		      "io_ops %lld for %d connections", (long long)ops, r.n);
		CHECK(enters < ops,
		      "no batching: %lld io_enters for %lld io_ops",
		      (long long)enters, (long long)ops);
	}
}

/* ---- partial sends, small receives ---- */

#define BIG_LEN (1u << 20)
#define BACK_LEN (64u << 10)

static uint8_t *big;
static _Atomic int64_t partial_sends, big_sends;

/* Sends 1 MiB in as few calls as the kernel takes, then reads the reply
 * 13 bytes at a time. */
struct big_client {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd;
	uint32_t off, got;
	uint8_t small[13];
};

static int big_client_step(myriad_task_t *self, void *p)
{
	struct big_client *st = p;
	int rc, i;

	MYRIAD_BEGIN(st);
	for (st->off = 0; st->off < BIG_LEN; st->off += (uint32_t)rc) {
		MYRIAD_IO(st, rc,
			  myriad_io_send(self, &st->op, st->fd, big + st->off,
					 BIG_LEN - st->off, MSG_NOSIGNAL));
		if (rc <= 0) {
			t_failf(__FILE__, __LINE__,
				"big send at %u: got %d (%s)", st->off, rc,
				rc < 0 ? strerror(-rc) : "");
			goto out;
		}
		CHECK(rc <= (int)(BIG_LEN - st->off), "sent %d of %u", rc,
		      BIG_LEN - st->off);
		atomic_fetch_add(&big_sends, 1);
		if ((uint32_t)rc < BIG_LEN - st->off)
			atomic_fetch_add(&partial_sends, 1);
	}
	CHECK_EQ(shutdown(st->fd, SHUT_WR), 0);
	for (st->got = 0;; st->got += (uint32_t)rc) {
		MYRIAD_IO(st, rc,
			  myriad_io_recv(self, &st->op, st->fd, st->small,
					 sizeof(st->small), 0));
		if (rc <= 0) {
			CHECK_ERR(rc, 0);
			break;
		}
		CHECK(rc <= (int)sizeof(st->small), "recv of 13 gave %d", rc);
		for (i = 0; i < rc; i++)
			if (st->small[i] != pat(2, 0, st->got + (uint32_t)i))
				break;
		CHECK(i == rc, "reply byte %u wrong", st->got + (uint32_t)i);
	}
	CHECK_EQ(st->got, BACK_LEN);
out:;
	MYRIAD_END(st);
}

/* Reads in pieces of 1 to 1500 bytes, checking each, then replies. */
struct big_server {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd;
	uint32_t got, off, piece, nrecv;
	uint8_t buf[1500];
	uint8_t *back;
};

static int big_server_step(myriad_task_t *self, void *p)
{
	struct big_server *st = p;
	int rc, i;

	MYRIAD_BEGIN(st);
	for (st->got = 0;; st->got += (uint32_t)rc) {
		st->piece = 1 + (st->nrecv * 337u) % sizeof(st->buf);
		st->nrecv++;
		MYRIAD_IO(st, rc,
			  myriad_io_recv(self, &st->op, st->fd, st->buf,
					 st->piece, 0));
		if (rc <= 0) {
			CHECK_ERR(rc, 0);
			break;
		}
		CHECK(rc <= (int)st->piece, "recv of %u gave %d", st->piece,
		      rc);
		for (i = 0; i < rc; i++)
			if (st->buf[i] != big[st->got + (uint32_t)i])
				break;
		if (i < rc) {
			t_failf(__FILE__, __LINE__,
				"received byte %u is %u, sent %u",
				st->got + (uint32_t)i, st->buf[i],
				big[st->got + (uint32_t)i]);
			break;
		}
	}
	CHECK_EQ(st->got, BIG_LEN);
	CHECK(st->nrecv > BIG_LEN / 1500, "%u recvs", st->nrecv);
	st->back = malloc(BACK_LEN);
	REQUIRE(st->back, "malloc");
	for (i = 0; i < (int)BACK_LEN; i++)
		st->back[i] = pat(2, 0, (uint32_t)i);
	for (st->off = 0; st->off < BACK_LEN; st->off += (uint32_t)rc) {
		MYRIAD_IO(st, rc,
			  myriad_io_send(self, &st->op, st->fd,
					 st->back + st->off, BACK_LEN - st->off,
					 MSG_NOSIGNAL));
		if (rc <= 0) {
			CHECK(rc > 0, "reply send: %d", rc);
			break;
		}
	}
	free(st->back);
	CHECK_EQ(shutdown(st->fd, SHUT_WR), 0);
	MYRIAD_END(st);
}

struct big_root {
	MYRIAD_CORO_FIELD;
	int fds[2];
};

static int big_root_step(myriad_task_t *self, void *p)
{
	struct big_root *st = p;
	struct big_client c;
	struct big_server s;

	MYRIAD_BEGIN(st);
	memset(&c, 0, sizeof(c));
	memset(&s, 0, sizeof(s));
	c.fd = st->fds[0];
	s.fd = st->fds[1];
	REQUIRE(myriad_task_spawn(self, big_server_step, &s, sizeof(s), 0,
				  NULL),
		"spawn");
	REQUIRE(myriad_task_spawn(self, big_client_step, &c, sizeof(c), 0,
				  NULL),
		"spawn");
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static void test_partial(void)
{
	struct big_root r;
	int sndbuf = 16384;
	uint32_t i;

	t_phase("partial sends and receives");
	big = malloc(BIG_LEN);
	REQUIRE(big, "malloc");
	for (i = 0; i < BIG_LEN; i++)
		big[i] = pat(1, 0, i);
	memset(&r, 0, sizeof(r));
	tcp_pair(r.fds);
	/* A small send buffer: the kernel takes 1 MiB in pieces. */
	setsockopt(r.fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	CHECK_EQ(t_run(rt, big_root_step, &r, sizeof(r), NULL, "partial"), 0);
	printf("net: 1 MiB sent in %lld sends (%lld partial)\n",
	       (long long)atomic_load(&big_sends),
	       (long long)atomic_load(&partial_sends));
	CHECK(atomic_load(&big_sends) >= 1, "no send");
	close(r.fds[0]);
	close(r.fds[1]);
	free(big);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

/* ---- errors: a peer that resets, a refused connect ---- */

#define NRESET 16

static _Atomic int64_t reset_seen, eof_seen;

struct resetter {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	int fd, delay_ms;
};

static void close_with_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	CHECK_EQ(close(fd), 0);
}

static int resetter_step(myriad_task_t *self, void *p)
{
	struct resetter *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	MYRIAD_SLEEP(st, self, &st->tm, (uint64_t)st->delay_ms * 1000000u, rc);
	CHECK_EQ(rc, 0);
	close_with_reset(st->fd);
	MYRIAD_END(st);
}

struct reset_victim {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd, peer, i;
	char buf[16];
};

static int reset_victim_step(myriad_task_t *self, void *p)
{
	struct reset_victim *st = p;
	struct resetter r;
	int rc;

	MYRIAD_BEGIN(st);
	if (st->i % 2) {
		/* The reset comes while the recv is in the kernel. */
		memset(&r, 0, sizeof(r));
		r.fd = st->peer;
		r.delay_ms = 20;
		REQUIRE(myriad_task_spawn(self, resetter_step, &r, sizeof(r), 0,
					  NULL),
			"spawn");
	} else {
		/* The reset is there before the recv is submitted. */
		close_with_reset(st->peer);
	}
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK(rc == -ECONNRESET || rc == 0,
	      "recv from a peer that reset: expected -ECONNRESET or 0, "
	      "got %d (%s)",
	      rc, rc < 0 ? strerror(-rc) : "bytes");
	if (rc == 0)
		atomic_fetch_add(&eof_seen, 1);
	else if (rc == -ECONNRESET)
		atomic_fetch_add(&reset_seen, 1);
	MYRIAD_JOIN(st, self);
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	CHECK_ERR(rc, 0);
	MYRIAD_END(st);
}

struct refused {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	struct sockaddr_in addr;
	int fd;
};

static int refused_step(myriad_task_t *self, void *p)
{
	struct refused *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	st->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(st->fd >= 0, "socket");
	MYRIAD_IO(st, rc,
		  myriad_io_connect(self, &st->op, st->fd,
				    (struct sockaddr *)&st->addr,
				    sizeof(st->addr)));
	CHECK_ERR(rc, -ECONNREFUSED);
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	CHECK_ERR(rc, 0);
	MYRIAD_END(st);
}

static void test_errors(void)
{
	struct reset_victim v[NRESET];
	myriad_handle_t *h[NRESET];
	struct refused rf;
	int fds[2], i, bound;

	t_phase("peer reset");
	for (i = 0; i < NRESET; i++) {
		memset(&v[i], 0, sizeof(v[i]));
		tcp_pair(fds);
		v[i].fd = fds[0];
		v[i].peer = fds[1];
		v[i].i = i;
		REQUIRE(myriad_rt_spawn(rt, reset_victim_step, &v[i],
					sizeof(v[i]), &h[i]) == 0,
			"spawn");
	}
	for (i = 0; i < NRESET; i++) {
		CHECK_EQ(t_join(h[i], NULL, "reset victim"), 0);
		CHECK_EQ(myriad_handle_release(h[i]), 0);
	}
	CHECK_EQ(atomic_load(&reset_seen) + atomic_load(&eof_seen), NRESET);
	printf("net: reset peers: %lld -ECONNRESET, %lld end of stream\n",
	       (long long)atomic_load(&reset_seen),
	       (long long)atomic_load(&eof_seen));

	t_phase("connect refused");
	/* Bound and not listening: the port is ours and refuses. */
	memset(&rf, 0, sizeof(rf));
	bound = listen_any(&rf.addr, -1);
	CHECK_EQ(t_run(rt, refused_step, &rf, sizeof(rf), NULL, "refused"), 0);
	close(bound);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

/* ---- a recv with a deadline; myriad_io_cancel ---- */

#define DL_NS 50000000ull /* 50 ms */

struct dl_task {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	myriad_timer_t tm;
	int fd, peer;
	uint64_t dl, t0;
	char buf[16];
};

static int dl_step(myriad_task_t *self, void *p)
{
	struct dl_task *st = p;
	int64_t late;
	int rc;

	MYRIAD_BEGIN(st);
	/* 1. Nothing comes: -ETIME, not early, not very late. */
	st->dl = myriad_now_ns() + DL_NS;
	CHECK_EQ(myriad_io_deadline(&st->op, st->dl), 0);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	late = (int64_t)(myriad_now_ns() - st->dl);
	CHECK(late > -1000000, "a recv deadline fired %lld us early",
	      (long long)-late / 1000);
	CHECK(late < (int64_t)2000000000 * T_SLOW,
	      "a recv deadline fired %lld ms late", (long long)late / 1000000);
	/* The deadline is not the task's: it is not cancelled. */
	CHECK(!myriad_task_cancelled(self), "cancelled by an op deadline");
	CHECK_EQ(myriad_task_cancel_reason(self), 0);

	/* 2. Data before a far deadline: the data. */
	st->t0 = myriad_now_ns();
	CHECK_EQ(myriad_io_deadline(&st->op, st->t0 + 10000000000ull), 0);
	rc = myriad_io_recv(self, &st->op, st->fd, st->buf, sizeof(st->buf), 0);
	CHECK_ERR(rc, -EAGAIN);
	/* In flight: the deadline cannot change. */
	CHECK_ERR(myriad_io_deadline(&st->op, st->t0 + 1), -EBUSY);
	CHECK_EQ(send(st->peer, "hello", 5, MSG_NOSIGNAL), 5);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_EQ(rc, 5);
	CHECK(rc == 5 && !memcmp(st->buf, "hello", 5), "got '%.*s'",
	      rc > 0 ? rc : 0, st->buf);
	CHECK(myriad_now_ns() - st->t0 < 5000000000ull,
	      "data waited for the deadline");

	/* 3. The deadline was cleared: a recv without one outlives 50 ms. */
	rc = myriad_io_recv(self, &st->op, st->fd, st->buf, sizeof(st->buf), 0);
	CHECK_ERR(rc, -EAGAIN);
	MYRIAD_SLEEP(st, self, &st->tm, 2 * DL_NS, rc);
	CHECK_EQ(rc, 0);
	CHECK_EQ(send(st->peer, "later", 5, MSG_NOSIGNAL), 5);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_EQ(rc, 5);
	CHECK(rc == 5 && !memcmp(st->buf, "later", 5), "got '%.*s'",
	      rc > 0 ? rc : 0, st->buf);
	MYRIAD_END(st);
}

struct cancel_task {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd, peer, i;
	char buf[16];
};

static int cancel_step(myriad_task_t *self, void *p)
{
	struct cancel_task *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	/* Nothing in flight: a no-op. */
	CHECK_EQ(myriad_io_cancel(self, &st->op), 0);
	CHECK_ERR(myriad_io_cancel(self, NULL), -EINVAL);

	/* 1. Cancelled in the step that queued it. */
	rc = myriad_io_recv(self, &st->op, st->fd, st->buf, sizeof(st->buf), 0);
	CHECK_ERR(rc, -EAGAIN);
	CHECK_EQ(myriad_io_cancel(self, &st->op), 0);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ECANCELED);

	/* 2. Cancelled some steps later, surely in the kernel. */
	rc = myriad_io_recv(self, &st->op, st->fd, st->buf, sizeof(st->buf), 0);
	CHECK_ERR(rc, -EAGAIN);
	for (st->i = 0; st->i < 5; st->i++) {
		MYRIAD_YIELD(st);
		/* In flight: another call says so and changes nothing. */
		rc = myriad_io_recv(self, &st->op, st->fd, NULL, 0, 0);
		CHECK_ERR(rc, -EAGAIN);
	}
	CHECK_EQ(myriad_io_cancel(self, &st->op), 0);
	CHECK_EQ(myriad_io_cancel(self, &st->op), 0);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ECANCELED);

	/* 3. The cancelled recvs took nothing: the next gets the data. */
	CHECK_EQ(send(st->peer, "abc", 3, MSG_NOSIGNAL), 3);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_EQ(rc, 3);
	CHECK(rc == 3 && !memcmp(st->buf, "abc", 3), "got '%.*s'",
	      rc > 0 ? rc : 0, st->buf);
	MYRIAD_END(st);
}

static void test_deadline_cancel(void)
{
	struct dl_task d;
	struct cancel_task c;
	int fds[2];

	t_phase("recv with a deadline");
	memset(&d, 0, sizeof(d));
	tcp_pair(fds);
	d.fd = fds[0];
	d.peer = fds[1];
	CHECK_EQ(t_run(rt, dl_step, &d, sizeof(d), NULL, "deadline"), 0);
	close(fds[0]);
	close(fds[1]);

	t_phase("myriad_io_cancel");
	memset(&c, 0, sizeof(c));
	tcp_pair(fds);
	c.fd = fds[0];
	c.peer = fds[1];
	CHECK_EQ(t_run(rt, cancel_step, &c, sizeof(c), NULL, "cancel"), 0);
	close(fds[0]);
	close(fds[1]);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

/* ---- a task deadline cancels a subtree's operations ---- */

static _Atomic int tdl_etime;

struct tdl_grandchild {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd;
	char buf[8];
};

static int tdl_grandchild_step(myriad_task_t *self, void *p)
{
	struct tdl_grandchild *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	CHECK_ERR(myriad_task_cancel_reason(self), -ETIME);
	if (rc == -ETIME)
		atomic_fetch_add(&tdl_etime, 1);
	MYRIAD_END(st);
}

struct tdl_child {
	MYRIAD_CORO_FIELD;
	myriad_io_t dl, op;
	int fd, fd2;
	uint64_t deadline;
	myriad_task_t *gc;
	char buf[8];
};

static int tdl_child_step(myriad_task_t *self, void *p)
{
	struct tdl_child *st = p;
	struct tdl_grandchild g;
	int64_t late;
	int rc;

	MYRIAD_BEGIN(st);
	CHECK_EQ(myriad_task_cancel_reason(self), 0);
	/* Set far, then moved nearer: the second setting counts. */
	CHECK_EQ(myriad_task_deadline(self, &st->dl,
				      myriad_now_ns() + 3600000000000ull),
		 0);
	st->deadline = myriad_now_ns() + DL_NS;
	CHECK_EQ(myriad_task_deadline(self, &st->dl, st->deadline), 0);
	memset(&g, 0, sizeof(g));
	g.fd = st->fd2;
	st->gc = myriad_task_spawn(self, tdl_grandchild_step, &g, sizeof(g), 0,
				   NULL);
	REQUIRE(st->gc, "spawn");
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	late = (int64_t)(myriad_now_ns() - st->deadline);
	CHECK(late > -1000000, "a task deadline fired %lld us early",
	      (long long)-late / 1000);
	CHECK(late < (int64_t)2000000000 * T_SLOW,
	      "a task deadline fired %lld ms late", (long long)late / 1000000);
	CHECK(myriad_task_cancelled(self), "not cancelled after its deadline");
	CHECK_ERR(myriad_task_cancel_reason(self), -ETIME);
	if (rc == -ETIME)
		atomic_fetch_add(&tdl_etime, 1);
	/* New operations fail at once with the same reason. */
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	MYRIAD_JOIN(st, self);
	/* An ancestor's deadline: -ETIME too. */
	CHECK_ERR(myriad_task_status(st->gc), -ETIME);
	MYRIAD_END(st);
}

/*
 * A deadline already passed ('back' ns ago, 1 ns or 10 ms): -ETIME and
 * cancelled at once (io.h), whatever the timer's resolution.
 */
struct tdl_past {
	MYRIAD_CORO_FIELD;
	myriad_io_t dl, op;
	int fd;
	uint64_t back;
	char buf[8];
};

static int tdl_past_step(myriad_task_t *self, void *p)
{
	struct tdl_past *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	rc = myriad_task_deadline(self, &st->dl, myriad_now_ns() - st->back);
	CHECK(rc == -ETIME,
	      "a deadline %llu ns in the past: expected -ETIME, got %d",
	      (unsigned long long)st->back, rc);
	CHECK(myriad_task_cancelled(self),
	      "a deadline %llu ns in the past: not cancelled",
	      (unsigned long long)st->back);
	CHECK_ERR(myriad_task_cancel_reason(self), -ETIME);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	MYRIAD_END(st);
}

struct tdl_parent {
	MYRIAD_CORO_FIELD;
	int fd, fd2;
	myriad_task_t *c, *past[2];
};

static int tdl_parent_step(myriad_task_t *self, void *p)
{
	struct tdl_parent *st = p;
	struct tdl_child c;
	struct tdl_past pt;

	MYRIAD_BEGIN(st);
	memset(&c, 0, sizeof(c));
	c.fd = st->fd;
	c.fd2 = st->fd2;
	st->c = myriad_task_spawn(self, tdl_child_step, &c, sizeof(c), 0, NULL);
	memset(&pt, 0, sizeof(pt));
	pt.fd = st->fd;
	pt.back = 10000000;
	st->past[0] = myriad_task_spawn(self, tdl_past_step, &pt, sizeof(pt), 0,
					NULL);
	pt.back = 1;
	st->past[1] = myriad_task_spawn(self, tdl_past_step, &pt, sizeof(pt), 0,
					NULL);
	REQUIRE(st->c && st->past[0] && st->past[1], "spawn");
	MYRIAD_JOIN(st, self);
	/* Cancelled by their own deadlines: -ETIME (task.h). */
	CHECK_ERR(myriad_task_status(st->c), -ETIME);
	CHECK_ERR(myriad_task_status(st->past[0]), -ETIME);
	CHECK_ERR(myriad_task_status(st->past[1]), -ETIME);
	CHECK(!myriad_task_cancelled(self), "a child's deadline cancelled "
					    "its parent");
	CHECK_EQ(myriad_task_cancel_reason(self), 0);
	MYRIAD_END(st);
}

/*
 * A root task's deadline: its handle's join says it was cancelled
 * (rt.h: -ECANCELED, "finished after being cancelled").
 */
struct tdl_root {
	MYRIAD_CORO_FIELD;
	myriad_io_t dl, op;
	int fd;
	char buf[8];
};

static int tdl_root_step(myriad_task_t *self, void *p)
{
	struct tdl_root *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	CHECK_EQ(myriad_task_deadline(self, &st->dl, myriad_now_ns() + DL_NS),
		 0);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	CHECK_ERR(myriad_task_cancel_reason(self), -ETIME);
	myriad_task_set_result(self, 77);
	MYRIAD_END(st);
}

static void test_task_deadline(void)
{
	struct tdl_parent pp;
	struct tdl_root tr;
	int64_t res = 0;
	int a[2], b[2];
	char c[4];

	t_phase("task deadline");
	memset(&pp, 0, sizeof(pp));
	tcp_pair(a);
	tcp_pair(b);
	pp.fd = a[0];
	pp.fd2 = b[0];
	CHECK_EQ(t_run(rt, tdl_parent_step, &pp, sizeof(pp), NULL,
		       "task deadline"),
		 0);
	CHECK_EQ(atomic_load(&tdl_etime), 2);
	memset(&tr, 0, sizeof(tr));
	tr.fd = a[0];
	CHECK_ERR(t_run(rt, tdl_root_step, &tr, sizeof(tr), &res,
			"root deadline"),
		  -ECANCELED);
	CHECK_EQ(res, 77);
	/* The timed-out recvs took nothing: data sent now stays for us. */
	CHECK_EQ(send(a[1], "x", 1, MSG_NOSIGNAL), 1);
	CHECK_EQ(send(b[1], "y", 1, MSG_NOSIGNAL), 1);
	CHECK_EQ(recv_wait(a[0], c, sizeof(c)), 1);
	CHECK_EQ(c[0], 'x');
	CHECK_EQ(recv_wait(b[0], c, sizeof(c)), 1);
	CHECK_EQ(c[0], 'y');
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

/* ---- tasks that finish with a recv in flight ---- */

static _Atomic int quitters_started;

struct quitter {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd, yields;
	char buf[64];
};

static int quitter_step(myriad_task_t *self, void *p)
{
	struct quitter *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	rc = myriad_io_recv(self, &st->op, st->fd, st->buf, sizeof(st->buf), 0);
	CHECK_ERR(rc, -EAGAIN);
	atomic_fetch_add(&quitters_started, 1);
	/* Some finish in the step that queued it, some after it went in. */
	while (st->yields-- > 0)
		MYRIAD_YIELD(st);
	MYRIAD_END(st);
}

static int tasks_drained(void *p)
{
	return myriad_rt_tasks_live(rt) == 0;
}

static void test_quitters(void)
{
	int n = (int)t_scaled_min(200, 40), i, r;
	int(*sp)[2] = calloc((size_t)n, sizeof(*sp));
	myriad_handle_t **h = calloc((size_t)n, sizeof(*h));
	struct quitter q;
	char buf[8];

	t_phase("finish with a recv in flight");
	REQUIRE(sp && h, "calloc");
	for (i = 0; i < n; i++) {
		REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				   sp[i]) == 0,
			"socketpair: %s", strerror(errno));
		memset(&q, 0, sizeof(q));
		q.fd = sp[i][0];
		q.yields = i % 3;
		/* A third detached, the rest joined through handles. */
		r = myriad_rt_spawn(rt, quitter_step, &q, sizeof(q),
				    i % 3 == 2 ? NULL : &h[i]);
		REQUIRE(r == 0, "spawn: %d", r);
	}
	for (i = 0; i < n; i++) {
		if (!h[i])
			continue;
		CHECK_EQ(t_join(h[i], NULL, "quitter"), 0);
		CHECK_EQ(myriad_handle_release(h[i]), 0);
	}
	/* The records are freed only once the kernel gave them back. */
	CHECK(t_wait_until(tasks_drained, NULL, 10),
	      "tasks_live stays %lld after the quitters finished",
	      (long long)myriad_rt_tasks_live(rt));
	/* Only now: the detached third may still be queued after the joins. */
	CHECK_EQ(atomic_load(&quitters_started), n);
	/* Their recvs were cancelled: data sent now stays for us. */
	for (i = 0; i < n; i++) {
		CHECK_EQ(send(sp[i][1], "xyz", 3, MSG_NOSIGNAL), 3);
		r = (int)recv(sp[i][0], buf, sizeof(buf), MSG_DONTWAIT);
		CHECK(r == 3 && !memcmp(buf, "xyz", 3),
		      "pair %d: recv after the quitter: %d (%s)", i, r,
		      r < 0 ? strerror(errno) : "");
		close(sp[i][0]);
		close(sp[i][1]);
	}
	free(sp);
	free(h);
}

/* ---- destroy with operations in flight ---- */

static _Atomic int sd_waiting;

struct sd_task {
	myriad_io_t op;
	int fd, kind, reg;
	char buf[32];
};

static int sd_step(myriad_task_t *self, void *p)
{
	struct sd_task *st = p;
	int rc;

	switch (st->kind) {
	case 0:
		rc = myriad_io_recv(self, &st->op, st->fd, st->buf,
				    sizeof(st->buf), 0);
		break;
	case 1:
		rc = myriad_io_accept(self, &st->op, st->fd, SOCK_CLOEXEC);
		break;
	default:
		rc = myriad_io_poll(self, &st->op, st->fd, POLLIN);
		break;
	}
	if (rc == -EAGAIN) {
		if (!st->reg++)
			atomic_fetch_add(&sd_waiting, 1);
		return MYRIAD_PENDING;
	}
	t_failf(__FILE__, __LINE__,
		"an operation that nothing completes returned %d (kind %d)", rc,
		st->kind);
	return MYRIAD_DONE;
}

static int all_waiting(void *p)
{
	return atomic_load(&sd_waiting) == *(int *)p;
}

static void test_destroy_inflight(void)
{
	int n = (int)t_scaled_min(400, 50), i, want;
	int(*sp)[2] = calloc((size_t)n, sizeof(*sp));
	myriad_rt_t *r2 = t_rt_new(nworkers);
	struct sockaddr_in a;
	struct sd_task s;
	int lfd = listen_any(&a, 16), pfd[2], r;
	double t0;

	t_phase("destroy with operations in flight");
	REQUIRE(sp, "calloc");
	REQUIRE(pipe2(pfd, O_CLOEXEC) == 0, "pipe");
	for (i = 0; i < n; i++) {
		REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				   sp[i]) == 0,
			"socketpair");
		memset(&s, 0, sizeof(s));
		s.fd = sp[i][i % 2];
		REQUIRE(myriad_rt_spawn(r2, sd_step, &s, sizeof(s), NULL) == 0,
			"spawn");
	}
	memset(&s, 0, sizeof(s));
	s.kind = 1;
	s.fd = lfd;
	REQUIRE(myriad_rt_spawn(r2, sd_step, &s, sizeof(s), NULL) == 0,
		"spawn");
	s.kind = 2;
	s.fd = pfd[0];
	REQUIRE(myriad_rt_spawn(r2, sd_step, &s, sizeof(s), NULL) == 0,
		"spawn");
	want = n + 2;
	REQUIRE(t_wait_until(all_waiting, &want, 20), "%d of %d waiting",
		atomic_load(&sd_waiting), want);
	t_sleep_ms(20); /* submitted, in the kernel */
	t0 = t_now();
	r = myriad_rt_destroy(r2);
	CHECK(r == 0, "myriad_rt_destroy with operations in flight: %d", r);
	CHECK(t_now() - t0 < 5.0 * T_SLOW,
	      "myriad_rt_destroy took %.2f s with operations in flight",
	      t_now() - t0);
	/* Nothing was read from the sockets. */
	for (i = 0; i < n; i++) {
		CHECK_EQ(send(sp[i][(i + 1) % 2], "q", 1, MSG_NOSIGNAL), 1);
		CHECK_EQ(recv(sp[i][i % 2], s.buf, 1, MSG_DONTWAIT), 1);
		close(sp[i][0]);
		close(sp[i][1]);
	}
	close(lfd);
	close(pfd[0]);
	close(pfd[1]);
	free(sp);
}

/* ---- a cancel after the kernel ended the multishot accept ---- */

/*
 * One worker, a completion queue of 32 entries (ring_entries 8), and 64
 * connections made with blocking calls in one step of another task, so
 * that the worker reaps nothing meanwhile: the kernel posts accepts until
 * the completion queue is full, then ends the multishot with the last
 * descriptor and no IORING_CQE_F_MORE, and the rest wait in the backlog.
 * A cancel then, before the task's next call arms the accept again, must
 * still end it: the queued descriptors, then -ECANCELED, never a new
 * multishot that takes what waits in the backlog (the echo test once hung
 * on that: its last accept armed again and waited for no one).
 */
#define OVF_CONNS 64

struct ovf_dialer {
	MYRIAD_CORO_FIELD;
	struct sockaddr_in addr;
	int *fds;
};

static int ovf_dial_step(myriad_task_t *self, void *p)
{
	struct ovf_dialer *st = p;
	int i;

	(void)self;
	for (i = 0; i < OVF_CONNS; i++) {
		st->fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(st->fds[i] >= 0, "socket: %s", strerror(errno));
		REQUIRE(connect(st->fds[i], (struct sockaddr *)&st->addr,
				sizeof(st->addr)) == 0,
			"connect %d: %s", i, strerror(errno));
	}
	return MYRIAD_DONE;
}

struct ovf_out {
	int got, end;
	int fds[OVF_CONNS];
};

struct ovf_root {
	MYRIAD_CORO_FIELD;
	myriad_io_t acc;
	struct sockaddr_in addr;
	int lfd;
	struct ovf_out *out;
};

static int ovf_root_step(myriad_task_t *self, void *p)
{
	struct ovf_root *st = p;
	struct ovf_dialer d;
	int rc, err = 0;

	MYRIAD_BEGIN(st);
	rc = myriad_io_accept(self, &st->acc, st->lfd, SOCK_CLOEXEC);
	REQUIRE(rc == -EAGAIN, "accept: expected -EAGAIN (armed), got %d", rc);
	memset(&d, 0, sizeof(d));
	d.addr = st->addr;
	d.fds = st->out->fds;
	REQUIRE(myriad_task_spawn(self, ovf_dial_step, &d, sizeof(d), 0, &err),
		"spawn: %d", err);
	MYRIAD_JOIN(st, self);
	CHECK_EQ(myriad_io_cancel(self, &st->acc), 0);
	/*
	 * Fewer than all: a multishot armed again takes the backlog, and
	 * its last call would wait for a connection that never comes.
	 */
	for (st->out->got = 0; st->out->got < OVF_CONNS; st->out->got++) {
		MYRIAD_IO(st, rc,
			  myriad_io_accept(self, &st->acc, st->lfd,
					   SOCK_CLOEXEC));
		if (rc < 0) {
			st->out->end = rc;
			break;
		}
		close(rc);
	}
	MYRIAD_END(st);
}

static void test_accept_cancel_ended(void)
{
	struct ovf_out out;
	struct ovf_root r;
	struct myriad_rt_opts o;
	myriad_rt_t *r2;
	int err = 0, i;

	t_phase("cancel after the kernel ended the multishot accept");
	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = 1;
	o.ring_entries = 8;
	r2 = myriad_rt_create(&o, &err);
	REQUIRE(r2, "myriad_rt_create: %d", err);
	memset(&out, 0, sizeof(out));
	for (i = 0; i < OVF_CONNS; i++)
		out.fds[i] = -1;
	memset(&r, 0, sizeof(r));
	r.lfd = listen_any(&r.addr, OVF_CONNS * 2);
	r.out = &out;
	CHECK_EQ(t_run(r2, ovf_root_step, &r, sizeof(r), NULL, "ovf"), 0);
	printf("net: cancelled accept: %d of %d connections, then %d\n",
	       out.got, OVF_CONNS, out.end);
	CHECK(out.got < OVF_CONNS,
	      "all %d connections accepted after the cancel: a new multishot "
	      "was armed",
	      OVF_CONNS);
	CHECK_ERR(out.end, -ECANCELED);
	t_rt_done(r2);
	close(r.lfd);
	for (i = 0; i < OVF_CONNS; i++)
		if (out.fds[i] >= 0)
			close(out.fds[i]);
}

/* ---- misuse ---- */

static int bad_args_step(myriad_task_t *self, void *p)
{
	myriad_io_t *op = p;
	char buf[4];

	/* Not the running task. */
	CHECK_ERR(myriad_io_recv(NULL, op, 0, buf, sizeof(buf), 0), -EINVAL);
	CHECK_ERR(myriad_io_recv(self, NULL, 0, buf, sizeof(buf), 0), -EINVAL);
	CHECK_ERR(myriad_io_send(self, NULL, 0, buf, sizeof(buf), 0), -EINVAL);
	CHECK_ERR(myriad_io_accept(self, NULL, 0, 0), -EINVAL);
	CHECK_ERR(myriad_io_connect(self, NULL, 0, NULL, 0), -EINVAL);
	CHECK_ERR(myriad_io_recv_buf(self, op, 0, NULL, 0), -EINVAL);
	CHECK_ERR(myriad_io_buf_release(self, NULL), -EINVAL);
	CHECK_ERR(myriad_task_deadline(self, NULL, 1), -EINVAL);
	CHECK_ERR(myriad_task_deadline(NULL, op, 1), -EINVAL);
	CHECK_EQ(myriad_io_buf_release(self, op), 0); /* holds none */
	/* -EAGAIN means "in flight": MSG_DONTWAIT is refused (io.h). */
	CHECK_ERR(myriad_io_recv(self, op, 0, buf, sizeof(buf), MSG_DONTWAIT),
		  -EINVAL);
	CHECK_ERR(myriad_io_send(self, op, 1, buf, sizeof(buf), MSG_DONTWAIT),
		  -EINVAL);
	return MYRIAD_DONE;
}

static void test_bad_args(void)
{
	myriad_io_t op;
	char buf[4];

	t_phase("bad arguments");
	memset(&op, 0, sizeof(op));
	/* Outside any task. */
	CHECK_ERR(myriad_io_recv(NULL, &op, 0, buf, sizeof(buf), 0), -EINVAL);
	CHECK_ERR(myriad_io_deadline(NULL, 1), -EINVAL);
	CHECK_ERR(myriad_io_cancel(NULL, &op), -EINVAL);
	CHECK_EQ(t_run(rt, bad_args_step, &op, sizeof(op), NULL, "bad args"),
		 0);
}

int main(int argc, char **argv)
{
	t_name = "net";
	nworkers = t_parse_workers(argc, argv);
	t_watchdog(120);
	signal(SIGPIPE, SIG_IGN);
	rt = t_rt_new(nworkers);
	test_bad_args();
	test_echo();
	test_partial();
	test_errors();
	test_deadline_cancel();
	test_task_deadline();
	test_quitters();
	t_rt_done(rt);
	test_destroy_inflight();
	test_accept_cancel_ended();
	return t_result();
}
