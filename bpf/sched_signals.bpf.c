/* SPDX-License-Identifier: MIT */
/*
 * bpf/sched_signals.bpf.c: scheduler tracepoints filtered to the runtime's
 * worker threads: preemptions, run-queue delay, off-CPU time, migrations,
 * the CPU, and steps that block their worker in the kernel.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf_log2.h"
#include "sched_signals.h"

/* tp_btf programs need a GPL-compatible licence; the kernel knows this one. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Tunables, set through skel->rodata before load. */
const volatile __u32 tgid = 0; /* the runtime's process: a cheap first filter */
const volatile __u32 track_blocking = 1;
const volatile __u64 block_min_ns = 0; /* shorter blocks are not recorded */

/* tid -> worker index, filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SIG_MAX_WORKERS);
	__type(key, __u32);
	__type(value, __u32);
} workers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SIG_MAX_WORKERS);
	__type(key, __u32);
	__type(value, struct sig_worker);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SIG_MAX_WORKERS);
	__type(key, __u32);
	__type(value, struct sig_step);
} steps SEC(".maps");

static __always_inline struct sig_worker *worker_of(struct task_struct *p,
						    __u32 *idx)
{
	__u32 tid, *i;

	/* Most switches on the machine are other processes': leave early. */
	if ((__u32)p->tgid != tgid)
		return NULL;
	tid = (__u32)p->pid;
	i = bpf_map_lookup_elem(&workers, &tid);
	if (!i)
		return NULL;
	*idx = *i;
	return bpf_map_lookup_elem(&stats, idx);
}

static __always_inline void switch_out(struct sig_worker *w, __u32 idx,
				       bool preempt, unsigned int prev_state,
				       __u64 now)
{
	struct sig_step *st;

	if (w->on_ts) {
		w->oncpu_ns += now - w->on_ts;
		w->on_ts = 0;
	}
	w->on_cpu = 0;
	w->off_ts = now;
	/*
	 * The kernel's own split (nvcsw/nivcsw in __schedule): preempted, or
	 * switched out while still TASK_RUNNING (0), is involuntary. Such a
	 * thread stays on the run queue, so its run-queue wait starts now.
	 */
	if (preempt || prev_state == 0) {
		w->preempt++;
		w->wake_ts = now;
		return;
	}
	w->voluntary++;
	/* Asleep: the wait starts at the wakeup, not before. */
	w->wake_ts = 0;
	if (!track_blocking)
		return;
	st = bpf_map_lookup_elem(&steps, &idx);
	if (!st || !st->active)
		return;
	/* The step's words were stored on this CPU by this thread. */
	w->blk_ts = now;
	w->blk_task = st->task_id;
	w->blk_fn = st->fn;
	w->blk_step_start = st->start_ns;
	/* 1 TASK_INTERRUPTIBLE, 2 TASK_UNINTERRUPTIBLE; flags dropped. */
	w->blk_state = prev_state & 3;
}

static __always_inline void block_record(struct sig_worker *w, __u64 now)
{
	__u64 blocked = now - w->blk_ts;
	__u64 h = w->block_head;
	struct sig_block *e;

	w->blk_ts = 0;
	if (blocked < block_min_ns)
		return;
	e = &w->ring[h & (SIG_BLOCK_RING - 1)];
	/* The slot's seqlock: 0 while writing, index + 1 when whole. */
	e->seq = 0;
	barrier();
	e->task_id = w->blk_task;
	e->fn = w->blk_fn;
	e->step_start_ns = w->blk_step_start;
	e->start_ns = now - blocked;
	e->blocked_ns = blocked;
	e->state = w->blk_state;
	barrier();
	e->seq = h + 1;
	barrier();
	w->block_head = h + 1;
	w->blocks++;
	w->blocked_ns += blocked;
}

static __always_inline void switch_in(struct sig_worker *w, __u64 now)
{
	__u64 d;
	__u32 b;

	if (w->wake_ts) {
		d = now - w->wake_ts;
		w->wake_ts = 0;
		w->rq_delay_ns += d;
		w->rq_delay_count++;
		if (d > w->rq_delay_max_ns)
			w->rq_delay_max_ns = d;
		b = log2_u64(d);
		if (b > SIG_HIST_BUCKETS - 1)
			b = SIG_HIST_BUCKETS - 1;
		w->rq_hist[b & (SIG_HIST_BUCKETS - 1)]++;
	}
	if (w->off_ts) {
		w->offcpu_ns += now - w->off_ts;
		w->off_ts = 0;
	}
	w->cpu = bpf_get_smp_processor_id();
	w->on_cpu = 1;
	w->on_ts = now;
	w->switch_in++;
	if (w->blk_ts)
		block_record(w, now);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next, unsigned int prev_state)
{
	struct sig_worker *w;
	__u64 now = 0;
	__u32 idx = 0;

	w = worker_of(prev, &idx);
	if (w) {
		now = bpf_ktime_get_ns();
		switch_out(w, idx, preempt, prev_state, now);
	}
	w = worker_of(next, &idx);
	if (w) {
		if (!now)
			now = bpf_ktime_get_ns();
		switch_in(w, now);
	}
	return 0;
}

/* The record of a wakeup's or migration's task (wakeup.bpf.h). */
static __always_inline struct sig_worker *wake_rec(struct task_struct *p)
{
	__u32 idx = 0;

	return worker_of(p, &idx);
}

#define WAKE_REC struct sig_worker
#define WAKE_COUNT(w) ((w)->wakeups++)
#define MIGRATE_COUNT(w) ((w)->migrations++)
#include "wakeup.bpf.h"
