/* SPDX-License-Identifier: MIT */
/*
 * fleet/fleet.c: the public fleet handle: its URL and connections, kinds,
 * creating a queue, submitting tasks (pipelined, with backpressure),
 * reading results and the queue's state.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fleet/internal.h"
#include "sched/sched.h"

/*
 * Add the entries given as (id, kind, input) triples to one shard while it
 * holds fewer than ARGV[1] entries; returns how many were added (a
 * prefix). Atomic in Redis, and one key: a Cluster runs it where the
 * shard lives.
 */
static const char submit_lua[] =
	"local n = redis.call('XLEN', KEYS[1])\n"
	"local bound = tonumber(ARGV[1])\n"
	"local added = 0\n"
	"for i = 2, #ARGV, 3 do\n"
	"  if n + added >= bound then break end\n"
	"  redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'kind', ARGV[i+1],"
	" 'input', ARGV[i+2])\n"
	"  added = added + 1\n"
	"end\n"
	"return added\n";

#define SUBMIT_CHUNK 256

static int parse_url(const char *url, char *host, size_t hlen, int *port,
		     char *path, size_t plen)
{
	const char *p, *colon;
	size_t n;

	*port = 6379;
	host[0] = path[0] = 0;
	if (!strncmp(url, "unix://", 7)) {
		p = url + 7;
		if (p[0] != '/' || strlen(p) >= plen)
			return -EINVAL;
		snprintf(path, plen, "%s", p);
		return 0;
	}
	if (strncmp(url, "redis://", 8))
		return -EINVAL;
	p = url + 8;
	if (*p == '[') { /* [v6]:port */
		const char *e = strchr(p, ']');

		if (!e)
			return -EINVAL;
		n = (size_t)(e - p - 1);
		colon = e[1] == ':' ? e + 1 : NULL;
		if (e[1] && !colon)
			return -EINVAL;
		p++;
	} else {
		colon = strchr(p, ':');
		n = colon ? (size_t)(colon - p) : strlen(p);
	}
	if (n == 0 || n >= hlen || memchr(p, '/', n))
		return -EINVAL;
	memcpy(host, p, n);
	host[n] = 0;
	if (colon) {
		char *end;
		long v = strtol(colon + 1, &end, 10);

		if (end == colon + 1 || (*end && strcmp(end, "/")) || v < 1 ||
		    v > 65535)
			return -EINVAL;
		*port = (int)v;
	}
	return 0;
}

/* The host as a numeric address: hiredis would resolve on the driver. */
static int resolve(char *host, size_t hlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int r;

	r = getaddrinfo(host, NULL, &hints, &ai);
	if (r)
		return -ENOENT;
	r = getnameinfo(ai->ai_addr, ai->ai_addrlen, host, (socklen_t)hlen,
			NULL, 0, NI_NUMERICHOST);
	freeaddrinfo(ai);
	return r ? -ENOENT : 0;
}

myriad_fleet_t *myriad_fleet_open(myriad_rt_t *rt,
				  const struct myriad_fleet_opts *opts,
				  int *err)
{
	struct myriad_fleet *f = NULL;
	char host[256], path[108];
	const char *url;
	redisReply *rep;
	int port, r;

	if (!rt || (opts && opts->sz < sizeof(size_t))) {
		r = -EINVAL;
		goto out;
	}
	if (cur_worker()) {
		r = -EDEADLK;
		goto out;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	if (opts)
		memcpy(&f->o, opts,
		       opts->sz < sizeof(f->o) ? opts->sz : sizeof(f->o));
	f->o.sz = sizeof(f->o);
	url = f->o.url ? f->o.url : getenv("MYRIAD_FLEET_URL");
	if (!url)
		url = "redis://127.0.0.1:6379";
	f->o.url = NULL; /* not kept */
	if (!f->o.connect_timeout_ns)
		f->o.connect_timeout_ns = 2000000000ull;
	if (!f->o.command_timeout_ns)
		f->o.command_timeout_ns = 5000000000ull;
	if (!f->o.down_wait_ns)
		f->o.down_wait_ns = 30000000000ull;
	if (!f->o.backoff_base_ns)
		f->o.backoff_base_ns = 50000000ull;
	if (!f->o.backoff_max_ns)
		f->o.backoff_max_ns = 2000000000ull;
	if (!f->o.max_queued)
		f->o.max_queued = 65536;
	r = parse_url(url, host, sizeof(host), &port, path, sizeof(path));
	if (!r && !path[0])
		r = resolve(host, sizeof(host));
	if (r)
		goto out;
	f->rt = rt;
	pthread_mutex_init(&f->lock, NULL);
	r = fconn_open(&f->cmd, rt, &f->o, host, port, path);
	if (r)
		goto out;
	r = fconn_open(&f->intake, rt, &f->o, host, port, path);
	if (r) {
		fconn_close(&f->cmd);
		goto out;
	}
	if (!f->o.lazy) {
		rep = fcommand(&f->cmd, &r, "PING", NULL);
		if (rep)
			freeReplyObject(rep);
		if (r) {
			myriad_fleet_close(f);
			f = NULL;
			r = -ENOTCONN;
			goto out;
		}
	}
	r = 0;
out:
	if (r && f && !f->rt) {
		free(f);
		f = NULL;
	} else if (r && f) {
		pthread_mutex_destroy(&f->lock);
		free(f);
		f = NULL;
	}
	if (err)
		*err = r;
	return f;
}

int myriad_fleet_close(myriad_fleet_t *f)
{
	unsigned i;

	if (!f)
		return -EINVAL;
	if (cur_worker())
		return -EDEADLK;
	fconn_close(&f->intake);
	fconn_close(&f->cmd);
	for (i = 0; i < f->nkinds; i++)
		free(f->kind_names[i]);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return 0;
}

int myriad_fleet_kind_register(myriad_fleet_t *f,
			       const struct myriad_fleet_kind *k)
{
	struct myriad_fleet_kind *d;
	int r = 0;

	if (!f || !k || k->sz < offsetof(struct myriad_fleet_kind, fini) ||
	    !k->name || !k->name[0] || !k->step ||
	    k->state_size > MYRIAD_STATE_MAX / 2)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	if (fleet_kind(f, k->name, strlen(k->name))) {
		r = -EEXIST;
	} else if (f->nkinds == FLEET_KINDS_MAX) {
		r = -ENOSPC;
	} else {
		d = &f->kinds[f->nkinds];
		memset(d, 0, sizeof(*d));
		memcpy(d, k, k->sz < sizeof(*d) ? k->sz : sizeof(*d));
		d->sz = sizeof(*d);
		f->kind_names[f->nkinds] = strdup(k->name);
		if (!f->kind_names[f->nkinds]) {
			r = -ENOMEM;
		} else {
			d->name = f->kind_names[f->nkinds];
			f->nkinds++;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* Kinds are registered before joining, and never removed: no lock. */
const struct myriad_fleet_kind *fleet_kind(struct myriad_fleet *f,
					   const char *name, size_t len)
{
	unsigned i;

	for (i = 0; i < f->nkinds; i++)
		if (strlen(f->kinds[i].name) == len &&
		    !memcmp(f->kinds[i].name, name, len))
			return &f->kinds[i];
	return NULL;
}

bool fleet_name_ok(const char *name)
{
	return name && name[0] && strlen(name) < 200 && !strpbrk(name, "{}");
}

int fleet_shards(struct myriad_fleet *f, const char *name)
{
	char key[256];
	redisReply *r;
	int err;
	long v;

	snprintf(key, sizeof(key), "{%s}:meta", name);
	r = fcommand(&f->cmd, &err, "HGET", key, "shards", NULL);
	if (!r)
		return err;
	if (r->type == REDIS_REPLY_NIL)
		err = -ENOENT;
	else if (r->type != REDIS_REPLY_STRING)
		err = -EPROTO;
	else {
		v = strtol(r->str, NULL, 10);
		err = v >= 1 && v <= 1024 ? (int)v : -EPROTO;
	}
	freeReplyObject(r);
	return err;
}

int myriad_fleet_queue_shards(myriad_fleet_t *f, const char *name)
{
	if (!f || !fleet_name_ok(name))
		return -EINVAL;
	if (cur_worker())
		return -EDEADLK;
	return fleet_shards(f, name);
}

int myriad_fleet_queue_create(myriad_fleet_t *f, const char *name,
			      unsigned shards)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct fwait w = { .lock = &lock, .cv = &cv };
	char key[256], nbuf[16];
	struct fbatch b;
	redisReply *r;
	int n, err, i;
	const char *msg;

	if (!f || !fleet_name_ok(name) || shards < 1 || shards > 1024)
		return -EINVAL;
	if (cur_worker())
		return -EDEADLK;
	snprintf(key, sizeof(key), "{%s}:meta", name);
	snprintf(nbuf, sizeof(nbuf), "%u", shards);
	r = fcommand(&f->cmd, &err, "HSETNX", key, "shards", nbuf, NULL);
	if (!r)
		return err;
	err = r->type == REDIS_REPLY_ERROR ? -EPROTO : 0;
	freeReplyObject(r);
	if (err)
		return err;
	n = fleet_shards(f, name); /* the winner's count */
	if (n < 0)
		return n;
	/* The groups, idempotently (BUSYGROUP: it exists). */
	err = fbatch_init(&b, (unsigned)n, w);
	for (i = 0; !err && i < n; i++) {
		snprintf(key, sizeof(key), "{%s:%d}", name, i);
		err = fbatch_addv(&b, "XGROUP", "CREATE", key, FLEET_GROUP, "0",
				  "MKSTREAM", NULL);
	}
	if (!err) {
		fbatch_send(&b, &f->cmd);
		fbatch_wait(&b);
		for (i = 0; !err && i < n; i++) {
			msg = NULL;
			err = fbatch_err(&b, (unsigned)i, &msg);
			if (err == -EPROTO && msg &&
			    !strncmp(msg, "BUSYGROUP", 9))
				err = 0;
		}
	}
	fbatch_free(&b);
	return err ? err : n;
}

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

int myriad_fleet_submit(myriad_fleet_t *f, const char *name,
			const struct myriad_fleet_entry *e, size_t n,
			size_t max_len, int *rc)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct fwait w = { .lock = &lock, .cv = &cv };
	unsigned *shard = NULL, *order = NULL, nsh, s;
	size_t i, j, k, start, added = 0;
	const char **argv = NULL;
	size_t *lens = NULL;
	char key[256], bound[32];
	struct fbatch b;
	int err, ns;

	if (!f || !fleet_name_ok(name) || (!e && n))
		return -EINVAL;
	if (cur_worker())
		return -EDEADLK;
	for (i = 0; i < n; i++)
		if (!e[i].id || !e[i].kind || (!e[i].input && e[i].input_len))
			return -EINVAL;
	ns = fleet_shards(f, name);
	if (ns < 0)
		return ns;
	nsh = (unsigned)ns;
	if (!n)
		return 0;
	snprintf(bound, sizeof(bound), "%zu", max_len ? max_len : 1000000);
	shard = malloc(n * sizeof(*shard));
	order = malloc(n * sizeof(*order));
	argv = malloc((5 + 3 * SUBMIT_CHUNK) * sizeof(*argv));
	lens = malloc((5 + 3 * SUBMIT_CHUNK) * sizeof(*lens));
	err = fbatch_init(&b, 16, w);
	if (!shard || !order || !argv || !lens || err) {
		err = -ENOMEM;
		goto out;
	}
	/* Entries grouped by shard, in submission order within each. */
	for (i = 0; i < n; i++)
		shard[i] = (unsigned)(hash_id(e[i].id) % nsh);
	k = 0;
	for (s = 0; s < nsh; s++)
		for (i = 0; i < n; i++)
			if (shard[i] == s)
				order[k++] = (unsigned)i;
	for (start = 0; start < n; start = j) {
		int argc = 0;

		s = shard[order[start]];
		snprintf(key, sizeof(key), "{%s:%u}", name, s);
		argv[argc++] = "EVAL";
		argv[argc++] = submit_lua;
		argv[argc++] = "1";
		argv[argc++] = key;
		argv[argc++] = bound;
		for (j = start;
		     j < n && j - start < SUBMIT_CHUNK && shard[order[j]] == s;
		     j++) {
			const struct myriad_fleet_entry *x = &e[order[j]];

			argv[argc++] = x->id;
			argv[argc++] = x->kind;
			argv[argc++] = x->input ? x->input : "";
		}
		for (int a = 0; a < argc; a++)
			lens[a] = strlen(argv[a]);
		for (k = start; k < j; k++)
			lens[5 + 3 * (k - start) + 2] = e[order[k]].input_len;
		err = fbatch_add(&b, argc, argv, lens);
		if (err)
			goto out;
	}
	fbatch_send(&b, &f->cmd);
	fbatch_wait(&b);
	/* Each EVAL added a prefix of its chunk. */
	err = 0;
	for (start = 0, k = 0; start < n; start = j, k++) {
		int e2 = fbatch_err(&b, (unsigned)k, NULL);
		long long got = 0;

		s = shard[order[start]];
		if (!e2 && b.s[k].r->type == REDIS_REPLY_INTEGER)
			got = b.s[k].r->integer;
		else if (!e2)
			e2 = -EPROTO;
		if (e2 && !err)
			err = e2;
		for (j = start;
		     j < n && j - start < SUBMIT_CHUNK && shard[order[j]] == s;
		     j++) {
			int v = e2			       ? e2
				: (long long)(j - start) < got ? 0
							       : -EAGAIN;
			if (rc)
				rc[order[j]] = v;
			if (!v)
				added++;
		}
	}
	err = added || !err ? (int)added : err;
out:
	fbatch_free(&b);
	free(shard);
	free(order);
	free(argv);
	free(lens);
	return err;
}
