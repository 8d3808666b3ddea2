/* SPDX-License-Identifier: MIT */
/*
 * bpf/trace_loader.c: myriad-trace's eBPF source: loads trace.bpf.c through
 * its skeleton, attaches the USDT probes to the target's libmyriad and the
 * scheduler's tracepoints, and reads the rows and histograms and drains the
 * blocking events.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace_loader.h"

#if MYRIAD_TRACE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log_capture.h"
#include "trace.skel.h"

/* The USDT probes; the first five are needed for the table. */
#define NPROBES 10
#define NREQUIRED 5

struct tbpf {
	struct trace_bpf *skel;
	struct bpf_link *links[NPROBES];
	struct ring_buffer *rb; /* the blocking events */
	tbpf_block_fn cb;	/* during tbpf_blocks() */
	void *cb_arg;
	char missing[128];
	int rows_fd;
};

/* libbpf's messages from tbpf_open: kept for --verbose, never printed. */
static char *trace_log;

const char *tbpf_log(void)
{
	return trace_log ? trace_log : "";
}

/*
 * The file to attach to, as this process can open it: the path in the
 * target's maps when it is the same file here (same mount namespace),
 * else the same path under /proc/PID/root.
 */
static int probe_binary(pid_t pid, const char *lib, bool lib_deleted, char *out,
			size_t len, char *why, size_t wlen)
{
	char path[64];
	struct stat a, b;

	if (!lib[0]) {
		/* No libmyriad mapped: a static build, probes in the exe. */
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		if (realpath(path, out) == NULL) {
			snprintf(why, wlen, "cannot resolve %s: %s", path,
				 strerror(errno));
			return -errno;
		}
		return 0;
	}
	if (lib_deleted) {
		snprintf(why, wlen,
			 "the libmyriad the process runs was replaced or "
			 "removed since it started (%s (deleted))",
			 lib);
		return -ENOENT;
	}
	snprintf(out, len, "/proc/%d/root%s", (int)pid, lib);
	if (stat(out, &a) == 0 && stat(lib, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		snprintf(out, len, "%s", lib);
	return 0;
}

static int on_block(void *ctx, void *data, size_t size)
{
	struct tbpf *b = ctx;
	struct trace_block e;

	if (size < sizeof(e))
		return 0;
	memcpy(&e, data, sizeof(e));
	b->cb(&e, b->cb_arg);
	return 0;
}

struct tbpf *tbpf_open(pid_t pid, const char *lib, bool lib_deleted,
		       uint64_t block_min_ns, char *why, size_t len)
{
	static const char *const names[NPROBES] = {
		"run",		 "run_done",	"steal",     "park",
		"wake",		 "spawn",	"io_submit", "io_complete",
		"offload_start", "offload_end",
	};
	struct bpf_program *progs[NPROBES];
	char bin[4200];
	struct tbpf *b;
	size_t l;
	int i, err;

	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	log_capture_begin();
	err = probe_binary(pid, lib, lib_deleted, bin, sizeof(bin), why, len);
	if (err)
		goto err;
	b->skel = trace_bpf__open();
	if (!b->skel) {
		err = -errno;
		snprintf(why, len, "eBPF: cannot open the probes: %s",
			 strerror(-err));
		goto err;
	}
	b->skel->rodata->tgid = (__u32)pid;
	b->skel->rodata->block_min_ns = block_min_ns;
	err = trace_bpf__load(b->skel);
	if (err) {
		if (err == -EPERM || err == -EACCES)
			snprintf(why, len,
				 "eBPF: needs root or CAP_BPF+CAP_PERFMON");
		else
			snprintf(why, len, "eBPF: the probes did not load: %s",
				 strerror(-err));
		goto err;
	}
	b->rows_fd = bpf_map__fd(b->skel->maps.rows);
	b->rb = ring_buffer__new(bpf_map__fd(b->skel->maps.blocks), on_block, b,
				 NULL);
	if (!b->rb) {
		err = -errno;
		snprintf(why, len, "eBPF: the blocking events' ring buffer: %s",
			 strerror(-err));
		goto err;
	}
	err = trace_bpf__attach(b->skel); /* the tp_btf programs */
	if (err) {
		snprintf(why, len, "eBPF: the scheduler tracepoints: %s",
			 strerror(-err));
		goto err;
	}
	progs[0] = b->skel->progs.on_run;
	progs[1] = b->skel->progs.on_run_done;
	progs[2] = b->skel->progs.on_steal;
	progs[3] = b->skel->progs.on_park;
	progs[4] = b->skel->progs.on_wake;
	progs[5] = b->skel->progs.on_spawn;
	progs[6] = b->skel->progs.on_io_submit;
	progs[7] = b->skel->progs.on_io_complete;
	progs[8] = b->skel->progs.on_offload_start;
	progs[9] = b->skel->progs.on_offload_end;
	for (i = 0; i < NPROBES; i++) {
		b->links[i] = bpf_program__attach_usdt(
			progs[i], pid, bin, "myriad", names[i], NULL);
		if (b->links[i])
			continue;
		err = -errno;
		if (i < NREQUIRED) {
			snprintf(why, len,
				 "eBPF: USDT probe myriad:%s in %s: %s%s",
				 names[i], bin, strerror(-err),
				 err == -ENOENT
					 ? " (a build without sys/sdt.h?)"
					 : "");
			goto err;
		}
		/* Optional: note it, go on without. */
		l = strlen(b->missing);
		snprintf(b->missing + l, sizeof(b->missing) - l, "%s%s",
			 l ? " " : "", names[i]);
	}
	log_capture_end(&trace_log);
	return b;
err:
	log_capture_end(&trace_log);
	tbpf_close(b);
	return NULL;
}

int tbpf_add(struct tbpf *b, pid_t tid, unsigned row)
{
	__u32 k = (__u32)tid, v = row;

	if (row >= TRACE_MAX_ROWS)
		return -ENOSPC;
	/* Zero the row first: a probe may fire as soon as the key exists. */
	memset((void *)&b->skel->bss->trace_rows[row], 0,
	       sizeof(b->skel->bss->trace_rows[row]));
	if (bpf_map_update_elem(b->rows_fd, &k, &v, BPF_ANY) < 0)
		return -errno;
	return 0;
}

const struct trace_row *tbpf_row(const struct tbpf *b, unsigned row)
{
	return &b->skel->bss->trace_rows[row];
}

static uint64_t ld(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void tbpf_hists(const struct tbpf *b, struct trace_hists *h)
{
	const struct trace_hists *s = &b->skel->bss->trace_hists;
	unsigned i;

	for (i = 0; i < TRACE_HIST_BUCKETS; i++) {
		h->rq_delay[i] = ld(&s->rq_delay[i]);
		h->step[i] = ld(&s->step[i]);
		h->io[i] = ld(&s->io[i]);
		h->offload[i] = ld(&s->offload[i]);
		h->blocked[i] = ld(&s->blocked[i]);
	}
	h->io_lost = ld(&s->io_lost);
	h->off_lost = ld(&s->off_lost);
}

int tbpf_blocks(struct tbpf *b, tbpf_block_fn cb, void *arg)
{
	int r;

	b->cb = cb;
	b->cb_arg = arg;
	r = ring_buffer__consume(b->rb);
	b->cb = NULL;
	return r < 0 ? r : 0;
}

void tbpf_blk_ctrs(const struct tbpf *b, struct trace_blk_ctrs *c)
{
	const struct trace_blk_ctrs *s = &b->skel->bss->trace_blk;

	c->events = ld(&s->events);
	c->short_ = ld(&s->short_);
	c->lost = ld(&s->lost);
}

const char *tbpf_missing(const struct tbpf *b)
{
	return b->missing;
}

void tbpf_close(struct tbpf *b)
{
	int i;

	if (!b)
		return;
	for (i = 0; i < NPROBES; i++)
		bpf_link__destroy(b->links[i]);
	ring_buffer__free(b->rb);
	trace_bpf__destroy(b->skel);
	free(b);
}

#else /* built without the probes: the shm and /proc source only */

struct tbpf {
	int unused;
};

const char *tbpf_log(void)
{
	return "";
}

struct tbpf *tbpf_open(pid_t pid, const char *lib, bool lib_deleted,
		       uint64_t block_min_ns, char *why, size_t len)
{
	(void)pid;
	(void)lib;
	(void)lib_deleted;
	(void)block_min_ns;
	snprintf(why, len,
		 "eBPF: myriad-trace was built without the probes (clang, "
		 "bpftool, libbpf or the kernel's BTF missing at build time)");
	return NULL;
}

int tbpf_add(struct tbpf *b, pid_t tid, unsigned row)
{
	return -ENOTSUP;
}

const struct trace_row *tbpf_row(const struct tbpf *b, unsigned row)
{
	return NULL;
}

void tbpf_hists(const struct tbpf *b, struct trace_hists *h)
{
	memset(h, 0, sizeof(*h));
}

int tbpf_blocks(struct tbpf *b, tbpf_block_fn cb, void *arg)
{
	return -ENOTSUP;
}

void tbpf_blk_ctrs(const struct tbpf *b, struct trace_blk_ctrs *c)
{
	memset(c, 0, sizeof(*c));
}

const char *tbpf_missing(const struct tbpf *b)
{
	return "";
}

void tbpf_close(struct tbpf *b)
{
}
#endif
