/* SPDX-License-Identifier: MIT */
/*
 * infer/budget.c: an endpoint's request and token budgets (configured or
 * learned from x-ratelimit-* headers), reservations and their
 * reconciliation with usage, the retry budget, the pool's counters.
 *
 * The rules are stated in include/myriad/infer.h ("Admission"). A pool
 * whose endpoints have no budget pays one branch per admission and per
 * answer (e->budget, c->rl_have, c->reserved); the retry budget costs a
 * counter per first attempt.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "infer/internal.h"

#define MINUTE_NS 60e9

/* ---- reset durations ---- */

/*
 * "1h2m3.5s", "6m0s", "20ms", "1.5us": one or more <number><unit> with
 * units h, m, s, ms, us (or µs), ns, as Go's time.Duration writes them
 * (the API's servers are written in it). Anything else: -1.
 */
int64_t rl_duration(const char *s, size_t n)
{
	static const struct {
		const char *u;
		double ns;
	} units[] = { { "ns", 1 },   { "us", 1e3 },   { "\xc2\xb5s", 1e3 },
		      { "ms", 1e6 }, { "h", 3.6e12 }, { "m", 6e10 },
		      { "s", 1e9 } };
	const char *e = s + n;
	double total = 0;
	size_t i;

	while (n && isspace((unsigned char)e[-1]))
		e--, n--;
	if (!n)
		return -1;
	while (s < e) {
		double v = 0, f = 1;
		bool digits = false;

		while (s < e && isdigit((unsigned char)*s)) {
			v = v * 10 + (*s++ - '0');
			digits = true;
		}
		if (s < e && *s == '.') {
			s++;
			while (s < e && isdigit((unsigned char)*s)) {
				f /= 10;
				v += (*s++ - '0') * f;
				digits = true;
			}
		}
		if (!digits)
			return -1;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].u);

			if ((size_t)(e - s) >= l && !memcmp(s, units[i].u, l) &&
			    /* "m" is not the start of "ms" */
			    !(l == 1 && s[0] == 'm' && e - s > 1 &&
			      s[1] == 's'))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return -1;
		s += strlen(units[i].u);
		total += v * units[i].ns;
		if (total > 9e18)
			return -1;
	}
	return (int64_t)total;
}

/* ---- the buckets (pool lock) ---- */

void budget_init(struct endpoint *e, uint64_t rpm, uint64_t tpm,
		 uint64_t def_max)
{
	e->rpm = rpm;
	e->tpm = tpm;
	e->def_max = def_max ? def_max : 1024;
	e->budget = rpm || tpm;
	e->req_level = (double)rpm;
	e->tok_level = (double)tpm;
	e->refill_ns = myriad_now_ns();
}

static void refill(struct endpoint *e, uint64_t now)
{
	double dt = now > e->refill_ns ? (double)(now - e->refill_ns) : 0;

	e->refill_ns = now > e->refill_ns ? now : e->refill_ns;
	if (e->rpm) {
		e->req_level += (double)e->rpm * dt / MINUTE_NS;
		if (e->req_level > (double)e->rpm)
			e->req_level = (double)e->rpm;
	}
	if (e->tpm) {
		e->tok_level += (double)e->tpm * dt / MINUTE_NS;
		if (e->tok_level > (double)e->tpm)
			e->tok_level = (double)e->tpm;
	}
}

/* The tokens 'c' takes on 'e': at most a whole bucket, or it never fits. */
static double estimate(const struct endpoint *e, const struct icall *c)
{
	double t;

	if (c->est_user)
		t = (double)c->est_user;
	else
		t = (double)(c->est_prompt + (c->est_max ? c->est_max
					      : c->kind == CALL_CHAT
						      ? e->def_max
						      : 0));
	return t > (double)e->tpm ? (double)e->tpm : t;
}

bool budget_fits(struct endpoint *e, struct icall *c, uint64_t now,
		 uint64_t *when)
{
	double need = 0, w;

	if (!e->budget)
		return true;
	refill(e, now);
	if (e->rpm && e->req_level < 1)
		need = (1 - e->req_level) * MINUTE_NS / (double)e->rpm;
	if (e->tpm) {
		w = (estimate(e, c) - e->tok_level) * MINUTE_NS /
		    (double)e->tpm;
		if (w > need)
			need = w;
	}
	if (need <= 0)
		return true;
	if (now + (uint64_t)need + 1 < *when)
		*when = now + (uint64_t)need + 1;
	return false;
}

void budget_take(struct myriad_infer *p, struct endpoint *e, struct icall *c,
		 uint64_t now)
{
	c->reserved = 0;
	if (c->bwait_since) {
		uint64_t w = now - c->bwait_since;

		if (!c->res.budget_wait_ns)
			p->st.calls_waited++;
		c->res.budget_wait_ns += w;
		p->st.wait_ns += w;
		c->bwait_since = 0;
	}
	if (!e->budget) {
		c->res.budget_requests_left = c->res.budget_tokens_left = -1;
		return;
	}
	if (e->rpm)
		e->req_level -= 1;
	if (e->tpm) {
		c->reserved = (uint64_t)estimate(e, c);
		e->tok_level -= (double)c->reserved;
		p->st.tokens_reserved += c->reserved;
	}
	c->res.budget_requests_left = e->rpm ? (int64_t)e->req_level : -1;
	c->res.budget_tokens_left = e->tpm ? (int64_t)e->tok_level : -1;
}

/*
 * usage.total_tokens of a whole JSON answer, without parsing it (the task
 * does that later, and the pool may be gone by then): the last
 * "total_tokens" key, whose quote no backslash escapes. In a JSON string
 * every quote is escaped, so only a key matches. -1 if none.
 */
static int64_t body_total_tokens(const char *b, size_t n)
{
	static const char k[] = "\"total_tokens\"";
	const size_t kl = sizeof(k) - 1;
	const char *x;

	for (x = n >= kl ? b + n - kl : NULL; x && x >= b; x--) {
		const char *v = x + kl, *bs = x;
		int64_t t = 0;

		if (memcmp(x, k, kl))
			continue;
		while (bs > b && bs[-1] == '\\')
			bs--;
		if ((x - bs) & 1)
			continue;
		while (v < b + n && isspace((unsigned char)*v))
			v++;
		if (v >= b + n || *v++ != ':')
			continue;
		while (v < b + n && isspace((unsigned char)*v))
			v++;
		if (v >= b + n || !isdigit((unsigned char)*v))
			return -1;
		while (v < b + n && isdigit((unsigned char)*v) &&
		       t < (1ll << 50))
			t = t * 10 + (*v++ - '0');
		return t;
	}
	return -1;
}

/* What an answer's headers say about 'e' (pool lock). */
static void learn(struct endpoint *e, const struct icall *c, uint64_t now)
{
	if ((c->rl_have & RL_LIM_REQ) && c->rl_lim_req != e->rpm) {
		if (!e->rpm)
			e->req_level = (double)c->rl_lim_req;
		e->rpm = c->rl_lim_req;
	}
	if ((c->rl_have & RL_LIM_TOK) && c->rl_lim_tok != e->tpm) {
		if (!e->tpm)
			e->tok_level = (double)c->rl_lim_tok;
		e->tpm = c->rl_lim_tok;
	}
	if (!e->budget && (e->rpm || e->tpm)) {
		e->budget = true;
		e->refill_ns = now;
	}
	if (e->budget)
		refill(e, now);
	/* The server's word lowers what is left, never raises it. */
	if (c->rl_have & RL_REM_REQ) {
		if (e->rpm && (double)c->rl_rem_req < e->req_level)
			e->req_level = (double)c->rl_rem_req;
		e->req_spent = !c->rl_rem_req;
	}
	if (c->rl_have & RL_REM_TOK) {
		if (e->tpm && (double)c->rl_rem_tok < e->tok_level)
			e->tok_level = (double)c->rl_rem_tok;
		e->tok_spent = !c->rl_rem_tok;
	}
	if (c->rl_have & RL_RST_REQ)
		e->reset_req_until = now + c->rl_rst_req;
	if (c->rl_have & RL_RST_TOK)
		e->reset_tok_until = now + c->rl_rst_tok;
}

void budget_answer(struct myriad_infer *p, struct icall *c, long code)
{
	struct endpoint *e = &p->eps[c->ep];
	uint64_t now;
	int64_t used = -1;

	if (code == 429)
		atomic_fetch_add_explicit(&p->n429, 1, memory_order_relaxed);
	if (!c->rl_have && !c->reserved)
		return;
	if (c->reserved && code >= 200 && code < 300) {
		used = c->stream ? c->res.total_tokens
				 : body_total_tokens(c->resp, c->resp_len);
		if (used < 0)
			used = (int64_t)c->reserved; /* no usage: kept */
	} else if (c->reserved) {
		used = 0; /* no answer: nothing was generated */
	}
	now = myriad_now_ns();
	pthread_mutex_lock(&p->lock);
	if (c->reserved) {
		if (e->tpm) {
			e->tok_level += (double)c->reserved - (double)used;
			if (e->tok_level > (double)e->tpm)
				e->tok_level = (double)e->tpm;
		}
		p->st.tokens_used += (uint64_t)used;
		if ((uint64_t)used < c->reserved)
			p->st.tokens_returned += c->reserved - (uint64_t)used;
		else
			p->st.tokens_excess += (uint64_t)used - c->reserved;
		c->reserved = 0;
	}
	if (c->rl_have)
		learn(e, c, now);
	pthread_mutex_unlock(&p->lock);
}

/* The longer reset of the spent budgets, else of both; 0 if none. */
static uint64_t pick_reset(bool rq, uint64_t req, bool tk, uint64_t tok,
			   bool req_spent, bool tok_spent)
{
	if (rq && tk && req_spent != tok_spent)
		return req_spent ? req : tok;
	if (rq && tk)
		return req > tok ? req : tok;
	return rq ? req : tk ? tok : 0;
}

uint64_t budget_reset_wait(struct myriad_infer *p, struct icall *c)
{
	struct endpoint *e = &p->eps[c->ep];
	uint64_t now = myriad_now_ns(), w;

	if (c->rl_have & (RL_RST_REQ | RL_RST_TOK)) {
		w = pick_reset(c->rl_have & RL_RST_REQ, c->rl_rst_req,
			       c->rl_have & RL_RST_TOK, c->rl_rst_tok,
			       (c->rl_have & RL_REM_REQ) && !c->rl_rem_req,
			       (c->rl_have & RL_REM_TOK) && !c->rl_rem_tok);
	} else {
		pthread_mutex_lock(&p->lock);
		w = pick_reset(
			e->reset_req_until > now, e->reset_req_until - now,
			e->reset_tok_until > now, e->reset_tok_until - now,
			e->req_spent, e->tok_spent);
		pthread_mutex_unlock(&p->lock);
	}
	if (w) {
		pthread_mutex_lock(&p->lock);
		p->st.last_reset_wait_ns = w;
		pthread_mutex_unlock(&p->lock);
	}
	return w;
}

/* ---- the retry budget (its rule: myriad_infer_opts.retry_ratio) ---- */

bool retry_allowed(struct myriad_infer *p, struct icall *c)
{
	struct endpoint *e = &p->eps[c->ep];
	uint64_t now = myriad_now_ns(), W = p->o.retry_window_ns, cum;
	double f, req, ret;
	bool ok;

	if (p->o.retry_ratio < 0)
		return true;
	cum = atomic_load_explicit(&e->first_attempts, memory_order_relaxed);
	pthread_mutex_lock(&p->lock);
	if (!e->rw_start)
		e->rw_start = now;
	if (now >= e->rw_start + W) {
		if (now >= e->rw_start + 2 * W) {
			/* Idle for a whole window: nothing of it counts. */
			e->snap_prev = e->snap_cur = cum;
			e->ret_prev = 0;
			e->rw_start = now;
		} else {
			e->snap_prev = e->snap_cur;
			e->snap_cur = cum;
			e->ret_prev = e->ret_cur;
			e->rw_start += W;
		}
		e->ret_cur = 0;
	}
	f = 1 - (double)(now - e->rw_start) / (double)W;
	req = (double)(cum - e->snap_cur) +
	      f * (double)(e->snap_cur - e->snap_prev);
	ret = e->ret_cur + f * e->ret_prev;
	ok = ret + 1 <= (double)p->o.retry_reserve + p->o.retry_ratio * req;
	if (ok) {
		e->ret_cur++;
		p->st.retries_allowed++;
	} else {
		p->st.retries_refused++;
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/* ---- public ---- */

int myriad_infer_stats(myriad_infer_t *p, struct myriad_infer_stats *st)
{
	struct myriad_infer_stats s;

	if (!p || !st || st->sz < sizeof(size_t))
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	s = p->st;
	s.queued = p->nqueued;
	pthread_mutex_unlock(&p->lock);
	s.http_429 = atomic_load_explicit(&p->n429, memory_order_relaxed);
	s.sz = st->sz < sizeof(s) ? st->sz : sizeof(s);
	memcpy(st, &s, s.sz);
	return 0;
}

int myriad_infer_set_weight(myriad_infer_t *p, const char *key, unsigned weight)
{
	struct fkey *k;

	if (!p || !key || !weight || weight > 65536 || strlen(key) > 255)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	k = q_key(p, key);
	if (k)
		k->weight = weight;
	pthread_mutex_unlock(&p->lock);
	return k ? 0 : -ENOMEM;
}
