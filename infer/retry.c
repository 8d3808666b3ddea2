/* SPDX-License-Identifier: MIT */
/*
 * infer/retry.c: how an attempt ends: the call's result, a retry after
 * backoff with full jitter, an endpoint's cooldown after a 429, the error.
 */
#include <stdio.h>

#include "infer/internal.h"

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
	if (c->server_error)
		return MYRIAD_INFER_ESERVER;
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
	/* A 429 without Retry-After: until the budget resets, as the
	 * x-ratelimit-reset-* headers said (budget.c). */
	if (c->http_status == 429 && c->retry_after_s < 0) {
		uint64_t w = budget_reset_wait(p, c);

		if (w > delay)
			delay = w;
	}
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
	if (c->stream) {
		/* Nothing was delivered: the next attempt starts afresh. */
		spin_lock(&c->slock);
		stream_free(c);
		spin_unlock(&c->slock);
		c->sdone = false;
	}
	c->resp_len = 0;
	c->too_big = false;
	pthread_mutex_lock(&p->lock);
	q_push(p, c);
	pthread_mutex_unlock(&p->lock);
}

/* The endpoint's retry budget is spent: the call ends now. */
static void retry_refused(struct driver *d, struct icall *c, CURLcode rc,
			  long code)
{
	char what[96];

	if (rc == CURLE_OK)
		snprintf(what, sizeof(what),
			 "HTTP status %ld; retry budget of endpoint %d spent",
			 code, c->ep);
	else
		snprintf(what, sizeof(what),
			 "%s; retry budget of endpoint %d spent", curl_why(rc),
			 c->ep);
	error_describe(c, what);
	call_complete(d, c, MYRIAD_INFER_ERETRYBUDGET, NULL);
}

void transfer_done(struct driver *d, struct icall *c, CURLcode rc)
{
	long code = 0;
	int why = atomic_load_explicit(&c->cancel, memory_order_acquire);

	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
	c->http_status = code;
	transfer_end(d, c);
	budget_answer(d->pool, c, rc == CURLE_OK ? code : 0);
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
		error_clear(c); /* an earlier attempt's */
		if (c->stream) {
			int r = c->sdone ? stream_finish(c)
					 : MYRIAD_INFER_EBODY;

			call_complete(d, c, r,
				      r == -ENOMEM ? "out of memory"
				      : r ? "stream ended without [DONE]"
					  : NULL);
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
	/* An error status: what the server wrote in its body. */
	if (rc == CURLE_OK && code >= 300)
		error_parse(c, c->resp, c->resp_len);
	/* A stream that delivered anything cannot be replayed. */
	if (!c->too_big && !c->bad_body && !c->server_error &&
	    retryable(rc, code) && !c->s_delivered &&
	    c->attempts <= d->pool->o.max_retries) {
		if (retry_allowed(d->pool, c)) {
			schedule_retry(d, c);
			return;
		}
		retry_refused(d, c, rc, code);
		return;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT && c->deadline_ns &&
	    myriad_now_ns() + 1000000u >= c->deadline_ns) {
		call_complete(d, c, -ETIME, "deadline passed");
		return;
	}
	if (c->server_error) {
		/* Again: libcurl wrote its own words over it (ERRORBUFFER). */
		error_describe(c, "the server sent an error event");
	} else if (rc == CURLE_OK) {
		char what[32];

		snprintf(what, sizeof(what), "HTTP status %ld", code);
		error_describe(c, what);
	} else if (c->too_big)
		snprintf(c->err, sizeof(c->err),
			 "response larger than %zu bytes",
			 d->pool->o.max_response);
	else if (c->bad_body)
		; /* sse_parse() said what */
	else
		snprintf(c->err, sizeof(c->err), "%s", curl_why(rc));
	call_complete(d, c, final_code(rc, c), NULL);
}
