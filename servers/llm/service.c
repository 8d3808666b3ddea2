/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/service.c: the simulated batch: at most --concurrency
 * requests in service in virtual time, a FIFO (or 429) behind, the fault
 * drawn for each request, and the timers that end a service or step a stream.
 */
#include "llm.h"

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

void q_unlink(struct conn *c)
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
	if (c->r.kind == K_CHAT)
		answer_prepare(c);
	if (c->r.stream && c->r.fault != F_500) {
		c->r.nsteps = stream_steps(c);
		c->r.deadline = stream_at(c, c->r.nsteps);
		srv_timer_set(&L.loop.heap, &c->s.tm, at);
	} else {
		c->r.stream = 0;
		c->r.deadline = at + O.llm_ns;
		srv_timer_set(&L.loop.heap, &c->s.tm, c->r.deadline);
	}
}

/*
 * A slot is free from free_at on (virtual time): the queue's head starts
 * then, or when it arrived if later. Only arms timers, never writes, so it
 * is safe from any handler.
 */
void slot_release(uint64_t free_at)
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
	case F_STREAM_ERR:
		S.fault_stream_error++;
		break;
	}
}

/* A valid inference request: reject (429), serve now, or queue. */
void admit(struct conn *c)
{
	c->r.seq = ++L.seq;
	c->r.arrive = L.loop.now;
	c->r.fault = pick_fault();
	if (c->r.fault == F_STREAM_ERR && !c->r.stream)
		c->r.fault = F_NONE; /* a fault of streams only */
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

void on_timer(struct conn *c)
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
