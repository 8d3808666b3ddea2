/* SPDX-License-Identifier: MIT */
/*
 * base/clock.c: myriad_now_ns(), the clock of timers, deadlines, the
 * policies and the shared counters (CLOCK_MONOTONIC).
 */
#include <myriad/time.h>

#include "base/clock.h"

uint64_t myriad_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}
