/* SPDX-License-Identifier: MIT */
/*
 * infer/parse.c: the response: a 2xx JSON body parsed into the result by
 * the task, or a stream of server-sent events parsed as it arrives.
 */
#include <stdio.h>
#include <string.h>

#include "infer/internal.h"

/* Append streamed content for the task (under its lock); false: no memory
 * or over the bound. */
static bool stream_append(struct icall *c, const char *t, size_t n)
{
	size_t cap;
	char *b;
	bool ok = true;

	spin_lock(&c->slock);
	if (c->slen + n > c->pool->o.max_response) {
		c->too_big = true;
		ok = false;
	} else if (c->slen + n + 1 > c->scap) {
		cap = c->scap ? c->scap : 1024;
		while (cap < c->slen + n + 1)
			cap *= 2;
		b = mem_realloc(c->sbuf, cap);
		if (!b) {
			ok = false;
		} else {
			c->sbuf = b;
			c->scap = cap;
		}
	}
	if (ok) {
		memcpy(c->sbuf + c->slen, t, n);
		c->slen += n;
		c->sbuf[c->slen] = 0;
	}
	spin_unlock(&c->slock);
	return ok;
}

/*
 * Server-sent events: each complete "data: {...}" line is a
 * chat.completion.chunk whose choices[0].delta.content goes to the task
 * (which is woken); "data: [DONE]" ends the stream. Returns false to
 * stop the transfer.
 */
bool sse_parse(struct icall *c)
{
	char *line, *nl, *d;
	bool woke = false, ok = true;
	json_t *j, *v, *u;
	json_error_t jerr;

	while (ok && (nl = memchr(c->resp + c->sparsed, '\n',
				  c->resp_len - c->sparsed))) {
		line = c->resp + c->sparsed;
		c->sparsed = (size_t)(nl - c->resp) + 1;
		*nl = 0;
		if (nl > line && nl[-1] == '\r')
			nl[-1] = 0;
		if (strncmp(line, "data:", 5))
			continue; /* blank lines, comments, other fields */
		d = line + 5;
		while (*d == ' ')
			d++;
		if (!strcmp(d, "[DONE]")) {
			c->sdone = true;
			continue;
		}
		j = json_loads(d, 0, &jerr);
		if (!j) {
			snprintf(c->err, sizeof(c->err),
				 "stream event is not JSON: %s", jerr.text);
			c->sdone = false;
			c->bad_body = true;
			return false;
		}
		v = json_object_get(j, "choices");
		v = json_is_array(v) ? json_array_get(v, 0) : NULL;
		v = v ? json_object_get(v, "delta") : NULL;
		v = v ? json_object_get(v, "content") : NULL;
		if (json_is_string(v) && json_string_length(v)) {
			ok = stream_append(c, json_string_value(v),
					   json_string_length(v));
			woke = true;
		}
		u = json_object_get(j, "usage");
		if (json_is_object(u)) {
			if (json_is_integer(
				    v = json_object_get(u, "prompt_tokens")))
				c->res.prompt_tokens = json_integer_value(v);
			if (json_is_integer(v = json_object_get(
						    u, "completion_tokens")))
				c->res.completion_tokens =
					json_integer_value(v);
			if (json_is_integer(
				    v = json_object_get(u, "total_tokens")))
				c->res.total_tokens = json_integer_value(v);
		}
		json_decref(j);
	}
	/* Keep only the partial line: memory bounded by a line. */
	memmove(c->resp, c->resp + c->sparsed, c->resp_len - c->sparsed);
	c->resp_len -= c->sparsed;
	c->sparsed = 0;
	if (woke)
		task_op_wake(cur_worker(), c->task);
	return ok;
}

/* Parse a 2xx body into the result; 0 or MYRIAD_INFER_EBODY. */
static int parse_body(struct icall *c)
{
	json_error_t jerr;
	json_t *root, *v, *u, *tm;
	size_t i;

	root = json_loadb(c->resp ? c->resp : "", c->resp_len, 0, &jerr);
	if (!root) {
		snprintf(c->err, sizeof(c->err), "response is not JSON: %s",
			 jerr.text);
		return MYRIAD_INFER_EBODY;
	}
	c->json = root;
	if (c->kind == CALL_CHAT) {
		v = json_object_get(root, "choices");
		v = json_is_array(v) ? json_array_get(v, 0) : NULL;
		v = v ? json_object_get(v, "message") : NULL;
		v = v ? json_object_get(v, "content") : NULL;
		if (!json_is_string(v)) {
			snprintf(c->err, sizeof(c->err),
				 "response has no choices[0].message.content");
			return MYRIAD_INFER_EBODY;
		}
		c->res.content = json_string_value(v);
		c->res.content_len = json_string_length(v);
	} else {
		v = json_object_get(root, "data");
		v = json_is_array(v) ? json_array_get(v, 0) : NULL;
		v = v ? json_object_get(v, "embedding") : NULL;
		if (!json_is_array(v) || !json_array_size(v)) {
			snprintf(c->err, sizeof(c->err),
				 "response has no data[0].embedding");
			return MYRIAD_INFER_EBODY;
		}
		c->emb = mem_alloc(json_array_size(v) * sizeof(double));
		if (!c->emb)
			return -ENOMEM;
		for (i = 0; i < json_array_size(v); i++) {
			json_t *x = json_array_get(v, i);

			if (!json_is_number(x)) {
				snprintf(c->err, sizeof(c->err),
					 "embedding[%zu] is not a number", i);
				return MYRIAD_INFER_EBODY;
			}
			c->emb[i] = json_number_value(x);
		}
		c->res.embedding = c->emb;
		c->res.dims = json_array_size(v);
	}
	u = json_object_get(root, "usage");
	if (json_is_object(u)) {
		if (json_is_integer(v = json_object_get(u, "prompt_tokens")))
			c->res.prompt_tokens = json_integer_value(v);
		if (json_is_integer(
			    v = json_object_get(u, "completion_tokens")))
			c->res.completion_tokens = json_integer_value(v);
		if (json_is_integer(v = json_object_get(u, "total_tokens")))
			c->res.total_tokens = json_integer_value(v);
	}
	tm = json_object_get(root, "timings");
	if (json_is_object(tm)) {
		if (json_is_number(v = json_object_get(tm, "queue_ms")))
			c->res.queue_ms = json_number_value(v);
		if (json_is_number(v = json_object_get(tm, "prompt_ms")))
			c->res.prompt_ms = json_number_value(v);
		if (json_is_number(v = json_object_get(tm, "predicted_ms")))
			c->res.predicted_ms = json_number_value(v);
	}
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
		mem_free(c->resp);
		c->resp = NULL;
		c->resp_len = c->resp_cap = 0;
		c->res.error = c->err;
	}
	return rc == 0 ? c->settled_rc : rc;
}
