/* SPDX-License-Identifier: MIT */
/*
 * policy/policy.h: helpers shared by the placement policies. The scheduler
 * sees policies only through struct myriad_policy_ops.
 */
#ifndef MYRIAD_POLICY_INTERNAL_H
#define MYRIAD_POLICY_INTERNAL_H

#include <stdint.h>

/* xorshift64: the caller keeps the state, never 0. */
static inline uint64_t policy_rng_next(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

#endif
