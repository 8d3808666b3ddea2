/* SPDX-License-Identifier: MIT */
/*
 * infer/call.c: a call's life: started by its task, completed once by its
 * owner, cancelled by the agent side, its result collected and released.
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
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "infer/internal.h"
#include "sched/probes.h"

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

void call_complete(struct driver *d, struct icall *c, int rc, const char *why)
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
	arena_free(&c->arena);
	stream_free(c);
	error_clear(c);
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
		struct myriad_infer *p = c->pool;

		atomic_fetch_add_explicit(&p->ncancel, 1, memory_order_release);
		/* Queued: onto the dead list, for any driver to complete
		 * (no driver scans the queue for it). One that is not queued
		 * yet sees the flag in q_push(). */
		pthread_mutex_lock(&p->lock);
		if (c->where == QW_READY || c->where == QW_DELAYED) {
			q_del(p, c);
			p->nqueued++;
			c->where = QW_DEAD;
			c->next = p->dead;
			p->dead = c;
		}
		pthread_mutex_unlock(&p->lock);
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

static void wake_driver(struct myriad_infer *p, struct driver *d)
{
	if (!d)
		d = &p->drv[atomic_fetch_add_explicit(&p->rr, 1,
						      memory_order_relaxed) %
			    p->ndrv];
	myriad_waker_wake(d->waker);
}

/* A call's admission options (the request struct's, or defaults). */
struct adm {
	int prio;
	const char *key;
	uint64_t est;	     /* the caller's estimate; 0: none */
	uint64_t prompt_len; /* bytes of the messages or inputs */
};

static const struct adm adm_default = { 0, "", 0, 0 };

/* The request's completion tokens at most (max_completion_tokens, else
 * max_tokens) times its choices (n); 0 if it sets none. */
static uint64_t req_max_tokens(json_t *req)
{
	json_t *m = json_object_get(req, "max_completion_tokens");
	json_t *n = json_object_get(req, "n");
	json_int_t v;

	if (!json_is_integer(m))
		m = json_object_get(req, "max_tokens");
	v = json_is_integer(m) ? json_integer_value(m) : 0;
	if (v <= 0)
		return 0;
	if (json_is_integer(n) && json_integer_value(n) > 1 &&
	    json_integer_value(n) <= 128)
		v *= json_integer_value(n);
	return (uint64_t)v;
}

static int call_start(myriad_task_t *self, myriad_infer_t *p,
		      myriad_infer_call_t *call, int kind, json_t *req,
		      bool stream, size_t n_inputs, const struct adm *a)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)call;
	struct icall *c;
	int r = io_op_enter(w, self, op, IOK_EXT);

	if (r != 1 || !p || !req) {
		json_decref(req); /* NULL-safe */
		if (r == 0) {
			c = op->u.ext.ctx;
			r = settle(c, io_op_result(self, op));
			if (c)
				c->collected_rc = r;
			return r;
		}
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
	c->res.cached_tokens = c->res.reasoning_tokens = -1;
	c->res.endpoint = -1;
	c->res.error = c->err;
	c->res.budget_tokens_left = c->res.budget_requests_left = -1;
	c->prio = a->prio;
	c->est_user = a->est;
	c->est_prompt = a->prompt_len / 4;
	c->est_max = kind == CALL_CHAT ? req_max_tokens(req) : 0;
	c->cost = c->est_user ? c->est_user
			      : c->est_prompt + (c->est_max ? c->est_max
						 : kind == CALL_CHAT ? 1024
								     : 0);
	if (!c->cost)
		c->cost = 1;
	c->stream = stream;
	c->n_inputs = n_inputs;
	/* A "model" of the caller's own is kept (transfer_start()). */
	c->user_model = json_is_string(json_object_get(req, "model"));
	atomic_init(&c->slock.v, 0);
	io_ext_start(w, self, op, &call_ops, c);
	pthread_mutex_lock(&p->lock);
	c->key = *a->key ? q_key(p, a->key) : p->defkey;
	if (!c->key)
		c->key = p->defkey; /* no memory for a new key: the default */
	q_push(p, c);
	pthread_mutex_unlock(&p->lock);
	wake_driver(p, &p->drv[w->idx % p->ndrv]);
	return -EAGAIN;
}

static int chat_start(myriad_task_t *self, myriad_infer_t *p,
		      myriad_infer_call_t *call, const char *messages_json,
		      const char *extra_json, bool stream, struct adm a)
{
	struct io_op *op = (struct io_op *)call;
	json_t *req, *m, *x;
	json_error_t jerr;

	if (!call)
		return -EINVAL;
	/* In flight or done: no new request is built. */
	if ((atomic_load_explicit(&op->st, memory_order_acquire) & 3u) != 0)
		return call_start(self, p, call, CALL_CHAT, NULL, false, 0, &a);
	if (!messages_json)
		return -EINVAL;
	a.prompt_len = strlen(messages_json);
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
	/* Usage comes in a stream only when asked for (the API's rule). */
	if (stream && !json_object_get(req, "stream_options"))
		json_object_set_new(req, "stream_options",
				    json_pack("{s:b}", "include_usage", 1));
	return call_start(self, p, call, CALL_CHAT, req, stream, 0, &a);
}

int myriad_infer_chat(myriad_task_t *self, myriad_infer_t *p,
		      myriad_infer_call_t *call, const char *messages_json,
		      const char *extra_json)
{
	return chat_start(self, p, call, messages_json, extra_json, false,
			  adm_default);
}

int myriad_infer_chat_stream(myriad_task_t *self, myriad_infer_t *p,
			     myriad_infer_call_t *call,
			     const char *messages_json, const char *extra_json)
{
	return chat_start(self, p, call, messages_json, extra_json, true,
			  adm_default);
}

/* A field of the caller's request struct (an older one is shorter). */
#define REQ_HAS(r, f) \
	((r)->sz >= offsetof(struct myriad_infer_request, f) + sizeof((r)->f))

int myriad_infer_chat_req(myriad_task_t *self, myriad_infer_t *p,
			  myriad_infer_call_t *call,
			  const struct myriad_infer_request *req)
{
	struct adm a = adm_default;
	bool stream = false;

	if (!call)
		return -EINVAL;
	/* In flight or done: the request is not read again. */
	if ((atomic_load_explicit(&((struct io_op *)call)->st,
				  memory_order_acquire) &
	     3u) != 0)
		return call_start(self, p, call, CALL_CHAT, NULL, false, 0, &a);
	if (!req || !REQ_HAS(req, extra_json))
		return -EINVAL;
	if (REQ_HAS(req, stream))
		stream = req->stream;
	if (REQ_HAS(req, priority)) {
		if (req->priority != MYRIAD_INFER_INTERACTIVE &&
		    req->priority != MYRIAD_INFER_BATCH)
			return -EINVAL;
		a.prio = req->priority;
	}
	if (REQ_HAS(req, fairness_key) && req->fairness_key) {
		if (strlen(req->fairness_key) > 255)
			return -EINVAL;
		a.key = req->fairness_key;
	}
	if (REQ_HAS(req, token_estimate))
		a.est = req->token_estimate;
	return chat_start(self, p, call, req->messages_json, req->extra_json,
			  stream, a);
}

int myriad_infer_embed(myriad_task_t *self, myriad_infer_t *p,
		       myriad_infer_call_t *call, const char *input)
{
	struct io_op *op = (struct io_op *)call;
	struct adm a = adm_default;
	json_t *req;

	if (!call)
		return -EINVAL;
	if ((atomic_load_explicit(&op->st, memory_order_acquire) & 3u) != 0)
		return call_start(self, p, call, CALL_EMBED, NULL, false, 0,
				  &adm_default);
	if (!input)
		return -EINVAL;
	req = json_pack("{s:s}", "input", input);
	if (!req)
		return -ENOMEM;
	a.prompt_len = strlen(input);
	return call_start(self, p, call, CALL_EMBED, req, false, 0, &a);
}

int myriad_infer_embed_batch(myriad_task_t *self, myriad_infer_t *p,
			     myriad_infer_call_t *call,
			     const char *const *inputs, size_t n,
			     const char *extra_json)
{
	struct io_op *op = (struct io_op *)call;
	struct adm a = adm_default;
	json_t *req, *in, *x;
	json_error_t jerr;
	size_t i;

	if (!call)
		return -EINVAL;
	if ((atomic_load_explicit(&op->st, memory_order_acquire) & 3u) != 0)
		return call_start(self, p, call, CALL_EMBED, NULL, false, 0,
				  &adm_default);
	if (!inputs || !n || n > 2048)
		return -EINVAL;
	req = json_object();
	in = json_array();
	if (!req || !in) {
		json_decref(req);
		json_decref(in);
		return -ENOMEM;
	}
	json_object_set_new(req, "input", in);
	for (i = 0; i < n; i++) {
		if (!inputs[i]) {
			json_decref(req);
			return -EINVAL;
		}
		a.prompt_len += strlen(inputs[i]);
		if (json_array_append_new(in, json_string(inputs[i]))) {
			/* NULL from json_string(): not UTF-8, or no memory */
			json_decref(req);
			return -EINVAL;
		}
	}
	if (extra_json) {
		x = json_loads(extra_json, 0, &jerr);
		if (!json_is_object(x)) {
			json_decref(x);
			json_decref(req);
			return -EINVAL;
		}
		json_object_del(x, "input"); /* the inputs are the array */
		json_object_update(req, x);
		json_decref(x);
	}
	return call_start(self, p, call, CALL_EMBED, req, false, n, &a);
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
