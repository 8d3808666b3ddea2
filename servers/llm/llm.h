/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/llm.h: what the files of the mock LLM server share: its
 * options, counters, connection and request records, and loop state
 * (main.c has the overview).
 */
#ifndef SERVERS_LLM_LLM_H
#define SERVERS_LLM_LLM_H

#include "../srv.h"

#include <jansson.h>

#define PROG "llm-server"
#define MAX_HDR (16 * 1024)
#define RBUF_MIN 4096
#define MAX_INPUTS 2048
#define MODEL_MAX 200
#define MAX_CHOICES 128 /* n, as the API allows */
#define MAX_DIMS 4096	/* embeddings' dimensions */
#define MAX_CALLS 1024	/* tool calls in one answer */
#define ARG_PIECE 7	/* streamed tool-call arguments: bytes per chunk */
#define NSEC_MS 1000000ull

enum fault {
	F_NONE,
	F_429,
	F_500,
	F_RESET,
	F_TRUNC,
	F_OVERSIZE,
	F_MALFORMED,
	F_SLOW,
	F_STREAM_ERR,
	F_COUNT
};

/* The options (main.c: usage, parse_args). */
struct llm_opts {
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
	/* --models: the models served, as given and as JSON text (escaped,
	 * no quotes); none: any model */
	char **models, **model_text;
	size_t nmodels;
};

extern struct llm_opts O;

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
	X(tool_calls)                \
	X(fault_429)                 \
	X(fault_500)                 \
	X(fault_reset)               \
	X(fault_truncate)            \
	X(fault_oversize)            \
	X(fault_malformed)           \
	X(fault_slow)                \
	X(fault_stream_error)        \
	X(slot_gaps)                 \
	X(slot_gap_us)               \
	X(late_us)

struct llm_stats {
#define X(f) uint64_t f;
	STAT_FIELDS(X)
#undef X
};

extern struct llm_stats S;

enum cstate {
	C_READ,	   /* reading a request */
	C_QUEUED,  /* waiting for a slot, FIFO */
	C_SERVICE, /* holding a slot; timer = end of service or next event */
	C_WRITE,   /* answer queued; timer = next drip when dripping */
	C_LINGER,  /* our side shut: discard input until EOF or the timer */
};

enum kind { K_CHAT, K_EMBED };

/* What a chat answer is (tools.c decides it from the request). */
enum answer {
	A_TEXT,	 /* "reply <n> to <k> messages" */
	A_TOOLS, /* tool calls: ans = [[name, arguments], ...] */
	A_FINAL, /* after tool messages: ans = the content string */
};

struct req {
	uint64_t seq;		/* chatcmpl-<seq> */
	uint64_t arrive, start; /* ns */
	uint64_t deadline;	/* end of service */
	uint32_t nmsg;		/* messages, or inputs */
	uint32_t max_tokens;	/* 0: none */
	uint32_t prompt_tokens;
	uint8_t kind, stream, fault;
	uint8_t n;	       /* choices */
	uint8_t answer;	       /* enum answer */
	uint8_t include_usage; /* stream_options.include_usage */
	uint8_t finished;      /* the text was not cut by max_tokens */
	uint32_t words;	       /* completion tokens of one choice */
	uint32_t step, nsteps; /* streaming */
	size_t tlen;	       /* the text's length, cut at max_tokens */
	size_t soff;	       /* streaming: where the next piece starts */
	uint32_t scall;	       /* streaming tool calls: the call */
	char text[64];	       /* A_TEXT's text */
	char model[MODEL_MAX + 1];
	json_t *ans; /* A_TOOLS, A_FINAL (above) */
	char *body;  /* embeddings: built on arrival */
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

/* The state of the server's one thread. */
struct llm_state {
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
	char *enc; /* a request's value as JSON text (request.c: j_text) */
	size_t ecap;
	uint64_t rid_nonce, rid_count; /* x-request-id */
};

extern struct llm_state L;

/* A body is built in the scratch buffer (L.scratch), then framed into obuf. */
extern size_t sc_len;

/* conn.c */
int conns_full(struct srv_loop *l);
void conn_free(struct conn *c, int by_client, int reset);
int conn_kick(struct conn *c);
int conn_new(struct srv_loop *l, int fd);
int loop_read(struct srv_conn *s);
void loop_kick(struct srv_conn *s);
void loop_timer(struct srv_conn *s);

/* http.c */
int parse_one(struct conn *c);

/* request.c */
void bad_param(struct conn *c, const char *param, const char *code,
	       const char *msg);
size_t j_text(const json_t *v);
int model_field(struct conn *c, const json_t *v);
int model_check(struct conn *c, int given);
json_t *body_object(struct conn *c, const char *b, size_t n);
void req_clear(struct conn *c);
void on_chat(struct conn *c, const char *b, size_t n);

/* embed.c */
void on_embed(struct conn *c, const char *b, size_t n);

/* tools.c */
int tool_answer(struct conn *c, const json_t *msgs, const json_t *tools,
		const json_t *choice, int parallel);

/* service.c */
void q_unlink(struct conn *c);
void slot_release(uint64_t free_at);
void admit(struct conn *c);
void on_timer(struct conn *c);

/* answer.c */
void answer_prepare(struct conn *c);
const char *answer_text(const struct conn *c);
void put_text(const struct conn *c, const char *p, size_t n);
void put_usage(const struct conn *c);
void put_call_id(const struct conn *c, unsigned choice, unsigned call);
int service_done(struct conn *c);

/* stream.c */
uint32_t stream_steps(struct conn *c);
uint64_t stream_at(const struct conn *c, unsigned step);
int stream_step(struct conn *c);

/* reply.c */
void ob_put(struct conn *c, const void *p, size_t n);
void ob_printf(struct conn *c, const char *fmt, ...);
void sc_reset(void);
void sc_printf(const char *fmt, ...);
void sc_fill(char ch, size_t n);
void sc_json(const json_t *v);
void sc_json_str(const char *p, size_t n);
int out_pending(const struct conn *c);
void put_head(struct conn *c, int status, const char *ctype, size_t len,
	      const char *extra);
void put_stream_head(struct conn *c);
void reply_scratch(struct conn *c, int status, const char *extra);
void reply_json(struct conn *c, int status, const char *extra,
		const char *json);
void reply_error(struct conn *c, int status, const char *type, const char *code,
		 const char *msg, int close);
void reply_error_p(struct conn *c, int status, const char *type,
		   const char *param, const char *code, const char *msg,
		   int close);
void reply_429(struct conn *c);
void reply_500(struct conn *c);

#endif
