/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/chan.c: channels: many senders and receivers with every
 * message received exactly once (capacities 1 and 64), close semantics,
 * try_send/try_recv from an outside thread waking tasks, destroy while a
 * task waits, a wake passed on by a waiter that gives up, big elements,
 * and fairness on one worker: the cooperative budget (a sender that never
 * blocks does not starve another task) and two tasks exchanging messages
 * do not starve a third.
 *   chan [--workers N]
 */
#include "helpers.h"

static myriad_rt_t *rt;

/* ---- many to many ---- */

#define SENDERS 16
#define RECEIVERS 16

static myriad_chan_t *mch;
static int64_t per_sender;
static _Atomic uint64_t *bits;
static _Atomic int senders_left;
static _Atomic int64_t dups;

struct sender {
	MYRIAD_CORO_FIELD;
	int id;
	int64_t i;
	uint64_t msg;
};

static int sender_step(myriad_task_t *self, void *p)
{
	struct sender *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < per_sender; st->i++) {
		st->msg = (uint64_t)st->id * (uint64_t)per_sender +
			  (uint64_t)st->i;
		MYRIAD_SEND(st, self, mch, &st->msg, rc);
		if (rc < 0) {
			t_failf(__FILE__, __LINE__, "sender %d: send: %d",
				st->id, rc);
			break;
		}
	}
	/* The last sender closes: receivers drain, then get -EPIPE. */
	if (atomic_fetch_sub(&senders_left, 1) == 1)
		CHECK_EQ(myriad_chan_close(mch), 0);
	MYRIAD_END(st);
}

struct receiver {
	MYRIAD_CORO_FIELD;
	int64_t n;
	uint64_t v;
};

static int receiver_step(myriad_task_t *self, void *p)
{
	struct receiver *st = p;
	uint64_t bit, old;
	int rc;

	MYRIAD_BEGIN(st);
	for (;;) {
		MYRIAD_RECV(st, self, mch, &st->v, rc);
		if (rc == -EPIPE)
			break;
		if (rc < 0) {
			t_failf(__FILE__, __LINE__, "recv: %d", rc);
			break;
		}
		if (st->v >= (uint64_t)(SENDERS * per_sender)) {
			t_failf(__FILE__, __LINE__,
				"received a value never "
				"sent: %" PRIu64,
				st->v);
			continue;
		}
		bit = 1ull << (st->v % 64);
		old = atomic_fetch_or(&bits[st->v / 64], bit);
		if (old & bit)
			atomic_fetch_add(&dups, 1);
		st->n++;
	}
	myriad_task_set_result(self, st->n);
	MYRIAD_END(st);
}

struct mroot {
	MYRIAD_CORO_FIELD;
	myriad_task_t *r[RECEIVERS];
};

static int mroot_step(myriad_task_t *self, void *p)
{
	struct mroot *st = p;
	int64_t total = 0;
	int i;

	MYRIAD_BEGIN(st);
	/* Receivers first: they block on an empty channel. */
	for (i = 0; i < RECEIVERS; i++) {
		st->r[i] = myriad_task_spawn(self, receiver_step, NULL,
					     sizeof(struct receiver), 0, NULL);
		CHECK(st->r[i] != NULL, "spawn receiver");
	}
	for (i = 0; i < SENDERS; i++) {
		struct sender s = { .id = i };

		CHECK(myriad_task_spawn(self, sender_step, &s, sizeof(s), 0,
					NULL) != NULL,
		      "spawn sender");
	}
	MYRIAD_JOIN(st, self);
	for (i = 0; i < RECEIVERS; i++)
		if (st->r[i])
			total += myriad_task_result(st->r[i]);
	myriad_task_set_result(self, total);
	MYRIAD_END(st);
}

static void test_many(size_t cap)
{
	int64_t n, total = -1, missing = 0, i;
	struct mroot root = { 0 };
	int err;

	t_phase(cap == 1 ? "many to many, capacity 1"
			 : "many to many, capacity 64");
	per_sender = t_scaled(10000);
	n = SENDERS * per_sender;
	bits = calloc((size_t)(n + 63) / 64, sizeof(*bits));
	REQUIRE(bits, "alloc");
	atomic_store(&senders_left, SENDERS);
	atomic_store(&dups, 0);
	mch = myriad_chan_create(rt, sizeof(uint64_t), cap, &err);
	REQUIRE(mch, "chan_create: %d", err);
	CHECK_EQ(t_run(rt, mroot_step, &root, sizeof(root), &total, "many"), 0);
	CHECK_EQ(total, n);
	CHECK_EQ(atomic_load(&dups), 0);
	for (i = 0; i < n; i++)
		if (!(atomic_load(&bits[i / 64]) & (1ull << (i % 64))))
			missing++;
	CHECK(missing == 0,
	      "capacity %zu: %" PRId64 " of %" PRId64
	      " messages never received",
	      cap, missing, n);
	CHECK_EQ(myriad_chan_len(mch), 0);
	CHECK_EQ(myriad_chan_destroy(mch), 0);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
	free(bits);
}

/* ---- single waiters, each a root task with a handle ---- */

struct waiter {
	myriad_chan_t *ch;
	int send;  /* else receive */
	int64_t v; /* to send / received */
	_Atomic int *registered;
	_Atomic int *abandon; /* if set when woken: give up the wait */
	int reg;
	int eagain;
};

/* Result: the value received (or 0 for a send) or a negative errno. */
static int waiter_step(myriad_task_t *self, void *p)
{
	struct waiter *st = p;
	int rc;

	/* 1: give the wait up with abandon; 2: just finish. */
	if (st->reg && st->abandon && atomic_load(st->abandon)) {
		if (atomic_load(st->abandon) == 1)
			CHECK_EQ(myriad_chan_abandon(self, st->ch), 0);
		myriad_task_set_result(self, -ECONNABORTED);
		return MYRIAD_DONE;
	}
	if (st->send)
		rc = myriad_chan_send(self, st->ch, &st->v);
	else
		rc = myriad_chan_recv(self, st->ch, &st->v);
	if (rc == -EAGAIN) {
		st->eagain++;
		if (!st->reg) {
			st->reg = 1;
			if (st->registered)
				atomic_fetch_add(st->registered, 1);
		}
		return MYRIAD_PENDING;
	}
	myriad_task_set_result(self, rc < 0 ? rc : (st->send ? 0 : st->v));
	return MYRIAD_DONE;
}

static myriad_handle_t *spawn_waiter(myriad_chan_t *ch, int send, int64_t v,
				     _Atomic int *registered,
				     _Atomic int *abandon)
{
	struct waiter w = { .ch = ch,
			    .send = send,
			    .v = v,
			    .registered = registered,
			    .abandon = abandon };
	myriad_handle_t *h;

	REQUIRE(myriad_rt_spawn(rt, waiter_step, &w, sizeof(w), &h) == 0,
		"spawn waiter");
	return h;
}

struct count_arg {
	_Atomic int *c;
	int want;
};

static int reached(void *p)
{
	struct count_arg *a = p;

	return atomic_load(a->c) >= a->want;
}

static void wait_registered(_Atomic int *c, int want, const char *what)
{
	struct count_arg a = { c, want };

	REQUIRE(t_wait_until(reached, &a, 20), "%s: %d of %d registered", what,
		atomic_load(c), want);
}

static int64_t join_result(myriad_handle_t *h, const char *what)
{
	int64_t res = -1;

	CHECK_EQ(t_join(h, &res, what), 0);
	CHECK_EQ(myriad_handle_release(h), 0);
	return res;
}

static void test_close(void)
{
	myriad_chan_t *ch, *empty, *full;
	myriad_handle_t *h, *rh[4], *sh[4];
	_Atomic int reg = 0;
	int64_t v, i;
	int err;

	t_phase("close");
	ch = myriad_chan_create(rt, sizeof(int64_t), 8, &err);
	REQUIRE(ch, "chan_create");
	for (v = 1; v <= 5; v++)
		CHECK_EQ(myriad_chan_try_send(ch, &v), 0);
	CHECK_EQ(myriad_chan_close(ch), 0);
	CHECK_EQ(myriad_chan_close(ch), 0); /* idempotent */
	CHECK_ERR(myriad_chan_try_send(ch, &v), -EPIPE);
	CHECK_EQ(myriad_chan_len(ch), 5);
	/* A task: send fails, receive drains in order, then -EPIPE. */
	h = spawn_waiter(ch, 1, 100, NULL, NULL);
	CHECK_ERR(join_result(h, "send on closed"), -EPIPE);
	for (i = 1; i <= 5; i++) {
		h = spawn_waiter(ch, 0, 0, NULL, NULL);
		CHECK_EQ(join_result(h, "drain closed"), i);
	}
	h = spawn_waiter(ch, 0, 0, NULL, NULL);
	CHECK_ERR(join_result(h, "recv on closed and drained"), -EPIPE);
	CHECK_ERR(myriad_chan_try_recv(ch, &v), -EPIPE);
	CHECK_EQ(myriad_chan_destroy(ch), 0);

	/* Waiting receivers and senders are woken by close: -EPIPE. */
	empty = myriad_chan_create(rt, sizeof(int64_t), 4, &err);
	full = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
	REQUIRE(empty && full, "chan_create");
	v = 7;
	CHECK_EQ(myriad_chan_try_send(full, &v), 0);
	for (i = 0; i < 4; i++) {
		rh[i] = spawn_waiter(empty, 0, 0, &reg, NULL);
		sh[i] = spawn_waiter(full, 1, 10 + i, &reg, NULL);
	}
	wait_registered(&reg, 8, "close waiters");
	CHECK_ERR(myriad_chan_destroy(empty), -EBUSY);
	CHECK_EQ(myriad_chan_close(empty), 0);
	CHECK_EQ(myriad_chan_close(full), 0);
	for (i = 0; i < 4; i++) {
		CHECK_ERR(join_result(rh[i], "receiver woken by close"),
			  -EPIPE);
		CHECK_ERR(join_result(sh[i], "sender woken by close"), -EPIPE);
	}
	/* What was buffered before close is still there. */
	CHECK_EQ(myriad_chan_try_recv(full, &v), 0);
	CHECK_EQ(v, 7);
	CHECK_ERR(myriad_chan_try_recv(full, &v), -EPIPE);
	CHECK_EQ(myriad_chan_destroy(empty), 0);
	CHECK_EQ(myriad_chan_destroy(full), 0);
}

static void test_outside(void)
{
	myriad_chan_t *ch;
	myriad_handle_t *r, *s;
	_Atomic int reg = 0;
	int64_t v;
	int err;

	t_phase("try_send and try_recv from outside");
	ch = myriad_chan_create(rt, sizeof(int64_t), 2, &err);
	REQUIRE(ch, "chan_create");
	CHECK_ERR(myriad_chan_try_recv(ch, &v), -EAGAIN);
	/* A receiver waits; an outside try_send wakes it with the value. */
	r = spawn_waiter(ch, 0, 0, &reg, NULL);
	wait_registered(&reg, 1, "receiver");
	v = 42;
	CHECK_EQ(myriad_chan_try_send(ch, &v), 0);
	CHECK_EQ(join_result(r, "receiver woken by try_send"), 42);
	CHECK_EQ(myriad_chan_len(ch), 0);
	/* Full: try_send says -EAGAIN; values come out in order. */
	v = 1;
	CHECK_EQ(myriad_chan_try_send(ch, &v), 0);
	v = 2;
	CHECK_EQ(myriad_chan_try_send(ch, &v), 0);
	v = 3;
	CHECK_ERR(myriad_chan_try_send(ch, &v), -EAGAIN);
	CHECK_EQ(myriad_chan_len(ch), 2);
	/* A sender waits on the full channel; try_recv makes room. */
	s = spawn_waiter(ch, 1, 3, &reg, NULL);
	wait_registered(&reg, 2, "sender");
	CHECK_EQ(myriad_chan_try_recv(ch, &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(join_result(s, "sender woken by try_recv"), 0);
	CHECK_EQ(myriad_chan_try_recv(ch, &v), 0);
	CHECK_EQ(v, 2);
	CHECK_EQ(myriad_chan_try_recv(ch, &v), 0);
	CHECK_EQ(v, 3);
	CHECK_ERR(myriad_chan_try_recv(ch, &v), -EAGAIN);
	CHECK_EQ(myriad_chan_destroy(ch), 0);
}

static void test_destroy_busy(void)
{
	myriad_chan_t *ch;
	myriad_handle_t *h;
	_Atomic int reg = 0;
	int err;

	t_phase("destroy while a task waits");
	ch = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
	REQUIRE(ch, "chan_create");
	h = spawn_waiter(ch, 0, 0, &reg, NULL);
	wait_registered(&reg, 1, "receiver");
	CHECK_ERR(myriad_chan_destroy(ch), -EBUSY);
	CHECK_ERR(myriad_chan_destroy(ch), -EBUSY);
	CHECK_EQ(myriad_chan_close(ch), 0);
	CHECK_ERR(join_result(h, "receiver"), -EPIPE);
	CHECK_EQ(myriad_chan_destroy(ch), 0);
}

/*
 * A woken waiter that gives up (abandon, or finishing) passes the wake to
 * the next waiter, so the element is not left behind with a sleeper.
 */
static void test_pass_on(int by_abandon)
{
	myriad_chan_t *ch;
	myriad_handle_t *r1, *r2;
	_Atomic int reg = 0, give_up = 0;
	int64_t v = 99;
	int err;

	t_phase(by_abandon ? "abandon passes the wake on"
			   : "finishing passes the wake on");
	ch = myriad_chan_create(rt, sizeof(int64_t), 4, &err);
	REQUIRE(ch, "chan_create");
	/* r1 queues first, then r2. */
	r1 = spawn_waiter(ch, 0, 0, &reg, &give_up);
	wait_registered(&reg, 1, "r1");
	r2 = spawn_waiter(ch, 0, 0, &reg, NULL);
	wait_registered(&reg, 2, "r2");
	atomic_store(&give_up, by_abandon ? 1 : 2);
	CHECK_EQ(myriad_chan_try_send(ch, &v), 0);
	CHECK_ERR(join_result(r1, "r1 gives up"), -ECONNABORTED);
	CHECK_EQ(join_result(r2, "r2 gets the passed-on wake"), v);
	CHECK_EQ(myriad_chan_len(ch), 0);
	CHECK_EQ(myriad_chan_destroy(ch), 0);
}

/* ---- big elements ---- */

struct big {
	unsigned char b[MYRIAD_CHAN_ELEM_MAX];
};

struct bigrx {
	MYRIAD_CORO_FIELD;
	int i;
	struct big v;
};

static myriad_chan_t *bch;

static int bigrx_step(myriad_task_t *self, void *p)
{
	struct bigrx *st = p;
	int rc, j, bad = 0;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < 100; st->i++) {
		MYRIAD_RECV(st, self, bch, &st->v, rc);
		CHECK_EQ(rc, 0);
		for (j = 0; j < MYRIAD_CHAN_ELEM_MAX; j++)
			if (st->v.b[j] != (unsigned char)(st->i * 7 + j))
				bad++;
	}
	myriad_task_set_result(self, bad);
	MYRIAD_END(st);
}

static void test_big(void)
{
	myriad_handle_t *h;
	struct big *v = malloc(sizeof(*v));
	int i, j, err;

	t_phase("big elements");
	REQUIRE(v, "alloc");
	bch = myriad_chan_create(rt, MYRIAD_CHAN_ELEM_MAX, 3, &err);
	REQUIRE(bch, "chan_create(4096, 3): %d", err);
	REQUIRE(myriad_rt_spawn(rt, bigrx_step, NULL, sizeof(struct bigrx),
				&h) == 0,
		"spawn");
	for (i = 0; i < 100; i++) {
		for (j = 0; j < MYRIAD_CHAN_ELEM_MAX; j++)
			v->b[j] = (unsigned char)(i * 7 + j);
		while ((err = myriad_chan_try_send(bch, v)) == -EAGAIN)
			sched_yield();
		CHECK_EQ(err, 0);
	}
	CHECK_EQ(join_result(h, "big receiver"), 0);
	CHECK_EQ(myriad_chan_destroy(bch), 0);
	free(v);
}

/*
 * ---- the cooperative budget ----
 * A sender to a channel that never fills sends in one loop; without the
 * budget its step would never return. It spawns another task first, which
 * must get to run before the sender is done.
 */

static myriad_chan_t *fch;
static int64_t fair_n;
static _Atomic int64_t fair_sent, other_saw = -1;

static int other_step(myriad_task_t *self, void *p)
{
	atomic_store(&other_saw, atomic_load(&fair_sent));
	return MYRIAD_DONE;
}

struct hog {
	int64_t i;
	int spawned;
	int64_t eagain;
};

static int hog_step(myriad_task_t *self, void *p)
{
	struct hog *st = p;
	int rc;

	if (!st->spawned) {
		st->spawned = 1;
		rc = 0;
		CHECK(myriad_task_spawn(self, other_step, NULL, 0,
					MYRIAD_SPAWN_DETACHED, &rc) == NULL &&
			      rc == 0,
		      "detached spawn");
	}
	while (st->i < fair_n) {
		rc = myriad_chan_send(self, fch, &st->i);
		if (rc == -EAGAIN) {
			st->eagain++;
			return MYRIAD_PENDING;
		}
		if (rc < 0) {
			t_failf(__FILE__, __LINE__, "send: %d", rc);
			return MYRIAD_DONE;
		}
		st->i++;
		atomic_store(&fair_sent, st->i);
	}
	myriad_task_set_result(self, st->eagain);
	return MYRIAD_DONE;
}

/* Two tasks exchanging messages; a third, spawned midway, must run. */
static myriad_chan_t *xch;
static int64_t x_n;
static _Atomic int64_t x_received, third_saw = -1;

static int third_step(myriad_task_t *self, void *p)
{
	atomic_store(&third_saw, atomic_load(&x_received));
	return MYRIAD_DONE;
}

struct xtask {
	MYRIAD_CORO_FIELD;
	int64_t i, v;
};

static int xsend_step(myriad_task_t *self, void *p)
{
	struct xtask *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < x_n; st->i++) {
		st->v = st->i;
		MYRIAD_SEND(st, self, xch, &st->v, rc);
		CHECK_EQ(rc, 0);
	}
	MYRIAD_END(st);
}

static int xrecv_step(myriad_task_t *self, void *p)
{
	struct xtask *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < x_n; st->i++) {
		MYRIAD_RECV(st, self, xch, &st->v, rc);
		CHECK_EQ(rc, 0);
		if (st->v != st->i) {
			t_failf(__FILE__, __LINE__,
				"exchange: expected %" PRId64 ", got %" PRId64,
				st->i, st->v);
			return MYRIAD_DONE;
		}
		atomic_store(&x_received, st->i + 1);
		if (st->i == 1000)
			myriad_task_spawn(self, third_step, NULL, 0,
					  MYRIAD_SPAWN_DETACHED, NULL);
	}
	MYRIAD_END(st);
}

struct xroot {
	MYRIAD_CORO_FIELD;
};

static int xroot_step(myriad_task_t *self, void *p)
{
	struct xroot *st = p;

	MYRIAD_BEGIN(st);
	myriad_task_spawn(self, xsend_step, NULL, sizeof(struct xtask), 0,
			  NULL);
	myriad_task_spawn(self, xrecv_step, NULL, sizeof(struct xtask), 0,
			  NULL);
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static int third_ran(void *p)
{
	return atomic_load(&third_saw) >= 0;
}

static int other_ran(void *p)
{
	return atomic_load(&other_saw) >= 0;
}

static int no_live_tasks(void *p)
{
	return myriad_rt_tasks_live(rt) == 0;
}

/*
 * On a runtime of its own with one worker, where nothing else can run the
 * other task: the outcome is then deterministic.
 */
static void test_budget(void)
{
	myriad_rt_t *main_rt = rt;
	struct hog hog = { 0 };
	struct xroot xr = { 0 };
	int64_t eagain = -1, v, i;
	int err;

	rt = t_rt_new(1);

	t_phase("budget: a sender that never blocks");
	fair_n = t_scaled_min(200000, 10000);
	fch = myriad_chan_create(rt, sizeof(int64_t), (size_t)fair_n, &err);
	REQUIRE(fch, "chan_create: %d", err);
	CHECK_EQ(t_run(rt, hog_step, &hog, sizeof(hog), &eagain, "hog"), 0);
	CHECK(t_wait_until(other_ran, NULL, 20), "the other task ran");
	CHECK(atomic_load(&other_saw) < fair_n,
	      "a task spawned by a sender that never blocks ran only after "
	      "it had sent all %" PRId64 " messages (saw %" PRId64 ")",
	      fair_n, atomic_load(&other_saw));
	CHECK(eagain > 0, "the budget made send return -EAGAIN: %" PRId64,
	      eagain);
	/* -EAGAIN from the budget lost or doubled nothing. */
	CHECK_EQ(myriad_chan_len(fch), fair_n);
	for (i = 0; i < fair_n; i++) {
		CHECK_EQ(myriad_chan_try_recv(fch, &v), 0);
		if (v != i) {
			CHECK_EQ(v, i);
			break;
		}
	}
	CHECK_EQ(myriad_chan_destroy(fch), 0);

	t_phase("budget: an exchange does not starve a third task");
	x_n = t_scaled_min(1000000, 20000);
	xch = myriad_chan_create(rt, sizeof(int64_t), 64, &err);
	REQUIRE(xch, "chan_create: %d", err);
	CHECK_EQ(t_run(rt, xroot_step, &xr, sizeof(xr), NULL, "exchange"), 0);
	CHECK_EQ(atomic_load(&x_received), x_n);
	CHECK(t_wait_until(third_ran, NULL, 10), "the third task ran at all");
	CHECK(atomic_load(&third_saw) >= 0 && atomic_load(&third_saw) < x_n,
	      "a task spawned during an exchange of %" PRId64
	      " messages ran only after it (saw %" PRId64 ")",
	      x_n, atomic_load(&third_saw));
	CHECK_EQ(myriad_chan_destroy(xch), 0);
	CHECK(t_wait_until(no_live_tasks, NULL, 10), "tasks_live 0: %" PRId64,
	      myriad_rt_tasks_live(rt));
	t_rt_done(rt);
	rt = main_rt;
}

int main(int argc, char **argv)
{
	unsigned workers;

	t_name = "chan";
	workers = t_parse_workers(argc, argv);
	t_watchdog(55);
	rt = t_rt_new(workers);
	test_many(1);
	test_many(64);
	test_close();
	test_outside();
	test_destroy_busy();
	test_pass_on(1);
	test_pass_on(0);
	test_big();
	test_budget();
	/* Detached tasks finish on their own. */
	CHECK(t_wait_until(no_live_tasks, NULL, 10), "tasks_live 0: %" PRId64,
	      myriad_rt_tasks_live(rt));
	t_rt_done(rt);
	return t_result();
}
