/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/balance.c: least-outstanding balancing across two endpoints
 * (two servers). With windows 8 and 8 both receive about half of the
 * calls; with windows 1 and 16 the second receives most (each call goes
 * where outstanding / window is least), and neither server ever has more
 * in service than its endpoint's window. Each call's result names the
 * endpoint that served it, and those counts match what each server
 * completed.
 *   balance [--workers N] --server PATH
 */
#include "llm.h"

#define MSG "[{\"role\":\"user\",\"content\":\"balance\"}]"

static struct srv a, b;

static void run(unsigned wa, unsigned wb, int n, int *na, int *nb)
{
	struct job *jobs = calloc((size_t)n, sizeof(*jobs));
	myriad_infer_t *p;
	int i, bad = 0;

	REQUIRE(jobs, "calloc");
	srv_reset_stats(&a);
	srv_reset_stats(&b);
	p = pool_new(NULL);
	CHECK_EQ(pool_add(p, &a, wa), 0);
	CHECK_EQ(pool_add(p, &b, wb), 1);
	for (i = 0; i < n; i++)
		job_chat(&jobs[i], p, MSG, NULL);
	run_jobs(jobs, n, "balance");
	*na = *nb = 0;
	for (i = 0; i < n; i++) {
		if (jobs[i].rc != 0 && bad++ < 5)
			CHECK_JOB_RC(&jobs[i], 0);
		if (jobs[i].endpoint == 0)
			(*na)++;
		else if (jobs[i].endpoint == 1)
			(*nb)++;
		else
			CHECK(0, "job %d: endpoint %d", i, jobs[i].endpoint);
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(srv_stat(&a, "completed"), *na);
	CHECK_EQ(srv_stat(&b, "completed"), *nb);
	CHECK(srv_stat(&a, "in_service_max") <= wa,
	      "server a: %" PRId64 " in service, window %u",
	      srv_stat(&a, "in_service_max"), wa);
	CHECK(srv_stat(&b, "in_service_max") <= wb,
	      "server b: %" PRId64 " in service, window %u",
	      srv_stat(&b, "in_service_max"), wb);
	printf("%s: windows %u and %u, %d calls: %d and %d\n", t_name, wa, wb,
	       n, *na, *nb);
	pool_done(p);
	free(jobs);
}

int main(int argc, char **argv)
{
	const char *args[] = { "--llm-ms", "10", "--concurrency", "100000",
			       NULL };
	int n, na, nb;
	unsigned w;

	t_name = "infer/balance";
	w = t_parse_args(argc, argv);
	t_watchdog(60);
	srv_start(&a, args);
	srv_start(&b, args);
	rt = t_rt_new(w);
	n = (int)t_scaled_min(1000, 200);

	t_phase("windows 8 and 8");
	run(8, 8, n, &na, &nb);
	CHECK(na >= n * 3 / 10 && nb >= n * 3 / 10,
	      "windows 8 and 8: %d and %d of %d calls", na, nb, n);

	t_phase("windows 1 and 16");
	run(1, 16, n, &na, &nb);
	/* 16/17 of the capacity is b's */
	CHECK(na >= 1 && nb >= n * 8 / 10,
	      "windows 1 and 16: %d and %d of %d calls", na, nb, n);

	t_rt_done(rt);
	srv_stop(&a);
	srv_stop(&b);
	return t_result();
}
