/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/window.c: 10,000 agents (times MYRIAD_TEST_SCALE, at least
 * 500) each make one chat at once against one endpoint with a window of
 * 8, on a server that would take them all (--concurrency 100000): the
 * server never has more than 8 in service (/stats in_service_max), every
 * call succeeds on its first attempt, and every reply is delivered to
 * exactly one agent.
 *   window [--workers N] --server PATH
 */
#include "llm.h"

#define WINDOW 8
#define MSG "[{\"role\":\"user\",\"content\":\"agent\"}]"

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
	CHECK(maxin >= 2, "in_service_max %" PRId64 ": no concurrency at all",
	      maxin);
	CHECK_EQ(srv_stat(&s, "requests"), n);
	CHECK_EQ(srv_stat(&s, "completed"), n);
	printf("%s: %" PRId64 " agents, window %d: %.2f s, in_service_max "
	       "%" PRId64 ", connections %" PRId64 "\n",
	       t_name, n, WINDOW, took, maxin,
	       srv_stat(&s, "connections_accepted"));

	pool_done(p);
	free(jobs);
	free(seen);
	t_rt_done(rt);
	srv_stop(&s);
	return t_result();
}
