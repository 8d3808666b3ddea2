/* SPDX-License-Identifier: MIT */
/*
 * signals/signals_proc.c: the /proc source, for when eBPF does not load:
 * each worker's schedstat, status, stat and sched files, read at the period.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "signals_impl.h"

enum { F_SCHEDSTAT, F_STATUS, F_STAT, F_SCHED, F_COUNT };

static const char *const file_names[F_COUNT] = {
	[F_SCHEDSTAT] = "schedstat",
	[F_STATUS] = "status",
	[F_STAT] = "stat",
	[F_SCHED] = "sched", /* CONFIG_SCHED_DEBUG; may be missing */
};

/* What one poll reads for one thread. */
struct sample {
	uint64_t run_ns, delay_ns, slices;
	uint64_t vol, invol, migrations;
	int cpu;
	char state;
	int have_migrations;
};

struct proc_worker {
	pid_t tid;
	int fd[F_COUNT];
	int gone; /* the thread exited */
	/* At registration: the counters count from here. */
	struct sample base;
	uint64_t t0;
	int last_cpu;
	uint64_t cpu_changes;
	/* The poller's blocking detection (poll_lock). */
	int pend;
	uint64_t pend_seq, pend_task, pend_fn, pend_step_start;
	uint32_t pend_state;
	uint64_t pend_before, pend_first, pend_last;
	uint64_t prev_poll;
	/* What readers see (src->lock). */
	struct worker_signals cur;
	struct signals_block ring[SIGNALS_BLOCK_RING];
	uint64_t head;
};

struct proc_src {
	pthread_mutex_t lock;
	struct proc_worker *w;
};

static void close_files(struct proc_worker *w)
{
	int i;

	for (i = 0; i < F_COUNT; i++) {
		if (w->fd[i] >= 0)
			close(w->fd[i]);
		w->fd[i] = -1;
	}
}

static uint64_t status_field(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* 0, or -errno (-ESRCH: the thread is gone). */
static int sample(struct proc_worker *w, struct sample *o)
{
	char buf[8192];
	const char *p;
	int r;

	memset(o, 0, sizeof(*o));
	o->cpu = -1;
	r = (int)signals_pread(w->fd[F_SCHEDSTAT], buf, sizeof(buf));
	if (r < 0)
		return r;
	/* "run_ns run_delay_ns timeslices" */
	if (sscanf(buf, "%" SCNu64 " %" SCNu64 " %" SCNu64, &o->run_ns,
		   &o->delay_ns, &o->slices) != 3)
		return -EINVAL;
	r = (int)signals_pread(w->fd[F_STATUS], buf, sizeof(buf));
	if (r < 0)
		return r;
	o->vol = status_field(buf, "\nvoluntary_ctxt_switches:");
	o->invol = status_field(buf, "\nnonvoluntary_ctxt_switches:");
	r = (int)signals_pread(w->fd[F_STAT], buf, sizeof(buf));
	if (r < 0)
		return r;
	r = signals_parse_stat(buf, &o->state, &o->cpu);
	if (r < 0)
		return r;
	if (w->fd[F_SCHED] >= 0 &&
	    signals_pread(w->fd[F_SCHED], buf, sizeof(buf)) > 0 &&
	    (p = strstr(buf, "\nse.nr_migrations"))) {
		p = strchr(p, ':');
		if (p) {
			o->migrations = strtoull(p + 1, NULL, 10);
			o->have_migrations = 1;
		}
	}
	return 0;
}

static void proc_close(struct signals *s)
{
	struct proc_src *ps = s->priv;
	unsigned i;

	if (!ps)
		return;
	if (ps->w)
		for (i = 0; i < s->n; i++)
			close_files(&ps->w[i]);
	free(ps->w);
	pthread_mutex_destroy(&ps->lock);
	free(ps);
	free(s->steps);
	s->steps = NULL;
	s->priv = NULL;
}

static int proc_open(struct signals *s)
{
	struct proc_src *ps = calloc(1, sizeof(*ps));
	size_t len = (size_t)s->n * sizeof(struct sig_step);
	unsigned i;
	int f;

	if (!ps)
		return -ENOMEM;
	pthread_mutex_init(&ps->lock, NULL);
	s->priv = ps;
	ps->w = calloc(s->n, sizeof(*ps->w));
	s->steps = aligned_alloc(64, len);
	if (!ps->w || !s->steps) {
		proc_close(s);
		return -ENOMEM;
	}
	memset(s->steps, 0, len);
	for (i = 0; i < s->n; i++) {
		for (f = 0; f < F_COUNT; f++)
			ps->w[i].fd[f] = -1;
		ps->w[i].cur.cpu = -1;
	}
	return 0;
}

static int proc_add(struct signals *s, unsigned worker, pid_t tid)
{
	struct proc_src *ps = s->priv;
	struct proc_worker *w = &ps->w[worker], nw;
	char path[64];
	int f, r;

	memset(&nw, 0, sizeof(nw));
	nw.tid = tid;
	for (f = 0; f < F_COUNT; f++) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid,
			 file_names[f]);
		nw.fd[f] = open(path, O_RDONLY | O_CLOEXEC);
		if (nw.fd[f] < 0 && f != F_SCHED) {
			r = errno == ENOENT ? -ESRCH : -errno;
			close_files(&nw);
			return r;
		}
	}
	r = sample(&nw, &nw.base);
	if (r < 0) {
		close_files(&nw);
		return r;
	}
	nw.t0 = clock_ns(CLOCK_MONOTONIC);
	nw.last_cpu = nw.base.cpu;
	nw.cur.cpu = nw.base.cpu;
	nw.cur.on_cpu = nw.base.state == 'R';
	nw.cur.stamp_ns = nw.t0;
	nw.prev_poll = nw.t0;
	close_files(w);
	pthread_mutex_lock(&ps->lock);
	*w = nw;
	pthread_mutex_unlock(&ps->lock);
	return 0;
}

/* A block seen by polls ended between the last sighting and 'now'. */
static void block_finish(struct proc_src *ps, struct proc_worker *w,
			 uint64_t now)
{
	uint64_t start, end;
	struct signals_block *e;

	/* Midpoints: it began after the last poll that did not see it. */
	start = w->pend_before ? (w->pend_before + w->pend_first) / 2
			       : w->pend_first;
	if (w->pend_step_start > start && w->pend_step_start <= w->pend_first)
		start = w->pend_step_start;
	end = (w->pend_last + now) / 2;
	pthread_mutex_lock(&ps->lock);
	e = &w->ring[w->head % SIGNALS_BLOCK_RING];
	e->task_id = w->pend_task;
	e->fn = w->pend_fn;
	e->step_start_ns = w->pend_step_start;
	e->start_ns = start;
	e->blocked_ns = end - start;
	e->state = w->pend_state;
	e->seq = (uint32_t)++w->head;
	w->cur.blocks++;
	w->cur.blocked_ns += end - start;
	pthread_mutex_unlock(&ps->lock);
	w->pend = 0;
}

/*
 * Blocking as polls see it: the thread asleep (S or D) while a step is
 * published. The step word is read as a seqlock (sig_step_begin()): seq,
 * active and the fields with acquire loads, then seq again; a step being
 * published, or replaced while we read, counts as no step this time.
 */
static void block_poll(struct signals *s, struct proc_worker *w,
		       unsigned worker, char state, uint64_t now)
{
	struct sig_step *st = &s->steps[worker];
	uint64_t s1, s2, active, task, fn, start;
	int asleep = state == 'S' || state == 'D';

	s1 = __atomic_load_n(&st->seq, __ATOMIC_ACQUIRE);
	active = __atomic_load_n(&st->active, __ATOMIC_ACQUIRE);
	task = __atomic_load_n(&st->task_id, __ATOMIC_ACQUIRE);
	fn = __atomic_load_n(&st->fn, __ATOMIC_ACQUIRE);
	start = __atomic_load_n(&st->start_ns, __ATOMIC_ACQUIRE);
	s2 = __atomic_load_n(&st->seq, __ATOMIC_RELAXED);
	if (s1 != s2 || (s1 & 1) || !active)
		asleep = 0;
	if (w->pend && asleep && w->pend_seq == s1) {
		w->pend_last = now;
	} else {
		if (w->pend)
			block_finish(s->priv, w, now);
		if (asleep) {
			w->pend = 1;
			w->pend_seq = s1;
			w->pend_task = task;
			w->pend_fn = fn;
			w->pend_step_start = start;
			w->pend_state = state == 'D' ? 2 : 1;
			w->pend_before = w->prev_poll;
			w->pend_first = now;
			w->pend_last = now;
		}
	}
	w->prev_poll = now;
}

static int proc_poll(struct signals *s, uint64_t now)
{
	struct proc_src *ps = s->priv;
	struct worker_signals c;
	struct sample x;
	unsigned i;

	for (i = 0; i < s->n; i++) {
		struct proc_worker *w = &ps->w[i];

		if (!w->tid || w->gone)
			continue;
		if (sample(w, &x) < 0) {
			/* Exited: keep the last values. */
			w->gone = 1;
			close_files(w);
			continue;
		}
		if (x.cpu != w->last_cpu) {
			w->cpu_changes++;
			w->last_cpu = x.cpu;
		}
		if (!(s->flags & SIGNALS_NO_BLOCKING))
			block_poll(s, w, i, x.state, now);
		memset(&c, 0, sizeof(c));
		c.preempt = x.invol - w->base.invol;
		c.voluntary = x.vol - w->base.vol;
		c.switch_in = x.slices - w->base.slices;
		c.rq_delay_ns = x.delay_ns - w->base.delay_ns;
		c.rq_delay_count = c.switch_in;
		c.oncpu_ns = x.run_ns - w->base.run_ns;
		c.offcpu_ns =
			now > w->t0 + c.oncpu_ns ? now - w->t0 - c.oncpu_ns : 0;
		c.migrations = x.have_migrations
				       ? x.migrations - w->base.migrations
				       : w->cpu_changes;
		c.stamp_ns = now;
		c.cpu = x.cpu;
		c.on_cpu = x.state == 'R';
		c.have = 0;
		pthread_mutex_lock(&ps->lock);
		c.blocks = w->cur.blocks;
		c.blocked_ns = w->cur.blocked_ns;
		w->cur = c;
		pthread_mutex_unlock(&ps->lock);
	}
	return 0;
}

static void proc_read(struct signals *s, unsigned worker,
		      struct worker_signals *out)
{
	struct proc_src *ps = s->priv;

	pthread_mutex_lock(&ps->lock);
	*out = ps->w[worker].cur;
	pthread_mutex_unlock(&ps->lock);
}

static int proc_blocks(struct signals *s, unsigned worker,
		       struct signals_block *out, unsigned n)
{
	struct proc_src *ps = s->priv;
	struct proc_worker *w = &ps->w[worker];
	unsigned k = 0;
	uint64_t i;

	pthread_mutex_lock(&ps->lock);
	for (i = w->head; i > 0 && k < n && w->head - i < SIGNALS_BLOCK_RING;
	     i--)
		out[k++] = w->ring[(i - 1) % SIGNALS_BLOCK_RING];
	pthread_mutex_unlock(&ps->lock);
	return (int)k;
}

const struct signals_src_ops signals_proc_ops = {
	.name = "proc",
	.open = proc_open,
	.add = proc_add,
	.read = proc_read,
	.poll = proc_poll,
	.blocks = proc_blocks,
	.close = proc_close,
};
