/* SPDX-License-Identifier: MIT */
/*
 * base/read_text.h: read a small text file (a /proc file) whole in one
 * read, retried on EINTR; for the library and the tools.
 */
#ifndef MYRIAD_READ_TEXT_H
#define MYRIAD_READ_TEXT_H

#include <stddef.h>

/*
 * Open 'path', read at most len - 1 bytes into 'buf' in one read(2)
 * (retried while EINTR), NUL-terminate, close. Returns the bytes read, or
 * -errno (the open's: -ENOENT when there is no such file).
 */
int read_text(const char *path, char *buf, size_t len);

#endif
