/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net.h: what the socket tests (tests/io/net_*.c, one scenario
 * each, on 127.0.0.1) share: a listener, a connected pair, a byte pattern,
 * and a main that runs the scenario on a runtime of --workers workers.
 */
#ifndef MYRIAD_TESTS_IO_NET_H
#define MYRIAD_TESTS_IO_NET_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "helpers.h"

/* The runtime of the scenario (net_main's), and its worker count. */
static myriad_rt_t *rt;
static unsigned nworkers;

/* 50 ms: the deadlines of the recv and task deadline scenarios. */
#define DL_NS 50000000ull

/* A socket listening on 127.0.0.1 at an ephemeral port, or -errno. */
static inline int listen_any(struct sockaddr_in *addr, int backlog)
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

static inline void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A connected TCP pair made with blocking calls: fds[0] the client. */
static inline void tcp_pair(int fds[2])
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

/*
 * A scenario's main: --workers, a 120 s watchdog, SIGPIPE ignored, and,
 * with 'with_rt', 'rt' on nworkers workers around 'test' (the scenarios
 * that make runtimes of their own run without it).
 */
static inline int net_main(int argc, char **argv, const char *name,
			   void (*test)(void), bool with_rt)
{
	t_name = name;
	nworkers = t_parse_workers(argc, argv);
	t_watchdog(120);
	signal(SIGPIPE, SIG_IGN);
	if (with_rt)
		rt = t_rt_new(nworkers);
	test();
	if (with_rt)
		t_rt_done(rt);
	return t_result();
}

#endif
