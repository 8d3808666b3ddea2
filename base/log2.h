/* SPDX-License-Identifier: MIT */
/*
 * base/log2.h: the integer base-2 logarithm (the timing wheel's level of a
 * deadline; log2 histograms).
 */
#ifndef MYRIAD_BASE_LOG2_H
#define MYRIAD_BASE_LOG2_H

#include <stdint.h>

/* floor(log2(v)); v must not be 0. */
static inline unsigned log2_u64(uint64_t v)
{
	return 63 - (unsigned)__builtin_clzll(v);
}

#endif
