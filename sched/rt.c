/* SPDX-License-Identifier: MIT */
/*
 * sched/rt.c: the runtime's life: counting usable CPUs, creating workers,
 * rings and arenas, spawning from outside, handles, shutdown and destroy.
 */
#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include <jemalloc/jemalloc.h>

#include "base/clock.h"
#include "base/random.h"
#include "sched.h"
#include "probes.h"
#include "futex.h"
#include "bpf/signals.h"

/* ---- how many workers ---- */

/*
 * Parse cgroup v2 cpu.max ("max 100000" or "QUOTA PERIOD") into a CPU count
 * rounded up; 0 means no limit. Returns -EINVAL when malformed.
 */
static int parse_cpu_max(const char *s, unsigned *cpus)
{
	unsigned long long quota, period = 100000;
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (strncmp(s, "max", 3) == 0) {
		*cpus = 0;
		s += 3;
		if (*s && !isspace((unsigned char)*s))
			return -EINVAL;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	quota = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	s = end;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s && *s != '\n') {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		period = strtoull(s, &end, 10);
		if (errno || end == s)
			return -EINVAL;
		s = end;
		while (isspace((unsigned char)*s))
			s++;
		if (*s)
			return -EINVAL;
	}
	if (period == 0 || quota == 0)
		return -EINVAL;
	quota = (quota + period - 1) / period;
	*cpus = quota > MYRIAD_WORKERS_MAX ? MYRIAD_WORKERS_MAX
					   : (unsigned)quota;
	return 0;
}

/* The tightest cpu.max on the path from this process's cgroup to the root. */
static unsigned cgroup_cpus(void)
{
	char line[4096], path[4400], buf[128];
	unsigned best = 0, c;
	FILE *f;
	char *p;

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return 0;
	p = NULL;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			p = line + 3;
			p[strcspn(p, "\n")] = 0;
			break;
		}
	}
	fclose(f);
	if (!p)
		return 0;
	for (;;) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max",
			 strcmp(p, "/") ? p : "");
		f = fopen(path, "re");
		if (f) {
			if (fgets(buf, sizeof(buf), f) &&
			    parse_cpu_max(buf, &c) == 0 && c &&
			    (!best || c < best))
				best = c;
			fclose(f);
		}
		char *slash = strrchr(p, '/');

		if (!slash || slash == p)
			break;
		*slash = 0;
	}
	return best;
}

/* The policy's MYRIAD_POLICY_* flags: 0 from a struct older than them. */
static unsigned pol_flags(const struct myriad_policy_ops *pol)
{
	return pol->sz >= offsetof(struct myriad_policy_ops, flags) +
				       sizeof(pol->flags)
		       ? pol->flags
		       : 0;
}

/*
 * MYRIAD_POLICY_PIN: worker i gets the i-th CPU of the affinity mask the
 * process has now, when the mask has a CPU for every worker. The workers
 * pin and unpin themselves (worker.c, pin_update()).
 */
static int pin_plan(struct myriad_rt *rt)
{
	unsigned i = 0, c;

	atomic_init(&rt->pin_on, false);
	if (!(pol_flags(rt->pol) & MYRIAD_POLICY_PIN) ||
	    sched_getaffinity(0, sizeof(rt->pin_mask), &rt->pin_mask) ||
	    (unsigned)CPU_COUNT(&rt->pin_mask) < rt->nworkers)
		return 0;
	rt->pin_cpu = malloc(rt->nworkers * sizeof(*rt->pin_cpu));
	if (!rt->pin_cpu)
		return -ENOMEM;
	for (c = 0; c < CPU_SETSIZE && i < rt->nworkers; c++)
		if (CPU_ISSET(c, &rt->pin_mask))
			rt->pin_cpu[i++] = (int)c;
	atomic_init(&rt->pin_on, true);
	return 0;
}

static int count_workers(const struct myriad_rt_opts *o, unsigned *out)
{
	const char *env, *cmax;
	unsigned n, q;
	cpu_set_t set;
	int r;

	if (OPT_HAS(o, workers) && o->workers) {
		*out = o->workers;
		return 0;
	}
	env = getenv("MYRIAD_WORKERS");
	if (env && *env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);

		if (*end || v == 0 || v > MYRIAD_WORKERS_MAX)
			return -EINVAL;
		*out = (unsigned)v;
		return 0;
	}
	n = 1;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = (unsigned)CPU_COUNT(&set);
	if (n < 1)
		n = 1;
	cmax = (OPT_HAS(o, cpu_max) && o->cpu_max) ? o->cpu_max
						   : getenv("MYRIAD_CPU_MAX");
	if (cmax) {
		r = parse_cpu_max(cmax, &q);
		if (r < 0)
			return r;
	} else {
		q = cgroup_cpus();
	}
	if (q && q < n)
		n = q;
	if (n > MYRIAD_WORKERS_MAX)
		n = MYRIAD_WORKERS_MAX;
	*out = n;
	return 0;
}

/* ---- create and destroy ---- */

/*
 * Task arenas take their memory from jemalloc's default extent hooks, and
 * ask for transparent huge pages on each large region they grow by (8 MiB
 * and up: jemalloc grows geometrically, so an arena that holds millions of
 * tasks gets them, a small one stays on 4 KiB pages): first touch of fresh memory is what bounds spawning millions of
 * tasks on machines where THP is in 'madvise' mode, and a huge page costs
 * one fault where 4 KiB pages cost 512.
 */
#define THP_MIN_GROWTH (8u << 20)

static extent_hooks_t *default_hooks;
static extent_hooks_t thp_hooks;
static extent_hooks_t *thp_hooks_ptr;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

/*
 * Prefaulting: the worker that spawns millions of tasks pays for every
 * first touch of the memory it allocates, alone. An idle worker helps: it
 * faults in the next PF_AHEAD huge pages after the one each worker
 * allocates tasks from now (task_new() publishes it), inside the large
 * regions the task arenas grew by, so that the spawner mostly finds its
 * memory present and at most a few megabytes are faulted ahead of use.
 * Faulting a page twice is harmless; the kernel serializes it.
 */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PF_SLOTS 16
#define PF_AHEAD 1

static struct {
	struct spin lock;
	bool off; /* the kernel has no MADV_POPULATE_WRITE */
	unsigned n;
	struct {
		uintptr_t base, end;
	} e[PF_SLOTS];
} pf;

static void *thp_alloc(extent_hooks_t *h, void *addr, size_t size, size_t align,
		       bool *zero, bool *commit, unsigned ind)
{
	void *p = default_hooks->alloc(default_hooks, addr, size, align, zero,
				       commit, ind);
	uintptr_t b, e;
	unsigned n;

	(void)h;
	/* Not the first small growths: short runs would pay up front. */
	if (!p || size < THP_MIN_GROWTH)
		return p;
	madvise(p, size, MADV_HUGEPAGE);
	b = ((uintptr_t)p + PF_CHUNK - 1) & ~(PF_CHUNK - 1);
	e = ((uintptr_t)p + size) & ~(PF_CHUNK - 1);
	if (e <= b)
		return p;
	spin_lock(&pf.lock);
	n = pf.n;
	if (n == PF_SLOTS) {
		memmove(&pf.e[0], &pf.e[1], sizeof(pf.e[0]) * (PF_SLOTS - 1));
		n--;
	}
	pf.e[n].base = b;
	pf.e[n].end = e;
	__atomic_store_n(&pf.n, n + 1, __ATOMIC_RELAXED);
	spin_unlock(&pf.lock);
	return p;
}

static bool resident(const char *p)
{
	unsigned char v = 0;

	return mincore((void *)p, 4096, &v) == 0 && (v & 1);
}

static bool in_region(uintptr_t c)
{
	bool in = false;
	unsigned i;

	spin_lock(&pf.lock);
	for (i = 0; i < pf.n && !in; i++)
		in = c >= pf.e[i].base && c < pf.e[i].end;
	spin_unlock(&pf.lock);
	return in;
}

/*
 * Fault in one huge page ahead of a worker's allocation, if one is due.
 * Returns true when it did (the caller looks for tasks again).
 */
bool rt_prefault_step(struct myriad_rt *rt)
{
	unsigned i, k;
	uintptr_t f, c;

	if (__atomic_load_n(&pf.off, __ATOMIC_RELAXED) ||
	    !__atomic_load_n(&pf.n, __ATOMIC_RELAXED))
		return false;
	for (i = 0; i < rt->nworkers; i++) {
		f = atomic_load_explicit(&rt->workers[i].pf_front,
					 memory_order_relaxed);
		if (!f)
			continue;
		for (k = 1; k <= PF_AHEAD; k++) {
			c = f + k * PF_CHUNK;
			if (resident((const char *)c) || !in_region(c))
				continue;
			if (madvise((void *)c, PF_CHUNK, MADV_POPULATE_WRITE) &&
			    (errno == EINVAL || errno == ENOSYS))
				__atomic_store_n(&pf.off, true,
						 __ATOMIC_RELAXED);
			return true;
		}
	}
	return false;
}

static void hooks_init(void)
{
	const char *e = getenv("MYRIAD_PREFAULT");

	if (e && !strcmp(e, "0"))
		pf.off = true;
	size_t sz = sizeof(default_hooks);

	if (mallctl("arena.0.extent_hooks", &default_hooks, &sz, NULL, 0) ||
	    !default_hooks || !default_hooks->alloc)
		return;
	thp_hooks = *default_hooks;
	thp_hooks.alloc = thp_alloc;
	thp_hooks_ptr = &thp_hooks;
}

static int arena_create(unsigned *a)
{
	size_t sz = sizeof(*a);

	pthread_once(&hooks_once, hooks_init);
	if (thp_hooks_ptr && mallctl("arenas.create", a, &sz, &thp_hooks_ptr,
				     sizeof(thp_hooks_ptr)) == 0)
		return 0;
	return mallctl("arenas.create", a, &sz, NULL, 0) ? -ENOMEM : 0;
}

static void arena_destroy(unsigned a)
{
	char name[64];

	snprintf(name, sizeof(name), "arena.%u.destroy", a);
	mallctl(name, NULL, NULL, NULL, 0);
}

/* ---- counters in shared memory ---- */

static _Atomic unsigned shm_seq;

static void shm_open_rt(struct myriad_rt *rt)
{
	size_t len = sizeof(struct myriad_shm) +
		     rt->nworkers * sizeof(struct myriad_shm_worker);
	struct myriad_shm *m;
	unsigned i;
	int fd;

	/* Files left by killed processes (bpf/shm_stale.h). */
	shm_sweep_stale();
	snprintf(rt->shm_name, sizeof(rt->shm_name), "/myriad.%d.%u",
		 (int)getpid(), atomic_fetch_add(&shm_seq, 1));
	fd = shm_open(rt->shm_name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
		      0600);
	if (fd < 0)
		return; /* a diagnostic aid: the runtime goes on without */
	if (ftruncate(fd, (off_t)len) < 0) {
		close(fd);
		shm_unlink(rt->shm_name);
		return;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		shm_unlink(rt->shm_name);
		return;
	}
	m->version = MYRIAD_SHM_VERSION;
	m->nworkers = rt->nworkers;
	m->nctrs = MYRIAD_CTR__COUNT;
	m->worker_size = sizeof(struct myriad_shm_worker);
	m->pid = (int32_t)getpid();
	for (i = 0; i < MYRIAD_CTR__COUNT && i < MYRIAD_SHM_CTRS; i++)
		snprintf(m->ctr_names[i], sizeof(m->ctr_names[i]), "%s",
			 myriad_counter_name(i));
	for (i = 0; i < rt->nworkers; i++)
		m->w[i].tid = rt->workers[i].tid;
	/* Last: a reader that sees the magic sees the header. */
	__atomic_store_n(&m->magic, MYRIAD_SHM_MAGIC, __ATOMIC_RELEASE);
	rt->shm_len = len;
	rt->shm = m;
}

static void shm_close_rt(struct myriad_rt *rt)
{
	if (!rt->shm)
		return;
	munmap(rt->shm, rt->shm_len);
	shm_unlink(rt->shm_name);
	rt->shm = NULL;
}

void rt_shm_publish(struct worker *w, bool parked)
{
	struct myriad_shm_worker *s;
	unsigned i;

	if (likely(!w->rt->shm))
		return;
	s = &w->rt->shm->w[w->idx];
#if MYRIAD_COUNTERS
	for (i = 0; i < MYRIAD_CTR__COUNT && i < MYRIAD_SHM_CTRS; i++)
		__atomic_store_n(
			&s->ctr[i],
			atomic_load_explicit(&w->ctr[i], memory_order_relaxed),
			__ATOMIC_RELAXED);
#else
	(void)i;
#endif
	__atomic_store_n(&s->cpu, sched_getcpu(), __ATOMIC_RELAXED);
	__atomic_store_n(&s->queue_len,
			 lq_len(w) + atomic_load_explicit(&w->stack_n,
							  memory_order_relaxed),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&s->parked, parked ? 1u : 0u, __ATOMIC_RELAXED);
	__atomic_store_n(&s->stamp_ns, myriad_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELEASE);
}

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
static void signals_start(struct myriad_rt *rt,
			  const struct myriad_rt_opts *opts)
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
		signals_start(rt, opts);
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

/* ---- spawning from anywhere, handles ---- */

int myriad_rt_spawn(myriad_rt_t *rt, myriad_step_fn fn, const void *init,
		    size_t size, myriad_handle_t **handle)
{
	struct worker *w = cur_worker();
	struct myriad_task *t;
	uint64_t st = TS_SCHEDULED;

	if (handle)
		*handle = NULL;
	if (!rt || !fn || size > MYRIAD_STATE_MAX)
		return -EINVAL;
	if (atomic_load_explicit(&rt->shutdown, memory_order_acquire))
		return -ESHUTDOWN;
	if (w && w->rt != rt)
		w = NULL;
	if (handle)
		st |= TF_HANDLE;
	t = task_new(rt, w, fn, init, size, st, rt);
	if (!t)
		return -ENOMEM;
	if (handle) {
		atomic_fetch_add_explicit(&rt->handles, 1,
					  memory_order_relaxed);
		*handle = t;
	}
	PROBE3(spawn, w ? (int)w->idx : -1, t, fn);
	if (w) {
		CTR_INC(w, MYRIAD_CTR_SPAWNED);
		task_schedule_spawned(rt, w, t);
	} else {
		task_schedule(rt, t);
	}
	return 0;
}

int myriad_handle_join(myriad_handle_t *h, int64_t *result, int64_t timeout_ns)
{
	struct myriad_rt *rt;
	struct worker *w = cur_worker();
	struct timespec rel;
	uint64_t s, end = 0, now;
	uint32_t epoch;
	int r = 0;

	if (!h)
		return -EINVAL;
	rt = h->up;
	if (w && w->rt == rt)
		return -EDEADLK;
	if (timeout_ns >= 0)
		end = myriad_now_ns() + (uint64_t)timeout_ns;
	atomic_fetch_add_explicit(&rt->joiners, 1, memory_order_seq_cst);
	for (;;) {
		epoch = atomic_load_explicit(&rt->done_epoch,
					     memory_order_seq_cst);
		s = atomic_load_explicit(&h->state, memory_order_acquire);
		if ((s & TS_LC_MASK) == TS_DONE) {
			if (result)
				*result = h->result;
			r = (s & TF_CANCELLED) ? -ECANCELED : 0;
			break;
		}
		if (atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
			r = -ESHUTDOWN;
			break;
		}
		if (timeout_ns >= 0) {
			now = myriad_now_ns();
			if (now > end) {
				r = -ETIMEDOUT;
				break;
			}
			rel = ns_timespec(end - now);
		}
		myriad_futex_wait(&rt->done_epoch, epoch,
				  timeout_ns >= 0 ? &rel : NULL);
	}
	atomic_fetch_sub_explicit(&rt->joiners, 1, memory_order_relaxed);
	return r;
}

int myriad_handle_cancel(myriad_handle_t *h)
{
	return h ? myriad_task_cancel(h) : -EINVAL;
}

int myriad_handle_release(myriad_handle_t *h)
{
	struct myriad_rt *rt;
	uint64_t s;

	if (!h)
		return -EINVAL;
	rt = h->up;
	s = atomic_fetch_or_explicit(&h->state, TF_HANDLE_GONE,
				     memory_order_acq_rel);
	/* If the task finished first, it left the freeing to us. */
	if ((s & TS_LC_MASK) == TS_DONE)
		task_free(rt,
			  cur_worker() && cur_worker()->rt == rt ? cur_worker()
								 : NULL,
			  h);
	atomic_fetch_sub_explicit(&rt->handles, 1, memory_order_release);
	return 0;
}

int myriad_rt_block_on(myriad_rt_t *rt, myriad_step_fn fn, const void *init,
		       size_t size, int64_t *result)
{
	myriad_handle_t *h;
	int r;

	r = myriad_rt_spawn(rt, fn, init, size, &h);
	if (r < 0)
		return r;
	r = myriad_handle_join(h, result, -1);
	myriad_handle_release(h);
	return r;
}

/* ---- counters ---- */

static const char *const ctr_names[MYRIAD_CTR__COUNT] = {
	[MYRIAD_CTR_SPAWNED] = "spawned",
	[MYRIAD_CTR_RUN] = "run",
	[MYRIAD_CTR_STOLEN] = "stolen",
	[MYRIAD_CTR_STEAL_FAILS] = "steal_fails",
	[MYRIAD_CTR_PARKS] = "parks",
	[MYRIAD_CTR_WAKES] = "wakes",
	[MYRIAD_CTR_NOTIFIES] = "notifies",
	[MYRIAD_CTR_INJECT_POLLS] = "inject_polls",
	[MYRIAD_CTR_LIFO_RUNS] = "lifo_runs",
	[MYRIAD_CTR_OVERFLOWS] = "overflows",
	[MYRIAD_CTR_IO_OPS] = "io_ops",
	[MYRIAD_CTR_IO_ENTERS] = "io_enters",
	[MYRIAD_CTR_TAKEOVERS] = "takeovers",
};

const char *myriad_counter_name(unsigned ctr)
{
	return ctr < MYRIAD_CTR__COUNT ? ctr_names[ctr] : NULL;
}

int myriad_rt_counters(const myriad_rt_t *rt, unsigned worker, uint64_t *out,
		       size_t n)
{
	if (!rt || !out || worker >= rt->nworkers)
		return -EINVAL;
#if MYRIAD_COUNTERS
	size_t i;

	if (n > MYRIAD_CTR__COUNT)
		n = MYRIAD_CTR__COUNT;
	for (i = 0; i < n; i++)
		out[i] = atomic_load_explicit(&rt->workers[worker].ctr[i],
					      memory_order_relaxed);
	return (int)n;
#else
	(void)n;
	return -ENOTSUP;
#endif
}

int64_t myriad_rt_tasks_live(const myriad_rt_t *rt)
{
	int64_t live;
	unsigned i;

	if (!rt)
		return -EINVAL;
	live = atomic_load(&rt->oallocs) - atomic_load(&rt->ofrees);
	for (i = 0; i < rt->nworkers; i++)
		live += atomic_load_explicit(&rt->workers[i].allocs,
					     memory_order_relaxed) -
			atomic_load_explicit(&rt->workers[i].frees,
					     memory_order_relaxed);
	return live;
}
