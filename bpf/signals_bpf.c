/* SPDX-License-Identifier: MIT */
/*
 * bpf/signals_bpf.c: the eBPF source: loads and attaches sched_signals.bpf.c
 * through its skeleton, registers worker tids, reads the mmapped maps.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log_capture.h"
#include "sched_signals.h"
#include "sched_signals.skel.h"
#include "signals/signals_impl.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

struct bpf_src {
	struct sched_signals_bpf *skel;
	struct sig_worker *stats; /* mapped read-only */
	size_t stats_len;
	size_t steps_len;
	int stats_fd, workers_fd;
};

/* Root, or CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN implies both). */
static int privileged(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	uint64_t eff;

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d))
		return 1; /* cannot tell: let the kernel say */
	eff = (uint64_t)d[0].effective | (uint64_t)d[1].effective << 32;
	if (eff & (1ull << CAP_SYS_ADMIN))
		return 1;
	return (eff & (1ull << CAP_BPF)) && (eff & (1ull << CAP_PERFMON));
}

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) / pg * pg;
}

static void bpf_close(struct signals *s)
{
	struct bpf_src *b = s->priv;

	if (!b)
		return;
	if (b->stats && b->stats != MAP_FAILED)
		munmap(b->stats, b->stats_len);
	if (s->steps && (void *)s->steps != MAP_FAILED)
		munmap(s->steps, b->steps_len);
	s->steps = NULL;
	log_capture_begin();
	sched_signals_bpf__destroy(b->skel);
	log_capture_end(NULL);
	free(b);
	s->priv = NULL;
}

static int bpf_open(struct signals *s)
{
	struct sched_signals_bpf *skel;
	struct bpf_src *b;
	const char *what;
	int r;

	if (!privileged()) {
		snprintf(s->error, sizeof(s->error),
			 "eBPF: needs root or CAP_BPF+CAP_PERFMON");
		return -EPERM;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	s->priv = b;
	log_capture_begin();
	what = "open";
	skel = sched_signals_bpf__open();
	if (!skel) {
		r = -errno;
		goto err;
	}
	b->skel = skel;
	skel->rodata->tgid = (__u32)getpid();
	skel->rodata->track_blocking = !(s->flags & SIGNALS_NO_BLOCKING);
	skel->rodata->block_min_ns = 0;
	what = "size the maps";
	r = bpf_map__set_max_entries(skel->maps.workers, s->n);
	if (!r)
		r = bpf_map__set_max_entries(skel->maps.stats, s->n);
	if (!r)
		r = bpf_map__set_max_entries(skel->maps.steps, s->n);
	if (r)
		goto err;
	what = "load";
	r = sched_signals_bpf__load(skel);
	if (r)
		goto err;
	b->stats_fd = bpf_map__fd(skel->maps.stats);
	b->workers_fd = bpf_map__fd(skel->maps.workers);
	/* libbpf 1.1 has no bpf_map__mmap: map the array's fd ourselves. */
	what = "mmap the maps";
	b->stats_len = page_round((size_t)s->n * sizeof(struct sig_worker));
	b->stats =
		mmap(NULL, b->stats_len, PROT_READ, MAP_SHARED, b->stats_fd, 0);
	if (b->stats == MAP_FAILED) {
		r = -errno;
		goto err;
	}
	b->steps_len = page_round((size_t)s->n * sizeof(struct sig_step));
	s->steps = mmap(NULL, b->steps_len, PROT_READ | PROT_WRITE, MAP_SHARED,
			bpf_map__fd(skel->maps.steps), 0);
	if ((void *)s->steps == MAP_FAILED) {
		r = -errno;
		goto err;
	}
	what = "attach";
	r = sched_signals_bpf__attach(skel);
	if (r)
		goto err;
	log_capture_end(&s->log);
	return 0;
err:
	if (r > 0)
		r = -r;
	log_capture_end(&s->log);
	snprintf(s->error, sizeof(s->error), "eBPF: %s: %s", what,
		 strerror(-r));
	bpf_close(s);
	return r;
}

static int bpf_add(struct signals *s, unsigned worker, pid_t tid)
{
	struct bpf_src *b = s->priv;
	struct sig_worker *zero;
	__u32 key = worker, t;
	int cpu = -1, r;

	r = signals_task_stat(tid, NULL, &cpu);
	if (r < 0)
		return r;
	/* Leave the old thread first, then restart the counters. */
	if (s->tids[worker]) {
		t = (__u32)s->tids[worker];
		bpf_map_delete_elem(b->workers_fd, &t);
	}
	zero = calloc(1, sizeof(*zero));
	if (!zero)
		return -ENOMEM;
	zero->cpu = (__u32)cpu;
	r = bpf_map_update_elem(b->stats_fd, &key, zero, BPF_ANY);
	free(zero);
	if (r)
		return -errno;
	t = (__u32)tid;
	if (bpf_map_update_elem(b->workers_fd, &t, &key, BPF_ANY))
		return -errno;
	return 0;
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define LOAD_ACQ(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)

static void bpf_read(struct signals *s, unsigned worker,
		     struct worker_signals *out)
{
	struct bpf_src *b = s->priv;
	const struct sig_worker *w = &b->stats[worker];
	unsigned i;

	/*
	 * Plain loads from the map: each field whole, the record as a whole
	 * may straddle a few events (the probe writes while we read).
	 */
	out->preempt = LOAD(w->preempt);
	out->voluntary = LOAD(w->voluntary);
	out->switch_in = LOAD(w->switch_in);
	out->wakeups = LOAD(w->wakeups);
	out->rq_delay_ns = LOAD(w->rq_delay_ns);
	out->rq_delay_count = LOAD(w->rq_delay_count);
	out->rq_delay_max_ns = LOAD(w->rq_delay_max_ns);
	out->oncpu_ns = LOAD(w->oncpu_ns);
	out->offcpu_ns = LOAD(w->offcpu_ns);
	out->migrations = LOAD(w->migrations);
	out->blocks = LOAD(w->blocks);
	out->blocked_ns = LOAD(w->blocked_ns);
	out->stamp_ns = 0;
	out->cpu = (int32_t)LOAD(w->cpu);
	out->on_cpu = LOAD(w->on_cpu);
	out->have =
		SIGNALS_HAVE_HIST | SIGNALS_HAVE_WAKEUPS | SIGNALS_HAVE_EXACT;
	out->pad = 0;
	for (i = 0; i < SIGNALS_HIST_BUCKETS; i++)
		out->rq_hist[i] = LOAD(w->rq_hist[i]);
}

static int bpf_blocks(struct signals *s, unsigned worker,
		      struct signals_block *out, unsigned n)
{
	struct bpf_src *b = s->priv;
	const struct sig_worker *w = &b->stats[worker];
	uint64_t head = __atomic_load_n(&w->block_head, __ATOMIC_ACQUIRE);
	uint64_t i, s1, s2;
	unsigned k = 0;

	/* Newest first; each slot is a seqlock (see struct sig_block). */
	for (i = head; i > 0 && k < n && head - i < SIG_BLOCK_RING; i--) {
		const struct sig_block *e =
			&w->ring[(i - 1) & (SIG_BLOCK_RING - 1)];
		struct signals_block *o = &out[k];

		s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
		if (s1 != i)
			break; /* overwritten by a newer event */
		/* Acquire loads keep the second look at seq after them. */
		o->task_id = LOAD_ACQ(e->task_id);
		o->fn = LOAD_ACQ(e->fn);
		o->step_start_ns = LOAD_ACQ(e->step_start_ns);
		o->start_ns = LOAD_ACQ(e->start_ns);
		o->blocked_ns = LOAD_ACQ(e->blocked_ns);
		o->state = (uint32_t)LOAD_ACQ(e->state);
		o->seq = (uint32_t)s1;
		s2 = LOAD(e->seq);
		if (s2 != s1)
			break;
		k++;
	}
	return (int)k;
}

const struct signals_src_ops signals_bpf_ops = {
	.name = "bpf",
	.open = bpf_open,
	.add = bpf_add,
	.read = bpf_read,
	.poll = NULL,
	.blocks = bpf_blocks,
	.close = bpf_close,
};
