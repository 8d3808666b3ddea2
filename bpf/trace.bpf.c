/* SPDX-License-Identifier: MIT */
/*
 * bpf/trace.bpf.c: myriad-trace's probes: the runtime's USDT probes
 * (provider myriad) and the scheduler's tracepoints, per worker thread of
 * one process.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "bpf_log2.h"
#include "trace.h"

/* tp_btf programs need a GPL-compatible licence; the kernel knows this one. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Tunables, set through skel->rodata before load. */
const volatile __u32 tgid = 0;	       /* the traced process */
const volatile __u64 block_min_ns = 0; /* shorter blocks: counted only */

/* tid -> row, filled by user space as it finds the worker threads. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TRACE_MAX_ROWS);
	__type(key, __u32);
	__type(value, __u32);
} rows SEC(".maps");

/* I/O record -> io_submit time; LRU: a record never completed ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TRACE_INFLIGHT);
	__type(key, __u64);
	__type(value, __u64);
} io_start SEC(".maps");

/* Offload call -> offload_start time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TRACE_INFLIGHT);
	__type(key, __u64);
	__type(value, __u64);
} off_start SEC(".maps");

/* Blocking events (struct trace_block), drained at every interval. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TRACE_BLOCK_RING);
} blocks SEC(".maps");

/* In .bss: the skeleton maps it, user space reads it without a syscall. */
struct trace_row trace_rows[TRACE_MAX_ROWS];
struct trace_hists trace_hists;
struct trace_blk_ctrs trace_blk;

/* Histograms are shared by all workers: atomic adds. */
static __always_inline void hist_add(__u64 *h, __u64 ns)
{
	__u32 b = log2_u64(ns);

	__sync_fetch_and_add(&h[b & (TRACE_HIST_BUCKETS - 1)], 1);
}

static __always_inline struct trace_row *row_of_tid(__u32 tid)
{
	__u32 *r = bpf_map_lookup_elem(&rows, &tid);

	if (!r || *r >= TRACE_MAX_ROWS)
		return NULL;
	return &trace_rows[*r];
}

/* The row of the current thread, when it is a worker we follow. */
static __always_inline struct trace_row *row_self(void)
{
	__u64 id = bpf_get_current_pid_tgid();

	/* The uprobes are attached for this process only; be sure. */
	if ((__u32)(id >> 32) != tgid)
		return NULL;
	return row_of_tid((__u32)id);
}

/* ---- USDT: the runtime's events ---- */

SEC("usdt")
int BPF_USDT(on_run, int worker, void *task, void *fn)
{
	struct trace_row *r = row_self();

	if (!r)
		return 0;
	r->run++;
	/*
	 * Only this thread's own switch-out reads these, on its CPU after
	 * these stores: program order is all the ordering needed.
	 */
	r->step_task = (__u64)task;
	r->step_fn = (__u64)fn;
	r->step_ts = bpf_ktime_get_ns();
	return 0;
}

SEC("usdt")
int BPF_USDT(on_run_done, int worker, void *task, int result)
{
	struct trace_row *r = row_self();
	__u64 t0;

	if (!r)
		return 0;
	r->run_done++;
	t0 = r->step_ts;
	/* A step begun before we attached has no start: not measured. */
	if (t0) {
		r->step_ts = 0;
		hist_add(trace_hists.step, bpf_ktime_get_ns() - t0);
	}
	return 0;
}

SEC("usdt")
int BPF_USDT(on_steal, int worker, int victim, unsigned n)
{
	struct trace_row *r = row_self();

	if (!r)
		return 0;
	r->steals++;
	r->stolen += n;
	return 0;
}

SEC("usdt")
int BPF_USDT(on_park, int worker)
{
	struct trace_row *r = row_self();

	if (r)
		r->parks++;
	return 0;
}

SEC("usdt")
int BPF_USDT(on_wake, int worker)
{
	struct trace_row *r = row_self();

	if (r)
		r->wakes++;
	return 0;
}

SEC("usdt")
int BPF_USDT(on_spawn, int worker, void *task, void *fn)
{
	struct trace_row *r = row_self();

	if (r)
		r->spawned++;
	return 0;
}

SEC("usdt")
int BPF_USDT(on_io_submit, int worker, void *record, int kind)
{
	struct trace_row *r = row_self();
	__u64 key = (__u64)record, now = bpf_ktime_get_ns();

	if (r)
		r->io_submit++;
	if (bpf_map_update_elem(&io_start, &key, &now, BPF_ANY))
		__sync_fetch_and_add(&trace_hists.io_lost, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_io_complete, int worker, void *record, int res)
{
	struct trace_row *r = row_self();
	__u64 key = (__u64)record, *t0;

	if (r)
		r->io_complete++;
	t0 = bpf_map_lookup_elem(&io_start, &key);
	/*
	 * Only the first completion of a record is measured: a multishot
	 * operation completes many times for one submit.
	 */
	if (t0) {
		hist_add(trace_hists.io, bpf_ktime_get_ns() - *t0);
		bpf_map_delete_elem(&io_start, &key);
	}
	return 0;
}

/*
 * offload_start and offload_end come from two places with different
 * arities (the blocking pool: call, function; infer: call, endpoint,
 * attempt): only the first argument, the call, is used.
 */
SEC("usdt")
int BPF_USDT(on_offload_start, void *call)
{
	__u64 key = (__u64)call, now = bpf_ktime_get_ns();

	/* A retry's start replaces the first: the latency of the attempt. */
	if (bpf_map_update_elem(&off_start, &key, &now, BPF_ANY))
		__sync_fetch_and_add(&trace_hists.off_lost, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_offload_end, void *call)
{
	__u64 key = (__u64)call, *t0;

	t0 = bpf_map_lookup_elem(&off_start, &key);
	if (t0) {
		hist_add(trace_hists.offload, bpf_ktime_get_ns() - *t0);
		bpf_map_delete_elem(&off_start, &key);
	}
	return 0;
}

/* ---- tp_btf: what the scheduler does to the worker threads ---- */

static __always_inline struct trace_row *row_of_task(struct task_struct *p)
{
	/* Most switches on the machine are other processes': leave early. */
	if ((__u32)p->tgid != tgid)
		return NULL;
	return row_of_tid((__u32)p->pid);
}

/* Back on a CPU after blocking inside a step: the event. */
static __always_inline void block_end(struct trace_row *r, __u32 tid, __u64 now)
{
	struct trace_block *e;
	__u64 d = now - r->blk_ts;

	hist_add(trace_hists.blocked, d);
	__sync_fetch_and_add(&trace_blk.events, 1);
	if (d < block_min_ns) {
		__sync_fetch_and_add(&trace_blk.short_, 1);
	} else {
		/* No wakeup: user space drains the ring at each interval. */
		e = bpf_ringbuf_reserve(&blocks, sizeof(*e), 0);
		if (e) {
			e->task = r->step_task;
			e->fn = r->step_fn;
			e->start_ns = r->blk_ts;
			e->blocked_ns = d;
			e->tid = tid;
			e->cpu = bpf_get_smp_processor_id();
			e->state = r->blk_state;
			e->pad = 0;
			bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		} else {
			__sync_fetch_and_add(&trace_blk.lost, 1);
		}
	}
	r->blk_ts = 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next, unsigned int prev_state)
{
	struct trace_row *r;
	__u64 now = 0, d;

	r = row_of_task(prev);
	if (r) {
		now = bpf_ktime_get_ns();
		r->on_cpu = 0;
		/*
		 * The kernel's own split (nvcsw/nivcsw in __schedule):
		 * preempted, or switched out still TASK_RUNNING (a yield), is
		 * involuntary, and the thread waits on the run queue from now.
		 */
		if (preempt || prev_state == 0) {
			r->preempt++;
			r->wake_ts = now;
		} else {
			r->voluntary++;
			r->wake_ts = 0; /* asleep: the wait starts at wakeup */
			/*
			 * Asleep inside a step (S or D, not stopped or dead):
			 * the step blocked its worker. A step begun before we
			 * attached has no step_ts, hence no task: not seen.
			 */
			if (r->step_ts && (prev_state & 3)) {
				r->blk_ts = now;
				r->blk_state = prev_state;
			}
		}
	}
	r = row_of_task(next);
	if (r) {
		if (!now)
			now = bpf_ktime_get_ns();
		if (r->wake_ts) {
			d = now - r->wake_ts;
			r->wake_ts = 0;
			r->rq_delay_ns += d;
			r->rq_delay_count++;
			hist_add(trace_hists.rq_delay, d);
		}
		if (r->blk_ts)
			block_end(r, (__u32)next->pid, now);
		r->cpu = bpf_get_smp_processor_id();
		r->on_cpu = 1;
		r->seen = 1;
	}
	return 0;
}

/* Wakeups and migrations count nothing here (wakeup.bpf.h). */
#define WAKE_REC struct trace_row
#define wake_rec(p) row_of_task(p)
#define WAKE_COUNT(r) ((void)0)
#define MIGRATE_COUNT(r) ((void)0)
#include "wakeup.bpf.h"

/*
 * A thread of the target exits: a worker that leaves inside a step (its
 * thread ended under it) must not leave a step or a sleep behind for the
 * next thread that gets its id.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	struct trace_row *r = row_of_task(p);

	if (r) {
		r->step_ts = 0;
		r->blk_ts = 0;
	}
	return 0;
}
