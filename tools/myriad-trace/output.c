/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-trace/output.c: the live table and its blocking events, the
 * JSON lines, and the log2 histograms, as text and as JSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtrace.h"

static double rate(uint64_t v, double secs)
{
	return secs > 0 ? (double)v / secs : 0;
}

/* A rate in a fixed width: 12345678 -> "12.35M". */
static void fmt_rate(char *buf, size_t len, double v)
{
	if (v >= 999.95e6)
		snprintf(buf, len, "%.2fG", v / 1e9);
	else if (v >= 999.95e3)
		snprintf(buf, len, "%.2fM", v / 1e6);
	else if (v >= 99999.5)
		snprintf(buf, len, "%.1fk", v / 1e3);
	else
		snprintf(buf, len, "%.0f", v);
}

static void table_row(FILE *f, const char *name, const char *tid, int cpu,
		      const struct counts *d, double secs, unsigned n)
{
	char run[16], st[16], pk[16], wk[16], pre[16], q[24], c[16];

	if (d->have & HAVE_CTRS) {
		fmt_rate(run, sizeof(run), rate(d->run, secs));
		fmt_rate(st, sizeof(st), rate(d->steals, secs));
		fmt_rate(pk, sizeof(pk), rate(d->parks, secs));
		fmt_rate(wk, sizeof(wk), rate(d->wakes, secs));
	} else {
		strcpy(run, "-");
		strcpy(st, "-");
		strcpy(pk, "-");
		strcpy(wk, "-");
	}
	fmt_rate(pre, sizeof(pre), rate(d->preempt, secs));
	if (d->have & HAVE_QLEN)
		snprintf(q, sizeof(q), "%" PRId64, d->queue_len);
	else
		strcpy(q, "-");
	if (cpu >= 0)
		snprintf(c, sizeof(c), "%d", cpu);
	else
		strcpy(c, "-");
	/*
	 * %CPU: share of one CPU (the total may reach 100 x CPUs); RQ-DELAY:
	 * ms spent waiting for a CPU per second of the interval (1000: it
	 * waited throughout).
	 */
	fprintf(f, "%-6s %8s %4s %6.1f %8s %8s %8s %8s %6s %9s %9.1f\n", name,
		tid, c, secs > 0 ? 100.0 * (double)d->oncpu_ns / 1e9 / secs : 0,
		run, st, pk, wk, q, pre,
		secs > 0 ? (double)d->rq_delay_ns / 1e6 / secs : 0);
	(void)n;
}

/* prev_state's letter, as ps shows it. */
static const char *state_name(uint32_t st)
{
	if ((st & 0x402) == 0x402)
		return "I"; /* TASK_IDLE: uninterruptible, not counted as load */
	if (st & 2)
		return "D";
	if (st & 1)
		return "S";
	return "?";
}

static int by_blocked_desc(const void *a, const void *b)
{
	const struct block_out *x = *(const struct block_out *const *)a;
	const struct block_out *y = *(const struct block_out *const *)b;

	if (x->e.blocked_ns != y->e.blocked_ns)
		return x->e.blocked_ns > y->e.blocked_ns ? -1 : 1;
	return x->e.start_ns < y->e.start_ns ? -1 : 1;
}

/*
 * Under the table: the steps that blocked their worker in the interval,
 * the longest first.
 */
static void blocks_text(FILE *f, const struct blocks_iv *b)
{
	const struct block_out *top[MT_TEXT_BLOCKS], **all;
	char name[16], task[24], step[512];
	uint64_t listed = b->n + b->over;
	unsigned i, n;

	if (!b->avail) {
		fputs("blocking: not seen without the eBPF source\n", f);
		return;
	}
	fprintf(f,
		"blocking (steps asleep in the kernel >= %g ms): %" PRIu64
		" event%s",
		b->min_ms, listed, listed == 1 ? "" : "s");
	if (b->n > MT_TEXT_BLOCKS)
		fprintf(f, ", the %d longest shown", MT_TEXT_BLOCKS);
	fprintf(f, "; %" PRIu64 " shorter (suppressed)", b->short_);
	if (b->lost || b->over)
		fprintf(f,
			"; %" PRIu64 " dropped (%" PRIu64
			" ring buffer full, %" PRIu64 " over %d listed)",
			b->lost + b->over, b->lost, b->over, MT_MAX_BLOCKS);
	fputc('\n', f);
	if (!b->n)
		return;
	/* Sort pointers: the events stay in the order they ended for JSON. */
	all = malloc(b->n * sizeof(*all));
	n = b->n < MT_TEXT_BLOCKS ? b->n : MT_TEXT_BLOCKS;
	if (all) {
		for (i = 0; i < b->n; i++)
			all[i] = &b->v[i];
		qsort(all, b->n, sizeof(*all), by_blocked_desc);
		memcpy(top, all, n * sizeof(*top));
		free(all);
	} else {
		for (i = 0; i < n; i++)
			top[i] = &b->v[i];
	}
	fprintf(f, "%-6s %8s %-18s %10s %5s  %s\n", "WORKER", "TID", "TASK",
		"BLOCKED ms", "STATE", "STEP");
	for (i = 0; i < n; i++) {
		const struct block_out *o = top[i];

		if (o->idx >= 0)
			snprintf(name, sizeof(name), "w%d", o->idx);
		else
			strcpy(name, "?");
		snprintf(task, sizeof(task), "0x%" PRIx64, (uint64_t)o->e.task);
		syms_format(&o->si, o->e.fn, step, sizeof(step));
		fprintf(f, "%-6s %8u %-18s %10.2f %5s  %s\n", name,
			(unsigned)o->e.tid, task, (double)o->e.blocked_ns / 1e6,
			state_name(o->e.state), step);
	}
}

void out_table(FILE *f, const struct target *t, const char *header,
	       const struct interval *iv, bool tty)
{
	char name[16], tid[16], when[32];
	time_t now = (time_t)iv->ts;
	struct tm tm;
	unsigned i;

	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	/* A terminal: redraw in place, like top; else one table after another. */
	if (tty)
		fputs("\033[H\033[J", f);
	fputs(header, f);
	fprintf(f, "%s  interval %.2f s  %u workers\n", when, iv->secs, iv->n);
	fprintf(f, "%-6s %8s %4s %6s %8s %8s %8s %8s %6s %9s %9s\n", "WORKER",
		"TID", "CPU", "%CPU", "RUN/s", "STEAL/s", "PARK/s", "WAKE/s",
		"QUEUE", "PREEMPT/s", "RQDLY ms/s");
	for (i = 0; i < iv->n; i++) {
		const struct row_out *r = &iv->rows[i];

		snprintf(name, sizeof(name), "w%d", r->w->idx);
		snprintf(tid, sizeof(tid), "%d", (int)r->w->tid);
		table_row(f, name, tid, r->d.cpu, &r->d, iv->secs, 1);
	}
	table_row(f, "total", "", -1, &iv->tot, iv->secs, iv->n);
	if (iv->blk)
		blocks_text(f, iv->blk);
	if (!tty)
		fputc('\n', f);
	fflush(f);
}

static void json_counts(FILE *f, const struct counts *d, bool ctrs)
{
	if (ctrs && (d->have & HAVE_CTRS))
		fprintf(f,
			"\"run\":%" PRIu64 ",\"steals\":%" PRIu64
			",\"parks\":%" PRIu64 ",\"wakes\":%" PRIu64 ",",
			d->run, d->steals, d->parks, d->wakes);
	else
		fputs("\"run\":null,\"steals\":null,\"parks\":null,"
		      "\"wakes\":null,",
		      f);
	if (d->have & HAVE_QLEN)
		fprintf(f, "\"queue_len\":%" PRId64 ",", d->queue_len);
	else
		fputs("\"queue_len\":null,", f);
	fprintf(f,
		"\"preempt\":%" PRIu64 ",\"rq_delay_ns\":%" PRIu64
		",\"oncpu_ns\":%" PRIu64,
		d->preempt, d->rq_delay_ns, d->oncpu_ns);
}

static void json_str(FILE *f, const char *s);

static void blocks_json(FILE *f, const struct blocks_iv *b)
{
	char step[512];
	unsigned i;

	if (!b || !b->avail) {
		fputs(",\"blocks\":null", f);
		return;
	}
	fprintf(f,
		",\"block_min_ns\":%" PRIu64 ",\"blocks_short\":%" PRIu64
		",\"blocks_lost\":%" PRIu64 ",\"blocks_not_listed\":%" PRIu64
		",\"blocks\":[",
		(uint64_t)(b->min_ms * 1e6), b->short_, b->lost, b->over);
	for (i = 0; i < b->n; i++) {
		const struct block_out *o = &b->v[i];

		fprintf(f, "%s{\"idx\":%d,\"tid\":%u,\"cpu\":%u,", i ? "," : "",
			o->idx, (unsigned)o->e.tid, (unsigned)o->e.cpu);
		/* Addresses as strings: JSON numbers stop at 2^53. */
		fprintf(f,
			"\"task\":\"0x%" PRIx64 "\",\"fn\":\"0x%" PRIx64 "\",",
			(uint64_t)o->e.task, (uint64_t)o->e.fn);
		fputs("\"sym\":", f);
		if (o->si.name[0])
			json_str(f, o->si.name);
		else
			fputs("null", f);
		fprintf(f, ",\"sym_off\":%" PRIu64 ",\"object\":", o->si.off);
		if (o->si.object[0])
			json_str(f, o->si.object);
		else
			fputs("null", f);
		fputs(",\"step\":", f);
		json_str(f, syms_format(&o->si, o->e.fn, step, sizeof(step)));
		fprintf(f,
			",\"blocked_ns\":%" PRIu64
			",\"at\":%.6f,\"state\":\"%s\"}",
			(uint64_t)o->e.blocked_ns, o->at,
			state_name(o->e.state));
	}
	fputc(']', f);
}

void out_json(FILE *f, const struct interval *iv)
{
	unsigned i;

	fprintf(f,
		"{\"type\":\"interval\",\"ts\":%.6f,\"interval_s\":%.6f,"
		"\"read_s\":%.6f,\"source\":\"%s\",\"workers\":[",
		iv->ts, iv->secs, iv->read_s, iv->source);
	for (i = 0; i < iv->n; i++) {
		const struct row_out *r = &iv->rows[i];

		fprintf(f, "%s{\"idx\":%d,\"tid\":%d,\"cpu\":%d,", i ? "," : "",
			r->w->idx, (int)r->w->tid, r->d.cpu);
		json_counts(f, &r->d, true);
		fputc('}', f);
	}
	fputs("],\"totals\":{", f);
	json_counts(f, &iv->tot, true);
	fputc('}', f);
	blocks_json(f, iv->blk);
	fputs("}\n", f);
	fflush(f);
}

static uint64_t hist_total(const __u64 *h)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < TRACE_HIST_BUCKETS; i++)
		n += h[i];
	return n;
}

/* The bucket's lower bound in ns; bucket 0 holds 0 and 1. */
static uint64_t lo_of(unsigned b)
{
	return b ? (uint64_t)1 << b : 0;
}

/* The smallest bucket upper bound under which 'q' of the samples fall. */
static uint64_t hist_quantile(const __u64 *h, double q)
{
	uint64_t n = hist_total(h), acc = 0;
	unsigned i;

	for (i = 0; i < TRACE_HIST_BUCKETS; i++) {
		acc += h[i];
		if (n && (double)acc >= q * (double)n)
			return i + 1 < 64 ? (uint64_t)1 << (i + 1) : UINT64_MAX;
	}
	return 0;
}

static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns >= 1000000000)
		snprintf(buf, len, "%" PRIu64 "s", ns / 1000000000);
	else if (ns >= 1000000)
		snprintf(buf, len, "%" PRIu64 "ms", ns / 1000000);
	else if (ns >= 1000)
		snprintf(buf, len, "%" PRIu64 "us", ns / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ns", ns);
}

static void hist_text(FILE *f, const char *title, const __u64 *h)
{
	uint64_t n = hist_total(h), max = 0;
	char lo[24], hi[24], p50[24], p99[24];
	int first = -1, last = -1, i, k, bar;

	for (i = 0; i < TRACE_HIST_BUCKETS; i++) {
		if (!h[i])
			continue;
		if (first < 0)
			first = i;
		last = i;
		if (h[i] > max)
			max = h[i];
	}
	if (!n) {
		fprintf(f, "\n%s: no samples\n", title);
		return;
	}
	fmt_ns(p50, sizeof(p50), hist_quantile(h, 0.50));
	fmt_ns(p99, sizeof(p99), hist_quantile(h, 0.99));
	fprintf(f, "\n%s: %" PRIu64 " samples, p50 < %s, p99 < %s\n", title, n,
		p50, p99);
	for (i = first; i <= last; i++) {
		fmt_ns(lo, sizeof(lo), lo_of((unsigned)i));
		fmt_ns(hi, sizeof(hi),
		       i + 1 < 64 ? (uint64_t)1 << (i + 1) : UINT64_MAX);
		bar = (int)((h[i] * 40 + max - 1) / max);
		fprintf(f, "[%6s, %6s) %10" PRIu64 " |", lo, hi,
			(uint64_t)h[i]);
		for (k = 0; k < 40; k++)
			fputc(k < bar ? '@' : ' ', f);
		fputs("|\n", f);
	}
}

void out_hists_text(FILE *f, const struct trace_hists *h)
{
	hist_text(f, "run-queue delay (wakeup or preemption to running)",
		  h->rq_delay);
	hist_text(f, "step latency (myriad:run to run_done)", h->step);
	hist_text(f, "offload latency (myriad:offload_start to offload_end)",
		  h->offload);
	hist_text(f, "I/O latency (myriad:io_submit to io_complete)", h->io);
	hist_text(f,
		  "blocked time (a step asleep in the kernel, switch-out to "
		  "switch-in; short ones too)",
		  h->blocked);
	if (h->io_lost || h->off_lost)
		fprintf(f,
			"(not measured, too many in flight: %" PRIu64
			" I/O, %" PRIu64 " offload)\n",
			(uint64_t)h->io_lost, (uint64_t)h->off_lost);
	fflush(f);
}

static void hist_json(FILE *f, const char *name, const __u64 *h)
{
	bool first = true;
	unsigned i;

	fprintf(f, "\"%s\":{\"count\":%" PRIu64 ",\"buckets\":[", name,
		hist_total(h));
	for (i = 0; i < TRACE_HIST_BUCKETS; i++) {
		if (!h[i])
			continue;
		fprintf(f,
			"%s{\"lo_ns\":%" PRIu64 ",\"hi_ns\":%" PRIu64
			",\"count\":%" PRIu64 "}",
			first ? "" : ",", lo_of(i),
			i + 1 < 64 ? (uint64_t)1 << (i + 1) : UINT64_MAX,
			(uint64_t)h[i]);
		first = false;
	}
	fputs("]}", f);
}

void out_hists_json(FILE *f, const struct trace_hists *h, const char *source,
		    double ts)
{
	fprintf(f,
		"{\"type\":\"histograms\",\"ts\":%.6f,\"source\":\"%s\","
		"\"available\":true,",
		ts, source);
	hist_json(f, "rq_delay", h->rq_delay);
	fputc(',', f);
	hist_json(f, "step", h->step);
	fputc(',', f);
	hist_json(f, "offload", h->offload);
	fputc(',', f);
	hist_json(f, "io", h->io);
	fputc(',', f);
	hist_json(f, "blocked", h->blocked);
	fprintf(f, ",\"io_lost\":%" PRIu64 ",\"offload_lost\":%" PRIu64 "}\n",
		(uint64_t)h->io_lost, (uint64_t)h->off_lost);
	fflush(f);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

void out_no_hists(FILE *f, bool json, const char *source, const char *why,
		  double ts)
{
	if (!json) {
		fprintf(f, "\nhistograms unavailable with source %s: %s\n",
			source, why);
		fflush(f);
		return;
	}
	fprintf(f,
		"{\"type\":\"histograms\",\"ts\":%.6f,\"source\":\"%s\","
		"\"available\":false,\"why\":",
		ts, source);
	json_str(f, why);
	fputs("}\n", f);
	fflush(f);
}
