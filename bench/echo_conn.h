/* SPDX-License-Identifier: MIT */
/*
 * bench/echo_conn.h: the server side of one echo connection, a task that
 * sends back what comes until the client closes; myriad-bench's echo
 * workload and the test tests/io/net_echo.c both run it.
 */
#ifndef MYRIAD_BENCH_ECHO_CONN_H
#define MYRIAD_BENCH_ECHO_CONN_H

#include <myriad.h>

struct echo_conn;

/* What the user of echo_conn_step hears of a connection. */
struct echo_conn_ops {
	/*
	 * A call failed ('what': "recv", "send", "buf_release", "close"):
	 * rc < 0, or 0 for a send that took nothing. The connection then
	 * closes (the close's own failure ends it anyway).
	 */
	void (*fail)(struct echo_conn *c, const char *what, int rc);
	/* recv_buf gave 'n' > 0 bytes at c->data (NULL: not told). */
	void (*received)(struct echo_conn *c, int n);
	/* A send took 'n' > 0 bytes (NULL: not told). */
	void (*sent)(struct echo_conn *c, int n);
	/* Closed: the last call on the connection, its task ends. */
	void (*closed)(struct echo_conn *c);
};

/*
 * The task's state: spawn echo_conn_step with 'fd' (an accepted
 * connection, owned from then on) and 'ops' set, the rest zero.
 */
struct echo_conn {
	MYRIAD_CORO_FIELD;
	int fd;
	int len, off;
	const void *data; /* the provided buffer, held by 'rop' */
	myriad_io_t rop;  /* the recv (and its buffer) */
	myriad_io_t sop;  /* sends, then the close */
	const struct echo_conn_ops *ops;
};

int echo_conn_step(myriad_task_t *self, void *p);

#endif
