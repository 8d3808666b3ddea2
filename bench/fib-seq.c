/* SPDX-License-Identifier: MIT */
/*
 * bench/fib-seq.c: the sequential baseline for the fib workload: the same
 * recursion as a plain C call per fib call, no tasks. Divide its time by
 * the worker count for the floor that a fork-join runtime approaches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* noinline: one real call per fib call, as the task version makes. */
__attribute__((noinline)) static long fib(int n)
{
	if (n < 2)
		return n;
	return fib(n - 1) + fib(n - 2);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 30;
	struct timespec a, b;
	long r, calls;
	double s;

	if (n < 0 || n > 45) {
		fprintf(stderr, "usage: fib-seq [N (0..45)]\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = fib(n);
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) +
	    (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
	calls = 2 * fib(n + 1) - 1;
	printf("BASELINE fib-seq n=%d result=%ld calls=%ld wall_s=%.6f ns_per_call=%.2f\n",
	       n, r, calls, s, s * 1e9 / (double)calls);
	return 0;
}
