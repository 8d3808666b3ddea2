/* SPDX-License-Identifier: MIT */
/*
 * signals/signals_impl.h: the internal interface that both signal sources
 * implement (bpf/signals_bpf.c, signals_proc.c), and what signals.c shares.
 */
#ifndef MYRIAD_SIGNALS_IMPL_H
#define MYRIAD_SIGNALS_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "signals.h"

#ifndef MYRIAD_SIGNALS_BPF
#define MYRIAD_SIGNALS_BPF 0
#endif

/*
 * One source. signals.c serialises open, add, poll and close (the poll
 * lock); read and blocks may run on any thread at any time.
 */
struct signals_src_ops {
	const char *name;
	/* Set up for s->n workers and s->steps; 0, or -errno and s->error. */
	int (*open)(struct signals *s);
	/* Worker 'worker' is now thread 'tid'; its counters restart. */
	int (*add)(struct signals *s, unsigned worker, pid_t tid);
	void (*read)(struct signals *s, unsigned worker,
		     struct worker_signals *out);
	/* Refresh what is read at the period; NULL: nothing to do. */
	int (*poll)(struct signals *s, uint64_t now_ns);
	int (*blocks)(struct signals *s, unsigned worker,
		      struct signals_block *out, unsigned n);
	void (*close)(struct signals *s);
};

struct signals {
	const struct signals_src_ops *ops;
	int source;
	unsigned n;
	unsigned flags;
	struct sig_step *steps; /* n words, owned by the source */
	pid_t *tids;		/* 0: not registered */
	void *priv;		/* the source's */
	uint64_t period_ns;
	_Atomic uint64_t last_poll_ns;
	pthread_mutex_t poll_lock;
	/* The cgroup's cpu.stat, refreshed under poll_lock, read under cg_lock. */
	pthread_mutex_t cg_lock;
	struct cgroup_signals cg;
	int cg_ok;
	int cg_stat_fd, cg_max_fd, cg_period_fd;
	char error[256];
	char *log;
};

#if MYRIAD_SIGNALS_BPF
extern const struct signals_src_ops signals_bpf_ops;
#endif
extern const struct signals_src_ops signals_proc_ops;

/* Read a /proc or cgroup file kept open into buf (NUL-terminated). */
ssize_t signals_pread(int fd, char *buf, size_t len);

/* A thread's state letter and CPU from /proc/self/task/<tid>/stat. */
int signals_task_stat(pid_t tid, char *state, int *cpu);

/* Parse "state ... processor" out of a stat line: 0 or -EINVAL. */
int signals_parse_stat(const char *buf, char *state, int *cpu);

#endif
