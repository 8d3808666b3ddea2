/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-trace/trace.bpf.c: the runtime's USDT probes (provider
 * myriad) and the scheduler's tracepoints, per worker thread of one process.
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
const volatile __u32 tgid = 0; /* the traced process */

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

/* In .bss: the skeleton maps it, user space reads it without a syscall. */
struct trace_row trace_rows[TRACE_MAX_ROWS];
struct trace_hists trace_hists;

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
		r->cpu = bpf_get_smp_processor_id();
		r->on_cpu = 1;
		r->seen = 1;
	}
	return 0;
}

static __always_inline int wakeup(struct task_struct *p)
{
	struct trace_row *r = row_of_task(p);

	/*
	 * A wakeup that finds the thread still on its CPU (woken before its
	 * schedule() finished) starts no wait.
	 */
	if (r && !r->on_cpu && !r->wake_ts)
		r->wake_ts = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_wakeup, struct task_struct *p)
{
	return wakeup(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(on_wakeup_new, struct task_struct *p)
{
	return wakeup(p);
}

SEC("tp_btf/sched_migrate_task")
int BPF_PROG(on_migrate, struct task_struct *p, int dest_cpu)
{
	struct trace_row *r = row_of_task(p);

	if (r)
		r->cpu = (__u32)dest_cpu;
	return 0;
}
