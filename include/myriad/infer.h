/* SPDX-License-Identifier: MIT */
/*
 * myriad/infer.h: calls to OpenAI-compatible inference services
 * (/v1/chat/completions, /v1/embeddings) from tasks, without a thread
 * that waits: the task parks, HTTP runs on libcurl's multi interface
 * driven by the workers' io_uring, and the task is woken with the parsed
 * result.
 *
 * A pool holds endpoints; each call goes to the endpoint with the fewest
 * requests outstanding relative to its window, among those not cooling
 * down after a 429. Calls beyond every window wait in the pool's queue
 * holding no connection. Failed attempts (connection errors, 408, 409,
 * 429, 5xx) are retried with exponential backoff and full jitter, at most
 * max_retries times; Retry-After (seconds or an HTTP date) and
 * retry-after-ms are honoured, and a 429 pauses the whole endpoint until
 * the advised time, then releases its waiting calls spread over a jitter
 * window. Cancelling the task, or its deadline passing, removes the
 * transfer and closes its connection.
 */
#ifndef MYRIAD_INFER_H
#define MYRIAD_INFER_H

#include <myriad/common.h>
#include <myriad/io.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct myriad_infer myriad_infer_t;

/* Pool options; 'sz' first, zero fields take the defaults. */
struct myriad_infer_opts {
	size_t sz;
	uint64_t connect_timeout_ns; /* per attempt; 0: 10 s */
	uint64_t timeout_ns;	     /* per attempt, whole transfer; 0: 300 s */
	unsigned max_retries;	     /* retries after the first attempt; 0: 4 */
	uint64_t backoff_base_ns;    /* first backoff ceiling; 0: 100 ms */
	uint64_t backoff_max_ns;     /* backoff ceiling; 0: 10 s */
	size_t max_response;	     /* bytes of a response body; 0: 8 MiB */
	/* Spread of the release after a cooldown; 0: 100 ms. */
	uint64_t cooldown_jitter_ns;
	/* HTTP drivers (one libcurl multi handle each); 0: one per worker. */
	unsigned drivers;
	/*
	 * Since 0.3 (admission, see "Admission" below).
	 * A batch call queued longer than this is admitted as interactive;
	 * 0: 30 s.
	 */
	uint64_t batch_promote_ns;
	/*
	 * The retry budget of each endpoint: a retry is allowed while
	 *   retries + 1 <= retry_reserve + retry_ratio * first_attempts,
	 * both counted over the last retry_window_ns (the current window
	 * plus the previous one weighted by the part of it still inside the
	 * last retry_window_ns, as sliding-window rate limiters count).
	 * retry_ratio 0: 0.1; negative: no retry budget. retry_reserve 0:
	 * 100 (Finagle's 10 a second over its 10 s). retry_window_ns 0: 10 s.
	 */
	double retry_ratio;
	unsigned retry_reserve;
	uint64_t retry_window_ns;
};

/* An endpoint; the strings are copied. */
struct myriad_infer_endpoint {
	size_t sz;
	/*
	 * As the OpenAI SDKs take it: its path is the API's root, to which
	 * "/chat/completions" and "/embeddings" are added
	 * ("https://api.openai.com/v1", "http://127.0.0.1:8080/v1"); a bare
	 * "http://127.0.0.1:8080" (no path) means its /v1.
	 */
	const char *base_url;
	const char *api_key_env; /* environment variable with the key; NULL */
	const char *model;	 /* the "model" of a request that has none */
	unsigned window;	 /* requests in flight at most; 0: 64 */
	/* Since 0.2; a caller built against 0.1 (a smaller sz) has none. */
	const char *organization; /* OpenAI-Organization header; NULL */
	const char *project;	  /* OpenAI-Project header; NULL */
	/*
	 * Azure OpenAI: with api_version set, the key goes in an "api-key"
	 * header instead of "Authorization: Bearer", and every URL gets
	 * "?api-version=..." (base_url ".../openai/deployments/NAME").
	 */
	const char *azure_api_version;
	/* More headers, "Name: value" each, NULL-terminated; NULL: none.
	 * They are added after, and so override, the ones above. */
	const char *const *headers;
	/*
	 * Since 0.3: the endpoint's budgets, requests and tokens a minute
	 * (0: none known until the answers' x-ratelimit-limit-* headers say
	 * it), and the completion tokens a chat request without max_tokens
	 * or max_completion_tokens is assumed to use (0: 1024).
	 */
	uint64_t rpm, tpm;
	uint64_t default_max_tokens;
};

/*
 * Create a pool on a running runtime (from any thread that is not one of
 * its workers). Returns the pool with *err 0, or NULL with *err: -EINVAL,
 * -ENOMEM, -EDEADLK (called from a worker), -ESHUTDOWN, or -EIO when
 * libcurl cannot be initialised.
 */
MYRIAD_API myriad_infer_t *
myriad_infer_create(myriad_rt_t *rt, const struct myriad_infer_opts *opts,
		    int *err);

/*
 * Add an endpoint; returns its index, or -EINVAL (bad URL, window over
 * 65535, sz too small, a header without ':' or with a CR or LF), -ENOMEM,
 * -ENOKEY (api_key_env names a variable that is not set). Every request
 * carries "User-Agent: myriad/MAJOR.MINOR" unless 'headers' sets one.
 */
MYRIAD_API int myriad_infer_add(myriad_infer_t *p,
				const struct myriad_infer_endpoint *ep);

/*
 * Stop the pool's drivers and free it. Calls still queued or in flight
 * end with -ESHUTDOWN. Call before myriad_rt_destroy(), from outside the
 * runtime. Returns 0, -EINVAL, -EDEADLK (called from a worker).
 */
MYRIAD_API int myriad_infer_destroy(myriad_infer_t *p);

/* Error codes of a call besides negative errnos. */
enum {
	MYRIAD_INFER_EHTTP = -10001,	   /* HTTP error status (http_status) */
	MYRIAD_INFER_EBODY = -10002,	   /* malformed response body */
	MYRIAD_INFER_ETOOBIG = -10003,	   /* response over max_response */
	MYRIAD_INFER_ECONNECT = -10004,	   /* could not connect / reset */
	MYRIAD_INFER_ENOENDPOINT = -10005, /* the pool has no endpoint */
	/* A 2xx stream that carried an "error" event: the server's error
	 * (error_message, error_type, error_code) ended the call. */
	MYRIAD_INFER_ESERVER = -10006,
	/* The call failed (http_status, the server's error) and its retry
	 * would pass the endpoint's retry budget (opts.retry_ratio): it
	 * ended at once, without the retries max_retries allows. */
	MYRIAD_INFER_ERETRYBUDGET = -10007
};

/* A tool call the model asked for (choices[i].message.tool_calls[j]). */
struct myriad_infer_tool_call {
	const char *id;	  /* "call_..."; "" if the server sent none */
	const char *type; /* "function" */
	const char *name; /* function.name */
	/* function.arguments: the JSON text the model wrote, unparsed (it
	 * may not be valid JSON: parse it and answer the model if not). */
	const char *arguments;
	size_t arguments_len;
};

/* One choice of a chat answer (choices[i]). */
struct myriad_infer_choice {
	unsigned index;
	/* "stop", "length", "tool_calls", "content_filter", ...; NULL if
	 * the server sent none (a stream cut short). */
	const char *finish_reason;
	const char *content; /* message.content; NULL if null or absent */
	size_t content_len;
	const char *refusal; /* message.refusal; NULL if none */
	const struct myriad_infer_tool_call *tool_calls;
	size_t ntool_calls;
};

struct json_t; /* jansson's; include <jansson.h> to read it */

/*
 * The result of a finished call. Every pointer in it is valid until
 * myriad_infer_release() on the call (or its next start, or the task's
 * end), and read-only.
 *
 * Changed in 0.2: an answer whose choices[0] has no content (tool calls,
 * a refusal) is a success with 'content' NULL; 0.1 failed it with
 * MYRIAD_INFER_EBODY. The fields after 'error' are new; the struct is
 * only ever returned by pointer, so 0.1 callers still compile and run.
 */
struct myriad_infer_result {
	int http_status;     /* last attempt's status, 0 if none */
	unsigned attempts;   /* attempts made */
	int endpoint;	     /* the endpoint of the last attempt */
	const char *content; /* chat: choices[0].message.content, or NULL */
	size_t content_len;
	const double *embedding; /* embed: embeddings[0] */
	size_t dims;		 /* embed: numbers in each vector */
	int64_t prompt_tokens, completion_tokens, total_tokens; /* -1: absent */
	/* The server's timings where it sends them ("timings"); -1: absent. */
	double queue_ms, prompt_ms, predicted_ms;
	const char *error; /* what went wrong, for a person; "" if nothing */

	/* Chat: the answer's choices in index order, and choices[0]'s. */
	const struct myriad_infer_choice *choices;
	size_t nchoices;
	const char *finish_reason; /* choices[0]'s; NULL if none */
	const char *refusal;	   /* choices[0]'s; NULL if none */
	const struct myriad_infer_tool_call *tool_calls; /* choices[0]'s */
	size_t ntool_calls;
	/* The answer's id, model, system_fingerprint; NULL if absent. */
	const char *id, *model, *system_fingerprint;
	/* usage.prompt_tokens_details.cached_tokens and
	 * usage.completion_tokens_details.reasoning_tokens; -1: absent. */
	int64_t cached_tokens, reasoning_tokens;
	const char *request_id; /* the x-request-id header; NULL if none */

	/* Embeddings: one vector per input, in input order (data[].index),
	 * 'dims' numbers each; base64 answers are decoded. */
	const double *const *embeddings;
	size_t nembeddings;

	/*
	 * An error the server wrote (an HTTP error's body, or a stream's
	 * "error" event): error.message, .type, .code (a number is given in
	 * decimal), .param; NULL where absent. 'error' then includes them.
	 */
	const char *error_message, *error_type, *error_code, *error_param;

	/* The parsed answer (a chat.completion or an embeddings list), for
	 * anything else in it; borrowed, NULL for a stream or an error. */
	const struct json_t *json;

	/* Since 0.3: what the endpoint's budgets held after this call was
	 * admitted (-1: no such budget), and how long the call waited in the
	 * queue for budget (not for a window). */
	int64_t budget_tokens_left, budget_requests_left;
	uint64_t budget_wait_ns;
};

/*
 * A call. Put it in the task's state; all-zero means idle. It is an I/O
 * record (myriad/io.h): the task cannot finish while it is in flight.
 * myriad_io_deadline(call, ns) before starting it gives the whole call
 * (queueing and retries included) a deadline: past it the call ends with
 * -ETIME, and each attempt's timeout is cut to what is left.
 */
typedef myriad_io_t myriad_infer_call_t;

/*
 * Chat completion: 'messages_json' is the JSON array of messages
 * ([{"role":"user","content":"..."}], with "tool" messages answering tool
 * calls), 'extra_json' NULL or a JSON object whose members are added to
 * the request ({"max_tokens":64}, {"tools":[...]}, {"n":3}); a "model"
 * there is the call's own, else the endpoint's is sent. The first
 * call queues it and returns -EAGAIN (return MYRIAD_PENDING); calling again
 * with the same record returns -EAGAIN until it is done, then 0 (the
 * result is read with myriad_infer_result()) or a negative code: an errno
 * (-ETIMEDOUT, -ECANCELED, -ETIME from a task deadline, -ESHUTDOWN,
 * -EINVAL, -ENOMEM) or a MYRIAD_INFER_E* code, with a message in the
 * result's 'error'.
 */
MYRIAD_API int myriad_infer_chat(myriad_task_t *self, myriad_infer_t *p,
				 myriad_infer_call_t *call,
				 const char *messages_json,
				 const char *extra_json);

/*
 * Streaming chat ("stream": true, server-sent events): started like
 * myriad_infer_chat() (-EAGAIN), then read choices[0]'s content as it
 * arrives with myriad_infer_stream_read() and its tool calls as each
 * completes with myriad_infer_stream_tool_call(); the task is woken for
 * each chunk. Usage is asked for ("stream_options": {"include_usage":
 * true}) unless extra_json sets stream_options. When the stream ends, the
 * result holds every choice assembled from its deltas (content, refusal,
 * tool calls with their arguments joined, finish_reason) and the usage.
 * An "error" event ends the call with MYRIAD_INFER_ESERVER. To stop
 * early, myriad_io_cancel() the call: the transfer is removed and its
 * connection closed, so the server stops generating. A stream that has
 * delivered anything is not retried.
 */
MYRIAD_API int myriad_infer_chat_stream(myriad_task_t *self, myriad_infer_t *p,
					myriad_infer_call_t *call,
					const char *messages_json,
					const char *extra_json);

/*
 * Copy up to 'cap' bytes of content not yet read into 'buf': returns the
 * count (> 0), -EAGAIN when nothing new has come yet (return
 * MYRIAD_PENDING), 0 when the stream has ended and all of it was read (the
 * whole content and the usage are then in myriad_infer_result()), or the
 * call's error as myriad_infer_chat() returns it. -EINVAL if 'call' is not
 * a streaming call.
 */
MYRIAD_API int myriad_infer_stream_read(myriad_task_t *self,
					myriad_infer_call_t *call, char *buf,
					size_t cap);

/*
 * Streamed tool call 'i' of choices[0], once complete (the next tool
 * call or the choice's finish_reason came, or the stream ended): copies
 * it to '*out' and returns 0; its strings stay valid until the call is
 * released. -EAGAIN: not complete yet (return MYRIAD_PENDING); -ENOENT:
 * the stream ended with fewer; the call's error if it failed; -EINVAL if
 * 'call' is not a streaming call.
 */
MYRIAD_API int
myriad_infer_stream_tool_call(myriad_task_t *self, myriad_infer_call_t *call,
			      size_t i, struct myriad_infer_tool_call *out);

/* Embeddings of 'input' (one string); as myriad_infer_chat(). */
MYRIAD_API int myriad_infer_embed(myriad_task_t *self, myriad_infer_t *p,
				  myriad_infer_call_t *call, const char *input);

/*
 * Embeddings of 'n' inputs (1 to 2048) in one request, 'extra_json' NULL
 * or an object of options ({"dimensions":256},
 * {"encoding_format":"base64"}, a "model"); the result has one vector per
 * input (embeddings, nembeddings). As myriad_infer_chat() otherwise; the
 * inputs are copied by the first call.
 */
MYRIAD_API int myriad_infer_embed_batch(myriad_task_t *self, myriad_infer_t *p,
					myriad_infer_call_t *call,
					const char *const *inputs, size_t n,
					const char *extra_json);

/*
 * Admission (since 0.3). Calls wait in the pool's queue until an endpoint
 * has a free window slot and, where it has budgets, a request and the
 * call's estimated tokens left in them.
 *
 * Budgets: requests and tokens a minute, configured (endpoint rpm, tpm)
 * or learned from the answers' x-ratelimit-limit-requests/-tokens. Each
 * is a bucket of 'limit' that refills at limit / 60 s; an answer's
 * x-ratelimit-remaining-* lowers it to what the server says is left (never
 * raises it: other clients may share the key). A call takes one request
 * and its estimate at admission; its answer's usage.total_tokens gives
 * back what it did not use or takes the excess (an answer without usage
 * keeps the estimate). The estimate is the caller's (token_estimate) or
 * (bytes of the messages or inputs) / 4 + max_completion_tokens, else
 * max_tokens, else the endpoint's default_max_tokens (chat only).
 * A 429 without Retry-After cools the endpoint for the longer of the
 * x-ratelimit-reset-requests/-tokens durations ("6m0s", "1s", "20ms",
 * "1h2m3.5s"; malformed ones are ignored) of a budget it says is spent
 * (remaining 0), else of both, from that answer or the last one.
 *
 * Priorities: an interactive call waiting is admitted before every batch
 * call; a batch call that has waited batch_promote_ns joins the
 * interactive calls (at their end), so batch waits at most that long
 * behind interactive work.
 *
 * Fair shares: within a class, calls are admitted by deficit round robin
 * on their estimated tokens between fairness keys: each turn a key with
 * waiting calls gets weight * Q tokens of credit (Q: the larger of 4096
 * and the largest estimate seen) and is admitted calls while its credit
 * covers the next one. While two keys have calls waiting, the tokens
 * admitted for each, divided by its weight, differ by at most Q * (the
 * larger weight) + the largest estimate. A key with a million calls
 * waiting costs an admission O(1): calls wait in one list per key, keys
 * with calls in a ring per class.
 */
enum myriad_infer_class {
	MYRIAD_INFER_INTERACTIVE = 0, /* the default */
	MYRIAD_INFER_BATCH = 1
};

/* A chat call's request; 'sz' first, zero fields take the defaults. */
struct myriad_infer_request {
	size_t sz;
	const char *messages_json; /* as myriad_infer_chat() */
	const char *extra_json;	   /* NULL or an object, as there */
	bool stream;		   /* as myriad_infer_chat_stream() */
	int priority;		   /* enum myriad_infer_class */
	const char *fairness_key;  /* tenant, user, group; NULL: "" */
	uint64_t token_estimate;   /* 0: the rule above */
};

/*
 * Start (or collect) a chat call with per-call admission options; as
 * myriad_infer_chat() (or _chat_stream() with 'stream'). The request is
 * read and copied by the first call only. -EINVAL also for an unknown
 * priority or a key over 255 bytes.
 */
MYRIAD_API int myriad_infer_chat_req(myriad_task_t *self, myriad_infer_t *p,
				     myriad_infer_call_t *call,
				     const struct myriad_infer_request *req);

/*
 * The weight of fairness key 'key' (1 to 65536; a key never set has 1),
 * from any thread. 0, -EINVAL, -ENOMEM.
 */
MYRIAD_API int myriad_infer_set_weight(myriad_infer_t *p, const char *key,
				       unsigned weight);

/* The pool's admission counters since it was created; 'sz' first. */
struct myriad_infer_stats {
	size_t sz;
	uint64_t tokens_reserved; /* estimates taken at admission */
	uint64_t tokens_used;	  /* usage.total_tokens of answers */
	uint64_t tokens_returned; /* reserved, not used, given back */
	uint64_t tokens_excess;	  /* used beyond the reservation */
	uint64_t calls_waited;	  /* calls that waited for budget */
	uint64_t wait_ns;	  /* their waits, summed */
	uint64_t http_429;	  /* 429 answers */
	uint64_t retries_allowed; /* retries the retry budget let go */
	uint64_t retries_refused; /* MYRIAD_INFER_ERETRYBUDGET endings */
	uint64_t admitted_interactive, admitted_batch;
	uint64_t promoted; /* batch calls admitted as interactive */
	uint64_t queued;   /* calls waiting now */
	/* The last cooldown a 429 without Retry-After took from the
	 * x-ratelimit-reset-* headers; 0 if none yet. */
	uint64_t last_reset_wait_ns;
};

/* Fill 'st' (st->sz set by the caller); 0 or -EINVAL. From any thread. */
MYRIAD_API int myriad_infer_stats(myriad_infer_t *p,
				  struct myriad_infer_stats *st);

/*
 * The result of the call last finished on 'call' (also after an error:
 * http_status, attempts, error), or NULL if none.
 */
MYRIAD_API const struct myriad_infer_result *
myriad_infer_result(const myriad_infer_call_t *call);

/* Free what the finished call holds (also done by the record's next call
 * and when the task finishes). 0 or -EINVAL. */
MYRIAD_API int myriad_infer_release(myriad_task_t *self,
				    myriad_infer_call_t *call);

#ifdef __cplusplus
}
#endif
#endif
