/* SPDX-License-Identifier: MIT */
/*
 * fleet/lease.c: leases of the entries a member holds, takeover of the
 * entries of machines that died, and removal of dead consumers.
 *
 * Why a live machine's entry is not taken, and a dead one's is not lost:
 *   1. Every entry a member holds (running, or with its result or ack not
 *      yet confirmed) is refreshed every third of the lease: a script
 *      checks, per entry, that this consumer still owns it in the pending
 *      list and resets its idle time (XCLAIM ... 0 ... JUSTID, which does
 *      not count a delivery); entries owned by another consumer are
 *      reported lost and not taken back.
 *   2. Only entries idle longer than the lease are taken over (XAUTOCLAIM
 *      with min-idle-time = the lease): a live member refreshed its own
 *      twice in that time; a machine that stopped refreshing (dead, or cut
 *      off from Redis longer than the lease) loses them.
 *   3. A taken-over entry's delivery count decides: past max_deliveries it
 *      is dead-lettered, else it runs again from its last checkpoint.
 *   4. A consumer is deleted only by a script that finds it with no
 *      pending entry, in the same atomic step as the deletion: deleting it
 *      can drop no entry from the pending list (which would make the entry
 *      unclaimable), whatever the consumer does next.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/internal.h"

/* ARGV: group, me, ids...: refresh mine, return the ids not mine. */
static const char hb_lua[] =
	"local keep, lost = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}, {}\n"
	"for i = 3, #ARGV do\n"
	"  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i],"
	" ARGV[i], 1)\n"
	"  if #p == 1 and p[1][2] == ARGV[2] then keep[#keep + 1] = ARGV[i]\n"
	"  else lost[#lost + 1] = ARGV[i] end\n"
	"end\n"
	"if #keep > 5 then\n"
	"  keep[#keep + 1] = 'JUSTID'\n"
	"  redis.call(unpack(keep))\n"
	"end\n"
	"return lost\n";

/* ARGV: group, idle ms, me: delete idle consumers with nothing pending. */
static const char gc_lua[] =
	"local n = 0\n"
	"for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1],"
	" ARGV[1])) do\n"
	"  local f = {}\n"
	"  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
	"  if f['name'] ~= ARGV[3] and f['pending'] == 0 and"
	" f['idle'] > tonumber(ARGV[2]) then\n"
	"    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])\n"
	"    n = n + 1\n"
	"  end\n"
	"end\n"
	"return n\n";

#define HB_MAX 1000

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

/* Call fn on every entry the member holds (member lock held). */
static void each_held(struct myriad_fleet_member *m,
		      void (*fn)(struct fentry *e, void *arg), void *arg)
{
	struct fentry *lists[] = { m->running, m->done,	 m->towrite,
				   m->writing, m->toack, m->acking,
				   m->spawnq };
	struct fentry *e;
	unsigned i;

	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		for (e = lists[i]; e; e = e->next)
			fn(e, arg);
}

struct hb_build {
	struct myriad_fleet_member *m;
	const char ***argv;
	unsigned *argc;
};

static void hb_add(struct fentry *e, void *arg)
{
	struct hb_build *b = arg;

	if (b->argc[e->shard] < 5 + HB_MAX)
		b->argv[e->shard][b->argc[e->shard]++] = e->eid;
}

static void hb_start(struct myriad_fleet_member *m)
{
	unsigned n = m->nshards, i, *argc = calloc(n, sizeof(unsigned));
	const char ***argv = calloc(n, sizeof(*argv));
	struct hb_build b = { m, argv, argc };
	bool any = false;

	if (!argc || !argv)
		goto out;
	for (i = 0; i < n; i++) {
		argv[i] = malloc((5 + HB_MAX) * sizeof(char *));
		if (!argv[i])
			goto out;
		argv[i][0] = "EVAL";
		argv[i][1] = hb_lua;
		argv[i][2] = "1";
		argv[i][3] = m->skeys[i];
		argv[i][4] = FLEET_GROUP;
		argv[i][5] = m->consumer;
		argc[i] = 6;
	}
	pthread_mutex_lock(&m->lock);
	each_held(m, hb_add, &b);
	pthread_mutex_unlock(&m->lock);
	if (fbatch_init(&m->hb, n, mwait(m)))
		goto out;
	for (i = 0; i < n; i++) {
		/* A shard with nothing held still gets its (empty) call, so
		 * that slot i is shard i. */
		if (fbatch_add(&m->hb, (int)argc[i], argv[i], NULL)) {
			fbatch_free(&m->hb);
			goto out;
		}
		any |= argc[i] > 6;
	}
	if (!any) {
		fbatch_free(&m->hb);
		goto out;
	}
	m->hb_on = true;
	fbatch_send(&m->hb, &m->f->cmd);
out:
	for (i = 0; argv && i < n; i++)
		free(argv[i]);
	free(argv);
	free(argc);
}

struct lost_mark {
	unsigned shard;
	const char *eid;
	bool found;
};

static void mark_lost(struct fentry *e, void *arg)
{
	struct lost_mark *l = arg;

	if (e->shard == l->shard && !strcmp(e->eid, l->eid)) {
		atomic_store(&e->lost, true);
		l->found = true;
	}
}

static void hb_end(struct myriad_fleet_member *m)
{
	unsigned i;
	size_t j;

	m->hb_on = false;
	for (i = 0; i < m->hb.n; i++) {
		const redisReply *r = m->hb.s[i].r;

		if (fbatch_err(&m->hb, i, NULL) || r->type != REDIS_REPLY_ARRAY)
			continue; /* again at the next beat */
		for (j = 0; j < r->elements; j++) {
			struct lost_mark l = { i, r->element[j]->str, false };

			pthread_mutex_lock(&m->lock);
			each_held(m, mark_lost, &l);
			pthread_mutex_unlock(&m->lock);
		}
	}
	fbatch_free(&m->hb);
}

static bool holds(struct myriad_fleet_member *m, unsigned shard,
		  const char *eid)
{
	struct lost_mark l = { shard, eid, false };
	struct fentry *lists[] = { m->running, m->done,	 m->towrite,
				   m->writing, m->toack, m->acking,
				   m->spawnq };
	struct fentry *e;
	unsigned i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]) && !l.found; i++)
		for (e = lists[i]; e; e = e->next)
			if (e->shard == shard && !strcmp(e->eid, eid)) {
				l.found = true;
				break;
			}
	pthread_mutex_unlock(&m->lock);
	return l.found;
}

static void cl_start(struct myriad_fleet_member *m, unsigned room)
{
	char idle[32], count[16];
	unsigned i, per = room / m->nshards ? room / m->nshards : 1;

	snprintf(idle, sizeof(idle), "%llu",
		 (unsigned long long)(m->o.lease_ns / 1000000u));
	snprintf(count, sizeof(count), "%u", per);
	if (fbatch_init(&m->cl, m->nshards, mwait(m)))
		return;
	for (i = 0; i < m->nshards; i++)
		if (fbatch_addv(&m->cl, "XAUTOCLAIM", m->skeys[i], FLEET_GROUP,
				m->consumer, idle, m->cursor[i], "COUNT", count,
				NULL)) {
			fbatch_free(&m->cl);
			return;
		}
	m->cl_on = true;
	fbatch_send(&m->cl, &m->f->cmd);
}

/* Claimed entries: ask their delivery counts and checkpoints. */
static void cl_end(struct myriad_fleet_member *m)
{
	unsigned i, k = 0, cap = 0;
	size_t j;

	m->cl_on = false;
	for (i = 0; i < m->cl.n; i++)
		if (!fbatch_err(&m->cl, i, NULL) &&
		    m->cl.s[i].r->type == REDIS_REPLY_ARRAY &&
		    m->cl.s[i].r->elements >= 2)
			cap += (unsigned)m->cl.s[i].r->element[1]->elements;
	m->claimed = cap ? calloc(cap, sizeof(*m->claimed)) : NULL;
	for (i = 0; m->claimed && i < m->cl.n; i++) {
		const redisReply *r = m->cl.s[i].r, *ents;

		if (fbatch_err(&m->cl, i, NULL) ||
		    r->type != REDIS_REPLY_ARRAY || r->elements < 2)
			continue;
		free(m->cursor[i]);
		m->cursor[i] =
			strdup(r->element[0]->str ? r->element[0]->str : "0-0");
		if (!m->cursor[i])
			m->cursor[i] = strdup("0-0");
		ents = r->element[1];
		for (j = 0; j < ents->elements; j++) {
			const redisReply *en = ents->element[j];
			struct fentry *e;

			if (en->type != REDIS_REPLY_ARRAY || !en->elements ||
			    holds(m, i, en->element[0]->str))
				continue; /* deleted, or ours already */
			e = fent_parse(m, i, en);
			if (e)
				m->claimed[k++] = e;
		}
	}
	fbatch_free(&m->cl);
	m->nclaimed = k;
	if (!k) {
		free(m->claimed);
		m->claimed = NULL;
		return;
	}
	if (fbatch_init(&m->info, 2 * k, mwait(m)))
		goto fail;
	for (i = 0; i < k; i++) {
		struct fentry *e = m->claimed[i];

		if (fbatch_addv(&m->info, "XPENDING", m->skeys[e->shard],
				FLEET_GROUP, e->eid, e->eid, "1", NULL) ||
		    fbatch_addv(&m->info, "HGET", m->ckeys[e->shard], e->tid,
				NULL)) {
			fbatch_free(&m->info);
			goto fail;
		}
	}
	m->info_on = true;
	fbatch_send(&m->info, &m->f->cmd);
	return;
fail:
	/* Without memory: let them go; they are claimed again later. */
	for (i = 0; i < k; i++)
		fent_free(m->claimed[i]);
	free(m->claimed);
	m->claimed = NULL;
	m->nclaimed = 0;
}

static void info_end(struct myriad_fleet_member *m)
{
	unsigned i, count;
	char why[96];

	m->info_on = false;
	for (i = 0; i < m->nclaimed; i++) {
		struct fentry *e = m->claimed[i];
		const redisReply *p = m->info.s[2 * i].r,
				 *c = m->info.s[2 * i + 1].r;

		if (fbatch_err(&m->info, 2 * i, NULL) ||
		    p->type != REDIS_REPLY_ARRAY || p->elements != 1 ||
		    p->element[0]->elements != 4) {
			fent_free(e); /* not ours after all, or unknown */
			continue;
		}
		count = (unsigned)p->element[0]->element[3]->integer;
		e->attempt = count ? count : 1;
		if (!fbatch_err(&m->info, 2 * i + 1, NULL) &&
		    c->type == REDIS_REPLY_STRING) {
			e->ckpt = malloc(c->len + 1);
			if (e->ckpt) {
				memcpy(e->ckpt, c->str, c->len);
				e->ckpt_len = c->len;
			}
			e->ckpt_saved = true;
		}
		if (!e->reason && count > m->o.max_deliveries) {
			snprintf(why, sizeof(why),
				 "delivered %u times without a result", count);
			e->reason = strdup(why);
		}
		atomic_fetch_add(&m->n_claimed, 1);
		fent_start(m, e);
	}
	fbatch_free(&m->info);
	free(m->claimed);
	m->claimed = NULL;
	m->nclaimed = 0;
}

static void gc_start(struct myriad_fleet_member *m)
{
	char idle[32];
	unsigned i;

	snprintf(idle, sizeof(idle), "%llu",
		 (unsigned long long)(2 * m->o.lease_ns / 1000000u));
	if (fbatch_init(&m->gc, m->nshards, mwait(m)))
		return;
	for (i = 0; i < m->nshards; i++)
		if (fbatch_addv(&m->gc, "EVAL", gc_lua, "1", m->skeys[i],
				FLEET_GROUP, idle, m->consumer, NULL)) {
			fbatch_free(&m->gc);
			return;
		}
	m->gc_on = true;
	fbatch_send(&m->gc, &m->f->cmd);
}

void lease_tick(struct myriad_fleet_member *m, uint64_t now, bool pull)
{
	unsigned room;

	if (m->hb_on && bdone(m, &m->hb))
		hb_end(m);
	if (m->cl_on && bdone(m, &m->cl))
		cl_end(m);
	if (m->info_on && bdone(m, &m->info))
		info_end(m);
	if (m->gc_on && bdone(m, &m->gc)) {
		m->gc_on = false;
		fbatch_free(&m->gc);
	}
	if (!m->hb_on && now >= m->hb_at) {
		hb_start(m);
		m->hb_at = now + m->o.lease_ns / 3;
	}
	if (pull && !m->cl_on && !m->info_on && now >= m->cl_at &&
	    m->inflight < m->o.max_inflight) {
		room = m->o.max_inflight - m->inflight;
		cl_start(m, room);
		m->cl_at = now + m->o.lease_ns / 2;
	}
	if (pull && !m->gc_on && now >= m->gc_at) {
		gc_start(m);
		m->gc_at = now + 2 * m->o.lease_ns;
	}
}

uint64_t lease_next(struct myriad_fleet_member *m, bool pull)
{
	uint64_t t = m->hb_at;

	if (pull && m->cl_at < t)
		t = m->cl_at;
	if (pull && m->gc_at < t)
		t = m->gc_at;
	return t;
}

bool lease_busy(struct myriad_fleet_member *m)
{
	return m->hb_on || m->cl_on || m->info_on || m->gc_on;
}
