/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/request.c: the bodies of chat and embeddings requests, read
 * with jansson and checked field by field (a 400 names the field); an
 * embeddings answer is built on arrival.
 */
#include "llm.h"

#include <jansson.h>

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3ull;
	return h;
}

static void bad(struct conn *c, const char *msg)
{
	reply_error(c, 400, "invalid_request_error", NULL, msg, 0);
}

/*
 * v's JSON text as jansson writes it compact (what the inference client
 * sends) in L.enc, grown as needed; its length. The prompt tokens and the
 * embeddings are taken from this text, so that a compact request counts
 * its own bytes.
 */
static size_t j_text(const json_t *v)
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
static int model_field(struct conn *c, const json_t *v)
{
	size_t n;

	if (!json_is_string(v)) {
		bad(c, "'model' must be a string");
		return -1;
	}
	/* Kept as JSON text without its quotes: the answers print it. */
	n = j_text(v) - 2;
	if (n > MODEL_MAX) {
		bad(c, "'model' is too long");
		return -1;
	}
	memcpy(c->r.model, L.enc + 1, n);
	c->r.model[n] = 0;
	return 0;
}

/* The body as a JSON object; NULL after answering 400. */
static json_t *body_object(struct conn *c, const char *b, size_t n)
{
	json_t *o = json_loadb(b, n, JSON_ALLOW_NUL, NULL);

	if (!json_is_object(o)) {
		json_decref(o);
		bad(c, "We could not parse the JSON body of your request.");
		return NULL;
	}
	return o;
}

/* The members of a chat request, in their order; -1 after a 400. */
static int chat_fields(struct conn *c, json_t *o, int *have_msgs)
{
	const char *k;
	json_t *v, *m;
	size_t i;

	json_object_foreach(o, k, v)
	{
		if (!strcmp(k, "model")) {
			if (model_field(c, v))
				return -1;
		} else if (!strcmp(k, "messages")) {
			if (!json_is_array(v)) {
				bad(c, "'messages' must be an array");
				return -1;
			}
			c->r.nmsg = 0;
			json_array_foreach(v, i, m)
			{
				if (!json_is_object(m)) {
					bad(c, "each message must be an "
					       "object");
					return -1;
				}
				c->r.nmsg++;
			}
			c->r.prompt_tokens =
				(uint32_t)(j_text(v) / 4 + c->r.nmsg);
			*have_msgs = 1;
		} else if (!strcmp(k, "stream")) {
			if (json_is_true(v))
				c->r.stream = 1;
			else if (json_is_false(v) || json_is_null(v))
				c->r.stream = 0;
			else {
				bad(c, "'stream' must be a boolean");
				return -1;
			}
		} else if (!strcmp(k, "max_tokens") ||
			   !strcmp(k, "max_completion_tokens")) {
			json_int_t t;

			if (json_is_null(v))
				continue;
			t = json_is_integer(v) ? json_integer_value(v) : 0;
			if (t < 1) {
				bad(c, "'max_tokens' must be a positive "
				       "integer");
				return -1;
			}
			c->r.max_tokens = t > 1000000 ? 1000000 : (uint32_t)t;
		}
	}
	return 0;
}

void on_chat(struct conn *c, const char *b, size_t n)
{
	json_t *o;
	int have_msgs = 0;

	S.chat++;
	strcpy(c->r.model, "mock");
	c->r.kind = K_CHAT;
	c->r.stream = 0;
	c->r.max_tokens = 0;
	o = body_object(c, b, n);
	if (!o)
		return;
	if (chat_fields(c, o, &have_msgs))
		goto out;
	if (!have_msgs) {
		bad(c, "'messages' is a required property");
		goto out;
	}
	if (!c->r.nmsg) {
		bad(c, "'messages' must not be empty");
		goto out;
	}
	if (c->r.stream)
		S.streams++;
	admit(c);
out:
	json_decref(o);
}

/* Eight deterministic floats in [-1, 1) from an input's hash. */
static void emb_values(uint64_t h)
{
	int j;

	for (j = 0; j < 8; j++) {
		uint64_t s = h + (uint64_t)j;
		double v = srv_rand01(&s) * 2 - 1;

		sc_printf("%s%.6f", j ? "," : "", v);
	}
}

/*
 * The "data" of an embeddings answer into the scratch buffer, an
 * embedding per input; the inputs' count, or 0 after a 400.
 */
static uint32_t emb_data(struct conn *c, const json_t *in, uint32_t *tokens)
{
	uint32_t count = 0;
	const json_t *a;
	size_t i, n;

	if (json_is_string(in) ||
	    (json_is_array(in) && json_is_number(json_array_get(in, 0)))) {
		/* one input: a string, or one array of token ids */
		sc_printf("{\"object\":\"embedding\",\"index\":0,"
			  "\"embedding\":[");
		n = j_text(in);
		emb_values(fnv1a(L.enc, n));
		sc_printf("]}");
		*tokens = (uint32_t)(n / 4 + 1);
		return 1;
	}
	if (!json_is_array(in)) {
		bad(c, "'input' must be a string or an array");
		return 0;
	}
	json_array_foreach(in, i, a)
	{
		if (!json_is_string(a) && !json_is_array(a)) {
			bad(c, "'input' must be a string or an array "
			       "of strings or token arrays");
			return 0;
		}
		if (++count > MAX_INPUTS) {
			bad(c, "'input' has more than 2048 items");
			return 0;
		}
		sc_printf("%s{\"object\":\"embedding\",\"index\":%u,"
			  "\"embedding\":[",
			  count > 1 ? "," : "", count - 1);
		n = j_text(a);
		emb_values(fnv1a(L.enc, n));
		sc_printf("]}");
		*tokens += (uint32_t)(n / 4 + 1);
	}
	if (!count)
		bad(c, "'input' must not be empty");
	return count;
}

void on_embed(struct conn *c, const char *b, size_t n)
{
	json_t *o, *in = NULL, *v;
	uint32_t count, tokens = 0;
	const char *k;

	S.embeddings++;
	strcpy(c->r.model, "mock");
	c->r.kind = K_EMBED;
	c->r.stream = 0;
	o = body_object(c, b, n);
	if (!o)
		return;
	json_object_foreach(o, k, v)
	{
		if (!strcmp(k, "model")) {
			if (model_field(c, v))
				goto out;
		} else if (!strcmp(k, "input")) {
			in = v;
		}
	}
	if (!in) {
		bad(c, "'input' is a required property");
		goto out;
	}
	sc_reset();
	sc_printf("{\"object\":\"list\",\"data\":[");
	count = emb_data(c, in, &tokens);
	if (!count)
		goto out;
	sc_printf("],\"model\":\"%s\",\"usage\":{\"prompt_tokens\":%u,"
		  "\"total_tokens\":%u}}",
		  c->r.model, tokens, tokens);
	c->r.nmsg = count;
	c->r.prompt_tokens = tokens;
	free(c->r.body);
	c->r.body = malloc(sc_len);
	if (!c->r.body) {
		reply_500(c);
		goto out;
	}
	memcpy(c->r.body, L.scratch, sc_len);
	c->r.body_len = sc_len;
	admit(c);
out:
	json_decref(o);
}
