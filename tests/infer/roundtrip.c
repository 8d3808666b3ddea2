/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/roundtrip.c: myriad_infer_* from real tasks against the mock
 * server, checked field by field against what the server computes: a chat
 * (content, usage, timings, status, attempts, endpoint, error), a chat
 * with extra members (max_tokens cuts the reply), an embedding (dims and
 * values), 64 concurrent chats whose results must not cross, a 400 that
 * is not retried; bad arguments (-EINVAL) from the task and from outside;
 * a pool with no endpoint (MYRIAD_INFER_ENOENDPOINT); api_key_env naming
 * an unset variable (-ENOKEY) and a set one.
 *   roundtrip [--workers N] --server PATH
 */
#include "llm.h"

#define LLM_MS 40

static struct srv s;

/* The server's PRNG and hash (servers/srv.h, llm-server.c). */
static uint64_t srv_rand(uint64_t *st)
{
	uint64_t z = (*st += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3ull;
	return h;
}

/* The embedding the server sends for the JSON text 'in' (quotes included),
 * parsed back from its "%.6f" as the client does. */
static void emb_expect(const char *in, double out[8])
{
	uint64_t h = fnv1a(in, strlen(in));
	char b[64];
	int j;

	for (j = 0; j < 8; j++) {
		uint64_t st = h + (uint64_t)j;
		double v = (double)(srv_rand(&st) >> 11) *
				   (1.0 / 9007199254740992.0) * 2 -
			   1;

		snprintf(b, sizeof(b), "%.6f", v);
		out[j] = strtod(b, NULL);
	}
}

/* What the server counts as prompt tokens of a chat: the compact JSON of
 * the messages array, a token per 4 bytes, plus one per message. */
static int64_t chat_prompt_tokens(const char *msgs, int nmsg)
{
	return (int64_t)strlen(msgs) / 4 + nmsg;
}

static void check_ok_chat(const struct job *j, int64_t seq, int nmsg,
			  int64_t words, const char *text)
{
	char want[128];
	int64_t pt = chat_prompt_tokens(j->messages, nmsg);

	CHECK_JOB_RC(j, 0);
	if (text)
		snprintf(want, sizeof(want), "%s", text);
	else
		snprintf(want, sizeof(want), "reply %" PRId64 " to %d %s", seq,
			 nmsg, nmsg == 1 ? "message" : "messages");
	CHECK(j->has_result, "no result after success");
	CHECK(!strcmp(j->content, want), "content '%s', expected '%s'",
	      j->content, want);
	CHECK_EQ(j->content_len, strlen(want));
	CHECK_EQ(j->http_status, 200);
	CHECK_EQ(j->attempts, 1);
	CHECK_EQ(j->endpoint, 0);
	CHECK_EQ(j->prompt_tokens, pt);
	CHECK_EQ(j->completion_tokens, words);
	CHECK_EQ(j->total_tokens, pt + words);
	CHECK_EQ(j->dims, 0);
	CHECK(!j->error_null && j->error[0] == 0,
	      "error on success: '%s' (NULL: %d)", j->error, j->error_null);
}

static void test_chat(myriad_infer_t *p)
{
	static const char msgs[] = "[{\"role\":\"user\",\"content\":\"hello, "
				   "server\"}]";
	static const char msgs2[] = "[{\"role\":\"system\",\"content\":\"be "
				    "brief\"},{\"role\":\"user\","
				    "\"content\":\"hi\"}]";
	struct job j;
	char cut[64];
	int64_t seq0 = srv_stat(&s, "requests");

	run_chat(&j, p, msgs, NULL, "chat round trip");
	check_ok_chat(&j, seq0 + 1, 1, 5, NULL);
	/* llm_ms, a quarter of it prompt, the rest predicted, no queue */
	CHECK(j.queue_ms == 0.0, "queue_ms %f", j.queue_ms);
	CHECK(j.prompt_ms == LLM_MS / 4.0, "prompt_ms %f", j.prompt_ms);
	CHECK(j.predicted_ms == LLM_MS * 3 / 4.0, "predicted_ms %f",
	      j.predicted_ms);
	CHECK(j.t1 - j.t0 >= LLM_MS / 1000.0 - 0.002,
	      "answered after %.3f s, the server takes %d ms", j.t1 - j.t0,
	      LLM_MS);

	/* extra members go into the request: max_tokens 2 cuts the reply */
	run_chat(&j, p, msgs2, "{\"max_tokens\":2,\"temperature\":0.5}",
		 "chat with max_tokens");
	snprintf(cut, sizeof(cut), "reply %" PRId64, seq0 + 2);
	check_ok_chat(&j, seq0 + 2, 2, 2, cut);
	CHECK_EQ(srv_stat(&s, "requests"), seq0 + 2);
	CHECK_EQ(srv_stat(&s, "completed"), seq0 + 2);
}

static void test_embed(myriad_infer_t *p)
{
	struct job j;
	double want[8];
	size_t i;

	job_embed(&j, p, "embed me, please");
	run_jobs(&j, 1, "embedding round trip");
	CHECK_JOB_RC(&j, 0);
	emb_expect("\"embed me, please\"", want);
	CHECK_EQ(j.dims, 8);
	for (i = 0; i < 8 && i < j.dims; i++)
		CHECK(j.emb[i] == want[i],
		      "embedding[%zu] = %.9f, expected %.6f", i, j.emb[i],
		      want[i]);
	CHECK_EQ(j.http_status, 200);
	CHECK_EQ(j.attempts, 1);
	CHECK_EQ(j.endpoint, 0);
	/* the input's JSON text, a token per 4 bytes, plus one */
	CHECK_EQ(j.prompt_tokens,
		 (int64_t)strlen("\"embed me, please\"") / 4 + 1);
	CHECK_EQ(j.total_tokens, j.prompt_tokens);
	CHECK_EQ(j.completion_tokens, -1);
	CHECK(j.queue_ms == -1 && j.prompt_ms == -1 && j.predicted_ms == -1,
	      "timings of an embedding: %f %f %f", j.queue_ms, j.prompt_ms,
	      j.predicted_ms);
	CHECK_EQ(j.content_len, 0);
	CHECK(!j.error_null && j.error[0] == 0, "error '%s'", j.error);
}

/* 64 chats at once, job k with k+1 messages: each reply names its own
 * message count, so results that crossed would show. */
#define NCONC 64
static char conc_msgs[NCONC][NCONC * 40];

static void test_concurrent(myriad_infer_t *p)
{
	static struct job jobs[NCONC];
	static char seen[4 * NCONC + 64];
	int64_t seq0 = srv_stat(&s, "requests");
	int k, m;

	for (k = 0; k < NCONC; k++) {
		char *b = conc_msgs[k];

		b += sprintf(b, "[");
		for (m = 0; m <= k; m++)
			b += sprintf(b,
				     "%s{\"role\":\"user\",\"content\":\"%d\"}",
				     m ? "," : "", m);
		sprintf(b, "]");
		job_chat(&jobs[k], p, conc_msgs[k], NULL);
	}
	memset(seen, 0, sizeof(seen));
	run_jobs(jobs, NCONC, "64 concurrent chats");
	for (k = 0; k < NCONC; k++) {
		const struct job *j = &jobs[k];
		unsigned long long seq = 0;
		int n = -1;

		CHECK_JOB_RC(j, 0);
		if (sscanf(j->content, "reply %llu to %d", &seq, &n) != 2) {
			t_failf(__FILE__, __LINE__, "job %d: content '%s'", k,
				j->content);
			continue;
		}
		CHECK(n == k + 1,
		      "job %d (%d messages) got the reply to %d: '%s'", k,
		      k + 1, n, j->content);
		CHECK(seq > (unsigned long long)seq0 &&
			      seq <= (unsigned long long)seq0 + NCONC,
		      "job %d: reply %llu, requests %" PRId64 "..", k, seq,
		      seq0);
		if (seq > (unsigned long long)seq0 &&
		    seq <= (unsigned long long)seq0 + NCONC) {
			CHECK(!seen[seq - (unsigned long long)seq0],
			      "reply %llu delivered twice", seq);
			seen[seq - (unsigned long long)seq0] = 1;
		}
		CHECK_EQ(j->prompt_tokens,
			 chat_prompt_tokens(j->messages, k + 1));
		CHECK_EQ(j->completion_tokens, 5);
	}
}

/* The server rejects an empty message list with 400: not retried. */
static void test_http_400(myriad_infer_t *p)
{
	struct job j;
	int64_t r0 = srv_stat(&s, "requests");

	run_chat(&j, p, "[]", NULL, "400");
	CHECK_JOB_RC(&j, MYRIAD_INFER_EHTTP);
	CHECK_EQ(j.http_status, 400);
	CHECK_EQ(j.attempts, 1);
	CHECK_EQ(j.endpoint, 0);
	CHECK_EQ(srv_stat(&s, "requests"), r0 + 1);
	CHECK_EQ(srv_stat(&s, "bad_requests") >= 1, 1);
}

/* ---- bad arguments, from a task ---- */

struct bad_st {
	MYRIAD_CORO_FIELD;
	myriad_infer_call_t call, other;
	myriad_infer_t *p;
	struct job *j;
};

static int bad_step(myriad_task_t *self, void *arg)
{
	struct bad_st *st = arg;
	myriad_infer_t *p = st->p;
	int rc, err = 0;
	char buf[8];
	myriad_infer_t *q;

	MYRIAD_BEGIN(st);
	/* Refused at once: nothing is queued, the record stays idle. */
	CHECK_ERR(myriad_infer_chat(self, p, &st->call, "not json", NULL),
		  -EINVAL);
	CHECK_ERR(myriad_infer_chat(self, p, &st->call, "{\"a\":1}", NULL),
		  -EINVAL);
	CHECK_ERR(myriad_infer_chat(self, p, &st->call, "[", NULL), -EINVAL);
	CHECK_ERR(myriad_infer_chat(self, p, &st->call, NULL, NULL), -EINVAL);
	CHECK_ERR(myriad_infer_chat(self, p, &st->call, "[]", "[1]"), -EINVAL);
	CHECK_ERR(myriad_infer_chat(self, p, &st->call, "[]", "{oops"),
		  -EINVAL);
	CHECK_ERR(myriad_infer_chat(self, NULL, &st->call,
				    "[{\"role\":\"user\",\"content\":\"x\"}]",
				    NULL),
		  -EINVAL);
	CHECK_ERR(myriad_infer_chat(self, p, NULL, "[]", NULL), -EINVAL);
	CHECK_ERR(myriad_infer_chat(NULL, p, &st->call, "[]", NULL), -EINVAL);
	CHECK_ERR(myriad_infer_chat_stream(self, p, &st->call, "{}", NULL),
		  -EINVAL);
	CHECK_ERR(myriad_infer_embed(self, p, &st->call, NULL), -EINVAL);
	CHECK_ERR(myriad_infer_embed(self, NULL, &st->call, "x"), -EINVAL);
	CHECK_ERR(myriad_infer_embed(self, p, NULL, "x"), -EINVAL);
	CHECK_ERR(myriad_infer_embed(NULL, p, &st->call, "x"), -EINVAL);
	CHECK(myriad_infer_result(&st->call) == NULL,
	      "a result on a record that never ran");
	CHECK(myriad_infer_result(NULL) == NULL, "a result for NULL");
	CHECK_ERR(myriad_infer_release(self, NULL), -EINVAL);
	CHECK_ERR(myriad_infer_release(NULL, &st->call), -EINVAL);
	CHECK_ERR(myriad_infer_stream_read(self, &st->call, buf, sizeof(buf)),
		  -EINVAL);
	/* From a worker: create would block the runtime, destroy deadlock. */
	q = myriad_infer_create(myriad_current_rt(), NULL, &err);
	CHECK(q == NULL && err < 0,
	      "myriad_infer_create from a worker: %p, err %d", (void *)q, err);
	CHECK_ERR(myriad_infer_destroy(p), -EDEADLK);

	/* The same record then makes a good call. */
	MYRIAD_IO(st, rc,
		  myriad_infer_chat(self, p, &st->call,
				    "[{\"role\":\"user\",\"content\":\"x\"}]",
				    NULL));
	job_take(st->j, rc, myriad_infer_result(&st->call));
	/*
	 * A deadline for the next call would overwrite the result the record
	 * keeps: refused, and the result is still there.
	 */
	CHECK_ERR(
		myriad_io_deadline(&st->call, myriad_now_ns() + 60000000000ull),
		-EBUSY);
	CHECK(myriad_infer_result(&st->call) != NULL,
	      "the result after a refused deadline");
	/* Not a stream: stream_read refuses it. */
	CHECK_ERR(myriad_infer_stream_read(self, &st->call, buf, sizeof(buf)),
		  -EINVAL);
	/* While in flight, a call of another kind on the record is refused. */
	rc = myriad_infer_chat(self, p, &st->other,
			       "[{\"role\":\"user\",\"content\":\"y\"}]", NULL);
	CHECK_ERR(rc, -EAGAIN);
	CHECK_ERR(myriad_io_recv(self, &st->other, 0, buf, sizeof(buf), 0),
		  -EINVAL);
	CHECK(myriad_infer_result(&st->other) == NULL,
	      "a result while in flight");
	CHECK_ERR(myriad_infer_release(self, &st->other), -EBUSY);
	MYRIAD_IO(st, rc, myriad_infer_chat(self, p, &st->other, NULL, NULL));
	CHECK_ERR(rc, 0);
	/* Released, the record takes a deadline, and the call runs with it. */
	CHECK_ERR(myriad_infer_release(self, &st->call), 0);
	CHECK_ERR(
		myriad_io_deadline(&st->call, myriad_now_ns() + 60000000000ull),
		0);
	MYRIAD_IO(st, rc,
		  myriad_infer_chat(self, p, &st->call,
				    "[{\"role\":\"user\",\"content\":\"z\"}]",
				    NULL));
	CHECK_ERR(rc, 0);
	CHECK(myriad_infer_result(&st->call) != NULL,
	      "a result of the call with a deadline");
	MYRIAD_END(st);
}

static void test_bad_args(myriad_infer_t *p)
{
	struct myriad_infer_endpoint e;
	struct myriad_infer_opts o;
	struct bad_st st;
	struct job j;
	int err = 0;

	/* Outside the runtime. */
	CHECK(myriad_infer_create(NULL, NULL, &err) == NULL,
	      "create with no runtime");
	CHECK_ERR(err, -EINVAL);
	opts_init(&o);
	o.sz = 2;
	err = 0;
	CHECK(myriad_infer_create(rt, &o, &err) == NULL, "create with sz 2");
	CHECK_ERR(err, -EINVAL);
	CHECK_ERR(myriad_infer_destroy(NULL), -EINVAL);
	memset(&e, 0, sizeof(e));
	e.sz = sizeof(e);
	e.base_url = s.url;
	e.model = "m";
	CHECK_ERR(myriad_infer_add(NULL, &e), -EINVAL);
	CHECK_ERR(myriad_infer_add(p, NULL), -EINVAL);
	e.base_url = "ftp://127.0.0.1:1";
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.base_url = NULL;
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.base_url = s.url;
	e.model = NULL;
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.model = "m";
	e.window = 65536;
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.window = 1;
	e.sz = sizeof(size_t);
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	/* The calls want the running task. */
	CHECK_ERR(myriad_infer_chat(NULL, p, NULL, "[]", NULL), -EINVAL);
	CHECK(myriad_infer_result(NULL) == NULL, "result(NULL)");

	memset(&st, 0, sizeof(st));
	memset(&j, 0, sizeof(j));
	j.messages = "[{\"role\":\"user\",\"content\":\"x\"}]";
	st.p = p;
	st.j = &j;
	t_phase("bad arguments");
	t_run(rt, bad_step, &st, sizeof(st), NULL, "bad arguments");
	CHECK_JOB_RC(&j, 0);
	CHECK(!strncmp(j.content, "reply ", 6), "content '%s'", j.content);
}

/* ---- endpoints: none, keys ---- */

static void test_no_endpoint(void)
{
	struct job j[2];
	myriad_infer_t *p = pool_new(NULL);

	job_chat(&j[0], p, "[{\"role\":\"user\",\"content\":\"x\"}]", NULL);
	job_embed(&j[1], p, "x");
	run_jobs(j, 2, "no endpoint");
	CHECK_JOB_RC(&j[0], MYRIAD_INFER_ENOENDPOINT);
	CHECK_JOB_RC(&j[1], MYRIAD_INFER_ENOENDPOINT);
	CHECK_EQ(j[0].attempts, 0);
	CHECK_EQ(j[0].http_status, 0);
	CHECK_EQ(j[0].endpoint, -1);
	pool_done(p);
}

static void test_keys(void)
{
	static const char unset[] = "MYRIAD_TEST_INFER_NO_SUCH_KEY";
	static const char set[] = "MYRIAD_TEST_INFER_KEY";
	struct myriad_infer_endpoint e;
	myriad_infer_t *p = pool_new(NULL);
	struct job j;

	unsetenv(unset);
	memset(&e, 0, sizeof(e));
	e.sz = sizeof(e);
	e.base_url = s.url;
	e.model = "m";
	e.api_key_env = unset;
	CHECK_ERR(myriad_infer_add(p, &e), -ENOKEY);
	/* nothing was added */
	run_chat(&j, p, "[{\"role\":\"user\",\"content\":\"x\"}]", NULL,
		 "after -ENOKEY");
	CHECK_JOB_RC(&j, MYRIAD_INFER_ENOENDPOINT);

	setenv(set, "sk-test-0123", 1);
	e.api_key_env = set;
	CHECK_ERR(myriad_infer_add(p, &e), 0);
	run_chat(&j, p, "[{\"role\":\"user\",\"content\":\"x\"}]", NULL,
		 "with a key");
	CHECK_JOB_RC(&j, 0);
	pool_done(p);
}

/*
 * Base URLs as the OpenAI SDKs take them: a path is the API's root
 * (".../v1", with or without a slash), a bare host means its /v1, and
 * another path is used as given (llm-server answers it 404).
 */
static void test_base_urls(void)
{
	static const struct {
		const char *path;
		int rc, status;
	} cases[] = {
		{ "", 0, 200 },	     { "/", 0, 200 },
		{ "/v1", 0, 200 },   { "/v1/", 0, 200 },
		{ "/v1//", 0, 200 }, { "/openai", MYRIAD_INFER_EHTTP, 404 },
	};
	struct myriad_infer_endpoint e;
	char url[128];
	struct job j;
	size_t i;

	t_phase("base URLs");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		myriad_infer_t *p = pool_new(NULL);

		snprintf(url, sizeof(url), "%s%s", s.url, cases[i].path);
		memset(&e, 0, sizeof(e));
		e.sz = sizeof(e);
		e.base_url = url;
		e.model = "m";
		CHECK_ERR(myriad_infer_add(p, &e), 0);
		run_chat(&j, p, "[{\"role\":\"user\",\"content\":\"x\"}]", NULL,
			 url);
		CHECK_JOB_RC(&j, cases[i].rc);
		CHECK(j.http_status == cases[i].status,
		      "%s: HTTP status %d, want %d", url, j.http_status,
		      cases[i].status);
		job_embed(&j, p, "x");
		run_jobs(&j, 1, url);
		CHECK_JOB_RC(&j, cases[i].rc);
		pool_done(p);
	}
	/* No host: refused, nothing added. */
	{
		myriad_infer_t *p = pool_new(NULL);

		memset(&e, 0, sizeof(e));
		e.sz = sizeof(e);
		e.model = "m";
		e.base_url = "http://";
		CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
		e.base_url = "https:///";
		CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
		pool_done(p);
	}
}

int main(int argc, char **argv)
{
	char llm[16];
	const char *args[] = { "--llm-ms", llm, NULL };
	myriad_infer_t *p;
	unsigned w;

	t_name = "infer/roundtrip";
	w = t_parse_args(argc, argv);
	t_watchdog(60);
	snprintf(llm, sizeof(llm), "%d", LLM_MS);
	srv_start(&s, args);
	rt = t_rt_new(w);

	p = pool_new(NULL);
	CHECK_EQ(pool_add(p, &s, 0), 0);
	test_chat(p);
	test_embed(p);
	test_concurrent(p);
	test_http_400(p);
	test_bad_args(p);
	pool_done(p);
	test_no_endpoint();
	test_keys();
	test_base_urls();

	t_rt_done(rt);
	srv_stop(&s);
	return t_result();
}
