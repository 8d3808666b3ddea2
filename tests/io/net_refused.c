/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_refused.c: a connect to a port bound and not listening:
 * -ECONNREFUSED.
 *   net_refused [--workers N]
 */
#include "net.h"

/* ---- a refused connect ---- */

struct refused {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	struct sockaddr_in addr;
	int fd;
};

static int refused_step(myriad_task_t *self, void *p)
{
	struct refused *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	st->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(st->fd >= 0, "socket");
	MYRIAD_IO(st, rc,
		  myriad_io_connect(self, &st->op, st->fd,
				    (struct sockaddr *)&st->addr,
				    sizeof(st->addr)));
	CHECK_ERR(rc, -ECONNREFUSED);
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	CHECK_ERR(rc, 0);
	MYRIAD_END(st);
}

static void test_refused(void)
{
	struct refused rf;
	int bound;

	t_phase("connect refused");
	/* Bound and not listening: the port is ours and refuses. */
	memset(&rf, 0, sizeof(rf));
	bound = listen_any(&rf.addr, -1);
	CHECK_EQ(t_run(rt, refused_step, &rf, sizeof(rf), NULL, "refused"), 0);
	close(bound);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_refused", test_refused, true);
}
