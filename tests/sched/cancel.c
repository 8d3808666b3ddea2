/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/cancel.c: cancellation: a subtree of tasks pending on
 * channels, yielding and pending on joins, cancelled through the root's
 * handle; a child cancelled by its parent; a task cancelling itself;
 * children spawned after a cancel; cancel after the task finished.
 *   cancel [--workers N]
 */
#include "helpers.h"

static myriad_rt_t *rt;
static myriad_chan_t *never; /* nothing is ever sent on it */

static _Atomic int started, saw_cancel, recv_ecanceled, post_ok, post_spawned;
static _Atomic int total_tasks;

enum kind { WAITER, YIELDER, MID };

struct node {
	MYRIAD_CORO_FIELD;
	int kind;
	int depth; /* MID: levels below */
	int saw;
	int64_t v;
	myriad_task_t *c[4];
	int nc;
	myriad_task_t *post;
};

static void note_cancel(myriad_task_t *self, struct node *st)
{
	if (!st->saw && myriad_task_cancelled(self)) {
		st->saw = 1;
		atomic_fetch_add(&saw_cancel, 1);
	}
}

static int post_step(myriad_task_t *self, void *p)
{
	/* Spawned after the cancel: starts cancelled. */
	if (myriad_task_cancelled(self))
		atomic_fetch_add(&post_ok, 1);
	return MYRIAD_DONE;
}

static int node_step(myriad_task_t *self, void *p)
{
	struct node *st = p;
	struct node c;
	int rc, i;

	MYRIAD_BEGIN(st);
	atomic_fetch_add(&total_tasks, 1);
	if (st->kind == WAITER) {
		atomic_fetch_add(&started, 1);
		MYRIAD_RECV(st, self, never, &st->v, rc);
		if (rc == -ECANCELED)
			atomic_fetch_add(&recv_ecanceled, 1);
		else
			t_failf(__FILE__, __LINE__,
				"recv of a cancelled waiter: expected "
				"-ECANCELED, got %d",
				rc);
		note_cancel(self, st);
		return MYRIAD_DONE;
	}
	if (st->kind == YIELDER) {
		atomic_fetch_add(&started, 1);
		while (!myriad_task_cancelled(self))
			MYRIAD_YIELD(st);
		note_cancel(self, st);
		return MYRIAD_DONE;
	}
	/* MID: a waiter, a yielder and (if deep enough) another MID. */
	memset(&c, 0, sizeof(c));
	c.kind = WAITER;
	st->c[st->nc++] =
		myriad_task_spawn(self, node_step, &c, sizeof(c), 0, NULL);
	c.kind = YIELDER;
	st->c[st->nc++] =
		myriad_task_spawn(self, node_step, &c, sizeof(c), 0, NULL);
	if (st->depth > 0) {
		c.kind = MID;
		c.depth = st->depth - 1;
		st->c[st->nc++] = myriad_task_spawn(self, node_step, &c,
						    sizeof(c), 0, NULL);
	}
	for (i = 0; i < st->nc; i++)
		CHECK(st->c[i] != NULL, "spawn");
	atomic_fetch_add(&started, 1);
	/*
	 * Pending until the cancel wakes it. (Not on myriad_task_join():
	 * a join returning 0 here would end the children's validity with
	 * this step, and their statuses are read below.)
	 */
	MYRIAD_WAIT_UNTIL(st, myriad_task_cancelled(self));
	note_cancel(self, st);
	CHECK(st->saw, "a MID task woken before its children finished must "
		       "have been cancelled");
	/* A child spawned now starts cancelled. */
	st->post = myriad_task_spawn(self, post_step, NULL, 0, 0, NULL);
	CHECK(st->post != NULL, "spawn after cancel");
	atomic_fetch_add(&post_spawned, 1);
	MYRIAD_JOIN(st, self);
	for (i = 0; i < st->nc; i++)
		CHECK(myriad_task_status(st->c[i]) == -ECANCELED,
		      "status of a child (kind %d) of a cancelled subtree: "
		      "expected -ECANCELED, got %d",
		      ((struct node *)myriad_task_state(st->c[i]))->kind,
		      myriad_task_status(st->c[i]));
	CHECK(myriad_task_status(st->post) == -ECANCELED,
	      "status of a child spawned after its parent was cancelled: "
	      "expected -ECANCELED, got %d",
	      myriad_task_status(st->post));
	MYRIAD_END(st);
}

static int all_started(void *p)
{
	return atomic_load(&started) == *(int *)p;
}

static void test_subtree(void)
{
	struct node root = { .kind = MID, .depth = 3 };
	myriad_handle_t *h;
	int64_t res;
	int want, ntasks, r, err;

	t_phase("cancel a subtree");
	/* depth 3: 4 MIDs, each with a waiter and a yielder. */
	want = 4 * 3;
	ntasks = want;
	never = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
	REQUIRE(never, "chan_create");
	REQUIRE(myriad_rt_spawn(rt, node_step, &root, sizeof(root), &h) == 0,
		"spawn");
	REQUIRE(t_wait_until(all_started, &want, 20),
		"all %d tasks started: %d", want, atomic_load(&started));
	/* Waiters are registered: the channel cannot go away. */
	CHECK_ERR(myriad_chan_destroy(never), -EBUSY);

	CHECK_EQ(myriad_handle_cancel(h), 0);
	CHECK_EQ(myriad_handle_cancel(h), 0); /* idempotent */
	r = t_join(h, &res, "cancelled root");
	CHECK_ERR(r, -ECANCELED);
	CHECK_EQ(atomic_load(&total_tasks), ntasks);
	CHECK_EQ(atomic_load(&saw_cancel), ntasks);
	CHECK_EQ(atomic_load(&recv_ecanceled), 4);
	CHECK_EQ(atomic_load(&post_spawned), 4);
	CHECK_EQ(atomic_load(&post_ok), 4);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
	CHECK_EQ(myriad_chan_destroy(never), 0);
}

/* ---- a parent cancels its children ---- */

struct parent {
	MYRIAD_CORO_FIELD;
	myriad_task_t *y, *w, *ok;
};

static int done_step(myriad_task_t *self, void *p)
{
	myriad_task_set_result(self, 5);
	return MYRIAD_DONE;
}

static int parent_step(myriad_task_t *self, void *p)
{
	struct parent *st = p;
	struct node c;

	MYRIAD_BEGIN(st);
	memset(&c, 0, sizeof(c));
	c.kind = YIELDER;
	st->y = myriad_task_spawn(self, node_step, &c, sizeof(c), 0, NULL);
	c.kind = WAITER;
	st->w = myriad_task_spawn(self, node_step, &c, sizeof(c), 0, NULL);
	st->ok = myriad_task_spawn(self, done_step, NULL, 0, 0, NULL);
	REQUIRE(st->y && st->w && st->ok, "spawn");
	/* Let them start (the waiter registers). */
	while (atomic_load(&started) < 2)
		MYRIAD_YIELD(st);
	CHECK_EQ(myriad_task_cancel(st->y), 0);
	CHECK_EQ(myriad_task_cancel(st->w), 0);
	CHECK_EQ(myriad_task_cancel(st->w), 0);
	MYRIAD_JOIN(st, self);
	CHECK_ERR(myriad_task_status(st->y), -ECANCELED);
	CHECK_ERR(myriad_task_status(st->w), -ECANCELED);
	CHECK_EQ(myriad_task_status(st->ok), 0);
	CHECK_EQ(myriad_task_result(st->ok), 5);
	CHECK(!myriad_task_cancelled(self), "cancelling children leaves the "
					    "parent uncancelled");
	myriad_task_set_result(self, 1);
	MYRIAD_END(st);
}

static void test_child(void)
{
	struct parent st = { 0 };
	int64_t res = 0;
	int err;

	t_phase("a parent cancels its children");
	atomic_store(&started, 0);
	atomic_store(&recv_ecanceled, 0);
	never = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
	REQUIRE(never, "chan_create");
	CHECK_EQ(t_run(rt, parent_step, &st, sizeof(st), &res, "parent"), 0);
	CHECK_EQ(res, 1);
	CHECK_EQ(atomic_load(&recv_ecanceled), 1);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
	CHECK_EQ(myriad_chan_destroy(never), 0);
}

/* ---- a task cancels itself; children spawned afterwards ---- */

struct selfc {
	MYRIAD_CORO_FIELD;
	myriad_task_t *c;
};

static _Atomic int detached_saw = -1;

static int detached_step(myriad_task_t *self, void *p)
{
	atomic_store(&detached_saw, myriad_task_cancelled(self));
	return MYRIAD_DONE;
}

static int selfc_step(myriad_task_t *self, void *p)
{
	struct selfc *st = p;
	int err = 0;

	MYRIAD_BEGIN(st);
	CHECK(!myriad_task_cancelled(self), "not cancelled at first");
	CHECK_EQ(myriad_task_cancel(self), 0);
	CHECK(myriad_task_cancelled(self), "cancelled after cancel(self)");
	/* A detached task is not cancelled with its spawner. */
	CHECK(myriad_task_spawn(self, detached_step, NULL, 0,
				MYRIAD_SPAWN_DETACHED, &err) == NULL &&
		      err == 0,
	      "detached spawn: %d", err);
	atomic_store(&post_ok, 0);
	st->c = myriad_task_spawn(self, post_step, NULL, 0, 0, NULL);
	MYRIAD_JOIN(st, self);
	CHECK_EQ(atomic_load(&post_ok), 1);
	CHECK_ERR(myriad_task_status(st->c), -ECANCELED);
	MYRIAD_END(st);
}

static int detached_ran(void *p)
{
	return atomic_load(&detached_saw) >= 0;
}

static int no_live_tasks(void *p)
{
	return myriad_rt_tasks_live(rt) == 0;
}

static void test_self(void)
{
	struct selfc st = { 0 };

	t_phase("cancel self");
	CHECK_ERR(t_run(rt, selfc_step, &st, sizeof(st), NULL, "self"),
		  -ECANCELED);
	CHECK(t_wait_until(detached_ran, NULL, 20), "the detached task ran");
	CHECK(atomic_load(&detached_saw) == 0,
	      "a detached task of a cancelled spawner saw itself cancelled");
	/*
	 * The detached task is freed after its step returns, which may be
	 * after the store seen above: tasks_live is exact once idle.
	 */
	CHECK(t_wait_until(no_live_tasks, NULL, 20), "tasks_live %" PRId64,
	      myriad_rt_tasks_live(rt));
}

/*
 * ---- a child that sees its ancestor's cancel before the runtime has
 * propagated it: what it spawns starts cancelled, and statuses say so ----
 */

static _Atomic int gate;

struct late {
	MYRIAD_CORO_FIELD;
	myriad_task_t *c;
};

static int late_child_step(myriad_task_t *self, void *p)
{
	struct late *st = p;

	MYRIAD_BEGIN(st);
	atomic_store(&gate, 1);
	while (!myriad_task_cancelled(self))
		MYRIAD_YIELD(st);
	atomic_store(&post_ok, 0);
	st->c = myriad_task_spawn(self, post_step, NULL, 0, 0, NULL);
	MYRIAD_JOIN(st, self);
	CHECK_EQ(atomic_load(&post_ok), 1);
	CHECK(myriad_task_status(st->c) == -ECANCELED,
	      "a grandchild spawned after the root was cancelled started "
	      "cancelled, but its status is %d, not -ECANCELED",
	      myriad_task_status(st->c));
	MYRIAD_END(st);
}

struct lroot {
	MYRIAD_CORO_FIELD;
	myriad_task_t *c;
};

static int lroot_step(myriad_task_t *self, void *p)
{
	struct lroot *st = p;

	MYRIAD_BEGIN(st);
	st->c = myriad_task_spawn(self, late_child_step, NULL,
				  sizeof(struct late), 0, NULL);
	MYRIAD_JOIN(st, self);
	CHECK(myriad_task_status(st->c) == -ECANCELED,
	      "a child that ended because its parent was cancelled has "
	      "status %d, not -ECANCELED",
	      myriad_task_status(st->c));
	MYRIAD_END(st);
}

static int gate_open(void *p)
{
	return atomic_load(&gate);
}

static void test_late_status(void)
{
	struct lroot st = { 0 };
	myriad_handle_t *h;

	t_phase("status after an ancestor's cancel");
	REQUIRE(myriad_rt_spawn(rt, lroot_step, &st, sizeof(st), &h) == 0,
		"spawn");
	REQUIRE(t_wait_until(gate_open, NULL, 20), "child started");
	CHECK_EQ(myriad_handle_cancel(h), 0);
	CHECK_ERR(t_join(h, NULL, "late root"), -ECANCELED);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

/* ---- cancel after the task finished ---- */

static void test_after_done(void)
{
	myriad_handle_t *h;
	int64_t res = 0;

	t_phase("cancel after done");
	REQUIRE(myriad_rt_spawn(rt, done_step, NULL, 0, &h) == 0, "spawn");
	CHECK_EQ(t_join(h, &res, "done"), 0);
	CHECK_EQ(res, 5);
	CHECK_EQ(myriad_handle_cancel(h), 0);
	/* It finished before the cancel: not "finished after being
	 * cancelled". */
	res = 0;
	CHECK_ERR(t_join(h, &res, "done, then cancelled"), 0);
	CHECK_EQ(res, 5);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

int main(int argc, char **argv)
{
	unsigned workers;

	t_name = "cancel";
	workers = t_parse_workers(argc, argv);
	t_watchdog(55);
	rt = t_rt_new(workers);
	test_subtree();
	test_child();
	test_self();
	test_late_status();
	test_after_done();
	t_rt_done(rt);
	return t_result();
}
