/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_accept_cancel.c: a cancel after the kernel ended a multishot
 * accept (a full completion queue) still ends it.
 *   net_accept_cancel [--workers N]
 */
#include "net.h"

/* ---- a cancel after the kernel ended the multishot accept ---- */

/*
 * One worker, a completion queue of 32 entries (ring_entries 8), and 64
 * connections made with blocking calls in one step of another task, so
 * that the worker reaps nothing meanwhile: the kernel posts accepts until
 * the completion queue is full, then ends the multishot with the last
 * descriptor and no IORING_CQE_F_MORE, and the rest wait in the backlog.
 * A cancel then, before the task's next call arms the accept again, must
 * still end it: the queued descriptors, then -ECANCELED, never a new
 * multishot that takes what waits in the backlog (the echo test once hung
 * on that: its last accept armed again and waited for no one).
 */
#define OVF_CONNS 64

struct ovf_dialer {
	MYRIAD_CORO_FIELD;
	struct sockaddr_in addr;
	int *fds;
};

static int ovf_dial_step(myriad_task_t *self, void *p)
{
	struct ovf_dialer *st = p;
	int i;

	(void)self;
	for (i = 0; i < OVF_CONNS; i++) {
		st->fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(st->fds[i] >= 0, "socket: %s", strerror(errno));
		REQUIRE(connect(st->fds[i], (struct sockaddr *)&st->addr,
				sizeof(st->addr)) == 0,
			"connect %d: %s", i, strerror(errno));
	}
	return MYRIAD_DONE;
}

struct ovf_out {
	int got, end;
	int fds[OVF_CONNS];
};

struct ovf_root {
	MYRIAD_CORO_FIELD;
	myriad_io_t acc;
	struct sockaddr_in addr;
	int lfd;
	struct ovf_out *out;
};

static int ovf_root_step(myriad_task_t *self, void *p)
{
	struct ovf_root *st = p;
	struct ovf_dialer d;
	int rc, err = 0;

	MYRIAD_BEGIN(st);
	rc = myriad_io_accept(self, &st->acc, st->lfd, SOCK_CLOEXEC);
	REQUIRE(rc == -EAGAIN, "accept: expected -EAGAIN (armed), got %d", rc);
	memset(&d, 0, sizeof(d));
	d.addr = st->addr;
	d.fds = st->out->fds;
	REQUIRE(myriad_task_spawn(self, ovf_dial_step, &d, sizeof(d), 0, &err),
		"spawn: %d", err);
	MYRIAD_JOIN(st, self);
	CHECK_EQ(myriad_io_cancel(self, &st->acc), 0);
	/*
	 * Fewer than all: a multishot armed again takes the backlog, and
	 * its last call would wait for a connection that never comes.
	 */
	for (st->out->got = 0; st->out->got < OVF_CONNS; st->out->got++) {
		MYRIAD_IO(st, rc,
			  myriad_io_accept(self, &st->acc, st->lfd,
					   SOCK_CLOEXEC));
		if (rc < 0) {
			st->out->end = rc;
			break;
		}
		close(rc);
	}
	MYRIAD_END(st);
}

static void test_accept_cancel_ended(void)
{
	struct ovf_out out;
	struct ovf_root r;
	struct myriad_rt_opts o;
	myriad_rt_t *r2;
	int err = 0, i;

	t_phase("cancel after the kernel ended the multishot accept");
	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = 1;
	o.ring_entries = 8;
	r2 = myriad_rt_create(&o, &err);
	REQUIRE(r2, "myriad_rt_create: %d", err);
	memset(&out, 0, sizeof(out));
	for (i = 0; i < OVF_CONNS; i++)
		out.fds[i] = -1;
	memset(&r, 0, sizeof(r));
	r.lfd = listen_any(&r.addr, OVF_CONNS * 2);
	r.out = &out;
	CHECK_EQ(t_run(r2, ovf_root_step, &r, sizeof(r), NULL, "ovf"), 0);
	printf("net: cancelled accept: %d of %d connections, then %d\n",
	       out.got, OVF_CONNS, out.end);
	CHECK(out.got < OVF_CONNS,
	      "all %d connections accepted after the cancel: a new multishot "
	      "was armed",
	      OVF_CONNS);
	CHECK_ERR(out.end, -ECANCELED);
	t_rt_done(r2);
	close(r.lfd);
	for (i = 0; i < OVF_CONNS; i++)
		if (out.fds[i] >= 0)
			close(out.fds[i]);
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_accept_cancel",
			test_accept_cancel_ended, false);
}
