/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/cancel.c: cancelling a task whose call is in flight against
 * a server that answers after an hour (--llm-ms 3600000): by its parent
 * (myriad_task_cancel), by a handle from outside (myriad_handle_cancel),
 * by its own deadline (myriad_task_deadline), and by a deadline on the
 * call (myriad_io_deadline on the record). The call must return
 * -ECANCELED / -ETIME without the answer (a client that waited for it
 * would hang, and the join's watchdog says so; how soon it returned is
 * printed: that is the machine's), never before its deadline, and the
 * server must see the connection closed mid-request (/stats
 * client_closed_mid_request), so that it stops generating. Calls waiting
 * in the pool's queue (window 1 full, another call waiting ahead of
 * them) are cancelled, and time out there, never early, without ever
 * reaching the server, and the window is free again after.
 *   cancel [--workers N] --server PATH
 */
#include "llm.h"

/* An hour: no call here ends with an answer. */
#define LLM_MS 3600000
#define MSG "[{\"role\":\"user\",\"content\":\"cancel me\"}]"

/* How long the server's /stats may take to show what happened. */
#define STATS_S 20.0

static struct srv s;

/* Set by the main thread when the server has the request in service. */
static _Atomic int go;

/* When the tasks cancelled (t_now()), read after the join. */
static double t_cancel_parent, t_cancel_y, t_cancel_u, t_cancel_x;

/* ---- a parent cancels its child ---- */

struct parent_st {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	myriad_task_t *child;
	struct job *j;
};

static int parent_step(myriad_task_t *self, void *p)
{
	struct parent_st *st = p;
	struct call_st c;
	int rc, err;

	MYRIAD_BEGIN(st);
	memset(&c, 0, sizeof(c));
	c.j = st->j;
	st->child = myriad_task_spawn(self, call_step, &c, sizeof(c), 0, &err);
	REQUIRE(st->child, "spawn: %s", strerror(-err));
	while (!atomic_load(&go)) {
		MYRIAD_SLEEP(st, self, &st->tm, 2000000, rc);
		CHECK_ERR(rc, 0);
	}
	t_cancel_parent = t_now();
	CHECK_ERR(myriad_task_cancel(st->child), 0);
	MYRIAD_JOIN(st, self);
	CHECK_ERR(myriad_task_status(st->child), -ECANCELED);
	MYRIAD_END(st);
}

/* The request is in service at the server; returns its closes so far. */
static int64_t wait_in_service(void)
{
	int64_t v = srv_wait_stat(&s, "in_service", 1, STATS_S);

	REQUIRE(v >= 1, "the request never reached the server");
	return srv_stat(&s, "client_closed_mid_request");
}

/* The server's in_service gauge drops to 0 (STATS_S at most). */
static int in_service_zero(void)
{
	double end = t_now() + STATS_S * T_SLOW;

	while (srv_stat(&s, "in_service") != 0) {
		if (t_now() > end)
			return 0;
		t_sleep_ms(5);
	}
	return 1;
}

/* The server saw the connection close (STATS_S at most). */
static void check_closed(int64_t before, const char *what)
{
	int64_t now = srv_wait_stat(&s, "client_closed_mid_request", before + 1,
				    STATS_S);

	CHECK(now == before + 1,
	      "%s: client_closed_mid_request %" PRId64 " -> %" PRId64
	      ": the connection was not closed",
	      what, before, now);
	CHECK(in_service_zero(), "%s: the server still serves a request", what);
}

static void test_parent_cancel(myriad_infer_t *p)
{
	struct parent_st st;
	myriad_handle_t *h = NULL;
	struct job j;
	int64_t closed;
	double took;

	memset(&st, 0, sizeof(st));
	job_chat(&j, p, MSG, NULL);
	st.j = &j;
	atomic_store(&go, 0);
	t_phase("parent cancels");
	REQUIRE(myriad_rt_spawn(rt, parent_step, &st, sizeof(st), &h) == 0,
		"spawn");
	closed = wait_in_service();
	atomic_store(&go, 1);
	t_join(h, NULL, "parent cancels");
	CHECK_JOB_RC(&j, -ECANCELED);
	took = j.t1 - t_cancel_parent;
	printf("%s: parent cancel: returned %.3f s after it\n", t_name, took);
	CHECK_EQ(myriad_handle_release(h), 0);
	check_closed(closed, "parent cancel");
}

/* The job's t1 minus the moment the main thread cancelled. */
static void test_handle_cancel(myriad_infer_t *p)
{
	myriad_handle_t *h;
	struct job j;
	int64_t closed;
	double t_cancel, took;
	int r;

	job_chat(&j, p, MSG, NULL);
	t_phase("handle cancel");
	h = jobs_spawn(&j, 1);
	closed = wait_in_service();
	t_cancel = t_now();
	CHECK_ERR(myriad_handle_cancel(h), 0);
	r = t_join(h, NULL, "handle cancel");
	CHECK_ERR(r, -ECANCELED);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_JOB_RC(&j, -ECANCELED);
	took = j.t1 - t_cancel;
	printf("%s: handle cancel: returned %.3f s after it\n", t_name, took);
	check_closed(closed, "handle cancel");
}

static void test_deadline(myriad_infer_t *p)
{
	struct job j;
	int64_t closed = srv_stat(&s, "client_closed_mid_request");
	double took;

	job_chat(&j, p, MSG, NULL);
	j.deadline_ms = 300;
	run_jobs(&j, 1, "task deadline");
	CHECK_JOB_RC(&j, -ETIME);
	took = j.t1 - j.t0;
	CHECK(took >= 0.3 - 0.002,
	      "a 300 ms deadline ended the call after "
	      "%.3f s",
	      took);
	printf("%s: a 300 ms task deadline ended the call after %.3f s\n",
	       t_name, took);
	check_closed(closed, "deadline");
}

/* A deadline on the call itself (myriad_io_deadline): -ETIME, closed. */
static void test_call_deadline(myriad_infer_t *p)
{
	struct job j;
	int64_t closed = srv_stat(&s, "client_closed_mid_request");
	double took;

	job_chat(&j, p, MSG, NULL);
	j.call_deadline_ms = 300;
	run_jobs(&j, 1, "call deadline");
	CHECK_JOB_RC(&j, -ETIME);
	took = j.t1 - j.t0;
	CHECK(took >= 0.3 - 0.002,
	      "a 300 ms call deadline ended the call after %.3f s", took);
	printf("%s: a 300 ms call deadline ended the call after %.3f s\n",
	       t_name, took);
	check_closed(closed, "call deadline");
}

/* ---- calls cancelled while queued ---- */

struct queue_st {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	myriad_task_t *x, *u, *y;
	struct job *jx, *ju, *jy, *jw, *jv;
	/* Set when a job's call returned (its task's own word on it). */
	_Atomic int ux, uu, uy, uw, uv;
};

/* A job's call, then its flag: the parent may read it any time. */
struct qcall {
	struct call_st c; /* first: call_step's coroutine state */
	_Atomic int *done;
};

static int qcall_step(myriad_task_t *self, void *p)
{
	struct qcall *q = p;
	int r = call_step(self, &q->c);

	if (r == MYRIAD_DONE)
		atomic_store(q->done, 1);
	return r;
}

static myriad_task_t *spawn_job(myriad_task_t *self, struct job *j,
				_Atomic int *done)
{
	struct qcall q;
	myriad_task_t *t;
	int err;

	memset(&q, 0, sizeof(q));
	q.c.j = j;
	q.done = done;
	t = myriad_task_spawn(self, qcall_step, &q, sizeof(q), 0, &err);
	REQUIRE(t, "spawn: %s", strerror(-err));
	return t;
}

#define GAP_NS (10000000ull * T_SLOW) /* between spawns: queue order */

/*
 * x takes the window of 1; u, y, w and v queue behind it (in that order,
 * most likely: nothing depends on it). y is cancelled, w's task deadline
 * and v's call deadline pass, all three while u (which cannot go either)
 * waits too. Then u is cancelled, and x only once u's call has returned:
 * a cancel reaches a queued call when its task next runs, so a slot freed
 * before that could go to u.
 */
static int queue_step(myriad_task_t *self, void *p)
{
	struct queue_st *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	st->x = spawn_job(self, st->jx, &st->ux);
	while (!atomic_load(&go)) {
		MYRIAD_SLEEP(st, self, &st->tm, 2000000, rc);
		CHECK_ERR(rc, 0);
	}
	st->u = spawn_job(self, st->ju, &st->uu);
	MYRIAD_SLEEP(st, self, &st->tm, GAP_NS, rc);
	st->y = spawn_job(self, st->jy, &st->uy);
	MYRIAD_SLEEP(st, self, &st->tm, GAP_NS, rc);
	spawn_job(self, st->jw, &st->uw); /* with a task deadline of 200 ms */
	MYRIAD_SLEEP(st, self, &st->tm, GAP_NS, rc);
	spawn_job(self, st->jv, &st->uv); /* with a call deadline of 250 ms */
	MYRIAD_SLEEP(st, self, &st->tm, 100000000, rc);
	CHECK_ERR(rc, 0);
	CHECK(!atomic_load(&st->uy), "the queued call ended by itself");
	t_cancel_y = t_now();
	CHECK_ERR(myriad_task_cancel(st->y), 0);
	/* y, w and v end while x holds the window (the join's watchdog). */
	while (!atomic_load(&st->uy) || !atomic_load(&st->uw) ||
	       !atomic_load(&st->uv)) {
		MYRIAD_SLEEP(st, self, &st->tm, 2000000, rc);
		CHECK_ERR(rc, 0);
	}
	t_cancel_u = t_now();
	CHECK_ERR(myriad_task_cancel(st->u), 0);
	while (!atomic_load(&st->uu)) {
		MYRIAD_SLEEP(st, self, &st->tm, 2000000, rc);
		CHECK_ERR(rc, 0);
	}
	t_cancel_x = t_now();
	CHECK_ERR(myriad_task_cancel(st->x), 0);
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static void test_queued(void)
{
	struct myriad_infer_opts o;
	struct queue_st st;
	struct job jx, ju, jy, jw, jv, jz;
	myriad_handle_t *h = NULL;
	myriad_infer_t *p;
	int64_t r0, closed;

	opts_init(&o);
	p = pool_new(&o);
	pool_add(p, &s, 1);
	job_chat(&jx, p, MSG, NULL);
	job_chat(&ju, p, MSG, NULL);
	job_chat(&jy, p, MSG, NULL);
	job_chat(&jw, p, MSG, NULL);
	jw.deadline_ms = 200;
	job_chat(&jv, p, MSG, NULL);
	jv.call_deadline_ms = 250;
	memset(&st, 0, sizeof(st));
	st.jx = &jx;
	st.ju = &ju;
	st.jy = &jy;
	st.jw = &jw;
	st.jv = &jv;
	atomic_store(&go, 0);
	r0 = srv_stat(&s, "requests");
	t_phase("cancel queued calls");
	REQUIRE(myriad_rt_spawn(rt, queue_step, &st, sizeof(st), &h) == 0,
		"spawn");
	closed = wait_in_service();
	atomic_store(&go, 1);
	t_join(h, NULL, "cancel queued calls");
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_JOB_RC(&jx, -ECANCELED);
	CHECK_JOB_RC(&ju, -ECANCELED);
	CHECK_JOB_RC(&jy, -ECANCELED);
	CHECK_JOB_RC(&jw, -ETIME);
	CHECK_JOB_RC(&jv, -ETIME);
	printf("%s: queued: x, u, y returned %.3f, %.3f, %.3f s after their "
	       "cancels; w, v after %.3f, %.3f s (deadlines 0.2, 0.25 s)\n",
	       t_name, jx.t1 - t_cancel_x, ju.t1 - t_cancel_u,
	       jy.t1 - t_cancel_y, jw.t1 - jw.t0, jv.t1 - jv.t0);
	CHECK(jw.t1 - jw.t0 >= 0.2 - 0.002,
	      "a queued call with a 200 ms task deadline ended after %.3f s",
	      jw.t1 - jw.t0);
	CHECK(jv.t1 - jv.t0 >= 0.25 - 0.002,
	      "a queued call with a 250 ms call deadline ended after %.3f s",
	      jv.t1 - jv.t0);
	CHECK_EQ(ju.attempts, 0);
	CHECK_EQ(jy.attempts, 0);
	CHECK_EQ(jw.attempts, 0);
	CHECK_EQ(jv.attempts, 0);
	/* only x ever reached the server */
	CHECK_EQ(srv_stat(&s, "requests"), r0 + 1);
	check_closed(closed, "queued");

	/* the window of 1 is free again: a call reaches the server */
	job_chat(&jz, p, MSG, NULL);
	h = jobs_spawn(&jz, 1);
	closed = wait_in_service();
	CHECK_EQ(srv_stat(&s, "requests"), r0 + 2);
	CHECK_ERR(myriad_handle_cancel(h), 0);
	CHECK_ERR(t_join(h, NULL, "after the cancels"), -ECANCELED);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_JOB_RC(&jz, -ECANCELED);
	CHECK_EQ(jz.attempts, 1);
	check_closed(closed, "after the cancels");
	pool_done(p);
}

/* ---- a task that finishes with its call in flight ---- */

struct abandon_st {
	MYRIAD_CORO_FIELD;
	myriad_infer_call_t call;
	myriad_timer_t tm;
	myriad_infer_t *p;
};

static _Atomic int abandon_rc = 1;

/* Starts the call; once the server has it, returns DONE, never reading
 * it. */
static int abandon_step(myriad_task_t *self, void *arg)
{
	struct abandon_st *st = arg;
	int rc;

	MYRIAD_BEGIN(st);
	atomic_store(&abandon_rc,
		     myriad_infer_chat(self, st->p, &st->call, MSG, NULL));
	while (!atomic_load(&go)) {
		MYRIAD_SLEEP(st, self, &st->tm, 2000000, rc);
		CHECK_ERR(rc, 0);
	}
	MYRIAD_END(st);
}

static void test_abandon(myriad_infer_t *p)
{
	struct abandon_st st = { .p = p };
	myriad_handle_t *h = NULL;
	int64_t closed;
	double t0;
	int r;

	t_phase("task ends with its call in flight");
	atomic_store(&go, 0);
	REQUIRE(myriad_rt_spawn(rt, abandon_step, &st, sizeof(st), &h) == 0,
		"spawn");
	closed = wait_in_service();
	t0 = t_now();
	atomic_store(&go, 1);
	/* A task that waited for the answer (an hour) ends in the watchdog. */
	r = t_join(h, NULL, "task ends with its call in flight");
	CHECK_ERR(r, 0);
	CHECK_ERR(atomic_load(&abandon_rc), -EAGAIN);
	printf("%s: the task finished %.3f s after its last step\n", t_name,
	       t_now() - t0);
	CHECK_EQ(myriad_handle_release(h), 0);
	check_closed(closed, "abandoned call");
}

/* ---- destroying the pool with calls queued and in flight ---- */

static int all_started(void *p)
{
	struct job *j = p;

	return atomic_load(&j[0].started) && atomic_load(&j[1].started) &&
	       atomic_load(&j[2].started);
}

static void test_destroy(void)
{
	struct job j[3];
	myriad_handle_t *h;
	myriad_infer_t *p = pool_new(NULL);
	int64_t closed;
	double t0;
	int i;

	pool_add(p, &s, 1);
	for (i = 0; i < 3; i++)
		job_chat(&j[i], p, MSG, NULL);
	t_phase("destroy with calls in flight");
	h = jobs_spawn(j, 3);
	closed = wait_in_service();
	/* the other two queue (a call on a destroyed pool is the caller's
	 * error: every call must have been issued) */
	REQUIRE(t_wait_until(all_started, j, 20), "the calls never started");
	/* Destroy that waited for an answer (an hour) ends in the watchdog. */
	t0 = t_now();
	CHECK_ERR(myriad_infer_destroy(p), 0);
	jobs_join(h, "destroy with calls in flight");
	for (i = 0; i < 3; i++)
		CHECK_JOB_RC(&j[i], -ESHUTDOWN);
	printf("%s: destroy took %.3f s\n", t_name, t_now() - t0);
	check_closed(closed, "destroy");
}

int main(int argc, char **argv)
{
	char llm[16];
	const char *args[] = { "--llm-ms", llm, NULL };
	myriad_infer_t *p;
	unsigned w;

	t_name = "infer/cancel";
	w = t_parse_args(argc, argv);
	t_watchdog(60);
	snprintf(llm, sizeof(llm), "%d", LLM_MS);
	srv_start(&s, args);
	rt = t_rt_new(w);

	p = pool_new(NULL);
	pool_add(p, &s, 0);
	test_parent_cancel(p);
	test_handle_cancel(p);
	test_deadline(p);
	test_call_deadline(p);
	test_abandon(p);
	pool_done(p);
	test_queued();
	test_destroy();

	t_rt_done(rt);
	srv_stop(&s);
	return t_result();
}
