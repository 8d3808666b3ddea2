/* SPDX-License-Identifier: MIT */
/*
 * io/offload.c: a small pool of threads for calls that have no io_uring
 * form (getaddrinfo, a library that blocks). A task queues a record; a
 * pool thread runs the call and completes the record the way the ring's
 * owner completes an operation (record.c), so the task is woken the same
 * way and cannot finish while the call runs.
 */
#include <stdlib.h>

#include "io/internal.h"
#include "sched/probes.h"

/*
 * Why a call runs once and its task outlives it:
 * 1. myriad_io_blocking() counts the record in the task's operations (as
 *    io/record.c:2) before queueing it under the pool's lock, so the task
 *    cannot finish until the record completes.
 * 2. A pool thread takes a record off the queue under the lock: each is
 *    taken once. If the task was cancelled by then, fn is not run.
 * 3. The thread stores the return value, publishes DONE with a release
 *    store, then takes the record off the task's count and wakes it in one
 *    compare-and-swap (task_op_done()); it touches neither afterwards.
 * 4. At shutdown, after the workers have stopped, the threads finish the
 *    call they run and exit; records still queued never run (their tasks
 *    are freed with the runtime).
 */

#define OFFLOAD_THREADS_DEFAULT 4
#define OFFLOAD_THREADS_MAX 64

struct offload {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct io_op *head, *tail;
	bool stop;
	unsigned nthreads;
	pthread_t threads[];
};

static void *offload_main(void *arg)
{
	struct offload *p = arg;
	struct io_op *op;
	int why;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		op = p->head;
		p->head = op->u.blk.qnext;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);

		/* Step 2. */
		why = task_cancel_reason(op->task);
		if (!why) {
			PROBE2(blocking_start, op, op->u.blk.fn);
			op->u.blk.ret = op->u.blk.fn(op->u.blk.arg);
			PROBE2(blocking_end, op, op->u.blk.ret);
		}
		/* Step 3 (record.c's io_ext_complete()). */
		io_ext_complete(NULL, op, why);

		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static unsigned pool_size(void)
{
	const char *e = getenv("MYRIAD_OFFLOAD_THREADS");
	long n;
	char *end;

	if (!e || !*e)
		return OFFLOAD_THREADS_DEFAULT;
	n = strtol(e, &end, 10);
	if (*end || n < 1 || n > OFFLOAD_THREADS_MAX)
		return OFFLOAD_THREADS_DEFAULT;
	return (unsigned)n;
}

/* Start the pool on first use; under the runtime's offload_lock. */
static int offload_start(struct myriad_rt *rt)
{
	unsigned n = pool_size(), i;
	struct offload *p;
	pthread_attr_t attr, *ap = NULL;
	bool attr_ok;
	int r;

	p = calloc(1, sizeof(*p) + n * sizeof(p->threads[0]));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	/*
	 * Started from a worker, which MYRIAD_POLICY_PIN may have pinned to
	 * one CPU: a new thread inherits that. The pool gets the whole mask.
	 */
	attr_ok = rt->pin_cpu && pthread_attr_init(&attr) == 0;
	if (attr_ok && pthread_attr_setaffinity_np(&attr, sizeof(rt->pin_mask),
						   &rt->pin_mask) == 0)
		ap = &attr;
	for (i = 0; i < n; i++) {
		r = -pthread_create(&p->threads[i], ap, offload_main, p);
		if (r < 0)
			break;
		p->nthreads++;
	}
	if (attr_ok)
		pthread_attr_destroy(&attr);
	if (!p->nthreads) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return r;
	}
	rt_io(rt)->offload = p;
	return 0;
}

static int offload_submit(struct myriad_rt *rt, struct io_op *op)
{
	struct io_rt *ir = rt_io(rt);
	struct offload *p;
	int r = 0;

	pthread_mutex_lock(&ir->offload_lock);
	if (!ir->offload)
		r = offload_start(rt);
	p = ir->offload;
	pthread_mutex_unlock(&ir->offload_lock);
	if (r < 0)
		return r;
	op->u.blk.qnext = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->u.blk.qnext = op;
	else
		p->head = op;
	p->tail = op;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Step 4; the workers are joined. */
void offload_stop(struct myriad_rt *rt)
{
	struct io_rt *ir = rt_io(rt);
	struct offload *p = ir->offload;
	unsigned i;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	ir->offload = NULL;
}

int64_t myriad_io_blocking(myriad_task_t *self, myriad_io_t *rec,
			   myriad_blocking_fn fn, void *arg)
{
	struct worker *w = cur_worker();
	struct io_op *op = (struct io_op *)rec;
	int64_t ret;
	int r = io_op_enter(w, self, op, IOK_BLOCKING);

	if (r == 0) {
		/* res: 0, or the reason it never ran (step 2). */
		ret = io_op_result(self, op);
		return ret < 0 ? ret : op->u.blk.ret;
	}
	if (r != 1)
		return r;
	if (!fn || (op->oflags & OF_DEADLINE))
		return -EINVAL;
	op->u.blk.fn = fn;
	op->u.blk.arg = arg;
	op->u.blk.ret = 0;
	/* Counted like an operation (step 1), not on a ring. */
	ext_arm(w, self, op, IOK_BLOCKING);
	r = offload_submit(w->rt, op);
	if (r < 0) {
		atomic_fetch_sub_explicit(&self->state, TS_OPS_ONE,
					  memory_order_relaxed);
		atomic_store_explicit(&op->st, OP_IDLE, memory_order_relaxed);
		op_list_del(self, op);
		return r;
	}
	return -EAGAIN;
}
