/* SPDX-License-Identifier: MIT */
/*
 * fleet/join.c: joining a queue (a consumer and its member task), draining
 * and leaving it, and a member's counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleet/internal.h"
#include "sched/sched.h"

static char *keyf(const char *fmt, const char *name, unsigned k)
{
	char buf[256];

	snprintf(buf, sizeof(buf), fmt, name, k);
	return strdup(buf);
}

static void member_free(struct myriad_fleet_member *m)
{
	unsigned i;

	for (i = 0; m->skeys && i < m->nshards; i++) {
		free(m->skeys[i]);
		free(m->ckeys[i]);
		if (m->cursor)
			free(m->cursor[i]);
	}
	free(m->skeys);
	free(m->ckeys);
	free(m->cursor);
	free(m->rkey);
	free(m->dkey);
	free(m->name);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cv);
	free(m);
}

myriad_fleet_member_t *myriad_fleet_join(myriad_fleet_t *f, const char *name,
					 const struct myriad_fleet_join_opts *o,
					 int *err)
{
	struct myriad_fleet_member *m = NULL;
	char host[64];
	unsigned i;
	int r;

	if (!f || !name || (o && o->sz < sizeof(size_t))) {
		r = -EINVAL;
		goto out;
	}
	if (cur_worker()) {
		r = -EDEADLK;
		goto out;
	}
	r = fleet_shards(f, name);
	if (r < 0)
		goto out;
	m = calloc(1, sizeof(*m));
	if (!m) {
		r = -ENOMEM;
		goto out;
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cv, NULL);
	m->f = f;
	m->nshards = (unsigned)r;
	if (o)
		memcpy(&m->o, o, o->sz < sizeof(m->o) ? o->sz : sizeof(m->o));
	m->o.sz = sizeof(m->o);
	if (!m->o.max_inflight)
		m->o.max_inflight = 256;
	if (!m->o.max_runnable)
		m->o.max_runnable = 4096;
	if (!m->o.lease_ns)
		m->o.lease_ns = 30000000000ull;
	if (m->o.lease_ns < 3000000)
		m->o.lease_ns = 3000000;
	if (!m->o.block_ms)
		m->o.block_ms = 100;
	if (!m->o.max_deliveries)
		m->o.max_deliveries = 5;
	m->rng = rng_seed((uint64_t)getpid(), myriad_now_ns());
	if (m->o.consumer) {
		snprintf(m->consumer, sizeof(m->consumer), "%s", m->o.consumer);
	} else {
		gethostname(host, sizeof(host));
		host[sizeof(host) - 1] = 0;
		snprintf(m->consumer, sizeof(m->consumer), "%s-%d-%08x", host,
			 (int)getpid(), (unsigned)rng_next(&m->rng));
	}
	m->o.consumer = NULL;
	m->name = strdup(name);
	m->skeys = calloc(m->nshards, sizeof(char *));
	m->ckeys = calloc(m->nshards, sizeof(char *));
	m->cursor = calloc(m->nshards, sizeof(char *));
	m->rkey = keyf("{%s}:results", name, 0);
	m->dkey = keyf("{%s}:dead", name, 0);
	r = -ENOMEM;
	if (!m->name || !m->skeys || !m->ckeys || !m->cursor || !m->rkey ||
	    !m->dkey)
		goto fail;
	for (i = 0; i < m->nshards; i++) {
		m->skeys[i] = keyf("{%s:%u}", name, i);
		m->ckeys[i] = keyf("{%s:%u}:ckpt", name, i);
		m->cursor[i] = strdup("0-0");
		if (!m->skeys[i] || !m->ckeys[i] || !m->cursor[i])
			goto fail;
	}
	/* The groups exist if the queue was created; make sure anyway. */
	r = myriad_fleet_queue_create(f, name, m->nshards);
	if (r < 0)
		goto fail;
	m->waker.rt = f->rt;
	m->hb_at = m->cl_at = myriad_now_ns();
	m->gc_at = m->hb_at + 2 * m->o.lease_ns;
	pthread_mutex_lock(&m->lock); /* the task reads waker.task */
	{
		struct myriad_fleet_member *mp = m;

		r = myriad_rt_spawn(f->rt, member_step, &mp, sizeof(mp),
				    &m->handle);
	}
	if (!r)
		m->waker.task = m->handle;
	pthread_mutex_unlock(&m->lock);
	if (r < 0)
		goto fail;
	goto out;
fail:
	member_free(m);
	m = NULL;
out:
	if (err)
		*err = r;
	return m;
}

void myriad_fleet_drain(myriad_fleet_member_t *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->draining = true;
	pthread_mutex_unlock(&m->lock);
	myriad_waker_wake(m->waker);
}

int myriad_fleet_leave(myriad_fleet_member_t *m, int64_t timeout_ns)
{
	struct timespec ts;
	struct fentry *e;
	int r = 0;

	if (!m)
		return -EINVAL;
	if (cur_worker())
		return -EDEADLK;
	myriad_fleet_drain(m);
	clock_gettime(CLOCK_REALTIME, &ts);
	if (timeout_ns >= 0) {
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)timeout_ns;

		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
	}
	pthread_mutex_lock(&m->lock);
	while (!m->exited) {
		if (timeout_ns < 0 || m->abandon) {
			pthread_cond_wait(&m->cv, &m->lock);
			continue;
		}
		if (pthread_cond_timedwait(&m->cv, &m->lock, &ts) &&
		    !m->exited) {
			/* Stop what runs between steps; leave it pending. */
			m->abandon = true;
			r = -ETIMEDOUT;
			for (e = m->running; e; e = e->next)
				if (e->task) {
					myriad_waker_t w = { m->f->rt,
							     e->task };

					myriad_waker_wake(w);
				}
			myriad_waker_wake(m->waker);
		}
	}
	pthread_mutex_unlock(&m->lock);
	myriad_handle_join(m->handle, NULL, -1);
	myriad_handle_release(m->handle);
	member_free(m);
	return r;
}

int myriad_fleet_stats(myriad_fleet_member_t *m, struct myriad_fleet_stats *s)
{
	struct myriad_fleet_stats x = { 0 };

	if (!m || !s || s->sz < sizeof(size_t))
		return -EINVAL;
	x.sz = s->sz;
	x.pulled = atomic_load(&m->n_pulled);
	x.claimed = atomic_load(&m->n_claimed);
	x.done = atomic_load(&m->n_done);
	x.dead = atomic_load(&m->n_dead);
	x.lost = atomic_load(&m->n_lost);
	pthread_mutex_lock(&m->lock);
	x.running = m->nrunning;
	pthread_mutex_unlock(&m->lock);
	x.reconnects = atomic_load(&m->f->cmd.drops) +
		       atomic_load(&m->f->intake.drops);
	x.timeouts = atomic_load(&m->f->cmd.timeouts) +
		     atomic_load(&m->f->intake.timeouts);
	memcpy(s, &x, s->sz < sizeof(x) ? s->sz : sizeof(x));
	return 0;
}
