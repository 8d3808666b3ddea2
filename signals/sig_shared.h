/* SPDX-License-Identifier: MIT */
/*
 * signals/sig_shared.h: what the runtime, both signal sources and the eBPF
 * probe (bpf/sched_signals.bpf.c) see: the limits and the step word.
 */
#ifndef MYRIAD_SIG_SHARED_H
#define MYRIAD_SIG_SHARED_H

/* The probe gets __u32/__u64 from vmlinux.h, user space from here. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Compile-time knobs; the maps are sized to the workers at load time. */
#ifndef SIG_MAX_WORKERS
#define SIG_MAX_WORKERS 1024
#endif
#define SIG_HIST_BUCKETS 32 /* log2 of ns: bucket b is [2^b, 2^(b+1)) */
#define SIG_BLOCK_RING 16   /* the last blocking events per worker */

/*
 * Per worker, written by user space only (the worker itself), read by the
 * probe when the worker switches out. The probe runs on the worker's own
 * CPU in the worker's own context at switch-out, so it sees the worker's
 * stores in program order: 'active' is set last, and the fields it reads
 * then are whole. The /proc source reads the word from another thread, so
 * 'seq' is a seqlock as well: odd while a step is being published, even
 * once it is (steps begun = seq / 2). See sig_step_begin() in signals.h.
 */
struct sig_step {
	__u64 active;
	__u64 task_id;
	__u64 fn;
	__u64 start_ns;
	__u64 seq;
	__u64 pad[3];
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct sig_step) == 64, "one cache line per worker");

#endif
