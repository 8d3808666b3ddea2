/* SPDX-License-Identifier: MIT */
/*
 * sched/rt_signals.c: the runtime's scheduler signals: opening the source
 * (eBPF or /proc), the /proc poller thread, and the public readers.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched.h"
#include "bpf/signals.h"

static void *sig_poll_main(void *arg)
{
	struct myriad_rt *rt = arg;
	struct timespec ts = { 0, (long)SIGNALS_PERIOD_NS };

	pthread_setname_np(pthread_self(), "myriad-signals");
	while (!atomic_load_explicit(&rt->sig_stop, memory_order_acquire)) {
		signals_poll(rt->sig, myriad_now_ns());
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/*
 * Scheduler signals: opened once every worker thread exists (their tids),
 * before any step runs, when the policy or the options ask. Failing to
 * open them is not an error: the source is then "none".
 */
void rt_signals_start(struct myriad_rt *rt, const struct myriad_rt_opts *opts)
{
	int want = OPT_HAS(opts, signals) ? opts->signals : 0;
	const char *e = getenv("MYRIAD_SIGNALS");
	unsigned flags = 0, i;
	pid_t *tids;
	int err;

	if (want == 0) {
		if (pol_flags(rt->pol) & MYRIAD_POLICY_SIGNALS)
			want = 1;
		if (e && (!strcmp(e, "1") || !strcmp(e, "bpf") ||
			  !strcmp(e, "proc")))
			want = 1;
	}
	if (want != 1 || rt->nworkers > SIGNALS_MAX_WORKERS)
		return;
	if (e && !strcmp(e, "proc"))
		flags |= SIGNALS_FORCE_PROC;
	tids = malloc(rt->nworkers * sizeof(*tids));
	if (!tids)
		return;
	for (i = 0; i < rt->nworkers; i++)
		tids[i] = rt->workers[i].tid;
	rt->sig = signals_open(tids, rt->nworkers, flags, &err);
	free(tids);
	if (!rt->sig)
		return;
	/*
	 * The /proc source sees only what a poll sees: a thread polls at
	 * its period, since workers that sleep do not (a block of a step
	 * happens while the others may all be parked).
	 */
	if (signals_source(rt->sig) == SIGNALS_PROC &&
	    pthread_create(&rt->sig_poller, NULL, sig_poll_main, rt) == 0)
		rt->sig_poller_ok = true;
	/* The workers wait for 'go' (start_lock): they see these. */
	for (i = 0; i < rt->nworkers; i++)
		rt->workers[i].sigw = signals_step_word(rt->sig, i);
}

/* The poller stops, the source closes (the workers are joined). */
void rt_signals_stop(struct myriad_rt *rt)
{
	if (rt->sig_poller_ok) {
		atomic_store_explicit(&rt->sig_stop, true,
				      memory_order_release);
		pthread_join(rt->sig_poller, NULL);
		rt->sig_poller_ok = false;
	}
	if (rt->sig) {
		signals_close(rt->sig);
		rt->sig = NULL;
	}
}

int myriad_rt_signals_source(const myriad_rt_t *rt, const char **why)
{
	if (!rt)
		return -EINVAL;
	if (why)
		*why = rt->sig ? signals_error(rt->sig) : "signals not enabled";
	if (!rt->sig)
		return MYRIAD_SIG_NONE;
	return signals_source(rt->sig) == SIGNALS_BPF ? MYRIAD_SIG_BPF
						      : MYRIAD_SIG_PROC;
}

int myriad_rt_signals(myriad_rt_t *rt, unsigned worker,
		      struct myriad_worker_signals *out)
{
	struct worker_signals ws;

	if (!rt || !out || worker >= rt->nworkers)
		return -EINVAL;
	if (!rt->sig)
		return -ENODATA;
	/* eBPF: live; /proc: as of the poller thread's last look. */
	signals_read(rt->sig, worker, &ws);
	out->preempt = ws.preempt;
	out->voluntary = ws.voluntary;
	out->rq_delay_ns = ws.rq_delay_ns;
	out->rq_delay_count = ws.rq_delay_count;
	out->oncpu_ns = ws.oncpu_ns;
	out->offcpu_ns = ws.offcpu_ns;
	out->migrations = ws.migrations;
	out->blocks = ws.blocks;
	out->blocked_ns = ws.blocked_ns;
	out->cpu = ws.cpu;
	out->exact = (ws.have & SIGNALS_HAVE_EXACT) ? 1 : 0;
	return 0;
}

int myriad_rt_blocks(myriad_rt_t *rt, unsigned worker, struct myriad_block *out,
		     unsigned n)
{
	struct signals_block b[SIGNALS_BLOCK_RING];
	int k, i;

	if (!rt || (!out && n) || worker >= rt->nworkers)
		return -EINVAL;
	if (!rt->sig)
		return -ENODATA;
	if (n > SIGNALS_BLOCK_RING)
		n = SIGNALS_BLOCK_RING;
	k = signals_blocks(rt->sig, worker, b, n);
	for (i = 0; i < k; i++) {
		out[i].task = (const void *)(uintptr_t)b[i].task_id;
		out[i].step = (const void *)(uintptr_t)b[i].fn;
		out[i].blocked_ns = b[i].blocked_ns;
		out[i].at_ns = b[i].start_ns;
	}
	return k;
}
