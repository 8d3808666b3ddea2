/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/budget.c: an endpoint's token and request budgets against
 * the scripted responder (tests/infer/script.h), which sends exactly the
 * x-ratelimit-* headers and usage each test wants:
 *   a configured token budget: the estimate (messages bytes / 4 +
 *     max_tokens, or the endpoint's default_max_tokens, or the caller's
 *     own) reserved at admission, what was not used given back, an
 *     excess charged (the counters and the next call's budget left);
 *   budgets learned from the headers of an answer (limits, remaining),
 *     malformed ones ignored;
 *   a 429 without Retry-After: the retry waits for the reset of the spent
 *     budget as the 429's headers give it (the value used, the order of
 *     the requests), and without headers on the 429, the reset learned
 *     before.
 *   budget [--workers N] --server PATH (the server is not used)
 */
#include "llm.h"
#include "script.h"

#define MSGS "[{\"role\":\"user\",\"content\":\"count my tokens, please\"}]"

struct bcall {
	myriad_infer_t *p;
	const char *extra;
	uint64_t estimate;
	int rc;
	unsigned attempts;
	int64_t tokens_left, requests_left, total;
	double t0, t1;
};

struct bst {
	MYRIAD_CORO_FIELD;
	myriad_infer_call_t call;
	struct bcall *b;
};

static int b_step(myriad_task_t *self, void *arg)
{
	struct bst *st = arg;
	struct myriad_infer_request rq;
	const struct myriad_infer_result *r;
	int rc;

	MYRIAD_BEGIN(st);
	st->b->t0 = t_now();
	memset(&rq, 0, sizeof(rq));
	rq.sz = sizeof(rq);
	rq.messages_json = MSGS;
	rq.extra_json = st->b->extra;
	rq.token_estimate = st->b->estimate;
	MYRIAD_IO(st, rc,
		  myriad_infer_chat_req(self, st->b->p, &st->call, &rq));
	st->b->t1 = t_now();
	st->b->rc = rc;
	r = myriad_infer_result(&st->call);
	if (r) {
		st->b->attempts = r->attempts;
		st->b->tokens_left = r->budget_tokens_left;
		st->b->requests_left = r->budget_requests_left;
		st->b->total = r->total_tokens;
		if (rc)
			fprintf(stderr, "%s: call: %d: %s\n", t_name, rc,
				r->error);
	}
	MYRIAD_END(st);
}

static void run(struct bcall *b, myriad_infer_t *p, const char *extra,
		uint64_t estimate, const char *what)
{
	struct bst st;

	memset(b, 0, sizeof(*b));
	b->p = p;
	b->extra = extra;
	b->estimate = estimate;
	memset(&st, 0, sizeof(st));
	st.b = b;
	t_run(rt, b_step, &st, sizeof(st), NULL, what);
	CHECK(b->rc == 0, "%s: rc %d", what, b->rc);
}

static myriad_infer_t *spool(struct script *s, uint64_t rpm, uint64_t tpm)
{
	struct myriad_infer_endpoint e;
	myriad_infer_t *p = pool_new(NULL);

	memset(&e, 0, sizeof(e));
	e.sz = sizeof(e);
	e.base_url = s->url;
	e.model = "m";
	e.window = 1;
	e.rpm = rpm;
	e.tpm = tpm;
	e.default_max_tokens = 100;
	REQUIRE(myriad_infer_add(p, &e) == 0, "myriad_infer_add");
	return p;
}

static struct myriad_infer_stats stats(myriad_infer_t *p)
{
	struct myriad_infer_stats st;

	memset(&st, 0, sizeof(st));
	st.sz = sizeof(st);
	CHECK_EQ(myriad_infer_stats(p, &st), 0);
	return st;
}

static void answer(struct script *s, const char *headers, int total)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":1,"
		 "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":"
		 "{\"role\":\"assistant\",\"content\":\"\\\"total_tokens\\\": "
		 "999\"},\"finish_reason\":\"stop\"}],\"usage\":"
		 "{\"prompt_tokens\":1,\"completion_tokens\":%d,"
		 "\"total_tokens\":%d}}",
		 total - 1, total);
	script_add(s, "HTTP/1.1 200 OK", headers, "application/json", body, 0,
		   0);
}

/* A configured budget: reservations and their reconciliation. */
static void test_reserve(void)
{
	const int64_t prompt = (int64_t)strlen(MSGS) / 4;
	struct myriad_infer_stats st;
	struct script s;
	struct bcall b;
	myriad_infer_t *p;

	t_phase("reservation and reconciliation");
	script_start(&s);
	answer(&s, "", 7);
	answer(&s, "", 500);
	answer(&s, "", 3);
	p = spool(&s, 0, 100000);
	/* The estimate: bytes / 4 + max_tokens; a full bucket before. */
	run(&b, p, "{\"max_tokens\":50}", 0, "call 1");
	CHECK_EQ(b.tokens_left, 100000 - (prompt + 50));
	CHECK_EQ(b.requests_left, -1);
	CHECK_EQ(b.total, 7);
	st = stats(p);
	CHECK_EQ(st.tokens_reserved, (uint64_t)(prompt + 50));
	CHECK_EQ(st.tokens_used, 7u);
	CHECK_EQ(st.tokens_returned, (uint64_t)(prompt + 50 - 7));
	CHECK_EQ(st.tokens_excess, 0u);
	/* Given back: the next call finds 100000 - 7 (refilled meanwhile,
	 * never past the limit), less its own estimate (default_max_tokens,
	 * no max_tokens in the request). */
	run(&b, p, NULL, 0, "call 2");
	CHECK(b.tokens_left >= 100000 - 7 - (prompt + 100) &&
		      b.tokens_left <= 100000 - (prompt + 100),
	      "call 2: %" PRId64 " tokens left", b.tokens_left);
	st = stats(p);
	CHECK_EQ(st.tokens_used, 507u);
	CHECK_EQ(st.tokens_excess, (uint64_t)(500 - (prompt + 100)));
	/* The caller's own estimate, max_completion_tokens ignored then. */
	run(&b, p, "{\"max_completion_tokens\":9000}", 40, "call 3");
	st = stats(p);
	CHECK_EQ(st.tokens_reserved,
		 (uint64_t)(prompt + 50 + prompt + 100 + 40));
	CHECK_EQ(st.tokens_used, 510u);
	pool_done(p);
	script_stop(&s);
}

/* Budgets learned from an answer's headers; malformed ones ignored. */
static void test_learn(void)
{
	const int64_t est = (int64_t)strlen(MSGS) / 4 + 100;
	struct script s;
	struct bcall b1, b2;
	myriad_infer_t *p;
	double t0;

	t_phase("budgets learned from x-ratelimit-* headers");
	script_start(&s);
	answer(&s,
	       "x-ratelimit-limit-requests: 100\r\n"
	       "x-ratelimit-limit-tokens: 5000\r\n"
	       "x-ratelimit-remaining-requests: 99\r\n"
	       "x-ratelimit-remaining-tokens: 4000\r\n"
	       "x-ratelimit-reset-requests: 600ms\r\n"
	       "x-ratelimit-reset-tokens: 12s\r\n",
	       2);
	answer(&s, "", 2);
	answer(&s,
	       "x-ratelimit-limit-tokens: 12abc\r\n"
	       "x-ratelimit-limit-requests: -5\r\n"
	       "x-ratelimit-remaining-tokens: many\r\n"
	       "x-ratelimit-reset-tokens: soon\r\n",
	       2);
	answer(&s, "", 2);
	p = spool(&s, 0, 0);
	t0 = t_now();
	run(&b1, p, NULL, 0, "learn 1");
	CHECK_EQ(b1.tokens_left, -1); /* nothing known before */
	CHECK_EQ(b1.requests_left, -1);
	run(&b2, p, NULL, 0, "learn 2");
	/* 4000 left by the server's word, refilled at 5000 a minute since,
	 * less this call's estimate; 99 requests less this one. */
	CHECK(b2.tokens_left >= 4000 - est &&
		      b2.tokens_left <=
			      4000 - est + 5000 * (t_now() - t0) / 60 + 1,
	      "learned: %" PRId64 " tokens left", b2.tokens_left);
	CHECK(b2.requests_left >= 98 && b2.requests_left <= 99,
	      "learned: %" PRId64 " requests left", b2.requests_left);
	pool_done(p);
	/* A fresh pool: malformed headers teach nothing. */
	p = spool(&s, 0, 0);
	run(&b1, p, NULL, 0, "malformed 1");
	run(&b2, p, NULL, 0, "malformed 2");
	CHECK_EQ(b2.tokens_left, -1);
	CHECK_EQ(b2.requests_left, -1);
	pool_done(p);
	script_stop(&s);
}

/* A 429 without Retry-After waits for the spent budget's reset. */
static void test_429_reset(void)
{
	struct myriad_infer_stats st;
	struct script s;
	struct bcall b;
	myriad_infer_t *p;

	t_phase("429 without Retry-After");
	script_start(&s);
	/* Requests spent (reset 150 ms); tokens not (reset 5 s): 150 ms. */
	script_add(&s, "HTTP/1.1 429 Too Many Requests",
		   "x-ratelimit-remaining-requests: 0\r\n"
		   "x-ratelimit-reset-requests: 150ms\r\n"
		   "x-ratelimit-remaining-tokens: 100\r\n"
		   "x-ratelimit-reset-tokens: 5s\r\n",
		   "application/json",
		   "{\"error\":{\"message\":\"slow down\",\"type\":"
		   "\"requests\",\"code\":\"rate_limit_exceeded\"}}",
		   0, 0);
	answer(&s, "", 2);
	/* Learned on a 200, then a 429 with no header at all: the learned
	 * reset of the budget the 200 said was spent (tokens, 0.2 s). */
	answer(&s,
	       "x-ratelimit-remaining-requests: 10\r\n"
	       "x-ratelimit-reset-requests: 1m0.5s\r\n"
	       "x-ratelimit-remaining-tokens: 0\r\n"
	       "x-ratelimit-reset-tokens: 0.2s\r\n",
	       2);
	script_add(&s, "HTTP/1.1 429 Too Many Requests", "", "application/json",
		   "{\"error\":{\"message\":\"x\"}}", 0, 0);
	answer(&s, "", 2);
	p = spool(&s, 0, 0);
	run(&b, p, NULL, 0, "429 then 200");
	st = stats(p);
	CHECK_EQ(b.attempts, 2u);
	CHECK_EQ(st.http_429, 1u);
	CHECK_EQ(st.last_reset_wait_ns, 150000000u);
	/* Never early (the cooldown is a lower bound). */
	CHECK(b.t1 - b.t0 >= 0.150, "retried after %.3f s", b.t1 - b.t0);
	CHECK(script_req(&s, 1) != NULL && script_req(&s, 2) == NULL,
	      "two requests, the retry after the 429");
	run(&b, p, NULL, 0, "learn");
	run(&b, p, NULL, 0, "429 with no header");
	st = stats(p);
	CHECK_EQ(b.attempts, 2u);
	CHECK_EQ(st.http_429, 2u);
	CHECK(st.last_reset_wait_ns > 0 && st.last_reset_wait_ns <= 200000000u,
	      "learned reset: %" PRIu64 " ns", st.last_reset_wait_ns);
	CHECK(script_req(&s, 4) != NULL, "the retry came");
	pool_done(p);
	script_stop(&s);
}

int main(int argc, char **argv)
{
	unsigned w;

	t_name = "infer/budget";
	w = t_parse_args(argc, argv);
	t_watchdog(120);
	rt = t_rt_new(w);
	test_reserve();
	test_learn();
	test_429_reset();
	t_rt_done(rt);
	return t_result();
}
