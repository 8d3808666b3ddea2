/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/cooldown.c: one cooldown per endpoint. The server serves one
 * request at a time and answers the rest 429 with Retry-After 1 s
 * (--overload 429 --concurrency 1). Agents start calls at once; after
 * each 429 the whole endpoint must pause: no request reaches the server
 * until the advice has passed (measured by polling /stats every few ms
 * from the main thread), including calls started by other agents in the
 * meantime; then every call completes.
 *
 * The timing argument: a 429 counted at poll k left the server after poll
 * k-1, so the client got it after t[k-1] and must send nothing new before
 * t[k-1] + 1 s. Requests already on their way when the 429 arrived are
 * allowed SETTLE to land.
 *
 * The release is spread over cooldown_jitter_ns (400 ms here), not a
 * thundering herd: after the first burst (every agent at once), no more
 * than BURST requests reach the server within any ~10 ms (a poll gap plus
 * 10 ms). With 12 calls spread over 400 ms, 6 in one such window is a
 * chance below 1e-3; a release of every waiting call at once makes it.
 *   cooldown [--workers N] --server PATH
 */
#include "llm.h"

#define AGENTS 8
#define LATE 4 /* agents that start during the first cooldown */
#define RETRY_S 1.0
#define SETTLE (0.1 * T_SLOW)
#define MSG "[{\"role\":\"user\",\"content\":\"cool\"}]"
#define MAXPOLL 20000
#define BURST 5
#define BURST_WINDOW 0.010

static struct srv s;

struct sample {
	double t;
	int64_t requests, rejected, completed;
};

static struct sample smp[MAXPOLL];
static int nsmp;

static void sample(void)
{
	char buf[2048];

	if (nsmp == MAXPOLL)
		return;
	srv_stats(&s, buf, sizeof(buf));
	smp[nsmp].t = t_now();
	smp[nsmp].requests = stat_of(buf, "requests");
	smp[nsmp].rejected = stat_of(buf, "rejected_429");
	smp[nsmp].completed = stat_of(buf, "completed");
	nsmp++;
}

/* The late agents start once the first 429 has been seen. */
static _Atomic int late_go;

struct late_st {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	struct job *jobs;
};

static int late_step(myriad_task_t *self, void *p)
{
	struct late_st *st = p;
	struct call_st c;
	int i, rc, err;

	MYRIAD_BEGIN(st);
	while (!atomic_load(&late_go)) {
		MYRIAD_SLEEP(st, self, &st->tm, 1000000, rc);
		CHECK_ERR(rc, 0);
	}
	for (i = 0; i < LATE; i++) {
		memset(&c, 0, sizeof(c));
		c.j = &st->jobs[i];
		myriad_task_spawn(self, call_step, &c, sizeof(c), 0, &err);
		CHECK(err == 0, "spawn: %s", strerror(-err));
	}
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static int all_done(const struct job *j, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!j[i].finished)
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	const char *args[] = { "--overload",
			       "429",
			       "--concurrency",
			       "1",
			       "--retry-after",
			       "1",
			       "--llm-ms",
			       "10",
			       NULL };
	struct myriad_infer_opts o;
	static struct job jobs[AGENTS + LATE];
	struct late_st lst;
	myriad_handle_t *h, *hl = NULL;
	myriad_infer_t *p;
	int i, k, events = 0, checked = 0, late_started = 0;
	int64_t max_burst = 0;
	double end, t_late = 0, first;
	unsigned w;

	t_name = "infer/cooldown";
	w = t_parse_args(argc, argv);
	t_watchdog(90);
	srv_start(&s, args);
	rt = t_rt_new(w);
	opts_init(&o);
	o.max_retries = 40;
	o.backoff_base_ns = 5 * 1000000ull;
	o.backoff_max_ns = 50 * 1000000ull;
	o.cooldown_jitter_ns = 400 * 1000000ull;
	p = pool_new(&o);
	pool_add(p, &s, 16);
	for (i = 0; i < AGENTS + LATE; i++)
		job_chat(&jobs[i], p, MSG, NULL);

	memset(&lst, 0, sizeof(lst));
	lst.jobs = &jobs[AGENTS];
	REQUIRE(myriad_rt_spawn(rt, late_step, &lst, sizeof(lst), &hl) == 0,
		"spawn");
	t_phase("agents under cooldowns");
	sample();
	h = jobs_spawn(jobs, AGENTS);
	end = t_now() + 60.0 * T_SLOW;
	/* Sample until every call is done (the jobs' 'finished' is written
	 * by workers: read it only as a hint, the join below orders). */
	while (t_now() < end) {
		sample();
		if (!late_started && smp[nsmp - 1].rejected > 0) {
			late_started = 1;
			t_late = t_now();
			atomic_store(&late_go, 1);
		}
		if (smp[nsmp - 1].completed == AGENTS + LATE)
			break;
		t_sleep_ms(2);
	}
	atomic_store(&late_go, 1);
	jobs_join(h, "agents");
	t_join(hl, NULL, "late agents");
	CHECK_EQ(myriad_handle_release(hl), 0);
	CHECK(all_done(jobs, AGENTS + LATE), "calls not finished");
	for (i = 0; i < AGENTS + LATE; i++)
		CHECK_JOB_RC(&jobs[i], 0);
	sample();
	CHECK_EQ(smp[nsmp - 1].completed, AGENTS + LATE);
	CHECK(smp[nsmp - 1].rejected > 0, "no 429 at all: nothing tested");

	/* Every 429 pauses the endpoint. */
	for (k = 1; k < nsmp; k++) {
		double from, until;
		int64_t base = -1;
		int m;

		if (smp[k].rejected == smp[k - 1].rejected)
			continue;
		events++;
		from = smp[k].t + SETTLE;
		until = smp[k - 1].t + RETRY_S - 0.005;
		for (m = k; m < nsmp && smp[m].t <= until; m++) {
			if (smp[m].t < from)
				continue;
			if (base < 0) {
				base = smp[m].requests;
				checked++;
				continue;
			}
			CHECK(smp[m].requests == base,
			      "a 429 seen at +%.3f s (none at +%.3f s): "
			      "%" PRId64 " requests at +%.3f s, %" PRId64
			      " at +%.3f s, inside the 1 s cooldown",
			      smp[k].t - smp[0].t, smp[k - 1].t - smp[0].t,
			      base, from - smp[0].t, smp[m].requests,
			      smp[m].t - smp[0].t);
			if (smp[m].requests != base)
				break;
		}
	}
	CHECK(checked > 0, "no cooldown could be observed (polls too slow?)");
	/* Releases are spread: after the first 429, no bursts. */
	for (k = 1; k < nsmp && smp[k].rejected == 0; k++)
		;
	first = k < nsmp ? smp[k].t : 0;
	while (k < nsmp && smp[k].t < first + SETTLE)
		k++;
	for (k = k + 1; k < nsmp; k++) {
		int m = k;
		int64_t burst;

		while (m + 1 < nsmp && smp[m + 1].t <= smp[k].t + BURST_WINDOW)
			m++;
		burst = smp[m].requests - smp[k - 1].requests;
		if (burst > max_burst)
			max_burst = burst;
		if (burst > BURST) {
			t_failf(__FILE__, __LINE__,
				"%" PRId64 " requests arrived between +%.3f s "
				"and +%.3f s: released at once, not spread "
				"over the %.0f ms jitter",
				burst, smp[k - 1].t - smp[0].t,
				smp[m].t - smp[0].t,
				o.cooldown_jitter_ns / 1e6);
			break;
		}
	}
	/* The late agents started during the first cooldown and waited. */
	for (i = AGENTS; i < AGENTS + LATE; i++)
		CHECK(jobs[i].t1 - jobs[i].t0 >= 0.05,
		      "late agent %d done in %.3f s", i,
		      jobs[i].t1 - jobs[i].t0);
	printf("%s: %d calls in %.2f s, %" PRId64 " 429s (%d 429 events "
	       "observed, %d cooldowns checked), late agents at +%.3f s, "
	       "largest burst after the first %" PRId64 "\n",
	       t_name, AGENTS + LATE, smp[nsmp - 1].t - smp[0].t,
	       smp[nsmp - 1].rejected, events, checked, t_late - smp[0].t,
	       max_burst);

	pool_done(p);
	t_rt_done(rt);
	srv_stop(&s);
	return t_result();
}
