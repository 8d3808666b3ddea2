/* SPDX-License-Identifier: MIT */
/*
 * infer/parse.c: a 2xx JSON body parsed into the result by the task: a
 * chat.completion's choices (content, refusal, tool calls, finish_reason),
 * an embeddings list (float arrays or base64 of little-endian float32),
 * usage and its details, the server's timings.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "infer/internal.h"

static const char *str_or_null(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t int_or(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* usage {prompt_tokens, ..., *_details} into the result. */
void usage_read(struct myriad_infer_result *r, json_t *u)
{
	json_t *d;

	if (!json_is_object(u))
		return;
	r->prompt_tokens = int_or(u, "prompt_tokens");
	r->completion_tokens = int_or(u, "completion_tokens");
	r->total_tokens = int_or(u, "total_tokens");
	d = json_object_get(u, "prompt_tokens_details");
	if (json_is_object(d))
		r->cached_tokens = int_or(d, "cached_tokens");
	d = json_object_get(u, "completion_tokens_details");
	if (json_is_object(d))
		r->reasoning_tokens = int_or(d, "reasoning_tokens");
}

/* A malformed body: the error for a person; 'fmt' takes the index. */
#define bad(c, fmt, i) \
	(snprintf((c)->err, sizeof((c)->err), fmt, i), MYRIAD_INFER_EBODY)

/* message.tool_calls[] of a choice. */
static int tool_calls(struct icall *c, json_t *tc,
		      struct myriad_infer_choice *ch)
{
	struct myriad_infer_tool_call *t;
	size_t j;

	if (!json_is_array(tc) || !json_array_size(tc))
		return 0;
	t = arena_alloc(&c->arena, json_array_size(tc) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (j = 0; j < json_array_size(tc); j++) {
		json_t *x = json_array_get(tc, j);
		json_t *f = json_object_get(x, "function");
		json_t *a = json_object_get(f, "arguments");
		const char *id = str_or_null(x, "id");
		const char *type = str_or_null(x, "type");

		if (!json_is_object(f) || !str_or_null(f, "name"))
			return bad(c, "tool_calls[%zu] has no function.name",
				   j);
		t[j].id = id ? id : "";
		t[j].type = type ? type : "function";
		t[j].name = str_or_null(f, "name");
		if (json_is_string(a)) {
			t[j].arguments = json_string_value(a);
			t[j].arguments_len = json_string_length(a);
		} else if (json_is_object(a)) {
			/* Some servers send the object itself: as text. */
			char *txt = json_dumps(a, JSON_COMPACT);

			if (!txt)
				return -ENOMEM;
			t[j].arguments_len = strlen(txt);
			t[j].arguments = arena_strndup(&c->arena, txt,
						       t[j].arguments_len);
			free(txt);
			if (!t[j].arguments)
				return -ENOMEM;
		} else {
			t[j].arguments = "";
			t[j].arguments_len = 0;
		}
	}
	ch->tool_calls = t;
	ch->ntool_calls = json_array_size(tc);
	return 0;
}

static int chat_body(struct icall *c, json_t *root)
{
	json_t *chs = json_object_get(root, "choices");
	struct myriad_infer_choice *out;
	size_t i, n;
	int r;

	if (!json_is_array(chs) || !(n = json_array_size(chs)))
		return bad(c, "response has no choices%s", "");
	out = arena_alloc(&c->arena, n * sizeof(*out));
	if (!out)
		return -ENOMEM;
	memset(out, 0, n * sizeof(*out));
	for (i = 0; i < n; i++) {
		json_t *ch = json_array_get(chs, i);
		json_t *m = json_object_get(ch, "message");
		json_t *v = json_object_get(m, "content");
		json_int_t idx;

		if (!json_is_object(m))
			return bad(c, "choices[%zu] has no message", i);
		idx = json_is_integer(json_object_get(ch, "index"))
			      ? json_integer_value(json_object_get(ch, "index"))
			      : (json_int_t)i;
		out[i].index = idx >= 0 && idx < (json_int_t)n ? (unsigned)idx
							       : (unsigned)i;
		out[i].finish_reason = str_or_null(ch, "finish_reason");
		if (json_is_string(v)) {
			out[i].content = json_string_value(v);
			out[i].content_len = json_string_length(v);
		} else if (v && !json_is_null(v)) {
			/* Content parts ([{"type":"text",...}]) are not an
			 * answer's shape: say so rather than guess. */
			return bad(c,
				   "choices[%zu].message.content is not a "
				   "string or null",
				   i);
		}
		out[i].refusal = str_or_null(m, "refusal");
		r = tool_calls(c, json_object_get(m, "tool_calls"), &out[i]);
		if (r)
			return r;
	}
	/* In index order, as the API numbers them (a stable sort). */
	for (i = 1; i < n; i++) {
		struct myriad_infer_choice x = out[i];
		size_t j = i;

		for (; j > 0 && out[j - 1].index > x.index; j--)
			out[j] = out[j - 1];
		out[j] = x;
	}
	c->res.choices = out;
	c->res.nchoices = n;
	c->res.content = out[0].content;
	c->res.content_len = out[0].content_len;
	c->res.finish_reason = out[0].finish_reason;
	c->res.refusal = out[0].refusal;
	c->res.tool_calls = out[0].tool_calls;
	c->res.ntool_calls = out[0].ntool_calls;
	c->res.id = str_or_null(root, "id");
	c->res.model = str_or_null(root, "model");
	c->res.system_fingerprint = str_or_null(root, "system_fingerprint");
	return 0;
}

static int b64_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

/*
 * Base64 (standard or URL-safe, padding optional) of little-endian
 * float32s into 'out'; returns the count, or -1 if malformed. 'out' NULL:
 * only count.
 */
static long b64_floats(const char *s, size_t n, double *out)
{
	unsigned char q[4], bytes[4];
	size_t i, nq = 0, nb = 0;
	long nf = 0;
	int v;

	while (n && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	for (i = 0; i <= n; i++) {
		if (i < n) {
			v = b64_val((unsigned char)s[i]);
			if (v < 0)
				return -1;
			q[nq++] = (unsigned char)v;
			if (nq < 4)
				continue;
		} else if (!nq) {
			break;
		}
		/* A quad (or the last 2-3 symbols) gives 1-3 bytes. */
		{
			unsigned char o[3];
			size_t k, no = nq == 4 ? 3 : nq - 1;

			while (nq < 4)
				q[nq++] = 0;
			o[0] = (unsigned char)(q[0] << 2 | q[1] >> 4);
			o[1] = (unsigned char)(q[1] << 4 | q[2] >> 2);
			o[2] = (unsigned char)(q[2] << 6 | q[3]);
			nq = 0;
			for (k = 0; k < no; k++) {
				bytes[nb++] = o[k];
				if (nb < 4)
					continue;
				nb = 0;
				if (out) {
					uint32_t u = (uint32_t)bytes[0] |
						     (uint32_t)bytes[1] << 8 |
						     (uint32_t)bytes[2] << 16 |
						     (uint32_t)bytes[3] << 24;
					float f;

					memcpy(&f, &u, sizeof(f));
					out[nf] = f;
				}
				nf++;
			}
		}
	}
	return nb ? -1 : nf;
}

/* One data[].embedding: a float array or a base64 string. */
static int vector(struct icall *c, json_t *v, size_t i, double **out,
		  size_t *dims)
{
	size_t k, n;
	double *x;

	if (json_is_string(v)) {
		long m = b64_floats(json_string_value(v), json_string_length(v),
				    NULL);

		if (m <= 0)
			return bad(c,
				   "data[%zu].embedding is not base64 of "
				   "float32s",
				   i);
		n = (size_t)m;
	} else if (json_is_array(v) && json_array_size(v)) {
		n = json_array_size(v);
	} else {
		return bad(c, "data[%zu] has no embedding", i);
	}
	if (*dims && n != *dims)
		return bad(c, "data[%zu].embedding's length differs", i);
	x = arena_alloc(&c->arena, n * sizeof(double));
	if (!x)
		return -ENOMEM;
	if (json_is_string(v)) {
		b64_floats(json_string_value(v), json_string_length(v), x);
	} else {
		for (k = 0; k < n; k++) {
			json_t *e = json_array_get(v, k);

			if (!json_is_number(e))
				return bad(c,
					   "data[%zu].embedding has a value "
					   "that is not a number",
					   i);
			x[k] = json_number_value(e);
		}
	}
	*out = x;
	*dims = n;
	return 0;
}

static int embed_body(struct icall *c, json_t *root)
{
	json_t *data = json_object_get(root, "data");
	double **vec;
	size_t i, n, dims = 0;
	int r;

	if (!json_is_array(data) || !(n = json_array_size(data)))
		return bad(c, "response has no data%s", "");
	vec = arena_alloc(&c->arena, n * sizeof(*vec));
	if (!vec)
		return -ENOMEM;
	memset(vec, 0, n * sizeof(*vec));
	for (i = 0; i < n; i++) {
		json_t *d = json_array_get(data, i);
		json_t *ix = json_object_get(d, "index");
		size_t at = i;
		double *x;

		if (json_is_integer(ix)) {
			if (json_integer_value(ix) < 0 ||
			    json_integer_value(ix) >= (json_int_t)n)
				return bad(c, "data[%zu].index out of range",
					   i);
			at = (size_t)json_integer_value(ix);
		}
		if (vec[at])
			return bad(c, "data[%zu].index repeats another", i);
		r = vector(c, json_object_get(d, "embedding"), i, &x, &dims);
		if (r)
			return r;
		vec[at] = x;
	}
	if (c->n_inputs && n != c->n_inputs) {
		snprintf(c->err, sizeof(c->err),
			 "%zu embeddings for %zu inputs", n, c->n_inputs);
		return MYRIAD_INFER_EBODY;
	}
	c->res.embeddings = (const double *const *)vec;
	c->res.nembeddings = n;
	c->res.embedding = vec[0];
	c->res.dims = dims;
	c->res.model = str_or_null(root, "model");
	return 0;
}

/* Parse a 2xx body into the result; 0, MYRIAD_INFER_EBODY, -ENOMEM. */
static int parse_body(struct icall *c)
{
	json_error_t jerr;
	json_t *root, *v, *tm;
	int r;

	root = json_loadb(c->resp ? c->resp : "", c->resp_len, 0, &jerr);
	if (!root) {
		snprintf(c->err, sizeof(c->err), "response is not JSON: %s",
			 jerr.text);
		return MYRIAD_INFER_EBODY;
	}
	c->json = root;
	r = c->kind == CALL_CHAT ? chat_body(c, root) : embed_body(c, root);
	if (r)
		return r;
	usage_read(&c->res, json_object_get(root, "usage"));
	tm = json_object_get(root, "timings");
	if (json_is_object(tm)) {
		if (json_is_number(v = json_object_get(tm, "queue_ms")))
			c->res.queue_ms = json_number_value(v);
		if (json_is_number(v = json_object_get(tm, "prompt_ms")))
			c->res.prompt_ms = json_number_value(v);
		if (json_is_number(v = json_object_get(tm, "predicted_ms")))
			c->res.predicted_ms = json_number_value(v);
	}
	c->res.json = (const struct json_t *)root;
	return 0;
}

/*
 * The task collects a completed call: a 2xx body left by transfer_done()
 * is parsed now, once; 'rc' the transfer's result. Returns the call's
 * result: rc, or MYRIAD_INFER_EBODY for a malformed body.
 */
int settle(struct icall *c, int rc)
{
	if (!c)
		return rc;
	if (c->parse_pending) {
		c->parse_pending = false;
		c->settled_rc = parse_body(c);
		if (c->settled_rc) {
			/* Nothing half-parsed is shown: only the error. */
			struct myriad_infer_result *r = &c->res;

			r->choices = NULL;
			r->nchoices = r->ntool_calls = 0;
			r->content = r->finish_reason = r->refusal = NULL;
			r->tool_calls = NULL;
			r->embeddings = NULL;
			r->embedding = NULL;
			r->nembeddings = r->dims = r->content_len = 0;
			r->json = NULL;
		}
		mem_free(c->resp);
		c->resp = NULL;
		c->resp_len = c->resp_cap = 0;
		c->res.error = c->err;
	}
	return rc == 0 ? c->settled_rc : rc;
}
