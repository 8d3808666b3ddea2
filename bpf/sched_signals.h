/* SPDX-License-Identifier: MIT */
/*
 * bpf/sched_signals.h: the structs that the probe (sched_signals.bpf.c) and
 * user space (signals_bpf.c) both see: per-worker records in mmapable maps.
 * The step word and the limits are the signals interface's
 * (signals/sig_shared.h).
 */
#ifndef MYRIAD_SCHED_SIGNALS_H
#define MYRIAD_SCHED_SIGNALS_H

#include "signals/sig_shared.h" /* the limits, struct sig_step */

/*
 * One blocking event: a worker switched out in a sleeping state while a
 * step was published, and switched in again. 'seq' is the event's index
 * + 1; the probe zeroes it before writing the fields and sets it last, so
 * that a reader that sees the same non-zero seq before and after copying
 * the fields has a whole event (a seqlock per slot).
 */
struct sig_block {
	__u64 seq;
	__u64 task_id;
	__u64 fn;	     /* the step function's address */
	__u64 step_start_ns; /* 0 when user space gave no start time */
	__u64 start_ns;	  /* switch-out, CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 blocked_ns; /* switch-out to switch-in */
	__u64 state;	  /* at switch-out: 1 sleeping, 2 disk sleep, 0 other */
	__u64 pad;
};

/*
 * Per worker, written by the probe only (user space maps it read-only). A
 * worker's switch-out, switch-in, wakeup and migration are serialised by
 * the scheduler (the run-queue lock, and a remote wakeup waits for the
 * switch-out to finish), so plain increments lose nothing. Readers on
 * other CPUs may see a record in the middle of an update: each 64-bit
 * field is whole, the fields together may be a few events apart.
 */
struct sig_worker {
	__u64 preempt;	 /* involuntary: preempted, or still TASK_RUNNING */
	__u64 voluntary; /* switched out sleeping */
	__u64 switch_in; /* times switched in (timeslices) */
	__u64 wakeups;
	__u64 rq_delay_ns; /* runnable but waiting: sum */
	__u64 rq_delay_count;
	__u64 rq_delay_max_ns;
	__u64 offcpu_ns; /* switch-out to switch-in: sum */
	__u64 oncpu_ns;	 /* switch-in to switch-out: sum */
	__u64 migrations;
	__u32 cpu; /* the CPU it runs on, or last ran on */
	__u32 on_cpu;
	__u64 blocks; /* blocking events (also those the ring dropped) */
	__u64 blocked_ns;
	__u64 block_head; /* events written; ring[(head - 1) % 16] is newest */
	/* The probe's own state between events. */
	__u64 wake_ts; /* runnable since (wakeup or involuntary switch-out) */
	__u64 off_ts;  /* switched out at */
	__u64 on_ts;   /* switched in at */
	__u64 blk_ts;  /* switched out sleeping inside a step at */
	__u64 blk_task;
	__u64 blk_fn;
	__u64 blk_step_start;
	__u64 blk_state;
	__u64 rq_hist[SIG_HIST_BUCKETS];
	struct sig_block ring[SIG_BLOCK_RING];
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct sig_block) == 64, "one event per cache line");
_Static_assert(sizeof(struct sig_worker) % 64 == 0, "cache-line padded");

#endif
