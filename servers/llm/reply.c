/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/reply.c: the output side of an answer: the connection's
 * output buffer, the scratch buffer a body is built in, status lines and
 * headers (each with its x-request-id), and the error answers in the API's
 * shape (400s, 404, 429 with Retry-After, 500).
 */
#include "llm.h"

#include <stdarg.h>

static void ob_reserve(struct conn *c, size_t more)
{
	if (c->olen + more <= c->ocap)
		return;
	if (c->ooff) { /* drop what has been sent */
		memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
		if (c->olen + more <= c->ocap)
			return;
	}
	while (c->ocap < c->olen + more)
		c->ocap = c->ocap ? 2 * c->ocap : 1024;
	c->obuf = srv_xrealloc(c->obuf, c->ocap);
}

void ob_put(struct conn *c, const void *p, size_t n)
{
	ob_reserve(c, n);
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
}

void ob_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	ob_reserve(c, 256);
	va_start(ap, fmt);
	n = vsnprintf(c->obuf + c->olen, c->ocap - c->olen, fmt, ap);
	va_end(ap);
	if ((size_t)n >= c->ocap - c->olen) {
		ob_reserve(c, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(c->obuf + c->olen, c->ocap - c->olen, fmt, ap);
		va_end(ap);
	}
	c->olen += (size_t)n;
}

/* A body is built in the scratch buffer, then framed into obuf. */
size_t sc_len;

void sc_reset(void)
{
	sc_len = 0;
}

void sc_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (L.scap - sc_len < 256) {
			L.scap = L.scap ? 2 * L.scap : 65536;
			L.scratch = srv_xrealloc(L.scratch, L.scap);
		}
		va_start(ap, fmt);
		n = vsnprintf(L.scratch + sc_len, L.scap - sc_len, fmt, ap);
		va_end(ap);
		if ((size_t)n < L.scap - sc_len)
			break;
		L.scap = 2 * L.scap + (size_t)n;
		L.scratch = srv_xrealloc(L.scratch, L.scap);
	}
	sc_len += (size_t)n;
}

/* n copies of ch, for the oversized bodies. */
void sc_fill(char ch, size_t n)
{
	if (L.scap - sc_len < n + 256) {
		L.scap = sc_len + n + 65536;
		L.scratch = srv_xrealloc(L.scratch, L.scap);
	}
	memset(L.scratch + sc_len, ch, n);
	sc_len += n;
}

/* v as compact JSON text (a string with its quotes, escaped by jansson). */
void sc_json(const json_t *v)
{
	size_t f = JSON_COMPACT | JSON_ENCODE_ANY, n;

	for (;;) {
		if (L.scap - sc_len < 256) {
			L.scap = L.scap ? 2 * L.scap : 65536;
			L.scratch = srv_xrealloc(L.scratch, L.scap);
		}
		n = json_dumpb(v, L.scratch + sc_len, L.scap - sc_len, f);
		if (n <= L.scap - sc_len)
			break;
		L.scap = 2 * L.scap + n;
		L.scratch = srv_xrealloc(L.scratch, L.scap);
	}
	sc_len += n;
}

/* n bytes of UTF-8 text as a JSON string. */
void sc_json_str(const char *p, size_t n)
{
	json_t *s = json_stringn_nocheck(p, n);

	if (!s)
		srv_die(PROG, "out of memory");
	sc_json(s);
	json_decref(s);
}

int out_pending(const struct conn *c)
{
	return c->olen > c->ooff || c->extlen > c->extoff;
}

static const char *reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/* splitmix64's finalizer: a bijection, so distinct counts give distinct ids. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * Every answer's x-request-id, as the API sends one: "req_" and 32 hex
 * digits, unique in the server's run (a count through a bijection) and
 * unlike another run's (a nonce from the clock and the pid).
 */
static const char *request_id(void)
{
	static char id[4 + 32 + 1] = "req_";
	static const char hex[] = "0123456789abcdef";
	uint64_t v[2];
	int i;

	if (!L.rid_nonce)
		L.rid_nonce = mix64((uint64_t)time(NULL) ^
				    ((uint64_t)getpid() << 32)) |
			      1;
	L.rid_count++;
	v[0] = mix64(L.rid_count ^ L.rid_nonce);
	v[1] = mix64(L.rid_count + L.rid_nonce);
	for (i = 0; i < 32; i++)
		id[4 + i] = hex[(v[i / 16] >> (60 - 4 * (i % 16))) & 15];
	return id;
}

/* Status line and headers for a body of len bytes (extra: more headers). */
void put_head(struct conn *c, int status, const char *ctype, size_t len,
	      const char *extra)
{
	ob_printf(c,
		  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nx-request-id: %s\r\n"
		  "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
		  status, reason(status), ctype, request_id(), len,
		  extra ? extra : "",
		  c->keepalive && !c->close_after ? "keep-alive" : "close");
}

/* The head of a streamed answer: server-sent events, chunked. */
void put_stream_head(struct conn *c)
{
	ob_printf(c,
		  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		  "Cache-Control: no-cache\r\nx-request-id: %s\r\n"
		  "Transfer-Encoding: chunked\r\nConnection: %s\r\n\r\n",
		  request_id(), c->keepalive ? "keep-alive" : "close");
}

/* A whole answer from the scratch buffer; the connection goes to C_WRITE. */
void reply_scratch(struct conn *c, int status, const char *extra)
{
	put_head(c, status, "application/json", sc_len, extra);
	ob_put(c, L.scratch, sc_len);
	c->state = C_WRITE;
}

void reply_json(struct conn *c, int status, const char *extra, const char *json)
{
	sc_reset();
	sc_printf("%s", json);
	reply_scratch(c, status, extra);
}

/*
 * An error in the API's shape, {"error":{"message","type","param","code"}}
 * (param and code null when NULL); msg, param and code are JSON text
 * already (escaped where they carry a request's value). close: the
 * request's framing is lost.
 */
void reply_error_p(struct conn *c, int status, const char *type,
		   const char *param, const char *code, const char *msg,
		   int close)
{
	if (status != 429 && status != 500)
		S.bad_requests++;
	if (close)
		c->close_after = 1;
	sc_reset();
	sc_printf("{\"error\":{\"message\":\"%s\",\"type\":\"%s\","
		  "\"param\":",
		  msg, type);
	if (param)
		sc_printf("\"%s\",\"code\":", param);
	else
		sc_printf("null,\"code\":");
	if (code)
		sc_printf("\"%s\"}}", code);
	else
		sc_printf("null}}");
	reply_scratch(c, status, NULL);
}

void reply_error(struct conn *c, int status, const char *type, const char *code,
		 const char *msg, int close)
{
	reply_error_p(c, status, type, NULL, code, msg, close);
}

void reply_429(struct conn *c)
{
	char hdr[160];
	/* whole seconds, rounded up; no libm */
	long ms = (long)(O.retry_after_s * 1000 + 0.5);
	long secs = (ms + 999) / 1000;

	if (O.retry_after_date) {
		char date[64];
		time_t t = time(NULL) + (secs > 0 ? secs : 0);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		snprintf(hdr, sizeof(hdr),
			 "Retry-After: %s\r\nretry-after-ms: %ld\r\n", date,
			 ms);
	} else {
		snprintf(hdr, sizeof(hdr),
			 "Retry-After: %ld\r\nretry-after-ms: %ld\r\n", secs,
			 ms);
	}
	S.rejected_429++;
	sc_reset();
	sc_printf("{\"error\":{\"message\":\"Rate limit reached: too many "
		  "requests in service, retry after %ld ms\","
		  "\"type\":\"rate_limit_error\",\"param\":null,"
		  "\"code\":\"rate_limit_exceeded\"}}",
		  ms);
	reply_scratch(c, 429, hdr);
}

void reply_500(struct conn *c)
{
	reply_error(c, 500, "server_error", NULL,
		    "The server had an error while processing your request.",
		    0);
}
