/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/window.c: 10,000 agents (times MYRIAD_TEST_SCALE, at least
 * 500) each make one chat at once against one endpoint with a window of
 * 8, on a server that would take them all (--concurrency 100000): the
 * server never has more than 8 in service (/stats in_service_max), every
 * call succeeds on its first attempt, and every reply is delivered to
 * exactly one agent. How many the server had at once depends on how fast
 * each side runs: printed. That the window is used whole is checked
 * against a server that never answers (test_window_full()).
 *   window [--workers N] --server PATH
 */
#include "llm.h"

#define WINDOW 8
#define MSG "[{\"role\":\"user\",\"content\":\"agent\"}]"

static int all_started(void *p)
{
	struct job *j = p;
	int i;

	for (i = 0; i < 2 * WINDOW; i++)
		if (!atomic_load(&j[i].started))
			return 0;
	return 1;
}

/*
 * The window used whole, whatever the machine's timing: against a server
 * that answers after an hour, twice WINDOW agents at once. Nothing
 * completes to make room, so the server gets exactly WINDOW of them in
 * service (a pool that ran one call at a time stops at 1: the wait's
 * watchdog says so), and no more once every call was issued; the pool's
 * destruction ends them all.
 */
static void test_window_full(void)
{
	const char *args[] = { "--llm-ms", "3600000", "--concurrency", "100000",
			       NULL };
	static struct job j[2 * WINDOW];
	struct srv s;
	myriad_handle_t *h;
	myriad_infer_t *p;
	int i;

	t_phase("the window full");
	srv_start(&s, args);
	p = pool_new(NULL);
	pool_add(p, &s, WINDOW);
	for (i = 0; i < 2 * WINDOW; i++)
		job_chat(&j[i], p, MSG, NULL);
	h = jobs_spawn(j, 2 * WINDOW);
	CHECK_EQ(srv_wait_stat(&s, "in_service", WINDOW, 20), WINDOW);
	REQUIRE(t_wait_until(all_started, j, 20), "the calls never started");
	CHECK_EQ(srv_stat(&s, "in_service"), WINDOW);
	CHECK_EQ(srv_stat(&s, "requests"), WINDOW);
	CHECK(srv_stat(&s, "in_service_max") <= WINDOW,
	      "the server had %" PRId64 " requests in service, window %d",
	      srv_stat(&s, "in_service_max"), WINDOW);
	CHECK_ERR(myriad_infer_destroy(p), 0);
	jobs_join(h, "the window full");
	for (i = 0; i < 2 * WINDOW; i++)
		CHECK_JOB_RC(&j[i], -ESHUTDOWN);
	srv_stop(&s);
}

int main(int argc, char **argv)
{
	const char *args[] = { "--llm-ms", "2", "--concurrency", "100000",
			       NULL };
	struct srv s;
	struct job *jobs;
	unsigned char *seen;
	myriad_infer_t *p;
	int64_t n, i, bad = 0, maxin;
	double t0, took;
	unsigned w;

	t_name = "infer/window";
	w = t_parse_args(argc, argv);
	t_watchdog(120);
	n = t_scaled_min(10000, 500);
	srv_start(&s, args);
	rt = t_rt_new(w);
	p = pool_new(NULL);
	pool_add(p, &s, WINDOW);
	jobs = calloc((size_t)n, sizeof(*jobs));
	seen = calloc((size_t)n + 1, 1);
	REQUIRE(jobs && seen, "calloc");
	for (i = 0; i < n; i++)
		job_chat(&jobs[i], p, MSG, NULL);

	t0 = t_now();
	run_jobs(jobs, (int)n, "agents");
	took = t_now() - t0;

	for (i = 0; i < n; i++) {
		const struct job *j = &jobs[i];
		unsigned long long seq = 0;

		if (j->rc != 0 || j->attempts != 1) {
			if (bad++ < 5)
				CHECK_JOB_RC(j, 0);
			CHECK(j->rc != 0 || j->attempts == 1,
			      "agent %" PRId64 ": %u attempts", i, j->attempts);
			continue;
		}
		if (sscanf(j->content, "reply %llu", &seq) != 1 || seq < 1 ||
		    seq > (unsigned long long)n || seen[seq]) {
			t_failf(__FILE__, __LINE__,
				"agent %" PRId64 ": reply '%s' (out of range "
				"or seen twice)",
				i, j->content);
			continue;
		}
		seen[seq] = 1;
	}
	CHECK(bad == 0, "%" PRId64 " of %" PRId64 " calls failed", bad, n);
	maxin = srv_stat(&s, "in_service_max");
	CHECK(maxin <= WINDOW,
	      "the server had %" PRId64 " requests in service, window %d",
	      maxin, WINDOW);
	CHECK_EQ(srv_stat(&s, "requests"), n);
	CHECK_EQ(srv_stat(&s, "completed"), n);
	printf("%s: %" PRId64 " agents, window %d: %.2f s, in_service_max "
	       "%" PRId64 ", connections %" PRId64 "\n",
	       t_name, n, WINDOW, took, maxin,
	       srv_stat(&s, "connections_accepted"));

	pool_done(p);
	free(jobs);
	free(seen);
	test_window_full();
	t_rt_done(rt);
	srv_stop(&s);
	return t_result();
}
