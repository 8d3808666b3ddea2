/* SPDX-License-Identifier: MIT */
/*
 * servers/srv.c: what the mock servers and the load generator share (see
 * srv.h): the clock, the timer heap, sockets, a server's event loop and
 * its non-blocking receive loop, option values and the PRNG.
 */
#include "srv.h"

uint64_t srv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void srv_die(const char *prog, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

void *srv_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return q;
}

static void heap_swap(struct srv_heap *h, uint32_t a, uint32_t b)
{
	struct srv_timer *t = h->v[a];

	h->v[a] = h->v[b];
	h->v[b] = t;
	h->v[a]->idx = a + 1;
	h->v[b]->idx = b + 1;
}

static void heap_up(struct srv_heap *h, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (h->v[p]->at <= h->v[i]->at)
			break;
		heap_swap(h, p, i);
		i = p;
	}
}

static void heap_down(struct srv_heap *h, uint32_t i)
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

void srv_timer_del(struct srv_heap *h, struct srv_timer *t)
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

void srv_timer_set(struct srv_heap *h, struct srv_timer *t, uint64_t at)
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
struct srv_timer *srv_timer_expired(struct srv_heap *h, uint64_t now)
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
static int srv_epoll_wait(int ep, struct epoll_event *ev, int n,
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
long srv_raise_nofile(void)
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

static int srv_somaxconn(void)
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
int srv_listen(const char *addr, int port, int reuseport, int *bound)
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
int srv_signals(void)
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

/*
 * l's epoll with its listener on addr:port (see srv_listen), and the
 * signalfd sfd unless it is -1; exits after a message when it cannot.
 */
void srv_loop_open(struct srv_loop *l, const char *addr, int port,
		   int reuseport, int *bound, int sfd)
{
	struct epoll_event ev = { .events = EPOLLIN };

	l->sfd = sfd;
	l->lfd = srv_listen(addr, port, reuseport, bound);
	if (l->lfd < 0)
		srv_die(l->prog, "listen");
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0)
		srv_die(l->prog, "epoll_create1");
	ev.data.ptr = &l->lfd;
	epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &ev);
	if (sfd >= 0) {
		ev.data.ptr = &l->sfd;
		epoll_ctl(l->ep, EPOLL_CTL_ADD, sfd, &ev);
	}
}

/*
 * Accept what the backlog holds, 256 at the most in one go, each
 * connection non-blocking with TCP_NODELAY and handed to conn_new.
 */
static void srv_accept(struct srv_loop *l)
{
	int i;

	for (i = 0; i < 256; i++) {
		int one = 1, fd;

		if (l->full(l))
			goto pause;
		fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				goto pause;
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (l->conn_new(l, fd) < 0)
			return;
	}
	return;
pause : {
	/* Leave the rest in the backlog until a connection closes. */
	struct epoll_event ev = { .events = 0, .data.ptr = &l->lfd };

	l->accept_paused = 1;
	epoll_ctl(l->ep, EPOLL_CTL_MOD, l->lfd, &ev);
}
}

/* A connection closed: accept again if accepting paused. */
void srv_accept_resume(struct srv_loop *l)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &l->lfd };

	if (l->accept_paused && !l->full(l)) {
		l->accept_paused = 0;
		epoll_ctl(l->ep, EPOLL_CTL_MOD, l->lfd, &ev);
	}
}

/*
 * A new connection's fd in l's epoll, edge-triggered for input, output
 * and the peer's shutdown, with conn as its data. -1 when epoll refuses
 * it: fd is closed and conn (from malloc) freed.
 */
int srv_conn_add(struct srv_loop *l, int fd, void *conn)
{
	struct epoll_event ev;

	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = conn;
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		free(conn);
		return -1;
	}
	return 0;
}

/*
 * Read what c's socket has into buf[*len, cap) (edge-triggered: until
 * EAGAIN, or a short read unless the peer has shut down). discard:
 * what is read is dropped (*len back to 0 before each read). Returns
 * SRV_RECV_AGAIN when the socket has nothing more, SRV_RECV_FULL when buf
 * is (read again when there is room), SRV_RECV_CLOSED on EOF or an error.
 */
int srv_recv(struct srv_conn *c, char *buf, size_t *len, size_t cap,
	     int discard)
{
	for (;;) {
		size_t room;
		ssize_t n;

		if (discard)
			*len = 0;
		room = cap - *len;
		if (!room)
			return SRV_RECV_FULL;
		n = recv(c->fd, buf + *len, room, 0);
		if (n > 0) {
			*len += (size_t)n;
			if ((size_t)n < room && !c->rdhup)
				return SRV_RECV_AGAIN;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return SRV_RECV_AGAIN;
		return SRV_RECV_CLOSED;
	}
}

/* Read on where reading paused, now that the request before is answered. */
int srv_resume(struct srv_loop *l, struct srv_conn *c)
{
	if (!c->rpaused)
		return 0;
	c->rpaused = 0;
	return l->read(c);
}

/*
 * Close our side (FIN) and arm t for ns from now: the caller discards
 * what the client still sends until it closes too or t fires, since
 * closing with unread input would send an RST that can destroy the answer
 * before the client reads it. -1 if the shutdown failed.
 */
int srv_linger(struct srv_loop *l, int fd, struct srv_timer *t, uint64_t ns)
{
	if (shutdown(fd, SHUT_WR))
		return -1;
	srv_timer_set(&l->heap, t, l->now + ns);
	return 0;
}

/*
 * Run l until its signalfd is readable: wait until the earliest timer,
 * accept, read and kick the connections that have events, then run the
 * timers due.
 */
void srv_run(struct srv_loop *l)
{
	struct epoll_event evs[1024];

	l->now = srv_now_ns();
	for (;;) {
		struct srv_timer *t;
		int n, i;

		n = srv_epoll_wait(l->ep, evs, 1024, &l->heap, l->now);
		l->now = srv_now_ns();
		if (n < 0 && errno != EINTR)
			srv_die(l->prog, "epoll_wait");
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			struct srv_conn *c = p;

			if (p == &l->lfd) {
				srv_accept(l);
				continue;
			}
			if (p == &l->sfd)
				return;
			if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				c->rdhup = 1;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP |
					     EPOLLERR) &&
			    !c->rpaused && l->read(c) < 0)
				continue;
			l->kick(c);
		}
		while ((t = srv_timer_expired(&l->heap, l->now)))
			l->timer((struct srv_conn *)t);
	}
}

/* Option values: exit 2 with a message on a bad one. */
double srv_arg_double(const char *prog, const char *opt, const char *v,
		      double lo, double hi)
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

long long srv_arg_int(const char *prog, const char *opt, const char *v,
		      long long lo, long long hi)
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
uint64_t srv_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
double srv_rand01(uint64_t *s)
{
	return (double)(srv_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}
