/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/answer.c: the answer at the end of a non-streamed service:
 * the reply text, the chat completion body, and the faults applied to it
 * (500, reset, truncated, oversized, malformed, slow).
 */
#include "llm.h"

/* The reply text and its word boundaries (streamed a word per event). */
size_t reply_text(const struct conn *c, char *buf, size_t cap, uint32_t *words,
		  int *finished)
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
int service_done(struct conn *c)
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
