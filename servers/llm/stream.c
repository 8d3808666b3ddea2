/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/stream.c: a streamed chat completion: server-sent events in
 * HTTP chunks, a word per event spread over llm_ms (a character per drip_ms
 * with the slow fault), and the faults applied mid-stream.
 */
#include "llm.h"

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
uint64_t stream_at(const struct conn *c, unsigned step)
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
int stream_step(struct conn *c)
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
