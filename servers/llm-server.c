/* SPDX-License-Identifier: MIT */
/*
 * servers/llm-server.c: a mock OpenAI-compatible inference server for
 * the `agents` benchmark and the inference client's tests: chat completions
 * (also streamed as server-sent events), embeddings, a GPU-like limit of
 * requests in service at once with a FIFO (or 429) behind it, and fault
 * modes (429, 500, resets, truncated, oversized, malformed, slow bodies).
 *
 * One process, one thread, plain epoll (edge-triggered), a timer min-heap
 * driving epoll_pwait2's timeout. Not built on myriad on purpose: the
 * server is the fixed ground that every runtime under comparison (myriad,
 * Go, Tokio) is measured against, so it must behave the same for all of
 * them and must not share the scheduler being measured. libc, and
 * jansson for the request bodies:
 *   cc -O2 -o llm-server llm-server.c srv.c -ljansson
 *
 * The batch is simulated in virtual time: a slot freed by a request whose
 * service ended at time D starts the next queued request at D, not at the
 * moment the event loop got round to it, so that the server's own delays
 * do not lower the bound (concurrency / llm_ms) the clients are held to.
 *
 * Usage: see usage() below; after listening it prints "PORT <n>" on stdout.
 */
#include "srv.h"

#include <jansson.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/uio.h>

#define PROG "llm-server"
#define MAX_HDR (16 * 1024)
#define RBUF_MIN 4096
#define MAX_INPUTS 2048
#define MODEL_MAX 200
#define NSEC_MS 1000000ull

/* ---- options and counters ---------------------------------------------- */

enum fault {
	F_NONE,
	F_429,
	F_500,
	F_RESET,
	F_TRUNC,
	F_OVERSIZE,
	F_MALFORMED,
	F_SLOW,
	F_COUNT
};

static const char *const fault_opt[F_COUNT] = {
	[F_429] = "--fault-429",	   [F_500] = "--fault-500",
	[F_RESET] = "--fault-reset",	   [F_TRUNC] = "--fault-truncate",
	[F_OVERSIZE] = "--fault-oversize", [F_MALFORMED] = "--fault-malformed",
	[F_SLOW] = "--fault-slow",
};

static struct {
	int port;
	const char *bind;
	long max_conns; /* 0: bounded by RLIMIT_NOFILE only */
	uint64_t llm_ns;
	long conc;
	int overload_429;
	double retry_after_s;
	int retry_after_date;
	uint64_t seed;
	double fault[F_COUNT];
	size_t oversize_bytes;
	uint64_t drip_ns;
	size_t drip_bytes;
	uint64_t fail_first;
	size_t max_body;
} O = {
	.port = 0,
	.bind = "127.0.0.1",
	.llm_ns = 20 * NSEC_MS,
	.conc = 256,
	.retry_after_s = 1,
	.seed = 1,
	.oversize_bytes = 8 << 20,
	.drip_ns = 50 * NSEC_MS,
	.drip_bytes = 8,
	.max_body = 16 << 20,
};

/*
 * GET /stats. requests and completed count inference requests only
 * (chat and embeddings): requests when one has been read whole, completed
 * when a 200 answer to one has been written whole.
 */
#define STAT_FIELDS(X)               \
	X(requests)                  \
	X(completed)                 \
	X(in_service_max)            \
	X(queued_max)                \
	X(rejected_429)              \
	X(client_closed_mid_request) \
	X(connections_accepted)      \
	X(bad_requests)              \
	X(chat)                      \
	X(embeddings)                \
	X(streams)                   \
	X(fault_429)                 \
	X(fault_500)                 \
	X(fault_reset)               \
	X(fault_truncate)            \
	X(fault_oversize)            \
	X(fault_malformed)           \
	X(fault_slow)                \
	X(slot_gaps)                 \
	X(slot_gap_us)               \
	X(late_us)

static struct {
#define X(f) uint64_t f;
	STAT_FIELDS(X)
#undef X
} S;

/* ---- connections -------------------------------------------------------- */

enum cstate {
	C_READ,	   /* reading a request */
	C_QUEUED,  /* waiting for a slot, FIFO */
	C_SERVICE, /* holding a slot; timer = end of service or next event */
	C_WRITE,   /* answer queued; timer = next drip when dripping */
	C_LINGER,  /* our side shut: discard input until EOF or the timer */
};

enum kind { K_CHAT, K_EMBED };

struct req {
	uint64_t seq;		/* chatcmpl-<seq> */
	uint64_t arrive, start; /* ns */
	uint64_t deadline;	/* end of service */
	uint32_t nmsg;		/* messages, or inputs */
	uint32_t max_tokens;	/* 0: none */
	uint32_t prompt_tokens;
	uint8_t kind, stream, fault;
	uint16_t step, nsteps; /* streaming */
	char model[MODEL_MAX + 1];
	char *body; /* embeddings: built on arrival */
	size_t body_len;
};

struct conn {
	struct srv_conn s; /* first: the loop hands back &c->s */
	uint8_t state;
	uint8_t keepalive;   /* of the request being served */
	uint8_t close_after; /* close when the output has drained */
	uint8_t resp_ok;     /* a whole 200 answer: count it when drained */
	uint8_t cont_sent;   /* 100 Continue sent for this request */
	uint8_t drip;	     /* send the body a few bytes at a time */
	size_t drip_hdr;     /* bytes still to send at once (headers) */
	uint64_t drip_at;
	struct conn *qprev, *qnext;
	char *rbuf;
	size_t rlen, rcap;
	char *obuf;
	size_t olen, ooff, ocap;
	const char *ext; /* static body sent after obuf (oversize) */
	size_t extlen, extoff;
	struct req r;
};

static struct {
	struct srv_loop loop;
	long in_service;
	/*
	 * Slots freed with nobody queued: when each freed (a ring, oldest
	 * first), so that the next start measures how long slots stood idle
	 * (the client's turnaround: /stats slot_gap_us over slot_gaps).
	 */
	uint64_t *free_at;
	long free_head, free_n;
	long open;
	struct conn *qhead, *qtail;
	uint64_t qlen;
	uint64_t seq;
	uint64_t rng;
	unsigned malformed_turn;
	char *scratch;
	size_t scap;
	char *enc; /* a request's value as JSON text (j_text) */
	size_t ecap;
} L;

/* ---- output buffers ----------------------------------------------------- */

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

static void ob_put(struct conn *c, const void *p, size_t n)
{
	ob_reserve(c, n);
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
}

static void ob_printf(struct conn *c, const char *fmt, ...)
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
static size_t sc_len;

static void sc_reset(void)
{
	sc_len = 0;
}

static void sc_printf(const char *fmt, ...)
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
static void sc_fill(char ch, size_t n)
{
	if (L.scap - sc_len < n + 256) {
		L.scap = sc_len + n + 65536;
		L.scratch = srv_xrealloc(L.scratch, L.scap);
	}
	memset(L.scratch + sc_len, ch, n);
	sc_len += n;
}

static int out_pending(const struct conn *c)
{
	return c->olen > c->ooff || c->extlen > c->extoff;
}

/* ---- connection lifetime and the FIFO ------------------------------------ */

static void service_start(struct conn *c, uint64_t at);

static void q_push(struct conn *c)
{
	c->qnext = NULL;
	c->qprev = L.qtail;
	if (L.qtail)
		L.qtail->qnext = c;
	else
		L.qhead = c;
	L.qtail = c;
	if (++L.qlen > S.queued_max)
		S.queued_max = L.qlen;
}

static void q_unlink(struct conn *c)
{
	if (c->qprev)
		c->qprev->qnext = c->qnext;
	else
		L.qhead = c->qnext;
	if (c->qnext)
		c->qnext->qprev = c->qprev;
	else
		L.qtail = c->qprev;
	c->qprev = c->qnext = NULL;
	L.qlen--;
}

/*
 * A slot is free from free_at on (virtual time): the queue's head starts
 * then, or when it arrived if later. Only arms timers, never writes, so it
 * is safe from any handler.
 */
static void slot_release(uint64_t free_at)
{
	L.in_service--;
	while (L.qhead && L.in_service < O.conc) {
		struct conn *c = L.qhead;

		q_unlink(c);
		service_start(c, free_at > c->r.arrive ? free_at : c->r.arrive);
	}
	if (L.in_service < O.conc && L.free_n < O.conc)
		L.free_at[(L.free_head + L.free_n++) % O.conc] = free_at;
}

/* No more connections now: --max-conns are open. */
static int conns_full(struct srv_loop *l)
{
	return O.max_conns && L.open >= O.max_conns;
}

/*
 * Close and free c. by_client: the peer closed or failed, which counts as
 * a mid-request close while a request is queued, in service or being
 * answered. reset: close with SO_LINGER 0 (an RST).
 */
static void conn_free(struct conn *c, int by_client, int reset)
{
	if (by_client && c->state != C_READ && c->state != C_LINGER)
		S.client_closed_mid_request++;
	if (c->state == C_QUEUED)
		q_unlink(c);
	else if (c->state == C_SERVICE)
		slot_release(L.loop.now);
	srv_timer_del(&L.loop.heap, &c->s.tm);
	if (reset) {
		struct linger lg = { 1, 0 };

		setsockopt(c->s.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(c->s.fd);
	free(c->rbuf);
	free(c->obuf);
	free(c->r.body);
	free(c);
	L.open--;
	srv_accept_resume(&L.loop);
}

/* ---- I/O ---------------------------------------------------------------- */

/*
 * Read what the socket has (edge-triggered: until EAGAIN, or a short read
 * unless the peer has shut down). Returns -1 if c was freed.
 */
static int conn_read(struct conn *c)
{
	for (;;) {
		if (c->rlen == c->rcap) {
			size_t lim = MAX_HDR + O.max_body;

			if (c->rcap >= lim) {
				c->s.rpaused = 1;
				return 0;
			}
			c->rcap = c->rcap ? 2 * c->rcap : RBUF_MIN;
			if (c->rcap > lim)
				c->rcap = lim;
			c->rbuf = srv_xrealloc(c->rbuf, c->rcap);
		}
		switch (srv_recv(&c->s, c->rbuf, &c->rlen, c->rcap,
				 c->state == C_LINGER)) {
		case SRV_RECV_AGAIN:
			return 0;
		case SRV_RECV_FULL:
			continue;
		}
		conn_free(c, 1, 0); /* EOF or error */
		return -1;
	}
}

/*
 * Write what is queued, a few bytes per drip_ns when dripping. Returns -1
 * if c was freed (the peer went away).
 */
static int conn_flush(struct conn *c)
{
	while (out_pending(c)) {
		size_t a = c->olen - c->ooff, b = c->extlen - c->extoff;
		size_t lim = (size_t)-1;
		struct iovec iov[2];
		int cnt = 0;
		ssize_t n;

		if (c->drip) {
			if (c->drip_hdr) {
				lim = c->drip_hdr;
			} else if (L.loop.now < c->drip_at) {
				if (!c->s.tm.idx)
					srv_timer_set(&L.loop.heap, &c->s.tm,
						      c->drip_at);
				return 0;
			} else {
				lim = O.drip_bytes;
			}
		}
		if (a) {
			iov[cnt].iov_base = c->obuf + c->ooff;
			iov[cnt++].iov_len = a < lim ? a : lim;
			lim -= iov[cnt - 1].iov_len;
		}
		if (b && lim) {
			iov[cnt].iov_base = (char *)c->ext + c->extoff;
			iov[cnt++].iov_len = b < lim ? b : lim;
		}
		n = writev(c->s.fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			conn_free(c, 1, 0);
			return -1;
		}
		if ((size_t)n <= a) {
			c->ooff += (size_t)n;
		} else {
			c->ooff = c->olen;
			c->extoff += (size_t)n - a;
		}
		if (c->drip) {
			if (c->drip_hdr) {
				c->drip_hdr -= (size_t)n;
				if (!c->drip_hdr)
					c->drip_at = L.loop.now + O.drip_ns;
			} else {
				c->drip_at = L.loop.now + O.drip_ns;
			}
		}
	}
	c->ooff = c->olen = 0;
	c->ext = NULL;
	c->extlen = c->extoff = 0;
	return 0;
}

/* ---- responses ---------------------------------------------------------- */

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

/* Status line and headers for a body of len bytes (extra: more headers). */
static void put_head(struct conn *c, int status, const char *ctype, size_t len,
		     const char *extra)
{
	ob_printf(c,
		  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		  "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
		  status, reason(status), ctype, len, extra ? extra : "",
		  c->keepalive && !c->close_after ? "keep-alive" : "close");
}

/* A whole answer from the scratch buffer; the connection goes to C_WRITE. */
static void reply_scratch(struct conn *c, int status, const char *extra)
{
	put_head(c, status, "application/json", sc_len, extra);
	ob_put(c, L.scratch, sc_len);
	c->state = C_WRITE;
}

static void reply_json(struct conn *c, int status, const char *extra,
		       const char *json)
{
	sc_reset();
	sc_printf("%s", json);
	reply_scratch(c, status, extra);
}

/* An OpenAI-style error; close: the request's framing is lost. */
static void reply_error(struct conn *c, int status, const char *type,
			const char *code, const char *msg, int close)
{
	if (status != 429 && status != 500)
		S.bad_requests++;
	if (close)
		c->close_after = 1;
	sc_reset();
	sc_printf("{\"error\":{\"message\":\"%s\",\"type\":\"%s\","
		  "\"param\":null,\"code\":",
		  msg, type);
	if (code)
		sc_printf("\"%s\"}}", code);
	else
		sc_printf("null}}");
	reply_scratch(c, status, NULL);
}

static void reply_429(struct conn *c)
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

static void reply_500(struct conn *c)
{
	reply_error(c, 500, "server_error", NULL,
		    "The server had an error while processing your request.",
		    0);
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3ull;
	return h;
}

/* ---- requests ----------------------------------------------------------- */

/* Pick the request's fault: the first --fail-first get 500, then a draw. */
static uint8_t pick_fault(void)
{
	double u, acc = 0;
	int f;

	if (L.seq <= O.fail_first)
		return F_500;
	u = srv_rand01(&L.rng);
	for (f = F_429; f < F_COUNT; f++) {
		acc += O.fault[f];
		if (O.fault[f] > 0 && u < acc)
			return (uint8_t)f;
	}
	return F_NONE;
}

static void count_fault(uint8_t f)
{
	switch (f) {
	case F_429:
		S.fault_429++;
		break;
	case F_500:
		S.fault_500++;
		break;
	case F_RESET:
		S.fault_reset++;
		break;
	case F_TRUNC:
		S.fault_truncate++;
		break;
	case F_OVERSIZE:
		S.fault_oversize++;
		break;
	case F_MALFORMED:
		S.fault_malformed++;
		break;
	case F_SLOW:
		S.fault_slow++;
		break;
	}
}

/* A valid inference request: reject (429), serve now, or queue. */
static void admit(struct conn *c)
{
	c->r.seq = ++L.seq;
	c->r.arrive = L.loop.now;
	c->r.fault = pick_fault();
	count_fault(c->r.fault);
	if (c->r.fault == F_429) {
		reply_429(c);
		return;
	}
	if (L.in_service < O.conc) {
		service_start(c, L.loop.now);
		return;
	}
	if (O.overload_429) {
		reply_429(c);
		return;
	}
	c->state = C_QUEUED;
	q_push(c);
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

static void on_chat(struct conn *c, const char *b, size_t n)
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

static void on_embed(struct conn *c, const char *b, size_t n)
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
		reply_json(c, 200, NULL,
			   "{\"object\":\"list\",\"data\":[{\"id\":\"mock\","
			   "\"object\":\"model\",\"created\":0,"
			   "\"owned_by\":\"myriad\"}]}");
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
static int parse_one(struct conn *c)
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

/*
 * Close our side (FIN) and discard what the client still sends until it
 * closes too, or LINGER_NS passes: closing with unread input would send
 * an RST that can destroy the answer before the client reads it.
 */
#define LINGER_NS (1000 * NSEC_MS)

static int conn_linger(struct conn *c)
{
	c->state = C_LINGER;
	c->rlen = 0;
	c->s.rpaused = 0;
	if (srv_linger(&L.loop, c->s.fd, &c->s.tm, LINGER_NS)) {
		conn_free(c, 0, 0);
		return -1;
	}
	return conn_read(c);
}

/*
 * Drive c as far as it can go: flush, finish an answer, read and parse
 * the next request. Returns -1 if c was freed.
 */
static int conn_kick(struct conn *c)
{
	for (;;) {
		if (out_pending(c)) {
			if (conn_flush(c) < 0)
				return -1;
			if (out_pending(c))
				return 0;
		}
		if (c->state == C_WRITE) {
			if (c->resp_ok)
				S.completed++;
			c->resp_ok = 0;
			c->drip = 0;
			c->state = C_READ;
			if (!c->keepalive)
				c->close_after = 1;
		}
		if (c->state != C_READ)
			return 0;
		if (c->close_after)
			return conn_linger(c);
		if (srv_resume(&L.loop, &c->s) < 0)
			return -1;
		/* Nothing more to parse: done, unless a 100 Continue
		 * was queued (flushed on the next pass). */
		if (!parse_one(c) && !out_pending(c))
			return 0;
	}
}

/* ---- service: the simulated batch ----------------------------------------- */

/* The reply text and its word boundaries (streamed a word per event). */
static size_t reply_text(const struct conn *c, char *buf, size_t cap,
			 uint32_t *words, int *finished)
{
	uint32_t w = 1, max = c->r.max_tokens ? c->r.max_tokens : UINT32_MAX;
	size_t i, n = (size_t)snprintf(buf, cap, "reply %" PRIu64 " to %u %s",
				       c->r.seq, c->r.nmsg,
				       c->r.nmsg == 1 ? "message" : "messages");

	/* a token per word; max_tokens cuts the text at a word */
	*finished = 1;
	for (i = 0; i < n; i++) {
		if (buf[i] != ' ')
			continue;
		if (w == max) {
			n = i;
			*finished = 0;
			break;
		}
		w++;
	}
	*words = w;
	buf[n] = 0;
	return n;
}

static void chat_body_json(struct conn *c, const char *text, uint32_t words,
			   int finished)
{
	double q = (double)(c->r.start - c->r.arrive) / 1e6;
	double total = (double)(c->r.deadline - c->r.start) / 1e6;

	sc_printf("{\"id\":\"chatcmpl-%" PRIu64 "\",\"object\":"
		  "\"chat.completion\",\"created\":%ld,\"model\":\"%s\","
		  "\"choices\":[{\"index\":0,\"message\":{\"role\":"
		  "\"assistant\",\"content\":\"%s\"},\"finish_reason\":"
		  "\"%s\"}],\"usage\":{\"prompt_tokens\":%u,"
		  "\"completion_tokens\":%u,\"total_tokens\":%u},"
		  "\"timings\":{\"queue_ms\":%.3f,\"prompt_ms\":%.3f,"
		  "\"predicted_ms\":%.3f}}",
		  c->r.seq, (long)time(NULL), c->r.model, text,
		  finished ? "stop" : "length", c->r.prompt_tokens, words,
		  c->r.prompt_tokens + words, q, total / 4, total - total / 4);
}

/* The oversized bodies: valid JSON of about --oversize-bytes, built once. */
static const char *oversize_body(int kind, size_t *len)
{
	static char *cache[2];
	static size_t clen[2];
	char *b;
	size_t n = O.oversize_bytes, i = 0;

	if (cache[kind]) {
		*len = clen[kind];
		return cache[kind];
	}
	b = srv_xrealloc(NULL, n + 4096);
	if (kind == K_CHAT) {
		i = (size_t)sprintf(b,
				    "{\"id\":\"chatcmpl-oversize\","
				    "\"object\":\"chat.completion\","
				    "\"created\":0,\"model\":\"mock\","
				    "\"choices\":[{\"index\":0,\"message\":"
				    "{\"role\":\"assistant\",\"content\":\"");
		while (i < n)
			b[i++] = 'x';
		i += (size_t)sprintf(b + i,
				     "\"},\"finish_reason\":\"length\"}],"
				     "\"usage\":{\"prompt_tokens\":1,"
				     "\"completion_tokens\":1,"
				     "\"total_tokens\":2}}");
	} else {
		static const char one[] = "{\"object\":\"embedding\","
					  "\"index\":0,\"embedding\":[0.5,0.5,"
					  "0.5,0.5,0.5,0.5,0.5,0.5]}";

		i = (size_t)sprintf(b, "{\"object\":\"list\",\"data\":[%s",
				    one);
		while (i + sizeof(one) < n) {
			b[i++] = ',';
			memcpy(b + i, one, sizeof(one) - 1);
			i += sizeof(one) - 1;
		}
		i += (size_t)sprintf(b + i, "],\"model\":\"mock\",\"usage\":"
					    "{\"prompt_tokens\":1,"
					    "\"total_tokens\":1}}");
	}
	cache[kind] = b;
	clen[kind] = i;
	*len = i;
	return b;
}

/* End of a non-streamed service: the answer, faults applied. Returns -1
 * if c was freed (the reset fault). */
static int service_done(struct conn *c)
{
	char text[128];
	uint32_t words;
	int fin;

	c->state = C_WRITE;
	S.late_us += L.loop.now > c->r.deadline
			     ? (L.loop.now - c->r.deadline) / 1000
			     : 0;
	slot_release(c->r.deadline);
	switch (c->r.fault) {
	case F_500:
		reply_500(c);
		return 0;
	case F_RESET:
		/* conn_free with state C_WRITE: the slot is already back */
		conn_free(c, 0, 1);
		return -1;
	case F_OVERSIZE:
		c->ext = oversize_body(c->r.kind, &c->extlen);
		c->extoff = 0;
		put_head(c, 200, "application/json", c->extlen, NULL);
		c->resp_ok = 1;
		return 0;
	case F_MALFORMED:
		sc_reset();
		if (L.malformed_turn++ % 2 == 0)
			sc_printf("this is not JSON: the server had a bad "
				  "day <html>");
		else if (c->r.kind == K_CHAT)
			sc_printf("{\"id\":\"chatcmpl-%" PRIu64
				  "\",\"object\":\"chat.completion\","
				  "\"created\":%ld,\"model\":\"%s\"}",
				  c->r.seq, (long)time(NULL), c->r.model);
		else
			sc_printf("{\"object\":\"list\",\"model\":\"%s\"}",
				  c->r.model);
		reply_scratch(c, 200, NULL);
		c->resp_ok = 1;
		return 0;
	default:
		break;
	}
	sc_reset();
	if (c->r.kind == K_EMBED) {
		sc_printf("%.*s", (int)c->r.body_len, c->r.body);
		free(c->r.body);
		c->r.body = NULL;
	} else {
		reply_text(c, text, sizeof(text), &words, &fin);
		chat_body_json(c, text, words, fin);
	}
	if (c->r.fault == F_TRUNC) {
		/* The full length announced, half the body sent, then FIN. */
		put_head(c, 200, "application/json", sc_len, NULL);
		ob_put(c, L.scratch, sc_len / 2);
		c->close_after = 1;
		return 0;
	}
	if (c->r.fault == F_SLOW) {
		/* The headers at once (with whatever was still queued),
		 * then the body a few bytes at a time. */
		put_head(c, 200, "application/json", sc_len, NULL);
		c->drip = 1;
		c->drip_hdr = c->olen - c->ooff;
		ob_put(c, L.scratch, sc_len);
	} else {
		reply_scratch(c, 200, NULL);
	}
	c->resp_ok = 1;
	return 0;
}

/* One SSE event as one HTTP chunk. */
static void sse_put(struct conn *c, const char *data, size_t n)
{
	ob_printf(c, "%zx\r\ndata: ", n + 8);
	ob_put(c, data, n);
	ob_put(c, "\n\n\r\n", 4);
}

static void chunk_prefix(struct conn *c)
{
	sc_printf("{\"id\":\"chatcmpl-%" PRIu64 "\",\"object\":"
		  "\"chat.completion.chunk\",\"created\":%ld,\"model\":\"%s\","
		  "\"choices\":[{\"index\":0,\"delta\":",
		  c->r.seq, (long)time(NULL), c->r.model);
}

/*
 * The pieces of a streamed reply: a word per event, spread evenly over
 * llm_ms; with the slow fault, a character per event every drip_ms.
 */
static uint64_t stream_at(const struct conn *c, unsigned step)
{
	if (c->r.fault == F_SLOW)
		return c->r.start + O.drip_ns * step;
	return c->r.start + O.llm_ns * step / c->r.nsteps;
}

static void piece(const struct conn *c, const char *text, size_t tl, unsigned i,
		  size_t *off, size_t *len)
{
	size_t a = 0, b;
	unsigned k;

	if (c->r.fault == F_SLOW) {
		a = i;
		b = i + 1 < tl ? i + 1 : tl;
	} else {
		for (k = 0; k < i; k++) { /* the i-th space starts piece i */
			a++;
			while (a < tl && text[a] != ' ')
				a++;
		}
		b = a + 1;
		while (b < tl && text[b] != ' ')
			b++;
		if (i == 0)
			a = 0;
		if (b > tl)
			b = tl;
	}
	*off = a;
	*len = b - a;
}

/*
 * A streamed service: step 0 sends the headers and the role, steps 1..n
 * the pieces; the last also the finish event, [DONE] and the last chunk.
 */
static int stream_step(struct conn *c)
{
	char text[128];
	uint32_t words;
	int fin;
	size_t tl = reply_text(c, text, sizeof(text), &words, &fin), off, len;
	unsigned s = c->r.step++, n = c->r.nsteps;
	double q, total;

	if (s == 0) {
		ob_printf(c,
			  "HTTP/1.1 200 OK\r\nContent-Type: "
			  "text/event-stream\r\nCache-Control: no-cache\r\n"
			  "Transfer-Encoding: chunked\r\nConnection: %s"
			  "\r\n\r\n",
			  c->keepalive ? "keep-alive" : "close");
		sc_reset();
		chunk_prefix(c);
		sc_printf("{\"role\":\"assistant\",\"content\":\"\"},"
			  "\"finish_reason\":null}]}");
		sse_put(c, L.scratch, sc_len);
		srv_timer_set(&L.loop.heap, &c->s.tm, stream_at(c, 1));
		return 0;
	}
	if (c->r.fault == F_RESET) { /* after the first event */
		conn_free(c, 0, 1);
		return -1;
	}
	piece(c, text, tl, s - 1, &off, &len);
	sc_reset();
	chunk_prefix(c);
	if (c->r.fault == F_MALFORMED && s == 1) {
		sc_printf("{\"content\":\"%.*s\"", (int)len, text + off);
	} else if (c->r.fault == F_OVERSIZE && s == 1) {
		sc_printf("{\"content\":\"");
		sc_fill('x', O.oversize_bytes);
		sc_printf("%.*s\"},\"finish_reason\":null}]}", (int)len,
			  text + off);
	} else {
		sc_printf("{\"content\":\"%.*s\"},\"finish_reason\":null}]}",
			  (int)len, text + off);
	}
	sse_put(c, L.scratch, sc_len);
	if (c->r.fault == F_TRUNC && s == (n + 1) / 2) {
		/* No [DONE] and no last chunk: the stream breaks off. */
		c->close_after = 1;
		c->state = C_WRITE;
		slot_release(c->r.deadline);
		return 0;
	}
	if (s < n) {
		srv_timer_set(&L.loop.heap, &c->s.tm, stream_at(c, s + 1));
		return 0;
	}
	q = (double)(c->r.start - c->r.arrive) / 1e6;
	total = (double)(c->r.deadline - c->r.start) / 1e6;
	sc_reset();
	chunk_prefix(c);
	sc_printf("{},\"finish_reason\":\"%s\"}],\"usage\":{"
		  "\"prompt_tokens\":%u,\"completion_tokens\":%u,"
		  "\"total_tokens\":%u},\"timings\":{\"queue_ms\":%.3f,"
		  "\"prompt_ms\":%.3f,\"predicted_ms\":%.3f}}",
		  fin ? "stop" : "length", c->r.prompt_tokens, words,
		  c->r.prompt_tokens + words, q, total / 4, total - total / 4);
	sse_put(c, L.scratch, sc_len);
	sse_put(c, "[DONE]", 6);
	ob_put(c, "0\r\n\r\n", 5);
	c->state = C_WRITE;
	c->resp_ok = 1;
	slot_release(c->r.deadline);
	return 0;
}

static void service_start(struct conn *c, uint64_t at)
{
	if (L.free_n) {
		uint64_t f = L.free_at[L.free_head];

		L.free_head = (L.free_head + 1) % O.conc;
		L.free_n--;
		S.slot_gaps++;
		S.slot_gap_us += at > f ? (at - f) / 1000 : 0;
	}
	if (++L.in_service > (long)S.in_service_max)
		S.in_service_max = (uint64_t)L.in_service;
	c->state = C_SERVICE;
	c->r.start = at;
	c->r.step = 0;
	if (c->r.stream && c->r.fault != F_500) {
		char text[128];
		uint32_t words;
		int fin;
		size_t tl = reply_text(c, text, sizeof(text), &words, &fin);

		c->r.nsteps =
			c->r.fault == F_SLOW ? (uint16_t)tl : (uint16_t)words;
		if (!c->r.nsteps)
			c->r.nsteps = 1;
		c->r.deadline = stream_at(c, c->r.nsteps);
		srv_timer_set(&L.loop.heap, &c->s.tm, at);
	} else {
		c->r.stream = 0;
		c->r.deadline = at + O.llm_ns;
		srv_timer_set(&L.loop.heap, &c->s.tm, c->r.deadline);
	}
}

static void on_timer(struct conn *c)
{
	if (c->state == C_LINGER) {
		conn_free(c, 0, 0);
		return;
	}
	if (c->state == C_SERVICE &&
	    (c->r.stream ? stream_step(c) : service_done(c)) < 0)
		return;
	conn_kick(c);
}

/* ---- the loop ----------------------------------------------------------- */

/* A connection accepted: its record. */
static int conn_new(struct srv_loop *l, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return -1;
	}
	c->s.fd = fd;
	if (srv_conn_add(l, fd, c))
		return 0;
	S.connections_accepted++;
	L.open++;
	return 0;
}

/* The loop's operations on a connection (its record starts with s). */
static int loop_read(struct srv_conn *s)
{
	return conn_read((struct conn *)s);
}

static void loop_kick(struct srv_conn *s)
{
	conn_kick((struct conn *)s);
}

static void loop_timer(struct srv_conn *s)
{
	on_timer((struct conn *)s);
}

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: " PROG " [options]\n"
		"  --port N             listen port, 0: ephemeral (default 0)\n"
		"  --bind ADDR          IPv4 address (default 127.0.0.1)\n"
		"  --max-conns N        connections at once, 0: no limit\n"
		"  --llm-ms MS          service time of a request (default 20)\n"
		"  --concurrency N      requests in service at once (default 256)\n"
		"  --overload queue|429 beyond it: FIFO queue (default) or 429\n"
		"  --retry-after S      Retry-After of a 429, seconds (default 1)\n"
		"  --retry-after-date   send Retry-After as an HTTP-date\n"
		"  --seed N             PRNG seed for the faults (default 1)\n"
		"  --fault-429 F        fraction of requests answered 429 at once\n"
		"  --fault-500 F        ... answered 500 after the service time\n"
		"  --fault-reset F      ... reset (SO_LINGER 0) instead of answered\n"
		"  --fault-truncate F   ... Content-Length larger than the body sent\n"
		"  --fault-oversize F   ... a valid body of --oversize-bytes\n"
		"  --fault-malformed F  ... 200 with non-JSON or no \"choices\"\n"
		"  --fault-slow F       ... body dripped --drip-bytes every --drip-ms\n"
		"  --oversize-bytes N   (default 8388608)\n"
		"  --drip-ms MS         (default 50)    --drip-bytes N (default 8)\n"
		"  --fail-first N       the first N requests get 500\n"
		"  --max-body N         largest request body (default 16 MiB)\n"
		"Prints \"PORT <n>\" on stdout once listening.\n");
	exit(code);
}

static void parse_args(int argc, char **argv)
{
	int i, f;

	for (i = 1; i < argc; i++) {
		char *a = argv[i], *v = NULL, *eq;

		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage(0);
		if (!strcmp(a, "--retry-after-date")) {
			O.retry_after_date = 1;
			continue;
		}
		eq = strncmp(a, "--", 2) ? NULL : strchr(a, '=');
		if (eq) {
			*eq = 0;
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		}
#define OPT(s) (!strcmp(a, s))
		if (OPT("--port"))
			O.port = (int)srv_arg_int(PROG, a, v, 0, 65535);
		else if (OPT("--bind"))
			O.bind = v;
		else if (OPT("--max-conns"))
			O.max_conns = (long)srv_arg_int(PROG, a, v, 0, 1 << 30);
		else if (OPT("--llm-ms"))
			O.llm_ns = (uint64_t)(srv_arg_double(PROG, a, v, 0,
							     3.6e6) *
					      1e6);
		else if (OPT("--concurrency"))
			O.conc = (long)srv_arg_int(PROG, a, v, 1, 1 << 30);
		else if (OPT("--overload")) {
			if (v && !strcmp(v, "429"))
				O.overload_429 = 1;
			else if (v && !strcmp(v, "queue"))
				O.overload_429 = 0;
			else {
				fprintf(stderr,
					PROG ": --overload: queue or 429\n");
				exit(2);
			}
		} else if (OPT("--retry-after"))
			O.retry_after_s = srv_arg_double(PROG, a, v, 0, 86400);
		else if (OPT("--seed"))
			O.seed =
				(uint64_t)srv_arg_int(PROG, a, v, 0, INT64_MAX);
		else if (OPT("--oversize-bytes"))
			O.oversize_bytes =
				(size_t)srv_arg_int(PROG, a, v, 1, 1ll << 32);
		else if (OPT("--drip-ms"))
			O.drip_ns = (uint64_t)(srv_arg_double(PROG, a, v, 0,
							      3.6e6) *
					       1e6);
		else if (OPT("--drip-bytes"))
			O.drip_bytes =
				(size_t)srv_arg_int(PROG, a, v, 1, 1 << 20);
		else if (OPT("--fail-first"))
			O.fail_first =
				(uint64_t)srv_arg_int(PROG, a, v, 0, INT64_MAX);
		else if (OPT("--max-body"))
			O.max_body =
				(size_t)srv_arg_int(PROG, a, v, 1, 1ll << 34);
		else {
			for (f = F_429; f < F_COUNT; f++)
				if (OPT(fault_opt[f]))
					break;
			if (f == F_COUNT) {
				fprintf(stderr, PROG ": unknown option '%s'\n",
					a);
				usage(2);
			}
			O.fault[f] = srv_arg_double(PROG, a, v, 0, 1);
		}
#undef OPT
	}
}

int main(int argc, char **argv)
{
	int bound, sfd;

	parse_args(argc, argv);
	L.rng = O.seed;
	L.free_at = srv_xrealloc(NULL, (size_t)O.conc * sizeof(*L.free_at));
	L.loop.prog = PROG;
	L.loop.full = conns_full;
	L.loop.conn_new = conn_new;
	L.loop.read = loop_read;
	L.loop.kick = loop_kick;
	L.loop.timer = loop_timer;
	srv_raise_nofile();
	sfd = srv_signals();
	if (sfd < 0)
		srv_die(PROG, "signalfd");
	srv_loop_open(&L.loop, O.bind, O.port, 0, &bound, sfd);
	printf("PORT %d\n", bound);
	fflush(stdout);
	srv_run(&L.loop);
	close(L.loop.lfd);
	return 0;
}
