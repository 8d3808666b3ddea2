/* SPDX-License-Identifier: MIT */
/*
 * bpf/log_capture.c: libbpf's messages captured around the loaders' own
 * libbpf calls, into a buffer the caller keeps a copy of.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "log_capture.h"

/*
 * libbpf's messages. libbpf_set_print() is process-wide: we install our
 * printer only around our own libbpf calls (serialised by log_lock) and
 * put the previous one back, so that they land in the caller's log and
 * never on stderr, and an application's own libbpf use is left alone.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[8192];
static size_t log_len;
static libbpf_print_fn_t log_prev;

static int log_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int r;

	if (level == LIBBPF_DEBUG || log_len >= sizeof(log_buf) - 1)
		return 0;
	r = vsnprintf(log_buf + log_len, sizeof(log_buf) - log_len, fmt, ap);
	if (r > 0)
		log_len += (size_t)r;
	if (log_len > sizeof(log_buf) - 1)
		log_len = sizeof(log_buf) - 1;
	return 0;
}

void log_capture_begin(void)
{
	pthread_mutex_lock(&log_lock);
	log_len = 0;
	log_buf[0] = '\0';
	log_prev = libbpf_set_print(log_print);
}

void log_capture_end(char **keep)
{
	libbpf_set_print(log_prev);
	if (keep && log_len) {
		free(*keep);
		*keep = strdup(log_buf);
	}
	pthread_mutex_unlock(&log_lock);
}
