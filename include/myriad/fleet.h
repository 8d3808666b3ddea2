/* SPDX-License-Identifier: MIT */
/*
 * myriad/fleet.h: agent tasks across machines through Redis Streams: a
 * queue of tasks that machines pull by capacity, lease while they run,
 * checkpoint, and take over from machines that died.
 *
 * A queue NAME is N streams (shards) "{NAME:0}" .. "{NAME:N-1}", each with
 * the consumer group "myriad"; N is kept in the hash "{NAME}:meta" so that
 * submitters and workers agree. Results go to the stream
 * "{NAME}:results" (fields id, attempt, status, output, consumer), entries
 * that cannot run to "{NAME}:dead" (id, kind, input, attempt, reason),
 * checkpoints to the hash "{NAME:K}:ckpt" (field: the task id). An entry
 * of a shard has the fields id (the task id, chosen by the submitter),
 * kind and input (bytes).
 *
 * Delivery is AT LEAST ONCE. A task's entry is acknowledged and deleted
 * only after its result is in the results stream; a machine that dies (or
 * loses Redis for longer than the lease) before that has its entries run
 * again elsewhere, from their last checkpoint. So:
 *   - a task may run more than once, wholly or from a checkpoint on, and
 *     its side effects (tool calls, writes, messages) may happen more
 *     than once: make them idempotent, keyed by the task id (and the step
 *     recorded in the checkpoint), or accept duplicates;
 *   - the results stream may hold more than one result for a task id
 *     (with different or equal attempts): readers keep one per id;
 *   - a task is never lost while Redis keeps its writes. With the AOF on
 *     and appendfsync always, Redis fsyncs each write before it replies:
 *     a Redis killed or restarted mid-run loses nothing it acknowledged
 *     (tests/fleet/persist.py). With appendfsync everysec, a crash of
 *     Redis's machine (power, kernel) loses up to about the last second
 *     or two of acknowledged writes (Redis's own process dying loses
 *     none as a rule: its write(2) comes before the reply, unless a slow
 *     disk's fsync holds it back). For
 *     tasks that means: a submit lost with them is a task lost (submit
 *     returned it added, it never runs, no result comes: a submitter
 *     that must not lose tasks submits again the ids whose result does
 *     not come, and a resubmitted id that did survive runs twice); a
 *     lost read, claim, result, ack or delete is a re-run (the entry is
 *     pending or undelivered again, the task runs again from the last
 *     checkpoint that survived, and a result that survived without its
 *     ack appears twice); a lost checkpoint makes a takeover start from
 *     an older one. Without the AOF, a restart loses the queue.
 *
 * Errors are negative errnos. Calls that block (open, create, submit,
 * status, results, leave) must be made from a thread that is not one of
 * the runtime's workers (-EDEADLK otherwise).
 */
#ifndef MYRIAD_FLEET_H
#define MYRIAD_FLEET_H

#include <myriad/common.h>
#include <myriad/rt.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A Redis server and the kinds this process can run. */
typedef struct myriad_fleet myriad_fleet_t;
/* This process's membership of one queue: a consumer in its group. */
typedef struct myriad_fleet_member myriad_fleet_member_t;

/*
 * Options for myriad_fleet_open(). Set 'sz' to sizeof(struct
 * myriad_fleet_opts); fields past 'sz', and zero fields, take defaults.
 */
struct myriad_fleet_opts {
	size_t sz;
	/*
	 * "redis://HOST:PORT" (HOST a name or an address; PORT 6379 if left
	 * out), "unix:///PATH" (a unix socket). NULL: MYRIAD_FLEET_URL from
	 * the environment, else redis://127.0.0.1:6379.
	 */
	const char *url;
	uint64_t connect_timeout_ns; /* one connect attempt (default 2 s) */
	/*
	 * A command's reply must come within this (default 5 s), else Redis
	 * is taken to be gone and the connection is made again.
	 */
	uint64_t command_timeout_ns;
	/*
	 * How long a command waits for Redis to come back (default 30 s)
	 * before it fails with -ENOTCONN. A worker's results and acks are
	 * sent again until they succeed; only blocking calls of this API
	 * give up after this.
	 */
	uint64_t down_wait_ns;
	uint64_t backoff_base_ns; /* reconnect backoff (default 50 ms) */
	uint64_t backoff_max_ns;  /* its cap (default 2 s) */
	unsigned max_queued; /* commands waiting for Redis (default 65536) */
	/*
	 * myriad_fleet_open() waits for the first connection; false: it
	 * returns at once and commands wait for Redis as above.
	 */
	bool lazy;
};

/*
 * Connect to Redis with two connections driven by tasks on 'rt' (which
 * must outlive the fleet). Unless opts->lazy, waits until Redis answers
 * or down_wait_ns passes, retrying with backoff. Returns the fleet, or
 * NULL with *err: -EINVAL (a malformed URL, rt NULL, sz too small),
 * -ENOENT (the host name does not resolve), -ENOTCONN (Redis did not
 * answer in time), -ENOMEM, -EDEADLK.
 */
MYRIAD_API myriad_fleet_t *
myriad_fleet_open(myriad_rt_t *rt, const struct myriad_fleet_opts *o, int *err);

/* Close it; members must have left. 0, -EINVAL, -EBUSY (members). */
MYRIAD_API int myriad_fleet_close(myriad_fleet_t *f);

/*
 * A kind of task. The fleet runs an entry of this kind as a myriad task
 * whose state is 'state_size' zeroed bytes: 'init' fills it from the
 * entry's input and its last checkpoint (NULL, 0 when none: the first
 * attempt, or none was saved), then 'step' runs as a myriad step function
 * (myriad/task.h) with that state, until it returns MYRIAD_DONE. A step
 * may call myriad_fleet_checkpoint() and myriad_fleet_result(). 'fini'
 * (may be NULL) frees what init or the steps allocated; it runs once,
 * however the task ends. 'input' and 'ckpt' are valid only during init.
 */
struct myriad_fleet_kind {
	size_t sz;
	const char *name;
	size_t state_size;
	int (*init)(void *state, const void *input, size_t input_len,
		    const void *ckpt, size_t ckpt_len);
	myriad_step_fn step;
	void (*fini)(void *state);
};

/*
 * Register a kind (copied; the name too). Call before joining a queue.
 * 0, -EINVAL (no name or step, sz too small), -EEXIST, -ENOSPC (64 kinds).
 * An entry whose kind is not registered goes to the dead-letter stream.
 */
MYRIAD_API int myriad_fleet_kind_register(myriad_fleet_t *f,
					  const struct myriad_fleet_kind *k);

/*
 * Create queue 'name' with 'shards' shards (1 to 1024), or agree with the
 * one that exists. Returns its shard count (the existing one's, if it
 * already existed), or -EINVAL, -ENOTCONN, -EPROTO (Redis refused).
 */
MYRIAD_API int myriad_fleet_queue_create(myriad_fleet_t *f, const char *name,
					 unsigned shards);

/* The shard count of queue 'name', or -ENOENT (no such queue), -ENOTCONN. */
MYRIAD_API int myriad_fleet_queue_shards(myriad_fleet_t *f, const char *name);

/* A task to submit. 'input' is bytes (may be NULL with input_len 0). */
struct myriad_fleet_entry {
	const char *id;
	const char *kind;
	const void *input;
	size_t input_len;
};

/*
 * Submit 'n' tasks to queue 'name' in one pipeline (a thread; blocks until
 * Redis answered). Task id 'id' goes to shard hash(id) % N. A shard that
 * holds 'max_len' entries or more (0: 1,000,000) takes no more: work is
 * never trimmed. rc (may be NULL) gets each entry's result: 0 added,
 * -EAGAIN (its shard is full: try again later), or an error. Returns the
 * number added, or -ENOENT (no such queue), -EINVAL, -ENOTCONN, -EPROTO.
 */
MYRIAD_API int myriad_fleet_submit(myriad_fleet_t *f, const char *name,
				   const struct myriad_fleet_entry *e, size_t n,
				   size_t max_len, int *rc);

/* Options for myriad_fleet_join(); sz first, zero fields default. */
struct myriad_fleet_join_opts {
	size_t sz;
	/* Consumer name (NULL: host-pid-random). Unique per process. */
	const char *consumer;
	/* Entries held at once: running or with a result not yet acked
	 * (default 256). */
	unsigned max_inflight;
	/* Do not pull while this many tasks are runnable (default 4096). */
	unsigned max_runnable;
	/*
	 * Lease (default 30 s): an entry this member runs is refreshed every
	 * third of it; one idle longer (its machine died) is taken over.
	 */
	uint64_t lease_ns;
	/* BLOCK of each read when the queue is empty (default 100 ms). */
	unsigned block_ms;
	/* Deliveries after which an entry is dead-lettered (default 5). */
	unsigned max_deliveries;
};

/*
 * Join queue 'name' as a consumer and start pulling and running its tasks
 * on the fleet's runtime. Returns the member, or NULL with *err: -ENOENT
 * (no such queue), -EINVAL, -ENOTCONN, -ENOMEM.
 */
MYRIAD_API myriad_fleet_member_t *
myriad_fleet_join(myriad_fleet_t *f, const char *name,
		  const struct myriad_fleet_join_opts *o, int *err);

/*
 * Drain and leave: stop pulling, let running tasks finish (for at most
 * 'timeout_ns'; < 0 forever), write their results and acks, then free the
 * member. Tasks still running at the timeout are stopped between steps
 * (their fini runs) without a result: their entries stay pending and are
 * taken over by other machines after the lease, from their last
 * checkpoint. Returns 0 (everything finished and acked), -ETIMEDOUT (some
 * were left for takeover), -EINVAL, -EDEADLK.
 */
MYRIAD_API int myriad_fleet_leave(myriad_fleet_member_t *m, int64_t timeout_ns);

/*
 * Ask a member to drain (stop pulling) without waiting; safe from any
 * thread (not from a signal handler). myriad_fleet_leave() still frees it.
 */
MYRIAD_API void myriad_fleet_drain(myriad_fleet_member_t *m);

/* A member's counters (monotonic since join). */
struct myriad_fleet_stats {
	size_t sz;
	uint64_t pulled;     /* entries read (new deliveries) */
	uint64_t claimed;    /* entries taken over from dead consumers */
	uint64_t done;	     /* results written and acked */
	uint64_t dead;	     /* entries sent to the dead-letter stream */
	uint64_t lost;	     /* leases lost to another consumer */
	uint64_t running;    /* tasks running now */
	uint64_t reconnects; /* connections made again after a loss */
	uint64_t timeouts;   /* commands that timed out */
};

/* Fill 's' (s->sz set by the caller). 0 or -EINVAL. */
MYRIAD_API int myriad_fleet_stats(myriad_fleet_member_t *m,
				  struct myriad_fleet_stats *s);

/*
 * From a fleet task's step ('self' as given to the kind's step): save a
 * checkpoint, 'len' bytes copied. The first call sends it and returns
 * -EAGAIN: return MYRIAD_PENDING and call again with the same arguments;
 * it then returns 0 once Redis has stored it (or a negative errno: the
 * task may go on; a takeover then starts from an older checkpoint).
 * A taken-over task's init receives the last checkpoint stored. -EINVAL
 * when self is not a fleet task.
 */
MYRIAD_API int myriad_fleet_checkpoint(myriad_task_t *self, const void *buf,
				       size_t len);

/*
 * From a fleet task's step: set its result ('len' bytes copied, replacing
 * an earlier one) and status (0 success; another value is kept as the
 * result's status, e.g. a negative errno for a task that failed: it is
 * not retried). Written when the task returns MYRIAD_DONE. 0 or -EINVAL,
 * -ENOMEM.
 */
MYRIAD_API int myriad_fleet_result(myriad_task_t *self, int status,
				   const void *buf, size_t len);

/* From a fleet task's step: its task id, and which delivery this is
 * (1 the first). NULL / 0 when self is not a fleet task. */
MYRIAD_API const char *myriad_fleet_task_id(myriad_task_t *self);
MYRIAD_API unsigned myriad_fleet_attempt(myriad_task_t *self);

/* A result read back with myriad_fleet_results(). */
struct myriad_fleet_result {
	const char *stream_id; /* of the results stream */
	const char *id;	       /* the task id */
	unsigned attempt;
	int status;
	const void *output;
	size_t output_len;
	const char *consumer;
};

/*
 * Read up to 'count' results of queue 'name' after results-stream id
 * 'after' ("0" or NULL: from the start), calling fn for each (its
 * strings are valid during the call; a nonzero return stops). Returns the
 * number read, or -ENOENT, -ENOTCONN, -EPROTO.
 */
MYRIAD_API int myriad_fleet_results(
	myriad_fleet_t *f, const char *name, const char *after, size_t count,
	int (*fn)(void *arg, const struct myriad_fleet_result *r), void *arg);

/*
 * The state of queue 'name' as a JSON text (malloc'd; free() it): per
 * shard its length, lag, pending entries per consumer; the results and
 * dead-letter streams' lengths. NULL with *err: -ENOENT, -ENOTCONN.
 */
MYRIAD_API char *myriad_fleet_status_json(myriad_fleet_t *f, const char *name,
					  int *err);

#ifdef __cplusplus
}
#endif
#endif
