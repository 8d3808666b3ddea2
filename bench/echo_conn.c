/* SPDX-License-Identifier: MIT */
/*
 * bench/echo_conn.c: the server side of one echo connection (echo_conn.h):
 * a recv into a provided buffer, the bytes sent back, the buffer released.
 */
#include <sys/socket.h>

#include "echo_conn.h"

int echo_conn_step(myriad_task_t *self, void *p)
{
	struct echo_conn *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (;;) {
		/* No buffer is held while the connection waits for data. */
		MYRIAD_IO(st, rc,
			  myriad_io_recv_buf(self, &st->rop, st->fd, &st->data,
					     0));
		if (rc <= 0) {
			if (rc < 0)
				st->ops->fail(st, "recv", rc);
			break;
		}
		if (st->ops->received)
			st->ops->received(st, rc);
		st->len = rc;
		for (st->off = 0; st->off < st->len; st->off += rc) {
			MYRIAD_IO(
				st, rc,
				myriad_io_send(self, &st->sop, st->fd,
					       (const char *)st->data + st->off,
					       (size_t)(st->len - st->off),
					       MSG_NOSIGNAL));
			if (rc <= 0)
				break;
			if (st->ops->sent)
				st->ops->sent(st, rc);
		}
		if (rc <= 0) {
			st->ops->fail(st, "send", rc);
			break;
		}
		/* Sent: the buffer goes back to the ring. */
		rc = myriad_io_buf_release(self, &st->rop);
		if (rc < 0) {
			st->ops->fail(st, "buf_release", rc);
			break;
		}
	}
	/* On an error too: the client then sees the end and stops. */
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->sop, st->fd));
	if (rc < 0)
		st->ops->fail(st, "close", rc);
	st->ops->closed(st);
	MYRIAD_END(st);
}
