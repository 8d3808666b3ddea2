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
	const char *model;	 /* the "model" of each request */
	unsigned window;	 /* requests in flight at most; 0: 64 */
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
 * 65535, sz too small), -ENOMEM, -ENOKEY (api_key_env names a variable
 * that is not set).
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
	MYRIAD_INFER_EHTTP = -10001,	  /* HTTP error status (http_status) */
	MYRIAD_INFER_EBODY = -10002,	  /* malformed response body */
	MYRIAD_INFER_ETOOBIG = -10003,	  /* response over max_response */
	MYRIAD_INFER_ECONNECT = -10004,	  /* could not connect / reset */
	MYRIAD_INFER_ENOENDPOINT = -10005 /* the pool has no endpoint */
};

/* The result of a finished call, valid until the record is reused. */
struct myriad_infer_result {
	int http_status;     /* last attempt's status, 0 if none */
	unsigned attempts;   /* attempts made */
	int endpoint;	     /* the endpoint of the last attempt */
	const char *content; /* chat: choices[0].message.content */
	size_t content_len;
	const double *embedding; /* embed: data[0].embedding */
	size_t dims;
	int64_t prompt_tokens, completion_tokens, total_tokens; /* -1: absent */
	/* The server's timings where it sends them ("timings"); -1: absent. */
	double queue_ms, prompt_ms, predicted_ms;
	const char *error; /* what went wrong, for a person; "" if nothing */
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
 * ([{"role":"user","content":"..."}]), 'extra_json' NULL or a JSON object
 * whose members are added to the request ({"max_tokens":64}). The first
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
 * myriad_infer_chat() (-EAGAIN), then read the content as it arrives with
 * myriad_infer_stream_read(); the task is woken for each chunk. To stop
 * early, myriad_io_cancel() the call: the transfer is removed and its
 * connection closed, so the server stops generating. A stream that has
 * delivered content is not retried.
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

/* Embeddings of 'input' (one string); as myriad_infer_chat(). */
MYRIAD_API int myriad_infer_embed(myriad_task_t *self, myriad_infer_t *p,
				  myriad_infer_call_t *call, const char *input);

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
