/* SPDX-License-Identifier: MIT */
/*
 * bench/agents_tools.c: the agents step with tool calls (--tools N): the
 * loop of examples/agent.c, model -> tools -> model, against the mock
 * servers.
 */
#include <unistd.h>

#include <jansson.h>

#include "agents.h"

/*
 * A step, as a tool-calling agent runs it:
 * 1. CPU work: as the plain step (agent_cpu()).
 * 2. LLM call with the tools: the user message names the tool "fetch" N
 *    times with its arguments, which llm-server answers with N tool calls
 *    (servers/README.md, the tool-call rule); the answer must have
 *    finish_reason "tool_calls" and exactly those N calls.
 * 3. The tools: each call runs as a child task, all N in parallel, and
 *    the agent joins them. A call parses its arguments (jansson), sends
 *    the query as a line to the tool server on a connection of its own
 *    (the agent keeps N, one per call, for all its steps; or it takes one
 *    from the shared pool and puts it back) and reads the answer line,
 *    which must be "ok <query>".
 * 4. LLM call with the results: the conversation grows by the answer's
 *    message with its tool_calls and a "tool" message per call (built with
 *    jansson, as the example does); the answer must be final
 *    (finish_reason "stop", content, no tool calls).
 * A step's latency runs from its CPU work to the final answer.
 */

/* The tool the model is offered, the request's only extra member. */
static const char tools_json[] =
	"{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"fetch\","
	"\"description\":\"Ask the tool server a one-line query.\","
	"\"parameters\":{\"type\":\"object\",\"properties\":{\"query\":"
	"{\"type\":\"string\"}},\"required\":[\"query\"]}}}]}";

/* One tool call of a step: its connection, what it asks, its answer. */
struct tslot {
	int fd;		 /* the agent's own connection; -1 with the pool */
	char query[64];	 /* the query the user message asks for */
	char result[96]; /* the tool's answer line; "" if it failed */
};

struct tagent {
	MYRIAD_CORO_FIELD;
	int64_t id, s;
	int k;
	uint32_t hash;
	uint64_t t0;
	struct dialer dial;
	myriad_io_t op;
	myriad_timer_t tm;
	myriad_infer_call_t call;
	json_t *messages;    /* the step's conversation */
	char *req;	     /* the messages as sent */
	struct tslot slot[]; /* G.tools of them */
};

/* A tool call's task: a child of the agent, which joins it. */
struct tcall {
	MYRIAD_CORO_FIELD;
	struct tslot *slot;
	const char *args; /* the model's arguments, valid until the join */
	size_t args_len;
	int64_t id;
	int fd, off, len;
	myriad_io_t op;
	char line[96]; /* the request, then the answer */
};

static int tcall_step(myriad_task_t *self, void *p)
{
	struct tcall *st = p;
	json_t *args;
	const char *q;
	char *nl;
	int rc;

	MYRIAD_BEGIN(st);
	args = json_loadb(st->args, st->args_len, 0, NULL);
	q = json_string_value(json_object_get(args, "query"));
	st->len = q ? snprintf(st->line, sizeof(st->line), "%s\n", q) : -1;
	json_decref(args);
	if (st->len < 0 || st->len >= (int)sizeof(st->line)) {
		agent_fail(st->id, "tool call", 0, "bad arguments");
		return MYRIAD_DONE;
	}
	st->fd = st->slot->fd;
	if (G.tool_ch) {
		MYRIAD_RECV(st, self, G.tool_ch, &st->fd, rc);
		if (rc < 0) {
			agent_fail(st->id, "tool connection pool", rc, NULL);
			return MYRIAD_DONE;
		}
	}
	for (st->off = 0; st->off < st->len; st->off += rc) {
		MYRIAD_IO(st, rc,
			  myriad_io_send(
				  self, &st->op, st->fd, st->line + st->off,
				  (size_t)(st->len - st->off), MSG_NOSIGNAL));
		if (rc <= 0) {
			agent_fail(st->id, "tool send", rc, NULL);
			goto out;
		}
	}
	for (st->off = 0; !memchr(st->line, '\n', (size_t)st->off);
	     st->off += rc) {
		if (st->off >= (int)sizeof(st->line) - 1) {
			agent_fail(st->id, "tool answer", 0,
				   "longer than expected");
			goto out;
		}
		MYRIAD_IO(st, rc,
			  myriad_io_recv(self, &st->op, st->fd,
					 st->line + st->off,
					 sizeof(st->line) - 1 - st->off, 0));
		if (rc <= 0) {
			agent_fail(st->id, "tool recv", rc, NULL);
			goto out;
		}
	}
	nl = memchr(st->line, '\n', (size_t)st->off);
	*nl = 0;
	snprintf(st->slot->result, sizeof(st->slot->result), "%s", st->line);
	if (G.tool_ch && myriad_chan_try_send(G.tool_ch, &st->fd) < 0) {
		agent_fail(st->id, "tool connection pool", -ENOSPC, NULL);
		close(st->fd);
	}
	return MYRIAD_DONE;
out:
	if (G.tool_ch) /* the pool's: the kernel closes it at once */
		close(st->fd);
	MYRIAD_END(st);
}

/* The user message of step s: "fetch {"query":...}" N times. */
static int ask(struct tagent *st)
{
	char text[AGENT_TOOLS_MAX * 80 + 64];
	int n, k;

	n = snprintf(text, sizeof(text),
		     "agent %" PRId64 " step %" PRId64 " fnv %08x:", st->id,
		     st->s, st->hash);
	for (k = 0; k < G.tools; k++) {
		snprintf(st->slot[k].query, sizeof(st->slot[k].query),
			 "agent %" PRId64 " step %" PRId64 " fnv %08x call %d",
			 st->id, st->s, st->hash, k);
		n += snprintf(text + n, sizeof(text) - (size_t)n,
			      " fetch {\"query\":\"%s\"}", st->slot[k].query);
	}
	st->messages =
		json_pack("[{s:s, s:s}]", "role", "user", "content", text);
	st->req = st->messages ? json_dumps(st->messages, JSON_COMPACT) : NULL;
	return st->req ? 0 : -1;
}

/* The answer with its tool calls, and a "tool" message per call. */
static int answer(struct tagent *st, const struct myriad_infer_result *r)
{
	json_t *calls = json_array(), *m;
	size_t k;

	for (k = 0; k < r->ntool_calls; k++)
		json_array_append_new(
			calls,
			json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id",
				  r->tool_calls[k].id, "type", "function",
				  "function", "name", r->tool_calls[k].name,
				  "arguments", r->tool_calls[k].arguments,
				  r->tool_calls[k].arguments_len));
	m = json_pack("{s:s, s:n, s:o}", "role", "assistant", "content",
		      "tool_calls", calls);
	if (json_array_append_new(st->messages, m))
		return -1;
	for (k = 0; k < r->ntool_calls; k++)
		if (json_array_append_new(
			    st->messages,
			    json_pack("{s:s, s:s, s:s}", "role", "tool",
				      "tool_call_id", r->tool_calls[k].id,
				      "content", st->slot[k].result)))
			return -1;
	free(st->req);
	st->req = json_dumps(st->messages, JSON_COMPACT);
	return st->req ? 0 : -1;
}

static void step_free(struct tagent *st)
{
	json_decref(st->messages);
	st->messages = NULL;
	free(st->req);
	st->req = NULL;
}

/* The LLM call's failure, or NULL if it came back as 'finish'. */
static const char *llm_check(int rc, const struct myriad_infer_result *r,
			     const char *finish, size_t ncalls)
{
	if (rc < 0)
		return r && r->error[0] ? r->error : strerror(-rc);
	if (!r->finish_reason || strcmp(r->finish_reason, finish))
		return "unexpected finish_reason";
	if (r->ntool_calls != ncalls)
		return "unexpected number of tool calls";
	if (!ncalls && (!r->content || !r->content_len))
		return "empty choices[0].message.content";
	if (r->attempts > 1)
		atomic_fetch_add(&G.llm_extra, r->attempts - 1);
	return NULL;
}

static int agent_tools_step(myriad_task_t *self, void *p)
{
	struct tagent *st = p;
	const struct myriad_infer_result *res;
	struct tcall c;
	const char *why;
	size_t k;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->k = 0; st->k < G.tools; st->k++)
		st->slot[st->k].fd = -1;
	/* The agent's own connections, one per call, kept for all steps. */
	for (st->k = 0; !G.tool_ch && st->k < G.tools; st->k++) {
		MYRIAD_IO(st, rc,
			  dial(self, &st->dial, &st->op, &st->tm, &G.tool_addr,
			       &G.retries));
		if (rc < 0) {
			agent_fail(st->id, st->dial.what, rc, NULL);
			goto out_close;
		}
		st->slot[st->k].fd = rc;
	}
	for (st->s = 0; st->s < G.steps; st->s++) {
		/* 1. CPU work. */
		st->t0 = myriad_now_ns();
		st->hash = agent_cpu((uint32_t)(st->id * 1000003 + st->s));
		/* 2. The model, offered the tool. */
		if (ask(st) < 0) {
			agent_fail(st->id, "request", -ENOMEM, NULL);
			goto out_close;
		}
		MYRIAD_IO(st, rc,
			  myriad_infer_chat(self, G.pool, &st->call, st->req,
					    tools_json));
		res = myriad_infer_result(&st->call);
		why = llm_check(rc, res, "tool_calls", (size_t)G.tools);
		if (why) {
			agent_fail(st->id, "LLM call (tools)", 0, why);
			goto out_close;
		}
		/* 3. Its calls, each a child task, in parallel. */
		for (k = 0; k < res->ntool_calls; k++) {
			memset(&c, 0, sizeof(c));
			c.slot = &st->slot[k];
			c.slot->result[0] = 0;
			c.args = res->tool_calls[k].arguments;
			c.args_len = res->tool_calls[k].arguments_len;
			c.id = st->id;
			spawn(self, tcall_step, &c, sizeof(c), 0);
		}
		MYRIAD_JOIN(st, self);
		for (k = 0; k < (size_t)G.tools; k++) {
			if (!st->slot[k].result[0])
				goto out_close; /* the call said why */
			if (strncmp(st->slot[k].result, "ok ", 3) ||
			    strcmp(st->slot[k].result + 3, st->slot[k].query)) {
				agent_fail(st->id, "tool answer", 0,
					   "not \"ok <query>\"");
				goto out_close;
			}
		}
		/* 4. The model, given the results. */
		if (answer(st, myriad_infer_result(&st->call)) < 0) {
			agent_fail(st->id, "request", -ENOMEM, NULL);
			goto out_close;
		}
		MYRIAD_IO(st, rc,
			  myriad_infer_chat(self, G.pool, &st->call, st->req,
					    tools_json));
		why = llm_check(rc, myriad_infer_result(&st->call), "stop", 0);
		if (why) {
			agent_fail(st->id, "LLM call (results)", 0, why);
			goto out_close;
		}
		G.lats[st->id * G.steps + st->s] = myriad_now_ns() - st->t0;
		myriad_infer_release(self, &st->call);
		step_free(st);
	}
	atomic_fetch_xor_explicit(&G.hash_sink, st->hash, memory_order_relaxed);
	for (st->k = 0; !G.tool_ch && st->k < G.tools; st->k++) {
		MYRIAD_IO(st, rc,
			  myriad_io_close(self, &st->op, st->slot[st->k].fd));
		if (rc < 0) {
			agent_fail(st->id, "close", rc, NULL);
			return MYRIAD_DONE;
		}
	}
	count_down();
	return MYRIAD_DONE;
out_close:
	/* After a failure: the kernel closes them at once. */
	step_free(st);
	for (st->k = 0; st->k < G.tools; st->k++)
		if (st->slot[st->k].fd >= 0)
			close(st->slot[st->k].fd);
	MYRIAD_END(st);
}

static struct tagent *init; /* the root's, for each spawn */

static size_t agent_tools_size(void)
{
	return sizeof(struct tagent) + (size_t)G.tools * sizeof(struct tslot);
}

int agents_tools_setup(void)
{
	init = calloc(1, agent_tools_size());
	if (!init) {
		fprintf(stderr, "myriad-bench: agents: out of memory\n");
		return 1;
	}
	return 0;
}

void agents_tools_teardown(void)
{
	free(init);
	init = NULL;
}

void agent_tools_spawn(myriad_task_t *self, int64_t id)
{
	memset(init, 0, agent_tools_size());
	init->id = id;
	spawn(self, agent_tools_step, init, agent_tools_size(), 0);
}
