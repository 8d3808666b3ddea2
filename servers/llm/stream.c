/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/stream.c: a streamed chat completion: server-sent events in
 * HTTP chunks, a chunk per choice for each piece (a word of the text, or a
 * tool call's start and its arguments 7 bytes at a time) spread over
 * llm_ms (a character per drip_ms with the slow fault), usage in its own
 * chunk when asked, and the faults applied mid-stream.
 */
#include "llm.h"

#define CALL_START SIZE_MAX /* r.soff: the call's first chunk is next */

/* One SSE event as one HTTP chunk. */
static void sse_put(struct conn *c, const char *data, size_t n)
{
	ob_printf(c, "%zx\r\ndata: ", n + 8);
	ob_put(c, data, n);
	ob_put(c, "\n\n\r\n", 4);
}

/* A chunk's opening, up to and with its one choice's delta key. */
static void chunk_open(const struct conn *c, unsigned choice)
{
	sc_printf("{\"id\":\"chatcmpl-%" PRIu64 "\",\"object\":"
		  "\"chat.completion.chunk\",\"created\":%ld,\"model\":\"%s\","
		  "\"choices\":[{\"index\":%u,\"delta\":",
		  c->r.seq, (long)time(NULL), c->r.model, choice);
}

/* After the delta: finish_reason, "usage":null when usage was asked for
 * (as the API sends on every chunk but the usage chunk). */
static void chunk_close(const struct conn *c, const char *fin)
{
	if (fin)
		sc_printf(",\"finish_reason\":\"%s\"}]", fin);
	else
		sc_printf(",\"finish_reason\":null}]");
	if (c->r.include_usage)
		sc_printf(",\"usage\":null");
}

/* A tool call's arguments: the next piece of at most 7 bytes from off,
 * ending at a UTF-8 character's start. */
static size_t arg_piece(const json_t *args, size_t off)
{
	const char *p = json_string_value(args);
	size_t n = json_string_length(args), e = off + ARG_PIECE;

	if (e >= n)
		return n - off;
	while (e > off + 1 && ((unsigned char)p[e] & 0xc0) == 0x80)
		e--;
	return e - off;
}

/* The text's next piece from r.soff: a word (with the space before it),
 * or with the slow fault a character. */
static size_t text_piece(const struct conn *c, const char *t)
{
	size_t a = c->r.soff, b = a + 1;

	if (c->r.fault == F_SLOW)
		while (b < c->r.tlen && ((unsigned char)t[b] & 0xc0) == 0x80)
			b++;
	else
		while (b < c->r.tlen && t[b] != ' ')
			b++;
	return (b < c->r.tlen ? b : c->r.tlen) - a;
}

/* How many pieces the stream has; the cursor set to the first. */
uint32_t stream_steps(struct conn *c)
{
	uint32_t n = 0;
	const json_t *call;
	size_t i, off, len;

	c->r.scall = 0;
	c->r.soff = c->r.answer == A_TOOLS ? CALL_START : 0;
	if (c->r.answer != A_TOOLS) {
		if (c->r.fault != F_SLOW)
			return c->r.words;
		for (i = 0; i < c->r.tlen; i++)
			n += ((unsigned char)answer_text(c)[i] & 0xc0) != 0x80;
		return n ? n : 1;
	}
	json_array_foreach(c->r.ans, i, call)
	{
		len = json_string_length(json_array_get(call, 1));
		for (n++, off = 0; off < len; n++)
			off += arg_piece(json_array_get(call, 1), off);
	}
	return n ? n : 1;
}

/*
 * The pieces of a streamed reply: spread evenly over llm_ms; with the slow
 * fault, one every drip_ms.
 */
uint64_t stream_at(const struct conn *c, unsigned step)
{
	if (c->r.fault == F_SLOW)
		return c->r.start + O.drip_ns * step;
	return c->r.start + O.llm_ns * step / c->r.nsteps;
}

/* A tool-call piece's delta: the call's first chunk, or arguments. */
static void tool_delta(const struct conn *c, unsigned choice,
		       const json_t *call, size_t len)
{
	sc_printf("{\"tool_calls\":[{\"index\":%u,", c->r.scall);
	if (c->r.soff == CALL_START) {
		sc_printf("\"id\":");
		put_call_id(c, choice, c->r.scall);
		sc_printf(",\"type\":\"function\",\"function\":{\"name\":");
		sc_json(json_array_get(call, 0));
		sc_printf(",\"arguments\":\"\"}}]}");
		return;
	}
	sc_printf("\"function\":{\"arguments\":");
	sc_json_str(json_string_value(json_array_get(call, 1)) + c->r.soff,
		    len);
	sc_printf("}}]}");
}

/* One piece (step s >= 1): a chunk per choice, the cursor moved on. */
static void stream_piece(struct conn *c, unsigned s)
{
	const json_t *call = NULL;
	const char *t = NULL;
	size_t len;
	unsigned i;

	if (c->r.answer == A_TOOLS) {
		call = json_array_get(c->r.ans, c->r.scall);
		len = c->r.soff == CALL_START
			      ? 0
			      : arg_piece(json_array_get(call, 1), c->r.soff);
	} else {
		t = answer_text(c);
		len = text_piece(c, t);
	}
	for (i = 0; i < c->r.n; i++) {
		sc_reset();
		if (c->r.fault == F_OVERSIZE && s == 1 && call) {
			/* tool calls: a content chunk of x before them */
			chunk_open(c, i);
			sc_printf("{\"content\":\"");
			sc_fill('x', O.oversize_bytes);
			sc_printf("\"}");
			chunk_close(c, NULL);
			sc_printf("}");
			sse_put(c, L.scratch, sc_len);
			sc_reset();
		}
		chunk_open(c, i);
		if (call) {
			tool_delta(c, i, call, len);
		} else if (c->r.fault == F_OVERSIZE && s == 1) {
			/* the first piece carries the x: one string, so the
			 * piece's opening quote goes */
			size_t at;

			sc_printf("{\"content\":\"");
			sc_fill('x', O.oversize_bytes);
			at = sc_len;
			put_text(c, t + c->r.soff, len);
			memmove(L.scratch + at, L.scratch + at + 1,
				sc_len - at - 1);
			sc_len--;
			sc_printf("}");
		} else {
			sc_printf("{\"content\":");
			put_text(c, t + c->r.soff, len);
			sc_printf("}");
		}
		chunk_close(c, NULL);
		sc_printf("}");
		if (c->r.fault == F_MALFORMED && s == 1)
			sc_len -= 3; /* broken JSON */
		sse_put(c, L.scratch, sc_len);
	}
	if (call && c->r.soff == CALL_START)
		c->r.soff = 0;
	else
		c->r.soff += len;
	if (call && c->r.soff >= json_string_length(json_array_get(call, 1))) {
		c->r.scall++;
		c->r.soff = CALL_START;
	}
}

/* The end of the stream: finish_reason per choice, usage when asked. */
static void stream_end(struct conn *c)
{
	double q = (double)(c->r.start - c->r.arrive) / 1e6;
	double total = (double)(c->r.deadline - c->r.start) / 1e6;
	const char *fin = c->r.answer == A_TOOLS ? "tool_calls"
			  : c->r.finished	 ? "stop"
						 : "length";
	unsigned i;

	for (i = 0; i < c->r.n; i++) {
		sc_reset();
		chunk_open(c, i);
		sc_printf("{}");
		chunk_close(c, fin);
		if (i == c->r.n - 1u)
			sc_printf(",\"timings\":{\"queue_ms\":%.3f,"
				  "\"prompt_ms\":%.3f,\"predicted_ms\":%.3f}",
				  q, total / 4, total - total / 4);
		sc_printf("}");
		sse_put(c, L.scratch, sc_len);
	}
	if (c->r.include_usage) {
		sc_reset();
		sc_printf("{\"id\":\"chatcmpl-%" PRIu64 "\",\"object\":"
			  "\"chat.completion.chunk\",\"created\":%ld,"
			  "\"model\":\"%s\",\"choices\":[],",
			  c->r.seq, (long)time(NULL), c->r.model);
		put_usage(c);
		sc_printf("}");
		sse_put(c, L.scratch, sc_len);
	}
	sse_put(c, "[DONE]", 6);
}

/* The stream-error fault: an error event on the 200 stream, no [DONE]. */
static void stream_error(struct conn *c)
{
	static const char ev[] =
		"{\"error\":{\"message\":\"The server had an error while "
		"processing your request.\",\"type\":\"server_error\","
		"\"param\":null,\"code\":null}}";

	sse_put(c, ev, sizeof(ev) - 1);
}

/*
 * A streamed service: step 0 sends the headers and the role, steps 1..n
 * the pieces; the last also the finish chunks, the usage and [DONE].
 */
int stream_step(struct conn *c)
{
	unsigned s = c->r.step++, n = c->r.nsteps, i;

	if (s == 0) {
		put_stream_head(c);
		for (i = 0; i < c->r.n; i++) {
			sc_reset();
			chunk_open(c, i);
			sc_printf("{\"role\":\"assistant\",\"content\":%s}",
				  c->r.answer == A_TOOLS ? "null" : "\"\"");
			chunk_close(c, NULL);
			sc_printf("}");
			sse_put(c, L.scratch, sc_len);
		}
		srv_timer_set(&L.loop.heap, &c->s.tm, stream_at(c, 1));
		return 0;
	}
	if (c->r.fault == F_RESET) { /* after the first event */
		conn_free(c, 0, 1);
		return -1;
	}
	stream_piece(c, s);
	if (s == (n + 1) / 2 &&
	    (c->r.fault == F_TRUNC || c->r.fault == F_STREAM_ERR)) {
		/* Truncated: no [DONE], no last chunk, the stream breaks
		 * off. Error: an error event ends the answer. */
		if (c->r.fault == F_TRUNC) {
			c->close_after = 1;
		} else {
			stream_error(c);
			ob_put(c, "0\r\n\r\n", 5);
		}
		c->state = C_WRITE;
		slot_release(c->r.deadline);
		return 0;
	}
	if (s < n) {
		srv_timer_set(&L.loop.heap, &c->s.tm, stream_at(c, s + 1));
		return 0;
	}
	stream_end(c);
	ob_put(c, "0\r\n\r\n", 5);
	c->state = C_WRITE;
	c->resp_ok = 1;
	slot_release(c->r.deadline);
	return 0;
}
