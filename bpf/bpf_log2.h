/* SPDX-License-Identifier: MIT */
/*
 * bpf/bpf_log2.h: floor(log2(v)) for log2 histograms, shared by the BPF
 * programs (sched_signals.bpf.c, trace.bpf.c); a fixed sequence of shifts,
 * which the verifier accepts without loops.
 */
#ifndef MYRIAD_BPF_LOG2_H
#define MYRIAD_BPF_LOG2_H

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

#endif
