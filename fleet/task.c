/* SPDX-License-Identifier: MIT */
/*
 * fleet/task.c: the task that runs one entry: its kind's init and steps,
 * checkpoints and results from inside them, and how it hands the entry
 * back to its member.
 *
 * The task's state is a header (struct ftask) followed by the kind's
 * state. A task never finishes while its checkpoint is in flight (the
 * command's end wakes it under the member lock), and it leaves the
 * member's 'running' list under that lock before it returns MYRIAD_DONE,
 * so that whoever wakes it through that list (a drain) touches a live task.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/internal.h"

#define FTASK_MAGIC 0x666c7431u

enum { CK_IDLE, CK_FLIGHT, CK_DONE };

struct ftask {
	uint32_t magic;
	bool inited, ending, fini_done;
	int ck_state; /* member lock */
	int ck_rc;
	struct myriad_fleet_member *m;
	struct fentry *e;
	struct fcmd ck;
	myriad_waker_t waker;
	alignas(16) unsigned char user[];
};

int ftask_spawn(struct myriad_fleet_member *m, struct fentry *e)
{
	size_t size = sizeof(struct ftask) + e->kind->state_size;
	struct ftask *t;
	int r;

	t = calloc(1, size);
	if (!t)
		return -ENOMEM;
	t->magic = FTASK_MAGIC;
	t->m = m;
	t->e = e;
	pthread_mutex_lock(&m->lock);
	fent_push(&m->running, e);
	m->nrunning++;
	pthread_mutex_unlock(&m->lock);
	/* Detached: the member never joins; the entry carries the end. */
	r = myriad_rt_spawn(m->f->rt, ftask_step, t, size, NULL);
	free(t);
	if (r < 0) {
		pthread_mutex_lock(&m->lock);
		fent_del(&m->running, e);
		m->nrunning--;
		pthread_mutex_unlock(&m->lock);
	}
	return r;
}

static struct ftask *ftask_of(myriad_task_t *self)
{
	struct ftask *t = self ? myriad_task_state(self) : NULL;

	return t && t->magic == FTASK_MAGIC ? t : NULL;
}

/* The task ends: no result when 'drop' (a lost lease, an abandon). */
static int finish(myriad_task_t *self, struct ftask *t, bool drop)
{
	struct myriad_fleet_member *m = t->m;
	struct fentry *e = t->e;

	t->ending = true;
	if (drop)
		e->status = INT32_MIN; /* the member writes nothing */
	pthread_mutex_lock(&m->lock);
	if (t->ck_state == CK_FLIGHT) {
		pthread_mutex_unlock(&m->lock);
		return MYRIAD_PENDING; /* its end wakes us */
	}
	pthread_mutex_unlock(&m->lock);
	if (t->inited && !t->fini_done && e->kind->fini)
		e->kind->fini(t->user);
	t->fini_done = true;
	pthread_mutex_lock(&m->lock);
	fent_del(&m->running, e);
	m->nrunning--;
	e->task = NULL;
	e->next = m->done;
	m->done = e;
	myriad_waker_wake(m->waker);
	pthread_mutex_unlock(&m->lock);
	(void)self;
	return MYRIAD_DONE;
}

int ftask_step(myriad_task_t *self, void *state)
{
	struct ftask *t = state;
	struct myriad_fleet_member *m = t->m;
	struct fentry *e = t->e;
	bool abandon;
	int r;

	pthread_mutex_lock(&m->lock);
	e->task = self;
	abandon = m->abandon;
	pthread_mutex_unlock(&m->lock);
	if (t->ending)
		return finish(self, t, false); /* the status says it */
	if (abandon || atomic_load(&e->lost))
		return finish(self, t, true);
	if (!t->inited) {
		t->inited = true;
		r = e->kind->init
			    ? e->kind->init(t->user, e->input, e->input_len,
					    e->ckpt, e->ckpt_len)
			    : 0;
		free(e->ckpt);
		e->ckpt = NULL;
		e->ckpt_len = 0;
		if (r < 0) {
			e->status = r;
			free(e->output);
			e->output = strdup("init failed");
			e->output_len = e->output ? strlen(e->output) : 0;
			return finish(self, t, false);
		}
	}
	r = e->kind->step(self, t->user);
	if (r == MYRIAD_DONE)
		return finish(self, t, false);
	return r;
}

static void ck_done(struct fcmd *cmd, redisReply *r, int err)
{
	struct ftask *t = cmd->arg;
	struct myriad_fleet_member *m = t->m;

	pthread_mutex_lock(&m->lock);
	t->ck_rc = err ? err : r->type == REDIS_REPLY_ERROR ? -EPROTO : 0;
	t->ck_state = CK_DONE;
	myriad_waker_wake(t->waker);
	pthread_mutex_unlock(&m->lock);
}

int myriad_fleet_checkpoint(myriad_task_t *self, const void *buf, size_t len)
{
	struct ftask *t = ftask_of(self);
	struct myriad_fleet_member *m;
	const char *argv[4];
	size_t lens[4];
	char *fmt;
	int n, r;

	if (!t || (!buf && len))
		return -EINVAL;
	m = t->m;
	pthread_mutex_lock(&m->lock);
	if (t->ck_state == CK_FLIGHT) {
		pthread_mutex_unlock(&m->lock);
		return -EAGAIN;
	}
	if (t->ck_state == CK_DONE) {
		t->ck_state = CK_IDLE;
		r = t->ck_rc;
		pthread_mutex_unlock(&m->lock);
		return r;
	}
	pthread_mutex_unlock(&m->lock);
	argv[0] = "HSET";
	argv[1] = m->ckeys[t->e->shard];
	argv[2] = t->e->tid;
	argv[3] = buf ? buf : "";
	lens[0] = 4;
	lens[1] = strlen(argv[1]);
	lens[2] = strlen(argv[2]);
	lens[3] = len;
	n = redisFormatCommandArgv(&fmt, 4, argv, lens);
	if (n < 0)
		return -ENOMEM;
	memset(&t->ck, 0, sizeof(t->ck));
	t->ck.buf = fmt;
	t->ck.len = (size_t)n;
	t->ck.done = ck_done;
	t->ck.arg = t;
	t->waker = myriad_task_waker(self);
	t->e->ckpt_saved = true;
	pthread_mutex_lock(&m->lock);
	t->ck_state = CK_FLIGHT;
	pthread_mutex_unlock(&m->lock);
	r = fconn_submit(&m->f->cmd, &t->ck);
	if (r < 0) {
		pthread_mutex_lock(&m->lock);
		t->ck_state = CK_IDLE;
		pthread_mutex_unlock(&m->lock);
		return r;
	}
	return -EAGAIN;
}

int myriad_fleet_result(myriad_task_t *self, int status, const void *buf,
			size_t len)
{
	struct ftask *t = ftask_of(self);
	char *o;

	if (!t || (!buf && len) || status == INT32_MIN)
		return -EINVAL;
	o = malloc(len + 1);
	if (!o)
		return -ENOMEM;
	if (len)
		memcpy(o, buf, len);
	o[len] = 0;
	free(t->e->output);
	t->e->output = o;
	t->e->output_len = len;
	t->e->status = status;
	return 0;
}

const char *myriad_fleet_task_id(myriad_task_t *self)
{
	struct ftask *t = ftask_of(self);

	return t ? t->e->tid : NULL;
}

unsigned myriad_fleet_attempt(myriad_task_t *self)
{
	struct ftask *t = ftask_of(self);

	return t ? t->e->attempt : 0;
}
