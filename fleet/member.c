/* SPDX-License-Identifier: MIT */
/*
 * fleet/member.c: a machine's membership of a queue: the member task that
 * pulls entries by capacity, spawns their tasks, writes results and dead
 * letters, acks and deletes, and drains on request.
 *
 * An entry's way through a member, and why none is lost:
 *   1. XREADGROUP (or XAUTOCLAIM, lease.c) puts it in the group's pending
 *      list under this consumer: from now on only a takeover after the
 *      lease, or our ack, removes it from there.
 *   2. It is held (counted in 'inflight') from the read until its ack
 *      succeeded, and leased all that time (lease.c refreshes every held
 *      entry, running or not).
 *   3. Its task finishes and moves it, under the member lock, from
 *      'running' to 'done'; the member takes it to 'towrite'.
 *   4. Its result (or dead letter) is added to the results (dead) stream;
 *      only when Redis confirmed that add does it move to 'toack'. A
 *      failed add (Redis away, a timeout whose outcome is unknown) is sent
 *      again: at worst a result twice, never an ack without a result.
 *   5. XACK, XDEL (and HDEL of its checkpoint) are sent together; when they
 *      succeeded it is freed. If they fail they are sent again; if we die
 *      first, another machine runs it again (a duplicate, allowed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet/internal.h"
#include "sched/sched.h"

#define RESULTS_BATCH 256

void fent_push(struct fentry **l, struct fentry *e)
{
	e->prev = NULL;
	e->next = *l;
	if (*l)
		(*l)->prev = e;
	*l = e;
}

void fent_del(struct fentry **l, struct fentry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		*l = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->next = e->prev = NULL;
}

void fent_free(struct fentry *e)
{
	free(e->tid);
	free(e->kind_name);
	free(e->input);
	free(e->ckpt);
	free(e->output);
	free(e->reason);
	free(e);
}

static struct fwait mwait(struct myriad_fleet_member *m)
{
	struct fwait w = { .lock = &m->lock, .waker = m->waker };

	return w;
}

static bool bdone(struct myriad_fleet_member *m, struct fbatch *b)
{
	bool d;

	pthread_mutex_lock(&m->lock);
	d = fbatch_done(b);
	pthread_mutex_unlock(&m->lock);
	return d;
}

/* Runnable tasks of the runtime now: its queues' lengths (racy reads). */
static size_t runnable(myriad_rt_t *rt)
{
	size_t n = inject_len(&rt->inject);
	unsigned i;

	for (i = 0; i < rt->nworkers; i++)
		n += lq_len(&rt->workers[i]);
	return n;
}

/* Field 'name' of a flat [k, v, ...] reply: its bytes, or NULL. */
static const redisReply *kv_get(const redisReply *kv, const char *name)
{
	size_t i;

	if (!kv || kv->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < kv->elements; i += 2)
		if (kv->element[i]->type == REDIS_REPLY_STRING &&
		    !strcmp(kv->element[i]->str, name) &&
		    kv->element[i + 1]->type == REDIS_REPLY_STRING)
			return kv->element[i + 1];
	return NULL;
}

static char *bytes_dup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

/*
 * An entry from a stream reply [id, [k, v, ...]] of shard 'shard': its
 * fields copied; 'reason' set when it cannot run (malformed, unknown
 * kind). NULL only without memory.
 */
struct fentry *fent_parse(struct myriad_fleet_member *m, unsigned shard,
			  const redisReply *en)
{
	const redisReply *id, *kind, *input, *kv;
	struct fentry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->shard = shard;
	e->attempt = 1;
	snprintf(e->eid, sizeof(e->eid), "%s",
		 en->element[0]->str ? en->element[0]->str : "0-0");
	kv = en->elements > 1 ? en->element[1] : NULL;
	id = kv_get(kv, "id");
	kind = kv_get(kv, "kind");
	input = kv_get(kv, "input");
	e->tid = id ? bytes_dup(id->str, id->len) : strdup("");
	e->kind_name = kind ? bytes_dup(kind->str, kind->len) : strdup("");
	e->input = input ? bytes_dup(input->str, input->len) : strdup("");
	e->input_len = input ? input->len : 0;
	if (!e->tid || !e->kind_name || !e->input) {
		fent_free(e);
		return NULL;
	}
	if (!id || !id->len || !kind || !input)
		e->reason = strdup(!id || !id->len ? "malformed entry: no id"
				   : !kind	   ? "malformed entry: no kind"
					   : "malformed entry: no input");
	else if (!(e->kind = fleet_kind(m->f, kind->str, kind->len))) {
		e->reason = malloc(kind->len + 16);
		if (e->reason)
			sprintf(e->reason, "unknown kind: %s", e->kind_name);
	}
	return e;
}

/* Hand an entry on: dead letters straight to 'towrite', others a task. */
void fent_start(struct myriad_fleet_member *m, struct fentry *e)
{
	m->inflight++;
	if (e->reason) {
		atomic_fetch_add(&m->n_dead, 1);
		e->next = m->towrite;
		m->towrite = e;
		return;
	}
	if (ftask_spawn(m, e) < 0) {
		e->next = m->spawnq; /* again at the next step */
		m->spawnq = e;
	}
}

static void read_start(struct myriad_fleet_member *m, unsigned room)
{
	const char *argv[16 + 2 * 1024];
	char count[16], block[16];
	unsigned n, i, per;
	int argc = 0;

	n = room >= m->nshards ? m->nshards : 1;
	per = room / n;
	snprintf(count, sizeof(count), "%u", per);
	snprintf(block, sizeof(block), "%u", m->o.block_ms);
	argv[argc++] = "XREADGROUP";
	argv[argc++] = "GROUP";
	argv[argc++] = FLEET_GROUP;
	argv[argc++] = m->consumer;
	argv[argc++] = "COUNT";
	argv[argc++] = count;
	argv[argc++] = "BLOCK";
	argv[argc++] = block;
	argv[argc++] = "STREAMS";
	/* Round-robin: the first shard named moves on each read. */
	for (i = 0; i < n; i++)
		argv[argc++] = m->skeys[(m->rr + i) % m->nshards];
	for (i = 0; i < n; i++)
		argv[argc++] = ">";
	m->rr = (m->rr + 1) % m->nshards;
	if (fbatch_init(&m->rd, 1, mwait(m)) ||
	    fbatch_add(&m->rd, argc, argv, NULL)) {
		fbatch_free(&m->rd);
		return;
	}
	m->rd.s[0].cmd.extra_ns = (uint64_t)m->o.block_ms * 1000000u;
	m->rd_on = true;
	fbatch_send(&m->rd, &m->f->intake);
}

static int shard_of(struct myriad_fleet_member *m, const char *key)
{
	unsigned i;

	for (i = 0; i < m->nshards; i++)
		if (!strcmp(m->skeys[i], key))
			return (int)i;
	return -1;
}

static void read_end(struct myriad_fleet_member *m)
{
	const redisReply *r;
	size_t i, j;

	m->rd_on = false;
	if (fbatch_err(&m->rd, 0, NULL) == 0) {
		r = m->rd.s[0].r;
		for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements;
		     i++) {
			const redisReply *st = r->element[i];
			int sh;

			if (st->type != REDIS_REPLY_ARRAY || st->elements != 2)
				continue;
			sh = shard_of(m, st->element[0]->str);
			if (sh < 0)
				continue;
			for (j = 0; j < st->element[1]->elements; j++) {
				struct fentry *e =
					fent_parse(m, (unsigned)sh,
						   st->element[1]->element[j]);

				if (!e)
					continue; /* pending: a takeover */
				atomic_fetch_add(&m->n_pulled, 1);
				fent_start(m, e);
			}
		}
	}
	fbatch_free(&m->rd);
}

/* Step 4: add results and dead letters. */
static void results_start(struct myriad_fleet_member *m)
{
	struct fentry *e, *rest = NULL, *mine = NULL;
	char att[16], st[16];
	unsigned n = 0;

	if (fbatch_init(&m->res, RESULTS_BATCH, mwait(m)))
		return;
	while ((e = m->towrite)) {
		const char *argv[16];
		size_t lens[16];
		int argc = 0, a;

		m->towrite = e->next;
		if (n == RESULTS_BATCH) {
			e->next = rest;
			rest = e;
			continue;
		}
		snprintf(att, sizeof(att), "%u", e->attempt);
		snprintf(st, sizeof(st), "%d", e->status);
		argv[argc++] = "XADD";
		argv[argc++] = e->reason ? m->dkey : m->rkey;
		argv[argc++] = "*";
		argv[argc++] = "id";
		argv[argc++] = e->tid;
		argv[argc++] = "attempt";
		argv[argc++] = att;
		if (e->reason) {
			argv[argc++] = "kind";
			argv[argc++] = e->kind_name;
			argv[argc++] = "input";
			argv[argc++] = e->input;
			argv[argc++] = "reason";
			argv[argc++] = e->reason;
		} else {
			argv[argc++] = "status";
			argv[argc++] = st;
			argv[argc++] = "output";
			argv[argc++] = e->output ? e->output : "";
		}
		argv[argc++] = "consumer";
		argv[argc++] = m->consumer;
		for (a = 0; a < argc; a++)
			lens[a] = strlen(argv[a]);
		if (e->reason)
			lens[10] = e->input_len;
		else
			lens[10] = e->output ? e->output_len : 0;
		if (fbatch_add(&m->res, argc, argv, lens)) {
			e->next = rest;
			rest = e;
			continue;
		}
		e->next = mine;
		mine = e;
		n++;
	}
	m->towrite = rest;
	/* 'mine' is in reverse order of the slots: keep it so. */
	m->writing = mine;
	if (!n) {
		fbatch_free(&m->res);
		return;
	}
	m->res_on = true;
	fbatch_send(&m->res, &m->f->cmd);
}

static void results_end(struct myriad_fleet_member *m)
{
	struct fentry *e, *n;
	unsigned i = m->res.n;

	m->res_on = false;
	for (e = m->writing; e; e = n) {
		n = e->next;
		i--;
		if (fbatch_err(&m->res, i, NULL) == 0) {
			e->next = m->toack;
			m->toack = e;
		} else {
			atomic_fetch_add(&m->n_errors, 1);
			e->next = m->towrite; /* again */
			m->towrite = e;
		}
	}
	m->writing = NULL;
	fbatch_free(&m->res);
}

/* Step 5: ack, delete, forget the checkpoint. */
static bool has_ckpt(const struct fentry *e)
{
	return e->ckpt_saved || e->attempt > 1;
}

static void acks_start(struct myriad_fleet_member *m)
{
	struct fentry *e;
	unsigned n = 0;
	int r = 0;

	if (fbatch_init(&m->ack, 3 * RESULTS_BATCH, mwait(m)))
		return;
	m->acking = m->toack;
	m->toack = NULL;
	for (e = m->acking; e && !r; e = e->next, n++) {
		r = fbatch_addv(&m->ack, "XACK", m->skeys[e->shard],
				FLEET_GROUP, e->eid, NULL);
		if (!r)
			r = fbatch_addv(&m->ack, "XDEL", m->skeys[e->shard],
					e->eid, NULL);
		if (!r && has_ckpt(e))
			r = fbatch_addv(&m->ack, "HDEL", m->ckeys[e->shard],
					e->tid, NULL);
	}
	if (r) { /* no memory: all again later */
		fbatch_free(&m->ack);
		m->toack = m->acking;
		m->acking = NULL;
		return;
	}
	m->ack_on = true;
	fbatch_send(&m->ack, &m->f->cmd);
}

static void acks_end(struct myriad_fleet_member *m)
{
	struct fentry *e, *n;
	unsigned i = 0, k;
	bool ok;

	m->ack_on = false;
	for (e = m->acking; e; e = n) {
		n = e->next;
		ok = fbatch_err(&m->ack, i, NULL) == 0 &&
		     fbatch_err(&m->ack, i + 1, NULL) == 0;
		k = has_ckpt(e) ? 3 : 2;
		if (ok && k == 3)
			ok = fbatch_err(&m->ack, i + 2, NULL) == 0;
		i += k;
		if (ok) {
			if (!e->reason)
				atomic_fetch_add(&m->n_done, 1);
			m->inflight--;
			fent_free(e);
		} else {
			atomic_fetch_add(&m->n_errors, 1);
			e->next = m->toack;
			m->toack = e;
		}
	}
	m->acking = NULL;
	fbatch_free(&m->ack);
}

static bool quiet(struct myriad_fleet_member *m)
{
	return !m->rd_on && !m->res_on && !m->ack_on && !lease_busy(m) &&
	       !m->towrite && !m->toack && !m->spawnq;
}

int member_step(myriad_task_t *self, void *state)
{
	struct myriad_fleet_member *m = *(struct myriad_fleet_member **)state;
	struct fentry *fin, *e, *n;
	bool draining, abandon, exit_now;
	unsigned room;
	uint64_t now, wake;
	size_t rq;

	m->self = self;
	/* Step 3: finished tasks. */
	pthread_mutex_lock(&m->lock);
	fin = m->done;
	m->done = NULL;
	draining = m->draining;
	abandon = m->abandon;
	pthread_mutex_unlock(&m->lock);
	for (e = fin; e; e = n) {
		n = e->next;
		if (atomic_load(&e->lost) || e->status == INT32_MIN) {
			/* Another consumer owns it, or it was abandoned at
			 * a drain's end: no result from us. */
			if (atomic_load(&e->lost))
				atomic_fetch_add(&m->n_lost, 1);
			m->inflight--;
			fent_free(e);
			continue;
		}
		e->next = m->towrite;
		m->towrite = e;
	}
	for (e = m->spawnq, m->spawnq = NULL; e; e = n) {
		n = e->next;
		m->inflight--;
		fent_start(m, e);
	}
	if (m->rd_on && bdone(m, &m->rd))
		read_end(m);
	if (m->res_on && bdone(m, &m->res))
		results_end(m);
	if (m->ack_on && bdone(m, &m->ack))
		acks_end(m);
	now = myriad_now_ns();
	lease_tick(m, now, !draining && !abandon);
	if (!m->res_on && m->towrite)
		results_start(m);
	if (!m->ack_on && m->toack)
		acks_start(m);
	/* Intake by capacity. */
	if (!draining && !abandon && !m->rd_on &&
	    m->inflight < m->o.max_inflight) {
		room = m->o.max_inflight - m->inflight;
		rq = runnable(m->f->rt);
		if (rq < m->o.max_runnable) {
			if (room > m->o.max_runnable - rq)
				room = (unsigned)(m->o.max_runnable - rq);
			read_start(m, room);
		}
	}
	pthread_mutex_lock(&m->lock);
	exit_now =
		(draining || abandon) && !m->nrunning && !m->done && quiet(m);
	if (exit_now) {
		m->exited = true;
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->lock);
	if (exit_now) {
		myriad_timer_cancel(self, &m->tm);
		return MYRIAD_DONE;
	}
	wake = lease_next(m, !draining && !abandon);
	if (!draining && !abandon && !m->rd_on &&
	    m->inflight < m->o.max_inflight) /* the runtime was too busy */
		wake = wake < now + 1000000 ? wake : now + 1000000;
	myriad_timer_cancel(self, &m->tm);
	if (wake != UINT64_MAX && myriad_sleep_until(self, &m->tm, wake) == 0)
		return MYRIAD_YIELD;
	return MYRIAD_PENDING;
}
