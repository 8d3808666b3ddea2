/* SPDX-License-Identifier: MIT */
/*
 * bench/myriad-bench.c: the throughput benchmark of shared/BENCH.md on
 * libmyriad's public API: spawn, chain, fib, yield, pingpong, park, echo,
 * agents, noisy; one RESULT line per run on stdout, progress on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <myriad.h>

/* What every workload shares: the count-down and the root's waker. */
struct bench {
	_Atomic int64_t left;	   /* tasks still to finish */
	myriad_waker_t root;	   /* woken by the last one */
	struct timespec t0, t1;	   /* first spawn, last completion */
	struct timespec t_spawned; /* park: all spawned */
	int64_t n, m;		   /* workload parameters */
	myriad_chan_t **chans;	   /* pingpong */
	_Atomic int failed;	   /* a spawn failed: -errno */
};

static struct bench B;

static double now_s(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec * 1e-9;
}

static double wall_s(void)
{
	return now_s(&B.t1) - now_s(&B.t0);
}

/* A line of /proc/self/status in kB ("VmRSS:", "VmHWM:"), or -1. */
static long status_kb(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = atol(line + strlen(key));
	fclose(f);
	return v;
}

/*
 * VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the process
 * that launched us (a Python harness would report its own peak).
 */
static long peak_rss_kb(void)
{
	return status_kb("VmHWM:");
}

static void usage(const char *msg)
{
	fprintf(stderr, "myriad-bench: %s\n", msg);
	fprintf(stderr,
		"usage: myriad-bench <spawn|chain|fib|yield|pingpong|park|echo|agents|noisy> [--workers N]\n"
		"         spawn|chain --n N    fib --n N    yield --tasks T --yields Y\n"
		"         pingpong --pairs P --rounds R    park --n N --sleep-ms S\n"
		"         echo --conns C --rounds R\n"
		"         agents --agents A --steps S --tool-ms T --llm-ms L\n"
		"                --llm-concurrency C [--tool-port P --llm-port P]\n"
		"                [--tool-conns N]  (a shared pool of N tool\n"
		"                connections; default one per agent)\n"
		"         noisy --n N --policy default|kernel [--rounds R]\n"
		"               [--hog-cpu C]  (C = -1: no hog)\n"
		"           (without the ports the servers are started from\n"
		"            $MYRIAD_BENCH_SERVERS or the servers/ folder beside\n"
		"            this binary)\n");
	exit(2);
}

/* One task finished: the last wakes the root and stamps the end time. */
static void count_down(void)
{
	if (atomic_fetch_sub_explicit(&B.left, 1, memory_order_acq_rel) == 1) {
		clock_gettime(CLOCK_MONOTONIC, &B.t1);
		myriad_waker_wake(B.root);
	}
}

/*
 * Spawn, or mark the run failed and wake the root, which stops waiting;
 * main then exits 1 without a RESULT line. Returns what
 * myriad_task_spawn() returns (NULL for a detached task).
 */
static myriad_task_t *spawn(myriad_task_t *self, myriad_step_fn fn,
			    const void *init, size_t size, unsigned flags)
{
	myriad_task_t *t;
	int err, none = 0;

	t = myriad_task_spawn(self, fn, init, size, flags, &err);
	if (err && atomic_compare_exchange_strong(&B.failed, &none, err))
		myriad_waker_wake(B.root);
	return t;
}

/* What a root waits for: every task finished, or a spawn failed. */
static bool run_over(void)
{
	return atomic_load(&B.left) == 0 || atomic_load(&B.failed);
}

/* The root of spawn, chain, yield and pingpong: start, then wait. */
struct root {
	MYRIAD_CORO_FIELD;
	int64_t i;
};

/* ---- spawn: N empty tasks, each counting down ---- */

static int empty_step(myriad_task_t *self, void *st)
{
	count_down();
	return MYRIAD_DONE;
}

static int spawn_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		spawn(self, empty_step, NULL, 0, MYRIAD_SPAWN_DETACHED);
		/* Give the spawned tasks a turn on this worker too. */
		if ((st->i & 255) == 255)
			MYRIAD_YIELD(st);
	}
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- chain: task i spawns task i+1 and ends ---- */

struct link {
	int64_t i;
};

static int chain_step(myriad_task_t *self, void *p)
{
	struct link *st = p, next = { st->i + 1 };

	if (next.i < B.n)
		spawn(self, chain_step, &next, sizeof(next),
		      MYRIAD_SPAWN_DETACHED);
	count_down();
	return MYRIAD_DONE;
}

static int chain_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct link first = { 0 };

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	spawn(self, chain_step, &first, sizeof(first), MYRIAD_SPAWN_DETACHED);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- fib: a task per call, both children spawned, then joined ---- */

struct fib {
	MYRIAD_CORO_FIELD;
	int n;
	myriad_task_t *a, *b;
};

static int fib_step(myriad_task_t *self, void *p)
{
	struct fib *st = p;
	struct fib c = { 0 };

	MYRIAD_BEGIN(st);
	if (st->n < 2) {
		myriad_task_set_result(self, st->n);
		return MYRIAD_DONE;
	}
	c.n = st->n - 1;
	st->a = spawn(self, fib_step, &c, sizeof(c), 0);
	c.n = st->n - 2;
	st->b = spawn(self, fib_step, &c, sizeof(c), 0);
	MYRIAD_JOIN(st, self);
	myriad_task_set_result(self, myriad_task_result(st->a) +
					     myriad_task_result(st->b));
	MYRIAD_END(st);
}

static int fib_root(myriad_task_t *self, void *p)
{
	struct fib *st = p;
	struct fib c = { 0 };

	MYRIAD_BEGIN(st);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	c.n = st->n;
	st->a = spawn(self, fib_step, &c, sizeof(c), 0);
	MYRIAD_JOIN(st, self);
	clock_gettime(CLOCK_MONOTONIC, &B.t1);
	myriad_task_set_result(self, myriad_task_result(st->a));
	MYRIAD_END(st);
}

/* ---- yield: T tasks each yield Y times ---- */

struct yielder {
	MYRIAD_CORO_FIELD;
	int64_t i;
};

static int yield_step(myriad_task_t *self, void *p)
{
	struct yielder *st = p;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < B.m; st->i++)
		MYRIAD_YIELD(st);
	count_down();
	MYRIAD_END(st);
}

static int yield_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++)
		spawn(self, yield_step, NULL, sizeof(struct yielder),
		      MYRIAD_SPAWN_DETACHED);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- pingpong: P pairs pass a token R times, two 1-slot channels ---- */

struct player {
	MYRIAD_CORO_FIELD;
	int64_t i;
	int64_t tok;
	myriad_chan_t *in, *out;
	bool serve; /* ping sends first */
};

static int player_step(myriad_task_t *self, void *p)
{
	struct player *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < B.m; st->i++) {
		if (st->serve) {
			MYRIAD_SEND(st, self, st->out, &st->tok, rc);
			if (rc < 0)
				break;
			MYRIAD_RECV(st, self, st->in, &st->tok, rc);
		} else {
			MYRIAD_RECV(st, self, st->in, &st->tok, rc);
			if (rc < 0)
				break;
			st->tok++;
			MYRIAD_SEND(st, self, st->out, &st->tok, rc);
		}
		if (rc < 0)
			break;
	}
	count_down();
	MYRIAD_END(st);
}

static int pingpong_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct player pl;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		memset(&pl, 0, sizeof(pl));
		pl.in = B.chans[2 * st->i + 1];
		pl.out = B.chans[2 * st->i];
		pl.serve = true;
		spawn(self, player_step, &pl, sizeof(pl),
		      MYRIAD_SPAWN_DETACHED);
		pl.in = B.chans[2 * st->i];
		pl.out = B.chans[2 * st->i + 1];
		pl.serve = false;
		spawn(self, player_step, &pl, sizeof(pl),
		      MYRIAD_SPAWN_DETACHED);
	}
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- park: N tasks each sleep S ms, all alive at once ---- */

/*
 * Per worker, on their own cache lines: ten million wake-ups must not
 * queue on one shared counter (the runtime's figure, not the benchmark's).
 */
struct park_shard {
	_Atomic int64_t finished, late_max_ns;
} __attribute__((aligned(64)));

static struct park_shard *shards;
static unsigned nshards;
static _Atomic int64_t alive_max;
static uint64_t park_ns;

/* The whole state is the timer: 64 + 32 bytes a task. */
static int park_step(myriad_task_t *self, void *p)
{
	myriad_timer_t *tm = p;
	struct park_shard *sh;
	int64_t late;
	int rc;

	rc = myriad_sleep(self, tm, park_ns);
	if (rc == -EAGAIN)
		return MYRIAD_PENDING;
	late = (int64_t)(myriad_now_ns() - myriad_timer_deadline(tm));
	/* Only this worker writes its shard: no read-modify-write. */
	sh = &shards[(unsigned)myriad_current_worker() % nshards];
	if (late > atomic_load_explicit(&sh->late_max_ns, memory_order_relaxed))
		atomic_store_explicit(&sh->late_max_ns, late,
				      memory_order_relaxed);
	atomic_store_explicit(
		&sh->finished,
		atomic_load_explicit(&sh->finished, memory_order_relaxed) + 1,
		memory_order_relaxed);
	count_down();
	return MYRIAD_DONE;
}

static int64_t park_late_ns(void)
{
	int64_t m = 0;
	unsigned k;

	for (k = 0; k < nshards; k++)
		if (atomic_load(&shards[k].late_max_ns) > m)
			m = atomic_load(&shards[k].late_max_ns);
	return m;
}

/* Alive now: spawned so far minus those finished. */
static void park_note_alive(int64_t spawned)
{
	int64_t a = spawned;
	unsigned k;

	for (k = 0; k < nshards; k++)
		a -= atomic_load(&shards[k].finished);
	if (a > atomic_load(&alive_max))
		atomic_store(&alive_max, a);
}

static int park_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		spawn(self, park_step, NULL, sizeof(myriad_timer_t),
		      MYRIAD_SPAWN_DETACHED);
		if ((st->i & 1023) == 1023) {
			park_note_alive(st->i + 1);
			MYRIAD_YIELD(st);
		}
	}
	park_note_alive(B.n);
	clock_gettime(CLOCK_MONOTONIC, &B.t_spawned);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* ---- echo: C clients make R round trips of 64 bytes over loopback ---- */

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
/* Connect retries, as the peers: 7, after 10 ms, 20 ms ... 640 ms. */
#define ECHO_RETRIES 7

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

static int set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

static bool connect_retryable(int rc)
{
	return rc == -ECONNREFUSED || rc == -EAGAIN || rc == -EADDRNOTAVAIL ||
	       rc == -ECONNRESET;
}

/*
 * A TCP connect with retries, run inside the calling task's step: the
 * echo clients, the agents' own tool connections and the shared pool's.
 * Returns -EAGAIN while under way (return MYRIAD_PENDING and call it again
 * when run, as MYRIAD_IO does), the connected descriptor (TCP_NODELAY
 * set), or a negative errno with d->what naming the step that failed. A
 * connect refused or reset (a full listen backlog) is tried again on a
 * new socket after 10 ms << attempt, ECHO_RETRIES times at most, each
 * counted in *retries. 'op' and 'tm' are the task's own records.
 */
enum { DIAL_NEW, DIAL_CONNECTING, DIAL_SLEEPING };

struct dialer {
	int fd, attempt, stage;
	const char *what;
};

static int dial(myriad_task_t *self, struct dialer *d, myriad_io_t *op,
		myriad_timer_t *tm, const struct sockaddr_in *addr,
		_Atomic int64_t *retries)
{
	int rc;

	for (;;) {
		if (d->stage == DIAL_SLEEPING) {
			rc = myriad_sleep(self, tm,
					  UINT64_C(10000000) << d->attempt);
			if (rc == -EAGAIN)
				return rc;
			if (rc < 0) {
				d->what = "sleep";
				return rc;
			}
			d->attempt++;
			d->stage = DIAL_NEW;
		}
		if (d->stage == DIAL_NEW) {
			d->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (d->fd < 0) {
				d->what = "socket";
				return -errno;
			}
			d->stage = DIAL_CONNECTING;
		}
		rc = myriad_io_connect(self, op, d->fd,
				       (const struct sockaddr *)addr,
				       sizeof(*addr));
		if (rc == -EAGAIN)
			return rc;
		d->stage = DIAL_NEW;
		if (rc == 0) {
			rc = set_nodelay(d->fd);
			if (rc == 0)
				return d->fd;
			close(d->fd);
			d->what = "TCP_NODELAY";
			return rc;
		}
		/* A socket whose connect failed is not tried again. */
		close(d->fd);
		if (!connect_retryable(rc) || d->attempt >= ECHO_RETRIES) {
			d->what = "connect";
			return rc;
		}
		atomic_fetch_add(retries, 1);
		d->stage = DIAL_SLEEPING;
	}
}

/* A server's connection: send back what comes, until the client closes. */
struct echo_conn {
	MYRIAD_CORO_FIELD;
	int fd;
	int len, off;
	const void *data; /* the provided buffer, held by 'rop' */
	myriad_io_t rop;  /* the recv (and its buffer) */
	myriad_io_t sop;  /* sends, then the close */
};

static int echo_conn_step(myriad_task_t *self, void *p)
{
	struct echo_conn *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (;;) {
		/* No buffer is held while the connection waits for data. */
		MYRIAD_IO(st, rc,
			  myriad_io_recv_buf(self, &st->rop, st->fd, &st->data,
					     0));
		if (rc <= 0) {
			if (rc < 0)
				echo_fail("server", st->fd, "recv", rc, false);
			break;
		}
		st->len = rc;
		for (st->off = 0; st->off < st->len; st->off += rc) {
			MYRIAD_IO(
				st, rc,
				myriad_io_send(self, &st->sop, st->fd,
					       (const char *)st->data + st->off,
					       (size_t)(st->len - st->off),
					       MSG_NOSIGNAL));
			if (rc <= 0)
				break;
		}
		if (rc <= 0) {
			echo_fail("server", st->fd, "send", rc, false);
			break;
		}
		/* Sent: the buffer goes back to the ring. */
		rc = myriad_io_buf_release(self, &st->rop);
		if (rc < 0) {
			echo_fail("server", st->fd, "buf_release", rc, false);
			break;
		}
	}
	/* On an error too: the client then sees the end and stops. */
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->sop, st->fd));
	if (rc < 0)
		echo_fail("server", st->fd, "close", rc, false);
	atomic_fetch_sub(&E.servers, 1);
	MYRIAD_END(st);
}

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

/* The descriptors this process may have: RLIMIT_NOFILE's hard limit. */
static uint64_t nofile_max(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	return rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max;
}

/*
 * The soft RLIMIT_NOFILE up to the hard limit, and the hard limit up to
 * 'need' where the process may (as root): as the peers do. Exits 2 when
 * 'need' descriptors cannot be had, saying what they are for ('what') and
 * how many of the workload's 'unit' fit ('per' descriptors each, besides
 * 'spare').
 */
static void raise_nofile(uint64_t need, const char *what, const char *unit,
			 uint64_t per, uint64_t spare)
{
	struct rlimit rl, up = { need, need };

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		fprintf(stderr, "myriad-bench: getrlimit: %s\n",
			strerror(errno));
		exit(2);
	}
	if (rl.rlim_max < need && setrlimit(RLIMIT_NOFILE, &up) == 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < need) {
		fprintf(stderr,
			"myriad-bench: %s needs %" PRIu64
			" file descriptors, RLIMIT_NOFILE hard limit is %" PRIu64
			": raise it (ulimit -Hn) or use %s %" PRIu64
			" or fewer\n",
			what, need, (uint64_t)rl.rlim_max, unit,
			rl.rlim_max > spare
				? ((uint64_t)rl.rlim_max - spare) / per
				: 0);
		exit(2);
	}
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

/* User plus system time of a getrusage() record, in seconds. */
static double cpu_seconds(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec * 1e-6 +
	       (double)ru->ru_stime.tv_sec + ru->ru_stime.tv_usec * 1e-6;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* ---- agents: CPU work, a tool call, an LLM call, S steps per agent ---- */

/*
 * BENCH.md's agents step, as the Go and Tokio peers do it (bench/peers/):
 * 1. CPU work: FNV-1a over a shared read-only 4 KiB buffer, 4 passes,
 *    seeded by the agent and the step; the hash goes into the tool request
 *    and comes back in the answer, so it cannot be optimised away.
 * 2. Tool call: one request line on a kept-alive TCP connection to the
 *    tool server; the answer line ("ok <request>") is read whole and
 *    checked. By default each agent has its own connection, connected
 *    when it starts and kept for all its steps (not a connection per
 *    step), as the peers do. With --tool-conns N, or when the descriptor
 *    limit cannot hold one per agent (a million agents), the agents share
 *    a pool of N connections instead: a channel of idle descriptors that
 *    an agent takes for its request and answer and puts back (as an HTTP
 *    client's connection pool does); tool_conns in the RESULT line says
 *    which.
 * 3. LLM call: myriad_infer_chat() on a pool with one endpoint (the mock
 *    server, window = llm_concurrency); choices[0].message.content, parsed
 *    by the client, must not be empty.
 * A step's latency runs from the start of its CPU work to the LLM result.
 * wall_s runs from the first agent spawned (its connect included) to the
 * last one done; tasks = A.
 */
#define AGENT_BUF 4096
#define AGENT_PASSES 4
/*
 * Descriptors besides one per agent (its tool connection) and
 * llm_concurrency (the LLM pool's connections): stdio, the rings,
 * connections curl is still closing.
 */
#define AGENT_SPARE_FDS 64
/* The most connections the shared tool pool opens on its own. */
#define AGENT_POOL_MAX 1024

static struct {
	int64_t steps;
	int64_t tool_ms, llm_ms, llm_conc;
	int tool_port, llm_port;
	int64_t tool_conns;	/* 0: one per agent; else a shared pool */
	myriad_chan_t *tool_ch; /* the pool's idle connections (fds) */
	struct sockaddr_in tool_addr;
	myriad_infer_t *pool;
	uint64_t *lats;		    /* A * S steps, ns */
	_Atomic int64_t failures;   /* failed agents (the first is printed) */
	_Atomic int64_t retries;    /* tool connects retried */
	_Atomic int64_t llm_extra;  /* LLM attempts beyond the first */
	_Atomic uint64_t hash_sink; /* every agent's last hash, xor-ed */
} G;

static uint8_t agent_buf[AGENT_BUF];

/* The same bytes in every runner: byte i is i * 131 + 7 (mod 256). */
static void agent_buf_init(void)
{
	int i;

	for (i = 0; i < AGENT_BUF; i++)
		agent_buf[i] = (uint8_t)(i * 131 + 7);
}

/* FNV-1a (32 bit) over the buffer, AGENT_PASSES times, from 'seed'. */
static uint32_t agent_cpu(uint32_t seed)
{
	uint32_t h = 2166136261u ^ seed;
	int pass, i;

	for (pass = 0; pass < AGENT_PASSES; pass++)
		for (i = 0; i < AGENT_BUF; i++) {
			h ^= agent_buf[i];
			h *= 16777619u;
		}
	return h;
}

/* As echo_fail(): the first failure is printed, every one is counted. */
static void agent_fail(int64_t id, const char *what, int rc, const char *msg)
{
	if (rc == -ECANCELED && (atomic_load(&G.failures) || B.failed))
		return;
	if (atomic_fetch_add(&G.failures, 1) == 0)
		fprintf(stderr,
			id >= 0 ? "myriad-bench: agents: agent %" PRId64
				  ": %s: %s\n"
				: "myriad-bench: agents: tool connection %" PRId64
				  ": %s: %s\n",
			id >= 0 ? id : -1 - id, what,
			msg	 ? msg
			: rc < 0 ? strerror(-rc)
				 : "unexpected end of stream");
	myriad_waker_wake(B.root);
}

static bool agents_over(void)
{
	return run_over() || atomic_load(&G.failures);
}

struct agent {
	MYRIAD_CORO_FIELD;
	int fd;
	struct dialer dial; /* its own tool connection */
	int off, len;
	uint32_t hash;
	int64_t id, s;
	uint64_t t0;
	myriad_io_t op;		  /* connect, send, recv, close */
	myriad_infer_call_t call; /* the LLM call */
	myriad_timer_t tm;	  /* connect retries */
	char req[80];		  /* the tool request line */
	char ans[120];		  /* its answer, "ok " + the request */
	char msgs[160];		  /* the chat messages, JSON */
};

static int agent_step(myriad_task_t *self, void *p)
{
	struct agent *st = p;
	const struct myriad_infer_result *res;
	const char *nl;
	int rc;

	MYRIAD_BEGIN(st);
	if (G.tool_ch)
		goto steps; /* the shared pool's connections */
	/* The agent's own tool connection, kept for all its steps. */
	MYRIAD_IO(st, rc,
		  dial(self, &st->dial, &st->op, &st->tm, &G.tool_addr,
		       &G.retries));
	if (rc < 0) {
		agent_fail(st->id, st->dial.what, rc, NULL);
		return MYRIAD_DONE;
	}
	st->fd = rc;
steps:
	for (st->s = 0; st->s < G.steps; st->s++) {
		/* 1. CPU work. */
		st->t0 = myriad_now_ns();
		st->hash = agent_cpu((uint32_t)(st->id * 1000003 + st->s));
		/* 2. The tool call. */
		st->len = snprintf(st->req, sizeof(st->req),
				   "agent %" PRId64 " step %" PRId64
				   " fnv %08x\n",
				   st->id, st->s, st->hash);
		if (G.tool_ch) {
			MYRIAD_RECV(st, self, G.tool_ch, &st->fd, rc);
			if (rc < 0) {
				agent_fail(st->id, "tool connection pool", rc,
					   NULL);
				return MYRIAD_DONE;
			}
		}
		for (st->off = 0; st->off < st->len; st->off += rc) {
			MYRIAD_IO(st, rc,
				  myriad_io_send(self, &st->op, st->fd,
						 st->req + st->off,
						 (size_t)(st->len - st->off),
						 MSG_NOSIGNAL));
			if (rc <= 0) {
				agent_fail(st->id, "tool send", rc, NULL);
				goto out_close;
			}
		}
		/* The answer may come in pieces: read to its newline. */
		st->off = 0;
		do {
			if (st->off >= (int)sizeof(st->ans) - 1) {
				agent_fail(st->id, "tool answer", 0,
					   "longer than expected");
				goto out_close;
			}
			MYRIAD_IO(st, rc,
				  myriad_io_recv(self, &st->op, st->fd,
						 st->ans + st->off,
						 sizeof(st->ans) - 1 - st->off,
						 0));
			if (rc <= 0) {
				agent_fail(st->id, "tool recv", rc, NULL);
				goto out_close;
			}
			st->off += rc;
			nl = memchr(st->ans, '\n', (size_t)st->off);
		} while (!nl);
		if (st->off != st->len + 3 || memcmp(st->ans, "ok ", 3) ||
		    memcmp(st->ans + 3, st->req, (size_t)st->len)) {
			agent_fail(st->id, "tool answer", 0,
				   "not \"ok <request>\"");
			goto out_close;
		}
		/* Back to the pool (it has room for all of them). */
		if (G.tool_ch) {
			rc = myriad_chan_try_send(G.tool_ch, &st->fd);
			if (rc < 0) {
				agent_fail(st->id, "tool connection pool", rc,
					   NULL);
				goto out_close;
			}
			st->fd = -1;
		}
		/* 3. The LLM call. */
		snprintf(st->msgs, sizeof(st->msgs),
			 "[{\"role\":\"user\",\"content\":\"agent %" PRId64
			 " step %" PRId64 ": the tool said ok (fnv %08x)\"}]",
			 st->id, st->s, st->hash);
		MYRIAD_IO(st, rc,
			  myriad_infer_chat(self, G.pool, &st->call, st->msgs,
					    NULL));
		res = myriad_infer_result(&st->call);
		if (rc < 0) {
			agent_fail(st->id, "LLM call", rc,
				   res && res->error[0] ? res->error : NULL);
			goto out_close;
		}
		if (!res || !res->content || !res->content_len) {
			agent_fail(st->id, "LLM call", 0,
				   "empty choices[0].message.content");
			goto out_close;
		}
		G.lats[st->id * G.steps + st->s] = myriad_now_ns() - st->t0;
		if (res->attempts > 1)
			atomic_fetch_add(&G.llm_extra, res->attempts - 1);
		/* The parsed response is freed now, not at the next call. */
		myriad_infer_release(self, &st->call);
	}
	atomic_fetch_xor_explicit(&G.hash_sink, st->hash, memory_order_relaxed);
	if (G.tool_ch) {
		count_down();
		return MYRIAD_DONE;
	}
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	if (rc < 0) {
		agent_fail(st->id, "close", rc, NULL);
		return MYRIAD_DONE;
	}
	count_down();
	return MYRIAD_DONE;
out_close:
	/* After a failure: the kernel closes it at once, nothing to wait for. */
	if (st->fd >= 0)
		close(st->fd);
	MYRIAD_END(st);
}

/* One connection of the shared pool: connected, then made idle. */
struct tool_conn {
	MYRIAD_CORO_FIELD;
	int fd;
	struct dialer dial;
	int64_t id;
	myriad_io_t op;
	myriad_timer_t tm;
};

static int tool_conn_step(myriad_task_t *self, void *p)
{
	struct tool_conn *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, rc,
		  dial(self, &st->dial, &st->op, &st->tm, &G.tool_addr,
		       &G.retries));
	if (rc < 0) {
		agent_fail(-1 - st->id, st->dial.what, rc, NULL);
		return MYRIAD_DONE;
	}
	st->fd = rc;
	rc = myriad_chan_try_send(G.tool_ch, &st->fd);
	if (rc < 0) {
		agent_fail(-1 - st->id, "tool connection pool", rc, NULL);
		close(st->fd);
	}
	MYRIAD_END(st);
}

static int agents_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct tool_conn tc;
	struct agent a;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	/* The shared pool's connections, made beside the first agents. */
	for (st->i = 0; G.tool_ch && st->i < G.tool_conns; st->i++) {
		memset(&tc, 0, sizeof(tc));
		tc.id = st->i;
		spawn(self, tool_conn_step, &tc, sizeof(tc), 0);
	}
	for (st->i = 0; st->i < B.n && !B.failed && !G.failures; st->i++) {
		memset(&a, 0, sizeof(a));
		a.id = st->i;
		spawn(self, agent_step, &a, sizeof(a), 0);
		if ((st->i & 255) == 255)
			MYRIAD_YIELD(st);
	}
	MYRIAD_WAIT_UNTIL(st, agents_over());
	/* A failure ends the others: their calls return -ECANCELED. */
	if (B.failed || G.failures)
		myriad_task_cancel(self);
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

/*
 * The agents workload's servers (bench/servers/), when no --tool-port and
 * --llm-port are given: started here on ephemeral ports (--port 0, each
 * prints "PORT <n>"), from $MYRIAD_BENCH_SERVERS or the servers/ folder
 * beside this binary (build/bench/servers/), and stopped at exit. They are
 * separate processes: getrusage(RUSAGE_SELF) does not count them.
 */
struct server {
	const char *name;
	pid_t pid;
	int out; /* its stdout, kept open so that it never sees EPIPE */
};

static struct server servers[2] = { { "llm-server", -1, -1 },
				    { "tool-server", -1, -1 } };

/* How long a server may take to print its PORT line. */
#define SERVER_START_MS 10000

static void servers_stop(void)
{
	int i, status;

	for (i = 0; i < 2; i++) {
		if (servers[i].pid <= 0)
			continue;
		kill(servers[i].pid, SIGTERM);
		waitpid(servers[i].pid, &status, 0);
		servers[i].pid = -1;
		if (servers[i].out >= 0)
			close(servers[i].out);
		servers[i].out = -1;
	}
}

/* The folder of the servers: $MYRIAD_BENCH_SERVERS, else beside us. */
static int servers_dir(char *dir, size_t cap)
{
	const char *env = getenv("MYRIAD_BENCH_SERVERS");
	char exe[PATH_MAX], *slash;
	ssize_t n;

	if (env && *env)
		return (size_t)snprintf(dir, cap, "%s", env) < cap
			       ? 0
			       : -ENAMETOOLONG;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = 0;
	if ((size_t)snprintf(dir, cap, "%s/../servers", exe) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Start servers[k] with 'args' (NULL-terminated, after the program name)
 * and read its port. Returns the port, or -1 after saying why.
 */
static int server_start(const char *dir, int k, const char *const *args)
{
	struct server *s = &servers[k];
	char path[PATH_MAX + 32], line[128];
	const char *argv[16];
	size_t len = 0;
	uint64_t until;
	int fds[2], i, port = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, s->name);
	if (access(path, X_OK) < 0) {
		fprintf(stderr,
			"myriad-bench: agents: no %s (%s): build it (ninja -C build), set MYRIAD_BENCH_SERVERS to its folder, or pass --tool-port and --llm-port\n",
			path, strerror(errno));
		return -1;
	}
	argv[0] = path;
	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "myriad-bench: agents: pipe: %s\n",
			strerror(errno));
		return -1;
	}
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0) {
		fprintf(stderr, "myriad-bench: agents: fork: %s\n",
			strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (s->pid == 0) {
		/* The server dies with us, however we end. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(127);
		execv(path, (char *const *)argv);
		fprintf(stderr, "myriad-bench: agents: exec %s: %s\n", path,
			strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	s->out = fds[0];
	until = myriad_now_ns() + SERVER_START_MS * UINT64_C(1000000);
	while (port < 0) {
		struct pollfd pfd = { .fd = s->out, .events = POLLIN };
		int64_t left = (int64_t)(until - myriad_now_ns()) / 1000000;
		ssize_t n;
		char *nl;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			fprintf(stderr,
				"myriad-bench: agents: %s printed no PORT line in %d ms\n",
				s->name, SERVER_START_MS);
			return -1;
		}
		n = read(s->out, line + len, sizeof(line) - 1 - len);
		if (n <= 0) {
			fprintf(stderr,
				"myriad-bench: agents: %s ended before printing its port\n",
				s->name);
			return -1;
		}
		len += (size_t)n;
		line[len] = 0;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			if (sscanf(line, "PORT %d", &port) == 1 && port > 0 &&
			    port < 65536)
				break;
			port = -1;
			len -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, len + 1);
		}
		if (port < 0 && len >= sizeof(line) - 1) {
			fprintf(stderr,
				"myriad-bench: agents: %s: no PORT line\n",
				s->name);
			return -1;
		}
	}
	return port;
}

/* Both servers, with the workload's parameters; false after a message. */
static bool servers_start(void)
{
	char dir[PATH_MAX], ms[32], conc[32], tms[32];
	const char *llm[] = { "--port",	       "0",  "--llm-ms", ms,
			      "--concurrency", conc, NULL };
	const char *tool[] = { "--port", "0", "--tool-ms", tms, NULL };
	int r;

	r = servers_dir(dir, sizeof(dir));
	if (r < 0) {
		fprintf(stderr,
			"myriad-bench: agents: cannot find the servers' folder: %s\n",
			strerror(-r));
		return false;
	}
	snprintf(ms, sizeof(ms), "%" PRId64, G.llm_ms);
	snprintf(conc, sizeof(conc), "%" PRId64, G.llm_conc);
	snprintf(tms, sizeof(tms), "%" PRId64, G.tool_ms);
	atexit(servers_stop);
	if (!G.llm_port && (G.llm_port = server_start(dir, 0, llm)) < 0)
		return false;
	if (!G.tool_port && (G.tool_port = server_start(dir, 1, tool)) < 0)
		return false;
	return true;
}

/* ---- noisy: fib rounds while a CPU hog is pinned to one core ---- */

/*
 * As the Go and Tokio peers do it (bench/peers/):
 * - The hog: a process forked before the runtime exists (so it shares
 *   nothing with it), pinned with sched_setaffinity to CPU --hog-cpu
 *   (default 0), spinning in user space without system calls; the run
 *   starts once it says it is pinned, and it is killed (SIGKILL) after the
 *   last round. PR_SET_PDEATHSIG kills it if we die first.
 * - The work: --rounds (default 10) rounds, one after the other, each a
 *   fork-join fib(n) exactly as the fib workload (a task per call, no
 *   cutoff). tasks = rounds * (2 fib(n+1) - 1); tasks_per_s = tasks /
 *   wall_s, wall_s from the first spawn to the last round joined.
 * - The unit of p99_us: a fib(u) sub-job, u = n - 12 (at least 1), of
 *   which each round has fib(13) = 233 for n >= 13: its latency runs from
 *   the first step of the fib(u) call to its result (its whole subtree
 *   done), so a piece of it stuck on a worker the hog preempts shows.
 *   Nearest rank over every unit of every round (p50_us likewise).
 * - --policy default|kernel: myriad_policy_default or myriad_policy_kernel
 *   set explicitly (MYRIAD_POLICY is not read); with kernel, the signals'
 *   source (eBPF or /proc) goes to stderr.
 * MYRIAD_BENCH_NOISY_DEBUG=1 prints on stderr, every 20 ms, each worker's
 * signals over the period (time on CPU, run-queue delay, preemptions, its
 * CPU) and the active worker count the policy last chose (the kernel
 * policy is wrapped to see it; with the default policy the signals are
 * opened for the print, which the measured runs never do).
 */
#define NOISY_UNIT_DEPTH 12
#define NOISY_DEBUG_PERIOD_NS 20000000ull

static struct {
	int64_t rounds;
	int unit;		   /* u: the fib(u) calls are the units */
	int hog_cpu;		   /* -1: no hog (a diagnostic) */
	pid_t hog;		   /* the hog process, or -1 */
	bool kernel;		   /* --policy kernel */
	uint64_t *lats;		   /* every unit's latency, ns */
	size_t nlats;		   /* room in lats */
	_Atomic size_t next;	   /* the next free slot */
	_Atomic unsigned active;   /* debug: the policy's last answer */
	_Atomic int64_t bad_round; /* a round whose result was wrong */
} N = { .hog = -1 };

/* How many calls fib(u) makes in the tree of fib(n): 0 when n < u. */
static int64_t noisy_units_per_round(int n, int u)
{
	int64_t c[64] = { 0 };
	int j;

	for (j = 0; j <= n; j++)
		c[j] = j == u ? 1 : j > u && j >= 2 ? c[j - 1] + c[j - 2] : 0;
	return c[n];
}

struct nfib {
	MYRIAD_CORO_FIELD;
	int n;
	uint64_t t0; /* a unit's first step */
	myriad_task_t *a, *b;
};

static int noisy_fib_step(myriad_task_t *self, void *p)
{
	struct nfib *st = p;
	struct nfib c = { 0 };
	size_t k;

	MYRIAD_BEGIN(st);
	if (st->n == N.unit)
		st->t0 = myriad_now_ns();
	if (st->n < 2) {
		myriad_task_set_result(self, st->n);
	} else {
		c.n = st->n - 1;
		st->a = spawn(self, noisy_fib_step, &c, sizeof(c), 0);
		c.n = st->n - 2;
		st->b = spawn(self, noisy_fib_step, &c, sizeof(c), 0);
		MYRIAD_JOIN(st, self);
		myriad_task_set_result(self, myriad_task_result(st->a) +
						     myriad_task_result(st->b));
	}
	if (st->n == N.unit) {
		k = atomic_fetch_add_explicit(&N.next, 1, memory_order_relaxed);
		if (k < N.nlats)
			N.lats[k] = myriad_now_ns() - st->t0;
	}
	MYRIAD_END(st);
}

struct noisy_root {
	MYRIAD_CORO_FIELD;
	int64_t r;
	myriad_task_t *a;
};

static int noisy_root_step(myriad_task_t *self, void *p)
{
	struct noisy_root *st = p;
	struct nfib c = { 0 };

	MYRIAD_BEGIN(st);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->r = 0; st->r < N.rounds && !B.failed; st->r++) {
		c.n = (int)B.n;
		st->a = spawn(self, noisy_fib_step, &c, sizeof(c), 0);
		MYRIAD_JOIN(st, self);
		if (st->a)
			myriad_task_set_result(self, myriad_task_result(st->a));
	}
	clock_gettime(CLOCK_MONOTONIC, &B.t1);
	MYRIAD_END(st);
}

/* Exits 2 when 'cpu' is not one this process may run on. */
static void noisy_check_cpu(int cpu)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0) {
		fprintf(stderr, "myriad-bench: noisy: sched_getaffinity: %s\n",
			strerror(errno));
		exit(1);
	}
	if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set)) {
		fprintf(stderr,
			"myriad-bench: noisy: --hog-cpu %d is not in this process's CPU affinity mask\n",
			cpu);
		exit(2);
	}
}

/* The hog: forked, pinned, spinning; returns once it runs pinned. */
static bool noisy_hog_start(int cpu)
{
	pid_t parent = getpid();
	int fds[2];
	char c = 0;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "myriad-bench: noisy: pipe: %s\n",
			strerror(errno));
		return false;
	}
	fflush(NULL);
	N.hog = fork();
	if (N.hog < 0) {
		fprintf(stderr, "myriad-bench: noisy: fork: %s\n",
			strerror(errno));
		return false;
	}
	if (N.hog == 0) {
		cpu_set_t set;
		volatile uint64_t spin = 0;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		prctl(PR_SET_NAME, "myriad-hog");
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			_exit(3);
		if (write(fds[1], "r", 1) != 1)
			_exit(4);
		close(fds[1]);
		for (;;)
			spin++;
	}
	close(fds[1]);
	do
		n = read(fds[0], &c, 1);
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	if (n != 1) {
		fprintf(stderr,
			"myriad-bench: noisy: the hog could not pin itself to CPU %d\n",
			cpu);
		return false;
	}
	return true;
}

static void noisy_hog_stop(void)
{
	int status;

	if (N.hog <= 0)
		return;
	kill(N.hog, SIGKILL);
	waitpid(N.hog, &status, 0);
	N.hog = -1;
}

/* The kernel policy with active_workers watched (debug only). */
static struct myriad_policy_ops noisy_watched;

static unsigned noisy_watch_active(void *ctx)
{
	unsigned a = myriad_policy_kernel.active_workers(ctx);

	atomic_store_explicit(&N.active, a, memory_order_relaxed);
	return a;
}

/* MYRIAD_BENCH_NOISY_DEBUG: the signals per worker every 20 ms. */
static _Atomic bool noisy_debug_stop;

static void *noisy_debug_main(void *arg)
{
	myriad_rt_t *rt = arg;
	unsigned n = (unsigned)myriad_rt_workers(rt), i;
	struct myriad_worker_signals *prev = calloc(n, sizeof(*prev)), s;
	uint64_t t0 = myriad_now_ns(), last = t0, now;

	if (!prev)
		return NULL;
	for (i = 0; i < n; i++)
		myriad_rt_signals(rt, i, &prev[i]);
	while (!atomic_load(&noisy_debug_stop)) {
		struct timespec ts = { 0, (long)NOISY_DEBUG_PERIOD_NS };
		char line[512];
		int len;

		nanosleep(&ts, NULL);
		now = myriad_now_ns();
		len = snprintf(line, sizeof(line),
			       "noisy-debug t=%.3f active=%u", (now - t0) / 1e9,
			       atomic_load(&N.active));
		for (i = 0; i < n && len < (int)sizeof(line); i++) {
			if (myriad_rt_signals(rt, i, &s) < 0)
				break;
			len += snprintf(
				line + len, sizeof(line) - (size_t)len,
				" w%u[cpu=%d on=%.2f rq=%.2f pre=%" PRIu64 "]",
				i, s.cpu,
				(double)(s.oncpu_ns - prev[i].oncpu_ns) /
					(double)(now - last),
				(double)(s.rq_delay_ns - prev[i].rq_delay_ns) /
					(double)(now - last),
				s.preempt - prev[i].preempt);
			prev[i] = s;
		}
		last = now;
		fprintf(stderr, "%s\n", line);
	}
	free(prev);
	return NULL;
}

/* ---- driver ---- */

/*
 * Progress on stderr for runs over a second: a line a second with the
 * tasks still to finish, never on stdout (scripts read RESULT there).
 */
static _Atomic bool finished;

static void *progress(void *arg)
{
	const char *wl = arg;
	int secs = 0;

	for (;;) {
		usleep(100000);
		if (atomic_load(&finished))
			return NULL;
		if (++secs % 10)
			continue;
		fprintf(stderr, "myriad-bench: %s: running for %d s\n", wl,
			secs / 10);
	}
}

static int64_t parse_int(const char *flag, const char *v, int64_t lo,
			 int64_t hi)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi) {
		char msg[160];

		snprintf(msg, sizeof(msg), "bad value '%s' for %s", v, flag);
		usage(msg);
	}
	return x;
}

int main(int argc, char **argv)
{
	struct myriad_rt_opts o = { .sz = sizeof(o) };
	const char *wl;
	myriad_rt_t *rt;
	int64_t n = -1, tasks = 0, res = 0;
	int64_t tasks_opt = -1, yields = -1, pairs = -1, rounds = -1;
	int64_t sleep_ms = -1, conns = -1, overflows = -1;
	int64_t agents = -1, steps = -1, tool_ms = -1, llm_ms = -1;
	int64_t llm_conc = -1, tool_port = -1, llm_port = -1;
	int64_t tool_conns = -1;
	int64_t hog_cpu = -2;
	const char *policy = NULL;
	bool noisy_debug = false;
	pthread_t noisy_dbg;
	bool noisy_dbg_ok = false;
	struct noisy_root nroot = { 0 };
	struct rusage ru0, ru1;
	long rss_before = 0;
	unsigned workers = 0;
	int i, r, err;
	myriad_step_fn root = NULL;
	struct fib froot = { 0 };
	struct root rroot = { 0 };
	struct echo_root eroot = { 0 };
	double w, cpu_s = 0;

	if (argc < 2)
		usage("missing workload");
	wl = argv[1];
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (i + 1 >= argc)
			usage("flag without a value");
		if (!strcmp(a, "--workers"))
			workers = (unsigned)parse_int(a, argv[++i], 1,
						      MYRIAD_WORKERS_MAX);
		else if (!strcmp(a, "--n"))
			n = parse_int(a, argv[++i], 0, INT64_C(1) << 40);
		else if (!strcmp(a, "--tasks"))
			tasks_opt =
				parse_int(a, argv[++i], 1, INT64_C(1) << 32);
		else if (!strcmp(a, "--yields"))
			yields = parse_int(a, argv[++i], 0, INT64_C(1) << 40);
		else if (!strcmp(a, "--pairs"))
			pairs = parse_int(a, argv[++i], 1, INT64_C(1) << 24);
		else if (!strcmp(a, "--rounds"))
			rounds = parse_int(a, argv[++i], 0, INT64_C(1) << 40);
		else if (!strcmp(a, "--sleep-ms"))
			sleep_ms = parse_int(a, argv[++i], 0, INT64_C(1) << 32);
		else if (!strcmp(a, "--conns"))
			conns = parse_int(a, argv[++i], 1, INT64_C(1) << 20);
		else if (!strcmp(a, "--agents"))
			agents = parse_int(a, argv[++i], 1, INT64_C(1) << 24);
		else if (!strcmp(a, "--steps"))
			steps = parse_int(a, argv[++i], 1, INT64_C(1) << 20);
		else if (!strcmp(a, "--tool-ms"))
			tool_ms = parse_int(a, argv[++i], 0, 3600000);
		else if (!strcmp(a, "--llm-ms"))
			llm_ms = parse_int(a, argv[++i], 1, 3600000);
		else if (!strcmp(a, "--llm-concurrency"))
			llm_conc = parse_int(a, argv[++i], 1, 65535);
		else if (!strcmp(a, "--tool-port"))
			tool_port = parse_int(a, argv[++i], 1, 65535);
		else if (!strcmp(a, "--llm-port"))
			llm_port = parse_int(a, argv[++i], 1, 65535);
		else if (!strcmp(a, "--tool-conns"))
			tool_conns = parse_int(a, argv[++i], 1, 65536);
		else if (!strcmp(a, "--policy"))
			policy = argv[++i];
		else if (!strcmp(a, "--hog-cpu"))
			hog_cpu = parse_int(a, argv[++i], -1, CPU_SETSIZE - 1);
		else {
			char msg[160];

			snprintf(msg, sizeof(msg), "unknown flag '%s'", a);
			usage(msg);
		}
	}

	if (!strcmp(wl, "spawn") || !strcmp(wl, "chain")) {
		if (tasks_opt >= 0 || yields >= 0 || pairs >= 0 || rounds >= 0)
			usage("spawn and chain take --n only");
		B.n = n >= 0 ? n : 1000000;
		if (B.n < 1)
			usage("--n must be at least 1");
		tasks = B.n;
		root = !strcmp(wl, "spawn") ? spawn_root : chain_root;
	} else if (!strcmp(wl, "fib")) {
		if (sleep_ms >= 0)
			usage("fib takes --n only");
		if (tasks_opt >= 0 || yields >= 0 || pairs >= 0 || rounds >= 0)
			usage("fib takes --n only");
		B.n = n >= 0 ? n : 30;
		if (B.n > 40)
			usage("--n over 40 for fib");
		froot.n = (int)B.n;
	} else if (!strcmp(wl, "yield")) {
		if (n >= 0 || pairs >= 0 || rounds >= 0)
			usage("yield takes --tasks and --yields");
		B.n = tasks_opt >= 0 ? tasks_opt : 1000;
		B.m = yields >= 0 ? yields : 1000;
		tasks = B.n;
		root = yield_root;
	} else if (!strcmp(wl, "pingpong")) {
		if (n >= 0 || tasks_opt >= 0 || yields >= 0)
			usage("pingpong takes --pairs and --rounds");
		B.n = pairs >= 0 ? pairs : 1000;
		B.m = rounds >= 0 ? rounds : 1000;
		tasks = 2 * B.n;
		root = pingpong_root;
	} else if (!strcmp(wl, "park")) {
		if (tasks_opt >= 0 || yields >= 0 || pairs >= 0 || rounds >= 0)
			usage("park takes --n and --sleep-ms");
		B.n = n >= 0 ? n : 1000000;
		if (B.n < 1)
			usage("--n must be at least 1");
		park_ns =
			(uint64_t)(sleep_ms >= 0 ? sleep_ms : 20000) * 1000000u;
		tasks = B.n;
		root = park_root;
	} else if (!strcmp(wl, "echo")) {
		if (n >= 0 || tasks_opt >= 0 || yields >= 0 || pairs >= 0)
			usage("echo takes --conns and --rounds");
		B.n = conns >= 0 ? conns : 10000;
		B.m = rounds >= 0 ? rounds : 100;
		if (B.m < 1)
			usage("--rounds must be at least 1 for echo");
		tasks = B.n;
	} else if (!strcmp(wl, "agents")) {
		if (n >= 0 || tasks_opt >= 0 || yields >= 0 || pairs >= 0 ||
		    rounds >= 0)
			usage("agents takes --agents --steps --tool-ms --llm-ms --llm-concurrency --tool-port --llm-port");
		B.n = agents >= 0 ? agents : 10000;
		G.steps = steps >= 0 ? steps : 10;
		G.tool_ms = tool_ms >= 0 ? tool_ms : 2;
		G.llm_ms = llm_ms >= 0 ? llm_ms : 20;
		G.llm_conc = llm_conc >= 0 ? llm_conc : 256;
		G.tool_port = tool_port >= 0 ? (int)tool_port : 0;
		G.llm_port = llm_port >= 0 ? (int)llm_port : 0;
		G.tool_conns = tool_conns >= 0 ? tool_conns : 0;
		if (B.n * G.steps > INT64_C(1) << 28)
			usage("--agents times --steps over 2^28");
		tasks = B.n;
	} else if (!strcmp(wl, "noisy")) {
		if (tasks_opt >= 0 || yields >= 0 || pairs >= 0)
			usage("noisy takes --n --policy --rounds --hog-cpu");
		B.n = n >= 0 ? n : 30;
		if (B.n < 2 || B.n > 40)
			usage("--n from 2 to 40 for noisy");
		N.rounds = rounds >= 0 ? rounds : 10;
		if (N.rounds < 1)
			usage("--rounds must be at least 1 for noisy");
		if (!policy)
			policy = "default";
		if (strcmp(policy, "default") && strcmp(policy, "kernel"))
			usage("--policy is default or kernel");
		N.kernel = !strcmp(policy, "kernel");
		N.hog_cpu = hog_cpu >= -1 ? (int)hog_cpu : 0;
		N.unit = B.n - NOISY_UNIT_DEPTH >= 1
				 ? (int)B.n - NOISY_UNIT_DEPTH
				 : 1;
		N.nlats = (size_t)(N.rounds *
				   noisy_units_per_round((int)B.n, N.unit));
		noisy_debug = getenv("MYRIAD_BENCH_NOISY_DEBUG") &&
			      *getenv("MYRIAD_BENCH_NOISY_DEBUG") &&
			      strcmp(getenv("MYRIAD_BENCH_NOISY_DEBUG"), "0");
	} else {
		usage("unknown workload");
	}
	if ((policy || hog_cpu >= -1) && strcmp(wl, "noisy"))
		usage("--policy and --hog-cpu are for noisy only");
	if ((agents >= 0 || steps >= 0 || tool_ms >= 0 || llm_ms >= 0 ||
	     llm_conc >= 0 || tool_port >= 0 || llm_port >= 0 ||
	     tool_conns >= 0) &&
	    strcmp(wl, "agents"))
		usage("--agents, --steps, --tool-ms, --llm-ms, --llm-concurrency, --tool-port, --llm-port and --tool-conns are for agents only");

	if (sleep_ms >= 0 && strcmp(wl, "park"))
		usage("--sleep-ms is for park only");
	if (conns >= 0 && strcmp(wl, "echo"))
		usage("--conns is for echo only");
	if (!strcmp(wl, "echo")) {
		raise_nofile((uint64_t)(2 * B.n + ECHO_SPARE_FDS),
			     "echo (2 per connection and some to spare)",
			     "--conns", 2, ECHO_SPARE_FDS);
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
	}
	if (!strcmp(wl, "agents")) {
		/*
		 * A tool connection per agent (or the shared pool's) and the
		 * LLM pool's connections. Agents beyond what the descriptor
		 * limit holds share a pool of the connections it has room
		 * for (at most AGENT_POOL_MAX), said on stderr.
		 */
		if (!G.tool_conns) {
			uint64_t room = nofile_max();
			uint64_t other = (uint64_t)G.llm_conc + AGENT_SPARE_FDS;

			if ((uint64_t)B.n + other > room) {
				G.tool_conns = room > other + 16
						       ? (int64_t)(room - other)
						       : 16;
				if (G.tool_conns > AGENT_POOL_MAX)
					G.tool_conns = AGENT_POOL_MAX;
				fprintf(stderr,
					"myriad-bench: agents: %" PRId64
					" agents do not fit one tool connection each in RLIMIT_NOFILE %" PRIu64
					": they share a pool of %" PRId64
					" (--tool-conns)\n",
					B.n, room, G.tool_conns);
			}
		}
		raise_nofile(
			(uint64_t)((G.tool_conns ? G.tool_conns : B.n) +
				   G.llm_conc + AGENT_SPARE_FDS),
			G.tool_conns
				? "agents (the tool connection pool, the LLM connections and some to spare)"
				: "agents (a tool connection per agent, the LLM connections and some to spare)",
			G.tool_conns ? "--tool-conns" : "--agents", 1,
			(uint64_t)G.llm_conc + AGENT_SPARE_FDS);
		G.lats = calloc((size_t)(B.n * G.steps), sizeof(*G.lats));
		if (!G.lats) {
			fprintf(stderr,
				"myriad-bench: agents: out of memory\n");
			return 1;
		}
		agent_buf_init();
		/* Before any thread exists: the servers are forked. */
		if ((!G.tool_port || !G.llm_port) && !servers_start())
			return 1;
		memset(&G.tool_addr, 0, sizeof(G.tool_addr));
		G.tool_addr.sin_family = AF_INET;
		G.tool_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		G.tool_addr.sin_port = htons((uint16_t)G.tool_port);
	}
	if (!strcmp(wl, "noisy")) {
		N.lats = calloc(N.nlats, sizeof(*N.lats));
		if (!N.lats) {
			fprintf(stderr, "myriad-bench: noisy: out of memory\n");
			return 1;
		}
		if (N.kernel && noisy_debug) {
			noisy_watched = myriad_policy_kernel;
			noisy_watched.active_workers = noisy_watch_active;
			o.policy = &noisy_watched;
		} else {
			o.policy = N.kernel ? &myriad_policy_kernel
					    : &myriad_policy_default;
		}
		if (noisy_debug && !N.kernel)
			o.signals = 1;
		/* Before any thread exists: the hog is forked. */
		if (N.hog_cpu >= 0) {
			noisy_check_cpu(N.hog_cpu);
			atexit(noisy_hog_stop);
			if (!noisy_hog_start(N.hog_cpu))
				return 1;
		}
	}
	o.workers = workers;
	rt = myriad_rt_create(&o, &err);
	if (!rt) {
		fprintf(stderr, "myriad-bench: myriad_rt_create: %s\n",
			strerror(-err));
		return 1;
	}
	workers = (unsigned)myriad_rt_workers(rt);
	atomic_store(&B.left, tasks);
	if (!strcmp(wl, "noisy")) {
		const char *why = "";
		int src = myriad_rt_signals_source(rt, &why);

		atomic_store(&N.active, workers);
		if (N.kernel || noisy_debug)
			fprintf(stderr,
				"myriad-bench: noisy: policy %s, signals from %s%s%s\n",
				policy,
				src == MYRIAD_SIG_BPF	 ? "eBPF"
				: src == MYRIAD_SIG_PROC ? "/proc"
							 : "nowhere",
				why && *why ? ": " : "", why ? why : "");
	}
	nshards = workers;
	shards = aligned_alloc(64, sizeof(*shards) * nshards);
	if (!shards)
		return 1;
	memset(shards, 0, sizeof(*shards) * nshards);

	if (!strcmp(wl, "agents")) {
		struct myriad_infer_opts io = { .sz = sizeof(io) };
		struct myriad_infer_endpoint ep = { .sz = sizeof(ep) };
		char url[64];

		G.pool = myriad_infer_create(rt, &io, &err);
		if (!G.pool) {
			fprintf(stderr,
				"myriad-bench: agents: myriad_infer_create: %s\n",
				strerror(-err));
			return 1;
		}
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", G.llm_port);
		ep.base_url = url;
		ep.model = "mock";
		ep.window = (unsigned)G.llm_conc;
		err = myriad_infer_add(G.pool, &ep);
		if (err < 0) {
			fprintf(stderr,
				"myriad-bench: agents: myriad_infer_add: %s\n",
				strerror(-err));
			return 1;
		}
		if (G.tool_conns) {
			G.tool_ch = myriad_chan_create(
				rt, sizeof(int), (size_t)G.tool_conns, &err);
			if (!G.tool_ch) {
				fprintf(stderr,
					"myriad-bench: agents: the tool connection pool: %s\n",
					strerror(-err));
				return 1;
			}
		}
	}

	if (!strcmp(wl, "pingpong")) {
		B.chans = calloc((size_t)(2 * B.n), sizeof(*B.chans));
		for (i = 0; i < 2 * B.n; i++) {
			B.chans[i] = myriad_chan_create(rt, sizeof(int64_t), 1,
							&err);
			if (!B.chans[i]) {
				fprintf(stderr, "chan_create: %s\n",
					strerror(-err));
				return 1;
			}
		}
	}

	rss_before = status_kb("VmRSS:");
	pthread_t prog;
	bool prog_ok = pthread_create(&prog, NULL, progress, (void *)wl) == 0;

	if (!strcmp(wl, "fib")) {
		r = myriad_rt_block_on(rt, fib_root, &froot, sizeof(froot),
				       &res);
		/* fib(n) makes 2 fib(n+1) - 1 calls. */
		int64_t a = 0, b = 1, k;

		for (k = 0; k <= B.n; k++) {
			int64_t c = a + b;

			a = b;
			b = c;
		}
		tasks = 2 * a - 1;
	} else if (!strcmp(wl, "echo")) {
		int64_t after;

		overflows = listen_overflows();
		r = myriad_rt_block_on(rt, echo_root, &eroot, sizeof(eroot),
				       NULL);
		after = listen_overflows();
		overflows =
			overflows >= 0 && after >= 0 ? after - overflows : -1;
	} else if (!strcmp(wl, "noisy")) {
		int64_t a = 0, b = 1, k, c;

		if (noisy_debug)
			noisy_dbg_ok =
				pthread_create(&noisy_dbg, NULL,
					       noisy_debug_main, rt) == 0;
		r = myriad_rt_block_on(rt, noisy_root_step, &nroot,
				       sizeof(nroot), &res);
		noisy_hog_stop();
		if (noisy_dbg_ok) {
			atomic_store(&noisy_debug_stop, true);
			pthread_join(noisy_dbg, NULL);
		}
		for (k = 0; k <= B.n; k++) {
			c = a + b;
			a = b;
			b = c;
		}
		/* a = fib(n + 1): fib(n) makes 2 fib(n + 1) - 1 calls. */
		tasks = N.rounds * (2 * a - 1);
		if (r >= 0 && !B.failed && res != b - a) {
			fprintf(stderr,
				"myriad-bench: noisy: fib(%" PRId64
				") came out %" PRId64 ", not %" PRId64 "\n",
				B.n, res, b - a);
			return 1;
		}
	} else if (!strcmp(wl, "agents")) {
		/* The CPU of this process only: the servers are others. */
		getrusage(RUSAGE_SELF, &ru0);
		r = myriad_rt_block_on(rt, agents_root, &rroot, sizeof(rroot),
				       NULL);
		getrusage(RUSAGE_SELF, &ru1);
		cpu_s = cpu_seconds(&ru1) - cpu_seconds(&ru0);
	} else {
		r = myriad_rt_block_on(rt, root, &rroot, sizeof(rroot), NULL);
	}
	atomic_store(&finished, true);
	if (prog_ok)
		pthread_join(prog, NULL);
	if (B.failed) {
		fprintf(stderr, "myriad-bench: spawn: %s\n",
			strerror(-B.failed));
		return 1;
	}
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
	if (G.failures) {
		fprintf(stderr,
			"myriad-bench: agents: %" PRId64
			" agents failed (the first above)\n",
			atomic_load(&G.failures));
		return 1;
	}
	/* After the failures, which the echo root ends by cancelling itself. */
	if (r < 0) {
		fprintf(stderr, "myriad-bench: run: %s\n", strerror(-r));
		return 1;
	}
	if (E.retries)
		fprintf(stderr,
			"myriad-bench: echo: %" PRId64 " connects retried\n",
			atomic_load(&E.retries));
	if (G.retries)
		fprintf(stderr,
			"myriad-bench: agents: %" PRId64
			" tool connects retried\n",
			atomic_load(&G.retries));
	if (G.llm_extra)
		fprintf(stderr,
			"myriad-bench: agents: %" PRId64
			" LLM attempts retried by the client\n",
			atomic_load(&G.llm_extra));
	if (overflows > 0)
		fprintf(stderr,
			"myriad-bench: echo: the kernel dropped %" PRId64
			" connections on a full accept queue (ListenOverflows); their clients waited for SYN-ACK retransmissions\n",
			overflows);
	if (getenv("MYRIAD_BENCH_STATS")) {
		uint64_t c[MYRIAD_CTR__COUNT];
		unsigned k, j;

		for (k = 0; k < workers; k++) {
			if (myriad_rt_counters(rt, k, c, MYRIAD_CTR__COUNT) < 0)
				break;
			fprintf(stderr, "worker %u:", k);
			for (j = 0; j < MYRIAD_CTR__COUNT; j++)
				fprintf(stderr, " %s=%" PRIu64,
					myriad_counter_name(j), c[j]);
			fprintf(stderr, "\n");
		}
	}
	if (B.chans) {
		for (i = 0; i < 2 * B.n; i++)
			myriad_chan_destroy(B.chans[i]);
		free(B.chans);
	}
	if (G.tool_ch) {
		int fd;

		while (myriad_chan_try_recv(G.tool_ch, &fd) == 0)
			close(fd);
		myriad_chan_destroy(G.tool_ch);
	}
	if (G.pool) {
		r = myriad_infer_destroy(G.pool);
		if (r < 0) {
			fprintf(stderr,
				"myriad-bench: agents: myriad_infer_destroy: %s\n",
				strerror(-r));
			return 1;
		}
	}
	r = myriad_rt_destroy(rt);
	if (r < 0) {
		fprintf(stderr, "myriad-bench: destroy: %s\n", strerror(-r));
		return 1;
	}
	if (E.lfd >= 0)
		close(E.lfd);

	w = wall_s();
	if (w <= 0)
		w = 1e-9;
	printf("RESULT workload=%s workers=%u wall_s=%.6f tasks=%" PRId64
	       " peak_rss_kb=%ld",
	       wl, workers, w, tasks, peak_rss_kb());
	if (!strcmp(wl, "spawn"))
		printf(" tasks_per_s=%.0f ns_per_task=%.1f", tasks / w,
		       w * 1e9 / tasks);
	else if (!strcmp(wl, "chain"))
		printf(" tasks_per_s=%.0f", tasks / w);
	else if (!strcmp(wl, "fib"))
		printf(" result=%" PRId64 " tasks_per_s=%.0f", res, tasks / w);
	else if (!strcmp(wl, "yield"))
		printf(" switches_per_s=%.0f", (double)B.n * B.m / w);
	else if (!strcmp(wl, "pingpong"))
		printf(" msgs_per_s=%.0f", 2.0 * B.n * B.m / w);
	else if (!strcmp(wl, "park")) {
		struct rusage ru;
		int64_t am = atomic_load(&alive_max);

		getrusage(RUSAGE_SELF, &ru);
		printf(" alive_max=%lld bytes_per_task=%.1f spawn_s=%.6f"
		       " late_ms=%.3f minflt=%ld",
		       (long long)am,
		       am ? (status_kb("VmHWM:") - rss_before) * 1024.0 / am
			  : 0.0,
		       now_s(&B.t_spawned) - now_s(&B.t0), park_late_ns() / 1e6,
		       ru.ru_minflt);
	} else if (!strcmp(wl, "echo")) {
		size_t nl = (size_t)(B.n * B.m);

		/* The nearest rank, as the peers. A round trip is a message. */
		qsort(E.lats, nl, sizeof(*E.lats), cmp_u64);
		printf(" msgs_per_s=%.0f p99_us=%.1f", (double)nl / w,
		       E.lats[(nl * 99 + 99) / 100 - 1] / 1e3);
		/* A diagnostic key of the peers' too, not in BENCH.md. */
		if (overflows >= 0)
			printf(" listen_overflows=%" PRId64, overflows);
	} else if (!strcmp(wl, "agents")) {
		size_t nl = (size_t)(B.n * G.steps);
		double sps = (double)nl / w;

		/* Nearest rank, as the peers. */
		qsort(G.lats, nl, sizeof(*G.lats), cmp_u64);
		printf(" steps_per_s=%.1f cpu_s_per_step=%.9f p50_ms=%.3f"
		       " p99_ms=%.3f bound_frac=%.4f",
		       sps, cpu_s / (double)nl,
		       G.lats[(nl * 50 + 99) / 100 - 1] / 1e6,
		       G.lats[(nl * 99 + 99) / 100 - 1] / 1e6,
		       sps / ((double)G.llm_conc * 1000.0 / (double)G.llm_ms));
		/* Not in BENCH.md: how the tool calls connect, and memory. */
		printf(" tool_conns=%" PRId64 " bytes_per_agent=%.0f",
		       G.tool_conns ? G.tool_conns : B.n,
		       peak_rss_kb() * 1024.0 / (double)B.n);
	} else if (!strcmp(wl, "noisy")) {
		size_t nl = atomic_load(&N.next);

		if (nl > N.nlats)
			nl = N.nlats;
		/* Nearest rank over every unit, as the peers. */
		qsort(N.lats, nl, sizeof(*N.lats), cmp_u64);
		printf(" policy=%s tasks_per_s=%.0f p99_us=%.1f p50_us=%.1f"
		       " hog_cpu=%d unit_n=%d units=%zu",
		       policy, tasks / w,
		       nl ? N.lats[(nl * 99 + 99) / 100 - 1] / 1e3 : 0.0,
		       nl ? N.lats[(nl * 50 + 99) / 100 - 1] / 1e3 : 0.0,
		       N.hog_cpu, N.unit, nl);
	}
	printf("\n");
	return 0;
}
