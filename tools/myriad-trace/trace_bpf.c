/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-trace/trace_bpf.c: the eBPF source: loads trace.bpf.c through
 * its skeleton, attaches the USDT probes to the target's libmyriad and the
 * scheduler's tracepoints, and reads the rows and histograms and drains the
 * blocking events.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtrace.h"

#if MYRIAD_TRACE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

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

/* libbpf's messages: kept for --verbose, never printed on their own. */
static char log_buf[8192];
static size_t log_len;

static int log_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int r;

	if (level == LIBBPF_DEBUG || log_len >= sizeof(log_buf) - 1)
		return 0;
	r = vsnprintf(log_buf + log_len, sizeof(log_buf) - log_len, fmt, ap);
	if (r > 0)
		log_len += (size_t)r;
	if (log_len > sizeof(log_buf) - 1)
		log_len = sizeof(log_buf) - 1;
	return 0;
}

const char *tbpf_log(void)
{
	return log_buf;
}

/*
 * The file to attach to, as this process can open it: the path in the
 * target's maps when it is the same file here (same mount namespace),
 * else the same path under /proc/PID/root.
 */
static int probe_binary(const struct target *t, char *out, size_t len,
			char *why, size_t wlen)
{
	char path[64];
	struct stat a, b;

	if (!t->lib[0]) {
		/* No libmyriad mapped: a static build, probes in the exe. */
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)t->pid);
		if (realpath(path, out) == NULL) {
			snprintf(why, wlen, "cannot resolve %s: %s", path,
				 strerror(errno));
			return -errno;
		}
		return 0;
	}
	if (t->lib_deleted) {
		snprintf(why, wlen,
			 "the libmyriad the process runs was replaced or "
			 "removed since it started (%s (deleted))",
			 t->lib);
		return -ENOENT;
	}
	snprintf(out, len, "/proc/%d/root%s", (int)t->pid, t->lib);
	if (stat(out, &a) == 0 && stat(t->lib, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		snprintf(out, len, "%s", t->lib);
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

struct tbpf *tbpf_open(const struct target *t, uint64_t block_min_ns, char *why,
		       size_t len)
{
	static const char *const names[NPROBES] = {
		"run",		 "run_done",	"steal",     "park",
		"wake",		 "spawn",	"io_submit", "io_complete",
		"offload_start", "offload_end",
	};
	struct bpf_program *progs[NPROBES];
	char bin[4200];
	struct tbpf *b;
	libbpf_print_fn_t prev;
	size_t l;
	int i, err;

	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	prev = libbpf_set_print(log_print);
	err = probe_binary(t, bin, sizeof(bin), why, len);
	if (err)
		goto err;
	b->skel = trace_bpf__open();
	if (!b->skel) {
		err = -errno;
		snprintf(why, len, "eBPF: cannot open the probes: %s",
			 strerror(-err));
		goto err;
	}
	b->skel->rodata->tgid = (__u32)t->pid;
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
			progs[i], t->pid, bin, "myriad", names[i], NULL);
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
	libbpf_set_print(prev);
	return b;
err:
	libbpf_set_print(prev);
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

static uint64_t ld(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void tbpf_read(const struct tbpf *b, unsigned row, struct counts *c)
{
	const struct trace_row *r = &b->skel->bss->trace_rows[row];

	c->run = ld(&r->run);
	c->steals = ld(&r->stolen);
	c->parks = ld(&r->parks);
	c->wakes = ld(&r->wakes);
	c->preempt = ld(&r->preempt);
	c->rq_delay_ns = ld(&r->rq_delay_ns);
	if (__atomic_load_n(&r->seen, __ATOMIC_RELAXED))
		c->cpu = (int)__atomic_load_n(&r->cpu, __ATOMIC_RELAXED);
	c->have |= HAVE_CTRS | HAVE_SCHED;
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

struct tbpf *tbpf_open(const struct target *t, uint64_t block_min_ns, char *why,
		       size_t len)
{
	(void)t;
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

void tbpf_read(const struct tbpf *b, unsigned row, struct counts *c)
{
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
