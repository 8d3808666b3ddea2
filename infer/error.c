/* SPDX-License-Identifier: MIT */
/*
 * infer/error.c: an error as the server wrote it: the body of a non-2xx
 * answer or a stream's "error" event, in the API's shape
 * {"error":{"message","type","param","code"}} or the shapes other servers
 * use ({"error":"..."}, {"message":...,"type":...,"code":400},
 * {"detail":"..."}), kept in the result beside the HTTP status.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "infer/internal.h"

void error_clear(struct icall *c)
{
	mem_free(c->e_msg);
	mem_free(c->e_type);
	mem_free(c->e_code);
	mem_free(c->e_param);
	c->e_msg = c->e_type = c->e_code = c->e_param = NULL;
	c->res.error_message = c->res.error_type = NULL;
	c->res.error_code = c->res.error_param = NULL;
}

/* A member as text: a string as is, a number in decimal, else NULL. */
static char *field(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	char num[32];
	char *r;
	size_t n;

	if (json_is_string(v)) {
		n = json_string_length(v);
		if (n > 4096)
			n = 4096; /* for a person: bounded */
		r = mem_alloc(n + 1);
		if (r) {
			memcpy(r, json_string_value(v), n);
			r[n] = 0;
		}
		return r;
	}
	if (json_is_integer(v))
		snprintf(num, sizeof(num), "%" PRId64,
			 (int64_t)json_integer_value(v));
	else
		return NULL;
	n = strlen(num);
	r = mem_alloc(n + 1);
	if (r)
		memcpy(r, num, n + 1);
	return r;
}

void error_from_json(struct icall *c, json_t *j)
{
	json_t *e = json_object_get(j, "error");

	error_clear(c);
	if (json_is_object(e)) {
		j = e; /* the API's shape */
	} else if (json_is_string(e)) {
		c->e_msg = field(j, "error");
		goto out;
	} else if (!json_is_object(j)) {
		return;
	}
	c->e_msg = field(j, "message");
	if (!c->e_msg)
		c->e_msg = field(j, "detail"); /* FastAPI's */
	c->e_type = field(j, "type");
	c->e_code = field(j, "code");
	c->e_param = field(j, "param");
out:
	c->res.error_message = c->e_msg;
	c->res.error_type = c->e_type;
	c->res.error_code = c->e_code;
	c->res.error_param = c->e_param;
}

void error_parse(struct icall *c, const char *body, size_t len)
{
	json_error_t jerr;
	json_t *j;

	error_clear(c);
	if (!body || !len)
		return;
	j = json_loadb(body, len, 0, &jerr);
	if (!j)
		return; /* not JSON (a proxy's page): the status says it */
	error_from_json(c, j);
	json_decref(j);
}

/* 'error' for a person: what, then the server's message, type, code. */
void error_describe(struct icall *c, const char *what)
{
	int n = snprintf(c->err, sizeof(c->err), "%s", what);

	if (n < 0 || (size_t)n >= sizeof(c->err) || !c->e_msg)
		return;
	if (c->e_type || c->e_code)
		snprintf(c->err + n, sizeof(c->err) - (size_t)n,
			 ": %s (%s%s%s)", c->e_msg, c->e_type ? c->e_type : "",
			 c->e_type && c->e_code ? ", " : "",
			 c->e_code ? c->e_code : "");
	else
		snprintf(c->err + n, sizeof(c->err) - (size_t)n, ": %s",
			 c->e_msg);
}
