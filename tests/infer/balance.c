/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/balance.c: least-outstanding balancing across two endpoints
 * (two servers). Calls started one at a time against servers that never
 * answer go, each, where outstanding / window is least (ties to the
 * first): with windows 8 and 8 they alternate, with 1 and 16 the first
 * takes one and the second the rest. Many calls at once against servers
 * that answer: neither server ever has more in service than its
 * endpoint's window, each call's result names the endpoint that served
 * it, and those counts match what each server completed; the split
 * (about half, and most to the second) depends on how fast each server
 * runs on a loaded machine: printed.
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

/* Servers that answer after an hour: nothing completes. */
static struct srv ha, hb;
static const char *const hour[] = { "--llm-ms", "3600000", "--concurrency",
				    "100000", NULL };

static int64_t in_service(void)
{
	return srv_stat(&ha, "in_service") + srv_stat(&hb, "in_service");
}

/*
 * n calls started one at a time, each once the one before is in service
 * at a server: each must go where outstanding / window is least, ties to
 * the first endpoint (the model below), whatever the machine's timing.
 * Then the pool's destruction ends them all.
 */
static void one_by_one(unsigned wa, unsigned wb, int n)
{
	static struct job j[16];
	myriad_handle_t *h[16];
	myriad_infer_t *p = pool_new(NULL);
	unsigned fa = 0, fb = 0;
	double end;
	int k;

	REQUIRE(n <= 16 && (unsigned)n <= wa + wb, "%d calls", n);
	CHECK_EQ(pool_add(p, &ha, wa), 0);
	CHECK_EQ(pool_add(p, &hb, wb), 1);
	for (k = 0; k < n; k++) {
		/* The model: the lower fill of the two with room. */
		if (fa < wa && (fb >= wb || (double)fa / wa <= (double)fb / wb))
			fa++;
		else
			fb++;
		job_chat(&j[k], p, MSG, NULL);
		h[k] = jobs_spawn(&j[k], 1);
		end = t_now() + 20.0 * T_SLOW;
		while (in_service() < k + 1 && t_now() < end)
			t_sleep_ms(2);
		CHECK(srv_stat(&ha, "in_service") == fa &&
			      srv_stat(&hb, "in_service") == fb,
		      "windows %u and %u, call %d: in service %" PRId64
		      " and %" PRId64 ", want %u and %u",
		      wa, wb, k + 1, srv_stat(&ha, "in_service"),
		      srv_stat(&hb, "in_service"), fa, fb);
	}
	CHECK_ERR(myriad_infer_destroy(p), 0);
	for (k = 0; k < n; k++) {
		jobs_join(h[k], "one by one");
		CHECK_JOB_RC(&j[k], -ESHUTDOWN);
	}
	/* Closed: the servers drop them (before the next run counts). */
	end = t_now() + 20.0 * T_SLOW;
	while (in_service() > 0 && t_now() < end)
		t_sleep_ms(2);
	CHECK_EQ(in_service(), 0);
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

	t_phase("windows 1 and 16");
	run(1, 16, n, &na, &nb);
	/* The first call finds both idle: the first endpoint's. */
	CHECK(na >= 1, "windows 1 and 16: %d and %d of %d calls", na, nb, n);

	t_phase("one by one");
	srv_start(&ha, hour);
	srv_start(&hb, hour);
	one_by_one(8, 8, 6);
	one_by_one(1, 16, 5);
	srv_stop(&ha);
	srv_stop(&hb);

	t_rt_done(rt);
	srv_stop(&a);
	srv_stop(&b);
	return t_result();
}
