/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_bad_args.c: misuse of the I/O calls (outside a task, NULL
 * records, MSG_DONTWAIT): -EINVAL.
 *   net_bad_args [--workers N]
 */
#include "net.h"

/* ---- misuse ---- */

static int bad_args_step(myriad_task_t *self, void *p)
{
	myriad_io_t *op = p;
	char buf[4];

	/* Not the running task. */
	CHECK_ERR(myriad_io_recv(NULL, op, 0, buf, sizeof(buf), 0), -EINVAL);
	CHECK_ERR(myriad_io_recv(self, NULL, 0, buf, sizeof(buf), 0), -EINVAL);
	CHECK_ERR(myriad_io_send(self, NULL, 0, buf, sizeof(buf), 0), -EINVAL);
	CHECK_ERR(myriad_io_accept(self, NULL, 0, 0), -EINVAL);
	CHECK_ERR(myriad_io_connect(self, NULL, 0, NULL, 0), -EINVAL);
	CHECK_ERR(myriad_io_recv_buf(self, op, 0, NULL, 0), -EINVAL);
	CHECK_ERR(myriad_io_buf_release(self, NULL), -EINVAL);
	CHECK_ERR(myriad_task_deadline(self, NULL, 1), -EINVAL);
	CHECK_ERR(myriad_task_deadline(NULL, op, 1), -EINVAL);
	CHECK_EQ(myriad_io_buf_release(self, op), 0); /* holds none */
	/* -EAGAIN means "in flight": MSG_DONTWAIT is refused (io.h). */
	CHECK_ERR(myriad_io_recv(self, op, 0, buf, sizeof(buf), MSG_DONTWAIT),
		  -EINVAL);
	CHECK_ERR(myriad_io_send(self, op, 1, buf, sizeof(buf), MSG_DONTWAIT),
		  -EINVAL);
	return MYRIAD_DONE;
}

static void test_bad_args(void)
{
	myriad_io_t op;
	char buf[4];

	t_phase("bad arguments");
	memset(&op, 0, sizeof(op));
	/* Outside any task. */
	CHECK_ERR(myriad_io_recv(NULL, &op, 0, buf, sizeof(buf), 0), -EINVAL);
	CHECK_ERR(myriad_io_deadline(NULL, 1), -EINVAL);
	CHECK_ERR(myriad_io_cancel(NULL, &op), -EINVAL);
	CHECK_EQ(t_run(rt, bad_args_step, &op, sizeof(op), NULL, "bad args"),
		 0);
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_bad_args", test_bad_args, true);
}
