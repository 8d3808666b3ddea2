/* SPDX-License-Identifier: MIT */
/*
 * infer/transfer.c: one HTTP attempt of a call: its easy handle set up and
 * added to the driver's multi, libcurl's callbacks for it, and its end.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "infer/internal.h"
#include "sched/probes.h"

/*
 * Called by libcurl before each request it sends for this transfer. The
 * first is ours; a second means libcurl is replaying the body by itself on
 * a fresh connection because a kept-alive one died before any answer:
 * refused, so that the replay happens here, counted in attempts, bounded by
 * max_retries and spaced by backoff (the server may have started
 * generating for the first one).
 */
static int on_prereq(void *arg, char *ip, char *lip, int port, int lport)
{
	struct icall *c = arg;

	(void)ip;
	(void)lip;
	(void)port;
	(void)lport;
	if (c->sends++)
		return CURL_PREREQFUNC_ABORT;
	return CURL_PREREQFUNC_OK;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
	struct icall *c = arg;
	size_t len = size * n, cap;
	char *b;

	if (c->resp_len + len > c->pool->o.max_response) {
		c->too_big = true;
		return 0; /* curl stops the transfer */
	}
	if (c->resp_len + len + 1 > c->resp_cap) {
		cap = c->resp_cap ? c->resp_cap : 4096;
		while (cap < c->resp_len + len + 1)
			cap *= 2;
		b = mem_realloc(c->resp, cap);
		if (!b)
			return 0;
		c->resp = b;
		c->resp_cap = cap;
	}
	memcpy(c->resp + c->resp_len, ptr, len);
	c->resp_len += len;
	c->resp[c->resp_len] = 0;
	if (c->stream && c->http_status_now >= 200 &&
	    c->http_status_now < 300 && !sse_parse(c))
		return 0;
	return len;
}

/* A count: digits only (a malformed one is ignored); -1. */
static int64_t rl_count(const char *v)
{
	size_t n = strcspn(v, "\r\n");
	int64_t t = 0;
	size_t i;

	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (!n || n > 18)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -1;
		t = t * 10 + (v[i] - '0');
	}
	return t;
}

/* x-ratelimit-{limit,remaining,reset}-{requests,tokens}: 'name' is what
 * follows "x-ratelimit-", 'v' the value (budget.c uses them). */
static void ratelimit(struct icall *c, const char *name, const char *v)
{
	static const struct {
		const char *name;
		unsigned bit;
	} h[] = { { "limit-requests", RL_LIM_REQ },
		  { "limit-tokens", RL_LIM_TOK },
		  { "remaining-requests", RL_REM_REQ },
		  { "remaining-tokens", RL_REM_TOK },
		  { "reset-requests", RL_RST_REQ },
		  { "reset-tokens", RL_RST_TOK } };
	uint64_t *dst[] = { &c->rl_lim_req, &c->rl_lim_tok, &c->rl_rem_req,
			    &c->rl_rem_tok, &c->rl_rst_req, &c->rl_rst_tok };
	int64_t x;
	size_t i;

	for (i = 0; i < sizeof(h) / sizeof(h[0]); i++)
		if (!strcasecmp(name, h[i].name))
			break;
	if (i == sizeof(h) / sizeof(h[0]))
		return;
	x = h[i].bit & (RL_RST_REQ | RL_RST_TOK)
		    ? rl_duration(v, strcspn(v, "\r\n"))
		    : rl_count(v);
	if (x < 0 || (i < 2 && !x))
		return; /* malformed, or a limit of nothing */
	*dst[i] = (uint64_t)x;
	c->rl_have |= h[i].bit;
}

/* Retry-After: seconds or an HTTP date; retry-after-ms: milliseconds. */
static size_t on_header(char *ptr, size_t size, size_t n, void *arg)
{
	struct icall *c = arg;
	size_t len = size * n;
	char line[256], *v;
	double s;

	if (len >= sizeof(line))
		return len;
	memcpy(line, ptr, len);
	line[len] = 0;
	if (!strncasecmp(line, "HTTP/", 5)) {
		const char *sp = strchr(line, ' ');

		c->retry_after_s = -1; /* a new response */
		c->rl_have = 0;
		c->http_status_now = sp ? strtol(sp + 1, NULL, 10) : 0;
		c->request_id[0] = 0;
		c->res.request_id = NULL;
		return len;
	}
	v = strchr(line, ':');
	if (!v)
		return len;
	*v++ = 0;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!strncasecmp(line, "x-ratelimit-", 12)) {
		ratelimit(c, line + 12, v);
	} else if (!strcasecmp(line, "x-request-id")) {
		size_t n = strcspn(v, "\r\n");

		if (n >= sizeof(c->request_id))
			n = sizeof(c->request_id) - 1;
		memcpy(c->request_id, v, n);
		c->request_id[n] = 0;
		c->res.request_id = n ? c->request_id : NULL;
	} else if (!strcasecmp(line, "retry-after-ms")) {
		s = strtod(v, NULL) / 1000.0;
		if (s >= 0)
			c->retry_after_s = s;
	} else if (!strcasecmp(line, "retry-after") && c->retry_after_s < 0) {
		if (isdigit((unsigned char)*v)) {
			c->retry_after_s = strtod(v, NULL);
		} else {
			time_t when = curl_getdate(v, NULL);

			if (when != -1) {
				s = difftime(when, time(NULL));
				c->retry_after_s = s > 0 ? s : 0;
			}
		}
	}
	return len;
}

static void active_del(struct driver *d, struct icall *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		d->active = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	d->nactive--;
}

/* The transfer of 'c' left the multi: the endpoint's window frees. */
void transfer_end(struct driver *d, struct icall *c)
{
	struct endpoint *e = &d->pool->eps[c->ep];

	curl_multi_remove_handle(d->multi, c->easy);
	active_del(d, c);
	c->drv = NULL;
	atomic_fetch_sub_explicit(&e->inflight, 1, memory_order_relaxed);
}

int transfer_start(struct driver *d, struct icall *c, int ep)
{
	struct myriad_infer *p = d->pool;
	struct endpoint *e = &p->eps[ep];
	uint64_t tmo;

	/* The body for this endpoint's model, built once per endpoint. */
	if (!c->body || c->body_ep != ep) {
		size_t n;

		if (!c->user_model)
			json_object_set_new(c->req, "model",
					    json_string(e->model));
		/* Dumped straight into our buffer: at most twice. */
		if (!c->body) {
			c->body = mem_alloc(512);
			if (!c->body)
				return -ENOMEM;
			c->body_cap = 512;
		}
		for (;;) {
			n = json_dumpb(c->req, c->body, c->body_cap,
				       JSON_COMPACT);
			if (!n)
				return -ENOMEM;
			if (n <= c->body_cap)
				break;
			mem_free(c->body);
			c->body_cap = n;
			c->body = mem_alloc(c->body_cap);
			if (!c->body) {
				c->body_cap = 0;
				return -ENOMEM;
			}
		}
		c->body_len = n;
		c->body_ep = ep;
	}
	c->ep = ep;
	if (!c->easy && d->neasy) {
		c->easy = d->easy_free[--d->neasy];
		curl_easy_reset(c->easy);
	} else if (!c->easy) {
		c->easy = curl_easy_init();
		if (!c->easy)
			return -ENOMEM;
	} else {
		curl_easy_reset(c->easy);
	}
	curl_easy_setopt(c->easy, CURLOPT_URL,
			 c->kind == CALL_CHAT ? e->chat_url : e->embed_url);
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, e->hdrs);
	/*
	 * The body from memory: libcurl sends it with the headers, in one
	 * send (a read callback costs a second send and a 64 KiB upload
	 * buffer per transfer). on_prereq() refuses libcurl's own replays.
	 */
	c->sends = 0;
	curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)c->body_len);
	curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
	curl_easy_setopt(c->easy, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(c->easy, CURLOPT_PREREQDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(p->o.connect_timeout_ns / 1000000u));
	tmo = p->o.timeout_ns;
	if (c->deadline_ns) {
		uint64_t now = myriad_now_ns();

		if (now >= c->deadline_ns)
			return -ETIME;
		if (c->deadline_ns - now < tmo)
			tmo = c->deadline_ns - now;
	}
	curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS,
			 (long)((tmo + 999999u) / 1000000u));
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->err);
	curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION,
			 (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
	c->err[0] = 0;
	c->resp_len = 0;
	c->sparsed = 0;
	c->http_status_now = 0;
	c->too_big = false;
	c->retry_after_s = -1;
	c->rl_have = 0;
	if (!c->attempts && p->o.retry_ratio >= 0)
		atomic_fetch_add_explicit(&e->first_attempts, 1,
					  memory_order_relaxed);
	c->attempts++;
	PROBE3(offload_start, c, ep, c->attempts);
	/* The window slot was taken by admit() (window_take()). */
	c->drv = d;
	c->prev = NULL;
	c->next = d->active;
	if (d->active)
		d->active->prev = c;
	d->active = c;
	d->nactive++;
	if (curl_multi_add_handle(d->multi, c->easy) != CURLM_OK) {
		active_del(d, c);
		c->drv = NULL; /* admit() gives the window slot back */
		return -ENOMEM;
	}
	return 0;
}
