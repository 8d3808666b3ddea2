/* SPDX-License-Identifier: MIT */
/*
 * servers/srv.h: what the mock servers and the load generator share,
 * header-only so that each program still builds alone with `cc -O2 -o X X.c`:
 * a monotonic clock, a timer min-heap, epoll waits to the nanosecond,
 * listening sockets, the descriptor limit, option parsing and a PRNG.
 *
 * These programs use plain epoll, not myriad: they are the fixed ground
 * every runtime is measured against, so they must behave the same for
 * each of them and must not share (or be slowed by) the scheduler under
 * test.
 */
#ifndef SERVERS_SRV_H
#define SERVERS_SRV_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SRV_UNUSED __attribute__((unused))

static SRV_UNUSED uint64_t srv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static SRV_UNUSED void srv_die(const char *prog, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static SRV_UNUSED void *srv_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return q;
}

/*
 * The timer heap: a binary min-heap of pointers to timers embedded in the
 * owner's record. idx is the slot + 1, 0 when the timer is not armed, so
 * that a timer can be re-armed or removed in O(log n) when its connection
 * goes away.
 */
struct srv_timer {
	uint64_t at; /* CLOCK_MONOTONIC ns */
	uint32_t idx;
};

struct srv_heap {
	struct srv_timer **v;
	uint32_t n, cap;
};

static SRV_UNUSED void heap_swap(struct srv_heap *h, uint32_t a, uint32_t b)
{
	struct srv_timer *t = h->v[a];

	h->v[a] = h->v[b];
	h->v[b] = t;
	h->v[a]->idx = a + 1;
	h->v[b]->idx = b + 1;
}

static SRV_UNUSED void heap_up(struct srv_heap *h, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (h->v[p]->at <= h->v[i]->at)
			break;
		heap_swap(h, p, i);
		i = p;
	}
}

static SRV_UNUSED void heap_down(struct srv_heap *h, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && h->v[l]->at < h->v[m]->at)
			m = l;
		if (r < h->n && h->v[r]->at < h->v[m]->at)
			m = r;
		if (m == i)
			break;
		heap_swap(h, i, m);
		i = m;
	}
}

static SRV_UNUSED void srv_timer_del(struct srv_heap *h, struct srv_timer *t)
{
	uint32_t i;

	if (!t->idx)
		return;
	i = t->idx - 1;
	t->idx = 0;
	if (i == --h->n)
		return;
	h->v[i] = h->v[h->n];
	h->v[i]->idx = i + 1;
	heap_down(h, i);
	heap_up(h, i);
}

static SRV_UNUSED void srv_timer_set(struct srv_heap *h, struct srv_timer *t,
				     uint64_t at)
{
	srv_timer_del(h, t);
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 1024;
		h->v = srv_xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	t->at = at;
	h->v[h->n] = t;
	t->idx = ++h->n;
	heap_up(h, h->n - 1);
}

/* The earliest timer due at or before now, taken off the heap; or NULL. */
static SRV_UNUSED struct srv_timer *srv_timer_expired(struct srv_heap *h,
						      uint64_t now)
{
	struct srv_timer *t;

	if (!h->n || h->v[0]->at > now)
		return NULL;
	t = h->v[0];
	srv_timer_del(h, t);
	return t;
}

/*
 * epoll_wait until the earliest timer, to the nanosecond where the kernel
 * has epoll_pwait2 (5.11): a millisecond-rounded timeout would stretch
 * every 20 ms service by up to 5% and lower the bound the benchmark is
 * held against.
 */
static SRV_UNUSED int srv_epoll_wait(int ep, struct epoll_event *ev, int n,
				     struct srv_heap *h, uint64_t now)
{
	static int no_pwait2;
	uint64_t d;
	int r;

	if (!h->n)
		return epoll_wait(ep, ev, n, -1);
	d = h->v[0]->at > now ? h->v[0]->at - now : 0;
#ifdef SYS_epoll_pwait2
	if (!no_pwait2) {
		struct timespec ts = { (time_t)(d / 1000000000ull),
				       (long)(d % 1000000000ull) };

		r = (int)syscall(SYS_epoll_pwait2, ep, ev, n, &ts, NULL, 0);
		if (r >= 0 || errno != ENOSYS)
			return r;
		no_pwait2 = 1;
	}
#endif
	return epoll_wait(ep, ev, n, (int)((d + 999999) / 1000000));
}

/* Raise RLIMIT_NOFILE to the hard limit; the new soft limit. */
static SRV_UNUSED long srv_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

static SRV_UNUSED int srv_somaxconn(void)
{
	int v = 4096;
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");

	if (f) {
		if (fscanf(f, "%d", &v) != 1 || v < 128)
			v = 4096;
		fclose(f);
	}
	return v;
}

/*
 * A non-blocking listening socket on addr:port (port 0: ephemeral; with
 * reuseport, SO_REUSEPORT so that each thread can listen on the same port).
 * Returns the fd and stores the bound port, or -1 with errno.
 */
static SRV_UNUSED int srv_listen(const char *addr, int port, int reuseport,
				 int *bound)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int one = 1, fd;

	a.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(fd, srv_somaxconn()) ||
	    getsockname(fd, (struct sockaddr *)&a, &al)) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

/*
 * SIGPIPE ignored (a write to a closed peer returns EPIPE); SIGTERM and
 * SIGINT blocked (also in every thread created after this) and read from
 * the returned signalfd by the main loop, which then exits 0. Their
 * dispositions go back to the default first: a shell starts background
 * jobs with SIGINT ignored, and an ignored signal never reaches a
 * signalfd.
 */
static SRV_UNUSED int srv_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -1;
	/* Timers here are a few ms: the default 50 us slack is noise, keep
	 * it small anyway. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Option values: exit 2 with a message on a bad one. */
static SRV_UNUSED double srv_arg_double(const char *prog, const char *opt,
					const char *v, double lo, double hi)
{
	char *end;
	double d;

	if (!v) {
		fprintf(stderr, "%s: %s needs a value\n", prog, opt);
		exit(2);
	}
	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= lo && d <= hi)) {
		fprintf(stderr, "%s: %s: '%s' is not a number in [%g, %g]\n",
			prog, opt, v, lo, hi);
		exit(2);
	}
	return d;
}

static SRV_UNUSED long long srv_arg_int(const char *prog, const char *opt,
					const char *v, long long lo,
					long long hi)
{
	char *end;
	long long x;

	if (!v) {
		fprintf(stderr, "%s: %s needs a value\n", prog, opt);
		exit(2);
	}
	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi) {
		fprintf(stderr,
			"%s: %s: '%s' is not an integer in [%lld, %lld]\n",
			prog, opt, v, lo, hi);
		exit(2);
	}
	return x;
}

/* splitmix64: seeded, fast, good enough to pick which requests fail. */
static SRV_UNUSED uint64_t srv_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static SRV_UNUSED double srv_rand01(uint64_t *s)
{
	return (double)(srv_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
