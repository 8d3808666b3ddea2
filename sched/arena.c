/* SPDX-License-Identifier: MIT */
/*
 * sched/arena.c: the workers' task arenas (jemalloc), on transparent huge
 * pages, and the prefaulting an idle worker does ahead of a spawner.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <jemalloc/jemalloc.h>

#include "sched.h"

/*
 * Task arenas take their memory from jemalloc's default extent hooks, and
 * ask for transparent huge pages on each large region they grow by (8 MiB
 * and up: jemalloc grows geometrically, so an arena that holds millions of
 * tasks gets them, a small one stays on 4 KiB pages): first touch of fresh
 * memory is what bounds spawning millions of tasks on machines where THP
 * is in 'madvise' mode, and a huge page costs one fault where 4 KiB pages
 * cost 512.
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

int arena_create(unsigned *a)
{
	size_t sz = sizeof(*a);

	pthread_once(&hooks_once, hooks_init);
	if (thp_hooks_ptr && mallctl("arenas.create", a, &sz, &thp_hooks_ptr,
				     sizeof(thp_hooks_ptr)) == 0)
		return 0;
	return mallctl("arenas.create", a, &sz, NULL, 0) ? -ENOMEM : 0;
}

void arena_destroy(unsigned a)
{
	char name[64];

	snprintf(name, sizeof(name), "arena.%u.destroy", a);
	mallctl(name, NULL, NULL, NULL, 0);
}
