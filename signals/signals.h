/* SPDX-License-Identifier: MIT */
/*
 * signals/signals.h: what the kernel does to the worker threads, from one
 * of two sources: eBPF probes when they load (bpf/signals_bpf.c), else /proc
 * (signals_proc.c, coarser). Internal.
 *
 * Fields and sources (B: eBPF, exact, per event; P: /proc, refreshed by
 * signals_poll() at its period, default 10 ms; every counter counts from
 * the thread's registration):
 *   preempt, voluntary      B; P from status (same definition: the kernel's
 *                           nivcsw/nvcsw)
 *   switch_in               B; P schedstat timeslices
 *   wakeups                 B only (P: 0)
 *   rq_delay_ns             B: wakeup or involuntary switch-out to switch-in;
 *                           P: schedstat run_delay (the same time, summed by
 *                           the kernel)
 *   rq_delay_count          B: waits measured; P: timeslices
 *   rq_delay_max_ns,
 *   rq_hist[]               B only (P: 0; have lacks SIGNALS_HAVE_HIST)
 *   oncpu_ns                B; P schedstat sum_exec_runtime
 *   offcpu_ns               B: switch-out to switch-in; P: time since
 *                           registration less oncpu_ns
 *   migrations              B; P se.nr_migrations from .../sched (exact, at
 *                           the period), else CPU changes seen by polls
 *   cpu                     B: exact; P: stat's processor at the last poll
 *   on_cpu                  B: exact; P: state R (running *or* runnable)
 *   blocks, blocked_ns      B: every switch-out asleep inside a step; P: only
 *                           blocks seen by a poll (longer than the period),
 *                           durations estimated to about a period
 * The cgroup's cpu.stat (throttling) comes from the cgroup file system for
 * both sources, at the poll period: signals_cgroup().
 */
#ifndef MYRIAD_SIGNALS_H
#define MYRIAD_SIGNALS_H

#include <stdint.h>
#include <sys/types.h>

#include "base/clock.h"

#include "sig_shared.h"

/* signals_source() */
#define SIGNALS_BPF 1
#define SIGNALS_PROC 2

/* signals_open() flags */
#define SIGNALS_FORCE_PROC (1u << 0)  /* do not try eBPF */
#define SIGNALS_REQUIRE_BPF (1u << 1) /* fail rather than fall back */
#define SIGNALS_NO_BLOCKING (1u << 2) /* no blocking detection */

#define SIGNALS_MAX_WORKERS SIG_MAX_WORKERS
#define SIGNALS_HIST_BUCKETS SIG_HIST_BUCKETS
#define SIGNALS_BLOCK_RING SIG_BLOCK_RING
#define SIGNALS_PERIOD_NS 10000000ull /* the /proc source's default period */

/* worker_signals.have: which of the source-dependent fields are filled */
#define SIGNALS_HAVE_HIST (1u << 0) /* rq_hist, rq_delay_max_ns */
#define SIGNALS_HAVE_WAKEUPS (1u << 1)
#define SIGNALS_HAVE_EXACT (1u << 2) /* per event, not per poll */

struct worker_signals {
	uint64_t preempt;
	uint64_t voluntary;
	uint64_t switch_in;
	uint64_t wakeups;
	uint64_t rq_delay_ns;
	uint64_t rq_delay_count;
	uint64_t rq_delay_max_ns;
	uint64_t oncpu_ns;
	uint64_t offcpu_ns;
	uint64_t migrations;
	uint64_t blocks;
	uint64_t blocked_ns;
	uint64_t stamp_ns; /* P: CLOCK_MONOTONIC of the poll; B: 0 (live) */
	int32_t cpu;	   /* -1 when not known yet */
	uint32_t on_cpu;
	uint32_t have; /* SIGNALS_HAVE_* */
	uint32_t pad;
	uint64_t rq_hist[SIGNALS_HIST_BUCKETS];
};

/* One step that blocked its worker, newest first from signals_blocks(). */
struct signals_block {
	uint64_t task_id;
	uint64_t fn;		/* the step function's address */
	uint64_t step_start_ns; /* 0 unless signals_step_begin_at() */
	uint64_t start_ns;	/* blocked at (CLOCK_MONOTONIC); P: estimate */
	uint64_t blocked_ns;	/* B: switch-out to switch-in; P: estimate */
	uint32_t state;		/* 1 sleeping (S), 2 disk sleep (D), 0 other */
	uint32_t seq;		/* the event's number on its worker, from 1 */
};

/* The process's cgroup cpu.stat (v2, or v1's cpu controller). */
struct cgroup_signals {
	uint64_t nr_periods;
	uint64_t nr_throttled;
	uint64_t throttled_ns;
	uint64_t usage_ns; /* 0 where the file lacks it (v1) */
	int64_t quota_us;  /* cpu.max / cfs_quota_us; -1 unlimited */
	uint64_t period_us;
	uint64_t stamp_ns;
	int version; /* 1 or 2 */
};

struct signals;

/*
 * Open signals for 'n' worker threads (1..SIGNALS_MAX_WORKERS); worker i
 * is tids[i] (tids may be NULL, or an entry 0, and the thread registered
 * later with signals_register()). Tries eBPF first unless
 * SIGNALS_FORCE_PROC: that needs root or CAP_BPF+CAP_PERFMON, and a build
 * with the probes. Falls back to /proc unless SIGNALS_REQUIRE_BPF.
 * libbpf's messages never reach stderr: signals_log() has them.
 * Returns the signals, or NULL with *err: -EINVAL (n, flags), -ENOMEM,
 * -ESRCH (a tid not a thread of this process), or with
 * SIGNALS_REQUIRE_BPF why eBPF did not load (-EPERM, -ENOTSUP when built
 * without the probes, or libbpf's error).
 */
struct signals *signals_open(const pid_t *tids, unsigned n, unsigned flags,
			     int *err);

/*
 * Register (or re-register: counters restart) worker 'worker' as thread
 * 'tid' of this process. Not concurrently with other calls on the same
 * worker. Returns 0, -EINVAL, -ESRCH (no such thread here), or -errno.
 */
int signals_register(struct signals *s, unsigned worker, pid_t tid);

/* SIGNALS_BPF or SIGNALS_PROC. */
int signals_source(const struct signals *s);

/*
 * Why eBPF is not the source ("" when it is), e.g. "eBPF: needs root or
 * CAP_BPF+CAP_PERFMON". Valid until signals_close().
 */
const char *signals_error(const struct signals *s);

/* libbpf's warnings and information from signals_open(); may be "". */
const char *signals_log(const struct signals *s);

/* The poll period (/proc counters, the cgroup); 0 keeps the default. */
void signals_set_period(struct signals *s, uint64_t period_ns);

/*
 * Refresh what is read at the period: the /proc counters (the /proc
 * source) and the cgroup (both), if 'now_ns' (CLOCK_MONOTONIC, e.g.
 * clock_ns(CLOCK_MONOTONIC)) is a period past the last refresh. Any thread; a call
 * while another thread polls returns at once. Returns 1 refreshed, 0 not
 * yet (or another poller), -errno.
 */
int signals_poll(struct signals *s, uint64_t now_ns);

/*
 * A worker's signals. eBPF: read from the mmapped map, no system call;
 * /proc: the values of the last poll. Any thread. An unregistered worker
 * or a worker >= n reads as zeroes with cpu -1.
 */
void signals_read(struct signals *s, unsigned worker,
		  struct worker_signals *out);

/*
 * The last blocking events of 'worker', newest first, at most 'n' (and
 * at most SIGNALS_BLOCK_RING). Any thread. Returns how many, or -EINVAL.
 */
int signals_blocks(struct signals *s, unsigned worker,
		   struct signals_block *out, unsigned n);

/* The cgroup's cpu.stat at the last poll: 0, or -ENOENT when not found. */
int signals_cgroup(struct signals *s, struct cgroup_signals *out);

/*
 * The worker's step word. signals_step_begin()/end() below are plain
 * stores into it; the runtime may keep the pointer (valid until close).
 */
struct sig_step *signals_step_word(struct signals *s, unsigned worker);

/*
 * The times signals are read at are clock_ns(CLOCK_MONOTONIC) (base/clock.h,
 * the clock of myriad_now_ns()): the probes' clock (bpf_ktime_get_ns).
 */

/*
 * Publish that the worker runs a step of task 'task_id' with step function
 * 'fn' (and, with _at, since 'now_ns'), until signals_step_end(). Owner
 * thread only: the worker itself. No system call, no locked instruction.
 */
static inline void sig_step_begin(struct sig_step *w, uint64_t task_id,
				  const void *fn, uint64_t now_ns)
{
	uint64_t q = __atomic_load_n(&w->seq, __ATOMIC_RELAXED);

	/*
	 * A seqlock without fences (ThreadSanitizer does not model them):
	 * 1. seq odd.
	 * 2. The fields, each a release store: a poller that reads one of
	 *    them (acquire) reads an odd or newer seq after it.
	 * 3. seq even (release): a poller that reads it sees the fields.
	 * 4. active, last: the probe (on this CPU) never sees active with
	 *    half-written fields; a poller pairs it with seq (signals_proc.c).
	 * On x86 all of it is six plain stores.
	 */
	__atomic_store_n(&w->seq, q + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&w->task_id, task_id, __ATOMIC_RELEASE);
	__atomic_store_n(&w->fn, (uint64_t)(uintptr_t)fn, __ATOMIC_RELEASE);
	__atomic_store_n(&w->start_ns, now_ns, __ATOMIC_RELEASE);
	__atomic_store_n(&w->seq, q + 2, __ATOMIC_RELEASE);
	__atomic_store_n(&w->active, 1, __ATOMIC_RELEASE);
}

static inline void sig_step_end(struct sig_step *w)
{
	__atomic_store_n(&w->active, 0, __ATOMIC_RELEASE);
}

/* As above, by worker index (NULL-safe: no signals, nothing done). */
void signals_step_begin(struct signals *s, unsigned worker, uint64_t task_id,
			const void *fn);
void signals_step_begin_at(struct signals *s, unsigned worker, uint64_t task_id,
			   const void *fn, uint64_t now_ns);
void signals_step_end(struct signals *s, unsigned worker);

/* Detach the probes, unmap, free. NULL is a no-op. */
void signals_close(struct signals *s);

#endif
