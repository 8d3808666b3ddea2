/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-fleet/main.c: myriad-fleet, the program around the fleet
 * API: submit tasks (JSON lines), run a worker, show a queue, read results.
 *
 * Exit codes: 0 success, 1 usage or a failure, 2 a malformed URL,
 * 3 Redis unreachable, 4 no such queue.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <myriad.h>

enum { EX_OK, EX_FAIL, EX_URL, EX_UNREACH, EX_NOQUEUE };

static const char *url;

static void usage(void)
{
	fprintf(stderr,
		"usage: myriad-fleet [--url URL] COMMAND QUEUE [options]\n"
		"  submit QUEUE [FILE|-] [--shards N] [--max-len N]\n"
		"      JSON lines {\"id\":..,\"kind\":..,\"input\":..}; creates\n"
		"      the queue (N shards, default 4) if it does not exist\n"
		"  run QUEUE [--workers N] [--max-inflight N] [--lease-ms N]\n"
		"      [--block-ms N] [--max-deliveries N] [--consumer NAME]\n"
		"      [--drain-ms N]   a worker; SIGTERM/SIGINT drain it\n"
		"  status QUEUE      per shard: length, lag, pending\n"
		"  results QUEUE [--after ID] [--count N]\n"
		"URL: redis://HOST[:PORT] or unix:///PATH (default: "
		"$MYRIAD_FLEET_URL, else redis://127.0.0.1:6379)\n");
}

static int fail_code(int err, const char *what, const char *queue)
{
	switch (err) {
	case -EINVAL:
		fprintf(stderr, "myriad-fleet: %s: malformed URL %s\n", what,
			url ? url : "(default)");
		return EX_URL;
	case -ENOTCONN:
	case -ETIMEDOUT:
	case -ECONNREFUSED:
		fprintf(stderr,
			"myriad-fleet: %s: Redis at %s is unreachable\n", what,
			url ? url : "(default)");
		return EX_UNREACH;
	case -ENOENT:
		if (queue) {
			fprintf(stderr,
				"myriad-fleet: %s: queue '%s' does not exist\n",
				what, queue);
			return EX_NOQUEUE;
		}
		fprintf(stderr, "myriad-fleet: %s: host of %s not found\n",
			what, url ? url : "(default)");
		return EX_UNREACH;
	default:
		fprintf(stderr, "myriad-fleet: %s: %s\n", what, strerror(-err));
		return EX_FAIL;
	}
}

/* ---- the built-in kinds ---- */

static long long fib(int n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

struct fib_st {
	int n;
};

static int fib_init(void *s, const void *in, size_t len, const void *ck,
		    size_t cklen)
{
	char buf[32];

	(void)ck;
	(void)cklen;
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, in, len);
	buf[len] = 0;
	((struct fib_st *)s)->n = atoi(buf);
	return ((struct fib_st *)s)->n >= 0 && ((struct fib_st *)s)->n <= 45
		       ? 0
		       : -EINVAL;
}

static int fib_step(myriad_task_t *self, void *state)
{
	char out[32];
	int n = snprintf(out, sizeof(out), "%lld",
			 fib(((struct fib_st *)state)->n));

	myriad_fleet_result(self, 0, out, (size_t)n);
	return MYRIAD_DONE;
}

/* empty: nothing to do, an empty result (the benchmark's task). */
static int empty_init(void *s, const void *in, size_t len, const void *ck,
		      size_t cklen)
{
	return 0;
}

static int empty_step(myriad_task_t *self, void *state)
{
	return MYRIAD_DONE;
}

/* sleep: input "MS"; steps: input "N:MS", N sleeps of MS, checkpointed. */
struct steps_st {
	myriad_timer_t tm;
	unsigned n, i, start, ms;
	bool ckpt_phase;
	char ck[16];
};

static int steps_init(void *s, const void *in, size_t len, const void *ck,
		      size_t cklen)
{
	struct steps_st *st = s;
	char buf[64];

	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, in, len);
	buf[len] = 0;
	if (sscanf(buf, "%u:%u", &st->n, &st->ms) != 2)
		return -EINVAL;
	if (ck && cklen && cklen < sizeof(buf)) {
		memcpy(buf, ck, cklen);
		buf[cklen] = 0;
		st->i = st->start = (unsigned)atoi(buf);
	}
	return 0;
}

static int sleep_init(void *s, const void *in, size_t len, const void *ck,
		      size_t cklen)
{
	struct steps_st *st = s;
	char buf[32];

	(void)ck;
	(void)cklen;
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, in, len);
	buf[len] = 0;
	st->n = 1;
	st->ms = (unsigned)atoi(buf);
	st->i = 0;
	return 0;
}

static int steps_step(myriad_task_t *self, void *state)
{
	struct steps_st *st = state;
	char out[64];
	int r, n;

	while (st->i < st->n) {
		if (st->ckpt_phase) {
			r = myriad_fleet_checkpoint(self, st->ck,
						    strlen(st->ck));
			if (r == -EAGAIN)
				return MYRIAD_PENDING;
			st->ckpt_phase = false;
			continue;
		}
		r = myriad_sleep(self, &st->tm, (uint64_t)st->ms * 1000000u);
		if (r == -EAGAIN)
			return MYRIAD_PENDING;
		st->i++;
		if (st->n > 1) {
			snprintf(st->ck, sizeof(st->ck), "%u", st->i);
			st->ckpt_phase = true;
		}
	}
	n = snprintf(out, sizeof(out), "start=%u steps=%u", st->start, st->n);
	myriad_fleet_result(self, 0, out, (size_t)n);
	return MYRIAD_DONE;
}

static int register_kinds(myriad_fleet_t *f)
{
	struct myriad_fleet_kind k[] = {
		{ sizeof(k[0]), "fib", sizeof(struct fib_st), fib_init,
		  fib_step, NULL },
		{ sizeof(k[0]), "empty", 0, empty_init, empty_step, NULL },
		{ sizeof(k[0]), "sleep", sizeof(struct steps_st), sleep_init,
		  steps_step, NULL },
		{ sizeof(k[0]), "steps", sizeof(struct steps_st), steps_init,
		  steps_step, NULL },
	};
	unsigned i;
	int r;

	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		r = myriad_fleet_kind_register(f, &k[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- commands ---- */

static const char *opt(int argc, char **argv, const char *name)
{
	int i;

	for (i = 0; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return NULL;
}

static long optl(int argc, char **argv, const char *name, long dflt)
{
	const char *v = opt(argc, argv, name);

	return v ? strtol(v, NULL, 10) : dflt;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

struct line {
	char *id, *kind, *input;
};

static int flush(myriad_fleet_t *f, const char *q, struct line *l, size_t n,
		 size_t max_len, size_t *total)
{
	struct myriad_fleet_entry *e = calloc(n, sizeof(*e));
	size_t *idx = calloc(n, sizeof(*idx));
	int *rc = calloc(n, sizeof(*rc));
	size_t i, k = n, nk;
	int r = 0;

	if (!e || !rc || !idx) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		idx[i] = i;
	/* Backpressure: a full shard's entries go again, later. */
	while (k) {
		for (i = 0; i < k; i++) {
			struct line *x = &l[idx[i]];

			e[i] = (struct myriad_fleet_entry){ x->id, x->kind,
							    x->input,
							    strlen(x->input) };
		}
		r = myriad_fleet_submit(f, q, e, k, max_len, rc);
		if (r < 0)
			goto out;
		*total += (size_t)r;
		for (i = 0, nk = 0; i < k; i++) {
			if (rc[i] == -EAGAIN)
				idx[nk++] = idx[i];
			else if (rc[i] < 0) {
				r = rc[i];
				goto out;
			}
		}
		k = nk;
		if (k)
			sleep_ms(50);
	}
	r = 0;
out:
	free(e);
	free(idx);
	free(rc);
	return r;
}

static int cmd_submit(myriad_fleet_t *f, const char *q, int argc, char **argv)
{
	const char *file = argc > 0 && argv[0][0] != '-'       ? argv[0]
			   : argc > 0 && !strcmp(argv[0], "-") ? "-"
							       : NULL;
	unsigned shards = (unsigned)optl(argc, argv, "--shards", 4);
	size_t max_len = (size_t)optl(argc, argv, "--max-len", 0);
	FILE *in = stdin;
	struct line *l;
	size_t n = 0, cap = 1000, total = 0, lineno = 0;
	char *buf = NULL;
	size_t bcap = 0;
	int r;

	if (file && strcmp(file, "-")) {
		in = fopen(file, "r");
		if (!in) {
			fprintf(stderr, "myriad-fleet: submit: %s: %s\n", file,
				strerror(errno));
			return EX_FAIL;
		}
	}
	r = myriad_fleet_queue_shards(f, q);
	if (r == -ENOENT)
		r = myriad_fleet_queue_create(f, q, shards);
	if (r < 0)
		return fail_code(r, "submit", q);
	l = calloc(cap, sizeof(*l));
	if (!l)
		return EX_FAIL;
	while (getline(&buf, &bcap, in) > 0) {
		json_error_t je;
		json_t *j, *id, *kind, *input;

		lineno++;
		if (strspn(buf, " \t\r\n") == strlen(buf))
			continue;
		j = json_loads(buf, 0, &je);
		id = j ? json_object_get(j, "id") : NULL;
		kind = j ? json_object_get(j, "kind") : NULL;
		input = j ? json_object_get(j, "input") : NULL;
		if (!j || !json_is_object(j) || !kind ||
		    !json_is_string(kind) || !id) {
			fprintf(stderr,
				"myriad-fleet: submit: line %zu: not an object "
				"with \"id\" and \"kind\"\n",
				lineno);
			json_decref(j);
			r = -EINVAL;
			break;
		}
		l[n].id = json_is_string(id)
				  ? strdup(json_string_value(id))
				  : json_dumps(id,
					       JSON_ENCODE_ANY | JSON_COMPACT);
		l[n].kind = strdup(json_string_value(kind));
		l[n].input = !input ? strdup("")
			     : json_is_string(input)
				     ? strdup(json_string_value(input))
				     : json_dumps(input, JSON_ENCODE_ANY |
								 JSON_COMPACT);
		json_decref(j);
		n++;
		if (n == cap) {
			r = flush(f, q, l, n, max_len, &total);
			for (size_t i = 0; i < n; i++) {
				free(l[i].id);
				free(l[i].kind);
				free(l[i].input);
			}
			n = 0;
			if (r < 0)
				break;
		}
	}
	if (r >= 0 && n)
		r = flush(f, q, l, n, max_len, &total);
	for (size_t i = 0; i < n; i++) {
		free(l[i].id);
		free(l[i].kind);
		free(l[i].input);
	}
	free(l);
	free(buf);
	if (in != stdin)
		fclose(in);
	if (r < 0)
		return r == -EINVAL ? EX_FAIL : fail_code(r, "submit", q);
	printf("submitted %zu\n", total);
	return EX_OK;
}

static int cmd_run(myriad_fleet_t *f, const char *q, int argc, char **argv,
		   sigset_t *sigs)
{
	struct myriad_fleet_join_opts o = { .sz = sizeof(o) };
	struct myriad_fleet_stats st = { .sz = sizeof(st) };
	myriad_fleet_member_t *m;
	long drain_ms = optl(argc, argv, "--drain-ms", 30000);
	int r, sig;

	o.max_inflight = (unsigned)optl(argc, argv, "--max-inflight", 0);
	o.lease_ns = (uint64_t)optl(argc, argv, "--lease-ms", 0) * 1000000u;
	o.block_ms = (unsigned)optl(argc, argv, "--block-ms", 0);
	o.max_deliveries = (unsigned)optl(argc, argv, "--max-deliveries", 0);
	o.consumer = opt(argc, argv, "--consumer");
	r = register_kinds(f);
	if (r < 0)
		return fail_code(r, "run", q);
	m = myriad_fleet_join(f, q, &o, &r);
	if (!m)
		return fail_code(r, "run", q);
	fprintf(stderr, "myriad-fleet: running queue '%s'\n", q);
	sigwait(sigs, &sig);
	fprintf(stderr, "myriad-fleet: %s: draining\n", strsignal(sig));
	myriad_fleet_stats(m, &st);
	r = myriad_fleet_leave(m, drain_ms * 1000000);
	fprintf(stderr,
		"myriad-fleet: left: pulled %llu, claimed %llu, done %llu, "
		"dead %llu, lost %llu, reconnects %llu, timeouts %llu%s\n",
		(unsigned long long)st.pulled, (unsigned long long)st.claimed,
		(unsigned long long)st.done, (unsigned long long)st.dead,
		(unsigned long long)st.lost, (unsigned long long)st.reconnects,
		(unsigned long long)st.timeouts,
		r == -ETIMEDOUT ? " (some left for takeover)" : "");
	return r == 0 ? EX_OK : EX_FAIL;
}

static int cmd_status(myriad_fleet_t *f, const char *q)
{
	int err;
	char *s = myriad_fleet_status_json(f, q, &err);

	if (!s)
		return fail_code(err, "status", q);
	printf("%s\n", s);
	free(s);
	return EX_OK;
}

static int print_result(void *arg, const struct myriad_fleet_result *r)
{
	json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:s%, s:s}", "stream_id",
			      r->stream_id, "id", r->id, "attempt",
			      (int)r->attempt, "status", r->status, "output",
			      (const char *)r->output, r->output_len,
			      "consumer", r->consumer);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(j);
	snprintf(arg, 64, "%s", r->stream_id);
	return 0;
}

static int cmd_results(myriad_fleet_t *f, const char *q, int argc, char **argv)
{
	char after[64];
	long count = optl(argc, argv, "--count", -1);
	int r;

	snprintf(after, sizeof(after), "%s",
		 opt(argc, argv, "--after") ? opt(argc, argv, "--after") : "0");
	do {
		size_t c = count < 0 || count > 1000 ? 1000 : (size_t)count;

		if (!c)
			break;
		r = myriad_fleet_results(f, q, after, c, print_result, after);
		if (r < 0)
			return fail_code(r, "results", q);
		if (count > 0)
			count -= r;
	} while (r > 0);
	return EX_OK;
}

int main(int argc, char **argv)
{
	struct myriad_fleet_opts fo = { .sz = sizeof(fo) };
	struct myriad_rt_opts ro = { .sz = sizeof(ro) };
	const char *cmd, *q;
	myriad_fleet_t *f;
	myriad_rt_t *rt;
	sigset_t sigs;
	int a = 1, r, err;

	if (a + 1 < argc && !strcmp(argv[a], "--url")) {
		url = argv[a + 1];
		a += 2;
	}
	if (argc - a < 2) {
		usage();
		return EX_FAIL;
	}
	cmd = argv[a];
	q = argv[a + 1];
	a += 2;
	if (strcmp(cmd, "submit") && strcmp(cmd, "run") &&
	    strcmp(cmd, "status") && strcmp(cmd, "results")) {
		usage();
		return EX_FAIL;
	}
	/* Signals to sigwait(): blocked before any thread starts. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	ro.workers = (unsigned)optl(argc - a, argv + a, "--workers",
				    strcmp(cmd, "run") ? 1 : 0);
	rt = myriad_rt_create(&ro, &err);
	if (!rt) {
		fprintf(stderr, "myriad-fleet: runtime: %s\n", strerror(-err));
		return EX_FAIL;
	}
	fo.url = url;
	fo.down_wait_ns = strcmp(cmd, "run") ? 5000000000ull : 0;
	f = myriad_fleet_open(rt, &fo, &err);
	if (!f) {
		r = fail_code(err, cmd, NULL);
		myriad_rt_destroy(rt);
		return r;
	}
	if (!strcmp(cmd, "submit"))
		r = cmd_submit(f, q, argc - a, argv + a);
	else if (!strcmp(cmd, "run"))
		r = cmd_run(f, q, argc - a, argv + a, &sigs);
	else if (!strcmp(cmd, "status"))
		r = cmd_status(f, q);
	else
		r = cmd_results(f, q, argc - a, argv + a);
	myriad_fleet_close(f);
	myriad_rt_destroy(rt);
	return r;
}
