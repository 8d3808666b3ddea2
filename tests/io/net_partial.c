/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_partial.c: partial sends and small receives: 1 MiB sent through
 * a small send buffer, read back in pieces of 1 to 1500 bytes, a reply
 * read 13 bytes at a time.
 *   net_partial [--workers N]
 */
#include "net.h"

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

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_partial", test_partial, true);
}
