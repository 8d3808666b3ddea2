/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/cancel.c: cancelling a task whose call is in flight against
 * a server that takes 2 s (--llm-ms 2000): by its parent
 * (myriad_task_cancel), by a handle from outside (myriad_handle_cancel),
 * by its own deadline (myriad_task_deadline), and by a deadline on the
 * call (myriad_io_deadline on the record). The call must return
 * -ECANCELED / -ETIME promptly (well under llm_ms), and the server must
 * see the connection closed mid-request (/stats
 * client_closed_mid_request), so that it stops generating. Calls waiting
 * in the pool's queue (window 1 full, another call waiting ahead of
 * them) are cancelled, and time out there on time (task deadline, call
 * deadline), without ever reaching the server, and the window is free
 * again after.
 *   cancel [--workers N] --server PATH
 */
#include "llm.h"

#define LLM_MS 2000
#define MSG "[{\"role\":\"user\",\"content\":\"cancel me\"}]"

/* "Promptly": a small fraction of llm_ms. */
#define PROMPT_S (0.25 * T_SLOW)

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
	int64_t v = srv_wait_stat(&s, "in_service", 1, 5.0);

	REQUIRE(v >= 1, "the request never reached the server");
	return srv_stat(&s, "client_closed_mid_request");
}

/* The server's in_service gauge drops to 0 within 1 s. */
static int in_service_zero(void)
{
	double end = t_now() + 1.0 * T_SLOW;

	while (srv_stat(&s, "in_service") != 0) {
		if (t_now() > end)
			return 0;
		t_sleep_ms(5);
	}
	return 1;
}

/* The server saw the connection close: within 1 s of the call's end. */
static void check_closed(int64_t before, const char *what)
{
	int64_t now =
		srv_wait_stat(&s, "client_closed_mid_request", before + 1, 1.0);

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
	CHECK(took < PROMPT_S, "returned %.3f s after the cancel (llm_ms %d)",
	      took, LLM_MS);
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
	CHECK(took < PROMPT_S, "returned %.3f s after the cancel", took);
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
	CHECK(took >= 0.3 - 0.002 && took < 0.3 + PROMPT_S,
	      "a 300 ms deadline ended the call after %.3f s", took);
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
	CHECK(took >= 0.3 - 0.002 && took < 0.3 + PROMPT_S,
	      "a 300 ms call deadline ended the call after %.3f s", took);
	check_closed(closed, "call deadline");
}

/* ---- calls cancelled while queued ---- */

struct queue_st {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	myriad_task_t *x, *u, *y;
	struct job *jx, *ju, *jy, *jw, *jv;
};

static myriad_task_t *spawn_job(myriad_task_t *self, struct job *j)
{
	struct call_st c;
	myriad_task_t *t;
	int err;

	memset(&c, 0, sizeof(c));
	c.j = j;
	t = myriad_task_spawn(self, call_step, &c, sizeof(c), 0, &err);
	REQUIRE(t, "spawn: %s", strerror(-err));
	return t;
}

#define GAP_NS (10000000ull * T_SLOW) /* between spawns: queue order */

/*
 * x takes the window of 1; u, y, w and v queue behind it in that order.
 * u stays; y is cancelled, w's task deadline and v's call deadline pass,
 * all three while u (which cannot go either) is ahead of them.
 */
static int queue_step(myriad_task_t *self, void *p)
{
	struct queue_st *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	st->x = spawn_job(self, st->jx);
	while (!atomic_load(&go)) {
		MYRIAD_SLEEP(st, self, &st->tm, 2000000, rc);
		CHECK_ERR(rc, 0);
	}
	st->u = spawn_job(self, st->ju);
	MYRIAD_SLEEP(st, self, &st->tm, GAP_NS, rc);
	st->y = spawn_job(self, st->jy);
	MYRIAD_SLEEP(st, self, &st->tm, GAP_NS, rc);
	spawn_job(self, st->jw); /* with a task deadline of 200 ms */
	MYRIAD_SLEEP(st, self, &st->tm, GAP_NS, rc);
	spawn_job(self, st->jv); /* with a call deadline of 250 ms */
	MYRIAD_SLEEP(st, self, &st->tm, 100000000, rc);
	CHECK_ERR(rc, 0);
	CHECK(!st->jy->finished, "the queued call ended by itself: %d",
	      st->jy->rc);
	t_cancel_y = t_now();
	CHECK_ERR(myriad_task_cancel(st->y), 0);
	/* long after w's and v's deadlines, before x's answer */
	MYRIAD_SLEEP(st, self, &st->tm, 1500000000, rc);
	CHECK_ERR(rc, 0);
	/* u first: x's slot must not go to u */
	t_cancel_u = t_now();
	CHECK_ERR(myriad_task_cancel(st->u), 0);
	MYRIAD_SLEEP(st, self, &st->tm, 50000000, rc);
	CHECK_ERR(rc, 0);
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
	CHECK(jx.t1 - t_cancel_x < PROMPT_S,
	      "the call in flight returned %.3f s after its cancel",
	      jx.t1 - t_cancel_x);
	CHECK(ju.t1 - t_cancel_u < PROMPT_S,
	      "the first queued call returned %.3f s after its cancel",
	      ju.t1 - t_cancel_u);
	CHECK(jy.t1 - t_cancel_y < PROMPT_S,
	      "a queued call (behind another) returned %.3f s after its "
	      "cancel",
	      jy.t1 - t_cancel_y);
	CHECK(jw.t1 - jw.t0 >= 0.2 - 0.002 && jw.t1 - jw.t0 < 0.2 + PROMPT_S,
	      "a queued call with a 200 ms task deadline ended after %.3f s",
	      jw.t1 - jw.t0);
	CHECK(jv.t1 - jv.t0 >= 0.25 - 0.002 && jv.t1 - jv.t0 < 0.25 + PROMPT_S,
	      "a queued call with a 250 ms call deadline ended after %.3f s",
	      jv.t1 - jv.t0);
	CHECK_EQ(ju.attempts, 0);
	CHECK_EQ(jy.attempts, 0);
	CHECK_EQ(jw.attempts, 0);
	CHECK_EQ(jv.attempts, 0);
	/* only x ever reached the server */
	CHECK_EQ(srv_stat(&s, "requests"), r0 + 1);
	check_closed(closed, "queued");

	/* the window of 1 is free again: a call goes through */
	run_chat(&jz, p, MSG, NULL, "after the cancels");
	CHECK_JOB_RC(&jz, 0);
	CHECK_EQ(jz.attempts, 1);
	CHECK_EQ(srv_stat(&s, "requests"), r0 + 2);
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
	r = t_join(h, NULL, "task ends with its call in flight");
	CHECK_ERR(r, 0);
	CHECK_ERR(atomic_load(&abandon_rc), -EAGAIN);
	CHECK(t_now() - t0 < PROMPT_S,
	      "the task finished %.3f s after its last step: it waited for "
	      "the answer instead of cancelling the call",
	      t_now() - t0);
	CHECK_EQ(myriad_handle_release(h), 0);
	check_closed(closed, "abandoned call");
}

/* ---- destroying the pool with calls queued and in flight ---- */

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
	/* let the other two queue */
	t_sleep_ms(50);
	t0 = t_now();
	CHECK_ERR(myriad_infer_destroy(p), 0);
	CHECK(t_now() - t0 < PROMPT_S, "destroy took %.3f s", t_now() - t0);
	jobs_join(h, "destroy with calls in flight");
	for (i = 0; i < 3; i++) {
		CHECK_JOB_RC(&j[i], -ESHUTDOWN);
		CHECK(j[i].t1 - t0 < PROMPT_S,
		      "call %d ended %.3f s after the destroy", i,
		      j[i].t1 - t0);
	}
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
