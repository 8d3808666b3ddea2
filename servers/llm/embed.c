/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/embed.c: an embeddings request (one input or a batch of
 * strings or token arrays; dimensions; float or base64 vectors) and its
 * answer, built on arrival: a vector per input from a hash of its text.
 */
#include "llm.h"

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3ull;
	return h;
}

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "abcdefghijklmnopqrstuvwxyz0123456789+/";

/* n bytes as base64 (RFC 4648, padded) into the scratch buffer. */
static void sc_base64(const unsigned char *p, size_t n)
{
	static char out[(MAX_DIMS * 4 + 2) / 3 * 4 + 1];
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
			     p[i + 2];

		out[o++] = b64_digits[v >> 18];
		out[o++] = b64_digits[(v >> 12) & 63];
		out[o++] = b64_digits[(v >> 6) & 63];
		out[o++] = b64_digits[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 |
			     (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		out[o++] = b64_digits[v >> 18];
		out[o++] = b64_digits[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_digits[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = 0;
	sc_printf("\"%s\"", out);
}

/*
 * dims deterministic values in [-1, 1) from an input's hash: as JSON
 * numbers with 6 decimals, or (base64) as the little-endian float32 of
 * those same numbers, which is what an SDK decodes either answer to.
 */
static void emb_values(uint64_t h, unsigned dims, int b64)
{
	static unsigned char raw[MAX_DIMS * 4];
	char num[32];
	unsigned j;

	if (!b64)
		sc_printf("[");
	for (j = 0; j < dims; j++) {
		uint64_t s = h + (uint64_t)j;
		double v = srv_rand01(&s) * 2 - 1;
		float f;
		uint32_t u;

		if (!b64) {
			sc_printf("%s%.6f", j ? "," : "", v);
			continue;
		}
		snprintf(num, sizeof(num), "%.6f", v);
		f = (float)strtod(num, NULL);
		memcpy(&u, &f, 4);
		raw[4 * j] = (unsigned char)u;
		raw[4 * j + 1] = (unsigned char)(u >> 8);
		raw[4 * j + 2] = (unsigned char)(u >> 16);
		raw[4 * j + 3] = (unsigned char)(u >> 24);
	}
	if (b64)
		sc_base64(raw, 4 * (size_t)dims);
	else
		sc_printf("]");
}

struct emb_opts {
	unsigned dims;
	int b64;
};

/* A token array: non-empty, integers only. */
static int tokens_ok(const json_t *a)
{
	const json_t *t;
	size_t i;

	json_array_foreach(a, i, t)
	{
		if (!json_is_integer(t) || json_integer_value(t) < 0)
			return 0;
	}
	return json_array_size(a) > 0;
}

/* One input's data[] entry; its tokens. */
static uint32_t emb_one(const json_t *in, uint32_t index,
			const struct emb_opts *eo)
{
	size_t n = j_text(in);

	sc_printf("%s{\"object\":\"embedding\",\"index\":%u,\"embedding\":",
		  index ? "," : "", index);
	emb_values(fnv1a(L.enc, n), eo->dims, eo->b64);
	sc_printf("}");
	return (uint32_t)(n / 4 + 1);
}

/*
 * The "data" of an embeddings answer into the scratch buffer, an
 * embedding per input; the inputs' count, or 0 after a 400.
 */
static uint32_t emb_data(struct conn *c, const json_t *in, uint32_t *tokens,
			 const struct emb_opts *eo)
{
	uint32_t count = 0;
	const json_t *a;
	size_t i;

	if (json_is_string(in) ||
	    (json_is_array(in) && json_is_number(json_array_get(in, 0)))) {
		/* one input: a string, or one array of token ids */
		if (!json_is_string(in) && !tokens_ok(in)) {
			bad_param(c, "input", "invalid_type",
				  "'input' token arrays must hold "
				  "non-negative integers");
			return 0;
		}
		*tokens = emb_one(in, 0, eo);
		return 1;
	}
	if (!json_is_array(in)) {
		bad_param(c, "input", "invalid_type",
			  "'input' must be a string or an array");
		return 0;
	}
	json_array_foreach(in, i, a)
	{
		if (!json_is_string(a) && !(json_is_array(a) && tokens_ok(a))) {
			bad_param(c, "input", "invalid_type",
				  "'input' must be a string or an array "
				  "of strings or token arrays");
			return 0;
		}
		if (++count > MAX_INPUTS) {
			bad_param(c, "input", NULL,
				  "'input' has more than 2048 items");
			return 0;
		}
		*tokens += emb_one(a, count - 1, eo);
	}
	if (!count)
		bad_param(c, "input", NULL, "'input' must not be empty");
	return count;
}

/* encoding_format and dimensions; -1 after a 400. */
static int emb_options(struct conn *c, const json_t *fmt, const json_t *dims,
		       struct emb_opts *eo)
{
	const char *f = json_string_value(fmt);

	if (fmt && !json_is_null(fmt)) {
		if (!f || (strcmp(f, "float") && strcmp(f, "base64"))) {
			bad_param(c, "encoding_format", "invalid_value",
				  "Invalid value for 'encoding_format': "
				  "expected \\\"float\\\" or \\\"base64\\\".");
			return -1;
		}
		eo->b64 = !strcmp(f, "base64");
	}
	if (dims && !json_is_null(dims)) {
		json_int_t d =
			json_is_integer(dims) ? json_integer_value(dims) : 0;

		if (d < 1 || d > MAX_DIMS) {
			bad_param(c, "dimensions",
				  d < 1 ? "integer_below_min_value"
					: "integer_above_max_value",
				  "Invalid 'dimensions': expected an integer "
				  "from 1 to 4096.");
			return -1;
		}
		eo->dims = (unsigned)d;
	}
	return 0;
}

void on_embed(struct conn *c, const char *b, size_t n)
{
	json_t *o, *in = NULL, *fmt = NULL, *dims = NULL, *v;
	struct emb_opts eo = { .dims = 8, .b64 = 0 };
	uint32_t count, tokens = 0;
	int have_model = 0;
	const char *k;

	S.embeddings++;
	c->r.kind = K_EMBED;
	req_clear(c);
	o = body_object(c, b, n);
	if (!o)
		return;
	json_object_foreach(o, k, v)
	{
		if (!strcmp(k, "model")) {
			if (model_field(c, v))
				goto out;
			have_model = 1;
		} else if (!strcmp(k, "input")) {
			in = v;
		} else if (!strcmp(k, "encoding_format")) {
			fmt = v;
		} else if (!strcmp(k, "dimensions")) {
			dims = v;
		}
	}
	if (!in) {
		bad_param(c, "input", NULL, "'input' is a required property");
		goto out;
	}
	if (emb_options(c, fmt, dims, &eo) || model_check(c, have_model))
		goto out;
	sc_reset();
	sc_printf("{\"object\":\"list\",\"data\":[");
	count = emb_data(c, in, &tokens, &eo);
	if (!count)
		goto out;
	sc_printf("],\"model\":\"%s\",\"usage\":{\"prompt_tokens\":%u,"
		  "\"total_tokens\":%u}}",
		  c->r.model, tokens, tokens);
	c->r.nmsg = count;
	c->r.prompt_tokens = tokens;
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
