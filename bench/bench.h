/* SPDX-License-Identifier: MIT */
/*
 * bench/bench.h: what myriad-bench's workloads share: the command line, a
 * workload's entry in the table of myriad-bench.c, the count-down that ends
 * a run, timing and memory figures, descriptors, the TCP dialer and the
 * agents' servers. The workloads and their RESULT keys: docs/bench.md.
 */
#ifndef MYRIAD_BENCH_H
#define MYRIAD_BENCH_H

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <myriad.h>

/* What every workload shares: the count-down and the root's waker. */
struct bench {
	_Atomic int64_t left;	   /* tasks still to finish */
	myriad_waker_t root;	   /* woken by the last one */
	struct timespec t0, t1;	   /* first spawn, last completion */
	struct timespec t_spawned; /* park: all spawned */
	int64_t n, m;		   /* workload parameters */
	long rss_before;	   /* VmRSS (kB) just before the run */
	_Atomic int failed;	   /* a spawn failed: -errno */
};

extern struct bench B;

/*
 * The command line, every flag as given: -1 where it is not (-2 for
 * --hog-cpu, whose -1 means "no hog"; NULL for --policy and --task).
 */
struct bench_args {
	int64_t workers;
	int64_t n, tasks, yields, pairs, rounds, sleep_ms, conns;
	int64_t agents, steps, tool_ms, llm_ms, llm_conc;
	int64_t tool_port, llm_port, tool_conns, tools;
	int64_t hog_cpu;
	int64_t procs;
	const char *policy;
	const char *task;
};

/*
 * A workload: its entry in the table of myriad-bench.c, which calls these
 * in this order. A hook that returns int returns 0 to go on, or the exit
 * status (1) after saying on stderr what failed. parse, run and result
 * are required; the others may be NULL (nothing to do).
 */
struct workload {
	const char *name;
	/*
	 * Its part of the usage text (NULL: said with the entry before),
	 * on a line of its own or, with 'usage_cont', after the previous
	 * part on the same line.
	 */
	const char *usage;
	bool usage_cont;
	/*
	 * The flags that are its own, checked (usage() on a bad one), its
	 * defaults set; returns 'tasks' where it is known before the run
	 * (the count-down starts there).
	 */
	int64_t (*parse)(const struct bench_args *a);
	/* Before the runtime exists (no thread yet: forks go here). */
	int (*prepare)(struct myriad_rt_opts *o);
	/* Once the runtime exists, before the run. */
	int (*setup)(myriad_rt_t *rt);
	/*
	 * The run: what myriad_rt_block_on() returns; sets *tasks where it
	 * is known only after the run.
	 */
	int (*run)(myriad_rt_t *rt, int64_t *tasks);
	/* After the run, before its status 'r' is looked at: failures. */
	int (*check)(int r);
	/* After a good run: notes on stderr (retries, drops). */
	void (*notes)(void);
	/* Before the runtime is destroyed: what the workload made. */
	int (*teardown)(void);
	/* Its keys of the RESULT line, after the common ones. */
	void (*result)(double wall, int64_t tasks);
};

extern const struct workload wl_spawn, wl_chain, wl_fib, wl_yield, wl_pingpong,
	wl_park, wl_echo, wl_agents, wl_noisy, wl_fleet;

/* The message, the usage text, exit 2 (myriad-bench.c). */
_Noreturn void usage(const char *msg);

/* ---- the count-down that ends a run ---- */

/* One task finished: the last wakes the root and stamps the end time. */
static inline void count_down(void)
{
	if (atomic_fetch_sub_explicit(&B.left, 1, memory_order_acq_rel) == 1) {
		clock_gettime(CLOCK_MONOTONIC, &B.t1);
		myriad_waker_wake(B.root);
	}
}

/*
 * Spawn, or mark the run failed and wake the root, which stops waiting;
 * main then exits 1 without a RESULT line. Returns what
 * myriad_task_spawn() returns (NULL for a detached task).
 */
static inline myriad_task_t *spawn(myriad_task_t *self, myriad_step_fn fn,
				   const void *init, size_t size,
				   unsigned flags)
{
	myriad_task_t *t;
	int err, none = 0;

	t = myriad_task_spawn(self, fn, init, size, flags, &err);
	if (err && atomic_compare_exchange_strong(&B.failed, &none, err))
		myriad_waker_wake(B.root);
	return t;
}

/* What a root waits for: every task finished, or a spawn failed. */
static inline bool run_over(void)
{
	return atomic_load(&B.left) == 0 || atomic_load(&B.failed);
}

/* The root of spawn, chain, yield, pingpong, park and agents. */
struct root {
	MYRIAD_CORO_FIELD;
	int64_t i;
};

/* myriad_rt_block_on() of 'step' on a zeroed struct root. */
int run_root(myriad_rt_t *rt, myriad_step_fn step);

/* ---- figures (common.c) ---- */

double now_s(const struct timespec *t);
/* B.t0 to B.t1. */
double wall_s(void);
/* A line of /proc/self/status in kB ("VmRSS:", "VmHWM:"), or -1. */
long status_kb(const char *key);
long peak_rss_kb(void);
/* User plus system time of a getrusage() record, in seconds. */
double cpu_seconds(const struct rusage *ru);
/* For qsort() of latencies. */
int cmp_u64(const void *a, const void *b);

/* ---- descriptors (common.c) ---- */

uint64_t nofile_max(void);
void raise_nofile(uint64_t need, const char *what, const char *unit,
		  uint64_t per, uint64_t spare);

/* ---- a TCP connect with retries (dial.c) ---- */

/* Connect retries, as the peers: 7, after 10 ms, 20 ms ... 640 ms. */
#define ECHO_RETRIES 7

/*
 * A TCP connect with retries, run inside the calling task's step: the
 * echo clients, the agents' own tool connections and the shared pool's.
 * Returns -EAGAIN while under way (return MYRIAD_PENDING and call it again
 * when run, as MYRIAD_IO does), the connected descriptor (TCP_NODELAY
 * set), or a negative errno with d->what naming the step that failed. A
 * connect refused or reset (a full listen backlog) is tried again on a
 * new socket after 10 ms << attempt, ECHO_RETRIES times at most, each
 * counted in *retries. 'op' and 'tm' are the task's own records.
 */
enum { DIAL_NEW, DIAL_CONNECTING, DIAL_SLEEPING };

struct dialer {
	int fd, attempt, stage;
	const char *what;
};

int set_nodelay(int fd);
int dial(myriad_task_t *self, struct dialer *d, myriad_io_t *op,
	 myriad_timer_t *tm, const struct sockaddr_in *addr,
	 _Atomic int64_t *retries);

/* ---- the agents workload's servers (servers_start.c) ---- */

/*
 * Starts the servers whose port is 0 in *llm_port and *tool_port, with
 * these parameters, and sets their ports; false after a message.
 */
bool servers_start(int64_t llm_ms, int64_t llm_conc, int64_t tool_ms,
		   int *llm_port, int *tool_port);

#endif
