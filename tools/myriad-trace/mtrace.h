/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-trace/mtrace.h: the tool's parts: the target process and
 * its worker threads (target.c), the text and JSON output (output.c); the
 * eBPF source is bpf/trace_loader.h, step symbols are in symbols.h.
 */
#ifndef MYRIAD_MTRACE_H
#define MYRIAD_MTRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <myriad/stats.h>

#include "bpf/trace_loader.h" /* the eBPF source, struct trace_* */
#include "symbols.h"

#define MT_MAX_SHM 16	   /* runtimes (shm files) followed in one process */
#define MT_MAX_BLOCKS 1000 /* blocking events listed per interval */
#define MT_TEXT_BLOCKS 20  /* of those, the longest shown in text mode */

/* counts.have */
#define HAVE_CTRS (1u << 0)  /* run, steals, parks, wakes */
#define HAVE_QLEN (1u << 1)  /* queue_len */
#define HAVE_SCHED (1u << 2) /* preempt, rq_delay_ns, oncpu_ns */

/* One worker thread at one instant: cumulative counts. */
struct counts {
	uint64_t run;	 /* steps run */
	uint64_t steals; /* tasks stolen from other workers */
	uint64_t parks;
	uint64_t wakes;
	uint64_t preempt;     /* involuntary context switches */
	uint64_t rq_delay_ns; /* runnable, waiting for a CPU */
	uint64_t oncpu_ns;    /* on a CPU */
	int64_t queue_len;    /* not cumulative: now; -1 unknown */
	int cpu;	      /* the CPU it is on or last ran on; -1 */
	unsigned have;	      /* HAVE_* */
};

/* A worker thread, a row of the table, while it lives. */
struct worker {
	pid_t tid;
	int idx;      /* N of its name, myriad-w<N> */
	unsigned row; /* its row in the probes' array */
	bool alive;
	bool fresh; /* found by the last scan: no baseline yet */
	const volatile struct myriad_shm_worker *slot; /* NULL: no shm */
	struct counts prev;
};

struct shm_map {
	char name[64]; /* myriad.<pid>.<n> */
	const volatile struct myriad_shm *m;
	size_t len;
	int ctr_run, ctr_stolen, ctr_parks, ctr_wakes; /* indexes; -1 */
};

struct target {
	pid_t pid;
	char comm[32];
	char lib[4096];	  /* libmyriad as mapped, "" when not mapped */
	bool lib_deleted; /* the mapped file was replaced or removed */
	struct shm_map shm[MT_MAX_SHM];
	unsigned nshm;
	/*
	 * /dev/shm/myriad.<pid>.* files older than the process: left by an
	 * earlier process with the same pid (killed before it could remove
	 * them), ignored.
	 */
	char stale[MT_MAX_SHM][64];
	unsigned nstale;
	struct worker *w;
	unsigned nw, capw;
	unsigned next_row;
};

/*
 * Check that 'pid' is a myriad process we may trace and fill 't'. Returns
 * 0, or -errno with a sentence in 'why': -ESRCH (no such process), -EPERM
 * (another user's, and we are not root), -ENOEXEC (not a myriad process:
 * no libmyriad mapped and no /dev/shm/myriad.<pid>.* file).
 */
int target_open(struct target *t, pid_t pid, char *why, size_t len);
void target_close(struct target *t);

/* 1 while the process lives (a zombie is gone), else 0. */
int target_alive(const struct target *t);

/*
 * Find the worker threads (new ones are appended, fresh; gone ones are
 * marked dead) and the shm files that appeared, matching slots by tid.
 * Returns how many workers are new.
 */
int target_scan(struct target *t);

/*
 * Fill 'c' for worker 'w' from the shm slot (counters, queue length) and
 * /proc (preempt, rq_delay_ns, oncpu_ns, cpu). Returns 0 or -errno (the
 * thread is gone).
 */
int target_read(const struct target *t, const struct worker *w,
		struct counts *c);

/* ---- output (output.c) ---- */

/* One interval: per-worker deltas (and now-values), and the sums. */
struct row_out {
	const struct worker *w;
	struct counts d; /* counts over the interval; queue_len, cpu: now */
};

/* A blocking event of the interval, resolved. */
struct block_out {
	struct trace_block e;
	int idx;	    /* the worker's N; -1: no longer known */
	double at;	    /* its switch-out, wall clock, Unix seconds */
	int sym_r;	    /* syms_lookup()'s result */
	struct sym_info si; /* the step function */
};

/* The blocking events that ended in one interval. */
struct blocks_iv {
	bool avail; /* false: not with this source (needs eBPF) */
	double min_ms;
	struct block_out
		*v; /* in the order they ended, at most MT_MAX_BLOCKS */
	unsigned n, cap;
	uint64_t over;	 /* at least min_ms, beyond MT_MAX_BLOCKS: not listed */
	uint64_t short_; /* shorter than min_ms: counted only */
	uint64_t lost;	 /* the probes' ring buffer was full */
};

struct interval {
	double ts;	    /* wall clock at its end, Unix seconds */
	double secs;	    /* its length */
	double read_s;	    /* the counts were read in [ts - read_s, ts] */
	const char *source; /* "bpf" or "shm+proc" */
	struct row_out *rows;
	unsigned n;
	struct counts tot;
	struct blocks_iv *blk;
};

void out_table(FILE *f, const struct target *t, const char *header,
	       const struct interval *iv, bool tty);
void out_json(FILE *f, const struct interval *iv);
void out_hists_text(FILE *f, const struct trace_hists *h);
void out_hists_json(FILE *f, const struct trace_hists *h, const char *source,
		    double ts);
void out_no_hists(FILE *f, bool json, const char *source, const char *why,
		  double ts);

#endif
