/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/answer.c: what a chat answer says (its text cut at
 * max_tokens, or its tool calls; its usage), the answer at the end of a
 * non-streamed service (n choices), and the faults applied to it (500,
 * reset, truncated, oversized, malformed, slow).
 */
#include "llm.h"

/* The text of a text answer (A_TEXT, A_FINAL), c->r.tlen bytes. */
const char *answer_text(const struct conn *c)
{
	return c->r.answer == A_FINAL ? json_string_value(c->r.ans) : c->r.text;
}

/*
 * What the answer is, worked out once as its service starts: the text and
 * where max_tokens cuts it (a token per word, the cut at a word), or the
 * tool calls' tokens (a call: 3, and one per 4 bytes of its arguments).
 */
void answer_prepare(struct conn *c)
{
	uint32_t w = 1, max = c->r.max_tokens ? c->r.max_tokens : UINT32_MAX;
	const char *t;
	size_t i, n;

	if (c->r.answer == A_TOOLS) {
		const json_t *call;

		c->r.words = 0;
		json_array_foreach(c->r.ans, i, call) c->r.words +=
			3 +
			(uint32_t)json_string_length(json_array_get(call, 1)) /
				4;
		c->r.finished = 1;
		return;
	}
	if (c->r.answer == A_TEXT) {
		n = (size_t)snprintf(c->r.text, sizeof(c->r.text),
				     "reply %" PRIu64 " to %u %s", c->r.seq,
				     c->r.nmsg,
				     c->r.nmsg == 1 ? "message" : "messages");
	} else {
		n = json_string_length(c->r.ans);
	}
	t = answer_text(c);
	c->r.finished = 1;
	for (i = 0; i < n; i++) {
		if (t[i] != ' ')
			continue;
		if (w == max) {
			n = i;
			c->r.finished = 0;
			break;
		}
		w++;
	}
	c->r.words = w;
	c->r.tlen = n;
}

/* n bytes of the answer's text as a JSON string into the scratch buffer. */
void put_text(const struct conn *c, const char *p, size_t n)
{
	if (c->r.answer == A_TEXT) /* "reply ...": nothing to escape */
		sc_printf("\"%.*s\"", (int)n, p);
	else
		sc_json_str(p, n);
}

/* "usage" of the whole answer: every choice's completion tokens. */
void put_usage(const struct conn *c)
{
	uint32_t comp = c->r.words * c->r.n;

	sc_printf("\"usage\":{\"prompt_tokens\":%u,\"completion_tokens\":%u,"
		  "\"total_tokens\":%u}",
		  c->r.prompt_tokens, comp, c->r.prompt_tokens + comp);
}

/*
 * A tool call's id: "call_" and 24 hex digits from the request number, the
 * choice and the call, so unique in the server's run.
 */
void put_call_id(const struct conn *c, unsigned choice, unsigned call)
{
	sc_printf("\"call_%016" PRIx64 "%04x%04x\"", c->r.seq, choice, call);
}

static void put_calls_message(const struct conn *c, unsigned choice)
{
	const json_t *call;
	size_t k;

	sc_printf("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[");
	json_array_foreach(c->r.ans, k, call)
	{
		sc_printf("%s{\"id\":", k ? "," : "");
		put_call_id(c, choice, (unsigned)k);
		sc_printf(",\"type\":\"function\",\"function\":{\"name\":");
		sc_json(json_array_get(call, 0));
		sc_printf(",\"arguments\":");
		sc_json(json_array_get(call, 1));
		sc_printf("}}");
	}
	sc_printf("]}");
}

static void chat_body_json(struct conn *c)
{
	double q = (double)(c->r.start - c->r.arrive) / 1e6;
	double total = (double)(c->r.deadline - c->r.start) / 1e6;
	const char *fin = c->r.answer == A_TOOLS ? "tool_calls"
			  : c->r.finished	 ? "stop"
						 : "length";
	unsigned i;

	sc_printf("{\"id\":\"chatcmpl-%" PRIu64 "\",\"object\":"
		  "\"chat.completion\",\"created\":%ld,\"model\":\"%s\","
		  "\"choices\":[",
		  c->r.seq, (long)time(NULL), c->r.model);
	for (i = 0; i < c->r.n; i++) {
		sc_printf("%s{\"index\":%u,\"message\":", i ? "," : "", i);
		if (c->r.answer == A_TOOLS) {
			put_calls_message(c, i);
		} else {
			sc_printf("{\"role\":\"assistant\",\"content\":");
			put_text(c, answer_text(c), c->r.tlen);
			sc_printf("}");
		}
		sc_printf(",\"finish_reason\":\"%s\"}", fin);
	}
	sc_printf("],");
	put_usage(c);
	sc_printf(",\"timings\":{\"queue_ms\":%.3f,\"prompt_ms\":%.3f,"
		  "\"predicted_ms\":%.3f}}",
		  q, total / 4, total - total / 4);
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
int service_done(struct conn *c)
{
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
		chat_body_json(c);
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
