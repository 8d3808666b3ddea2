/* SPDX-License-Identifier: MIT */
/*
 * io/timer.c: sleeping tasks: each worker's timing wheel, arming and
 * disarming timers that live in task state, firing them (every few dozen
 * ticks and when the worker wakes), and the one io_uring timeout a parked
 * worker arms for its earliest deadline.
 */
#include <stdlib.h>
#include <string.h>

#include "io/timer.h"

/*
 * Why a timer fires once, never early, and never touches a freed task:
 * 1. A timer is armed on the wheel of the worker running its task, and
 *    records that worker in its 'when' word. Its state (IDLE, ARMED,
 *    FIRED) and its links change only under that wheel's lock.
 * 2. The owner fires a due timer under the lock: ARMED->FIRED, and moves
 *    the task toward running (task.c); if that made the task SCHEDULED,
 *    it queues it. A deadline timer instead cancels its task with the
 *    reason -ETIME, which wakes it the same way.
 * 3. The task's 'wait' word names the armed timer. A task that finishes,
 *    is cancelled, or waits on something else first takes the lock of the
 *    timer's wheel and disarms it (unlinks it if ARMED), so the wheel never
 *    holds a timer of a freed task, and a firing in progress completes
 *    before the task goes on.
 * 4. Deadlines are rounded up to whole milliseconds, and the wheel only
 *    fires a deadline once the clock has reached it (wheel.c), so no sleep
 *    ends early.
 * 5. Once FIRED, a timer is unlinked and its owner never touches it
 *    again; its task learns it through the wake (whose release orders the
 *    FIRED store before the task's next step), so the task reads FIRED and
 *    makes the timer IDLE without the lock. Only disarming an ARMED timer
 *    takes the lock, which also settles a race with a firing in progress.
 */

static_assert(sizeof(struct timer) == sizeof(myriad_timer_t),
	      "myriad_timer_t must hold a struct timer");

#define TM_WORKER_SHIFT WHEEL_WHEN_BITS
#define TM_WORKER_MASK (UINT64_C(0x1fff) << TM_WORKER_SHIFT)
#define TM_DEADLINE (UINT64_C(1) << 61) /* a task deadline, not a sleep */
#define TM_STATE_SHIFT 62
#define TM_IDLE UINT64_C(0)
#define TM_ARMED UINT64_C(1)
#define TM_FIRED UINT64_C(2)

/*
 * The state bits are read without the lock by the timer's own task (step
 * 5), so 'when' is read and written with atomic builtins throughout.
 */
static uint64_t tm_when(const struct timer *tm)
{
	return __atomic_load_n(&tm->node.when, __ATOMIC_ACQUIRE);
}

static uint64_t tm_state(const struct timer *tm)
{
	return tm_when(tm) >> TM_STATE_SHIFT;
}

static unsigned tm_worker(const struct timer *tm)
{
	return (unsigned)((tm_when(tm) & TM_WORKER_MASK) >> TM_WORKER_SHIFT);
}

static void tm_set_state(struct timer *tm, uint64_t st)
{
	__atomic_store_n(&tm->node.when,
			 (tm_when(tm) & ~(UINT64_C(3) << TM_STATE_SHIFT)) |
				 (st << TM_STATE_SHIFT),
			 __ATOMIC_RELEASE);
}

static uint64_t now_ms(void)
{
	return myriad_now_ns() / 1000000u;
}

/* ---- per worker ---- */

int timers_init(struct worker *w)
{
	struct io_worker *iw = worker_io(w);

	iw->wheel = malloc(sizeof(*iw->wheel));
	if (!iw->wheel)
		return -ENOMEM;
	wheel_init(iw->wheel, now_ms());
	atomic_init(&iw->wlock.v, 0);
	atomic_init(&iw->timer_next, UINT64_MAX);
	return 0;
}

void timers_fini(struct worker *w)
{
	struct io_worker *iw = worker_io(w);

	free(iw->wheel);
	iw->wheel = NULL;
}

/* Under the lock: the cached earliest deadline that pollers read. */
static void update_next(struct io_worker *iw)
{
	atomic_store_explicit(&iw->timer_next, wheel_next(iw->wheel),
			      memory_order_relaxed);
}

/*
 * Step 2, under the lock: a task this made SCHEDULED goes to the worker's
 * queue at once, in deadline order behind what is queued (the queue's
 * overflow takes the inject queue's lock, which never waits for a wheel).
 */
static void fire(struct wheel_node *n, void *arg)
{
	struct timer *tm = (struct timer *)n;
	struct worker *w = arg;
	struct myriad_task *t = tm->task;

	tm_set_state(tm, TM_FIRED);
	if (unlikely(tm_when(tm) & TM_DEADLINE))
		task_cancel_flags(t, TF_TIMEDOUT); /* wakes it too */
	else if (task_wake_prepare(t))
		lq_push(w, t);
}

void timers_poll(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	uint64_t now;

	if (atomic_load_explicit(&iw->timer_next, memory_order_relaxed) ==
	    UINT64_MAX)
		return;
	now = now_ms();
	if (now < atomic_load_explicit(&iw->timer_next, memory_order_relaxed))
		return;
	spin_lock(&iw->wlock);
	wheel_advance(iw->wheel, now, fire, w);
	update_next(iw);
	spin_unlock(&iw->wlock);
}

/*
 * Before sleeping: arm one timeout for the earliest deadline, unless one
 * at least as early is in flight. A later one left in flight only makes a
 * harmless early wake.
 */
void timers_arm(struct worker *w)
{
	struct io_worker *iw = worker_io(w);
	uint64_t next =
		atomic_load_explicit(&iw->timer_next, memory_order_relaxed);
	struct io_uring_sqe *sqe;

	if (next == UINT64_MAX || (iw->tmo_armed && iw->tmo_ms <= next))
		return;
	sqe = io_uring_get_sqe(&iw->uring);
	if (!sqe) {
		io_uring_submit(&iw->uring);
		sqe = io_uring_get_sqe(&iw->uring);
		if (!sqe)
			return;
	}
	iw->tmo_ts.tv_sec = (long long)(next / 1000);
	iw->tmo_ts.tv_nsec = (long long)(next % 1000) * 1000000;
	io_uring_prep_timeout(sqe, &iw->tmo_ts, 0, IORING_TIMEOUT_ABS);
	sqe->user_data = IO_UD_TIMEOUT | (next << IO_UD_SHIFT);
	iw->tmo_armed = true;
	iw->tmo_ms = next;
}

void timers_timeout_cqe(struct worker *w, const struct io_uring_cqe *cqe)
{
	struct io_worker *iw = worker_io(w);

	if ((cqe->user_data & IO_UD_KIND) == IO_UD_TIMEOUT &&
	    (cqe->user_data >> IO_UD_SHIFT) == iw->tmo_ms)
		iw->tmo_armed = false;
}

/* ---- the task side ---- */

/*
 * Step 3: disarm 'tm' (armed, fired or idle); the caller is the timer's
 * task's step, or the runtime finishing it.
 */
void timer_disarm(struct myriad_rt *rt, struct timer *tm)
{
	struct io_worker *ow;

	if (tm_state(tm) == TM_IDLE)
		return;
	if (tm_state(tm) != TM_FIRED) {
		ow = worker_io(&rt->workers[tm_worker(tm)]);
		spin_lock(&ow->wlock);
		if (tm_state(tm) == TM_ARMED)
			wheel_remove(ow->wheel, &tm->node);
		spin_unlock(&ow->wlock);
	}
	/* FIRED (step 5) or just unlinked: nobody else touches it now. */
	tm_set_state(tm, TM_IDLE);
}

void timer_release(struct myriad_task *t)
{
	uintptr_t reg = atomic_load_explicit(&t->wait, memory_order_acquire);

	if (!(reg & TW_TIMER))
		return;
	timer_disarm(task_rt(t), (struct timer *)(reg & ~TW_KIND_MASK));
	atomic_store_explicit(&t->wait, 0, memory_order_release);
}

/*
 * Arm an idle 'tm' for task 't' on worker 'w''s wheel (step 1), rounding
 * up (step 4); 'deadline': when it fires, cancel the task with -ETIME
 * instead of waking it. Returns -EAGAIN when armed, 0 when the deadline
 * has already passed (not armed).
 */
int timer_arm(struct worker *w, struct timer *tm, struct myriad_task *t,
	      uint64_t deadline_ns, bool deadline, uint64_t now_ns)
{
	struct io_worker *iw = worker_io(w);
	uint64_t d = (deadline_ns + 999999u) / 1000000u;
	int r;

	/*
	 * Passed already: not armed. The wheel's time lags the clock (it
	 * moves only when a timer is due, at a maintenance tick), so its own
	 * test below would arm a deadline that has passed and fire it at the
	 * next advance: the HTTP driver's "time out now" (libcurl's 0 ms
	 * timer) waited a third of a millisecond on average for it.
	 */
	if (deadline_ns <= (now_ns ? now_ns : myriad_now_ns()))
		return 0;
	if (d > WHEEL_WHEN_MASK)
		d = WHEEL_WHEN_MASK;
	tm->task = t;
	tm->node.next = tm->node.prev = NULL;
	__atomic_store_n(&tm->node.when,
			 d | ((uint64_t)w->idx << TM_WORKER_SHIFT) |
				 (deadline ? TM_DEADLINE : 0) |
				 (TM_ARMED << TM_STATE_SHIFT),
			 __ATOMIC_RELAXED);
	spin_lock(&iw->wlock);
	r = wheel_insert(iw->wheel, &tm->node);
	if (r == 0)
		update_next(iw);
	spin_unlock(&iw->wlock);
	if (r < 0) {
		/* Not after the wheel's time, which never leads the clock. */
		tm_set_state(tm, TM_IDLE);
		return 0;
	}
	return -EAGAIN;
}

/* now_ns: the clock when the caller read it, or 0 (timer_arm reads it). */
static int sleep_until(myriad_task_t *self, myriad_timer_t *tmo,
		       uint64_t deadline_ns, uint64_t now_ns)
{
	struct worker *w = cur_worker();
	struct timer *tm = (struct timer *)tmo;
	uintptr_t reg;
	uint64_t st;
	int r;

	if (!self || !tm || !w || w->current != self)
		return -EINVAL;
	reg = atomic_load_explicit(&self->wait, memory_order_acquire);
	if (reg && reg != ((uintptr_t)tm | TW_TIMER))
		wait_release(w, self); /* one wait at a time */
	else if (reg) {
		/* Racy while ARMED, settled when FIRED (step 5). */
		st = tm_state(tm);
		if (myriad_task_cancelled(self)) {
			timer_release(self);
			return task_cancel_reason(self);
		}
		if (st == TM_ARMED)
			return -EAGAIN;
		timer_release(self); /* fired: idle again */
		return 0;
	}
	if (myriad_task_cancelled(self))
		return task_cancel_reason(self);
	r = timer_arm(w, tm, self, deadline_ns, false, now_ns);
	if (r == -EAGAIN)
		atomic_store_explicit(&self->wait, (uintptr_t)tm | TW_TIMER,
				      memory_order_release);
	return r;
}

int myriad_sleep_until(myriad_task_t *self, myriad_timer_t *tmo,
		       uint64_t deadline_ns)
{
	return sleep_until(self, tmo, deadline_ns, 0);
}

int myriad_sleep(myriad_task_t *self, myriad_timer_t *tmo, uint64_t ns)
{
	struct timer *tm = (struct timer *)tmo;
	uintptr_t reg;
	uint64_t now;

	if (!self || !tm)
		return -EINVAL;
	/* While armed, the arming deadline counts: don't add 'ns' again. */
	reg = atomic_load_explicit(&self->wait, memory_order_acquire);
	if (reg == ((uintptr_t)tm | TW_TIMER))
		return sleep_until(self, tmo, 0, 0);
	now = myriad_now_ns();
	return sleep_until(self, tmo, now + ns, now);
}

uint64_t myriad_timer_deadline(const myriad_timer_t *tmo)
{
	const struct timer *tm = (const struct timer *)tmo;

	return tm ? wheel_when(&tm->node) * 1000000u : 0;
}

int myriad_timer_cancel(myriad_task_t *self, myriad_timer_t *tmo)
{
	uintptr_t reg;

	if (!self || !tmo)
		return -EINVAL;
	reg = atomic_load_explicit(&self->wait, memory_order_acquire);
	if (reg == ((uintptr_t)tmo | TW_TIMER))
		timer_release(self);
	return 0;
}
