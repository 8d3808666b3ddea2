/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/faults.c: every fault mode of the mock server ends with the
 * documented result, through myriad_infer_* from real tasks:
 *   429 (--overload 429, Retry-After in seconds, and as an HTTP date) ->
 *     retried no earlier than advised, then success;
 *   --fail-first (500 then success) -> success on the third attempt, and
 *     with the retries spent -> MYRIAD_INFER_EHTTP 500;
 *   reset -> retried (connection errors), all of them -> ECONNECT;
 *   nothing listening -> retried, then ECONNECT;
 *   truncated -> retried, all of them -> ECONNECT;
 *   oversized (over max_response) -> ETOOBIG, not retried; under it: ok;
 *   malformed (not JSON, no choices / no data) -> EBODY, not retried;
 *   slow past timeout_ns -> -ETIMEDOUT after the retries; slow within: ok;
 *   a call deadline (myriad_io_deadline) over endless 500s -> -ETIME.
 * The server always sends retry-after-ms beside Retry-After, which the
 * client prefers; a small scripted responder in this file (a thread with
 * blocking sockets) sends each header alone, and statuses and bodies the
 * mock server has no mode for (408, 409, 503, 404, odd JSON), measuring
 * when each retry arrives. Every error comes with a message.
 *   faults [--workers N] --server PATH
 */
#include <pthread.h>

#include "llm.h"

#define MSG "[{\"role\":\"user\",\"content\":\"fault\"}]"

/* A pool for the fault tests: short backoffs, 'retries' retries. */
static myriad_infer_t *fault_pool(const struct srv *s, unsigned retries,
				  uint64_t timeout_ms, size_t max_response)
{
	struct myriad_infer_opts o;
	myriad_infer_t *p;

	opts_init(&o);
	o.max_retries = retries;
	o.backoff_base_ns = 10 * 1000000ull;
	o.backoff_max_ns = 40 * 1000000ull;
	o.timeout_ns = timeout_ms * 1000000ull;
	o.max_response = max_response;
	p = pool_new(&o);
	pool_add(p, s, 0);
	return p;
}

/* ---- the mock server's modes ---- */

/*
 * --overload 429 with --concurrency 1: two calls at once, one is served
 * (llm_ms 300), the other gets 429 and must wait out the advice (1.5 s
 * from retry-after-ms; Retry-After says 2, or a date) before its retry,
 * which then succeeds.
 */
static void test_429(int date)
{
	const char *args[] = { "--overload",
			       "429",
			       "--concurrency",
			       "1",
			       "--llm-ms",
			       "300",
			       "--retry-after",
			       "1.5",
			       date ? "--retry-after-date" : NULL,
			       NULL };
	struct srv s;
	struct job j[2];
	myriad_infer_t *p;
	int i, retried = -1;

	srv_start(&s, args);
	p = fault_pool(&s, 3, 0, 0);
	job_chat(&j[0], p, MSG, NULL);
	job_chat(&j[1], p, MSG, NULL);
	run_jobs(j, 2, date ? "429 with a date" : "429");
	for (i = 0; i < 2; i++) {
		CHECK_JOB_RC(&j[i], 0);
		CHECK_EQ(j[i].http_status, 200);
		if (j[i].attempts == 2)
			retried = i;
		else
			CHECK_EQ(j[i].attempts, 1);
	}
	CHECK(retried >= 0, "neither call was retried (attempts %u, %u)",
	      j[0].attempts, j[1].attempts);
	if (retried >= 0) {
		double took = j[retried].t1 - j[retried].t0;

		/* the 429 at once, >= 1.5 s of advice, 300 ms of service */
		CHECK(took >= 1.5 + 0.3 - 0.005,
		      "the retried call took %.3f s: retried before the "
		      "advised 1.5 s",
		      took);
		printf("429: the retried call took %.3f s\n", took);
	}
	CHECK_EQ(srv_stat(&s, "rejected_429"), 1);
	CHECK_EQ(srv_stat(&s, "requests"), 3);
	CHECK_EQ(srv_stat(&s, "completed"), 2);
	pool_done(p);
	srv_stop(&s);
}

/* --fail-first 6: 4 attempts all 500 (retries spent), then 500, 500, ok. */
static void test_500(void)
{
	const char *args[] = { "--fail-first", "6", "--llm-ms", "5", NULL };
	struct srv s;
	struct job j;
	myriad_infer_t *p;

	srv_start(&s, args);
	p = fault_pool(&s, 3, 0, 0);
	run_chat(&j, p, MSG, NULL, "500 x4");
	CHECK_JOB_RC(&j, MYRIAD_INFER_EHTTP);
	CHECK_EQ(j.http_status, 500);
	CHECK_EQ(j.attempts, 4);
	CHECK(strstr(j.error, "500") != NULL, "error '%s'", j.error);
	run_chat(&j, p, MSG, NULL, "500, 500, ok");
	CHECK_JOB_RC(&j, 0);
	CHECK_EQ(j.http_status, 200);
	CHECK_EQ(j.attempts, 3);
	CHECK(!strcmp(j.content, "reply 7 to 1 message"), "content '%s'",
	      j.content);
	CHECK_EQ(srv_stat(&s, "fault_500"), 6);
	CHECK_EQ(srv_stat(&s, "requests"), 7);
	pool_done(p);
	srv_stop(&s);
}

/*
 * A connection fault on every request: 'retries' + 1 attempts, then
 * MYRIAD_INFER_ECONNECT. Then a fraction of them with generous retries:
 * every call succeeds, and the retries made are the faults the server
 * counted.
 */
static void test_conn_fault(const char *opt, const char *counter)
{
	const char *all[] = { opt, "1", "--llm-ms", "5", NULL };
	const char *some[] = {
		opt, "0.3", "--llm-ms", "5", "--seed", "11", NULL
	};
	struct job j[16];
	struct srv s;
	myriad_infer_t *p;
	int64_t faults, reqs;
	unsigned extra = 0;
	int i;

	srv_start(&s, all);
	p = fault_pool(&s, 3, 0, 0);
	run_chat(&j[0], p, MSG, NULL, opt);
	CHECK_JOB_RC(&j[0], MYRIAD_INFER_ECONNECT);
	CHECK_EQ(j[0].attempts, 4);
	faults = srv_stat(&s, counter);
	reqs = srv_stat(&s, "requests");
	CHECK(faults == 4 && reqs == 4,
	      "%s: 4 attempts, the server saw %" PRId64 " requests, %" PRId64
	      " %s",
	      opt, reqs, faults, counter);
	pool_done(p);
	srv_stop(&s);

	srv_start(&s, some);
	p = fault_pool(&s, 12, 0, 0);
	for (i = 0; i < 16; i++)
		job_chat(&j[i], p, MSG, NULL);
	/* one at a time: each attempt is the server's next draw */
	for (i = 0; i < 16; i++) {
		run_jobs(&j[i], 1, opt);
		CHECK_JOB_RC(&j[i], 0);
		CHECK_EQ(j[i].http_status, 200);
		extra += j[i].attempts - 1;
	}
	faults = srv_stat(&s, counter);
	CHECK(faults > 0, "%s 0.3: no fault in 16 calls", opt);
	/*
	 * Every request the server saw is an attempt: a reset of a kept-alive
	 * connection must not be replayed behind the pool's back (libcurl
	 * does so once, on a fresh connection, unless told otherwise), or
	 * the server generates twice and max_retries does not bound it.
	 */
	CHECK(extra == faults,
	      "%s 0.3: %u retries counted in attempts, the server made %" PRId64
	      " faults (replayed outside the pool's retries?)",
	      opt, extra, faults);
	CHECK_EQ(srv_stat(&s, "requests"), 16 + (int64_t)extra);
	pool_done(p);
	srv_stop(&s);
}

/* Nothing listens: connection refused on every attempt -> ECONNECT. */
static void test_refused(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	struct srv none;
	struct job j;
	myriad_infer_t *p;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* a port that was free a moment ago, closed again */
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			getsockname(fd, (struct sockaddr *)&a, &al) == 0,
		"bind: %s", strerror(errno));
	memset(&none, 0, sizeof(none));
	none.port = ntohs(a.sin_port);
	snprintf(none.url, sizeof(none.url), "http://127.0.0.1:%d", none.port);
	p = fault_pool(&none, 2, 0, 0);
	run_chat(&j, p, MSG, NULL, "refused");
	close(fd);
	CHECK_JOB_RC(&j, MYRIAD_INFER_ECONNECT);
	CHECK_EQ(j.attempts, 3);
	CHECK_EQ(j.http_status, 0);
	pool_done(p);
}

/* A body over max_response: ETOOBIG at once; under it: the content. */
static void test_oversize(void)
{
	const char *args[] = { "--fault-oversize",
			       "1",
			       "--oversize-bytes",
			       "300000",
			       "--llm-ms",
			       "5",
			       NULL };
	struct srv s;
	struct job j;
	myriad_infer_t *p;

	srv_start(&s, args);
	p = fault_pool(&s, 3, 0, 64 * 1024);
	run_chat(&j, p, MSG, NULL, "oversize");
	CHECK_JOB_RC(&j, MYRIAD_INFER_ETOOBIG);
	CHECK_EQ(j.attempts, 1);
	CHECK_EQ(srv_stat(&s, "requests"), 1);
	pool_done(p);

	p = fault_pool(&s, 3, 0, 1 << 20);
	run_chat(&j, p, MSG, NULL, "big but allowed");
	CHECK_JOB_RC(&j, 0);
	CHECK_EQ(j.attempts, 1);
	CHECK(j.content_len >= 299000 && j.content_len <= 300000 &&
		      j.content[0] == 'x',
	      "content of %zu bytes", j.content_len);
	pool_done(p);

	/* embeddings too */
	p = fault_pool(&s, 3, 0, 64 * 1024);
	job_embed(&j, p, "big");
	run_jobs(&j, 1, "oversize embedding");
	CHECK_JOB_RC(&j, MYRIAD_INFER_ETOOBIG);
	CHECK_EQ(j.attempts, 1);
	pool_done(p);
	srv_stop(&s);
}

/* 200 with a body that is not JSON, then one without choices / data. */
static void test_malformed(void)
{
	const char *args[] = { "--fault-malformed", "1", "--llm-ms", "5",
			       NULL };
	struct srv s;
	struct job j[4];
	myriad_infer_t *p;
	int i;

	srv_start(&s, args);
	p = fault_pool(&s, 3, 0, 0);
	for (i = 0; i < 4; i++) {
		if (i < 2)
			job_chat(&j[i], p, MSG, NULL);
		else
			job_embed(&j[i], p, "malformed");
		run_jobs(&j[i], 1, "malformed");
		CHECK_JOB_RC(&j[i], MYRIAD_INFER_EBODY);
		CHECK_EQ(j[i].attempts, 1);
		CHECK_EQ(j[i].http_status, 200);
	}
	CHECK(strstr(j[0].error, "JSON") != NULL, "error '%s'", j[0].error);
	CHECK(strstr(j[1].error, "choices") != NULL, "error '%s'", j[1].error);
	CHECK(strstr(j[3].error, "data") != NULL, "error '%s'", j[3].error);
	CHECK_EQ(srv_stat(&s, "requests"), 4);
	pool_done(p);
	srv_stop(&s);
}

/*
 * A body dripped 8 bytes per 50 ms (about 2 s for a chat): with a 400 ms
 * timeout, -ETIMEDOUT after 2 attempts; the server sees each connection
 * closed mid-answer. Dripped per 2 ms with a 5 s timeout: fine.
 */
static void test_slow(void)
{
	const char *slow[] = { "--fault-slow", "1", "--drip-ms", "50",
			       "--llm-ms",     "5", NULL };
	const char *fast[] = { "--fault-slow", "1", "--drip-ms", "2",
			       "--llm-ms",     "5", NULL };
	struct srv s;
	struct job j;
	myriad_infer_t *p;
	double took;

	srv_start(&s, slow);
	p = fault_pool(&s, 1, 400, 0);
	run_chat(&j, p, MSG, NULL, "slow past the timeout");
	CHECK_JOB_RC(&j, -ETIMEDOUT);
	CHECK_EQ(j.attempts, 2);
	took = j.t1 - j.t0;
	CHECK(took >= 0.8 - 0.005, "two attempts of 400 ms took %.3f s", took);
	printf("slow: two attempts of 400 ms took %.3f s\n", took);
	CHECK_EQ(srv_stat(&s, "requests"), 2);
	CHECK_EQ(srv_wait_stat(&s, "client_closed_mid_request", 2, 10.0), 2);
	pool_done(p);
	srv_stop(&s);

	srv_start(&s, fast);
	p = fault_pool(&s, 1, 5000, 0);
	run_chat(&j, p, MSG, NULL, "slow within the timeout");
	CHECK_JOB_RC(&j, 0);
	CHECK_EQ(j.attempts, 1);
	CHECK(!strcmp(j.content, "reply 1 to 1 message"), "content '%s'",
	      j.content);
	CHECK(j.t1 - j.t0 > 0.05, "a dripped body in %.3f s", j.t1 - j.t0);
	pool_done(p);
	srv_stop(&s);
}

/*
 * A deadline on the call (myriad_io_deadline) bounds its retries: every
 * attempt fails (500), the retries would go on for long; the call ends
 * with -ETIME at its deadline (or up to one backoff before it, when the
 * next retry could not start in time).
 */
static void test_deadline_retries(void)
{
	const char *args[] = { "--fail-first", "100000", "--llm-ms", "5",
			       NULL };
	struct myriad_infer_opts o;
	struct srv s;
	struct job j;
	myriad_infer_t *p;
	double took;

	srv_start(&s, args);
	opts_init(&o);
	o.max_retries = 1000;
	o.backoff_base_ns = 20 * 1000000ull;
	o.backoff_max_ns = 40 * 1000000ull;
	p = pool_new(&o);
	pool_add(p, &s, 0);
	job_chat(&j, p, MSG, NULL);
	j.call_deadline_ms = 300;
	run_jobs(&j, 1, "call deadline over retries");
	CHECK_JOB_RC(&j, -ETIME);
	took = j.t1 - j.t0;
	CHECK(took >= 0.3 - 0.045,
	      "a 300 ms call deadline ended the retries after %.3f s", took);
	CHECK(j.attempts >= 1, "%u attempts in 300 ms", j.attempts);
	printf("deadline: %u attempts in %.3f s\n", j.attempts, took);
	CHECK_EQ(srv_stat(&s, "requests"), j.attempts);
	pool_done(p);
	srv_stop(&s);
}

/* ---- a scripted responder ---- */

#define RAW_MAX 16

struct raw {
	int lfd, port;
	pthread_t th;
	_Atomic int stop;
	/* the answer to request i (0-based); NULL: a good chat answer */
	const char *head[RAW_MAX]; /* status line and extra headers */
	const char *body[RAW_MAX];
	int date_s[RAW_MAX]; /* >0: add "Retry-After: <now + date_s>" */
	/* per request: arrival (monotonic), answer sent (monotonic,
	 * realtime), the date advised (realtime seconds) */
	pthread_mutex_t mu;
	int n;
	double at[RAW_MAX], sent[RAW_MAX], sent_real[RAW_MAX];
	time_t date[RAW_MAX];
	struct srv as_srv;
};

static const char good_chat[] =
	"{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	"\"content\":\"raw ok\"},\"finish_reason\":\"stop\"}],"
	"\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
	"\"total_tokens\":5}}";

static double real_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Answer one whole request in buf[0..len); returns bytes consumed or 0. */
static size_t raw_answer(struct raw *r, int fd, const char *buf, size_t len)
{
	const char *he = memmem(buf, len, "\r\n\r\n", 4), *cl;
	char out[1024], extra[128];
	size_t hl, bl = 0, need;
	const char *head, *body;
	int i, n;

	if (!he)
		return 0;
	hl = (size_t)(he + 4 - buf);
	cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl && cl < he)
		bl = strtoul(cl + 17, NULL, 10);
	need = hl + bl;
	if (len < need)
		return 0;
	pthread_mutex_lock(&r->mu);
	i = r->n++;
	if (i < RAW_MAX)
		r->at[i] = t_now();
	pthread_mutex_unlock(&r->mu);
	head = i < RAW_MAX && r->head[i] ? r->head[i] : "HTTP/1.1 200 OK\r\n";
	body = i < RAW_MAX && r->body[i] ? r->body[i] : good_chat;
	extra[0] = 0;
	if (i < RAW_MAX && r->date_s[i] > 0) {
		time_t t = time(NULL) + r->date_s[i];
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(extra, sizeof(extra),
			 "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		r->date[i] = t;
	}
	n = snprintf(out, sizeof(out),
		     "%s%sContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     head, extra, strlen(body), body);
	if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n)
		return need;
	if (i < RAW_MAX) {
		pthread_mutex_lock(&r->mu);
		r->sent[i] = t_now();
		r->sent_real[i] = real_now();
		pthread_mutex_unlock(&r->mu);
	}
	return need;
}

static void *raw_main(void *arg)
{
	struct raw *r = arg;
	struct pollfd pf[1 + 32];
	static char bufs[32][8192];
	size_t lens[32];
	int nc = 0, i;

	while (!atomic_load(&r->stop)) {
		pf[0].fd = r->lfd;
		pf[0].events = POLLIN;
		for (i = 0; i < nc; i++)
			pf[1 + i].events = POLLIN;
		if (poll(pf, (nfds_t)(1 + nc), 20) <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && nc < 32) {
			int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				pf[1 + nc].fd = fd;
				pf[1 + nc].revents = 0;
				lens[nc++] = 0;
			}
		}
		for (i = 0; i < nc; i++) {
			ssize_t got;
			size_t used;

			if (!(pf[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = recv(pf[1 + i].fd, bufs[i] + lens[i],
				   sizeof(bufs[i]) - 1 - lens[i], 0);
			if (got <= 0) {
				close(pf[1 + i].fd);
				nc--;
				pf[1 + i] = pf[1 + nc];
				lens[i] = lens[nc];
				if (i != nc)
					memcpy(bufs[i], bufs[nc], lens[nc]);
				i--;
				continue;
			}
			lens[i] += (size_t)got;
			bufs[i][lens[i]] = 0;
			while ((used = raw_answer(r, pf[1 + i].fd, bufs[i],
						  lens[i]))) {
				memmove(bufs[i], bufs[i] + used,
					lens[i] - used);
				lens[i] -= used;
				bufs[i][lens[i]] = 0;
			}
		}
	}
	for (i = 0; i < nc; i++)
		close(pf[1 + i].fd);
	return NULL;
}

static void raw_start(struct raw *r)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	pthread_mutex_init(&r->mu, NULL);
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(r->lfd >= 0, "socket: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			listen(r->lfd, 64) == 0 &&
			getsockname(r->lfd, (struct sockaddr *)&a, &al) == 0,
		"listen: %s", strerror(errno));
	r->port = ntohs(a.sin_port);
	r->as_srv.port = r->port;
	snprintf(r->as_srv.url, sizeof(r->as_srv.url), "http://127.0.0.1:%d",
		 r->port);
	REQUIRE(pthread_create(&r->th, NULL, raw_main, r) == 0,
		"pthread_create");
}

static void raw_stop(struct raw *r)
{
	atomic_store(&r->stop, 1);
	pthread_join(r->th, NULL);
	close(r->lfd);
	pthread_mutex_destroy(&r->mu);
}

/*
 * Request 0 answered with 'head' (and a date 'date_s' ahead if > 0), the
 * rest with a good chat: the call must succeed on attempt 2, whose request
 * arrives at least 'advised' seconds after the first answer went out.
 */
static void raw_retry(const char *what, const char *head, int date_s,
		      double advised)
{
	static struct raw r;
	struct job j;
	myriad_infer_t *p;
	double gap;

	memset(&r, 0, sizeof(r));
	r.head[0] = head;
	r.body[0] = "{\"error\":{\"message\":\"later\"}}";
	r.date_s[0] = date_s;
	raw_start(&r);
	p = fault_pool(&r.as_srv, 2, 0, 0);
	run_chat(&j, p, MSG, NULL, what);
	CHECK_JOB_RC(&j, 0);
	CHECK_EQ(j.attempts, 2);
	CHECK(!strcmp(j.content, "raw ok"), "%s: content '%s'", what,
	      j.content);
	pthread_mutex_lock(&r.mu);
	CHECK(r.n == 2, "%s: %d requests, expected 2", what, r.n);
	gap = r.at[1] - r.sent[0];
	if (r.n >= 2 && advised > 0)
		CHECK(gap >= advised - 0.002,
		      "%s: retried %.3f s after the answer, advised %.3f s",
		      what, gap, advised);
	if (r.n >= 2 && date_s > 0) {
		/* at or after the date, which was ahead of the answer */
		double arrival_real = r.sent_real[0] + gap;

		CHECK(arrival_real >= (double)r.date[0] - 0.002,
		      "%s: retried at %.3f, the date said %ld", what,
		      arrival_real, (long)r.date[0]);
	}
	if (r.n >= 2)
		printf("%s: retried %.3f s later\n", what, gap);
	pthread_mutex_unlock(&r.mu);
	pool_done(p);
	raw_stop(&r);
}

/* Request 0 answered with head/body: the call ends with 'want' at once. */
static void raw_final(const char *what, int kind, const char *head,
		      const char *body, int want, int status)
{
	static struct raw r;
	struct job j;
	myriad_infer_t *p;

	memset(&r, 0, sizeof(r));
	r.head[0] = head;
	r.body[0] = body;
	raw_start(&r);
	p = fault_pool(&r.as_srv, 2, 0, 0);
	if (kind == JOB_EMBED) {
		job_embed(&j, p, "x");
		run_jobs(&j, 1, what);
	} else {
		run_chat(&j, p, MSG, NULL, what);
	}
	if (j.rc != want)
		t_failf(__FILE__, __LINE__, "in case '%s':", what);
	CHECK_JOB_RC(&j, want);
	CHECK_EQ(j.attempts, 1);
	CHECK_EQ(j.http_status, status);
	pthread_mutex_lock(&r.mu);
	CHECK(r.n == 1, "%s: %d requests, expected 1", what, r.n);
	pthread_mutex_unlock(&r.mu);
	pool_done(p);
	raw_stop(&r);
}

static void test_raw(void)
{
	t_phase("scripted responder");
	raw_retry("429 Retry-After: 1",
		  "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n", 0,
		  1.0);
	raw_retry("429 Retry-After: <date + 2 s>",
		  "HTTP/1.1 429 Too Many Requests\r\n", 2, 0);
	raw_retry("429 retry-after-ms: 700",
		  "HTTP/1.1 429 Too Many Requests\r\nretry-after-ms: 700\r\n",
		  0, 0.7);
	raw_retry("503 Retry-After: 1",
		  "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n", 0,
		  1.0);
	raw_retry("408", "HTTP/1.1 408 Request Timeout\r\n", 0, 0);
	raw_retry("409", "HTTP/1.1 409 Conflict\r\n", 0, 0);
	raw_final("404", JOB_CHAT, "HTTP/1.1 404 Not Found\r\n",
		  "{\"error\":{}}", MYRIAD_INFER_EHTTP, 404);
	raw_final("content not a string", JOB_CHAT, NULL,
		  "{\"choices\":[{\"message\":{\"content\":42}}]}",
		  MYRIAD_INFER_EBODY, 200);
	raw_final("empty choices", JOB_CHAT, NULL, "{\"choices\":[]}",
		  MYRIAD_INFER_EBODY, 200);
	raw_final("empty body", JOB_CHAT, NULL, "", MYRIAD_INFER_EBODY, 200);
	raw_final("a JSON array", JOB_CHAT, NULL, "[1,2]", MYRIAD_INFER_EBODY,
		  200);
	raw_final("embedding not numbers", JOB_EMBED, NULL,
		  "{\"data\":[{\"embedding\":[1,\"x\"]}]}", MYRIAD_INFER_EBODY,
		  200);
	raw_final("embedding empty", JOB_EMBED, NULL,
		  "{\"data\":[{\"embedding\":[]}]}", MYRIAD_INFER_EBODY, 200);
}

int main(int argc, char **argv)
{
	unsigned w;

	t_name = "infer/faults";
	w = t_parse_args(argc, argv);
	t_watchdog(90);
	rt = t_rt_new(w);

	t_phase("429");
	test_429(0);
	t_phase("429 date");
	test_429(1);
	t_phase("500");
	test_500();
	t_phase("reset");
	test_conn_fault("--fault-reset", "fault_reset");
	t_phase("truncate");
	test_conn_fault("--fault-truncate", "fault_truncate");
	t_phase("refused");
	test_refused();
	t_phase("oversize");
	test_oversize();
	t_phase("malformed");
	test_malformed();
	t_phase("slow");
	test_slow();
	t_phase("deadline over retries");
	test_deadline_retries();
	test_raw();

	t_rt_done(rt);
	return t_result();
}
