/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-trace/main.c: myriad-trace PID: a live per-worker table of a
 * running myriad process (or JSON lines), and latency histograms at exit.
 *
 * Sources, in order of preference:
 *   bpf       the runtime's USDT probes (run, steal, park, wake, ...) and
 *             the scheduler's tracepoints, per worker thread: exact, and
 *             the histograms; needs root or CAP_BPF+CAP_PERFMON.
 *   shm+proc  the runtime's counters in /dev/shm/myriad.<pid>.<n> (the
 *             target started with MYRIAD_STATS_SHM=1; each worker
 *             refreshes its slot every 61 steps and when it parks) and
 *             /proc/<pid>/task/<tid>/{schedstat,status,stat}; no histograms.
 * Both: %CPU from schedstat, queue length from the shm file when there.
 * eBPF only: steps that block their worker in the kernel (a sleep(), a
 * blocking read), with the task, the step function's symbol and the time.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "mtrace.h"

#define EXIT_REFUSED 2

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

static void usage(FILE *f)
{
	fputs("usage: myriad-trace PID [--json] [--duration S] [--interval S]\n"
	      "                        [--histograms] [--block-min-ms MS]\n"
	      "                        [--no-bpf] [--verbose]\n"
	      "  a live per-worker table of a running myriad process:\n"
	      "  steps run, steals, parks, wakes per second, queue length,\n"
	      "  involuntary preemptions per second, run-queue delay (ms of\n"
	      "  waiting per second) and CPU, refreshed every interval; and\n"
	      "  (eBPF) the steps that blocked their worker in the kernel.\n"
	      "  --json        one JSON object per interval on stdout\n"
	      "  --duration S  stop after S seconds (default: Ctrl-C or the\n"
	      "                target's exit)\n"
	      "  --interval S  refresh period (default 1)\n"
	      "  --histograms  at exit, log2 histograms of run-queue delay,\n"
	      "                step, offload, I/O latency and blocked time\n"
	      "                (eBPF only)\n"
	      "  --block-min-ms MS  list blocking events of at least MS ms\n"
	      "                (default 1; shorter ones are only counted)\n"
	      "  --no-bpf      do not try eBPF: shm counters and /proc\n"
	      "  --verbose     libbpf's messages when eBPF does not load\n"
	      "Without eBPF (root or CAP_BPF+CAP_PERFMON) the task counters\n"
	      "come from shared memory: start the target with\n"
	      "MYRIAD_STATS_SHM=1 (or myriad_rt_opts.stats_shm).\n"
	      "Exit status: 0, 1 on an error while tracing, 2 when refused.\n",
	      f);
}

static bool parse_secs(const char *s, double *out, double min)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min)
		return false;
	*out = v;
	return true;
}

static uint64_t sub(uint64_t a, uint64_t b)
{
	/* Counters only grow; a racy read of the eBPF row may not. */
	return a > b ? a - b : 0;
}

struct state {
	struct target t;
	struct tbpf *bpf;
	const char *source;
	struct row_out *rows;
	unsigned cap;
	struct syms *syms;	  /* the target's step functions */
	struct blocks_iv blk;	  /* this interval's blocking events */
	struct trace_blk_ctrs bc; /* the probes' counters at the last drain */
};

static uint64_t ld(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Overwrite the runtime counters and scheduler fields of 'c' from 'r'. */
static void bpf_read(const struct trace_row *r, struct counts *c)
{
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

/* The counts of worker 'w' now: shm and /proc, then eBPF over them. */
static int sample(struct state *s, struct worker *w, struct counts *c)
{
	int r = target_read(&s->t, w, c);

	if (r < 0)
		return r;
	if (s->bpf) {
		uint64_t oncpu = c->oncpu_ns;

		bpf_read(tbpf_row(s->bpf, w->row), c);
		c->oncpu_ns = oncpu; /* schedstat's: exact in both sources */
	}
	return 0;
}

/* Follow the worker threads found since the last scan. */
static void scan(struct state *s)
{
	unsigned i;

	target_scan(&s->t);
	for (i = 0; i < s->t.nw; i++) {
		struct worker *w = &s->t.w[i];

		if (!w->fresh || !w->alive)
			continue;
		if (s->bpf)
			tbpf_add(s->bpf, w->tid, w->row);
		/* Its baseline: it has rows from the next interval on. */
		if (sample(s, w, &w->prev) < 0)
			w->alive = false;
		w->fresh = false;
	}
}

/* One interval: the deltas since the last sample. Returns the rows. */
static unsigned collect(struct state *s, struct interval *iv)
{
	unsigned i, n = 0;

	if (s->cap < s->t.nw) {
		struct row_out *r = realloc(s->rows, s->t.nw * sizeof(*r));

		if (!r)
			return 0;
		s->rows = r;
		s->cap = s->t.nw;
	}
	memset(&iv->tot, 0, sizeof(iv->tot));
	iv->tot.cpu = -1;
	iv->tot.have = ~0u;
	for (i = 0; i < s->t.nw; i++) {
		struct worker *w = &s->t.w[i];
		struct row_out *o = &s->rows[n];
		struct counts c;

		if (!w->alive)
			continue;
		if (sample(s, w, &c) < 0) {
			w->alive = false;
			continue;
		}
		o->w = w;
		o->d.run = sub(c.run, w->prev.run);
		o->d.steals = sub(c.steals, w->prev.steals);
		o->d.parks = sub(c.parks, w->prev.parks);
		o->d.wakes = sub(c.wakes, w->prev.wakes);
		o->d.preempt = sub(c.preempt, w->prev.preempt);
		o->d.rq_delay_ns = sub(c.rq_delay_ns, w->prev.rq_delay_ns);
		o->d.oncpu_ns = sub(c.oncpu_ns, w->prev.oncpu_ns);
		o->d.queue_len = c.queue_len;
		o->d.cpu = c.cpu;
		o->d.have = c.have;
		w->prev = c;
		iv->tot.run += o->d.run;
		iv->tot.steals += o->d.steals;
		iv->tot.parks += o->d.parks;
		iv->tot.wakes += o->d.wakes;
		iv->tot.preempt += o->d.preempt;
		iv->tot.rq_delay_ns += o->d.rq_delay_ns;
		iv->tot.oncpu_ns += o->d.oncpu_ns;
		if (c.have & HAVE_QLEN)
			iv->tot.queue_len += c.queue_len;
		iv->tot.have &= c.have;
		n++;
	}
	if (!n)
		iv->tot.have = 0;
	iv->rows = s->rows;
	iv->n = n;
	return n;
}

/* A blocking event from the probes: keep it for the interval's output. */
static void on_block(const struct trace_block *e, void *arg)
{
	struct state *s = arg;
	struct blocks_iv *b = &s->blk;

	if (b->n == b->cap) {
		unsigned cap = b->cap ? 2 * b->cap : 64;
		struct block_out *v;

		if (b->cap >= MT_MAX_BLOCKS ||
		    !(v = realloc(b->v, cap * sizeof(*v)))) {
			b->over++;
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	memset(&b->v[b->n], 0, sizeof(b->v[b->n]));
	b->v[b->n++].e = *e;
}

/*
 * The interval's blocking events: drain the ring, name each worker and
 * step function, and the counters' differences.
 */
static void blocks(struct state *s, uint64_t mono_now, double real_now)
{
	struct blocks_iv *b = &s->blk;
	struct trace_blk_ctrs c;
	unsigned i, k;

	b->n = 0;
	b->over = 0;
	if (!s->bpf)
		return;
	tbpf_blocks(s->bpf, on_block, s);
	tbpf_blk_ctrs(s->bpf, &c);
	b->short_ = sub(c.short_, s->bc.short_);
	b->lost = sub(c.lost, s->bc.lost);
	s->bc = c;
	for (i = 0; i < b->n; i++) {
		struct block_out *o = &b->v[i];

		o->idx = -1;
		for (k = 0; k < s->t.nw; k++)
			if (s->t.w[k].tid == (pid_t)o->e.tid)
				o->idx = s->t.w[k].idx;
		o->at = real_now -
			(double)(int64_t)(mono_now - o->e.start_ns) / 1e9;
		o->sym_r = s->syms ? syms_lookup(s->syms, o->e.fn, &o->si)
				   : -ENOMEM;
	}
}

static void sleep_until(uint64_t deadline)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline / 1000000000ull),
		.tv_nsec = (long)(deadline % 1000000000ull),
	};

	/* A signal ends the wait early: the caller checks stop_sig. */
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "duration", required_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "histograms", no_argument, NULL, 'H' },
		{ "block-min-ms", required_argument, NULL, 'b' },
		{ "no-bpf", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, hists = false, no_bpf = false, verbose = false;
	bool tty = isatty(STDOUT_FILENO), exited = false;
	double duration = 0, interval = 1, block_min_ms = 1;
	char why[512] = "", detail[1024], header[1400], *end;
	uint64_t t0, tlast, next, stop_at = 0;
	struct sigaction sa;
	struct state s;
	struct interval iv;
	long pid;
	int opt, r;

	memset(&s, 0, sizeof(s));
	while ((opt = getopt_long(argc, argv, "jd:i:Hb:nvh", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'd':
			if (!parse_secs(optarg, &duration, 0.001)) {
				fprintf(stderr,
					"myriad-trace: --duration: not a "
					"number of seconds: %s\n",
					optarg);
				return EXIT_REFUSED;
			}
			break;
		case 'i':
			if (!parse_secs(optarg, &interval, 0.01)) {
				fprintf(stderr,
					"myriad-trace: --interval: not a "
					"number of seconds >= 0.01: %s\n",
					optarg);
				return EXIT_REFUSED;
			}
			break;
		case 'H':
			hists = true;
			break;
		case 'b':
			if (!parse_secs(optarg, &block_min_ms, 0) ||
			    block_min_ms > 1e9) {
				fprintf(stderr,
					"myriad-trace: --block-min-ms: not a "
					"number of milliseconds >= 0: %s\n",
					optarg);
				return EXIT_REFUSED;
			}
			break;
		case 'n':
			no_bpf = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_REFUSED;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_REFUSED;
	}
	errno = 0;
	pid = strtol(argv[optind], &end, 10);
	if (errno || end == argv[optind] || *end || pid <= 0 ||
	    pid > 0x3fffffff) {
		fprintf(stderr, "myriad-trace: not a process id: %s\n",
			argv[optind]);
		return EXIT_REFUSED;
	}
	r = target_open(&s.t, (pid_t)pid, why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "myriad-trace: refused: %s\n", why);
		return EXIT_REFUSED;
	}

	if (no_bpf)
		snprintf(why, sizeof(why), "eBPF not tried (--no-bpf)");
	else
		s.bpf = tbpf_open(s.t.pid, s.t.lib, s.t.lib_deleted,
				  (uint64_t)(block_min_ms * 1e6), why,
				  sizeof(why));
	s.blk.avail = s.bpf != NULL;
	s.blk.min_ms = block_min_ms;
	if (s.bpf) {
		s.syms = syms_open(s.t.pid);
		tbpf_blk_ctrs(s.bpf, &s.bc);
	}
	if (!s.bpf && verbose && tbpf_log()[0])
		fprintf(stderr, "myriad-trace: libbpf:\n%s", tbpf_log());
	if (s.bpf) {
		const char *lib = strrchr(s.t.lib, '/');

		s.source = "bpf";
		snprintf(detail, sizeof(detail),
			 "USDT myriad:* in %s, tp_btf sched_switch/wakeup; "
			 "queue length %s%s%s",
			 lib ? lib + 1 : "the executable",
			 s.t.nshm ? "from shm" : "unavailable (no shm)",
			 tbpf_missing(s.bpf)[0] ? "; probes not found: " : "",
			 tbpf_missing(s.bpf));
	} else {
		s.source = "shm+proc";
		snprintf(detail, sizeof(detail),
			 "%s; %s; preemptions, run-queue delay, CPU from "
			 "/proc; histograms unavailable",
			 why,
			 s.t.nshm ? "counters from /dev/shm/myriad.<pid>.<n>"
				  : "no shm counters (start the target with "
				    "MYRIAD_STATS_SHM=1): task columns "
				    "unavailable");
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: the sleep ends */
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	snprintf(header, sizeof(header),
		 "myriad-trace: pid %d (%s), source %s: %s%s%s%s\n",
		 (int)s.t.pid, s.t.comm, s.source, detail,
		 s.t.nstale ? "; ignored stale /dev/shm/" : "",
		 s.t.nstale ? s.t.stale[0] : "",
		 s.t.nstale ? " (older than the process: left by a killed "
			      "earlier process with its pid)"
			    : "");
	/* JSON: stdout has only the objects; the header is for people. */
	if (json)
		fputs(header, stderr);

	scan(&s);
	if (!s.t.nw)
		fprintf(stderr,
			"myriad-trace: no worker threads (myriad-w<N>) in "
			"process %ld yet; waiting for them\n",
			pid);
	t0 = tlast = clock_ns(CLOCK_MONOTONIC);
	if (duration > 0)
		stop_at = t0 + (uint64_t)(duration * 1e9);
	next = t0;
	for (;;) {
		uint64_t now;
		double read_at;

		next += (uint64_t)(interval * 1e9);
		if (stop_at && next > stop_at)
			next = stop_at;
		while (!stop_sig && clock_ns(CLOCK_MONOTONIC) < next)
			sleep_until(next);
		if (stop_sig)
			break;
		if (!target_alive(&s.t)) {
			exited = true;
			break;
		}
		now = clock_ns(CLOCK_MONOTONIC);
		read_at = (double)clock_ns(CLOCK_REALTIME) / 1e9;
		collect(&s, &iv);
		iv.ts = (double)clock_ns(CLOCK_REALTIME) / 1e9;
		iv.read_s = iv.ts - read_at;
		iv.secs = (double)(now - tlast) / 1e9;
		iv.source = s.source;
		blocks(&s, now, iv.ts);
		iv.blk = &s.blk;
		tlast = now;
		if (json)
			out_json(stdout, &iv);
		else
			out_table(stdout, &s.t, header, &iv, tty);
		if (ferror(stdout))
			break; /* the reader went away */
		scan(&s);
		if (stop_at && now >= stop_at)
			break;
	}

	if (exited)
		fprintf(stderr, "myriad-trace: process %ld exited\n", pid);
	if (hists && !ferror(stdout)) {
		double ts = (double)clock_ns(CLOCK_REALTIME) / 1e9;

		if (s.bpf) {
			struct trace_hists h;

			tbpf_hists(s.bpf, &h);
			if (json)
				out_hists_json(stdout, &h, s.source, ts);
			else
				out_hists_text(stdout, &h);
		} else {
			out_no_hists(stdout, json, s.source,
				     "they need the eBPF source (root or "
				     "CAP_BPF+CAP_PERFMON)",
				     ts);
		}
	}
	tbpf_close(s.bpf);
	syms_close(s.syms);
	target_close(&s.t);
	free(s.rows);
	free(s.blk.v);
	return 0;
}
