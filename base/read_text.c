/* SPDX-License-Identifier: MIT */
/*
 * base/read_text.c: read a small text file (a /proc file) whole in one
 * read, retried on EINTR.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "read_text.h"

int read_text(const char *path, char *buf, size_t len)
{
	ssize_t r;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do
		r = read(fd, buf, len - 1);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		r = -errno;
		close(fd);
		return (int)r;
	}
	close(fd);
	buf[r] = '\0';
	return (int)r;
}
