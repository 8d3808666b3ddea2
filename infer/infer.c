/* SPDX-License-Identifier: MIT */
/*
 * infer/infer.c: the inference offload layer: an endpoint pool, HTTP on
 * libcurl's multi interface driven by myriad's own io_uring polls and
 * timer wheel, JSON with jansson, retries, backoff and cooldowns.
 *
 * Drivers: each driver is an ordinary myriad task that owns one curl
 * multi handle. It waits for three things at once, none of them on a
 * thread: its sockets (one io_uring poll per curl socket, whose completion
 * pushes the poll's record on the driver's ready stack), curl's timeout
 * (a timer on the wheel), and new work (a waker: calls queued by agents,
 * cancellations). A step handles what is ready, admits queued calls into
 * free windows, re-arms polls and the timer, and parks.
 *
 * Why a call completes once and its agent outlives it:
 * 1. The call's record is an I/O record of the agent (io/record.c): starting
 *    it counts one operation in the agent's state word, so the agent
 *    cannot finish until io_ext_complete() takes it off again.
 * 2. A call lives on exactly one list at a time, under the pool's lock
 *    (the queue) or owned by one driver's step (in flight); only the
 *    owner completes it, once.
 * 3. A cancellation (the agent cancelled, its deadline) sets a flag on the
 *    call and wakes a driver; the call's owner, queue or driver, sees it,
 *    removes the transfer (curl closes a connection whose transfer did
 *    not finish) and completes the call with the reason.
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jemalloc/jemalloc.h>
#include <jansson.h>

#include <myriad/infer.h>

#include "base/random.h"
#include "io/record.h"
#include "sched/probes.h"

enum { CALL_CHAT, CALL_EMBED };

struct endpoint {
	char *chat_url, *embed_url, *model;
	struct curl_slist *hdrs; /* content type, authorization */
	unsigned window;
	_Atomic unsigned inflight;
	_Atomic uint64_t cool_until_ns; /* after a 429 */
};

struct icall {
	struct io_op *op;
	struct myriad_task *task;
	struct myriad_infer *pool;
	int kind;
	json_t *req; /* the request without "model" */
	char *body;
	size_t body_len, body_cap; /* not NUL-terminated */
	unsigned sends;		   /* requests libcurl began for this attempt */
	int body_ep;		   /* the endpoint 'body' was built for */
	int ep;			   /* the endpoint of the current attempt */
	struct driver *drv;	   /* in flight there */
	CURL *easy;
	char *resp;
	size_t resp_len, resp_cap;
	bool too_big;
	double retry_after_s; /* from the last response, -1 if none */
	long http_status;
	long http_status_now; /* of the response being received */
	unsigned attempts;
	uint64_t not_before_ns;
	uint64_t deadline_ns; /* the whole call's, retries included; 0 */
	_Atomic int cancel;   /* 0, or the reason (-ECANCELED, -ETIME) */
	struct icall *next;   /* the queue, or the driver's list */
	struct icall *prev;
	json_t *json; /* the parsed response: owns the strings */
	double *emb;
	struct myriad_infer_result res;
	/* Streaming: content so far, appended by the driver, read by the
	 * task, under slock; 'sparsed' is how much of 'resp' is parsed. */
	bool stream, sdone;
	bool parse_pending; /* a 2xx body the task has yet to parse */
	int settled_rc;	    /* what settle() made of it */
	bool bad_body;	    /* a stream event was malformed */
	struct spin slock;
	char *sbuf;
	size_t slen, scap, sread, sparsed;
	char err[CURL_ERROR_SIZE + 96];
};

struct sock {
	struct io_op rec; /* first: the poll's record */
	struct driver *d;
	struct sock *anext, *aprev; /* every sock of the driver */
	curl_socket_t fd;
	int want;  /* CURL_POLL_* */
	int armed; /* poll events in flight, 0 if none */
	bool dead; /* curl is done with it: free once the poll ends */
	bool in_ready;
};

struct driver {
	struct myriad_infer *pool;
	myriad_task_t *self;
	myriad_handle_t *handle;
	myriad_waker_t waker;
	CURLM *multi;
	_Atomic(struct io_op *) ready; /* finished polls */
	struct sock *socks;	       /* all, freed at the end */
	struct icall *active;	       /* transfers in this multi */
	CURL *easy_free[64];	       /* handles kept for reuse */
	unsigned neasy;
	unsigned nactive;
	uint64_t curl_deadline_ns; /* UINT64_MAX: none */
	myriad_timer_t tm;
	_Atomic bool stop;
	uint64_t rng;
};

struct myriad_infer {
	myriad_rt_t *rt;
	struct myriad_infer_opts o;
	pthread_mutex_t lock; /* the queue, endpoints list growth */
	struct icall *qhead, *qtail;
	unsigned nqueued;
	unsigned nqdeadline;	  /* queued calls with a deadline */
	_Atomic unsigned ncancel; /* cancellations not yet seen */
	struct endpoint *eps;
	_Atomic unsigned neps;
	unsigned eps_cap;
	struct driver *drv;
	unsigned ndrv;
	_Atomic unsigned rr;
};

/*
 * libcurl's memory from jemalloc (its thread caches and per-thread arenas),
 * not glibc malloc: a transfer makes dozens of allocations, some of them
 * large (the 16 KiB receive buffer), made on one worker and freed on
 * another; under glibc each large one consolidated the fastbins and the
 * cross-thread frees met on arena locks (agents: about a tenth of the
 * client's CPU). curl_global_init_mem() takes effect only for the first
 * initialisation in the process: an application that initialised libcurl
 * before keeps its own functions, consistently. Sanitizer builds keep
 * malloc so that ASan sees libcurl's leaks.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CURL_JEMALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CURL_JEMALLOC 0
#endif
#endif
#ifndef CURL_JEMALLOC
#define CURL_JEMALLOC 1
#endif

/*
 * The client's own buffers (calls, bodies, responses) come from the same
 * place: mem_*() below.
 */
#if CURL_JEMALLOC
static void *cm_malloc(size_t n)
{
	return mallocx(n ? n : 1, 0);
}

static void cm_free(void *ptr)
{
	if (ptr)
		dallocx(ptr, 0);
}

static void *cm_realloc(void *ptr, size_t n)
{
	if (!ptr)
		return cm_malloc(n);
	if (!n) {
		dallocx(ptr, 0);
		return NULL;
	}
	return rallocx(ptr, n, 0);
}

static char *cm_strdup(const char *str)
{
	size_t n = strlen(str) + 1;
	char *d = mallocx(n, 0);

	if (d)
		memcpy(d, str, n);
	return d;
}

static void *cm_calloc(size_t nmemb, size_t size)
{
	size_t n;

	if (__builtin_mul_overflow(nmemb, size, &n))
		return NULL;
	return mallocx(n ? n : 1, MALLOCX_ZERO);
}
#define mem_alloc(n) cm_malloc(n)
#define mem_zalloc(n) cm_calloc(1, (n))
#define mem_realloc(p, n) cm_realloc((p), (n))
#define mem_free(p) cm_free(p)
#else
#define mem_alloc(n) malloc(n)
#define mem_zalloc(n) calloc(1, (n))
#define mem_realloc(p, n) realloc((p), (n))
#define mem_free(p) free(p)
#endif

/* ---- the queue (pool lock) ---- */

static void q_push(struct myriad_infer *p, struct icall *c)
{
	c->next = NULL;
	c->prev = p->qtail;
	if (p->qtail)
		p->qtail->next = c;
	else
		p->qhead = c;
	p->qtail = c;
	p->nqueued++;
	if (c->deadline_ns)
		p->nqdeadline++;
}

static void q_del(struct myriad_infer *p, struct icall *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		p->qhead = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		p->qtail = c->prev;
	c->next = c->prev = NULL;
	p->nqueued--;
	if (c->deadline_ns)
		p->nqdeadline--;
}

static void wake_driver(struct myriad_infer *p, struct driver *d)
{
	if (!d)
		d = &p->drv[atomic_fetch_add_explicit(&p->rr, 1,
						      memory_order_relaxed) %
			    p->ndrv];
	myriad_waker_wake(d->waker);
}

/* ---- finishing a call ---- */

/* 'd': the driver that owns the call now, which keeps its easy handle
 * for the next call (NULL: clean it up). */
static void call_free_transfer(struct driver *d, struct icall *c)
{
	if (c->easy) {
		if (d &&
		    d->neasy < sizeof(d->easy_free) / sizeof(d->easy_free[0]))
			d->easy_free[d->neasy++] = c->easy;
		else
			curl_easy_cleanup(c->easy);
		c->easy = NULL;
	}
	mem_free(c->body);
	c->body = NULL;
	c->body_cap = 0;
	if (c->parse_pending)
		return; /* the task parses the response (settle()) */
	mem_free(c->resp);
	c->resp = NULL;
	c->resp_len = c->resp_cap = 0;
}

/* Step 2: the owner completes the call, once; 'w' the current worker. */
/* The cancel word of a completed call: infer_cancel() no longer counts. */
#define CANCEL_DONE INT_MIN

static void call_complete(struct driver *d, struct icall *c, int rc,
			  const char *why)
{
	int w = atomic_exchange_explicit(&c->cancel, CANCEL_DONE,
					 memory_order_acq_rel);

	/* A cancel that was counted is settled here, once, however the
	 * call ended (infer_cancel() counts only before completion). */
	if (w != 0 && w != CANCEL_DONE)
		atomic_fetch_sub_explicit(&c->pool->ncancel, 1,
					  memory_order_relaxed);
	if (why && !c->err[0])
		snprintf(c->err, sizeof(c->err), "%s", why);
	c->res.error = c->err;
	c->res.http_status = (int)c->http_status;
	c->res.attempts = c->attempts;
	c->res.endpoint = c->ep;
	PROBE3(offload_end, c, rc, c->http_status);
	call_free_transfer(d, c);
	io_ext_complete(cur_worker(), c->op, rc);
}

static void infer_drop(struct io_op *op)
{
	struct icall *c = op->u.ext.ctx;

	if (!c)
		return;
	op->u.ext.ctx = NULL;
	c->parse_pending = false; /* never collected: free the body too */
	call_free_transfer(NULL, c);
	if (c->req)
		json_decref(c->req);
	if (c->json)
		json_decref(c->json);
	mem_free(c->emb);
	mem_free(c->sbuf);
	mem_free(c);
}

/* Step 3: the agent side of a cancellation. */
static void infer_cancel(struct io_op *op)
{
	struct icall *c = op->u.ext.ctx;
	int why = task_cancel_reason(op->task);
	int z = 0;
	unsigned i;

	if (!c)
		return;

	if (atomic_compare_exchange_strong(&c->cancel, &z,
					   why ? why : -ECANCELED)) {
		atomic_fetch_add_explicit(&c->pool->ncancel, 1,
					  memory_order_release);
		/* Whichever driver owns it now, queue or transfer: all look. */
		for (i = 0; i < c->pool->ndrv; i++)
			myriad_waker_wake(c->pool->drv[i].waker);
	}
}

/* What io/ calls on a call's record (io/record.h, IOK_EXT). */
static const struct io_ext_ops call_ops = {
	.cancel = infer_cancel,
	.drop = infer_drop,
};

/* ---- curl callbacks ---- */

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
static bool sse_parse(struct icall *c)
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
		c->http_status_now = sp ? strtol(sp + 1, NULL, 10) : 0;
		return len;
	}
	v = strchr(line, ':');
	if (!v)
		return len;
	*v++ = 0;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!strcasecmp(line, "retry-after-ms")) {
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

static unsigned poll_events(int want)
{
	unsigned ev = 0;

	if (want == CURL_POLL_IN || want == CURL_POLL_INOUT)
		ev |= POLLIN;
	if (want == CURL_POLL_OUT || want == CURL_POLL_INOUT)
		ev |= POLLOUT;
	return ev;
}

/* Arm (or re-arm) the poll of 's' for what curl wants now. */
static void sock_arm(struct driver *d, struct sock *s)
{
	unsigned ev = poll_events(s->want);
	int r;

	if (s->dead || s->armed || !ev)
		return;
	r = io_polln(d->self, &s->rec, s->fd, ev, &d->ready);
	if (r == -EAGAIN)
		s->armed = (int)ev;
}

static struct sock *sock_new(struct driver *d, curl_socket_t fd)
{
	struct sock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->d = d;
	s->fd = fd;
	s->anext = d->socks;
	if (d->socks)
		d->socks->aprev = s;
	d->socks = s;
	return s;
}

static void sock_free(struct sock *s)
{
	struct driver *d = s->d;

	if (s->aprev)
		s->aprev->anext = s->anext;
	else
		d->socks = s->anext;
	if (s->anext)
		s->anext->aprev = s->aprev;
	free(s);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *arg,
		     void *sockp)
{
	struct driver *d = arg;
	struct sock *s = sockp;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			s->dead = true;
			s->want = 0;
			curl_multi_assign(d->multi, fd, NULL);
			if (s->armed)
				myriad_io_cancel(d->self,
						 (myriad_io_t *)&s->rec);
			else if (!s->in_ready)
				sock_free(s);
		}
		return 0;
	}
	if (!s) {
		s = sock_new(d, fd);
		if (!s)
			return -1;
		curl_multi_assign(d->multi, fd, s);
	}
	s->want = what;
	if (s->armed && s->armed != (int)poll_events(what))
		myriad_io_cancel(d->self, (myriad_io_t *)&s->rec);
	else if (!s->in_ready)
		sock_arm(d, s);
	return 0;
}

static int on_timer(CURLM *m, long ms, void *arg)
{
	struct driver *d = arg;

	(void)m;
	d->curl_deadline_ns =
		ms < 0 ? UINT64_MAX : myriad_now_ns() + (uint64_t)ms * 1000000u;
	return 0;
}

/* ---- the driver ---- */

static const char *curl_why(CURLcode rc)
{
	return curl_easy_strerror(rc);
}

static bool retryable(CURLcode rc, long code)
{
	switch (rc) {
	case CURLE_OK:
		return code == 408 || code == 409 || code == 429 || code >= 500;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
		return true;
	default:
		return false;
	}
}

static int final_code(CURLcode rc, struct icall *c)
{
	if (c->too_big)
		return MYRIAD_INFER_ETOOBIG;
	if (c->bad_body)
		return MYRIAD_INFER_EBODY;
	switch (rc) {
	case CURLE_OK:
		return MYRIAD_INFER_EHTTP;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return MYRIAD_INFER_ECONNECT;
	}
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
static void transfer_end(struct driver *d, struct icall *c)
{
	struct endpoint *e = &d->pool->eps[c->ep];

	curl_multi_remove_handle(d->multi, c->easy);
	active_del(d, c);
	c->drv = NULL;
	atomic_fetch_sub_explicit(&e->inflight, 1, memory_order_relaxed);
}

/* Backoff with full jitter, at least what the server advised. */
static void schedule_retry(struct driver *d, struct icall *c)
{
	struct myriad_infer *p = d->pool;
	struct endpoint *e = &p->eps[c->ep];
	uint64_t ceil = p->o.backoff_base_ns, delay, now = myriad_now_ns(),
		 until;
	unsigned i;

	for (i = 1; i < c->attempts && ceil < p->o.backoff_max_ns; i++)
		ceil *= 2;
	if (ceil > p->o.backoff_max_ns)
		ceil = p->o.backoff_max_ns;
	delay = rng_next(&d->rng) % (ceil + 1);
	if (c->retry_after_s >= 0 && (uint64_t)(c->retry_after_s * 1e9) > delay)
		delay = (uint64_t)(c->retry_after_s * 1e9);
	if (c->http_status == 429) {
		/* One cooldown for the whole endpoint. */
		until = now + delay;
		/* Released after it spread over the jitter window, as the
		 * calls that wait for the endpoint are (admit()). */
		delay += rng_next(&d->rng) % (p->o.cooldown_jitter_ns + 1);
		uint64_t old = atomic_load_explicit(&e->cool_until_ns,
						    memory_order_relaxed);

		while (old < until &&
		       !atomic_compare_exchange_weak_explicit(
			       &e->cool_until_ns, &old, until,
			       memory_order_relaxed, memory_order_relaxed))
			;
	}
	if (c->deadline_ns && now + delay >= c->deadline_ns) {
		call_complete(d, c, -ETIME, "deadline passed before a retry");
		return;
	}
	c->not_before_ns = now + delay;
	c->resp_len = 0;
	c->too_big = false;
	pthread_mutex_lock(&p->lock);
	q_push(p, c);
	pthread_mutex_unlock(&p->lock);
}

static void transfer_done(struct driver *d, struct icall *c, CURLcode rc)
{
	long code = 0;
	int why = atomic_load_explicit(&c->cancel, memory_order_acquire);

	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
	c->http_status = code;
	transfer_end(d, c);
	/* libcurl's replay, refused by on_prereq(): the connection died. */
	if (rc == CURLE_ABORTED_BY_CALLBACK && c->sends > 1) {
		rc = CURLE_RECV_ERROR;
		snprintf(c->err, sizeof(c->err), "%s",
			 "connection closed before an answer");
	}
	if (why) {
		call_complete(d, c, why, "cancelled");
		return;
	}
	if (rc == CURLE_OK && code >= 200 && code < 300) {
		if (c->stream) {
			/* Content came through sbuf; stable from now on. */
			c->res.content = c->sbuf ? c->sbuf : "";
			c->res.content_len = c->slen;
			call_complete(d, c, c->sdone ? 0 : MYRIAD_INFER_EBODY,
				      c->sdone ? NULL
					       : "stream ended without [DONE]");
			return;
		}
		/*
		 * Parsed by the task when it collects the result (settle()),
		 * on its own thread: the tree is then allocated and freed
		 * (myriad_infer_release()) in one malloc arena, not made here
		 * and freed on another worker under the arena's lock, and the
		 * driver, which refills the window, does less.
		 */
		c->parse_pending = true;
		call_complete(d, c, 0, NULL);
		return;
	}
	/* A stream that delivered content cannot be replayed. */
	if (!c->too_big && !c->bad_body && retryable(rc, code) && !c->slen &&
	    c->attempts <= d->pool->o.max_retries) {
		schedule_retry(d, c);
		return;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT && c->deadline_ns &&
	    myriad_now_ns() + 1000000u >= c->deadline_ns) {
		call_complete(d, c, -ETIME, "deadline passed");
		return;
	}
	if (rc == CURLE_OK)
		snprintf(c->err, sizeof(c->err), "HTTP status %ld", code);
	else if (c->too_big)
		snprintf(c->err, sizeof(c->err),
			 "response larger than %zu bytes",
			 d->pool->o.max_response);
	else if (c->bad_body)
		; /* sse_parse() said what */
	else
		snprintf(c->err, sizeof(c->err), "%s", curl_why(rc));
	call_complete(d, c, final_code(rc, c), NULL);
}

/* The endpoint for a new attempt: least outstanding / window. */
static int pick_endpoint(struct myriad_infer *p, uint64_t now,
			 uint64_t *cool_min)
{
	unsigned n = atomic_load_explicit(&p->neps, memory_order_acquire), i;
	int best = -1;
	double bl = 2;

	for (i = 0; i < n; i++) {
		struct endpoint *e = &p->eps[i];
		unsigned f = atomic_load_explicit(&e->inflight,
						  memory_order_relaxed);
		uint64_t cu = atomic_load_explicit(&e->cool_until_ns,
						   memory_order_relaxed);
		double l;

		if (cu > now) {
			if (cu < *cool_min)
				*cool_min = cu;
			continue;
		}
		if (f >= e->window)
			continue;
		l = (double)f / e->window;
		if (l < bl) {
			bl = l;
			best = (int)i;
		}
	}
	return best;
}

/*
 * Take a slot of endpoint 'ep''s window: drivers admit concurrently, so
 * the check and the increment are one compare-and-swap. False: full.
 */
static bool window_take(struct endpoint *e)
{
	unsigned f = atomic_load_explicit(&e->inflight, memory_order_relaxed);

	do {
		if (f >= e->window)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&e->inflight, &f, f + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	return true;
}

static int transfer_start(struct driver *d, struct icall *c, int ep)
{
	struct myriad_infer *p = d->pool;
	struct endpoint *e = &p->eps[ep];
	uint64_t tmo;

	/* The body for this endpoint's model, built once per endpoint. */
	if (!c->body || c->body_ep != ep) {
		size_t n;

		json_object_set_new(c->req, "model", json_string(e->model));
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

/*
 * Admit queued calls whose time has come into free windows (cancelled
 * ones complete here). Returns the earliest time a waiting call could go.
 */
static uint64_t admit(struct driver *d)
{
	struct myriad_infer *p = d->pool;
	uint64_t now = myriad_now_ns(), next = UINT64_MAX, cool = UINT64_MAX;
	struct icall *c, *n;
	bool full = false;
	int ep, r, why;

	pthread_mutex_lock(&p->lock);
	for (c = p->qhead; c; c = n) {
		n = c->next;
		why = atomic_load_explicit(&c->cancel, memory_order_acquire);
		if (why ||
		    atomic_load_explicit(&d->stop, memory_order_relaxed)) {
			q_del(p, c);
			pthread_mutex_unlock(&p->lock);
			call_complete(d, c, why ? why : -ESHUTDOWN,
				      why ? "cancelled" : "pool destroyed");
			pthread_mutex_lock(&p->lock);
			n = p->qhead; /* the list may have changed */
			continue;
		}
		if (c->deadline_ns && c->deadline_ns <= now) {
			q_del(p, c);
			pthread_mutex_unlock(&p->lock);
			call_complete(d, c, -ETIME,
				      "deadline passed in the queue");
			pthread_mutex_lock(&p->lock);
			n = p->qhead;
			continue;
		}
		if (c->deadline_ns && c->deadline_ns < next)
			next = c->deadline_ns; /* wake for it */
		if (full) {
			/* Only cancellations and deadlines matter now. */
			if (!p->nqdeadline &&
			    !atomic_load_explicit(&p->ncancel,
						  memory_order_acquire))
				break;
			continue;
		}
		if (c->not_before_ns > now) {
			if (c->not_before_ns < next)
				next = c->not_before_ns;
			continue;
		}
		if (!atomic_load_explicit(&p->neps, memory_order_acquire)) {
			q_del(p, c);
			pthread_mutex_unlock(&p->lock);
			call_complete(d, c, MYRIAD_INFER_ENOENDPOINT,
				      "the pool has no endpoint");
			pthread_mutex_lock(&p->lock);
			n = p->qhead;
			continue;
		}
		ep = pick_endpoint(p, now, &cool);
		if (ep < 0) {
			if (cool != UINT64_MAX) {
				/* Released after the cooldown, spread. */
				c->not_before_ns =
					cool +
					rng_next(&d->rng) %
						(p->o.cooldown_jitter_ns + 1);
				if (c->not_before_ns < next)
					next = c->not_before_ns;
				cool = UINT64_MAX;
				continue;
			}
			/* Every window is full: wait for a slot, but finish the
			 * scan for cancelled calls and deadlines behind. */
			full = true;
			continue;
		}
		if (!window_take(&p->eps[ep])) {
			n = c; /* lost the slot to another driver: pick again */
			continue;
		}
		q_del(p, c);
		pthread_mutex_unlock(&p->lock);
		r = transfer_start(d, c, ep);
		if (r < 0 && !c->drv) /* never reached the multi */
			atomic_fetch_sub_explicit(&p->eps[ep].inflight, 1,
						  memory_order_relaxed);
		if (r < 0)
			call_complete(d, c, r,
				      r == -ETIME
					      ? "deadline passed in the queue"
					      : "could not start the transfer");
		pthread_mutex_lock(&p->lock);
		n = p->qhead;
	}
	pthread_mutex_unlock(&p->lock);
	return next;
}

static void cancels(struct driver *d)
{
	struct icall *c, *n;
	int why;

	for (c = d->active; c; c = n) {
		n = c->next;
		why = atomic_load_explicit(&c->cancel, memory_order_acquire);
		if (!why &&
		    !atomic_load_explicit(&d->stop, memory_order_relaxed))
			continue;
		transfer_end(d, c);
		call_complete(d, c, why ? why : -ESHUTDOWN,
			      why ? "cancelled" : "pool destroyed");
	}
}

static void drain_curl(struct driver *d)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(d->multi, &left))) {
		struct icall *c = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &c);
		if (c)
			transfer_done(d, c, m->data.result);
	}
}

static int driver_step(myriad_task_t *self, void *state)
{
	struct driver *d = *(struct driver **)state;
	struct io_op *r, *nr;
	uint64_t wake, next;
	int running, rc, guard;

	if (d->self != self) {
		d->self = self;
		task_set_urgent(self); /* sched/task.c: ahead of the agents */
	}
	for (guard = 0; guard < 64; guard++) {
		/* Sockets that are ready (or whose poll ended). */
		r = atomic_exchange_explicit(&d->ready, NULL,
					     memory_order_acquire);
		for (; r; r = nr) {
			struct sock *s = (struct sock *)r;
			int ev, flags = 0;

			nr = r->u.ntf.snext;
			ev = io_polln(self, &s->rec, s->fd, 0, &d->ready);
			s->armed = 0;
			if (s->dead) {
				sock_free(s);
				continue;
			}
			if (ev > 0) {
				if (ev & (POLLIN | POLLHUP))
					flags |= CURL_CSELECT_IN;
				if (ev & POLLOUT)
					flags |= CURL_CSELECT_OUT;
				if (ev & POLLERR)
					flags |= CURL_CSELECT_ERR;
				s->in_ready = true;
				curl_multi_socket_action(d->multi, s->fd, flags,
							 &running);
				s->in_ready = false;
				if (s->dead) {
					sock_free(s);
					continue;
				}
			}
			sock_arm(d, s); /* one-shot: again for what is wanted */
		}
		if (atomic_load_explicit(&d->pool->ncancel,
					 memory_order_acquire) ||
		    atomic_load_explicit(&d->stop, memory_order_relaxed))
			cancels(d);
		if (d->curl_deadline_ns <= myriad_now_ns()) {
			d->curl_deadline_ns = UINT64_MAX;
			curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT,
						 0, &running);
		}
		drain_curl(d);
		next = admit(d);
		drain_curl(d);
		if (atomic_load_explicit(&d->stop, memory_order_relaxed) &&
		    !d->active) {
			myriad_timer_cancel(self, &d->tm);
			return MYRIAD_DONE; /* polls in flight end first */
		}
		wake = d->curl_deadline_ns < next ? d->curl_deadline_ns : next;
		if (atomic_load_explicit(&d->ready, memory_order_acquire))
			continue;
		if (wake == UINT64_MAX) {
			myriad_timer_cancel(self, &d->tm);
			return MYRIAD_PENDING;
		}
		myriad_timer_cancel(self, &d->tm);
		rc = myriad_sleep_until(self, &d->tm, wake);
		if (rc != 0) /* armed (-EAGAIN); 0: passed, look again */
			return MYRIAD_PENDING;
	}
	return MYRIAD_YIELD;
}

/* ---- the public API ---- */

/* curl_global_init is not thread-safe in this libcurl: once. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
#if CURL_JEMALLOC
	curl_init_rc =
		curl_global_init_mem(CURL_GLOBAL_DEFAULT, cm_malloc, cm_free,
				     cm_realloc, cm_strdup, cm_calloc);
#else
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
}

myriad_infer_t *myriad_infer_create(myriad_rt_t *rt,
				    const struct myriad_infer_opts *opts,
				    int *err)
{
	struct myriad_infer *p = NULL;
	unsigned i;
	int r = 0;

	if (!rt || (opts && opts->sz < sizeof(size_t))) {
		r = -EINVAL;
		goto out;
	}
	if (cur_worker()) {
		r = -EDEADLK;
		goto out;
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		r = -EIO;
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		r = -ENOMEM;
		goto out;
	}
	p->rt = rt;
	if (opts)
		memcpy(&p->o, opts,
		       opts->sz < sizeof(p->o) ? opts->sz : sizeof(p->o));
	p->o.sz = sizeof(p->o);
	if (!p->o.connect_timeout_ns)
		p->o.connect_timeout_ns = 10000000000ull;
	if (!p->o.timeout_ns)
		p->o.timeout_ns = 300000000000ull;
	if (!p->o.max_retries)
		p->o.max_retries = 4;
	if (!p->o.backoff_base_ns)
		p->o.backoff_base_ns = 100000000ull;
	if (!p->o.backoff_max_ns)
		p->o.backoff_max_ns = 10000000000ull;
	if (!p->o.max_response)
		p->o.max_response = 8u << 20;
	if (!p->o.cooldown_jitter_ns)
		p->o.cooldown_jitter_ns = 100000000ull;
	p->ndrv = p->o.drivers ? p->o.drivers : (unsigned)myriad_rt_workers(rt);
	if (p->ndrv > 64)
		p->ndrv = 64;
	pthread_mutex_init(&p->lock, NULL);
	p->eps_cap = 64;
	p->eps = calloc(p->eps_cap, sizeof(*p->eps));
	p->drv = calloc(p->ndrv, sizeof(*p->drv));
	if (!p->eps || !p->drv) {
		r = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < p->ndrv; i++) {
		struct driver *d = &p->drv[i];

		d->pool = p;
		d->curl_deadline_ns = UINT64_MAX;
		d->rng = rng_seed(i, myriad_now_ns());
		d->multi = curl_multi_init();
		if (!d->multi) {
			r = -EIO;
			goto fail;
		}
		curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
		curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
		curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_timer);
		curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
		curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
		curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, 4096L);
	}
	for (i = 0; i < p->ndrv; i++) {
		struct driver *d = &p->drv[i];

		r = myriad_rt_spawn(rt, driver_step, &d, sizeof(d), &d->handle);
		if (r < 0)
			goto fail_spawned;
		d->waker.rt = rt;
		d->waker.task = d->handle;
	}
	if (err)
		*err = 0;
	return p;

fail_spawned:
	while (i-- > 0) {
		atomic_store(&p->drv[i].stop, true);
		myriad_waker_wake(p->drv[i].waker);
		myriad_handle_join(p->drv[i].handle, NULL, -1);
		myriad_handle_release(p->drv[i].handle);
	}
fail:
	if (p->drv)
		for (i = 0; i < p->ndrv; i++)
			if (p->drv[i].multi)
				curl_multi_cleanup(p->drv[i].multi);
	free(p->drv);
	free(p->eps);
	pthread_mutex_destroy(&p->lock);
	free(p);
	p = NULL;
out:
	if (err)
		*err = r;
	return r ? NULL : p;
}

int myriad_infer_add(myriad_infer_t *p, const struct myriad_infer_endpoint *ep)
{
	struct endpoint *e;
	const char *key = NULL;
	char *auth = NULL;
	size_t n;
	int idx;

	if (!p || !ep ||
	    ep->sz < offsetof(struct myriad_infer_endpoint, window) +
			     sizeof(ep->window) ||
	    !ep->base_url || !ep->model || ep->window > 65535 ||
	    (strncmp(ep->base_url, "http://", 7) &&
	     strncmp(ep->base_url, "https://", 8)))
		return -EINVAL;
	if (ep->api_key_env) {
		key = getenv(ep->api_key_env);
		if (!key)
			return -ENOKEY;
	}
	pthread_mutex_lock(&p->lock);
	idx = (int)atomic_load(&p->neps);
	if ((unsigned)idx == p->eps_cap) {
		pthread_mutex_unlock(&p->lock);
		return -ENOSPC;
	}
	e = &p->eps[idx];
	n = strlen(ep->base_url);
	while (n && ep->base_url[n - 1] == '/')
		n--;
	e->chat_url = malloc(n + 32);
	e->embed_url = malloc(n + 32);
	e->model = strdup(ep->model);
	if (key && asprintf(&auth, "Authorization: Bearer %s", key) < 0)
		auth = NULL;
	if (!e->chat_url || !e->embed_url || !e->model || (key && !auth)) {
		free(e->chat_url);
		free(e->embed_url);
		free(e->model);
		free(auth);
		memset(e, 0, sizeof(*e));
		pthread_mutex_unlock(&p->lock);
		return -ENOMEM;
	}
	snprintf(e->chat_url, n + 32, "%.*s/v1/chat/completions", (int)n,
		 ep->base_url);
	snprintf(e->embed_url, n + 32, "%.*s/v1/embeddings", (int)n,
		 ep->base_url);
	e->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	e->hdrs = curl_slist_append(e->hdrs, "Expect:");
	if (auth)
		e->hdrs = curl_slist_append(e->hdrs, auth);
	free(auth);
	e->window = ep->window ? ep->window : 64;
	atomic_init(&e->inflight, 0);
	atomic_init(&e->cool_until_ns, 0);
	atomic_store_explicit(&p->neps, (unsigned)idx + 1,
			      memory_order_release);
	pthread_mutex_unlock(&p->lock);
	/* Calls that waited for an endpoint may go now. */
	for (n = 0; n < p->ndrv; n++)
		myriad_waker_wake(p->drv[n].waker);
	return idx;
}

int myriad_infer_destroy(myriad_infer_t *p)
{
	unsigned i;

	if (!p)
		return -EINVAL;
	if (cur_worker())
		return -EDEADLK;
	for (i = 0; i < p->ndrv; i++) {
		atomic_store(&p->drv[i].stop, true);
		myriad_waker_wake(p->drv[i].waker);
	}
	for (i = 0; i < p->ndrv; i++) {
		/* A stopped runtime returns -ESHUTDOWN: nothing runs then. */
		myriad_handle_join(p->drv[i].handle, NULL, -1);
		myriad_handle_release(p->drv[i].handle);
		curl_multi_cleanup(p->drv[i].multi);
		while (p->drv[i].neasy)
			curl_easy_cleanup(
				p->drv[i].easy_free[--p->drv[i].neasy]);
		/* The driver and its polls are done: no record is in use. */
		while (p->drv[i].socks)
			sock_free(p->drv[i].socks);
	}
	for (i = 0; i < atomic_load(&p->neps); i++) {
		free(p->eps[i].chat_url);
		free(p->eps[i].embed_url);
		free(p->eps[i].model);
		curl_slist_free_all(p->eps[i].hdrs);
	}
	free(p->eps);
	free(p->drv);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return 0;
}

/*
 * The task collects a completed call: a 2xx body left by transfer_done()
 * is parsed now, once; 'rc' the transfer's result. Returns the call's
 * result: rc, or MYRIAD_INFER_EBODY for a malformed body.
 */
static int settle(struct icall *c, int rc)
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

static int call_start(myriad_task_t *self, myriad_infer_t *p,
		      myriad_infer_call_t *call, int kind, json_t *req,
		      bool stream)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)call;
	struct icall *c;
	int r = io_op_enter(w, self, op, IOK_EXT);

	if (r != 1 || !p || !req) {
		json_decref(req); /* NULL-safe */
		if (r == 0)
			return settle(op->u.ext.ctx, io_op_result(self, op));
		return r == 1 ? -EINVAL : r;
	}
	c = mem_zalloc(sizeof(*c));
	if (!c) {
		json_decref(req);
		return -ENOMEM;
	}
	c->deadline_ns = io_op_take_deadline(op);
	c->pool = p;
	c->kind = kind;
	c->req = req;
	c->task = self;
	c->op = op;
	c->ep = -1;
	c->retry_after_s = -1;
	c->res.prompt_tokens = c->res.completion_tokens = c->res.total_tokens =
		-1;
	c->res.queue_ms = c->res.prompt_ms = c->res.predicted_ms = -1;
	c->res.endpoint = -1;
	c->res.error = c->err;
	c->stream = stream;
	atomic_init(&c->slock.v, 0);
	io_ext_start(w, self, op, &call_ops, c);
	pthread_mutex_lock(&p->lock);
	q_push(p, c);
	pthread_mutex_unlock(&p->lock);
	wake_driver(p, &p->drv[w->idx % p->ndrv]);
	return -EAGAIN;
}

static int chat_start(myriad_task_t *self, myriad_infer_t *p,
		      myriad_infer_call_t *call, const char *messages_json,
		      const char *extra_json, bool stream)
{
	struct io_op *op = (struct io_op *)call;
	json_t *req, *m, *x;
	json_error_t jerr;

	if (!call)
		return -EINVAL;
	/* In flight or done: no new request is built. */
	if ((atomic_load_explicit(&op->st, memory_order_acquire) & 3u) != 0)
		return call_start(self, p, call, CALL_CHAT, NULL, false);
	if (!messages_json)
		return -EINVAL;
	m = json_loads(messages_json, 0, &jerr);
	if (!json_is_array(m)) {
		json_decref(m);
		return -EINVAL;
	}
	req = json_object();
	if (!req) {
		json_decref(m);
		return -ENOMEM;
	}
	json_object_set_new(req, "messages", m);
	if (extra_json) {
		x = json_loads(extra_json, 0, &jerr);
		if (!json_is_object(x)) {
			json_decref(x);
			json_decref(req);
			return -EINVAL;
		}
		json_object_update(req, x);
		json_decref(x);
	}
	json_object_set_new(req, "stream", json_boolean(stream));
	return call_start(self, p, call, CALL_CHAT, req, stream);
}

int myriad_infer_chat(myriad_task_t *self, myriad_infer_t *p,
		      myriad_infer_call_t *call, const char *messages_json,
		      const char *extra_json)
{
	return chat_start(self, p, call, messages_json, extra_json, false);
}

int myriad_infer_chat_stream(myriad_task_t *self, myriad_infer_t *p,
			     myriad_infer_call_t *call,
			     const char *messages_json, const char *extra_json)
{
	return chat_start(self, p, call, messages_json, extra_json, true);
}

int myriad_infer_stream_read(myriad_task_t *self, myriad_infer_call_t *call,
			     char *buf, size_t cap)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)call;
	struct icall *c;
	size_t n = 0;
	uint32_t st;
	int r;

	if (!self || !op || !w || w->current != self || !buf || !cap ||
	    cap > INT32_MAX || op->kind != IOK_EXT || !(c = op->u.ext.ctx) ||
	    !c->stream)
		return -EINVAL;
	for (;;) {
		/* Acquire: when DONE is seen, every append before it is. */
		st = atomic_load_explicit(&op->st, memory_order_acquire) & 3u;
		spin_lock(&c->slock);
		if (c->slen > c->sread) {
			n = c->slen - c->sread;
			if (n > cap)
				n = cap;
			memcpy(buf, c->sbuf + c->sread, n);
			c->sread += n;
		}
		spin_unlock(&c->slock);
		if (n)
			return (int)n;
		if (st == 1)
			return -EAGAIN;
		if (st == 0)
			return 0; /* finished and read */
		r = io_op_result(self, op);
		return r;
	}
}

int myriad_infer_embed(myriad_task_t *self, myriad_infer_t *p,
		       myriad_infer_call_t *call, const char *input)
{
	struct io_op *op = (struct io_op *)call;
	json_t *req;

	if (!call)
		return -EINVAL;
	if ((atomic_load_explicit(&op->st, memory_order_acquire) & 3u) != 0)
		return call_start(self, p, call, CALL_EMBED, NULL, false);
	if (!input)
		return -EINVAL;
	req = json_pack("{s:s}", "input", input);
	if (!req)
		return -ENOMEM;
	return call_start(self, p, call, CALL_EMBED, req, false);
}

const struct myriad_infer_result *
myriad_infer_result(const myriad_infer_call_t *call)
{
	const struct io_op *op = (const struct io_op *)call;

	if (!op || op->kind != IOK_EXT || !op->u.ext.ctx ||
	    (atomic_load_explicit(&op->st, memory_order_acquire) & 3u) == 1)
		return NULL;
	/* Finished but not yet collected by the task: parse it now. */
	(void)settle(op->u.ext.ctx, 0);
	return &((struct icall *)op->u.ext.ctx)->res;
}

int myriad_infer_release(myriad_task_t *self, myriad_infer_call_t *call)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)call;

	if (!self || !op || !w || w->current != self)
		return -EINVAL;
	if ((atomic_load_explicit(&op->st, memory_order_acquire) & 3u) != 0)
		return -EBUSY;
	io_op_drop(w->rt, op);
	return 0;
}
