/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/request.c: the body of a chat request, read with jansson and
 * checked field by field as the API checks it (a 400 names the field in
 * "param"), the model against --models (404 model_not_found), and what the
 * request bodies' readers share.
 */
#include "llm.h"

/* A 400 invalid_request_error naming the field. */
void bad_param(struct conn *c, const char *param, const char *code,
	       const char *msg)
{
	reply_error_p(c, 400, "invalid_request_error", param, code, msg, 0);
}

/*
 * v's JSON text as jansson writes it compact (what the inference client
 * sends) in L.enc, grown as needed; its length. The prompt tokens and the
 * embeddings are taken from this text, so that a compact request counts
 * its own bytes.
 */
size_t j_text(const json_t *v)
{
	size_t f = JSON_COMPACT | JSON_ENCODE_ANY;
	size_t n = json_dumpb(v, L.enc, L.ecap, f);

	if (n > L.ecap) {
		L.ecap = n + 4096;
		L.enc = srv_xrealloc(L.enc, L.ecap);
		n = json_dumpb(v, L.enc, L.ecap, f);
	}
	return n;
}

/* The request's "model"; -1 after answering 400 when it is not usable. */
int model_field(struct conn *c, const json_t *v)
{
	size_t n;

	if (!json_is_string(v)) {
		bad_param(c, "model", "invalid_type",
			  "Invalid type for 'model': expected a string.");
		return -1;
	}
	/* Kept as JSON text without its quotes: the answers print it. */
	n = j_text(v) - 2;
	if (n > MODEL_MAX) {
		bad_param(c, "model", NULL, "'model' is too long");
		return -1;
	}
	memcpy(c->r.model, L.enc + 1, n);
	c->r.model[n] = 0;
	return 0;
}

/*
 * With --models, the model must be one of them (404 model_not_found, as
 * the API answers, and -1); a request without one gets the first. given:
 * the request named its model (in c->r.model).
 */
int model_check(struct conn *c, int given)
{
	char msg[MODEL_MAX + 128];
	size_t i;

	if (!O.nmodels)
		return 0;
	if (!given) {
		strcpy(c->r.model, O.model_text[0]);
		return 0;
	}
	for (i = 0; i < O.nmodels; i++)
		if (!strcmp(c->r.model, O.model_text[i]))
			return 0;
	snprintf(msg, sizeof(msg),
		 "The model `%s` does not exist or you do not have access to "
		 "it.",
		 c->r.model);
	reply_error_p(c, 404, "invalid_request_error", NULL, "model_not_found",
		      msg, 0);
	return -1;
}

/* The body as a JSON object; NULL after answering 400. */
json_t *body_object(struct conn *c, const char *b, size_t n)
{
	json_t *o = json_loadb(b, n, JSON_ALLOW_NUL, NULL);

	if (!json_is_object(o)) {
		json_decref(o);
		bad_param(c, NULL, NULL,
			  "We could not parse the JSON body of your request.");
		return NULL;
	}
	return o;
}

/* Drop what the connection's last request kept. */
void req_clear(struct conn *c)
{
	free(c->r.body);
	c->r.body = NULL;
	json_decref(c->r.ans);
	c->r.ans = NULL;
	strcpy(c->r.model, O.nmodels ? O.model_text[0] : "mock");
	c->r.stream = 0;
	c->r.max_tokens = 0;
	c->r.n = 1;
	c->r.include_usage = 0;
	c->r.answer = A_TEXT;
}

/* The members of a chat request that decide the answer. */
struct chat {
	const json_t *msgs, *tools, *choice, *sopts;
	int have_model, parallel, parallel_given;
};

/* "n": null or 1..128. */
static int n_field(struct conn *c, const json_t *v)
{
	char msg[160];
	json_int_t n;

	if (json_is_null(v))
		return 0;
	if (!json_is_integer(v)) {
		bad_param(c, "n", "invalid_type",
			  "Invalid type for 'n': expected an integer.");
		return -1;
	}
	n = json_integer_value(v);
	if (n < 1 || n > MAX_CHOICES) {
		snprintf(msg, sizeof(msg),
			 "Invalid 'n': integer %s value. Expected a value "
			 "%s %d, but got %" JSON_INTEGER_FORMAT " instead.",
			 n < 1 ? "below minimum" : "above maximum",
			 n < 1 ? ">=" : "<=", n < 1 ? 1 : MAX_CHOICES, n);
		bad_param(c, "n",
			  n < 1 ? "integer_below_min_value"
				: "integer_above_max_value",
			  msg);
		return -1;
	}
	c->r.n = (uint8_t)n;
	return 0;
}

static int messages_field(struct conn *c, const json_t *v)
{
	const json_t *m;
	size_t i;

	if (!json_is_array(v)) {
		bad_param(c, "messages", "invalid_type",
			  "'messages' must be an array");
		return -1;
	}
	c->r.nmsg = 0;
	json_array_foreach(v, i, m)
	{
		if (!json_is_object(m)) {
			bad_param(c, "messages", "invalid_type",
				  "each message must be an object");
			return -1;
		}
		c->r.nmsg++;
	}
	c->r.prompt_tokens = (uint32_t)(j_text(v) / 4 + c->r.nmsg);
	return 0;
}

/* "tools": null or an array of {"type":"function","function":{"name"}}. */
static int tools_field(struct conn *c, const json_t *v)
{
	const json_t *t, *f, *name;
	size_t i;

	if (json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		bad_param(c, "tools", "invalid_type",
			  "Invalid type for 'tools': expected an array.");
		return -1;
	}
	json_array_foreach(v, i, t)
	{
		f = json_object_get(t, "function");
		name = json_object_get(f, "name");
		if (!json_is_object(t) ||
		    !json_is_string(json_object_get(t, "type")) ||
		    strcmp(json_string_value(json_object_get(t, "type")),
			   "function") ||
		    !json_is_string(name) || !json_string_length(name)) {
			bad_param(c, "tools", "invalid_value",
				  "Each of 'tools' must be {\\\"type\\\": "
				  "\\\"function\\\", \\\"function\\\": "
				  "{\\\"name\\\": ...}}.");
			return -1;
		}
	}
	c->r.prompt_tokens += (uint32_t)(j_text(v) / 4);
	return 0;
}

/* "tool_choice": "none", "auto", "required" or a named function. */
static int choice_ok(const json_t *v)
{
	const char *s = json_string_value(v);

	if (s)
		return !strcmp(s, "none") || !strcmp(s, "auto") ||
		       !strcmp(s, "required");
	return json_is_string(json_object_get(v, "type")) &&
	       !strcmp(json_string_value(json_object_get(v, "type")),
		       "function") &&
	       json_is_string(
		       json_object_get(json_object_get(v, "function"), "name"));
}

/* The members of a chat request, in their order; -1 after a 400. */
static int chat_fields(struct conn *c, json_t *o, struct chat *ch)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v)
	{
		if (!strcmp(k, "model")) {
			if (model_field(c, v))
				return -1;
			ch->have_model = 1;
		} else if (!strcmp(k, "messages")) {
			if (messages_field(c, v))
				return -1;
			ch->msgs = v;
		} else if (!strcmp(k, "stream")) {
			if (json_is_true(v))
				c->r.stream = 1;
			else if (json_is_false(v) || json_is_null(v))
				c->r.stream = 0;
			else {
				bad_param(c, "stream", "invalid_type",
					  "'stream' must be a boolean");
				return -1;
			}
		} else if (!strcmp(k, "max_tokens") ||
			   !strcmp(k, "max_completion_tokens")) {
			json_int_t t;

			if (json_is_null(v))
				continue;
			t = json_is_integer(v) ? json_integer_value(v) : 0;
			if (t < 1) {
				bad_param(c, k, NULL,
					  "'max_tokens' must be a positive "
					  "integer");
				return -1;
			}
			c->r.max_tokens = t > 1000000 ? 1000000 : (uint32_t)t;
		} else if (!strcmp(k, "n")) {
			if (n_field(c, v))
				return -1;
		} else if (!strcmp(k, "stream_options")) {
			if (!json_is_null(v))
				ch->sopts = v;
		} else if (!strcmp(k, "tools")) {
			ch->tools = v;
		} else if (!strcmp(k, "tool_choice")) {
			if (!json_is_null(v))
				ch->choice = v;
		} else if (!strcmp(k, "parallel_tool_calls")) {
			ch->parallel_given = !json_is_null(v);
			if (json_is_false(v))
				ch->parallel = 0;
			else if (!json_is_true(v) && !json_is_null(v)) {
				bad_param(c, k, "invalid_type",
					  "'parallel_tool_calls' must be a "
					  "boolean");
				return -1;
			}
		}
	}
	return 0;
}

/*
 * What depends on several members: stream_options only with a stream,
 * tool_choice and parallel_tool_calls only with tools (the API's rules).
 */
static int chat_check(struct conn *c, struct chat *ch)
{
	const json_t *iu;

	if (ch->sopts) {
		iu = json_object_get(ch->sopts, "include_usage");
		if (!c->r.stream) {
			bad_param(c, "stream_options", NULL,
				  "The 'stream_options' parameter is only "
				  "allowed when 'stream' is enabled.");
			return -1;
		}
		if (!json_is_object(ch->sopts) ||
		    (iu && !json_is_boolean(iu) && !json_is_null(iu))) {
			bad_param(c, "stream_options", "invalid_type",
				  "'stream_options' must be an object with a "
				  "boolean 'include_usage'");
			return -1;
		}
		c->r.include_usage = json_is_true(iu);
	}
	if (ch->tools && tools_field(c, ch->tools))
		return -1;
	if (json_is_array(ch->tools) && !json_array_size(ch->tools))
		ch->tools = NULL; /* an empty list: no tools */
	if (json_is_null(ch->tools))
		ch->tools = NULL;
	if (ch->choice && !choice_ok(ch->choice)) {
		bad_param(
			c, "tool_choice", "invalid_value",
			"Invalid value for 'tool_choice': expected \\\"none\\\", "
			"\\\"auto\\\", \\\"required\\\" or a named function.");
		return -1;
	}
	if ((ch->choice || ch->parallel_given) && !ch->tools) {
		bad_param(c, ch->choice ? "tool_choice" : "parallel_tool_calls",
			  NULL,
			  "Invalid value: 'tool_choice' and "
			  "'parallel_tool_calls' are only allowed when 'tools' "
			  "are specified.");
		return -1;
	}
	return 0;
}

void on_chat(struct conn *c, const char *b, size_t n)
{
	struct chat ch = { .parallel = 1 };
	json_t *o;

	S.chat++;
	c->r.kind = K_CHAT;
	req_clear(c);
	o = body_object(c, b, n);
	if (!o)
		return;
	if (chat_fields(c, o, &ch) || chat_check(c, &ch))
		goto out;
	if (!ch.msgs) {
		bad_param(c, "messages", NULL,
			  "'messages' is a required property");
		goto out;
	}
	if (!c->r.nmsg) {
		bad_param(c, "messages", NULL, "'messages' must not be empty");
		goto out;
	}
	if (model_check(c, ch.have_model))
		goto out;
	if (ch.tools &&
	    !(json_is_string(ch.choice) &&
	      !strcmp(json_string_value(ch.choice), "none")) &&
	    tool_answer(c, ch.msgs, ch.tools, ch.choice, ch.parallel))
		goto out;
	if (c->r.stream)
		S.streams++;
	admit(c);
out:
	json_decref(o);
}
