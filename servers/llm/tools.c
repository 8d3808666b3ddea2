/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/tools.c: the tool-call rule (servers/README.md states it:
 * the contract with examples/agent.c, bench agents --tools and the tests):
 * from a chat request's messages, tools and tool_choice, whether the
 * answer calls tools (which, with which arguments) or, after tool
 * messages, is a final answer quoting their results.
 */
#include "llm.h"

#include <ctype.h>

#define RESULT_MAX 200 /* bytes of each tool result quoted */

/* A message's text: its string content, or its text parts joined by "\n". */
struct text {
	const char *p;
	size_t n;
	char *own;
};

static void msg_text(const json_t *m, struct text *t)
{
	const json_t *c = json_object_get(m, "content"), *part, *x;
	size_t i, len = 0, parts = 0;

	t->p = "";
	t->n = 0;
	t->own = NULL;
	if (json_is_string(c)) {
		t->p = json_string_value(c);
		t->n = json_string_length(c);
		return;
	}
	/* twice: the length, then the text */
	for (int pass = 0; pass < 2 && json_is_array(c); pass++) {
		json_array_foreach(c, i, part)
		{
			x = json_object_get(part, "type");
			if (!json_is_string(x) ||
			    strcmp(json_string_value(x), "text"))
				continue;
			x = json_object_get(part, "text");
			if (!json_is_string(x))
				continue;
			if (pass == 0) {
				len += json_string_length(x) + 1;
				continue;
			}
			if (parts++)
				t->own[t->n++] = '\n';
			memcpy(t->own + t->n, json_string_value(x),
			       json_string_length(x));
			t->n += json_string_length(x);
		}
		if (pass == 0) {
			if (!len)
				return;
			t->own = srv_xrealloc(NULL, len);
			t->p = t->own;
		}
	}
}

static int role_is(const json_t *m, const char *role)
{
	const json_t *r = json_object_get(m, "role");

	return json_is_string(r) && !strcmp(json_string_value(r), role);
}

/*
 * Rule 1: "tool results: <c1>; <c2>; ...", the content of each tool
 * message after the last assistant message, each cut to 200 bytes (back
 * to a UTF-8 character's start, so that the answer stays valid text).
 */
static void final_answer(struct conn *c, const json_t *msgs)
{
	size_t i, n = json_array_size(msgs), from = 0, len, cap = 64, k;
	char *buf = srv_xrealloc(NULL, cap);
	struct text t;

	for (i = n; i > 0; i--)
		if (role_is(json_array_get(msgs, i - 1), "assistant")) {
			from = i;
			break;
		}
	len = (size_t)sprintf(buf, "tool results: ");
	for (i = from, k = 0; i < n; i++) {
		const json_t *m = json_array_get(msgs, i);
		size_t cut;

		if (!role_is(m, "tool"))
			continue;
		msg_text(m, &t);
		cut = t.n;
		if (cut > RESULT_MAX) {
			cut = RESULT_MAX;
			while (cut && ((unsigned char)t.p[cut] & 0xc0) == 0x80)
				cut--;
		}
		if (len + cut + 3 > cap) {
			cap = 2 * (len + cut + 3);
			buf = srv_xrealloc(buf, cap);
		}
		if (k++) {
			memcpy(buf + len, "; ", 2);
			len += 2;
		}
		memcpy(buf + len, t.p, cut);
		len += cut;
		free(t.own);
	}
	c->r.ans = json_stringn_nocheck(buf, len);
	c->r.answer = A_FINAL;
	free(buf);
	if (!c->r.ans)
		srv_die(PROG, "out of memory");
}

/* A call [name, arguments as compact JSON text]; args is taken. */
static void add_call(json_t *calls, const json_t *name, json_t *args)
{
	json_t *pair = json_array();
	char *s = json_dumps(args, JSON_COMPACT);

	if (!pair || !s || json_array_append(pair, (json_t *)name) ||
	    json_array_append_new(pair, json_string_nocheck(s)) ||
	    json_array_append_new(calls, pair))
		srv_die(PROG, "out of memory");
	free(s);
	json_decref(args);
}

/*
 * Arguments from the tool's parameters schema: each property in
 * "required" (all of "properties" without it), by its type: string "x",
 * integer 1, number 1.0, boolean true, array [], object {}; another or no
 * type (or a required name without a property): null.
 */
static json_t *schema_args(const json_t *tool)
{
	const json_t *par = json_object_get(json_object_get(tool, "function"),
					    "parameters");
	const json_t *props = json_object_get(par, "properties");
	const json_t *req = json_object_get(par, "required"), *x;
	json_t *args = json_object(), *names = json_array();
	const char *k;
	size_t i;

	if (json_is_array(req)) {
		json_array_foreach(req, i, x)
		{
			if (json_is_string(x))
				json_array_append(names, (json_t *)x);
		}
	} else if (json_is_object(props)) {
		json_object_foreach((json_t *)props, k, x)
			json_array_append_new(names, json_string_nocheck(k));
	}
	json_array_foreach(names, i, x)
	{
		const json_t *ty = json_object_get(
			json_object_get(props, json_string_value(x)), "type");
		const char *s = NULL;
		json_t *v;
		size_t j;

		if (json_is_string(ty))
			s = json_string_value(ty);
		for (j = 0; json_is_array(ty) && j < json_array_size(ty); j++) {
			s = json_string_value(json_array_get(ty, j));
			if (s && strcmp(s, "null"))
				break;
			s = NULL;
		}
		if (!s)
			v = json_null();
		else if (!strcmp(s, "string"))
			v = json_string("x");
		else if (!strcmp(s, "integer"))
			v = json_integer(1);
		else if (!strcmp(s, "number"))
			v = json_real(1.0);
		else if (!strcmp(s, "boolean"))
			v = json_true();
		else if (!strcmp(s, "array"))
			v = json_array();
		else if (!strcmp(s, "object"))
			v = json_object();
		else
			v = json_null();
		json_object_set_new(args, json_string_value(x), v);
	}
	json_decref(names);
	return args;
}

static const json_t *tool_name(const json_t *tool)
{
	return json_object_get(json_object_get(tool, "function"), "name");
}

static int name_char(unsigned char ch)
{
	return isalnum(ch) || ch == '_' || ch == '-';
}

/*
 * The tools written in the text as a word followed by optional spaces and
 * a JSON object (`calc {"expression":"6*7"}`), in the order they occur,
 * appended to calls; only: that name's first occurrence alone.
 */
static void written_calls(const struct text *t, const json_t *tools,
			  const json_t *only, json_t *calls)
{
	const char *p = t->p;
	size_t i, j, k, n = t->n;
	const json_t *tool, *nm;
	json_error_t err;

	for (i = 0; i < n && json_array_size(calls) < MAX_CALLS; i++) {
		if (!name_char((unsigned char)p[i]) ||
		    (i && name_char((unsigned char)p[i - 1])))
			continue;
		json_array_foreach(tools, k, tool)
		{
			size_t l;
			json_t *obj;

			nm = tool_name(tool);
			l = json_string_length(nm);
			if ((only && !json_equal(nm, (json_t *)only)) ||
			    l > n - i ||
			    memcmp(p + i, json_string_value(nm), l))
				continue;
			for (j = i + l; j < n && p[j] == ' '; j++)
				;
			if (j == n || p[j] != '{')
				continue;
			obj = json_loadb(p + j, n - j, JSON_DISABLE_EOF_CHECK,
					 &err);
			if (!json_is_object(obj)) {
				json_decref(obj);
				continue;
			}
			add_call(calls, nm, obj);
			i = j + (size_t)err.position - 1;
			break;
		}
		if (only && json_array_size(calls))
			return;
	}
}

/* The calls of rule 2 for the last user message's text. */
static void rule_calls(const struct text *t, const json_t *tools, json_t *calls)
{
	const json_t *tool, *nm;
	size_t k;

	written_calls(t, tools, NULL, calls);
	if (json_array_size(calls))
		return;
	json_array_foreach(tools, k, tool)
	{
		nm = tool_name(tool);
		if (memmem(t->p, t->n, json_string_value(nm),
			   json_string_length(nm)) &&
		    json_array_size(calls) < MAX_CALLS)
			add_call(calls, nm, schema_args(tool));
	}
	if (!json_array_size(calls)) {
		tool = json_array_get(tools, 0);
		add_call(calls, tool_name(tool), schema_args(tool));
	}
}

/*
 * The answer to a request with tools (tool_choice not "none"): rule 1
 * (the last message is a tool's: a final answer) or rule 2 (tool calls).
 * Returns -1 after a 400 (tool_choice names a function not in tools).
 */
int tool_answer(struct conn *c, const json_t *msgs, const json_t *tools,
		const json_t *choice, int parallel)
{
	const json_t *forced = NULL, *tool = NULL, *m;
	json_t *calls;
	struct text t = { "", 0, NULL };
	size_t i, n = json_array_size(msgs);

	if (role_is(json_array_get(msgs, n - 1), "tool")) {
		final_answer(c, msgs);
		return 0;
	}
	if (json_is_object(choice)) {
		forced = json_object_get(json_object_get(choice, "function"),
					 "name");
		json_array_foreach(tools, i, m)
		{
			if (json_equal(tool_name(m), (json_t *)forced)) {
				tool = m;
				break;
			}
		}
		if (!tool) {
			bad_param(c, "tool_choice", "invalid_value",
				  "Invalid value for 'tool_choice': the named "
				  "function is not in 'tools'.");
			return -1;
		}
	}
	for (i = n; i > 0; i--) {
		m = json_array_get(msgs, i - 1);
		if (role_is(m, "user")) {
			msg_text(m, &t);
			break;
		}
	}
	calls = json_array();
	if (!calls)
		srv_die(PROG, "out of memory");
	if (forced) {
		written_calls(&t, tools, forced, calls);
		if (!json_array_size(calls))
			add_call(calls, forced, schema_args(tool));
	} else {
		rule_calls(&t, tools, calls);
	}
	free(t.own);
	while (!parallel && json_array_size(calls) > 1)
		json_array_remove(calls, json_array_size(calls) - 1);
	c->r.ans = calls;
	c->r.answer = A_TOOLS;
	S.tool_calls += json_array_size(calls) * c->r.n;
	return 0;
}
