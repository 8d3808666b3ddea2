/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_echo.c: an echo server (multishot accept, recv into provided
 * buffers, bench/echo_conn.c) and its clients (connect, send, recv) in
 * one runtime over thousands of connections, every byte checked; and
 * operations started in one step entering the kernel together.
 *   net_echo [--workers N]
 */
#include "net.h"
#include "echo_conn.h"

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

/*
 * Server side of one connection: bench/echo_conn.c, as myriad-bench's echo
 * runs it; what it reports is checked and counted here.
 */
static void conn_fail(struct echo_conn *c, const char *what, int rc)
{
	t_failf(__FILE__, __LINE__, "server %s on fd %d: got %d (%s)", what,
		c->fd, rc, rc < 0 ? strerror(-rc) : "nothing sent");
}

static void conn_received(struct echo_conn *c, int n)
{
	CHECK(n <= MYRIAD_IO_BUF_SIZE && c->data != NULL,
	      "recv_buf gave %d bytes at %p", n, c->data);
}

static void conn_sent(struct echo_conn *c, int n)
{
	atomic_fetch_add(&echo_bytes_echoed, n);
}

static void conn_closed(struct echo_conn *c)
{
	atomic_fetch_add(&echo_conns_done, 1);
}

static const struct echo_conn_ops conn_ops = {
	.fail = conn_fail,
	.received = conn_received,
	.sent = conn_sent,
	.closed = conn_closed,
};

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
		c.ops = &conn_ops;
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

/*
 * ---- batching: operations started in a step go in together ----
 * A step starts BATCH recvs: each is queued on the worker's ring, none
 * enters the kernel before the step ends (the ring has room for them and
 * nothing else runs on this worker), so the worker's io_enters does not
 * move while its io_ops grows by BATCH. Then a byte for each, collected.
 */
#define BATCH 32

struct batch {
	MYRIAD_CORO_FIELD;
	myriad_io_t op[BATCH];
	int fds[BATCH][2], res[BATCH], left;
	char buf[BATCH];
};

static int batch_collect(myriad_task_t *self, struct batch *st)
{
	int i, rc;

	for (i = 0; i < BATCH; i++) {
		if (st->res[i] != INT32_MIN)
			continue;
		rc = myriad_io_recv(self, &st->op[i], st->fds[i][0],
				    &st->buf[i], 1, 0);
		if (rc != -EAGAIN) {
			st->res[i] = rc;
			st->left--;
		}
	}
	return st->left;
}

static int batch_step(myriad_task_t *self, void *p)
{
	struct batch *st = p;
	int ienters = ctr_index("io_enters"), iops = ctr_index("io_ops");
	uint64_t a[MYRIAD_CTR__COUNT], b[MYRIAD_CTR__COUNT];
	unsigned w = (unsigned)myriad_current_worker();
	int i, rc, have;

	MYRIAD_BEGIN(st);
	rc = myriad_rt_counters(rt, w, a, MYRIAD_CTR__COUNT);
	have = ienters >= 0 && iops >= 0 && rc > ienters && rc > iops;
	for (i = 0; i < BATCH; i++) {
		st->res[i] = INT32_MIN;
		rc = myriad_io_recv(self, &st->op[i], st->fds[i][0],
				    &st->buf[i], 1, 0);
		CHECK_ERR(rc, -EAGAIN);
	}
	if (have) {
		myriad_rt_counters(rt, w, b, MYRIAD_CTR__COUNT);
		CHECK_EQ(b[iops] - a[iops], BATCH);
		CHECK(b[ienters] == a[ienters],
		      "no batching: %d operations started in one step made "
		      "%llu io_enters",
		      BATCH, (unsigned long long)(b[ienters] - a[ienters]));
	} else {
		printf("net: no io_enters/io_ops counters: batching not "
		       "checked\n");
	}
	for (i = 0; i < BATCH; i++)
		CHECK_EQ(send(st->fds[i][1], "b", 1, MSG_NOSIGNAL), 1);
	st->left = BATCH;
	MYRIAD_WAIT_UNTIL(st, batch_collect(self, st) == 0);
	for (i = 0; i < BATCH; i++) {
		CHECK_EQ(st->res[i], 1);
		CHECK_EQ(st->buf[i], 'b');
	}
	MYRIAD_END(st);
}

static void test_batch(void)
{
	struct batch *b = calloc(1, sizeof(*b));
	int i;

	t_phase("batching");
	REQUIRE(b, "calloc");
	for (i = 0; i < BATCH; i++)
		REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				   b->fds[i]) == 0,
			"socketpair: %s", strerror(errno));
	CHECK_EQ(t_run(rt, batch_step, b, sizeof(*b), NULL, "batch"), 0);
	for (i = 0; i < BATCH; i++) {
		close(b->fds[i][0]);
		close(b->fds[i][1]);
	}
	free(b);
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
	if (ienters >= 0 && iops >= 0 && enters0 >= 0) {
		/*
		 * Every connection ran several operations. How many enters
		 * they took is printed, not checked: parks and wakes enter
		 * too, as many as the machine's timing makes (test_batch()
		 * checks what batching guarantees).
		 */
		printf("net: echo of %d connections: %lld io_enters for %lld "
		       "io_ops\n",
		       r.n, (long long)enters, (long long)ops);
		CHECK(ops >= (int64_t)r.n * (2 * ECHO_ROUNDS + 4),
		      "io_ops %lld for %d connections", (long long)ops, r.n);
	}
}

static void test_net(void)
{
	test_batch();
	test_echo();
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_echo", test_net, true);
}
