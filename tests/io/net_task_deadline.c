/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_task_deadline.c: a task deadline cancels a subtree's
 * operations with -ETIME; deadlines already passed; a root's deadline.
 *   net_task_deadline [--workers N]
 */
#include "net.h"

/* recv(2) of what is there or arrives within 5 s: a count or -errno. */
static int recv_wait(int fd, void *buf, size_t len)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	ssize_t r;

	if (poll(&pf, 1, 5000 * T_SLOW) < 0)
		return -errno;
	r = recv(fd, buf, len, MSG_DONTWAIT);
	return r < 0 ? -errno : (int)r;
}

/* ---- a task deadline cancels a subtree's operations ---- */

static _Atomic int tdl_etime;

struct tdl_grandchild {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd;
	char buf[8];
};

static int tdl_grandchild_step(myriad_task_t *self, void *p)
{
	struct tdl_grandchild *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	CHECK_ERR(myriad_task_cancel_reason(self), -ETIME);
	if (rc == -ETIME)
		atomic_fetch_add(&tdl_etime, 1);
	MYRIAD_END(st);
}

struct tdl_child {
	MYRIAD_CORO_FIELD;
	myriad_io_t dl, op;
	int fd, fd2;
	uint64_t deadline;
	myriad_task_t *gc;
	char buf[8];
};

static int tdl_child_step(myriad_task_t *self, void *p)
{
	struct tdl_child *st = p;
	struct tdl_grandchild g;
	int64_t late;
	int rc;

	MYRIAD_BEGIN(st);
	CHECK_EQ(myriad_task_cancel_reason(self), 0);
	/* Set far, then moved nearer: the second setting counts. */
	CHECK_EQ(myriad_task_deadline(self, &st->dl,
				      myriad_now_ns() + 3600000000000ull),
		 0);
	st->deadline = myriad_now_ns() + DL_NS;
	CHECK_EQ(myriad_task_deadline(self, &st->dl, st->deadline), 0);
	memset(&g, 0, sizeof(g));
	g.fd = st->fd2;
	st->gc = myriad_task_spawn(self, tdl_grandchild_step, &g, sizeof(g), 0,
				   NULL);
	REQUIRE(st->gc, "spawn");
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	late = (int64_t)(myriad_now_ns() - st->deadline);
	CHECK(late > -1000000, "a task deadline fired %lld us early",
	      (long long)-late / 1000);
	/* How late is the machine's (the join's watchdog ends a lost one). */
	printf("net: a task deadline fired %.3f ms after it\n", late / 1e6);
	CHECK(myriad_task_cancelled(self), "not cancelled after its deadline");
	CHECK_ERR(myriad_task_cancel_reason(self), -ETIME);
	if (rc == -ETIME)
		atomic_fetch_add(&tdl_etime, 1);
	/* New operations fail at once with the same reason. */
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	MYRIAD_JOIN(st, self);
	/* An ancestor's deadline: -ETIME too. */
	CHECK_ERR(myriad_task_status(st->gc), -ETIME);
	MYRIAD_END(st);
}

/*
 * A deadline already passed ('back' ns ago, 1 ns or 10 ms): -ETIME and
 * cancelled at once (io.h), whatever the timer's resolution.
 */
struct tdl_past {
	MYRIAD_CORO_FIELD;
	myriad_io_t dl, op;
	int fd;
	uint64_t back;
	char buf[8];
};

static int tdl_past_step(myriad_task_t *self, void *p)
{
	struct tdl_past *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	rc = myriad_task_deadline(self, &st->dl, myriad_now_ns() - st->back);
	CHECK(rc == -ETIME,
	      "a deadline %llu ns in the past: expected -ETIME, got %d",
	      (unsigned long long)st->back, rc);
	CHECK(myriad_task_cancelled(self),
	      "a deadline %llu ns in the past: not cancelled",
	      (unsigned long long)st->back);
	CHECK_ERR(myriad_task_cancel_reason(self), -ETIME);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	MYRIAD_END(st);
}

struct tdl_parent {
	MYRIAD_CORO_FIELD;
	int fd, fd2;
	myriad_task_t *c, *past[2];
};

static int tdl_parent_step(myriad_task_t *self, void *p)
{
	struct tdl_parent *st = p;
	struct tdl_child c;
	struct tdl_past pt;

	MYRIAD_BEGIN(st);
	memset(&c, 0, sizeof(c));
	c.fd = st->fd;
	c.fd2 = st->fd2;
	st->c = myriad_task_spawn(self, tdl_child_step, &c, sizeof(c), 0, NULL);
	memset(&pt, 0, sizeof(pt));
	pt.fd = st->fd;
	pt.back = 10000000;
	st->past[0] = myriad_task_spawn(self, tdl_past_step, &pt, sizeof(pt), 0,
					NULL);
	pt.back = 1;
	st->past[1] = myriad_task_spawn(self, tdl_past_step, &pt, sizeof(pt), 0,
					NULL);
	REQUIRE(st->c && st->past[0] && st->past[1], "spawn");
	MYRIAD_JOIN(st, self);
	/* Cancelled by their own deadlines: -ETIME (task.h). */
	CHECK_ERR(myriad_task_status(st->c), -ETIME);
	CHECK_ERR(myriad_task_status(st->past[0]), -ETIME);
	CHECK_ERR(myriad_task_status(st->past[1]), -ETIME);
	CHECK(!myriad_task_cancelled(self), "a child's deadline cancelled "
					    "its parent");
	CHECK_EQ(myriad_task_cancel_reason(self), 0);
	MYRIAD_END(st);
}

/*
 * A root task's deadline: its handle's join says it was cancelled
 * (rt.h: -ECANCELED, "finished after being cancelled").
 */
struct tdl_root {
	MYRIAD_CORO_FIELD;
	myriad_io_t dl, op;
	int fd;
	char buf[8];
};

static int tdl_root_step(myriad_task_t *self, void *p)
{
	struct tdl_root *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	CHECK_EQ(myriad_task_deadline(self, &st->dl, myriad_now_ns() + DL_NS),
		 0);
	MYRIAD_IO(st, rc,
		  myriad_io_recv(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -ETIME);
	CHECK_ERR(myriad_task_cancel_reason(self), -ETIME);
	myriad_task_set_result(self, 77);
	MYRIAD_END(st);
}

static void test_task_deadline(void)
{
	struct tdl_parent pp;
	struct tdl_root tr;
	int64_t res = 0;
	int a[2], b[2];
	char c[4];

	t_phase("task deadline");
	memset(&pp, 0, sizeof(pp));
	tcp_pair(a);
	tcp_pair(b);
	pp.fd = a[0];
	pp.fd2 = b[0];
	CHECK_EQ(t_run(rt, tdl_parent_step, &pp, sizeof(pp), NULL,
		       "task deadline"),
		 0);
	CHECK_EQ(atomic_load(&tdl_etime), 2);
	memset(&tr, 0, sizeof(tr));
	tr.fd = a[0];
	CHECK_ERR(t_run(rt, tdl_root_step, &tr, sizeof(tr), &res,
			"root deadline"),
		  -ECANCELED);
	CHECK_EQ(res, 77);
	/* The timed-out recvs took nothing: data sent now stays for us. */
	CHECK_EQ(send(a[1], "x", 1, MSG_NOSIGNAL), 1);
	CHECK_EQ(send(b[1], "y", 1, MSG_NOSIGNAL), 1);
	CHECK_EQ(recv_wait(a[0], c, sizeof(c)), 1);
	CHECK_EQ(c[0], 'x');
	CHECK_EQ(recv_wait(b[0], c, sizeof(c)), 1);
	CHECK_EQ(c[0], 'y');
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_task_deadline", test_task_deadline,
			true);
}
