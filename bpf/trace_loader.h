/* SPDX-License-Identifier: MIT */
/*
 * bpf/trace_loader.h: myriad-trace's eBPF source (trace.bpf.c): load and
 * attach the probes to one process, read its rows, histograms and events.
 */
#ifndef MYRIAD_TRACE_LOADER_H
#define MYRIAD_TRACE_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "trace.h"

struct tbpf;

/*
 * Load the probes for process 'pid' and attach them: the USDT probes of
 * 'lib' (libmyriad as the process maps it; "" when none is mapped: the
 * executable; 'lib_deleted': the mapped file was replaced or removed) and
 * the scheduler's tracepoints. Blocking events shorter than
 * 'block_min_ns' are only counted. Returns the source or NULL, with the
 * reason in 'why'. libbpf's messages go to its log (tbpf_log), never to
 * stderr.
 */
struct tbpf *tbpf_open(pid_t pid, const char *lib, bool lib_deleted,
		       uint64_t block_min_ns, char *why, size_t len);

/* Follow worker thread 'tid' in row 'row'. Returns 0 or -errno. */
int tbpf_add(struct tbpf *b, pid_t tid, unsigned row);

/*
 * Row 'row' as the probes write it (mapped, no system call): each 64-bit
 * field whole, the fields together may be a few events apart.
 */
const struct trace_row *tbpf_row(const struct tbpf *b, unsigned row);

/* The histograms so far (a copy). */
void tbpf_hists(const struct tbpf *b, struct trace_hists *h);

typedef void (*tbpf_block_fn)(const struct trace_block *e, void *arg);

/*
 * Hand every blocking event the probes sent since the last call to 'cb'
 * (on this thread, before it returns). Returns 0 or -errno.
 */
int tbpf_blocks(struct tbpf *b, tbpf_block_fn cb, void *arg);

/* The blocking counters since attach. */
void tbpf_blk_ctrs(const struct tbpf *b, struct trace_blk_ctrs *c);

/* Which optional probes were not found, e.g. "io_submit offload_end". */
const char *tbpf_missing(const struct tbpf *b);

/* libbpf's warnings from tbpf_open, for --verbose; may be "". */
const char *tbpf_log(void);

void tbpf_close(struct tbpf *b);

#endif
