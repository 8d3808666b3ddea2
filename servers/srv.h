/* SPDX-License-Identifier: MIT */
/*
 * servers/srv.h: what the mock servers and the load generator share
 * (srv.c): a monotonic clock, a timer min-heap, epoll waits to the
 * nanosecond, listening sockets, the event loop of a server (accepting,
 * the non-blocking receive loop), the descriptor limit, option parsing
 * and a PRNG.
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

/*
 * What a server's connection record starts with: its timer (first: the
 * heap hands back &c->tm, the record), its socket, and the state of its
 * receive side.
 */
struct srv_conn {
	struct srv_timer tm;
	int fd;
	uint8_t rdhup;	 /* the peer shut its side: read to EOF */
	uint8_t rpaused; /* read buffer full: read again later */
};

/*
 * One event loop (a thread's): its epoll, listener, signalfd (-1: not
 * watched here), timers and the clock as read after each wait. A server
 * embeds it in its own loop state and fills in the operations; srv_run
 * drives it.
 */
struct srv_loop {
	int ep, lfd, sfd;
	int accept_paused;
	uint64_t now;
	struct srv_heap heap;
	const char *prog;
	/* No more connections may open now: accepting pauses. */
	int (*full)(struct srv_loop *l);
	/* Take the accepted fd (srv_conn_add); -1: stop accepting now. */
	int (*conn_new)(struct srv_loop *l, int fd);
	/*
	 * A connection with events: read what came (unless reading
	 * paused), -1 if that freed it; then drive it on (kick). And a
	 * connection whose timer is due.
	 */
	int (*read)(struct srv_conn *c);
	void (*kick)(struct srv_conn *c);
	void (*timer)(struct srv_conn *c);
};

/* Results of srv_recv. */
enum { SRV_RECV_CLOSED = -1, SRV_RECV_AGAIN, SRV_RECV_FULL };

uint64_t srv_now_ns(void);
void srv_die(const char *prog, const char *what);
void *srv_xrealloc(void *p, size_t n);

void srv_timer_del(struct srv_heap *h, struct srv_timer *t);
void srv_timer_set(struct srv_heap *h, struct srv_timer *t, uint64_t at);
struct srv_timer *srv_timer_expired(struct srv_heap *h, uint64_t now);

long srv_raise_nofile(void);
int srv_listen(const char *addr, int port, int reuseport, int *bound);
int srv_signals(void);

void srv_loop_open(struct srv_loop *l, const char *addr, int port,
		   int reuseport, int *bound, int sfd);
void srv_run(struct srv_loop *l);
void srv_accept_resume(struct srv_loop *l);
int srv_conn_add(struct srv_loop *l, int fd, void *conn);
int srv_recv(struct srv_conn *c, char *buf, size_t *len, size_t cap,
	     int discard);
int srv_resume(struct srv_loop *l, struct srv_conn *c);
int srv_linger(struct srv_loop *l, int fd, struct srv_timer *t, uint64_t ns);

double srv_arg_double(const char *prog, const char *opt, const char *v,
		      double lo, double hi);
long long srv_arg_int(const char *prog, const char *opt, const char *v,
		      long long lo, long long hi);
uint64_t srv_rand(uint64_t *s);
double srv_rand01(uint64_t *s);

#endif
