/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_deadline.c: a recv with a deadline: -ETIME when nothing comes,
 * the data when it comes first, no deadline left behind.
 *   net_deadline [--workers N]
 */
#include "net.h"

/* ---- a recv with a deadline ---- */

struct dl_task {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	myriad_timer_t tm;
	int fd, peer;
	uint64_t dl, t0;
	char buf[16];
};

static int dl_step(myriad_task_t *self, void *p)
{
	struct dl_task *st = p;
	int64_t late;
	int rc;

	MYRIAD_BEGIN(st);
	/* 1. Nothing comes: -ETIME, not early (how late is the machine's). */
	st->dl = myriad_now_ns() + DL_NS;
	CHECK_EQ(myriad_io_deadline(&st->op, st->dl), 0);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	late = (int64_t)(myriad_now_ns() - st->dl);
	CHECK(late > -1000000, "a recv deadline fired %lld us early",
	      (long long)-late / 1000);
	printf("net: a recv deadline fired %.3f ms after it\n", late / 1e6);
	/* The deadline is not the task's: it is not cancelled. */
	CHECK(!myriad_task_cancelled(self), "cancelled by an op deadline");
	CHECK_EQ(myriad_task_cancel_reason(self), 0);

	/*
	 * 2. Data before a far deadline: the data, and at once: a recv that
	 *    waited for its deadline (an hour) would end in the watchdog.
	 */
	st->t0 = myriad_now_ns();
	CHECK_EQ(myriad_io_deadline(&st->op, st->t0 + 3600000000000ull), 0);
	rc = myriad_io_recv(self, &st->op, st->fd, st->buf, sizeof(st->buf), 0);
	CHECK_ERR(rc, -EAGAIN);
	/* In flight: the deadline cannot change. */
	CHECK_ERR(myriad_io_deadline(&st->op, st->t0 + 1), -EBUSY);
	CHECK_EQ(send(st->peer, "hello", 5, MSG_NOSIGNAL), 5);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_EQ(rc, 5);
	CHECK(rc == 5 && !memcmp(st->buf, "hello", 5), "got '%.*s'",
	      rc > 0 ? rc : 0, st->buf);

	/* 3. The deadline was cleared: a recv without one outlives 50 ms. */
	rc = myriad_io_recv(self, &st->op, st->fd, st->buf, sizeof(st->buf), 0);
	CHECK_ERR(rc, -EAGAIN);
	MYRIAD_SLEEP(st, self, &st->tm, 2 * DL_NS, rc);
	CHECK_EQ(rc, 0);
	CHECK_EQ(send(st->peer, "later", 5, MSG_NOSIGNAL), 5);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_EQ(rc, 5);
	CHECK(rc == 5 && !memcmp(st->buf, "later", 5), "got '%.*s'",
	      rc > 0 ? rc : 0, st->buf);
	MYRIAD_END(st);
}

static void test_deadline(void)
{
	struct dl_task d;
	int fds[2];

	t_phase("recv with a deadline");
	memset(&d, 0, sizeof(d));
	tcp_pair(fds);
	d.fd = fds[0];
	d.peer = fds[1];
	CHECK_EQ(t_run(rt, dl_step, &d, sizeof(d), NULL, "deadline"), 0);
	close(fds[0]);
	close(fds[1]);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_deadline", test_deadline, true);
}
