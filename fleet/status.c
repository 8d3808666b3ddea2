/* SPDX-License-Identifier: MIT */
/*
 * fleet/status.c: reading a queue back: its results stream, and its state
 * (per shard: length, lag, pending per consumer; results, dead letters).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fleet/internal.h"

/* Field 'name' of a flat [k, v, k, v...] reply, or NULL. */
static const redisReply *field(const redisReply *kv, const char *name)
{
	size_t i;

	if (!kv || kv->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < kv->elements; i += 2)
		if (kv->element[i]->str && !strcmp(kv->element[i]->str, name))
			return kv->element[i + 1];
	return NULL;
}

int myriad_fleet_results(
	myriad_fleet_t *f, const char *name, const char *after, size_t count,
	int (*fn)(void *arg, const struct myriad_fleet_result *r), void *arg)
{
	char key[256], from[64], cnt[32];
	redisReply *r;
	int err, n = 0;
	size_t i;

	if (!f || !fleet_name_ok(name) || !fn || !count)
		return -EINVAL;
	err = fleet_shards(f, name);
	if (err < 0)
		return err;
	snprintf(key, sizeof(key), "{%s}:results", name);
	if (!after || !strcmp(after, "0"))
		snprintf(from, sizeof(from), "-");
	else
		snprintf(from, sizeof(from), "(%s", after);
	snprintf(cnt, sizeof(cnt), "%zu", count);
	r = fcommand(&f->cmd, &err, "XRANGE", key, from, "+", "COUNT", cnt,
		     NULL);
	if (!r)
		return err;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return -EPROTO;
	}
	for (i = 0; i < r->elements; i++) {
		const redisReply *en = r->element[i], *kv, *v;
		struct myriad_fleet_result x = { 0 };

		if (en->type != REDIS_REPLY_ARRAY || en->elements != 2)
			continue;
		kv = en->element[1];
		x.stream_id = en->element[0]->str;
		v = field(kv, "id");
		x.id = v ? v->str : "";
		v = field(kv, "attempt");
		x.attempt = v ? (unsigned)strtoul(v->str, NULL, 10) : 0;
		v = field(kv, "status");
		x.status = v ? (int)strtol(v->str, NULL, 10) : 0;
		v = field(kv, "output");
		x.output = v ? v->str : "";
		x.output_len = v ? v->len : 0;
		v = field(kv, "consumer");
		x.consumer = v ? v->str : "";
		n++;
		if (fn(arg, &x))
			break;
	}
	freeReplyObject(r);
	return n;
}

static json_t *pending_json(const redisReply *p)
{
	json_t *o = json_object(), *per = json_object();
	size_t i;

	if (p && p->type == REDIS_REPLY_ARRAY && p->elements == 4) {
		json_object_set_new(o, "count",
				    json_integer(p->element[0]->integer));
		if (p->element[3]->type == REDIS_REPLY_ARRAY)
			for (i = 0; i < p->element[3]->elements; i++) {
				const redisReply *c = p->element[3]->element[i];

				if (c->elements == 2)
					json_object_set_new(
						per, c->element[0]->str,
						json_integer(strtoll(
							c->element[1]->str,
							NULL, 10)));
			}
	}
	json_object_set_new(o, "consumers", per);
	return o;
}

char *myriad_fleet_status_json(myriad_fleet_t *f, const char *name, int *err)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct fwait w = { .lock = &lock, .cv = &cv };
	json_t *root = NULL, *shards;
	char key[256], *out = NULL;
	struct fbatch b;
	int n, e, i;

	n = f && fleet_name_ok(name) ? fleet_shards(f, name) : -EINVAL;
	if (n < 0) {
		e = n;
		goto done;
	}
	e = fbatch_init(&b, 3 * (unsigned)n + 2, w);
	for (i = 0; !e && i < n; i++) {
		snprintf(key, sizeof(key), "{%s:%d}", name, i);
		e = fbatch_addv(&b, "XLEN", key, NULL);
		if (!e)
			e = fbatch_addv(&b, "XPENDING", key, FLEET_GROUP, NULL);
		if (!e)
			e = fbatch_addv(&b, "XINFO", "GROUPS", key, NULL);
	}
	snprintf(key, sizeof(key), "{%s}:results", name);
	if (!e)
		e = fbatch_addv(&b, "XLEN", key, NULL);
	snprintf(key, sizeof(key), "{%s}:dead", name);
	if (!e)
		e = fbatch_addv(&b, "XLEN", key, NULL);
	if (e) {
		fbatch_free(&b);
		goto done;
	}
	fbatch_send(&b, &f->cmd);
	fbatch_wait(&b);
	root = json_object();
	shards = json_array();
	json_object_set_new(root, "queue", json_string(name));
	for (i = 0; i < n; i++) {
		json_t *s = json_object();
		const redisReply *g;
		unsigned k = 3 * (unsigned)i;

		if ((e = fbatch_err(&b, k, NULL)) < 0)
			break;
		json_object_set_new(s, "shard", json_integer(i));
		json_object_set_new(s, "length",
				    json_integer(b.s[k].r->integer));
		json_object_set_new(s, "pending",
				    pending_json(fbatch_err(&b, k + 1, NULL)
							 ? NULL
							 : b.s[k + 1].r));
		g = fbatch_err(&b, k + 2, NULL) ? NULL : b.s[k + 2].r;
		if (g && g->type == REDIS_REPLY_ARRAY)
			for (size_t j = 0; j < g->elements; j++) {
				const redisReply *nm = field(g->element[j],
							     "name"),
						 *lag = field(g->element[j],
							      "lag");

				if (!nm || strcmp(nm->str, FLEET_GROUP))
					continue;
				json_object_set_new(
					s, "lag",
					lag && lag->type == REDIS_REPLY_INTEGER
						? json_integer(lag->integer)
						: json_null());
			}
		json_array_append_new(shards, s);
	}
	json_object_set_new(root, "shards", shards);
	if (!e && !fbatch_err(&b, 3 * (unsigned)n, NULL))
		json_object_set_new(
			root, "results",
			json_integer(b.s[3 * (unsigned)n].r->integer));
	if (!e && !fbatch_err(&b, 3 * (unsigned)n + 1, NULL))
		json_object_set_new(
			root, "dead",
			json_integer(b.s[3 * (unsigned)n + 1].r->integer));
	fbatch_free(&b);
	if (!e) {
		out = json_dumps(root, JSON_COMPACT);
		if (!out)
			e = -ENOMEM;
	}
	json_decref(root);
done:
	if (err)
		*err = e;
	return out;
}
