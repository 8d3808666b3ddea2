/* SPDX-License-Identifier: MIT */
/*
 * io/driver.c: io/ as the scheduler's driver: the table of callbacks the
 * workers park on and tick, the I/O state it sets up per runtime and per
 * worker, and myriad_rt_create(), which builds a runtime on it.
 */
#include <stdlib.h>
#include <string.h>

#include "io/record.h"

/*
 * io/ sits above sched/: it names the scheduler, never the other way
 * round. So the public myriad_rt_create() is defined here, and hands
 * sched/'s rt_create() this driver (sched/driver.h).
 */
myriad_rt_t *myriad_rt_create(const struct myriad_rt_opts *opts, int *err)
{
	return rt_create(opts, &io_driver, err);
}

static int io_rt_init(struct myriad_rt *rt, const struct myriad_rt_opts *opts)
{
	unsigned entries = 256;
	struct io_rt *ir;
	int r;

	if (OPT_HAS(opts, ring_entries) && opts->ring_entries) {
		entries = opts->ring_entries;
		if (entries < 2 || entries > 32768 || (entries & (entries - 1)))
			return -EINVAL;
	}
	ir = calloc(1, sizeof(*ir));
	if (!ir)
		return -ENOMEM;
	ir->ring_entries = entries;
	pthread_mutex_init(&ir->olock, NULL);
	pthread_mutex_init(&ir->offload_lock, NULL);
	rt->drv_ctx = ir;
	r = io_uring_queue_init(16, &ir->oring, 0);
	if (r < 0)
		return r;
	ir->oring_ok = true;
	return 0;
}

static void io_rt_fini(struct myriad_rt *rt)
{
	struct io_rt *ir = rt_io(rt);

	if (!ir)
		return;
	if (ir->oring_ok)
		io_uring_queue_exit(&ir->oring);
	pthread_mutex_destroy(&ir->olock);
	pthread_mutex_destroy(&ir->offload_lock);
	free(ir);
	rt->drv_ctx = NULL;
}

/* In the worker's thread: with DEFER_TASKRUN its ring must be created here. */
static int io_worker_init(struct worker *w)
{
	struct io_worker *iw = aligned_alloc(CACHELINE, sizeof(*iw));
	int r;

	if (!iw)
		return -ENOMEM;
	memset(iw, 0, sizeof(*iw));
	w->drv = iw;
	r = ring_init(w, rt_io(w->rt)->ring_entries);
	if (r < 0)
		return r;
	r = timers_init(w);
	if (r < 0)
		return r;
	/* The operations' counts and lists start zeroed. */
	atomic_init(&iw->bufs_back, 0);
	return 0;
}

static void io_worker_fini(struct worker *w)
{
	if (!w->drv)
		return;
	ring_fini(w);
	timers_fini(w);
	free(w->drv);
	w->drv = NULL;
}

/* Every maintenance tick: submit and reap, then the timers that are due. */
static void io_maintain(struct worker *w)
{
	io_tick(w);
	ring_reap(w);
	timers_poll(w);
}

static void io_stop_worker(struct worker *w)
{
	if (w->drv && worker_io(w)->uring_ok)
		io_drain(w);
}

const struct sched_driver io_driver = {
	.rt_init = io_rt_init,
	.rt_fini = io_rt_fini,
	.worker_init = io_worker_init,
	.worker_fini = io_worker_fini,
	.park = ring_park,
	.unpark = ring_unpark,
	.poll = io_tick,
	.maintain = io_maintain,
	.drain = io_stop_worker,
	.stop = offload_stop,
	.task_cancel = io_task_cancel,
	.task_finish = io_task_finish,
	.timer_release = timer_release,
};
