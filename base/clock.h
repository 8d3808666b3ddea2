/* SPDX-License-Identifier: MIT */
/*
 * base/clock.h: the library's one clock helper (any clock in nanoseconds,
 * CLOCK_MONOTONIC for myriad_now_ns()) and its conversion to a timespec.
 */
#ifndef MYRIAD_BASE_CLOCK_H
#define MYRIAD_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Clock 'clk' now, in nanoseconds; 0 when it cannot be read. */
static inline uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A span (or a CLOCK_MONOTONIC time) of 'ns' nanoseconds as a timespec. */
static inline struct timespec ns_timespec(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };

	return ts;
}

#endif
