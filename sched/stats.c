/* SPDX-License-Identifier: MIT */
/*
 * sched/stats.c: the workers' counters, for myriad_rt_counters() and in
 * shared memory for other processes (myriad-trace; stats.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sched.h"
#include "bpf/signals.h"

static _Atomic unsigned shm_seq;

void shm_open_rt(struct myriad_rt *rt)
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

void shm_close_rt(struct myriad_rt *rt)
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
