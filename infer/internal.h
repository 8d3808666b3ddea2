/* SPDX-License-Identifier: MIT */
/*
 * infer/internal.h: what the files of the inference layer share: the pool,
 * its endpoints, drivers, polled sockets and calls, and what each file
 * calls in another.
 *
 * The layer offloads inference: an endpoint pool, HTTP on libcurl's multi
 * interface driven by myriad's own io_uring polls and timer wheel, JSON
 * with jansson, retries, backoff and cooldowns. Its files:
 *   pool.c      the public pool: create, add an endpoint, destroy
 *   call.c      a call's life: start, completion, cancellation, results
 *   admit.c     admission of queued calls into endpoint windows
 *   queue.c     the queue: classes, fairness keys (deficit round robin),
 *               the heaps of deadlines and of calls waiting for a time
 *   budget.c    endpoints' request and token budgets, x-ratelimit-*
 *               headers, reservations, the retry budget, the counters
 *   driver.c    the driver task: curl's sockets and timer, its step
 *   transfer.c  one HTTP attempt: setting up the easy handle, its callbacks
 *   retry.c     how an attempt ends: result, retry with backoff, cooldown
 *   parse.c     a 2xx JSON body: chat choices, embeddings (base64 too)
 *   error.c     an error the server wrote: its body, a stream's event
 *   stream.c    a stream of server-sent events: deltas assembled per
 *               choice and tool call, read by the task as they come
 *   arena.c     the memory a result's strings and arrays live in
 *   mem.h       the allocator shims
 */
#ifndef MYRIAD_INFER_INTERNAL_H
#define MYRIAD_INFER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include <myriad/infer.h>

#include "base/random.h"
#include "io/record.h"
#include "infer/mem.h"

enum { CALL_CHAT, CALL_EMBED };

struct endpoint {
	char *chat_url, *embed_url, *model;
	/* content type, user agent, authorization, organization, project,
	 * the endpoint's own */
	struct curl_slist *hdrs;
	unsigned window;
	_Atomic unsigned inflight;
	_Atomic uint64_t cool_until_ns; /* after a 429 */
	/* Budgets (budget.c), under the pool lock; 'budget' false: none
	 * configured or learned, nothing is counted. */
	bool budget;
	uint64_t rpm, tpm, def_max;
	double req_level, tok_level; /* what the buckets hold */
	uint64_t refill_ns;	     /* when they were last refilled */
	uint64_t reset_req_until, reset_tok_until; /* learned, absolute */
	bool req_spent, tok_spent; /* the last answer said remaining 0 */
	/* The retry budget (budget.c): first attempts counted by the
	 * drivers; windows under the pool lock. */
	_Atomic uint64_t first_attempts;
	uint64_t rw_start, snap_cur, snap_prev;
	double ret_cur, ret_prev;
};

/* Rate-limit headers of an answer (transfer.c reads, budget.c uses). */
enum {
	RL_LIM_REQ = 1,
	RL_LIM_TOK = 2,
	RL_REM_REQ = 4,
	RL_REM_TOK = 8,
	RL_RST_REQ = 16,
	RL_RST_TOK = 32
};

/* A fairness key and its calls in each class (queue.c). */
struct fq {
	struct icall *head, *tail;
	uint64_t n;
	int64_t deficit;	    /* deficit round robin credit, tokens */
	struct fkey *rnext, *rprev; /* the class's ring of keys with calls */
	bool in_ring;
};

struct fkey {
	struct fkey *hnext;
	uint64_t hash;
	unsigned weight;
	struct fq q[2];
	char name[];
};

/* Where a call is while the pool holds it (pool lock). */
enum { QW_NONE, QW_READY, QW_DELAYED, QW_DEAD };

/* Blocks a result's strings and arrays are carved from (arena.c). */
struct arena {
	struct arena_blk *head;
	char *p;     /* free space of the head block */
	size_t left; /* its bytes */
};

void *arena_alloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
void arena_free(struct arena *a);

/* A streamed tool call being assembled (stream.c). */
struct stool {
	char *id, *type, *name;
	char *args;
	size_t args_len, args_cap;
	bool complete; /* its strings no longer change */
};

/* A streamed choice being assembled. */
struct schoice {
	unsigned index;
	char *content, *refusal; /* choice 0's content is the call's sbuf */
	size_t content_len, content_cap, refusal_len, refusal_cap;
	bool has_content;
	char *finish_reason;
	struct stool **tools; /* pointers: the calls do not move */
	size_t ntools, tools_cap;
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
	/* Admission (queue.c, budget.c), under the pool lock. */
	int where, prio; /* QW_*; enum myriad_infer_class */
	struct fkey *key;
	struct icall *anext, *aprev; /* waiting batch calls, oldest first */
	uint64_t ready_ns;	     /* when it became ready to go */
	size_t dl_idx, nb_idx;	     /* in the heaps, +1 (0: not there) */
	uint64_t cost;		     /* estimated tokens (fair shares) */
	uint64_t est_prompt, est_max, est_user; /* the estimate's parts */
	uint64_t reserved;			/* tokens taken at admission */
	uint64_t bwait_since; /* waiting for budget since; 0 */
	/* x-ratelimit-* of the response being received (transfer.c) */
	unsigned rl_have;
	uint64_t rl_lim_req, rl_lim_tok, rl_rem_req, rl_rem_tok;
	uint64_t rl_rst_req, rl_rst_tok; /* ns */
	json_t *json;	    /* the parsed response: owns the strings */
	struct arena arena; /* the result's arrays and copied strings */
	bool user_model;    /* the request names its own model */
	size_t n_inputs;    /* embeddings: inputs sent (0: one string) */
	/* The server's error (error.c), each string mem_alloc'd; NULL. */
	char *e_msg, *e_type, *e_code, *e_param;
	bool server_error; /* a stream's "error" event ended it */
	bool sse_error;	   /* the last SSE event field was "error" */
	char request_id[128];
	struct myriad_infer_result res;
	/* Streaming: content so far, appended by the driver, read by the
	 * task, under slock; 'sparsed' is how much of 'resp' is parsed. */
	bool stream, sdone;
	bool s_delivered;     /* content or a tool call came: no retry then */
	size_t s_total;	      /* bytes assembled, bounded by max_response */
	int collected_rc;     /* the stream's result, once its reader took it */
	struct schoice **sch; /* choices by arrival; [0] is index 0's */
	size_t nsch, sch_cap;
	char *s_id, *s_model, *s_fp;
	bool parse_pending; /* a 2xx body the task has yet to parse */
	int settled_rc;	    /* what settle() made of it */
	bool bad_body;	    /* a stream event was malformed */
	struct spin slock;
	char *sbuf;
	size_t slen, scap, sread, sparsed;
	char err[CURL_ERROR_SIZE + 256];
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
	/* The queue (queue.c), under the lock. */
	struct fkey **keys; /* hash table, kcap buckets */
	size_t kcap, nkeys;
	struct fkey *defkey; /* "" */
	struct fkey *cur[2]; /* each class's ring, at the key served next */
	uint64_t nready[2];
	struct icall *aghead, *agtail; /* ready batch calls, oldest first */
	struct icall **dl, **nb;       /* heaps: deadlines, not_before */
	size_t ndl, dlcap, nnb, nbcap;
	struct icall *dead; /* cancelled while queued */
	uint64_t drr_q;	    /* the quantum, tokens per unit of weight */
	unsigned nqueued;
	struct myriad_infer_stats st; /* under the lock, but http_429 */
	_Atomic uint64_t n429;
	_Atomic unsigned ncancel; /* cancellations not yet seen */
	struct endpoint *eps;
	_Atomic unsigned neps;
	unsigned eps_cap;
	struct driver *drv;
	unsigned ndrv;
	_Atomic unsigned rr;
};

/* call.c: the owner completes the call, once (call.c:2) */
void call_complete(struct driver *d, struct icall *c, int rc, const char *why);

/* admit.c: admit queued calls, returning the earliest time a waiting
 * call could go */
uint64_t admit(struct driver *d);

/* queue.c, all under the pool lock: queue a call (now or, with
 * not_before_ns ahead, then); take it off wherever it waits; the call to
 * admit next (NULL: none ready; *next lowered to when one will be);
 * charge it to its key and take it; move a call to wait until 'when';
 * the key named 'name' (created, NULL: no memory); free it all */
void q_push(struct myriad_infer *p, struct icall *c);
void q_del(struct myriad_infer *p, struct icall *c);
struct icall *q_peek(struct myriad_infer *p, uint64_t now, uint64_t *next);
void q_take(struct myriad_infer *p, struct icall *c);
void q_delay(struct myriad_infer *p, struct icall *c, uint64_t when);
struct icall *q_any(struct myriad_infer *p);
struct fkey *q_key(struct myriad_infer *p, const char *name);
void q_fini(struct myriad_infer *p);
uint64_t q_next_deadline(struct myriad_infer *p);
struct icall *q_expired(struct myriad_infer *p, uint64_t now);

/* budget.c: budgets of an endpoint. Under the pool lock: set up from
 * the endpoint's options; whether 'c' fits now (else *when it will);
 * take its reservation; an attempt's answer (its headers, its usage) */
void budget_init(struct endpoint *e, uint64_t rpm, uint64_t tpm,
		 uint64_t def_max);
bool budget_fits(struct endpoint *e, struct icall *c, uint64_t now,
		 uint64_t *when);
void budget_take(struct myriad_infer *p, struct endpoint *e, struct icall *c,
		 uint64_t now);
/* Without the lock: an attempt ended with 'code' (its answer read) */
void budget_answer(struct myriad_infer *p, struct icall *c, long code);
/* the cooldown a 429 without Retry-After takes, 0 if no header says */
uint64_t budget_reset_wait(struct myriad_infer *p, struct icall *c);
/* the retry budget: may 'c' retry (counted if so)? */
bool retry_allowed(struct myriad_infer *p, struct icall *c);
/* a reset duration as the API writes it ("1h2m3.5s", "20ms"); -1 */
int64_t rl_duration(const char *s, size_t n);

/* driver.c: set up driver 'i' of 'p' (0 or -EIO); the driver task's step;
 * free what a joined driver kept */
int driver_init(struct myriad_infer *p, unsigned i);
int driver_step(myriad_task_t *self, void *state);
void driver_fini(struct driver *d);

/* transfer.c: start an attempt of 'c' on endpoint 'ep'; its transfer
 * left the multi */
int transfer_start(struct driver *d, struct icall *c, int ep);
void transfer_end(struct driver *d, struct icall *c);

/* retry.c: an attempt finished with 'rc' */
void transfer_done(struct driver *d, struct icall *c, CURLcode rc);

/* parse.c: collect a completed call (the task parses its body); read a
 * usage object into a result */
int settle(struct icall *c, int rc);
void usage_read(struct myriad_infer_result *r, json_t *u);

/* stream.c: parse streamed events (false: stop the transfer); the
 * result of an ended stream; free its state */
bool sse_parse(struct icall *c);
int stream_finish(struct icall *c);
void stream_free(struct icall *c);

/* error.c: the error body of a non-2xx response, or a stream's error
 * event (a JSON object); the message for a person; forget them */
void error_parse(struct icall *c, const char *body, size_t len);
void error_from_json(struct icall *c, json_t *j);
void error_describe(struct icall *c, const char *what);
void error_clear(struct icall *c);

#endif
