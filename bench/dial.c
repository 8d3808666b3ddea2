/* SPDX-License-Identifier: MIT */
/*
 * bench/dial.c: a TCP connect with retries inside a task's step, as the
 * peers do it: the echo clients' and the agents' tool connections.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

int set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

static bool connect_retryable(int rc)
{
	return rc == -ECONNREFUSED || rc == -EAGAIN || rc == -EADDRNOTAVAIL ||
	       rc == -ECONNRESET;
}

int dial(myriad_task_t *self, struct dialer *d, myriad_io_t *op,
	 myriad_timer_t *tm, const struct sockaddr_in *addr,
	 _Atomic int64_t *retries)
{
	int rc;

	for (;;) {
		if (d->stage == DIAL_SLEEPING) {
			rc = myriad_sleep(self, tm,
					  UINT64_C(10000000) << d->attempt);
			if (rc == -EAGAIN)
				return rc;
			if (rc < 0) {
				d->what = "sleep";
				return rc;
			}
			d->attempt++;
			d->stage = DIAL_NEW;
		}
		if (d->stage == DIAL_NEW) {
			d->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (d->fd < 0) {
				d->what = "socket";
				return -errno;
			}
			d->stage = DIAL_CONNECTING;
		}
		rc = myriad_io_connect(self, op, d->fd,
				       (const struct sockaddr *)addr,
				       sizeof(*addr));
		if (rc == -EAGAIN)
			return rc;
		d->stage = DIAL_NEW;
		if (rc == 0) {
			rc = set_nodelay(d->fd);
			if (rc == 0)
				return d->fd;
			close(d->fd);
			d->what = "TCP_NODELAY";
			return rc;
		}
		/* A socket whose connect failed is not tried again. */
		close(d->fd);
		if (!connect_retryable(rc) || d->attempt >= ECHO_RETRIES) {
			d->what = "connect";
			return rc;
		}
		atomic_fetch_add(retries, 1);
		d->stage = DIAL_SLEEPING;
	}
}
