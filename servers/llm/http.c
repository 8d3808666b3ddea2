/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/http.c: a request's HTTP head read from the connection's
 * buffer (framing, keep-alive, Expect: 100-continue, size limits) and routed:
 * the inference endpoints, /stats, /reset-stats, /health, /v1/models.
 */
#include "llm.h"

#include <strings.h>

static void on_stats(struct conn *c)
{
	sc_reset();
	sc_printf("{");
#define X(f) sc_printf("\"" #f "\":%" PRIu64 ",", S.f);
	STAT_FIELDS(X)
#undef X
	sc_printf("\"open_connections\":%ld,\"in_service\":%ld,"
		  "\"queued\":%" PRIu64 ",\"concurrency\":%ld,"
		  "\"llm_ms\":%.3f}",
		  L.open, L.in_service, L.qlen, O.conc, O.llm_ns / 1e6);
	reply_scratch(c, 200, NULL);
}

/* The models served: --models, or "mock". */
static void on_models(struct conn *c)
{
	size_t i;

	sc_reset();
	sc_printf("{\"object\":\"list\",\"data\":[");
	for (i = 0; i < (O.nmodels ? O.nmodels : 1); i++)
		sc_printf("%s{\"id\":\"%s\",\"object\":\"model\","
			  "\"created\":0,\"owned_by\":\"myriad\"}",
			  i ? "," : "", O.nmodels ? O.model_text[i] : "mock");
	sc_printf("]}");
	reply_scratch(c, 200, NULL);
}

/*
 * The maxima restart from what is there now; open_connections, in_service
 * and queued are gauges and stay.
 */
static void on_reset(struct conn *c)
{
	memset(&S, 0, sizeof(S));
	L.free_n = 0; /* idle since before the reset: not a gap */
	S.in_service_max = (uint64_t)L.in_service;
	S.queued_max = L.qlen;
	reply_json(c, 200, NULL, "{\"ok\":true}");
}

static void route(struct conn *c, const char *meth, size_t ml, const char *path,
		  size_t pl, const char *body, size_t bl)
{
	int post = ml == 4 && !memcmp(meth, "POST", 4);
	int get = ml == 3 && !memcmp(meth, "GET", 3);
	const char *q = memchr(path, '?', pl);

#define IS(s) (pl == sizeof(s) - 1 && !memcmp(path, s, pl))
	if (q)
		pl = (size_t)(q - path);
	if (IS("/v1/chat/completions") || IS("/v1/embeddings")) {
		if (!post) {
			reply_error(c, 405, "invalid_request_error", NULL,
				    "Use POST for this endpoint.", 0);
			return;
		}
		S.requests++;
		if (IS("/v1/embeddings"))
			on_embed(c, body, bl);
		else
			on_chat(c, body, bl);
	} else if (IS("/stats") && get) {
		on_stats(c);
	} else if (IS("/reset-stats") && post) {
		on_reset(c);
	} else if (IS("/health") && get) {
		reply_json(c, 200, NULL, "{\"status\":\"ok\"}");
	} else if (IS("/v1/models") && get) {
		on_models(c);
	} else if (IS("/stats") || IS("/reset-stats") || IS("/health") ||
		   IS("/v1/models")) {
		reply_error(c, 405, "invalid_request_error", NULL,
			    "Method not allowed.", 0);
	} else {
		reply_error(c, 404, "invalid_request_error", "unknown_url",
			    "Unknown request URL.", 0);
	}
#undef IS
}

static int hdr_is(const char *n, size_t nl, const char *want)
{
	return nl == strlen(want) && !strncasecmp(n, want, nl);
}

static int has_token(const char *v, size_t vl, const char *tok)
{
	size_t tl = strlen(tok), i;

	for (i = 0; i + tl <= vl; i++)
		if (!strncasecmp(v + i, tok, tl))
			return 1;
	return 0;
}

/*
 * Parse and route one request if the buffer holds a whole one.
 * 1: handled (state changed), 0: need more bytes.
 */
int parse_one(struct conn *c)
{
	char *b = c->rbuf, *he, *p, *eol, *sp1, *sp2;
	size_t hlen, cl = 0, line;
	int have_cl = 0, te = 0, conn_close = 0, conn_ka = 0, expect = 0;
	int http10;

	if (!c->rlen)
		return 0;
	he = memmem(b, c->rlen, "\r\n\r\n", 4);
	if (!he) {
		if (c->rlen > MAX_HDR) {
			c->keepalive = 0;
			reply_error(c, 431, "invalid_request_error", NULL,
				    "Request headers too large.", 1);
			return 1;
		}
		return 0;
	}
	hlen = (size_t)(he + 4 - b);
	c->keepalive = 0;
	if (hlen > MAX_HDR) {
		reply_error(c, 431, "invalid_request_error", NULL,
			    "Request headers too large.", 1);
		return 1;
	}
	eol = memchr(b, '\r', hlen);
	line = (size_t)(eol - b);
	if (eol[1] != '\n') {
		reply_error(c, 400, "invalid_request_error", NULL,
			    "Malformed HTTP request line.", 1);
		return 1;
	}
	sp1 = memchr(b, ' ', line);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == b || sp2 == sp1 + 1 ||
	    (size_t)(eol - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) ||
	    (sp2[8] != '0' && sp2[8] != '1')) {
		reply_error(c, 400, "invalid_request_error", NULL,
			    "Malformed HTTP request line.", 1);
		return 1;
	}
	http10 = sp2[8] == '0';
	for (p = eol + 2; p < he + 2; p = eol + 2) {
		char *colon, *v, *ve;

		eol = memmem(p, (size_t)(he + 2 - p), "\r\n", 2);
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p) {
			reply_error(c, 400, "invalid_request_error", NULL,
				    "Malformed header line.", 1);
			return 1;
		}
		v = colon + 1;
		ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (hdr_is(p, (size_t)(colon - p), "content-length")) {
			size_t x = 0;
			char *d;

			if (v == ve)
				goto bad_cl;
			for (d = v; d < ve; d++) {
				if (*d < '0' || *d > '9' || x > (1ull << 40))
					goto bad_cl;
				x = x * 10 + (size_t)(*d - '0');
			}
			if (have_cl && x != cl)
				goto bad_cl;
			cl = x;
			have_cl = 1;
		} else if (hdr_is(p, (size_t)(colon - p),
				  "transfer-encoding")) {
			te = 1;
		} else if (hdr_is(p, (size_t)(colon - p), "connection")) {
			conn_close |= has_token(v, (size_t)(ve - v), "close");
			conn_ka |= has_token(v, (size_t)(ve - v), "keep-alive");
		} else if (hdr_is(p, (size_t)(colon - p), "expect")) {
			expect = has_token(v, (size_t)(ve - v), "100-continue");
		}
	}
	if (te) {
		reply_error(c, 411, "invalid_request_error", NULL,
			    "Chunked request bodies are not supported: send "
			    "a Content-Length.",
			    1);
		return 1;
	}
	if (cl > O.max_body) {
		reply_error(c, 413, "invalid_request_error", NULL,
			    "Request body too large.", 1);
		return 1;
	}
	if (c->rlen < hlen + cl) {
		if (expect && !c->cont_sent) {
			c->cont_sent = 1;
			ob_printf(c, "HTTP/1.1 100 Continue\r\n\r\n");
		}
		return 0;
	}
	c->cont_sent = 0;
	c->keepalive = http10 ? conn_ka && !conn_close : !conn_close;
	route(c, b, (size_t)(sp1 - b), sp1 + 1, (size_t)(sp2 - sp1 - 1),
	      b + hlen, cl);
	/* The request's bytes are no longer needed: the route copied out
	 * what it keeps. */
	c->rlen -= hlen + cl;
	if (c->rlen)
		memmove(c->rbuf, c->rbuf + hlen + cl, c->rlen);
	return 1;
bad_cl:
	reply_error(c, 400, "invalid_request_error", NULL,
		    "Invalid Content-Length.", 1);
	return 1;
}
