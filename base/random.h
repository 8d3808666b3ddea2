/* SPDX-License-Identifier: MIT */
/*
 * base/random.h: the library's one pseudo-random generator, xorshift64
 * (Marsaglia's 13, 7, 17 shifts; no multiply): cheap, not for secrets.
 */
#ifndef MYRIAD_BASE_RANDOM_H
#define MYRIAD_BASE_RANDOM_H

#include <stdint.h>

/* Advance the caller's state '*s' (never 0) and return the new value. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/*
 * A state for the i-th of several generators: a golden-ratio multiple of
 * i + 1 mixed with 'salt' (an address, a time), never 0.
 */
static inline uint64_t rng_seed(uint64_t i, uint64_t salt)
{
	uint64_t s = 0x9E3779B97F4A7C15ull * (i + 1) ^ salt;

	return s ? s : 1;
}

#endif
