/* SPDX-License-Identifier: MIT */
/*
 * policy/kernel.c: the kernel-aware placement policy. It reads what the
 * kernel does to each worker thread (myriad_rt_signals(): preemptions,
 * run-queue delay, time on CPU) over short periods and acts on it: steal
 * from and spawn away from workers whose CPU is contended, and run fewer
 * workers while the process gets fewer CPUs than it has workers.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <myriad.h>

#include "policy.h"

#define KP_MAX 1024
#define KP_PERIOD_NS 20000000ull /* 20 ms between looks */

struct kp_prev {
	uint64_t oncpu, rq, preempt;
};

struct kpol {
	myriad_rt_t *rt;
	unsigned n;
	_Atomic unsigned active;
	_Atomic int busy; /* one updater at a time */
	_Atomic uint64_t last_ns;
	unsigned shrink_votes, calm;
	bool primed;
	_Atomic uint8_t hot[KP_MAX]; /* contended in the last period */
	struct kp_prev prev[KP_MAX];
};

/*
 * The decision ladder, run by one worker at a time every KP_PERIOD_NS
 * (from active_workers, which workers call every few dozen ticks):
 * 1. No signals (not open, or not yet a full period): change nothing.
 * 2. Per worker over the period: w_i = run-queue delay (runnable, not
 *    running), r_i = time on CPU, p_i = involuntary preemptions. The
 *    worker is hot (its CPU is contended) when it waited more than a
 *    fifth of the period and was preempted: somebody else runs there.
 * 3. Steal victims: hot workers first (their tasks wait with them), then
 *    the default random rotation. Spawns and wakes on a hot worker go to
 *    the inject queue, where a worker that does run takes them.
 * 4. CPUs received: R = sum r_i / period; CPUs wanted but not given:
 *    W = sum w_i / period. When W > 0.25 (a quarter of a CPU waits) for
 *    three periods in a row, run ceil(R) workers (at least 1, at most all):
 *    fewer runnable workers than CPUs received means no worker is
 *    preempted holding tasks, and the others park and steal nothing.
 * 5. When W < 0.05 for two periods, or the active workers are all
 *    waiting less than that, grow back by one worker per period (a
 *    neighbour that left frees CPUs gradually, so growth does not
 *    overshoot into contention again).
 */
static void kp_update(struct kpol *k)
{
	struct myriad_worker_signals s;
	uint64_t now = myriad_now_ns(), dt, sum_on = 0, sum_rq = 0;
	unsigned i,
		act = atomic_load_explicit(&k->active, memory_order_relaxed);
	int z = 0;
	double R, W;

	if (now - atomic_load_explicit(&k->last_ns, memory_order_relaxed) <
		    KP_PERIOD_NS ||
	    !atomic_compare_exchange_strong(&k->busy, &z, 1))
		return;
	dt = now - atomic_load_explicit(&k->last_ns, memory_order_relaxed);
	if (dt < KP_PERIOD_NS)
		goto out;
	atomic_store_explicit(&k->last_ns, now, memory_order_relaxed);
	for (i = 0; i < k->n; i++) {
		uint64_t don, drq, dpre;

		/* Step 1. */
		if (myriad_rt_signals(k->rt, i, &s) < 0)
			goto out;
		don = s.oncpu_ns - k->prev[i].oncpu;
		drq = s.rq_delay_ns - k->prev[i].rq;
		dpre = s.preempt - k->prev[i].preempt;
		k->prev[i].oncpu = s.oncpu_ns;
		k->prev[i].rq = s.rq_delay_ns;
		k->prev[i].preempt = s.preempt;
		if (!k->primed)
			continue;
		/* Step 2. */
		atomic_store_explicit(&k->hot[i], drq > dt / 5 && dpre > 0,
				      memory_order_relaxed);
		sum_on += don;
		sum_rq += drq;
	}
	if (!k->primed) {
		k->primed = true;
		goto out;
	}
	R = (double)sum_on / (double)dt;
	W = (double)sum_rq / (double)dt;
	/* Step 4. */
	if (W > 0.25) {
		k->calm = 0;
		if (++k->shrink_votes >= 3) {
			unsigned want = (unsigned)(R + 0.999);

			if (want < 1)
				want = 1;
			if (want < act)
				act = want;
			k->shrink_votes = 0;
		}
	} else {
		k->shrink_votes = 0;
		/* Step 5. */
		if (W < 0.05 && ++k->calm >= 2 && act < k->n) {
			act++;
			k->calm = 0;
		}
	}
	atomic_store_explicit(&k->active, act, memory_order_relaxed);
out:
	atomic_store_explicit(&k->busy, 0, memory_order_release);
}

static int kp_init(void **ctx, const struct myriad_policy_env *env)
{
	struct kpol *k;
	unsigned i;

	if (env->sz < sizeof(*env) || !env->rt || env->workers > KP_MAX)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->rt = env->rt;
	k->n = env->workers;
	atomic_init(&k->active, env->workers);
	atomic_init(&k->busy, 0);
	for (i = 0; i < KP_MAX; i++)
		atomic_init(&k->hot[i], 0);
	atomic_init(&k->last_ns, myriad_now_ns());
	*ctx = k;
	return 0;
}

static void kp_fini(void *ctx)
{
	free(ctx);
}

/* Step 3: hot workers first, then a random rotation over the others. */
static int kp_steal_victim(void *ctx, unsigned self, unsigned attempt,
			   uint64_t *rng)
{
	struct kpol *k = ctx;
	unsigned n = k->n, start, v, i, seen = 0;

	if (n < 2 || attempt + 1 >= n)
		return -1;
	if (attempt == 0) {
		*rng = policy_rng_next(*rng);
		*rng |= 1;
	}
	start = (unsigned)((*rng >> 33) % (n - 1));
	/* The attempt-th hot worker, in the rotation's order. */
	for (i = 0; i + 1 < n; i++) {
		v = (self + 1 + (start + i) % (n - 1)) % n;
		if (atomic_load_explicit(&k->hot[v], memory_order_relaxed) &&
		    seen++ == attempt)
			return (int)v;
	}
	/* Then the others, skipping the hot ones already tried. */
	attempt -= seen;
	for (i = 0; i + 1 < n; i++) {
		v = (self + 1 + (start + i) % (n - 1)) % n;
		if (atomic_load_explicit(&k->hot[v], memory_order_relaxed))
			continue;
		if (attempt-- == 0)
			return (int)v;
	}
	return -1;
}

static int kp_spawn_place(void *ctx, unsigned self)
{
	struct kpol *k = ctx;

	return atomic_load_explicit(&k->hot[self], memory_order_relaxed)
		       ? MYRIAD_PLACE_INJECT
		       : MYRIAD_PLACE_LOCAL;
}

static unsigned kp_active_workers(void *ctx)
{
	struct kpol *k = ctx;

	kp_update(k);
	return atomic_load_explicit(&k->active, memory_order_relaxed);
}

const struct myriad_policy_ops myriad_policy_kernel = {
	.sz = sizeof(struct myriad_policy_ops),
	.name = "kernel",
	.init = kp_init,
	.fini = kp_fini,
	.steal_victim = kp_steal_victim,
	.spawn_place = kp_spawn_place,
	.active_workers = kp_active_workers,
	.flags = MYRIAD_POLICY_SIGNALS,
};
