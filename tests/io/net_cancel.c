/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_cancel.c: myriad_io_cancel of a recv, in the step that queued
 * it and once in the kernel; the cancelled recvs take no data.
 *   net_cancel [--workers N]
 */
#include "net.h"

/* ---- myriad_io_cancel ---- */

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

static void test_cancel(void)
{
	struct cancel_task c;
	int fds[2];

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

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_cancel", test_cancel, true);
}
