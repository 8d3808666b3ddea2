/* SPDX-License-Identifier: MIT */
/*
 * bench/malloc-loop.c: the allocation baseline for spawn: N mallocx/dallocx
 * pairs of a task's size through jemalloc's thread cache, one thread. A
 * task costs at least this much more than an empty call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jemalloc/jemalloc.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000, i;
	size_t size = argc > 2 ? (size_t)atol(argv[2]) : 80;
	struct timespec a, b;
	void *volatile sink;
	double s;

	if (n < 1 || size < 1 || size > (1u << 20)) {
		fprintf(stderr, "usage: malloc-loop [N [SIZE]]\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < n; i++) {
		void *p = mallocx(size, 0);

		memset(p, 0, 64);
		sink = p;
		dallocx(p, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	(void)sink;
	s = (double)(b.tv_sec - a.tv_sec) +
	    (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
	printf("BASELINE malloc-loop n=%ld size=%zu wall_s=%.6f ns_per_pair=%.2f\n",
	       n, size, s, s * 1e9 / (double)n);
	return 0;
}
