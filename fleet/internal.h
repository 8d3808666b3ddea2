/* SPDX-License-Identifier: MIT */
/*
 * fleet/internal.h: what the files of the fleet layer share: the Redis
 * connection and its commands, reply batches, queues, members and entries.
 *
 * The layer reaches other machines through Redis Streams. Its files:
 *   conn.c    one Redis connection: hiredis's async context driven by a
 *             myriad task (io_uring polls, the timer wheel), command
 *             timeouts, reconnect with backoff
 *   batch.c   commands sent together and waited for together (by a thread
 *             or a task), replies copied out of hiredis
 *   fleet.c   the public handle: URL, open/close, kinds, queue creation,
 *             submit, status, results
 *   status.c  reading a queue back: results, its state as JSON
 *   join.c    joining a queue, draining and leaving, counters
 *   member.c  the member task: intake by capacity, results, acks, dead
 *             letters, the end of a drain
 *   lease.c   leases (heartbeats of one's own entries), takeover of a dead
 *             machine's entries, removal of dead consumers
 *   task.c    the task that runs one entry with its kind's step,
 *             checkpoints and results from inside it
 */
#ifndef MYRIAD_FLEET_INTERNAL_H
#define MYRIAD_FLEET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>

#include <myriad/fleet.h>

#include "base/random.h"
#include "io/record.h"

/* ---- conn.c ---- */

struct fcmd;
/*
 * A command's end, called once on the connection's driver task: 'r' the
 * reply (an error reply too; valid only during the call) and err 0, or r
 * NULL and err -ETIMEDOUT (no reply in time: the command may or may not
 * have run), -ECONNRESET (the connection broke after it was sent: the
 * same), -ENOTCONN (Redis stayed unreachable: it never ran),
 * -ESHUTDOWN (the connection closed: it never ran).
 */
typedef void (*fcmd_fn)(struct fcmd *c, redisReply *r, int err);

struct fcmd {
	struct fcmd *next;
	char *buf; /* the formatted command; the connection frees it */
	size_t len;
	uint64_t deadline_ns; /* set by the connection */
	bool blocking;	      /* BLOCK ms inside: its timeout is longer */
	uint64_t extra_ns;    /* added to the command timeout */
	fcmd_fn done;
	void *arg;
};

struct fsock;

struct fconn {
	/* Set at open, read-only afterwards. */
	char host[256];
	int port;
	char path[108]; /* a unix socket when path[0] */
	struct myriad_fleet_opts o;
	myriad_rt_t *rt;
	myriad_handle_t *handle;
	myriad_waker_t waker;

	/* Shared with submitters (lock). */
	pthread_mutex_t lock;
	struct fcmd *qhead, *qtail; /* submitted, not yet given to hiredis */
	unsigned nq;
	bool stop;

	/* The driver task's own. */
	myriad_task_t *self;
	redisAsyncContext *ac;
	struct fsock *sock;	       /* the live context's socket */
	struct fsock *socks;	       /* all, freed when their poll ends */
	_Atomic(struct io_op *) ready; /* finished polls */
	struct fcmd *fhead, *ftail;    /* given to hiredis, in reply order */
	int state;		       /* CONN_* */
	uint64_t retry_at, connect_deadline;
	unsigned fails; /* connect attempts failed in a row */
	uint64_t rng;
	myriad_timer_t tm;

	/* Counters and the last error, for stats and messages. */
	_Atomic int up;	     /* 1 while connected */
	_Atomic int ever_up; /* 1 once connected */
	_Atomic uint64_t connects, drops, timeouts;
	_Atomic int last_err;
};

enum { CONN_DOWN, CONN_CONNECTING, CONN_UP, CONN_STOPPED };

/* Start a connection's driver task on 'rt'; 0 or -errno. */
int fconn_open(struct fconn *c, myriad_rt_t *rt,
	       const struct myriad_fleet_opts *o, const char *host, int port,
	       const char *path);
/* Stop it: queued commands end with -ESHUTDOWN; join the driver. */
void fconn_close(struct fconn *c);
/*
 * Queue a command formatted in c->buf (the connection owns the buffer
 * from now on, whatever is returned) from any thread. 0, -EAGAIN (the
 * queue is full: Redis has been away a while), -ESHUTDOWN. On an error
 * 'done' is not called.
 */
int fconn_submit(struct fconn *c, struct fcmd *cmd);

/* ---- batch.c ---- */

/* Where a batch's last reply is announced: a thread or a task. */
struct fwait {
	pthread_mutex_t *lock;
	pthread_cond_t *cv;   /* a thread waits here, or */
	myriad_waker_t waker; /* a task is woken */
};

struct fslot {
	struct fcmd cmd;
	struct fbatch *b;
	redisReply *r; /* a copy, owned by the batch; NULL with err */
	int err;
};

struct fbatch {
	struct fwait w;
	unsigned n, left; /* 'left' under w.lock */
	unsigned cap;
	struct fslot *s;
};

int fbatch_init(struct fbatch *b, unsigned cap, struct fwait w);
/* Format command 'i' (the next one); 0 or -ENOMEM. */
int fbatch_add(struct fbatch *b, int argc, const char **argv,
	       const size_t *lens);
/* Like fbatch_add with printf-free string arguments ending in NULL. */
int fbatch_addv(struct fbatch *b, ...);
/* Send every command; those refused end with their error at once. */
void fbatch_send(struct fbatch *b, struct fconn *c);
/* A thread waits for every reply. */
void fbatch_wait(struct fbatch *b);
/* True once every reply came (call under w.lock or after wait). */
bool fbatch_done(struct fbatch *b);
/* Free the replies and slots; the batch may be reused after init. */
void fbatch_free(struct fbatch *b);
/* Reply 'i' as an error: 0 when it is a non-error reply, else -errno
 * (-EPROTO for an error reply, with its text in *msg if msg). */
int fbatch_err(struct fbatch *b, unsigned i, const char **msg);

redisReply *freply_dup(const redisReply *r);
/* A thread's one-shot: run a command and wait; the copied reply or NULL
 * with *err. */
redisReply *fcommand(struct fconn *c, int *err, ...);

/* ---- fleet.c ---- */

#define FLEET_KINDS_MAX 64
#define FLEET_GROUP "myriad"

struct myriad_fleet {
	struct myriad_fleet_opts o;
	myriad_rt_t *rt;
	struct fconn cmd;     /* everything but blocking reads */
	struct fconn intake;  /* XREADGROUP ... BLOCK */
	pthread_mutex_t lock; /* kinds */
	struct myriad_fleet_kind kinds[FLEET_KINDS_MAX];
	char *kind_names[FLEET_KINDS_MAX];
	unsigned nkinds;
};

const struct myriad_fleet_kind *fleet_kind(struct myriad_fleet *f,
					   const char *name, size_t len);
/* A queue name we accept: no braces (they are the hash tag). */
bool fleet_name_ok(const char *name);
/* The number of shards of queue 'name' (its meta hash), -ENOENT. */
int fleet_shards(struct myriad_fleet *f, const char *name);

/* ---- member.c / lease.c / task.c ---- */

/* One entry this machine runs, from intake until its result is acked. */
struct fentry {
	struct fentry *next, *prev; /* the member's list it is on */
	unsigned shard;
	char eid[48]; /* the stream entry id */
	char *tid;    /* the task id */
	const struct myriad_fleet_kind *kind;
	char *kind_name;
	char *input, *ckpt;
	size_t input_len, ckpt_len;
	unsigned attempt; /* 1 + deliveries before this one */
	/* Set by the task before it finishes, read by the member after. */
	int status;
	char *output;
	size_t output_len;
	char *reason;	     /* a dead letter's */
	bool ckpt_saved;     /* a checkpoint may exist: delete it at the end */
	_Atomic bool lost;   /* another consumer owns it now */
	myriad_task_t *task; /* while it runs (member lock) */
};

struct myriad_fleet_member {
	struct myriad_fleet *f;
	char *name;
	char consumer[96];
	unsigned nshards;
	char **skeys, **ckeys; /* {name:K} and {name:K}:ckpt */
	char *rkey, *dkey;     /* {name}:results, {name}:dead */
	struct myriad_fleet_join_opts o;
	myriad_handle_t *handle;
	myriad_waker_t waker;
	myriad_task_t *self;

	pthread_mutex_t lock;	/* the lists below, batches' 'left' */
	pthread_cond_t cv;	/* leave() waits here */
	struct fentry *running; /* spawned, not finished */
	struct fentry *done;	/* finished: results to write */
	unsigned nrunning;
	bool draining, abandon, exited;

	/* The member task's own. */
	struct fentry *towrite; /* finished: results to add */
	struct fentry *writing; /* results being added */
	struct fentry *acking;	/* results added, acks in flight */
	struct fentry *toack;	/* results added, ack to send */
	struct fentry *spawnq;	/* read, waiting for a spawn */
	unsigned inflight;	/* entries held: running to acked */
	unsigned rr;		/* the next shard to read first */
	unsigned crr;		/* the next shard to claim on */
	char **cursor;		/* XAUTOCLAIM cursors per shard */
	struct fbatch rd, res, ack, hb, cl, info, gc;
	bool rd_on, res_on, ack_on, hb_on, cl_on, info_on, gc_on;
	struct fentry **claimed; /* entries 'info' is about */
	unsigned nclaimed;
	uint64_t hb_at, cl_at, gc_at;
	myriad_timer_t tm;
	uint64_t rng;

	_Atomic uint64_t n_pulled, n_done, n_dead, n_claimed, n_lost, n_errors;
};

/* member.c */
void fent_free(struct fentry *e);
void fent_push(struct fentry **l, struct fentry *e);
void fent_del(struct fentry **l, struct fentry *e);
/* lease.c: start/finish the heartbeat, claim and cleanup batches */
void lease_tick(struct myriad_fleet_member *m, uint64_t now, bool pull);
uint64_t lease_next(struct myriad_fleet_member *m, bool pull);
bool lease_busy(struct myriad_fleet_member *m);
/* task.c */
int ftask_spawn(struct myriad_fleet_member *m, struct fentry *e);
int ftask_step(myriad_task_t *self, void *state);
/* member.c: an entry from a stream reply [id, [k, v, ...]]; hand it on */
struct fentry *fent_parse(struct myriad_fleet_member *m, unsigned shard,
			  const redisReply *en);
void fent_start(struct myriad_fleet_member *m, struct fentry *e);
int member_step(myriad_task_t *self, void *state);

#endif
