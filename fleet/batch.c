/* SPDX-License-Identifier: MIT */
/*
 * fleet/batch.c: commands sent together (one pipeline) and waited for
 * together, by a thread (a condition variable) or a task (a waker), with
 * their replies copied out of hiredis, which frees its own.
 *
 * The last reply is announced under the waiter's lock, and the waiter
 * reads 'left' under the same lock: once it sees 0 the wake has already
 * been made, so a task that then finishes is never woken afterwards.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/internal.h"

redisReply *freply_dup(const redisReply *r)
{
	redisReply *d = calloc(1, sizeof(*d));
	size_t i;

	if (!d)
		return NULL;
	d->type = r->type;
	d->integer = r->integer;
	if (r->str) {
		d->str = malloc(r->len + 1);
		if (!d->str)
			goto err;
		memcpy(d->str, r->str, r->len);
		d->str[r->len] = 0;
		d->len = r->len;
	}
	if (r->elements) {
		d->element = calloc(r->elements, sizeof(*d->element));
		if (!d->element)
			goto err;
		d->elements = r->elements;
		for (i = 0; i < r->elements; i++) {
			d->element[i] = freply_dup(r->element[i]);
			if (!d->element[i])
				goto err;
		}
	}
	return d;
err:
	freeReplyObject(d);
	return NULL;
}

static void slot_done(struct fcmd *cmd, redisReply *r, int err)
{
	struct fslot *s = cmd->arg;
	struct fbatch *b = s->b;

	if (r) {
		s->r = freply_dup(r);
		if (!s->r)
			err = -ENOMEM;
	}
	s->err = err;
	pthread_mutex_lock(b->w.lock);
	if (--b->left == 0) {
		if (b->w.cv)
			pthread_cond_broadcast(b->w.cv);
		else
			myriad_waker_wake(b->w.waker);
	}
	pthread_mutex_unlock(b->w.lock);
}

int fbatch_init(struct fbatch *b, unsigned cap, struct fwait w)
{
	memset(b, 0, sizeof(*b));
	b->w = w;
	b->cap = cap ? cap : 1;
	b->s = calloc(b->cap, sizeof(*b->s));
	return b->s ? 0 : -ENOMEM;
}

int fbatch_add(struct fbatch *b, int argc, const char **argv,
	       const size_t *lens)
{
	struct fslot *s;
	char *buf;
	int len;

	if (b->n == b->cap) {
		unsigned cap = b->cap * 2;
		struct fslot *ns = realloc(b->s, cap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		memset(ns + b->cap, 0, (cap - b->cap) * sizeof(*ns));
		b->s = ns;
		b->cap = cap;
	}
	len = redisFormatCommandArgv(&buf, argc, argv, lens);
	if (len < 0)
		return -ENOMEM;
	s = &b->s[b->n++];
	memset(s, 0, sizeof(*s));
	s->cmd.buf = buf;
	s->cmd.len = (size_t)len;
	return 0;
}

int fbatch_addv(struct fbatch *b, ...)
{
	const char *argv[32];
	va_list ap;
	int argc = 0;
	const char *a;

	va_start(ap, b);
	while ((a = va_arg(ap, const char *)) && argc < 32)
		argv[argc++] = a;
	va_end(ap);
	return fbatch_add(b, argc, argv, NULL);
}

void fbatch_send(struct fbatch *b, struct fconn *c)
{
	unsigned i;
	int r;

	pthread_mutex_lock(b->w.lock);
	b->left = b->n;
	pthread_mutex_unlock(b->w.lock);
	for (i = 0; i < b->n; i++) {
		struct fslot *s = &b->s[i];

		s->b = b;
		s->cmd.done = slot_done;
		s->cmd.arg = s;
		r = fconn_submit(c, &s->cmd);
		if (r < 0)
			slot_done(&s->cmd, NULL, r);
	}
}

bool fbatch_done(struct fbatch *b)
{
	return b->left == 0;
}

void fbatch_wait(struct fbatch *b)
{
	pthread_mutex_lock(b->w.lock);
	while (b->left)
		pthread_cond_wait(b->w.cv, b->w.lock);
	pthread_mutex_unlock(b->w.lock);
}

void fbatch_free(struct fbatch *b)
{
	unsigned i;

	for (i = 0; i < b->n; i++) {
		free(b->s[i].cmd.buf);
		if (b->s[i].r)
			freeReplyObject(b->s[i].r);
	}
	free(b->s);
	b->s = NULL;
	b->n = b->cap = 0;
}

int fbatch_err(struct fbatch *b, unsigned i, const char **msg)
{
	struct fslot *s = &b->s[i];

	if (s->err)
		return s->err;
	if (s->r->type == REDIS_REPLY_ERROR) {
		if (msg)
			*msg = s->r->str;
		return -EPROTO;
	}
	return 0;
}

redisReply *fcommand(struct fconn *c, int *err, ...)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct fwait w = { .lock = &lock, .cv = &cv };
	const char *argv[32];
	struct fbatch b;
	redisReply *r = NULL;
	const char *a;
	va_list ap;
	int argc = 0, e;

	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && argc < 32)
		argv[argc++] = a;
	va_end(ap);
	e = fbatch_init(&b, 1, w);
	if (!e)
		e = fbatch_add(&b, argc, argv, NULL);
	if (!e) {
		fbatch_send(&b, c);
		fbatch_wait(&b);
		e = b.s[0].err;
		r = b.s[0].r;
		b.s[0].r = NULL;
	}
	fbatch_free(&b);
	*err = e;
	return r;
}
