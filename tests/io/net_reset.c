/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_reset.c: a peer that resets the connection, before a recv is
 * submitted or while it is in the kernel: -ECONNRESET or end of stream.
 *   net_reset [--workers N]
 */
#include "net.h"

/* ---- a peer that resets ---- */

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

static void test_reset(void)
{
	struct reset_victim v[NRESET];
	myriad_handle_t *h[NRESET];
	int fds[2], i;

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
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_reset", test_reset, true);
}
