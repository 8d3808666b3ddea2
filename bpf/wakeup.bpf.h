/* SPDX-License-Identifier: MIT */
/*
 * bpf/wakeup.bpf.h: the sched_wakeup, sched_wakeup_new and
 * sched_migrate_task programs of both probes, each on its own records.
 *
 * The probe (sched_signals.bpf.c, trace.bpf.c) defines, before including
 * this, at the place the programs go:
 *   WAKE_REC            its per-thread record: fields on_cpu, wake_ts, cpu
 *   wake_rec(p)         the record of task p, NULL when p is not followed
 *   WAKE_COUNT(r)       what it counts at a wakeup (may be nothing)
 *   MIGRATE_COUNT(r)    what it counts at a migration (may be nothing)
 */
#ifndef MYRIAD_WAKEUP_BPF_H
#define MYRIAD_WAKEUP_BPF_H

static __always_inline int wakeup(struct task_struct *p)
{
	WAKE_REC *r = wake_rec(p);

	if (!r)
		return 0;
	WAKE_COUNT(r);
	/*
	 * A wakeup that finds the thread still on a CPU (woken before its
	 * schedule() finished) starts no wait; the next switch-out resets
	 * wake_ts anyway, so a stale one cannot leak into a later sleep.
	 */
	if (!r->on_cpu && !r->wake_ts)
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
	WAKE_REC *r = wake_rec(p);

	if (!r)
		return 0;
	MIGRATE_COUNT(r);
	r->cpu = (__u32)dest_cpu;
	return 0;
}

#endif
