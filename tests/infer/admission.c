/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/admission.c: the order in which queued calls are admitted,
 * against a responder (tests/infer/gate.h) that holds answers while its
 * gate is closed and records who sent each request; with a window of one,
 * the order of requests is the order of admission, so the checks count
 * admissions, not time:
 *   priorities: 10 interactive calls queued behind 10,000 batch calls
 *     (times MYRIAD_TEST_SCALE) are the next 10 admitted;
 *   fair shares: a key with 1,000,000 calls queued (scaled) and one with
 *     100, equal weights: while both have calls, each gets within 10% of
 *     the other's admissions; with weight 3 against 1, three times;
 *   the retry budget: against an endpoint that answers 500 to everything,
 *     retries stay within retry_reserve + retry_ratio * first attempts,
 *     the rest end at once with MYRIAD_INFER_ERETRYBUDGET; without the
 *     budget every call makes max_retries + 1 attempts.
 *   admission [--workers N] --server PATH (the server is not used)
 */
#include "gate.h"
#include "llm.h"

/* What a group of calls sends, and how they ended. */
struct spec {
	myriad_infer_t *p;
	const char *msgs; /* its content's first letter marks it */
	int prio;
	const char *key;
	_Atomic int64_t ok, shut, budget, http, other;
};

struct ac_st {
	MYRIAD_CORO_FIELD;
	myriad_infer_call_t call;
	struct spec *s;
};

static int ac_step(myriad_task_t *self, void *arg)
{
	struct ac_st *st = arg;
	struct myriad_infer_request rq;
	int rc;

	MYRIAD_BEGIN(st);
	memset(&rq, 0, sizeof(rq));
	rq.sz = sizeof(rq);
	rq.messages_json = st->s->msgs;
	rq.priority = st->s->prio;
	rq.fairness_key = st->s->key;
	MYRIAD_IO(st, rc,
		  myriad_infer_chat_req(self, st->s->p, &st->call, &rq));
	if (rc == 0)
		atomic_fetch_add(&st->s->ok, 1);
	else if (rc == -ESHUTDOWN)
		atomic_fetch_add(&st->s->shut, 1);
	else if (rc == MYRIAD_INFER_ERETRYBUDGET) {
		const struct myriad_infer_result *r =
			myriad_infer_result(&st->call);

		CHECK(r && strstr(r->error, "retry budget"),
		      "ERETRYBUDGET with the error '%s'", r ? r->error : "");
		atomic_fetch_add(&st->s->budget, 1);
	} else if (rc == MYRIAD_INFER_EHTTP)
		atomic_fetch_add(&st->s->http, 1);
	else
		atomic_fetch_add(&st->s->other, 1);
	MYRIAD_END(st);
}

/* A root task that starts n calls of 'spec' and waits for them. */
struct root_st {
	MYRIAD_CORO_FIELD;
	struct spec *s;
	int64_t n;
};

static int root_step(myriad_task_t *self, void *arg)
{
	struct root_st *st = arg;
	struct ac_st c;
	int64_t i;
	int err;

	MYRIAD_BEGIN(st);
	for (i = 0; i < st->n; i++) {
		memset(&c, 0, sizeof(c));
		c.s = st->s;
		myriad_task_spawn(self, ac_step, &c, sizeof(c), 0, &err);
		REQUIRE(err == 0, "spawn: %s", strerror(-err));
	}
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static myriad_handle_t *start(struct spec *s, int64_t n)
{
	struct root_st st = { 0, s, n };
	myriad_handle_t *h = NULL;
	int r = myriad_rt_spawn(rt, root_step, &st, sizeof(st), &h);

	REQUIRE(r == 0, "myriad_rt_spawn: %s", strerror(-r));
	return h;
}

static struct myriad_infer_stats stats(myriad_infer_t *p)
{
	struct myriad_infer_stats st;

	memset(&st, 0, sizeof(st));
	st.sz = sizeof(st);
	CHECK_EQ(myriad_infer_stats(p, &st), 0);
	return st;
}

struct until {
	myriad_infer_t *p;
	struct gate *g;
	uint64_t queued;
	long requests;
	const char *marks; /* count of these markers reaches 'requests' */
};

static int until_queued(void *arg)
{
	struct until *u = arg;

	return stats(u->p).queued >= u->queued;
}

static int until_requests(void *arg)
{
	struct until *u = arg;

	return atomic_load(&u->g->n) >= u->requests;
}

static long count(const struct gate *g, char m, long from, long to)
{
	long i, n = 0;

	for (i = from; i < to; i++)
		n += g->order[i] == m;
	return n;
}

static myriad_infer_t *gate_pool(struct gate *g, unsigned window,
				 const struct myriad_infer_opts *o)
{
	struct myriad_infer_endpoint e;
	myriad_infer_t *p = pool_new(o);

	memset(&e, 0, sizeof(e));
	e.sz = sizeof(e);
	e.base_url = g->url;
	e.model = "m";
	e.window = window;
	REQUIRE(myriad_infer_add(p, &e) == 0, "myriad_infer_add");
	return p;
}

#define MSG(x) "[{\"role\":\"user\",\"content\":\"" x "\"}]"

/* One call of 'blk' in the window; the gate holds it while the others
 * queue. */
static myriad_handle_t *block(struct gate *g, struct spec *blk)
{
	struct until u = { blk->p, g, 0, 1, NULL };
	myriad_handle_t *h = start(blk, 1);

	REQUIRE(t_wait_until(until_requests, &u, 30),
		"the blocking call never reached the responder");
	return h;
}

/* ---- priorities ---- */

static void test_priorities(void)
{
	int64_t nb = t_scaled_min(10000, 1000), ni = 10;
	struct gate g;
	struct spec blk = { 0 }, bat = { 0 }, inter = { 0 };
	myriad_handle_t *hb, *hx, *hi;
	myriad_infer_t *p;
	struct until u;
	long k;

	t_phase("interactive before 10,000 batch calls");
	gate_start(&g, 0, 0);
	p = gate_pool(&g, 1, NULL);
	blk = (struct spec){ .p = p, .msgs = MSG("Z"), .key = "" };
	bat = (struct spec){
		.p = p, .msgs = MSG("B"), .prio = MYRIAD_INFER_BATCH, .key = ""
	};
	inter = (struct spec){ .p = p, .msgs = MSG("I"), .key = "" };
	hx = block(&g, &blk);
	hb = start(&bat, nb);
	u = (struct until){ p, &g, (uint64_t)nb, 0, NULL };
	REQUIRE(t_wait_until(until_queued, &u, 60), "batch calls not queued");
	hi = start(&inter, ni);
	u.queued = (uint64_t)(nb + ni);
	REQUIRE(t_wait_until(until_queued, &u, 60), "calls not queued");
	gate_set(&g, 1);
	u.requests = 1 + ni + 5;
	REQUIRE(t_wait_until(until_requests, &u, 60), "no requests");
	k = count(&g, 'I', 1, 1 + ni);
	CHECK(k == ni,
	      "of the first %" PRId64 " admissions after the blocker, %ld "
	      "interactive (order '%.16s')",
	      ni, k, g.order);
	pool_done(p);
	jobs_join(hx, "blocker");
	jobs_join(hi, "interactive");
	jobs_join(hb, "batch");
	CHECK_EQ(atomic_load(&inter.ok), ni);
	CHECK_EQ(atomic_load(&bat.ok) + atomic_load(&bat.shut), nb);
	gate_stop(&g);
}

/* ---- fair shares ---- */

struct until_b {
	struct gate *g;
	long want;
};

static int until_b_done(void *arg)
{
	struct until_b *u = arg;
	long n = atomic_load(&u->g->n);

	return count(u->g, 'B', 0, n < GATE_ORDER_MAX ? n : GATE_ORDER_MAX) >=
	       u->want;
}

/*
 * 'na' calls of key "a" (weight 1) and 100 of key "b" (weight 'wb'), all
 * queued before the first is admitted: up to b's last admission, a got
 * 'got' admissions against b's 100.
 */
/* Every one of b's 100 calls has ended at the client (its answer read). */
static int until_b_ended(void *arg)
{
	struct spec *b = arg;

	return atomic_load(&b->ok) + atomic_load(&b->shut) +
		       atomic_load(&b->budget) + atomic_load(&b->http) +
		       atomic_load(&b->other) >=
	       100;
}

static long shares(int64_t na, unsigned wb, const char *what)
{
	const int64_t nb = 100;
	struct gate g;
	struct spec blk, a, b;
	myriad_handle_t *hx, *ha, *hb;
	myriad_infer_t *p;
	struct until u;
	struct until_b ub;
	long i, last = 0, got;

	t_phase(what);
	gate_start(&g, 0, 0);
	p = gate_pool(&g, 1, NULL);
	if (wb != 1)
		CHECK_EQ(myriad_infer_set_weight(p, "b", wb), 0);
	blk = (struct spec){ .p = p, .msgs = MSG("Z"), .key = "" };
	a = (struct spec){ .p = p, .msgs = MSG("A"), .key = "a" };
	b = (struct spec){ .p = p, .msgs = MSG("B"), .key = "b" };
	hx = block(&g, &blk);
	ha = start(&a, na);
	u = (struct until){ p, &g, (uint64_t)na, 0, NULL };
	REQUIRE(t_wait_until(until_queued, &u, 120), "a's calls not queued");
	hb = start(&b, nb);
	u.queued = (uint64_t)(na + nb);
	REQUIRE(t_wait_until(until_queued, &u, 60), "b's calls not queued");
	gate_set(&g, 1);
	ub = (struct until_b){ &g, nb };
	REQUIRE(t_wait_until(until_b_done, &ub, 120), "b's calls not admitted");
	for (i = 1; i < atomic_load(&g.n); i++)
		if (g.order[i] == 'B')
			last = i;
	got = count(&g, 'A', 1, last + 1);
	printf("%s: %s: up to b's last admission (%ld), a %ld, b %" PRId64 "\n",
	       t_name, what, last, got, nb);
	/* The server answered b's last call; the client may not have read
	 * it yet: a pool destroyed now would end it with -ESHUTDOWN. */
	REQUIRE(t_wait_until(until_b_ended, &b, 120), "b's calls not ended");
	pool_done(p);
	jobs_join(hx, "blocker");
	jobs_join(hb, "b");
	jobs_join(ha, "a");
	CHECK_EQ(atomic_load(&b.ok), nb);
	CHECK_EQ(atomic_load(&a.ok) + atomic_load(&a.shut), na);
	CHECK_EQ(atomic_load(&a.other) + atomic_load(&b.other), 0);
	gate_stop(&g);
	return got;
}

static void test_shares(void)
{
	long got = shares(t_scaled_min(1000000, 10000), 1,
			  "a 1,000,000-call key and a 100-call key");
	/* The header's bound for weight 3: |a - b / 3| <= (Q * 3 + cost) /
	 * cost calls, Q = 4096 tokens, cost = 1024 + 9 tokens. */
	double bound = (4096.0 * 3 + 1033) / 1033;

	CHECK(got >= 90 && got <= 110,
	      "equal weights: a got %ld admissions against b's 100", got);
	got = shares(t_scaled_min(10000, 2000), 3, "weights 1 and 3");
	CHECK(got >= 100.0 / 3 - bound && got <= 100.0 / 3 + bound,
	      "weights 1 and 3: a got %ld admissions against b's 100", got);
}

/* ---- the retry budget ---- */

static void test_retry_budget(void)
{
	const int64_t n = 200, n2 = 20;
	struct myriad_infer_opts o;
	struct myriad_infer_stats st;
	struct gate g;
	struct spec s;
	myriad_infer_t *p;

	t_phase("retry budget against a failing endpoint");
	gate_start(&g, 1, 1);
	opts_init(&o);
	o.max_retries = 4;
	o.backoff_base_ns = 1000000;
	o.backoff_max_ns = 2000000;
	o.retry_ratio = 0.1;
	o.retry_reserve = 1;
	o.retry_window_ns = 600 * 1000000000ull; /* the whole test */
	p = gate_pool(&g, 16, &o);
	s = (struct spec){ .p = p, .msgs = MSG("F"), .key = "" };
	jobs_join(start(&s, n), "failing calls");
	st = stats(p);
	printf("%s: %" PRId64 " calls: %" PRIu64 " retries allowed, %" PRIu64
	       " refused, %ld requests\n",
	       t_name, n, st.retries_allowed, st.retries_refused,
	       atomic_load(&g.n));
	CHECK(st.retries_allowed <= 1 + 0.1 * n,
	      "%" PRIu64 " retries for %" PRId64 " first attempts",
	      st.retries_allowed, n);
	CHECK_EQ(atomic_load(&g.n), n + (long)st.retries_allowed);
	CHECK_EQ(atomic_load(&s.budget), (int64_t)st.retries_refused);
	CHECK_EQ(atomic_load(&s.budget) + atomic_load(&s.http), n);
	CHECK(atomic_load(&s.budget) >= n - (int64_t)st.retries_allowed / 4,
	      "%" PRId64 " calls ended by the budget", atomic_load(&s.budget));
	pool_done(p);

	/* Without a budget, every call retries max_retries times. */
	atomic_store(&g.n, 0);
	o.retry_ratio = -1;
	p = gate_pool(&g, 16, &o);
	s = (struct spec){ .p = p, .msgs = MSG("F"), .key = "" };
	jobs_join(start(&s, n2), "failing calls, no budget");
	CHECK_EQ(atomic_load(&s.http), n2);
	CHECK_EQ(atomic_load(&g.n), n2 * 5);
	pool_done(p);
	gate_stop(&g);
}

int main(int argc, char **argv)
{
	unsigned w;

	t_name = "infer/admission";
	w = t_parse_args(argc, argv);
	t_watchdog(300);
	rt = t_rt_new(w);
	test_priorities();
	test_shares();
	test_retry_budget();
	t_rt_done(rt);
	return t_result();
}
