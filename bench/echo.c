/* SPDX-License-Identifier: MIT */
/*
 * bench/echo.c: the echo workload: C client tasks each make R round trips
 * of 64 bytes over loopback TCP to an echo server in the same runtime.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "echo_conn.h"

/*
 * As the Go and Tokio peers do it (bench/peers/): a listener on
 * 127.0.0.1:0 with the backlog of net.core.somaxconn, one acceptor task
 * (a multishot accept) that spawns a detached task per connection, a
 * client task per connection (connect with the peers' bounded retry,
 * R round trips, each checked byte by byte), TCP_NODELAY on both ends. A
 * round trip is one message; wall_s runs from the first client spawned to
 * the last client done; tasks = C (the server tasks are not counted).
 */
#define ECHO_MSG 64
/* Descriptors besides the 2 per connection: stdio, the listener, rings. */
#define ECHO_SPARE_FDS 16

static struct {
	int lfd;		    /* the listener */
	struct sockaddr_in addr;    /* its address */
	uint64_t *lats;		    /* C * R round trips, ns */
	_Atomic int64_t servers;    /* connection tasks not yet closed */
	_Atomic int64_t failures;   /* failed calls (the first is printed) */
	_Atomic int64_t mismatches; /* round trips that came back different */
	_Atomic int64_t retries;    /* connects retried */
} E = { .lfd = -1 };

/*
 * A call failed: say so on stderr (the first time only; 10,000 clients
 * that see the same reset say nothing new) and count it; the root stops
 * waiting and main exits 1 without a RESULT line. 'wake' only from the
 * root's children: a detached server may outlive the root, whose waker
 * would then point at freed memory.
 */
static void echo_fail(const char *who, int64_t id, const char *what, int rc,
		      bool wake)
{
	/* The root cancelled the run after a failure: nothing new. */
	if (rc == -ECANCELED && (atomic_load(&E.failures) || B.failed))
		return;
	if (atomic_fetch_add(&E.failures, 1) == 0)
		fprintf(stderr, "myriad-bench: echo: %s %" PRId64 ": %s: %s\n",
			who, id, what,
			rc < 0 ? strerror(-rc) : "unexpected end of stream");
	if (wake)
		myriad_waker_wake(B.root);
}

static bool echo_over(void)
{
	return run_over() || atomic_load(&E.failures);
}

/* A server's connection (echo_conn.c): its failures, its close. */
static void conn_fail(struct echo_conn *c, const char *what, int rc)
{
	echo_fail("server", c->fd, what, rc, false);
}

static void conn_closed(struct echo_conn *c)
{
	atomic_fetch_sub(&E.servers, 1);
}

static const struct echo_conn_ops conn_ops = {
	.fail = conn_fail,
	.closed = conn_closed,
};

/* The acceptor: a task per connection until the root cancels it. */
struct echo_acceptor {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
};

static int echo_accept_step(myriad_task_t *self, void *p)
{
	struct echo_acceptor *st = p;
	struct echo_conn c;
	int rc, err;

	MYRIAD_BEGIN(st);
	for (;;) {
		MYRIAD_IO(st, rc,
			  myriad_io_accept(self, &st->op, E.lfd, SOCK_CLOEXEC));
		if (rc < 0)
			break;
		memset(&c, 0, sizeof(c));
		c.fd = rc;
		c.ops = &conn_ops;
		err = set_nodelay(c.fd);
		if (err < 0) {
			close(c.fd);
			echo_fail("acceptor", 0, "TCP_NODELAY", err, true);
			continue;
		}
		/* Counted before it runs, so that the root never sees 0 early. */
		atomic_fetch_add(&E.servers, 1);
		myriad_task_spawn(self, echo_conn_step, &c, sizeof(c),
				  MYRIAD_SPAWN_DETACHED, &err);
		if (err) {
			atomic_fetch_sub(&E.servers, 1);
			close(c.fd);
			echo_fail("acceptor", 0, "spawn", err, true);
		}
	}
	/* Cancelled by the root once every client is done: the way out. */
	if (rc != -ECANCELED)
		echo_fail("acceptor", 0, "accept", rc, true);
	MYRIAD_END(st);
}

/* A client: connect, R round trips, close. */
struct echo_client {
	MYRIAD_CORO_FIELD;
	int fd;
	int off;
	struct dialer dial;
	int64_t id, r;
	uint64_t t0;
	myriad_io_t op;
	myriad_timer_t tm;
	uint8_t out[ECHO_MSG], in[ECHO_MSG];
};

static int echo_client_step(myriad_task_t *self, void *p)
{
	struct echo_client *st = p;
	int rc, i;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, rc,
		  dial(self, &st->dial, &st->op, &st->tm, &E.addr, &E.retries));
	if (rc < 0) {
		echo_fail("client", st->id, st->dial.what, rc, true);
		return MYRIAD_DONE;
	}
	st->fd = rc;
	for (st->r = 0; st->r < B.m; st->r++) {
		/* The peers' pattern: every byte differs by client and round. */
		for (i = 0; i < ECHO_MSG; i++)
			st->out[i] = (uint8_t)(st->id * 131 + st->r * 7 + i);
		st->t0 = myriad_now_ns();
		for (st->off = 0; st->off < ECHO_MSG; st->off += rc) {
			MYRIAD_IO(st, rc,
				  myriad_io_send(self, &st->op, st->fd,
						 st->out + st->off,
						 (size_t)(ECHO_MSG - st->off),
						 MSG_NOSIGNAL));
			if (rc <= 0) {
				echo_fail("client", st->id, "send", rc, true);
				return MYRIAD_DONE;
			}
		}
		/* The echo may come back in pieces. */
		for (st->off = 0; st->off < ECHO_MSG; st->off += rc) {
			MYRIAD_IO(st, rc,
				  myriad_io_recv(self, &st->op, st->fd,
						 st->in + st->off,
						 (size_t)(ECHO_MSG - st->off),
						 0));
			if (rc <= 0) {
				echo_fail("client", st->id, "recv", rc, true);
				return MYRIAD_DONE;
			}
		}
		E.lats[st->id * B.m + st->r] = myriad_now_ns() - st->t0;
		if (memcmp(st->in, st->out, ECHO_MSG))
			atomic_fetch_add(&E.mismatches, 1);
	}
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	if (rc < 0) {
		echo_fail("client", st->id, "close", rc, true);
		return MYRIAD_DONE;
	}
	count_down();
	MYRIAD_END(st);
}

struct echo_root {
	MYRIAD_CORO_FIELD;
	int64_t i;
	myriad_task_t *acceptor;
	myriad_timer_t tm;
};

/* How long the root waits for the servers to see their clients' close. */
#define ECHO_DRAIN_MS 10000

static int echo_root(myriad_task_t *self, void *p)
{
	struct echo_root *st = p;
	struct echo_client c;
	int rc;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	st->acceptor = spawn(self, echo_accept_step, NULL,
			     sizeof(struct echo_acceptor), 0);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed && !E.failures; st->i++) {
		memset(&c, 0, sizeof(c));
		c.id = st->i;
		spawn(self, echo_client_step, &c, sizeof(c), 0);
		if ((st->i & 255) == 255)
			MYRIAD_YIELD(st);
	}
	MYRIAD_WAIT_UNTIL(st, echo_over());
	/* A failure ends the clients too: their calls return -ECANCELED. */
	if (B.failed || E.failures)
		myriad_task_cancel(self);
	else if (st->acceptor)
		myriad_task_cancel(st->acceptor);
	MYRIAD_JOIN(st, self);
	if (B.failed || E.failures)
		return MYRIAD_DONE;
	/*
	 * Every server sees its client's close and closes its end: wait for
	 * that (outside wall_s), so that no connection is left to shutdown.
	 */
	for (st->i = 0; atomic_load(&E.servers) > 0; st->i++) {
		if (st->i >= ECHO_DRAIN_MS) {
			fprintf(stderr,
				"myriad-bench: echo: %" PRId64
				" server connections still open %d ms after their clients closed\n",
				atomic_load(&E.servers), ECHO_DRAIN_MS);
			atomic_fetch_add(&E.failures, 1);
			return MYRIAD_DONE;
		}
		MYRIAD_SLEEP(st, self, &st->tm, 1000000, rc);
		if (rc < 0) {
			echo_fail("root", 0, "sleep", rc, false);
			return MYRIAD_DONE;
		}
	}
	MYRIAD_END(st);
}

/* net.core.somaxconn, which caps any listen backlog; 4096 if unreadable. */
static int somaxconn(void)
{
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
	int v = 0;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v > 0 ? v : 4096;
}

/*
 * TcpExt ListenOverflows of /proc/net/netstat (this network namespace):
 * connections dropped on a full accept queue, each costing its client a
 * SYN retransmission (1 s or more, then in wall_s). -1 if unreadable.
 */
static int64_t listen_overflows(void)
{
	char names[4096], vals[4096], *n, *v, *sn, *sv;
	int64_t r = -1;
	FILE *f = fopen("/proc/net/netstat", "re");

	if (!f)
		return -1;
	while (fgets(names, sizeof(names), f)) {
		if (strncmp(names, "TcpExt:", 7))
			continue;
		if (!fgets(vals, sizeof(vals), f))
			break;
		n = strtok_r(names, " \n", &sn);
		v = strtok_r(vals, " \n", &sv);
		while (n && v) {
			if (!strcmp(n, "ListenOverflows")) {
				r = strtoll(v, NULL, 10);
				break;
			}
			n = strtok_r(NULL, " \n", &sn);
			v = strtok_r(NULL, " \n", &sv);
		}
		break;
	}
	fclose(f);
	return r;
}

/* The listener on 127.0.0.1, a port of the kernel's choosing. */
static int echo_listen(void)
{
	socklen_t len = sizeof(E.addr);

	E.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (E.lfd < 0)
		return -errno;
	memset(&E.addr, 0, sizeof(E.addr));
	E.addr.sin_family = AF_INET;
	E.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(E.lfd, (struct sockaddr *)&E.addr, sizeof(E.addr)) < 0 ||
	    getsockname(E.lfd, (struct sockaddr *)&E.addr, &len) < 0 ||
	    listen(E.lfd, somaxconn()) < 0)
		return -errno;
	return 0;
}

/* --conns C (10,000) --rounds R (100) */
static int64_t echo_parse(const struct bench_args *a)
{
	if (a->n >= 0 || a->tasks >= 0 || a->yields >= 0 || a->pairs >= 0)
		usage("echo takes --conns and --rounds");
	B.n = a->conns >= 0 ? a->conns : 10000;
	B.m = a->rounds >= 0 ? a->rounds : 100;
	if (B.m < 1)
		usage("--rounds must be at least 1 for echo");
	return B.n;
}

static int echo_prepare(struct myriad_rt_opts *o)
{
	int err;

	raise_nofile((uint64_t)(2 * B.n + ECHO_SPARE_FDS),
		     "echo (2 per connection and some to spare)", "--conns", 2,
		     ECHO_SPARE_FDS);
	E.lats = calloc((size_t)(B.n * B.m), sizeof(*E.lats));
	if (!E.lats) {
		fprintf(stderr, "myriad-bench: echo: out of memory\n");
		return 1;
	}
	err = echo_listen();
	if (err < 0) {
		fprintf(stderr, "myriad-bench: echo: listener: %s\n",
			strerror(-err));
		return 1;
	}
	return 0;
}

/* Connections the kernel dropped on a full accept queue during the run. */
static int64_t overflows = -1;

static int echo_run(myriad_rt_t *rt, int64_t *tasks)
{
	struct echo_root eroot = { 0 };
	int64_t after;
	int r;

	overflows = listen_overflows();
	r = myriad_rt_block_on(rt, echo_root, &eroot, sizeof(eroot), NULL);
	after = listen_overflows();
	overflows = overflows >= 0 && after >= 0 ? after - overflows : -1;
	return r;
}

static int echo_check(int r)
{
	if (E.failures) {
		fprintf(stderr,
			"myriad-bench: echo: %" PRId64
			" failed calls (the first above)\n",
			atomic_load(&E.failures));
		return 1;
	}
	if (E.mismatches) {
		fprintf(stderr,
			"myriad-bench: echo: %" PRId64
			" round trips came back different from what was sent\n",
			atomic_load(&E.mismatches));
		return 1;
	}
	return 0;
}

static void echo_notes(void)
{
	if (E.retries)
		fprintf(stderr,
			"myriad-bench: echo: %" PRId64 " connects retried\n",
			atomic_load(&E.retries));
	if (overflows > 0)
		fprintf(stderr,
			"myriad-bench: echo: the kernel dropped %" PRId64
			" connections on a full accept queue (ListenOverflows); their clients waited for SYN-ACK retransmissions\n",
			overflows);
}

/* Every task has ended: the acceptor's accept is no longer in flight. */
static int echo_teardown(void)
{
	if (E.lfd >= 0)
		close(E.lfd);
	E.lfd = -1;
	return 0;
}

static void echo_result(double w, int64_t tasks)
{
	size_t nl = (size_t)(B.n * B.m);

	/* The nearest rank, as the peers. A round trip is a message. */
	qsort(E.lats, nl, sizeof(*E.lats), cmp_u64);
	printf(" msgs_per_s=%.0f p99_us=%.1f", (double)nl / w,
	       E.lats[(nl * 99 + 99) / 100 - 1] / 1e3);
	/* A diagnostic key, the peers' too (docs/bench.md). */
	if (overflows >= 0)
		printf(" listen_overflows=%" PRId64, overflows);
}

const struct workload wl_echo = {
	.name = "echo",
	.usage = "echo --conns C --rounds R",
	.parse = echo_parse,
	.prepare = echo_prepare,
	.run = echo_run,
	.check = echo_check,
	.notes = echo_notes,
	.teardown = echo_teardown,
	.result = echo_result,
};
