/* SPDX-License-Identifier: MIT */
/*
 * myriad/stats.h: per-worker counters (spawned, run, stolen, ...), the
 * count of live tasks, the scheduler signals and blocking steps, for
 * diagnostics and tests.
 */
#ifndef MYRIAD_STATS_H
#define MYRIAD_STATS_H

#include <myriad/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One counter per worker for each of these. */
enum myriad_counter {
	MYRIAD_CTR_SPAWNED,	 /* tasks spawned on this worker */
	MYRIAD_CTR_RUN,		 /* steps run */
	MYRIAD_CTR_STOLEN,	 /* tasks this worker took from others */
	MYRIAD_CTR_STEAL_FAILS,	 /* searches that found nothing */
	MYRIAD_CTR_PARKS,	 /* times this worker went to sleep */
	MYRIAD_CTR_WAKES,	 /* times it was woken by another thread */
	MYRIAD_CTR_NOTIFIES,	 /* wake-ups it sent to sleeping workers */
	MYRIAD_CTR_INJECT_POLLS, /* tasks taken from the global inject queue */
	MYRIAD_CTR_LIFO_RUNS,	 /* steps run from the LIFO slot */
	MYRIAD_CTR_OVERFLOWS,	 /* local queue spills to the inject queue */
	MYRIAD_CTR_IO_OPS,	 /* I/O operations started by its tasks */
	MYRIAD_CTR_IO_ENTERS,	 /* io_uring_enter calls on its ring */
	/* spawn stacks it took over from workers stuck in one step */
	MYRIAD_CTR_TAKEOVERS,
	MYRIAD_CTR__COUNT
};

/* The counter's name ("spawned", ...), or NULL if out of range. */
MYRIAD_API const char *myriad_counter_name(unsigned ctr);

/*
 * Copy up to 'n' counters of worker 'worker' into 'out' (indexed by enum
 * myriad_counter). The counters are read while the worker runs, so each is
 * exact only once the runtime is idle. Returns the number copied,
 * -EINVAL (rt or out NULL, worker out of range) or -ENOTSUP when the
 * library was built with counters compiled out (-Dcounters=false).
 */
MYRIAD_API int myriad_rt_counters(const myriad_rt_t *rt, unsigned worker,
				  uint64_t *out, size_t n);

/*
 * Tasks allocated and not yet freed (queued, running, pending, or finished
 * children not yet reaped by their parent). Exact once the runtime is idle.
 * Returns the count or -EINVAL.
 */
MYRIAD_API int64_t myriad_rt_tasks_live(const myriad_rt_t *rt);

/* Where the scheduler signals come from (myriad_rt_signals_source()). */
enum myriad_signals_source {
	MYRIAD_SIG_NONE = 0, /* not opened (no policy asked, not enabled) */
	MYRIAD_SIG_BPF = 1,  /* eBPF probes on the scheduler: exact */
	MYRIAD_SIG_PROC = 2, /* /proc, read every 10 ms: coarser */
};

/*
 * What the kernel did to one worker thread since the runtime started.
 * Counters only grow; take differences over time.
 */
struct myriad_worker_signals {
	uint64_t preempt;	 /* involuntary context switches */
	uint64_t voluntary;	 /* voluntary context switches */
	uint64_t rq_delay_ns;	 /* runnable but waiting for a CPU */
	uint64_t rq_delay_count; /* waits measured */
	uint64_t oncpu_ns;	 /* running */
	uint64_t offcpu_ns;	 /* not running */
	uint64_t migrations;	 /* moves between CPUs */
	uint64_t blocks;	 /* a step blocked in the kernel */
	uint64_t blocked_ns;	 /* ... for this long in all */
	int32_t cpu;		 /* the CPU it is on, or last ran on; -1 */
	uint32_t exact;		 /* 1: per event (eBPF); 0: polled (/proc) */
};

/*
 * The signals are opened when the policy asks (myriad_policy_kernel), when
 * myriad_rt_opts.signals is 1, or with MYRIAD_SIGNALS=1 in the
 * environment (MYRIAD_SIGNALS=proc forces the /proc source). Returns the
 * source (enum myriad_signals_source), and in *why (may be NULL) why eBPF
 * is not it ("" when it is), or -EINVAL.
 */
MYRIAD_API int myriad_rt_signals_source(const myriad_rt_t *rt,
					const char **why);

/*
 * Worker 'worker''s signals: no system call with eBPF. Returns 0,
 * -EINVAL, or -ENODATA when the signals are not open.
 */
MYRIAD_API int myriad_rt_signals(myriad_rt_t *rt, unsigned worker,
				 struct myriad_worker_signals *out);

/*
 * A step that blocked its worker in the kernel (a sleep(), a blocking
 * read): which task, which step function, for how long.
 */
struct myriad_block {
	const void *task;    /* the task (its address) */
	const void *step;    /* its step function */
	uint64_t blocked_ns; /* how long the worker was off its CPU */
	uint64_t at_ns;	     /* CLOCK_MONOTONIC when it blocked */
};

/*
 * The latest blocking events of 'worker', newest first, at most 'n' (at
 * most 16 are kept). Returns how many, -EINVAL, -ENODATA (signals not
 * open). With the /proc source only blocks longer than its period are
 * seen, with durations to about the period.
 */
MYRIAD_API int myriad_rt_blocks(myriad_rt_t *rt, unsigned worker,
				struct myriad_block *out, unsigned n);

/*
 * Name a code address of this process (a myriad_block's 'step') for a
 * person, into 'buf' (always NUL-terminated): "step_fn (libfoo.so)" at a
 * symbol's start, "step_fn+0x1a (libfoo.so)" inside it; "0x1234 (prog)",
 * the offset from the object's base, when the object has no dynamic symbol
 * there (a static function, or an executable linked without -rdynamic:
 * dladdr() sees only the dynamic symbol table). Safe from any thread.
 * Returns 0, -ENOENT (no loaded object holds 'addr'; buf gets "0x..."),
 * -ENOSPC (truncated to len - 1), -EINVAL (buf NULL or len 0).
 */
MYRIAD_API int myriad_symbol_name(const void *addr, char *buf, size_t len);

/*
 * The shared-memory view of the counters, for tools in other processes
 * (myriad-trace): enabled by myriad_rt_opts.stats_shm or the environment
 * variable MYRIAD_STATS_SHM=1, the file /dev/shm/myriad.<pid>.<n> (n
 * counts the process's runtimes from 0) holds this header and one slot
 * per worker, refreshed by each worker every 61 steps and when it parks.
 * Values are plain 64-bit stores: read each once; 'seq' changes with every
 * refresh of the slot. Removed by myriad_rt_destroy().
 */
#define MYRIAD_SHM_MAGIC 0x314d485344595231ull /* "1RYDSHM1" */
#define MYRIAD_SHM_VERSION 1
#define MYRIAD_SHM_CTRS 32

struct myriad_shm_worker {
	uint64_t seq;		       /* refreshes so far */
	uint64_t stamp_ns;	       /* CLOCK_MONOTONIC of the refresh */
	uint64_t ctr[MYRIAD_SHM_CTRS]; /* enum myriad_counter */
	int32_t tid;		       /* the worker thread */
	int32_t cpu;		       /* where it ran at the refresh */
	uint32_t queue_len;	       /* tasks in its local queue */
	uint32_t parked;	       /* 1 while it sleeps */
};

struct myriad_shm {
	uint64_t magic;
	uint32_t version;
	uint32_t nworkers;
	uint32_t nctrs;	      /* MYRIAD_CTR__COUNT of the library */
	uint32_t worker_size; /* sizeof(struct myriad_shm_worker) */
	int32_t pid;
	uint32_t flags;
	char ctr_names[MYRIAD_SHM_CTRS][24];
	struct myriad_shm_worker w[];
};

#ifdef __cplusplus
}
#endif
#endif
