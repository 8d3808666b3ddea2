/* SPDX-License-Identifier: MIT */
/*
 * sched/sched.h: the scheduler's internal types (task header, worker,
 * runtime) and the helpers the files of sched/ share. Never installed.
 */
#ifndef MYRIAD_SCHED_H
#define MYRIAD_SCHED_H

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/types.h>

#include <ck_ring.h>

#include <myriad.h>

#include "driver.h"
#include "spin.h"

struct signals;
struct sig_step;
struct io_op;

/* Compile-time knobs; meson passes them (see meson_options.txt). */
#ifndef MYRIAD_LQ_CAP
#define MYRIAD_LQ_CAP 256
#endif
#ifndef MYRIAD_INJECT_CAP
#define MYRIAD_INJECT_CAP 4096
#endif
#ifndef MYRIAD_LIFO_MAX
#define MYRIAD_LIFO_MAX 32
#endif
#ifndef MYRIAD_STACK_CAP
#define MYRIAD_STACK_CAP 256
#endif
#ifndef MYRIAD_COUNTERS
#define MYRIAD_COUNTERS 1
#endif

/*
 * ThreadSanitizer cannot see the ordering that concurrencykit's ring
 * fences give (its accesses are suppressed by name in tests/tsan.supp).
 * A task handed from one worker to another through a ck ring is therefore
 * announced to TSan as a release before the enqueue and an acquire after
 * the dequeue, on the task's address: the hand-off ck performs, said in
 * words TSan understands. They compile to nothing in other builds.
 */
#if defined(__SANITIZE_THREAD__)
#define MYRIAD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MYRIAD_TSAN 1
#endif
#endif
#ifdef MYRIAD_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define RING_PUT(t) __tsan_release(t)
#define RING_GOT(t) __tsan_acquire(t)
#else
#define RING_PUT(t) ((void)(t))
#define RING_GOT(t) ((void)(t))
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define CACHELINE 64

/* Does the caller's options struct reach 'field'? (fields past sz: default) */
#define OPT_HAS(o, field)                                           \
	((o) && (o)->sz >= offsetof(struct myriad_rt_opts, field) + \
				   sizeof((o)->field))

static_assert((MYRIAD_LQ_CAP & (MYRIAD_LQ_CAP - 1)) == 0,
	      "lq_cap must be a power of two");
static_assert((MYRIAD_INJECT_CAP & (MYRIAD_INJECT_CAP - 1)) == 0,
	      "inject_cap must be a power of two");

/*
 * The task state word (64 bits): the join count in the high half, flags and
 * the lifecycle in the low half. Keeping the join count in the same word as
 * the lifecycle lets a finishing child decrement it and wake its parent in
 * one atomic step, so that the child never touches a parent that has
 * finished meanwhile (see task.c).
 */
enum task_lifecycle {
	TS_IDLE = 0,	  /* pending: not queued, not running */
	TS_SCHEDULED = 1, /* in exactly one queue, or running */
	TS_DONE = 2,	  /* finished */
	TS_LC_MASK = 3,
};

enum task_flag {
	TF_WOKEN = 1u << 2,	  /* woken while scheduled: run once more */
	TF_CANCELLED = 1u << 3,	  /* cancel requested */
	TF_CANCEL_SEEN = 1u << 4, /* the runtime propagated it to children */
	TF_ZOMBIE = 1u << 5,	  /* step returned DONE, children still run */
	TF_CHILD = 1u << 6,	  /* 'up' is the parent, else the runtime */
	TF_HANDLE = 1u << 7,	  /* a handle holds a reference */
	TF_HANDLE_GONE = 1u << 8, /* ... and has released it */
	TF_TIMEDOUT = 1u << 9,	  /* with CANCELLED: a deadline passed */
	TF_URGENT = 1u << 10,	  /* woken into the LIFO slot (task_urgent) */
};

/*
 * Bits 16-31: the driver's I/O operations in flight, bits 32-63: children
 * not yet finished. A task finishes only when both are zero.
 */
#define TS_OPS_ONE (1ull << 16)
#define TS_OPS(s) ((uint32_t)(((s) >> 16) & 0xffffu))
#define TS_OPS_MAX 0xffffu
#define TS_JOIN_ONE (1ull << 32)
#define TS_JOIN(s) ((uint32_t)((s) >> 32))
#define TS_BUSY(s) ((s) >> 16)

/*
 * What a task waits on, in its 'wait' word: a channel (16-byte aligned
 * pointer, chan.c's flags in bits 0-1) or a timer (8-byte aligned pointer
 * | TW_TIMER). One at a time; wait_release() gives it up.
 */
#define TW_TIMER ((uintptr_t)4)
#define TW_KIND_MASK ((uintptr_t)7)

/*
 * The task header. It precedes the user's state in the same allocation.
 * 64 bytes: ten million parked tasks cost 640 MB of headers.
 */
struct myriad_task {
	_Atomic uint64_t state; /* lifecycle, flags, join count */
	myriad_step_fn step;
	/* TF_CHILD: the parent task; otherwise the runtime. */
	void *up;
	struct myriad_task *children; /* head of my children list */
	struct myriad_task *sibling;  /* next child of my parent */
	struct io_op *ops;	      /* the driver's records in use */
	_Atomic uintptr_t wait;	      /* channel or timer waited on */
	int64_t result;
};
static_assert(sizeof(struct myriad_task) == 64, "task header is 64 bytes");

static inline void *task_state(struct myriad_task *t)
{
	return (char *)t + sizeof(*t);
}

/* The global inject queue (inject.c); overflow chunks of this many tasks. */
#define OCHUNK_CAP 1022
struct ochunk;
struct inject {
	struct ck_ring ring;
	ck_ring_buffer_t *buf;
	struct spin lock; /* serializes producers; guards the overflow list */
	struct ochunk *ohead, *otail, *ospare;
	_Atomic size_t olen;
} __attribute__((aligned(CACHELINE)));

/* Idle-worker bookkeeping (idle.c). */
struct idle {
	/* Low 16 bits: workers searching; high 16: workers not parked. */
	_Atomic uint32_t state;
	struct spin lock; /* guards sleepers[], nsleepers, in_sleepers */
	unsigned nsleepers;
	unsigned *sleepers;
} __attribute__((aligned(CACHELINE)));

#define IDLE_UNPARKED_ONE (1u << 16)
#define IDLE_SEARCHING(s) ((s)&0xffffu)
#define IDLE_UNPARKED(s) ((s) >> 16)

/* Cheap per-worker counters; written by the owner only. */
#if MYRIAD_COUNTERS
#define CTR_ADD(w, c, n)                                                   \
	atomic_store_explicit(                                             \
		&(w)->ctr[c],                                              \
		atomic_load_explicit(&(w)->ctr[c], memory_order_relaxed) + \
			(n),                                               \
		memory_order_relaxed)
#else
#define CTR_ADD(w, c, n) ((void)0)
#endif
#define CTR_INC(w, c) CTR_ADD(w, c, 1)

/* Owner-written, anyone-read counter: plain stores, no RMW. */
static inline void own_add(_Atomic int64_t *v, int64_t n)
{
	atomic_store_explicit(v,
			      atomic_load_explicit(v, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void own_add32(_Atomic uint32_t *v, uint32_t n)
{
	atomic_store_explicit(v,
			      atomic_load_explicit(v, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

struct worker {
	/* Read by thieves. */
	struct ck_ring ring; /* local run queue, SPMC */
	ck_ring_buffer_t *buf;
	_Atomic(struct myriad_task *) lifo; /* stealable LIFO slot */

	/*
	 * The spawn stack's takeover (sched/queue.c:6-11). 'stk_win': the
	 * step window, 0 outside a step, else the running task | 1, written
	 * by the owner once when a step begins and once when it ends (two
	 * steps of one task in a row look like one to the monitor: at worst
	 * a stack is taken over that would have run soon). 'stk_steal': a
	 * thief's claim (bit 0) and its note to the owner: the stack entries
	 * it took (bits 1-31) and the join count it added for the step (bits
	 * 32-63). 'stk_stuck': the window the monitor found stuck (sysmon.c).
	 */
	_Atomic uintptr_t stk_win __attribute__((aligned(CACHELINE)));
	_Atomic uint64_t stk_steal;
	_Atomic uintptr_t stk_stuck;

	/* Owner only. */
	struct myriad_rt *rt __attribute__((aligned(CACHELINE)));
	unsigned idx;
	/* Stack entries: the owner writes, a thief reads (sched/queue.c:11) */
	_Atomic unsigned stack_n;
	unsigned lifo_streak;
	uint32_t tick;
	bool pinned;	      /* MYRIAD_POLICY_PIN: on its one CPU now */
	bool urgent_io;	      /* an urgent task ran here lately ... */
	uint32_t urgent_tick; /* ... at this tick (worker.c) */
	int budget;	      /* cooperative budget of this step */
	bool searching;
	bool need_notify;		 /* work entered the ring this step */
	bool joined;			 /* the step's join returned 0 ... */
	struct myriad_task *joined_head; /* ... over children from here on */
	unsigned slot_streak;		 /* LIFO-slot runs in a row */
	/*
	 * Children the running step spawned and has not yet added to its
	 * join count (sched/task.c:5): added by the step's closing
	 * compare-and-swap, or earlier by join_flush() before a child can
	 * become visible to another thread.
	 */
	_Atomic uint32_t join_pending; /* owner writes, a thief reads */
	bool in_sleepers;	       /* guarded by rt->idle.lock */
	struct myriad_task *current;   /* the task whose step runs */
	uint64_t rng;
	int alloc_flags; /* MALLOCX_ARENA | MALLOCX_TCACHE */
	int free_flags;	 /* MALLOCX_TCACHE */
	unsigned arena, tcache;
	bool arena_ok, tcache_ok;

	/*
	 * The driver's state for this worker (rt->drv->worker_init()), and
	 * its hint to the run loop, owner only: false when the driver has
	 * nothing a poll could move (nothing queued, in flight or waiting to
	 * be retried); true may be stale, and the poll then clears it. One
	 * load on the run loop's path, where a call per tick would cost.
	 */
	void *drv;
	bool drv_busy;

	struct sig_step *sigw; /* the step word the probes read, or NULL */
	pthread_t thread;
	bool thread_ok;
	pid_t tid;

	_Atomic int64_t allocs, frees; /* tasks, for myriad_rt_tasks_live */
	uintptr_t pf_last;	       /* the 2 MiB chunk allocated from ... */
	_Atomic uintptr_t pf_front;    /* ... as others read it (rt.c) */
	/* Spawned tasks, newest last: depth-first for fork-join (queue.c). */
	_Atomic(struct myriad_task *) stack[MYRIAD_STACK_CAP];
#if MYRIAD_COUNTERS
	_Atomic uint64_t ctr[MYRIAD_CTR__COUNT];
#endif
} __attribute__((aligned(CACHELINE)));

struct myriad_rt {
	unsigned nworkers;
	struct worker *workers;
	_Atomic unsigned active; /* policy's active worker count */
	/*
	 * MYRIAD_POLICY_PIN: worker i's CPU, and the mask to go back to
	 * while some workers are parked; pin_on false when not pinning
	 * (flag unset, too few CPUs, or a pin failed).
	 */
	int *pin_cpu;
	cpu_set_t pin_mask;
	_Atomic bool pin_on;
	struct inject inject;
	struct idle idle;

	_Atomic bool shutdown;
	bool stopped; /* workers joined (owner thread) */
	bool destroyed;
	/* Bumped when a handle task finishes; joiners futex-wait on it. */
	_Atomic uint32_t done_epoch;
	_Atomic uint32_t joiners;
	_Atomic int64_t handles;
	/* Cancellations ever requested: while 0, nobody walks ancestors. */
	_Atomic uint64_t ncancels;

	/*
	 * The driver the workers park on (driver.h), and its state for the
	 * runtime (how outside threads wake workers, its threads).
	 */
	const struct sched_driver *drv;
	void *drv_ctx;

	unsigned oarena; /* tasks spawned from outside */
	bool oarena_ok;
	_Atomic int64_t oallocs, ofrees;

	/* Scheduler signals (signals/signals.h), or NULL; /proc's poller. */
	struct signals *sig;
	pthread_t sig_poller;
	bool sig_poller_ok;
	_Atomic bool sig_stop;

	/*
	 * The monitor of stuck steps (sysmon.c): its thread, its futex word
	 * (enum mon_state), whether membarrier() lets stacks be taken over,
	 * and whether a worker is marked stuck now.
	 */
	pthread_t mon;
	void *mon_ctx;
	bool mon_ok;
	bool stk_takeover;
	_Atomic uint32_t mon_state;
	_Atomic bool stuck_any;

	/* Counters in shared memory for other processes (stats.h). */
	struct myriad_shm *shm;
	size_t shm_len;
	char shm_name[48];

	const struct myriad_policy_ops *pol;
	void *pctx;
	bool pol_init;

	/* Start-up handshake with the workers. */
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	unsigned started;
	int start_err;
	bool go;
};

/* The worker the calling thread is, or NULL. */
extern __thread struct worker *sched_cur_worker
	__attribute__((tls_model("initial-exec")));

static inline struct worker *cur_worker(void)
{
	return sched_cur_worker;
}

/* Is 'self' the task whose step runs on worker 'w' (the caller's)? */
static inline bool is_running_task(struct worker *w, myriad_task_t *self)
{
	return w && w->current == self && self;
}

/* task.c */
struct myriad_task *task_new(struct myriad_rt *rt, struct worker *w,
			     myriad_step_fn fn, const void *init, size_t size,
			     uint64_t init_state, void *up);
void task_free(struct myriad_rt *rt, struct worker *w, struct myriad_task *t);
void task_run(struct worker *w, struct myriad_task *t);
bool task_wake_prepare(struct myriad_task *t);
void task_schedule(struct myriad_rt *rt, struct myriad_task *t);
void join_flush(struct worker *w);
void task_schedule_spawned(struct myriad_rt *rt, struct worker *w,
			   struct myriad_task *t);
struct myriad_rt *task_rt(const struct myriad_task *t);

/* queue.c: the local queue and LIFO slot */
int lq_init(struct worker *w);
void lq_fini(struct worker *w);
void lq_push(struct worker *w, struct myriad_task *t);
void lq_push_lifo(struct worker *w, struct myriad_task *t);
void lq_push_stack(struct worker *w, struct myriad_task *t);
struct myriad_task *lq_pop_stack(struct worker *w);
void lq_spill(struct worker *w);
struct myriad_task *lq_pop(struct worker *w);
struct myriad_task *lq_pop_lifo(struct worker *w);
struct myriad_task *lq_steal_half(struct worker *w, struct worker *victim);
struct myriad_task *lq_steal_lifo(struct worker *victim);
unsigned lq_len(struct worker *w);

/* inject.c: the global inject queue */
int inject_init(struct inject *q);
void inject_fini(struct inject *q);
void inject_push(struct inject *q, struct myriad_task *t);
void inject_push_batch(struct inject *q, struct myriad_task **v, unsigned n);
struct myriad_task *inject_pop(struct inject *q);
bool inject_empty(struct inject *q);
size_t inject_len(struct inject *q);

/* idle.c: who searches, who sleeps */
int idle_init(struct idle *id, unsigned nworkers);
void idle_fini(struct idle *id);
bool idle_try_searching(struct myriad_rt *rt);
bool idle_stop_searching(struct myriad_rt *rt);
bool idle_park(struct myriad_rt *rt, struct worker *w);
bool idle_unpark_self(struct myriad_rt *rt, struct worker *w);
int idle_take_sleeper(struct myriad_rt *rt);

/* park.c: sleeping on the driver, and waking sleepers */
void park(struct worker *w);
void park_sleep(struct worker *w);
void notify_one(struct myriad_rt *rt, struct worker *from);
void notify_local(struct myriad_rt *rt, struct worker *w);
void notify_all(struct myriad_rt *rt);
bool work_visible(struct myriad_rt *rt);

/* queue.c: the spawn stack's takeover (sched/queue.c:6-11) */
void stk_reclaim(struct worker *w);
unsigned lq_take_stack(struct worker *victim, uintptr_t win,
		       struct myriad_task **v);
bool lq_stack_stuck(struct worker *victim);
unsigned lq_stack_len(struct worker *w);
uintptr_t stk_hold(struct worker *w);
void stk_unhold(struct worker *w, uintptr_t win);

/*
 * A step begins (sched/queue.c:7): one store. Release: a thief that reads
 * the window (acquire) sees the stack and join count as they were.
 */
static inline void stk_open(struct worker *w, struct myriad_task *t)
{
	atomic_store_explicit(&w->stk_win, (uintptr_t)t | 1,
			      memory_order_release);
}

/*
 * The step ended (sched/queue.c:8): close the window, then look for a
 * thief. Only a compiler barrier between the store and the load: the
 * thief's membarrier() is the fence of both sides.
 */
static inline void stk_close(struct worker *w)
{
	atomic_store_explicit(&w->stk_win, 0, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	if (unlikely(atomic_load_explicit(&w->stk_steal, memory_order_relaxed)))
		stk_reclaim(w);
}

/* sysmon.c: the monitor of steps that block or run long */
int sysmon_start(struct myriad_rt *rt);
void sysmon_stop(struct myriad_rt *rt);
void sysmon_kick(struct myriad_rt *rt);

/* The policy's MYRIAD_POLICY_* flags: 0 from a struct older than them. */
static inline unsigned pol_flags(const struct myriad_policy_ops *pol)
{
	return pol->sz >= offsetof(struct myriad_policy_ops, flags) +
				       sizeof(pol->flags)
		       ? pol->flags
		       : 0;
}

/* The runtime's parts, which rt.c puts together. */
/* cpus.c: how many workers; MYRIAD_POLICY_PIN's CPU for each */
int count_workers(const struct myriad_rt_opts *o, unsigned *out);
int pin_plan(struct myriad_rt *rt);

/* arena.c: task arenas; an idle worker faults in memory ahead of spawning */
#define PF_CHUNK ((uintptr_t)2 << 20)
int arena_create(unsigned *a);
void arena_destroy(unsigned a);
bool rt_prefault_step(struct myriad_rt *rt);

/* stats.c: the shared counters, and this worker's slot refreshed */
void shm_open_rt(struct myriad_rt *rt);
void shm_close_rt(struct myriad_rt *rt);
void rt_shm_publish(struct worker *w, bool parked);

/* rt_signals.c: the scheduler signals of the runtime, and their end */
void rt_signals_start(struct myriad_rt *rt, const struct myriad_rt_opts *opts);
void rt_signals_stop(struct myriad_rt *rt);

/* worker.c */
void *worker_main(void *arg);

/* chan.c, task.c: give up what the task waits on (the running worker) */
void chan_task_finished(struct myriad_task *t);
void wait_release(struct worker *w, struct myriad_task *t);

/* task.c, for the driver: cancellation with a reason, I/O completion */
void task_cancel_flags(struct myriad_task *t, uint64_t why);
/* cancel.c: the runtime's half of cancellation, before the task's step */
void propagate_cancel(struct myriad_task *t);
int task_cancel_reason(const struct myriad_task *t);
void task_op_done(struct worker *w, struct myriad_task *t);
void task_op_wake(struct worker *w, struct myriad_task *t);
void task_set_urgent(struct myriad_task *self);

#endif
