/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/agentic.c: what an agent needs of the inference client,
 * against a scripted responder on loopback (tests/infer/script.h) that
 * answers exactly as the OpenAI API documents and records every request:
 * tool-call answers (one and several, read field by field), refusals,
 * finish_reason "length", n choices, the server's error bodies, streamed
 * tool calls with their arguments split at every byte, usage asked for and
 * read from the final "choices": [] chunk, an error event mid-stream, the
 * headers and bodies sent (User-Agent, organization, project, Azure's
 * api-key and api-version, a per-call model), batch embeddings in float
 * and base64.
 */
#include <jansson.h>

#include "llm.h"
#include "script.h"

/* ---- one call by one task, checked inside the task ---- */

enum { T_CHAT, T_STREAM, T_EMBED };

struct tcall;
typedef void (*check_fn)(struct tcall *t, int rc,
			 const struct myriad_infer_result *r);

struct seen_tool {
	char id[64], type[32], name[64], args[512];
};

struct tcall {
	int kind;
	myriad_infer_t *p;
	const char *msgs, *extra;
	const char *const *inputs;
	size_t n;
	check_fn check;
	const void *arg;
	/* stream: what the task read while it went on */
	char text[4096];
	size_t tlen;
	struct seen_tool seen[8];
	size_t nseen;
	int tool_end; /* what stream_tool_call said after the last */
	int rc;
	bool ran;
};

struct tstate {
	MYRIAD_CORO_FIELD;
	myriad_infer_call_t call;
	struct tcall *t;
};

static void seen_copy(struct seen_tool *s,
		      const struct myriad_infer_tool_call *c)
{
	snprintf(s->id, sizeof(s->id), "%s", c->id);
	snprintf(s->type, sizeof(s->type), "%s", c->type);
	snprintf(s->name, sizeof(s->name), "%s", c->name);
	snprintf(s->args, sizeof(s->args), "%.*s", (int)c->arguments_len,
		 c->arguments);
}

/* A stream's content and completed tool calls: 1 if anything came,
 * -EAGAIN if nothing yet, else how it ended. */
static int pump(myriad_task_t *self, struct tstate *st)
{
	struct tcall *t = st->t;
	struct myriad_infer_tool_call tc;
	char buf[256];
	int n, r, progress = 0;

	while ((n = myriad_infer_stream_read(self, &st->call, buf,
					     sizeof(buf))) > 0) {
		if (t->tlen + (size_t)n < sizeof(t->text)) {
			memcpy(t->text + t->tlen, buf, (size_t)n);
			t->tlen += (size_t)n;
			t->text[t->tlen] = 0;
		}
		progress = 1;
	}
	while ((r = myriad_infer_stream_tool_call(self, &st->call, t->nseen,
						  &tc)) == 0) {
		if (t->nseen < 8)
			seen_copy(&t->seen[t->nseen], &tc);
		t->nseen++;
		progress = 1;
	}
	if (progress)
		return 1;
	if (n == -EAGAIN)
		return -EAGAIN;
	t->tool_end = r;
	return n;
}

static int start(myriad_task_t *self, struct tstate *st)
{
	struct tcall *t = st->t;

	switch (t->kind) {
	case T_STREAM:
		return myriad_infer_chat_stream(self, t->p, &st->call, t->msgs,
						t->extra);
	case T_EMBED:
		return myriad_infer_embed_batch(self, t->p, &st->call,
						t->inputs, t->n, t->extra);
	default:
		return myriad_infer_chat(self, t->p, &st->call, t->msgs,
					 t->extra);
	}
}

static int tcall_step(myriad_task_t *self, void *p)
{
	struct tstate *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	if (st->t->kind == T_STREAM) {
		rc = start(self, st);
		if (rc != -EAGAIN)
			goto done;
		for (;;) {
			MYRIAD_IO(st, rc, pump(self, st));
			if (rc <= 0)
				break;
		}
	} else {
		MYRIAD_IO(st, rc, start(self, st));
	}
done:
	st->t->rc = rc;
	st->t->ran = true;
	st->t->check(st->t, rc, myriad_infer_result(&st->call));
	CHECK_ERR(myriad_infer_release(self, &st->call), 0);
	MYRIAD_END(st);
}

static void run(struct tcall *t, const char *what)
{
	t_phase(what);
	t->ran = false;
	t_run(rt, tcall_step, &(struct tstate){ .t = t }, sizeof(struct tstate),
	      NULL, what);
	CHECK(t->ran, "%s: the task did not run its check", what);
}

static myriad_infer_t *pool_for(const char *url)
{
	struct myriad_infer_opts o;
	struct myriad_infer_endpoint e;
	myriad_infer_t *p;
	int idx;

	opts_init(&o);
	o.max_retries = 1;
	o.backoff_base_ns = 1000000ull;
	o.backoff_max_ns = 2000000ull;
	p = pool_new(&o);
	memset(&e, 0, sizeof(e));
	e.sz = sizeof(e);
	e.base_url = url;
	e.model = "gpt-test";
	idx = myriad_infer_add(p, &e);
	REQUIRE(idx >= 0, "myriad_infer_add: %d", idx);
	return p;
}

#define STREQ(got, want)                                                    \
	CHECK((got) && !strcmp((got), (want)), "%s: '%s', want '%s'", #got, \
	      (got) ? (got) : "(null)", (want))

#define MSGS "[{\"role\":\"user\",\"content\":\"weather?\"}]"

/* ---- tool calls, whole answers ---- */

/* The API reference's example, two parallel calls. */
static const char two_calls[] =
	"{\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion\","
	"\"created\":1699896916,\"model\":\"gpt-4o-mini\","
	"\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,"
	"\"message\":{\"role\":\"assistant\",\"content\":null,\"refusal\":null,"
	"\"tool_calls\":[{\"id\":\"call_abc123\",\"type\":\"function\","
	"\"function\":{\"name\":\"get_current_weather\",\"arguments\":"
	"\"{\\n\\\"location\\\": \\\"Boston, MA\\\"\\n}\"}},"
	"{\"id\":\"call_def456\",\"type\":\"function\",\"function\":{\"name\":"
	"\"get_time\",\"arguments\":\"{\\\"tz\\\":\\\"EST\\\"}\"}}]},"
	"\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":{"
	"\"prompt_tokens\":82,\"completion_tokens\":17,\"total_tokens\":99,"
	"\"prompt_tokens_details\":{\"cached_tokens\":64,\"audio_tokens\":0},"
	"\"completion_tokens_details\":{\"reasoning_tokens\":5,"
	"\"audio_tokens\":0}}}";

static void check_two_calls(struct tcall *t, int rc,
			    const struct myriad_infer_result *r)
{
	(void)t;
	CHECK_ERR(rc, 0);
	REQUIRE(r, "no result");
	CHECK(r->content == NULL, "content '%s', want NULL", r->content);
	STREQ(r->finish_reason, "tool_calls");
	CHECK(r->refusal == NULL, "refusal set");
	CHECK_EQ(r->nchoices, 1);
	CHECK_EQ(r->ntool_calls, 2);
	REQUIRE(r->tool_calls && r->ntool_calls == 2, "tool calls");
	STREQ(r->tool_calls[0].id, "call_abc123");
	STREQ(r->tool_calls[0].type, "function");
	STREQ(r->tool_calls[0].name, "get_current_weather");
	STREQ(r->tool_calls[0].arguments, "{\n\"location\": \"Boston, MA\"\n}");
	CHECK_EQ(r->tool_calls[0].arguments_len,
		 strlen("{\n\"location\": \"Boston, MA\"\n}"));
	STREQ(r->tool_calls[1].id, "call_def456");
	STREQ(r->tool_calls[1].name, "get_time");
	STREQ(r->tool_calls[1].arguments, "{\"tz\":\"EST\"}");
	CHECK(r->choices[0].tool_calls == r->tool_calls, "choices[0]");
	STREQ(r->id, "chatcmpl-abc123");
	STREQ(r->model, "gpt-4o-mini");
	STREQ(r->system_fingerprint, "fp_44709d6fcb");
	CHECK_EQ(r->prompt_tokens, 82);
	CHECK_EQ(r->completion_tokens, 17);
	CHECK_EQ(r->total_tokens, 99);
	CHECK_EQ(r->cached_tokens, 64);
	CHECK_EQ(r->reasoning_tokens, 5);
	STREQ(r->request_id, "req_7f3a");
	STREQ(r->error, "");
	REQUIRE(r->json, "no json tree");
	CHECK_EQ(json_integer_value(
			 json_object_get((json_t *)r->json, "created")),
		 1699896916);
}

static const char refusal[] =
	"{\"id\":\"c1\",\"object\":\"chat.completion\",\"model\":\"m\","
	"\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	"\"content\":null,\"refusal\":\"I can't help with that.\"},"
	"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,"
	"\"completion_tokens\":6,\"total_tokens\":15}}";

static void check_refusal(struct tcall *t, int rc,
			  const struct myriad_infer_result *r)
{
	(void)t;
	CHECK_ERR(rc, 0);
	REQUIRE(r, "no result");
	CHECK(r->content == NULL, "content set");
	STREQ(r->refusal, "I can't help with that.");
	STREQ(r->finish_reason, "stop");
	CHECK_EQ(r->ntool_calls, 0);
	CHECK_EQ(r->total_tokens, 15);
	CHECK_EQ(r->cached_tokens, -1);
	CHECK(r->request_id == NULL, "request_id '%s'", r->request_id);
}

static const char length_cut[] =
	"{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	"\"content\":\"The answer is\"},\"finish_reason\":\"length\"}]}";

static void check_length(struct tcall *t, int rc,
			 const struct myriad_infer_result *r)
{
	(void)t;
	CHECK_ERR(rc, 0);
	REQUIRE(r, "no result");
	STREQ(r->content, "The answer is");
	CHECK_EQ(r->content_len, 13);
	STREQ(r->finish_reason, "length");
	CHECK_EQ(r->prompt_tokens, -1);
	CHECK(r->id == NULL && r->model == NULL, "id/model set");
}

/* n = 3, sent out of order: given back in index order. */
static const char three[] =
	"{\"choices\":[{\"index\":2,\"message\":{\"role\":\"assistant\","
	"\"content\":\"two\"},\"finish_reason\":\"stop\"},{\"index\":0,"
	"\"message\":{\"role\":\"assistant\",\"content\":\"zero\"},"
	"\"finish_reason\":\"length\"},{\"index\":1,\"message\":{\"role\":"
	"\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
	"\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
	"\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}";

static void check_three(struct tcall *t, int rc,
			const struct myriad_infer_result *r)
{
	(void)t;
	CHECK_ERR(rc, 0);
	REQUIRE(r && r->nchoices == 3, "choices: %zu", r ? r->nchoices : 0);
	CHECK_EQ(r->choices[0].index, 0);
	CHECK_EQ(r->choices[1].index, 1);
	CHECK_EQ(r->choices[2].index, 2);
	STREQ(r->choices[0].content, "zero");
	STREQ(r->choices[0].finish_reason, "length");
	CHECK(r->choices[1].content == NULL, "choice 1 content");
	CHECK_EQ(r->choices[1].ntool_calls, 1);
	STREQ(r->choices[1].tool_calls[0].name, "f");
	STREQ(r->choices[2].content, "two");
	STREQ(r->content, "zero");
	STREQ(r->finish_reason, "length");
}

struct want_err {
	int rc, status;
	const char *msg, *type, *code, *param;
};

static void check_err(struct tcall *t, int rc,
		      const struct myriad_infer_result *r)
{
	const struct want_err *w = t->arg;

	CHECK_ERR(rc, w->rc);
	REQUIRE(r, "no result");
	CHECK_EQ(r->http_status, w->status);
	if (w->msg) {
		STREQ(r->error_message, w->msg);
		CHECK(strstr(r->error, w->msg) != NULL,
		      "error '%s' does not say '%s'", r->error, w->msg);
	} else {
		CHECK(r->error_message == NULL, "message '%s'",
		      r->error_message);
	}
	if (w->type)
		STREQ(r->error_type, w->type);
	else
		CHECK(r->error_type == NULL, "type '%s'", r->error_type);
	if (w->code)
		STREQ(r->error_code, w->code);
	else
		CHECK(r->error_code == NULL, "code '%s'", r->error_code);
	if (w->param)
		STREQ(r->error_param, w->param);
	else
		CHECK(r->error_param == NULL, "param '%s'", r->error_param);
	CHECK(r->content == NULL && r->nchoices == 0 && r->json == NULL,
	      "an error with an answer");
}

static void test_whole(void)
{
	static const struct want_err e401 = { MYRIAD_INFER_EHTTP,
					      401,
					      "Incorrect API key provided",
					      "invalid_request_error",
					      "invalid_api_key",
					      NULL };
	static const struct want_err e400 = {
		MYRIAD_INFER_EHTTP,	 400,	"max_tokens is too large",
		"invalid_request_error", "400", "max_tokens"
	};
	static const struct want_err e404 = { MYRIAD_INFER_EHTTP,
					      404,
					      "The model `x` does not exist",
					      "invalid_request_error",
					      "model_not_found",
					      NULL };
	static const struct want_err e_detail = {
		MYRIAD_INFER_EHTTP, 422, "Field required", NULL, NULL, NULL
	};
	static const struct want_err e_html = {
		MYRIAD_INFER_EHTTP, 502, NULL, NULL, NULL, NULL
	};
	static const struct want_err e_bad = {
		MYRIAD_INFER_EBODY, 200, NULL, NULL, NULL, NULL
	};
	struct script s;
	struct tcall t = { .kind = T_CHAT, .msgs = MSGS };

	script_start(&s);
	t.p = pool_for(s.url);
	script_add(&s, "HTTP/1.1 200 OK", "x-request-id: req_7f3a\r\n",
		   "application/json", two_calls, 0, 0);
	t.check = check_two_calls;
	run(&t, "two tool calls");
	script_json(&s, refusal);
	t.check = check_refusal;
	run(&t, "refusal");
	script_json(&s, length_cut);
	t.check = check_length;
	run(&t, "finish_reason length");
	script_json(&s, three);
	t.check = check_three;
	run(&t, "n = 3");

	t.check = check_err;
	script_add(&s, "HTTP/1.1 401 Unauthorized", "", "application/json",
		   "{\"error\":{\"message\":\"Incorrect API key provided\","
		   "\"type\":\"invalid_request_error\",\"param\":null,"
		   "\"code\":\"invalid_api_key\"}}",
		   0, 0);
	t.arg = &e401;
	run(&t, "401 error body");
	/* vLLM's shape: the fields at the top, a numeric code */
	script_add(&s, "HTTP/1.1 400 Bad Request", "", "application/json",
		   "{\"object\":\"error\",\"message\":\"max_tokens is too "
		   "large\",\"type\":\"invalid_request_error\",\"param\":"
		   "\"max_tokens\",\"code\":400}",
		   0, 0);
	t.arg = &e400;
	run(&t, "400 error body, fields at the top");
	script_add(&s, "HTTP/1.1 404 Not Found", "", "application/json",
		   "{\"error\":{\"message\":\"The model `x` does not exist\","
		   "\"type\":\"invalid_request_error\",\"param\":null,"
		   "\"code\":\"model_not_found\"}}",
		   0, 0);
	t.arg = &e404;
	run(&t, "404 model_not_found");
	script_add(&s, "HTTP/1.1 422 Unprocessable Entity", "",
		   "application/json", "{\"detail\":\"Field required\"}", 0, 0);
	t.arg = &e_detail;
	run(&t, "422 detail");
	/* 502 is retried once (max_retries 1): two HTML pages */
	script_add(&s, "HTTP/1.1 502 Bad Gateway", "", "text/html",
		   "<html>bad gateway</html>", 0, 0);
	script_add(&s, "HTTP/1.1 502 Bad Gateway", "", "text/html",
		   "<html>bad gateway</html>", 0, 0);
	t.arg = &e_html;
	run(&t, "502 without JSON");
	script_json(&s, "{\"choices\":[]}");
	t.arg = &e_bad;
	run(&t, "no choices");
	script_json(&s, "{\"choices\":[{\"index\":0,\"message\":{\"content\":"
			"[{\"type\":\"text\"}]}}]}");
	run(&t, "content parts");
	script_json(&s, "{\"choices\":[{\"index\":0,\"message\":{\"content\":"
			"null,\"tool_calls\":[{\"id\":\"x\",\"function\":{}}]}"
			"}]}");
	run(&t, "a tool call without a name");
	CHECK_EQ(myriad_infer_destroy(t.p), 0);
	script_stop(&s);
}

/* ---- streams ---- */

/* SSE of the API: role chunk, two tool calls (the first's arguments cut
 * at 'k'), finish, the usage chunk, [DONE]. */
static char *tool_stream(size_t k, const char *args)
{
	char a1[256], a2[256], *out = NULL;
	size_t n = strlen(args);
	json_t *p1 = json_stringn(args, k), *p2 = json_stringn(args + k, n - k);
	char *s1 = json_dumps(p1, JSON_ENCODE_ANY);
	char *s2 = json_dumps(p2, JSON_ENCODE_ANY);
	static const char pre[] =
		"data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion."
		"chunk\",\"created\":1,\"model\":\"gpt-4o\",\"system_"
		"fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":{";

	snprintf(a1, sizeof(a1), "%s", s1);
	snprintf(a2, sizeof(a2), "%s", s2);
	free(s1);
	free(s2);
	json_decref(p1);
	json_decref(p2);
	int r = asprintf(&out,
			 "%s\"role\":\"assistant\",\"content\":null},"
			 "\"logprobs\":null,\"finish_reason\":null}],"
			 "\"usage\":null}\n\n"
			 "%s\"tool_calls\":[{\"index\":0,\"id\":\"call_A\","
			 "\"type\":\"function\",\"function\":{\"name\":"
			 "\"get_weather\",\"arguments\":\"\"}}]},"
			 "\"finish_reason\":null}],\"usage\":null}\n\n"
			 "%s\"tool_calls\":[{\"index\":0,\"function\":{"
			 "\"arguments\":%s}}]},\"finish_reason\":null}],"
			 "\"usage\":null}\n\n"
			 "%s\"tool_calls\":[{\"index\":0,\"function\":{"
			 "\"arguments\":%s}}]},\"finish_reason\":null}],"
			 "\"usage\":null}\n\n"
			 "%s\"tool_calls\":[{\"index\":1,\"id\":\"call_B\","
			 "\"type\":\"function\",\"function\":{\"name\":"
			 "\"get_time\",\"arguments\":\"{}\"}}]},"
			 "\"finish_reason\":null}],\"usage\":null}\n\n"
			 "%s},\"finish_reason\":\"tool_calls\"}],"
			 "\"usage\":null}\n\n"
			 "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat."
			 "completion.chunk\",\"created\":1,\"model\":"
			 "\"gpt-4o\",\"choices\":[],\"usage\":{"
			 "\"prompt_tokens\":40,\"completion_tokens\":21,"
			 "\"total_tokens\":61}}\n\n"
			 "data: [DONE]\n\n",
			 pre, pre, pre, a1, pre, a2, pre, pre);

	REQUIRE(r > 0, "asprintf");
	return out;
}

static const char weather_args[] =
	"{\"location\":\"Paris, France\",\"unit\":\"celsius\"}";

static void check_tool_stream(struct tcall *t, int rc,
			      const struct myriad_infer_result *r)
{
	CHECK_ERR(rc, 0);
	REQUIRE(r, "no result");
	CHECK_EQ(t->nseen, 2);
	CHECK_ERR(t->tool_end, -ENOENT);
	STREQ(t->seen[0].id, "call_A");
	STREQ(t->seen[0].type, "function");
	STREQ(t->seen[0].name, "get_weather");
	STREQ(t->seen[0].args, weather_args);
	STREQ(t->seen[1].id, "call_B");
	STREQ(t->seen[1].name, "get_time");
	STREQ(t->seen[1].args, "{}");
	CHECK_EQ(t->tlen, 0);
	CHECK(r->content == NULL, "content '%s'", r->content);
	STREQ(r->finish_reason, "tool_calls");
	REQUIRE(r->ntool_calls == 2, "%zu tool calls", r->ntool_calls);
	STREQ(r->tool_calls[0].arguments, weather_args);
	CHECK_EQ(r->tool_calls[0].arguments_len, strlen(weather_args));
	STREQ(r->tool_calls[1].name, "get_time");
	CHECK_EQ(r->prompt_tokens, 40);
	CHECK_EQ(r->total_tokens, 61);
	STREQ(r->id, "chatcmpl-9");
	STREQ(r->model, "gpt-4o");
	STREQ(r->system_fingerprint, "fp_1");
	CHECK(r->json == NULL, "a stream has no tree");
}

/* Mid-stream content, then the server's error event. */
static void check_stream_error(struct tcall *t, int rc,
			       const struct myriad_infer_result *r)
{
	CHECK_ERR(rc, MYRIAD_INFER_ESERVER);
	REQUIRE(r, "no result");
	STREQ(t->text, "Hello");
	CHECK_EQ(r->http_status, 200);
	STREQ(r->error_message, "The server had an error while processing");
	STREQ(r->error_type, "server_error");
	CHECK(strstr(r->error, "The server had an error") != NULL, "error '%s'",
	      r->error);
	CHECK_EQ(r->attempts, 1);
}

/* Two choices interleaved, a refusal delta on one, content on the other. */
static void check_stream_two(struct tcall *t, int rc,
			     const struct myriad_infer_result *r)
{
	CHECK_ERR(rc, 0);
	REQUIRE(r && r->nchoices == 2, "choices %zu", r ? r->nchoices : 0);
	STREQ(t->text, "Hi there");
	STREQ(r->content, "Hi there");
	STREQ(r->choices[0].finish_reason, "stop");
	CHECK(r->choices[1].content == NULL, "choice 1 content");
	STREQ(r->choices[1].refusal, "No, sorry.");
	STREQ(r->choices[1].finish_reason, "stop");
	CHECK_ERR(t->tool_end, -ENOENT);
	CHECK_EQ(r->total_tokens, -1);
}

static void test_streams(void)
{
	static const char err_stream[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
		"\"assistant\",\"content\":\"Hel\"}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
		"\"lo\"}}]}\n\n"
		"data: {\"error\":{\"message\":\"The server had an error while "
		"processing\",\"type\":\"server_error\",\"param\":null,"
		"\"code\":null}}\n\n";
	static const char err_event[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
		"\"Hello\"}}]}\n\n"
		"event: error\n"
		"data: {\"message\":\"The server had an error while "
		"processing\",\"type\":\"server_error\"}\n\n";
	static const char two[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
		"\"assistant\",\"content\":\"\"}},{\"index\":1,\"delta\":{"
		"\"role\":\"assistant\",\"content\":null}}]}\n\n"
		"data: {\"choices\":[{\"index\":1,\"delta\":{\"refusal\":"
		"\"No, \"}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
		"\"Hi \"}}]}\n\n"
		"data: {\"choices\":[{\"index\":1,\"delta\":{\"refusal\":"
		"\"sorry.\"},\"finish_reason\":\"stop\"}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
		"\"there\"},\"finish_reason\":\"stop\"}]}\n\n"
		"data: [DONE]\n\n";
	struct script s;
	struct tcall t = { .kind = T_STREAM, .msgs = MSGS };
	size_t k, n = strlen(weather_args), batch = 0;
	char what[64];

	/*
	 * The arguments split between two deltas at every byte, and the
	 * answer written in two or three pieces at varying offsets.
	 */
	t.check = check_tool_stream;
	for (k = 0; k <= n; k++) {
		char *body = tool_stream(k, weather_args);
		size_t bl = strlen(body);

		if (!batch) {
			script_start(&s);
			t.p = pool_for(s.url);
		}
		script_add(&s, "HTTP/1.1 200 OK", "", "text/event-stream", body,
			   1 + (k * 37) % (bl - 1),
			   1 + (k * 37) % (bl - 1) + 1 + k % 13);
		free(body);
		memset(t.seen, 0, sizeof(t.seen));
		t.nseen = 0;
		t.tlen = 0;
		t.text[0] = 0;
		snprintf(what, sizeof(what), "tool stream split at %zu", k);
		run(&t, what);
		/* The request asked for usage. */
		{
			const char *req = script_req(&s, (int)batch);

			REQUIRE(req, "no request recorded");
			CHECK(strstr(req, "\"stream_options\":{\"include_"
					  "usage\":true}") != NULL,
			      "stream request without include_usage: %s", req);
			CHECK(strstr(req, "\"stream\":true") != NULL,
			      "no stream:true");
		}
		if (++batch == SCRIPT_MAX || k == n) {
			CHECK_EQ(myriad_infer_destroy(t.p), 0);
			script_stop(&s);
			batch = 0;
		}
	}

	script_start(&s);
	t.p = pool_for(s.url);
	t.check = check_stream_error;
	t.tlen = 0;
	t.text[0] = 0;
	script_add(&s, "HTTP/1.1 200 OK", "", "text/event-stream", err_stream,
		   0, 0);
	run(&t, "error object mid-stream");
	t.tlen = 0;
	t.text[0] = 0;
	script_add(&s, "HTTP/1.1 200 OK", "", "text/event-stream", err_event, 0,
		   0);
	run(&t, "event: error mid-stream");
	t.tlen = 0;
	t.text[0] = 0;
	t.nseen = 0;
	t.check = check_stream_two;
	t.extra = "{\"n\":2,\"stream_options\":{\"include_usage\":false}}";
	script_add(&s, "HTTP/1.1 200 OK", "", "text/event-stream", two, 0, 0);
	run(&t, "two choices streamed, a refusal");
	{
		const char *req = script_req(&s, 2);

		REQUIRE(req, "no request recorded");
		CHECK(strstr(req, "\"include_usage\":false") != NULL,
		      "the caller's stream_options were replaced: %s", req);
	}
	CHECK_EQ(myriad_infer_destroy(t.p), 0);
	script_stop(&s);
}

/* ---- requests: headers, URL, model ---- */

static void check_ok(struct tcall *t, int rc,
		     const struct myriad_infer_result *r)
{
	(void)t;
	CHECK_ERR(rc, 0);
	REQUIRE(r, "no result");
}

/* The header 'name' of request 'req' as "value", counted. */
static int header_count(const char *req, const char *name, char *val,
			size_t cap)
{
	const char *end = strstr(req, "\r\n\r\n"), *p = req;
	size_t n = strlen(name);
	int count = 0;

	val[0] = 0;
	while ((p = strstr(p, "\r\n")) && p < end) {
		p += 2;
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *v = p + n + 1, *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(val, cap, "%.*s", (int)(e - v), v);
			count++;
		}
	}
	return count;
}

#define HDR(req, name, want)                                                   \
	do {                                                                   \
		char v_[256];                                                  \
		int c_ = header_count((req), (name), v_, sizeof(v_));          \
		CHECK(c_ == 1 && !strcmp(v_, (want)),                          \
		      "header %s: %d times, '%s', want once '%s'", (name), c_, \
		      v_, (want));                                             \
	} while (0)

static json_t *req_body(const char *req)
{
	const char *b = strstr(req, "\r\n\r\n");

	return b ? json_loads(b + 4, 0, NULL) : NULL;
}

static void test_requests(void)
{
	static const char *const hdrs[] = { "X-Trace: t-1",
					    "User-Agent: custom-agent/3",
					    NULL };
	static const char *const bad1[] = { "NoColon", NULL };
	static const char *const bad2[] = { "X-A: 1\r\nX-B: 2", NULL };
	static const char *const bad3[] = { ": empty name", NULL };
	struct script s;
	struct tcall t = { .kind = T_CHAT, .msgs = MSGS, .check = check_ok };
	struct myriad_infer_endpoint e;
	myriad_infer_t *p;
	struct myriad_infer_opts o;
	const char *req;
	json_t *b;
	char base[128], v[256];
	int idx;

	setenv("MYRIAD_TEST_KEY", "sk-test-123", 1);
	script_start(&s);
	opts_init(&o);
	p = pool_new(&o);
	t.p = p;

	/* Organization, project, headers that override the User-Agent. */
	memset(&e, 0, sizeof(e));
	e.sz = sizeof(e);
	e.base_url = s.url;
	e.model = "gpt-test";
	e.api_key_env = "MYRIAD_TEST_KEY";
	e.organization = "org-abc";
	e.project = "proj_xyz";
	e.headers = hdrs;
	REQUIRE((idx = myriad_infer_add(p, &e)) == 0, "add: %d", idx);
	script_json(&s, length_cut);
	run(&t, "headers");
	req = script_req(&s, 0);
	REQUIRE(req, "no request");
	CHECK(!strncmp(req, "POST /v1/chat/completions HTTP/1.1\r\n", 36),
	      "request line: %.60s", req);
	HDR(req, "Authorization", "Bearer sk-test-123");
	HDR(req, "OpenAI-Organization", "org-abc");
	HDR(req, "OpenAI-Project", "proj_xyz");
	HDR(req, "X-Trace", "t-1");
	HDR(req, "User-Agent", "custom-agent/3");
	HDR(req, "Content-Type", "application/json");
	CHECK(header_count(req, "api-key", v, sizeof(v)) == 0, "api-key sent");
	b = req_body(req);
	REQUIRE(b, "request body is not JSON");
	STREQ(json_string_value(json_object_get(b, "model")), "gpt-test");
	json_decref(b);

	/* A per-call model. */
	t.extra = "{\"model\":\"gpt-other\",\"max_tokens\":5}";
	script_json(&s, length_cut);
	run(&t, "per-call model");
	b = req_body(script_req(&s, 1));
	REQUIRE(b, "request body is not JSON");
	STREQ(json_string_value(json_object_get(b, "model")), "gpt-other");
	CHECK_EQ(json_integer_value(json_object_get(b, "max_tokens")), 5);
	CHECK(!json_object_get(b, "stream_options"),
	      "stream_options on a plain call");
	json_decref(b);
	t.extra = NULL;
	CHECK_EQ(myriad_infer_destroy(p), 0);

	/* Azure: api-key header, api-version query, the default UA. */
	p = pool_new(&o);
	t.p = p;
	snprintf(base, sizeof(base),
		 "http://127.0.0.1:%d/openai/deployments/gpt4o-dep", s.port);
	memset(&e, 0, sizeof(e));
	e.sz = sizeof(e);
	e.base_url = base;
	e.model = "gpt-4o";
	e.api_key_env = "MYRIAD_TEST_KEY";
	e.azure_api_version = "2024-10-21";
	REQUIRE((idx = myriad_infer_add(p, &e)) == 0, "add azure: %d", idx);
	script_json(&s, length_cut);
	run(&t, "azure");
	req = script_req(&s, 2);
	REQUIRE(req, "no request");
	CHECK(!strncmp(req,
		       "POST /openai/deployments/gpt4o-dep/chat/completions"
		       "?api-version=2024-10-21 HTTP/1.1\r\n",
		       85),
	      "request line: %.100s", req);
	HDR(req, "api-key", "sk-test-123");
	HDR(req, "User-Agent", "myriad/0.2");
	CHECK(header_count(req, "Authorization", v, sizeof(v)) == 0,
	      "Authorization sent to Azure: %s", v);

	/* Bad endpoints: refused, nothing added. */
	e.azure_api_version = "2024-10-21&x=1";
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.azure_api_version = NULL;
	e.headers = bad1;
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.headers = bad2;
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.headers = bad3;
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.headers = NULL;
	e.organization = "org\r\nX-Evil: 1";
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	e.organization = NULL;
	e.base_url = "http://127.0.0.1:1/v1?x=1";
	CHECK_ERR(myriad_infer_add(p, &e), -EINVAL);
	/* An 0.1 caller's shorter struct: the new fields are not read. */
	e.base_url = s.url;
	e.organization = "org\r\nbad";
	e.sz = offsetof(struct myriad_infer_endpoint, window) +
	       sizeof(e.window);
	CHECK_ERR(myriad_infer_add(p, &e), 1);
	CHECK_EQ(myriad_infer_destroy(p), 0);
	script_stop(&s);
	unsetenv("MYRIAD_TEST_KEY");
}

/* ---- embeddings ---- */

/* base64 of little-endian float32s (the API's encoding_format). */
static void b64_of(const float *f, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *b = (const unsigned char *)f;
	size_t len = n * 4, i, o = 0;

	for (i = 0; i < len; i += 3) {
		unsigned v = (unsigned)b[i] << 16;

		if (i + 1 < len)
			v |= (unsigned)b[i + 1] << 8;
		if (i + 2 < len)
			v |= b[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tab[v & 63] : '=';
	}
	out[o] = 0;
}

static const float vec_a[3] = { 0.5f, -1.25f, 0.001953125f };
static const float vec_b[3] = { 1.0f, 2.0f, -0.0078125f };

static void check_batch(struct tcall *t, int rc,
			const struct myriad_infer_result *r)
{
	size_t i;

	(void)t;
	CHECK_ERR(rc, 0);
	REQUIRE(r && r->nembeddings == 2 && r->dims == 3,
		"%zu embeddings of %zu", r ? r->nembeddings : 0,
		r ? r->dims : 0);
	for (i = 0; i < 3; i++) {
		CHECK(r->embeddings[0][i] == (double)vec_a[i],
		      "[0][%zu] = %g, want %g", i, r->embeddings[0][i],
		      (double)vec_a[i]);
		CHECK(r->embeddings[1][i] == (double)vec_b[i],
		      "[1][%zu] = %g, want %g", i, r->embeddings[1][i],
		      (double)vec_b[i]);
	}
	CHECK(r->embedding == r->embeddings[0], "embedding is not [0]");
	CHECK_EQ(r->prompt_tokens, 8);
	STREQ(r->model, "text-embedding-3-small");
}

static void test_embeddings(void)
{
	static const char *const inputs[] = { "first", "second", NULL };
	static const struct want_err bad = {
		MYRIAD_INFER_EBODY, 200, NULL, NULL, NULL, NULL
	};
	struct script s;
	struct tcall t = { .kind = T_EMBED, .inputs = inputs, .n = 2 };
	char body[1024], ba[64], bb[64];
	json_t *b;

	script_start(&s);
	t.p = pool_for(s.url);
	/* Floats, data[] out of order. */
	snprintf(body, sizeof(body),
		 "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
		 "\"index\":1,\"embedding\":[%.9g,%.9g,%.9g]},{\"object\":"
		 "\"embedding\",\"index\":0,\"embedding\":[%.9g,%.9g,%.9g]}],"
		 "\"model\":\"text-embedding-3-small\",\"usage\":{"
		 "\"prompt_tokens\":8,\"total_tokens\":8}}",
		 (double)vec_b[0], (double)vec_b[1], (double)vec_b[2],
		 (double)vec_a[0], (double)vec_a[1], (double)vec_a[2]);
	script_json(&s, body);
	t.check = check_batch;
	t.extra = "{\"dimensions\":3}";
	run(&t, "batch embeddings, floats");
	b = req_body(script_req(&s, 0));
	REQUIRE(b, "request body is not JSON");
	CHECK(json_array_size(json_object_get(b, "input")) == 2 &&
		      !strcmp(json_string_value(json_array_get(
				      json_object_get(b, "input"), 1)),
			      "second"),
	      "input not the two strings");
	CHECK_EQ(json_integer_value(json_object_get(b, "dimensions")), 3);
	STREQ(json_string_value(json_object_get(b, "model")), "gpt-test");
	json_decref(b);

	/* base64, as the SDKs ask by default. */
	b64_of(vec_a, 3, ba);
	b64_of(vec_b, 3, bb);
	snprintf(body, sizeof(body),
		 "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
		 "\"index\":0,\"embedding\":\"%s\"},{\"object\":\"embedding\","
		 "\"index\":1,\"embedding\":\"%s\"}],\"model\":"
		 "\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":8,"
		 "\"total_tokens\":8}}",
		 ba, bb);
	script_json(&s, body);
	t.extra = "{\"encoding_format\":\"base64\"}";
	run(&t, "batch embeddings, base64");
	b = req_body(script_req(&s, 1));
	REQUIRE(b, "request body is not JSON");
	STREQ(json_string_value(json_object_get(b, "encoding_format")),
	      "base64");
	json_decref(b);

	/* One vector for two inputs; bad base64; a repeated index. */
	t.check = check_err;
	t.arg = &bad;
	t.extra = NULL;
	script_json(&s, "{\"data\":[{\"index\":0,\"embedding\":[1,2]}]}");
	run(&t, "too few embeddings");
	script_json(&s, "{\"data\":[{\"index\":0,\"embedding\":\"AAA*\"},"
			"{\"index\":1,\"embedding\":\"AAAAAA==\"}]}");
	run(&t, "bad base64");
	script_json(&s, "{\"data\":[{\"index\":0,\"embedding\":[1]},"
			"{\"index\":0,\"embedding\":[2]}]}");
	run(&t, "a repeated index");
	script_json(&s, "{\"data\":[{\"index\":0,\"embedding\":[1,2]},"
			"{\"index\":1,\"embedding\":[2]}]}");
	run(&t, "lengths differ");
	CHECK_EQ(myriad_infer_destroy(t.p), 0);
	script_stop(&s);
}

/* Arguments refused before anything is sent. */
static int bad_args_step(myriad_task_t *self, void *p)
{
	myriad_infer_t *pool = *(myriad_infer_t **)p;
	myriad_infer_call_t call = { 0 };
	const char *in[] = { "a", NULL };
	struct myriad_infer_tool_call tc;

	CHECK_ERR(myriad_infer_embed_batch(self, pool, &call, in, 0, NULL),
		  -EINVAL);
	CHECK_ERR(myriad_infer_embed_batch(self, pool, &call, in, 2, NULL),
		  -EINVAL);
	CHECK_ERR(myriad_infer_embed_batch(self, pool, &call, NULL, 1, NULL),
		  -EINVAL);
	CHECK_ERR(myriad_infer_embed_batch(self, pool, &call, in, 1, "[1]"),
		  -EINVAL);
	CHECK_ERR(myriad_infer_stream_tool_call(self, &call, 0, &tc), -EINVAL);
	CHECK_ERR(myriad_infer_stream_tool_call(self, NULL, 0, &tc), -EINVAL);
	return MYRIAD_DONE;
}

int main(int argc, char **argv)
{
	unsigned workers;
	myriad_infer_t *p;

	t_name = "infer/agentic";
	workers = t_parse_args(argc, argv);
	t_watchdog(120);
	rt = t_rt_new(workers);
	test_whole();
	test_streams();
	test_requests();
	test_embeddings();
	p = pool_for("http://127.0.0.1:1/v1");
	t_run(rt, bad_args_step, &p, sizeof(p), NULL, "bad arguments");
	CHECK_EQ(myriad_infer_destroy(p), 0);
	t_rt_done(rt);
	return t_result();
}
