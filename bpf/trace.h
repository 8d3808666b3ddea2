/* SPDX-License-Identifier: MIT */
/*
 * bpf/trace.h: the records that myriad-trace's probes (trace.bpf.c) and its
 * loader (trace_loader.c) both see: per worker thread, the histograms, and
 * the blocking events.
 */
#ifndef MYRIAD_TRACE_H
#define MYRIAD_TRACE_H

/* The probe gets __u32/__u64 from vmlinux.h, user space from here. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define TRACE_MAX_ROWS 1024   /* worker threads followed (rows) */
#define TRACE_HIST_BUCKETS 64 /* log2 of ns: bucket b is [2^b, 2^(b+1)) */
#define TRACE_INFLIGHT 65536  /* I/O records and calls in flight */
#define TRACE_BLOCK_RING (256 * 1024) /* bytes: about 5000 blocking events */

/*
 * One worker thread (a row), written by the probes only. The USDT counts
 * are written by the worker thread itself; the scheduler events of one
 * thread are serialised by the scheduler (its run-queue lock, and a remote
 * wakeup waits for the switch-out to finish): plain increments lose
 * nothing. A reader on another CPU sees each 64-bit field whole.
 */
struct trace_row {
	/* USDT, from the worker's own thread */
	__u64 run;	/* myriad:run */
	__u64 run_done; /* myriad:run_done */
	__u64 stolen;	/* myriad:steal, the tasks taken (arg2) */
	__u64 steals;	/* myriad:steal events */
	__u64 parks;	/* myriad:park */
	__u64 wakes;	/* myriad:wake (every return from park) */
	__u64 spawned;	/* myriad:spawn on this thread */
	__u64 io_submit;
	__u64 io_complete;
	__u64 step_ts;	 /* the running step's start (0: none) */
	__u64 step_task; /* its task and step function (myriad:run) */
	__u64 step_fn;
	__u64 blk_ts; /* switched out asleep inside that step at (0: not) */
	/* tp_btf, the scheduler's view of the thread */
	__u64 preempt;	 /* involuntary: preempted, or still TASK_RUNNING */
	__u64 voluntary; /* switched out asleep */
	__u64 rq_delay_ns;
	__u64 rq_delay_count;
	__u64 wake_ts; /* runnable since (0: not waiting) */
	__u32 cpu;     /* the CPU it runs on, or last ran on */
	__u32 seen;    /* 1 once switched in under the probe */
	__u32 on_cpu;
	__u32 blk_state; /* prev_state at that switch-out */
} __attribute__((aligned(64)));

/*
 * A step that blocked its worker in the kernel: the worker switched out
 * asleep (not preempted) between myriad:run and run_done, for at least
 * the tool's --block-min-ms. Through the ring buffer 'blocks'.
 */
struct trace_block {
	__u64 task;	  /* the task (its address), from myriad:run */
	__u64 fn;	  /* its step function */
	__u64 start_ns;	  /* switch-out, CLOCK_MONOTONIC */
	__u64 blocked_ns; /* switch-out to switch-in */
	__u32 tid;	  /* the worker thread */
	__u32 cpu;	  /* the CPU it resumed on */
	__u32 state; /* prev_state: 1 sleeping (S), 2 disk sleep (D), ... */
	__u32 pad;
};

/* Blocking events since attach; atomic adds, all workers. */
struct trace_blk_ctrs {
	__u64 events; /* every block inside a step, short ones too */
	__u64 short_; /* shorter than the threshold: counted, not sent */
	__u64 lost;   /* the ring buffer was full: counted, not sent */
};

/* Log2 histograms of the whole run (since attach), in ns. */
struct trace_hists {
	__u64 rq_delay[TRACE_HIST_BUCKETS]; /* wakeup/preemption to run */
	__u64 step[TRACE_HIST_BUCKETS];	    /* myriad:run to run_done */
	__u64 io[TRACE_HIST_BUCKETS];	    /* io_submit to io_complete */
	__u64 offload[TRACE_HIST_BUCKETS];  /* offload_start to offload_end */
	__u64 blocked[TRACE_HIST_BUCKETS];  /* a step's sleep in the kernel */
	__u64 io_lost;	/* submits not recorded: the in-flight map was full */
	__u64 off_lost; /* the same for offload calls */
};

_Static_assert(sizeof(struct trace_row) == 192, "three cache lines a row");
_Static_assert(sizeof(struct trace_block) == 48, "no hidden padding");

#endif
