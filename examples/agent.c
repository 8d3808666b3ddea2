/* SPDX-License-Identifier: MIT */
/*
 * examples/agent.c: a tool-calling agent on libmyriad's public API: the
 * model answers with tool calls, each call runs as a child task, their
 * results go back to the model as "tool" messages, until a final answer.
 *
 *   agent [--turns N] [--budget TOKENS] PROMPT...
 *
 * The environment says where the model is, so that the same binary runs
 * against servers/llm-server or any OpenAI-compatible service:
 *   MYRIAD_BASE_URL  the API's root (default http://127.0.0.1:8080/v1)
 *   OPENAI_API_KEY   sent as "Authorization: Bearer" when set
 *   MYRIAD_MODEL     the model (default gpt-4o-mini)
 *   TOOL_SERVER      host:port of servers/tool-server, for the fetch tool
 *                    (default 127.0.0.1:8081)
 * It starts no server itself (README.md, "A tool-calling agent").
 * Exit status: 0 a final answer, 3 the turn limit or the token budget
 * came first, 1 an error, 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define DEFAULT_BASE_URL "http://127.0.0.1:8080/v1"
#define DEFAULT_MODEL "gpt-4o-mini"
#define DEFAULT_TOOL_SERVER "127.0.0.1:8081"

static myriad_infer_t *pool;
static char *tools_json;
static int max_turns = 8;
static int64_t budget; /* total tokens; 0: none */

struct agent {
	MYRIAD_CORO_FIELD;
	json_t *messages; /* the conversation so far */
	char *request;	  /* the messages as sent */
	myriad_infer_call_t chat;
	struct call *calls; /* the answer's tool calls, as they run */
	size_t ncalls;
	int turn, status;
	int64_t tokens, prompt_tokens, completion_tokens;
};

/* The answer's message, with its tool calls, appended as the model's. */
static int add_assistant(struct agent *st, const struct myriad_infer_result *r)
{
	json_t *m, *calls = json_array(), *content;
	size_t i;

	for (i = 0; i < r->ntool_calls; i++) {
		const struct myriad_infer_tool_call *tc = &r->tool_calls[i];

		json_array_append_new(
			calls, json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id",
					 tc->id, "type", "function", "function",
					 "name", tc->name, "arguments",
					 tc->arguments, tc->arguments_len));
	}
	/* content is null beside tool calls (the API's own form). */
	content = r->content ? json_stringn(r->content, r->content_len)
			     : json_null();
	m = json_pack("{s:s, s:o}", "role", "assistant", "content", content);
	if (m && r->ntool_calls)
		json_object_set(m, "tool_calls", calls);
	json_decref(calls);
	return m ? json_array_append_new(st->messages, m) : -1;
}

/* Each call of the answer as a child task; they run in parallel. */
static void start_calls(myriad_task_t *self, struct agent *st,
			const struct myriad_infer_result *r)
{
	struct tool_task *init;
	json_error_t jerr;
	size_t i, k;
	int err;

	st->ncalls = r->ntool_calls;
	st->calls = calloc(st->ncalls, sizeof(*st->calls));
	for (i = 0; st->calls && i < st->ncalls; i++) {
		struct call *c = &st->calls[i];

		c->tc = &r->tool_calls[i];
		for (k = 0; k < agent_ntools; k++)
			if (!strcmp(c->tc->name, agent_tools[k].name))
				c->tool = &agent_tools[k];
		if (!c->tool) {
			tool_answer(c, "error: no tool named '%s'",
				    c->tc->name);
			continue;
		}
		c->args = json_loadb(c->tc->arguments, c->tc->arguments_len, 0,
				     &jerr);
		if (!json_is_object(c->args)) {
			tool_answer(
				c,
				"error: the arguments are not a JSON object: %s",
				c->args ? "another JSON value" : jerr.text);
			continue;
		}
		/* The task's state: its head, then zeros for the rest. */
		init = calloc(1, c->tool->state_size);
		if (init)
			init->call = c;
		if (!init || !myriad_task_spawn(self, c->tool->step, init,
						c->tool->state_size, 0, &err))
			tool_answer(c, "error: the tool did not start: %s",
				    strerror(init ? -err : ENOMEM));
		free(init);
	}
}

/* Print 'text' after 'lead', its later lines indented as the first. */
static void print_block(const char *lead, const char *text)
{
	const char *t;

	fputs(lead, stdout);
	for (t = text; *t; t++) {
		putchar(*t);
		if (*t == '\n' && t[1])
			printf("%*s", (int)strlen(lead), "");
	}
	if (t == text || t[-1] != '\n')
		putchar('\n');
}

/* After the join: print each result, append it as a "tool" message. */
static int finish_calls(struct agent *st)
{
	size_t i;
	int r = 0;

	for (i = 0; i < st->ncalls; i++) {
		struct call *c = &st->calls[i];
		json_t *content = json_string(
			c->result ? c->result
				  : "error: the tool gave no result");

		if (!content) /* not UTF-8: not something JSON can carry */
			content = json_string(
				"error: the result is not UTF-8 text");
		printf("  %s %.*s\n", c->tc->name, (int)c->tc->arguments_len,
		       c->tc->arguments);
		print_block("  -> ", json_string_value(content));
		if (json_array_append_new(st->messages,
					  json_pack("{s:s, s:s, s:o}", "role",
						    "tool", "tool_call_id",
						    c->tc->id, "content",
						    content)))
			r = -1;
		json_decref(c->args);
		free(c->result);
	}
	free(st->calls);
	st->calls = NULL;
	return r;
}

static int agent_step(myriad_task_t *self, void *p)
{
	struct agent *st = p;
	const struct myriad_infer_result *res;
	size_t i;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->turn = 1;; st->turn++) {
		free(st->request);
		st->request = json_dumps(st->messages, JSON_COMPACT);
		MYRIAD_IO(st, rc,
			  myriad_infer_chat(self, pool, &st->chat, st->request,
					    tools_json));
		res = myriad_infer_result(&st->chat);
		if (rc < 0) {
			fprintf(stderr, "agent: the model call failed: %s\n",
				res && res->error[0] ? res->error
						     : strerror(-rc));
			st->status = 1;
			break;
		}
		if (res->total_tokens > 0)
			st->tokens += res->total_tokens;
		if (res->prompt_tokens > 0)
			st->prompt_tokens += res->prompt_tokens;
		if (res->completion_tokens > 0)
			st->completion_tokens += res->completion_tokens;
		if (add_assistant(st, res) < 0) {
			fprintf(stderr, "agent: out of memory\n");
			st->status = 1;
			break;
		}
		printf("turn %d: ", st->turn);
		if (res->ntool_calls)
			printf("%zu tool call%s", res->ntool_calls,
			       res->ntool_calls == 1 ? "" : "s");
		else
			printf("an answer");
		printf(" (finish_reason %s, %" PRId64 " tokens)\n",
		       res->finish_reason ? res->finish_reason : "none",
		       res->total_tokens > 0 ? res->total_tokens : 0);
		if (res->refusal)
			print_block("refusal: ", res->refusal);
		if (!res->ntool_calls) {
			print_block("answer: ",
				    res->content ? res->content : "");
			break;
		}
		if (res->content) /* said beside its tool calls */
			print_block("  says: ", res->content);
		/* A limit reached: the calls would never reach the model. */
		if (st->turn >= max_turns || (budget && st->tokens >= budget)) {
			for (i = 0; i < res->ntool_calls; i++)
				printf("  %s %.*s (not run)\n",
				       res->tool_calls[i].name,
				       (int)res->tool_calls[i].arguments_len,
				       res->tool_calls[i].arguments);
			printf("stopped: %s\n", st->turn >= max_turns
							? "the turn limit"
							: "the token budget");
			st->status = 3;
			break;
		}
		start_calls(self, st, res);
		MYRIAD_JOIN(st, self);
		if (!st->calls || finish_calls(st) < 0) {
			fprintf(stderr, "agent: out of memory\n");
			st->status = 1;
			break;
		}
		myriad_infer_release(self, &st->chat);
	}
	printf("turns %d, tokens %" PRId64 " (prompt %" PRId64
	       ", completion %" PRId64 ")\n",
	       st->turn, st->tokens, st->prompt_tokens, st->completion_tokens);
	myriad_infer_release(self, &st->chat);
	free(st->request);
	myriad_task_set_result(self, st->status);
	MYRIAD_END(st);
}

/* {"tools":[...]}: the request's members besides the messages. */
static char *tools_request(void)
{
	json_t *arr = json_array(), *req;
	char *s;
	size_t i;

	for (i = 0; i < agent_ntools; i++)
		json_array_append_new(
			arr, json_pack("{s:s, s:{s:s, s:s, s:o}}", "type",
				       "function", "function", "name",
				       agent_tools[i].name, "description",
				       agent_tools[i].description, "parameters",
				       json_loads(agent_tools[i].parameters, 0,
						  NULL)));
	req = json_pack("{s:o}", "tools", arr);
	s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	return s;
}

static int usage(void)
{
	fprintf(stderr, "usage: agent [--turns N] [--budget TOKENS] PROMPT...\n"
			"  env: MYRIAD_BASE_URL (" DEFAULT_BASE_URL
			"), OPENAI_API_KEY,\n"
			"       MYRIAD_MODEL (" DEFAULT_MODEL
			"), TOOL_SERVER (" DEFAULT_TOOL_SERVER ")\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct myriad_rt_opts o = { .sz = sizeof(o) };
	struct myriad_infer_opts io = { .sz = sizeof(io) };
	struct myriad_infer_endpoint ep = { .sz = sizeof(ep) };
	struct agent root = { 0 };
	char prompt[8192] = "";
	const char *tool_server, *why;
	myriad_rt_t *rt;
	int64_t status = 1;
	int i, err;

	for (i = 1; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		char *end;
		long long v = strtoll(argv[i + 1], &end, 10);

		if (*end || end == argv[i + 1])
			return usage();
		if (!strcmp(argv[i], "--turns") && v > 0 && v <= 1000)
			max_turns = (int)v;
		else if (!strcmp(argv[i], "--budget") && v >= 0)
			budget = v;
		else
			return usage();
	}
	for (; i < argc; i++)
		snprintf(prompt + strlen(prompt),
			 sizeof(prompt) - strlen(prompt), "%s%s",
			 *prompt ? " " : "", argv[i]);
	if (!*prompt)
		return usage();

	ep.base_url = getenv("MYRIAD_BASE_URL") ? getenv("MYRIAD_BASE_URL")
						: DEFAULT_BASE_URL;
	ep.model =
		getenv("MYRIAD_MODEL") ? getenv("MYRIAD_MODEL") : DEFAULT_MODEL;
	ep.api_key_env = getenv("OPENAI_API_KEY") ? "OPENAI_API_KEY" : NULL;
	tool_server = getenv("TOOL_SERVER") ? getenv("TOOL_SERVER")
					    : DEFAULT_TOOL_SERVER;
	why = tool_server_set(tool_server);
	if (why) /* only fetch needs it: it tells the model so */
		fprintf(stderr, "agent: TOOL_SERVER '%s': %s\n", tool_server,
			why);
	tools_json = tools_request();
	root.messages =
		json_pack("[{s:s, s:s}]", "role", "user", "content", prompt);
	if (!tools_json || !root.messages) {
		fprintf(stderr, "agent: out of memory\n");
		return 1;
	}

	rt = myriad_rt_create(&o, &err);
	if (!rt) {
		fprintf(stderr, "agent: myriad_rt_create: %s\n",
			strerror(-err));
		return 1;
	}
	pool = myriad_infer_create(rt, &io, &err);
	if (!pool || (err = myriad_infer_add(pool, &ep)) < 0) {
		fprintf(stderr, "agent: the model at %s: %s\n", ep.base_url,
			strerror(-err));
		goto out;
	}
	printf("model %s at %s; tools:", ep.model, ep.base_url);
	for (i = 0; i < (int)agent_ntools; i++)
		printf(" %s", agent_tools[i].name);
	printf("\n");
	print_block("user: ", prompt);
	if (myriad_rt_block_on(rt, agent_step, &root, sizeof(root), &status))
		status = 1;
out:
	if (pool)
		myriad_infer_destroy(pool);
	myriad_rt_destroy(rt);
	json_decref(root.messages);
	free(tools_json);
	return (int)status;
}
