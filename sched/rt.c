/* SPDX-License-Identifier: MIT */
/*
 * sched/rt.c: the runtime's life: creating it on a driver with its
 * workers, queues and policy, the numbered shutdown, and destroying it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

#include "base/random.h"
#include "sched.h"
#include "futex.h"

static void rt_free(struct myriad_rt *rt)
{
	unsigned i;

	if (rt->pol_init && rt->pol->fini)
		rt->pol->fini(rt->pctx);
	if (rt->workers) {
		for (i = 0; i < rt->nworkers; i++) {
			struct worker *w = &rt->workers[i];

			/*
			 * Flush the explicit tcaches back to their arenas,
			 * then drop the arenas: every task still allocated,
			 * pending or queued, goes with them.
			 */
			if (w->tcache_ok)
				mallctl("tcache.destroy", NULL, NULL,
					&w->tcache, sizeof(w->tcache));
			/*
			 * The driver's state goes only now, once no thread
			 * can send a wake to it (a closed ring's fd could be
			 * reused).
			 */
			rt->drv->worker_fini(w);
			lq_fini(w);
		}
		for (i = 0; i < rt->nworkers; i++)
			if (rt->workers[i].arena_ok)
				arena_destroy(rt->workers[i].arena);
		free(rt->workers);
	}
	free(rt->pin_cpu);
	shm_close_rt(rt);
	sysmon_stop(rt);
	rt_signals_stop(rt);
	if (rt->oarena_ok)
		arena_destroy(rt->oarena);
	rt->drv->rt_fini(rt);
	inject_fini(&rt->inject);
	idle_fini(&rt->idle);
	pthread_mutex_destroy(&rt->start_lock);
	pthread_cond_destroy(&rt->start_cond);
	free(rt);
}

/*
 * Stop the workers: the numbered shutdown.
 * 1. Set 'shutdown' (release): no new step starts after a worker sees it,
 *    and spawns and wakes from now on fail with -ESHUTDOWN. Stop the
 *    monitor of stuck steps (sysmon.c): nothing is taken over any more.
 * 2. Wake every worker through the driver, so sleepers see step 1.
 * 3. Wake every thread blocked in myriad_handle_join(): it sees step 1.
 * 4. Join the threads: a worker exits after its current step, and after
 *    its driver's drain (cancelling the I/O in flight and reaping every
 *    completion: io/record.c:8), so once all are joined no step runs and the
 *    kernel holds no pointer into a task. Then stop the driver's threads
 *    (the blocking pool's finish the call they run).
 * 5. The driver's state (the rings) stays until myriad_rt_destroy() (a
 *    wake may still be in flight to it); tasks are freed there, with the
 *    arenas.
 */
static void rt_stop(struct myriad_rt *rt)
{
	unsigned i;

	if (rt->stopped)
		return;
	atomic_store_explicit(&rt->shutdown, true, memory_order_release);
	sysmon_stop(rt);
	notify_all(rt);
	atomic_fetch_add_explicit(&rt->done_epoch, 1, memory_order_release);
	myriad_futex_wake_all(&rt->done_epoch);
	for (i = 0; i < rt->nworkers; i++) {
		if (rt->workers[i].thread_ok)
			pthread_join(rt->workers[i].thread, NULL);
		rt->workers[i].thread_ok = false;
	}
	rt->drv->stop(rt);
	rt->stopped = true;
}

/*
 * Create a runtime on driver 'drv' (driver.h): myriad_rt_create() is
 * defined by the layer that implements the driver (io/), which names this
 * layer; this one never names it.
 */
struct myriad_rt *rt_create(const struct myriad_rt_opts *opts,
			    const struct sched_driver *drv, int *err)
{
	const struct myriad_policy_ops *pol = &myriad_policy_default;
	struct myriad_policy_env env;
	struct myriad_rt *rt = NULL;
	unsigned n, i;
	const char *e;
	int r;

	if (opts) {
		if (!OPT_HAS(opts, workers) ||
		    opts->workers > MYRIAD_WORKERS_MAX) {
			r = -EINVAL;
			goto err;
		}
		if (OPT_HAS(opts, policy) && opts->policy)
			pol = opts->policy;
	}
	if (!opts || !OPT_HAS(opts, policy) || !opts->policy) {
		e = getenv("MYRIAD_POLICY");
		if (e && !strcmp(e, "kernel")) {
			pol = &myriad_policy_kernel;
		} else if (e && *e && strcmp(e, "default")) {
			r = -EINVAL; /* a name we do not know */
			goto err;
		}
	}
	if (pol->sz < offsetof(struct myriad_policy_ops, steal_victim) +
			      sizeof(pol->steal_victim) ||
	    !pol->steal_victim) {
		r = -EINVAL;
		goto err;
	}
	r = count_workers(opts, &n);
	if (r < 0)
		goto err;

	rt = calloc(1, sizeof(*rt));
	if (!rt) {
		r = -ENOMEM;
		goto err;
	}
	rt->nworkers = n;
	rt->pol = pol;
	rt->drv = drv;
	atomic_init(&rt->active, n);
	pthread_mutex_init(&rt->start_lock, NULL);
	pthread_cond_init(&rt->start_cond, NULL);
	r = inject_init(&rt->inject);
	if (r < 0)
		goto err_free;
	r = idle_init(&rt->idle, n);
	if (r < 0)
		goto err_free;
	r = drv->rt_init(rt, opts);
	if (r < 0)
		goto err_free;
	r = arena_create(&rt->oarena);
	if (r < 0)
		goto err_free;
	rt->oarena_ok = true;

	memset(&env, 0, sizeof(env));
	env.sz = sizeof(env);
	env.workers = n;
	env.arg = OPT_HAS(opts, policy_arg) ? opts->policy_arg : NULL;
	env.rt = rt;
	if (pol->init) {
		r = pol->init(&rt->pctx, &env);
		if (r < 0)
			goto err_free;
	}
	rt->pol_init = true;
	r = pin_plan(rt);
	if (r < 0)
		goto err_free;

	rt->workers = aligned_alloc(CACHELINE, sizeof(struct worker) * n);
	if (!rt->workers) {
		r = -ENOMEM;
		goto err_free;
	}
	memset(rt->workers, 0, sizeof(struct worker) * n);
	for (i = 0; i < n; i++) {
		struct worker *w = &rt->workers[i];

		w->rt = rt;
		w->idx = i;
		w->rng = rng_seed(i, (uint64_t)(uintptr_t)rt);
		r = lq_init(w);
		if (r < 0)
			goto err_free;
		r = arena_create(&w->arena);
		if (r < 0)
			goto err_free;
		w->arena_ok = true;
	}
	for (i = 0; i < n; i++) {
		r = -pthread_create(&rt->workers[i].thread, NULL, worker_main,
				    &rt->workers[i]);
		if (r < 0) {
			pthread_mutex_lock(&rt->start_lock);
			if (!rt->start_err)
				rt->start_err = r;
			rt->started += n - i;
			pthread_mutex_unlock(&rt->start_lock);
			break;
		}
		rt->workers[i].thread_ok = true;
	}
	/* Wait until every worker's driver state exists (a wake needs it). */
	pthread_mutex_lock(&rt->start_lock);
	while (rt->started < n)
		pthread_cond_wait(&rt->start_cond, &rt->start_lock);
	if (!rt->start_err) {
		rt_signals_start(rt, opts);
		/* Before 'go': the workers read rt->shm once released. */
		if ((OPT_HAS(opts, stats_shm) && opts->stats_shm) ||
		    ((e = getenv("MYRIAD_STATS_SHM")) && !strcmp(e, "1")))
			shm_open_rt(rt);
	}
	rt->go = true;
	r = rt->start_err;
	pthread_cond_broadcast(&rt->start_cond);
	pthread_mutex_unlock(&rt->start_lock);
	if (r < 0) {
		atomic_store(&rt->shutdown, true);
		for (i = 0; i < n; i++)
			if (rt->workers[i].thread_ok)
				pthread_join(rt->workers[i].thread, NULL);
		goto err_free;
	}
	/* Not an error if it does not start: nothing is taken over then. */
	sysmon_start(rt);
	return rt;

err_free:
	rt->stopped = true;
	rt_free(rt);
err:
	if (err)
		*err = r;
	return NULL;
}

int myriad_rt_shutdown(myriad_rt_t *rt)
{
	struct worker *w = cur_worker();

	if (!rt)
		return -EINVAL;
	if (w && w->rt == rt)
		return -EDEADLK;
	rt_stop(rt);
	return 0;
}

int myriad_rt_destroy(myriad_rt_t *rt)
{
	struct worker *w = cur_worker();

	if (!rt)
		return -EINVAL;
	if (w && w->rt == rt)
		return -EDEADLK;
	rt_stop(rt);
	if (atomic_load(&rt->handles) > 0)
		return -EBUSY;
	rt_free(rt);
	return 0;
}

int myriad_rt_workers(const myriad_rt_t *rt)
{
	return rt ? (int)rt->nworkers : -EINVAL;
}
