/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/cooldown.c: one cooldown per endpoint after a 429, and its
 * release spread over cooldown_jitter_ns, against a responder in this
 * file that answers each agent by its message ("cool <i>") and keeps the
 * time of every request and answer (the test's clock, the client's too).
 *
 * What the client guarantees, and is checked, whatever the machine's
 * delays (a request arrives no earlier than it was sent, an answer is
 * read no earlier than it was written):
 * 1. A call answered 429 "Retry-After: 1" sends its next request 1 s or
 *    more after it read that answer: the request arrives 1 s or more after
 *    the answer was written.
 * 2. The cooldown is the endpoint's: calls started after the client read
 *    a 429 wait for it too. A probe call with a call deadline shorter than
 *    the advice returns -ETIME ("deadline passed before a retry") once its
 *    429 was read, the endpoint's cooldown set before that; LATE agents
 *    started after the probe returned, answered 200 at once, must reach
 *    the responder 1 s or more after the probe's 429 was written.
 * 3. The release is spread: each 429'd call waits the advice plus a draw
 *    in [0, jitter]. Of AGENTS calls, the longest wait exceeds the advice
 *    by a tenth of the jitter unless every draw fell below a tenth (a
 *    chance of 1e-8); a delay of the machine only lengthens the waits. A
 *    release without jitter fails this on a quiet machine.
 *   cooldown [--workers N] --server PATH   (the server is not started)
 */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include "llm.h"

#define AGENTS 8
#define LATE 4
#define PROBE (AGENTS + LATE) /* the probe's agent number */
#define RETRY_S 1.0
#define JITTER_NS (400 * 1000000ull)
#define MAXREQ 256
#define MAXCONN 64

/* ---- the responder ---- */

struct req {
	int agent;	 /* from the message, -1 if none */
	int status;	 /* 429 or 200 */
	double at, sent; /* arrival (whole request read), answer written */
};

static struct {
	int lfd;
	pthread_t th;
	_Atomic int stop;
	pthread_mutex_t mu;
	int n;
	struct req r[MAXREQ];
	int answered[PROBE + 1]; /* requests answered per agent */
	struct srv as_srv;
} R;

static const char ok_body[] =
	"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
	"\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	"\"content\":\"cooled\"},\"finish_reason\":\"stop\"}],"
	"\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,"
	"\"total_tokens\":4}}";
static const char busy_body[] =
	"{\"error\":{\"message\":\"busy\",\"type\":\"rate_limit_error\","
	"\"param\":null,\"code\":null}}";

/* The agent a request body names ("cool <i>"), or -1. */
static int agent_of(const char *body, size_t len)
{
	const char *p = memmem(body, len, "cool ", 5);

	return p ? atoi(p + 5) : -1;
}

/* Answer one whole request at buf[0..len); bytes consumed, or 0. */
static size_t answer(int fd, const char *buf, size_t len)
{
	const char *he = memmem(buf, len, "\r\n\r\n", 4), *cl;
	char out[1024];
	size_t hl, bl = 0;
	struct req *q = NULL;
	int agent, busy, n, i;

	if (!he)
		return 0;
	hl = (size_t)(he + 4 - buf);
	cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl && cl < he)
		bl = strtoul(cl + 17, NULL, 10);
	if (len < hl + bl)
		return 0;
	agent = agent_of(buf + hl, bl);
	pthread_mutex_lock(&R.mu);
	/* A main agent's first request, and the probe's every one: 429. */
	busy = agent == PROBE ||
	       (agent >= 0 && agent < AGENTS && !R.answered[agent]);
	if (agent >= 0 && agent <= PROBE)
		R.answered[agent]++;
	i = R.n < MAXREQ ? R.n++ : -1;
	if (i >= 0) {
		q = &R.r[i];
		q->agent = agent;
		q->status = busy ? 429 : 200;
		q->at = t_now();
	}
	pthread_mutex_unlock(&R.mu);
	if (busy)
		n = snprintf(out, sizeof(out),
			     "HTTP/1.1 429 Too Many Requests\r\n"
			     "Retry-After: 1\r\nretry-after-ms: 1000\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n%s",
			     strlen(busy_body), busy_body);
	else
		n = snprintf(out, sizeof(out),
			     "HTTP/1.1 200 OK\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n%s",
			     strlen(ok_body), ok_body);
	if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n)
		return hl + bl;
	if (q) {
		pthread_mutex_lock(&R.mu);
		q->sent = t_now();
		pthread_mutex_unlock(&R.mu);
	}
	return hl + bl;
}

static void *responder(void *arg)
{
	static char bufs[MAXCONN][8192];
	struct pollfd pf[1 + MAXCONN];
	size_t lens[MAXCONN], used;
	int nc = 0, i, fd;
	ssize_t got;

	(void)arg;
	while (!atomic_load(&R.stop)) {
		pf[0].fd = R.lfd;
		pf[0].events = POLLIN;
		for (i = 0; i < nc; i++)
			pf[1 + i].events = POLLIN;
		if (poll(pf, (nfds_t)(1 + nc), 20) <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && nc < MAXCONN) {
			fd = accept4(R.lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				pf[1 + nc].fd = fd;
				pf[1 + nc].revents = 0;
				lens[nc++] = 0;
			}
		}
		for (i = 0; i < nc; i++) {
			if (!(pf[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = recv(pf[1 + i].fd, bufs[i] + lens[i],
				   sizeof(bufs[i]) - 1 - lens[i], 0);
			if (got <= 0) {
				close(pf[1 + i].fd);
				nc--;
				pf[1 + i] = pf[1 + nc];
				lens[i] = lens[nc];
				memcpy(bufs[i], bufs[nc], lens[nc]);
				i--;
				continue;
			}
			lens[i] += (size_t)got;
			bufs[i][lens[i]] = 0;
			while ((used = answer(pf[1 + i].fd, bufs[i],
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

static void responder_start(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	pthread_mutex_init(&R.mu, NULL);
	R.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(R.lfd >= 0, "socket: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(R.lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			listen(R.lfd, 64) == 0 &&
			getsockname(R.lfd, (struct sockaddr *)&a, &al) == 0,
		"listen: %s", strerror(errno));
	R.as_srv.port = ntohs(a.sin_port);
	snprintf(R.as_srv.url, sizeof(R.as_srv.url), "http://127.0.0.1:%d",
		 R.as_srv.port);
	REQUIRE(pthread_create(&R.th, NULL, responder, NULL) == 0,
		"pthread_create");
}

static void responder_stop(void)
{
	atomic_store(&R.stop, 1);
	pthread_join(R.th, NULL);
	close(R.lfd);
	pthread_mutex_destroy(&R.mu);
}

/* Request k (0-based; -1: the last) of 'agent' in the log, or NULL. */
static const struct req *req_of(int agent, int k)
{
	const struct req *last = NULL;
	int i;

	for (i = 0; i < R.n; i++)
		if (R.r[i].agent == agent) {
			if (k-- == 0)
				return &R.r[i];
			last = &R.r[i];
		}
	return k < -1 ? last : NULL;
}

/* ---- the client ---- */

static char msgs[PROBE + 1][64];

static void job_agent(struct job *j, myriad_infer_t *p, int agent)
{
	snprintf(msgs[agent], sizeof(msgs[agent]),
		 "[{\"role\":\"user\",\"content\":\"cool %d\"}]", agent);
	job_chat(j, p, msgs[agent], NULL);
}

/*
 * The probe (its call deadline 900 ms, under the 1 s advice), then, once
 * it returned, the late agents.
 */
struct late_st {
	MYRIAD_CORO_FIELD;
	struct job *probe, *late;
	myriad_task_t *t;
	int i;
};

static int late_step(myriad_task_t *self, void *p)
{
	struct late_st *st = p;
	struct call_st c;
	int err;

	MYRIAD_BEGIN(st);
	memset(&c, 0, sizeof(c));
	c.j = st->probe;
	st->t = myriad_task_spawn(self, call_step, &c, sizeof(c), 0, &err);
	REQUIRE(st->t, "spawn: %s", strerror(-err));
	MYRIAD_JOIN(st, self);
	/* Only a probe that read its 429 set the cooldown. */
	if (st->probe->rc != -ETIME || st->probe->http_status != 429 ||
	    !strstr(st->probe->error, "before a retry"))
		return MYRIAD_DONE;
	for (st->i = 0; st->i < LATE; st->i++) {
		memset(&c, 0, sizeof(c));
		c.j = &st->late[st->i];
		REQUIRE(myriad_task_spawn(self, call_step, &c, sizeof(c), 0,
					  &err),
			"spawn: %s", strerror(-err));
	}
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

int main(int argc, char **argv)
{
	struct myriad_infer_opts o;
	static struct job jobs[AGENTS], late[LATE], probe;
	struct late_st lst;
	const struct req *q1, *q2, *pq, *lq;
	myriad_infer_t *p;
	double waited, longest = 0, end;
	int i, tries = 0;
	unsigned w;

	t_name = "infer/cooldown";
	w = t_parse_args(argc, argv);
	t_watchdog(90);
	responder_start();
	rt = t_rt_new(w);
	opts_init(&o);
	o.max_retries = 40;
	o.backoff_base_ns = 5 * 1000000ull;
	o.backoff_max_ns = 50 * 1000000ull;
	o.cooldown_jitter_ns = JITTER_NS;
	p = pool_new(&o);
	pool_add(p, &R.as_srv, 16);

	/* 1 and 3: every agent at once, each answered 429 first. */
	for (i = 0; i < AGENTS; i++)
		job_agent(&jobs[i], p, i);
	run_jobs(jobs, AGENTS, "agents under cooldowns");
	pthread_mutex_lock(&R.mu);
	for (i = 0; i < AGENTS; i++) {
		CHECK_JOB_RC(&jobs[i], 0);
		CHECK_EQ(jobs[i].attempts, 2);
		q1 = req_of(i, 0);
		q2 = req_of(i, 1);
		if (!q1 || !q2) {
			t_failf(__FILE__, __LINE__,
				"agent %d: %s request never came", i,
				q1 ? "a second" : "its first");
			continue;
		}
		CHECK_EQ(q1->status, 429);
		waited = q2->at - q1->sent;
		CHECK(waited >= RETRY_S,
		      "agent %d: answered 429 (Retry-After: 1) at +%.3f s, "
		      "its next request came %.3f s later",
		      i, q1->sent - R.r[0].at, waited);
		if (waited > longest)
			longest = waited;
	}
	pthread_mutex_unlock(&R.mu);
	printf("%s: %d agents each waited %.3f s at most after its 429 "
	       "(advice %.1f s, jitter %.0f ms)\n",
	       t_name, AGENTS, longest, RETRY_S, JITTER_NS / 1e6);
	CHECK(longest >= RETRY_S + JITTER_NS / 1e9 / 10,
	      "the %d agents cooled by a 429 were released within %.3f s "
	      "of the advice: not spread over the %.0f ms jitter",
	      AGENTS, longest - RETRY_S, JITTER_NS / 1e6);

	/*
	 * 2: the probe, then the late agents. A probe whose call deadline
	 * passed before its 429 was read (a loaded machine) set no
	 * cooldown, and no late agent started: tried again.
	 */
	end = t_now() + 30.0 * T_SLOW;
	do {
		job_agent(&probe, p, PROBE);
		probe.call_deadline_ms = 900;
		for (i = 0; i < LATE; i++)
			job_agent(&late[i], p, AGENTS + i);
		memset(&lst, 0, sizeof(lst));
		lst.probe = &probe;
		lst.late = late;
		tries++;
		CHECK_EQ(t_run(rt, late_step, &lst, sizeof(lst), NULL, "late"),
			 0);
	} while (!late[0].finished && t_now() < end);
	CHECK(late[0].finished,
	      "%d probes: none returned -ETIME after reading its 429 (last: "
	      "%d, http %d, '%s')",
	      tries, probe.rc, probe.http_status, probe.error);
	pthread_mutex_lock(&R.mu);
	pq = req_of(PROBE, -1);
	for (i = 0; i < LATE && late[0].finished && pq; i++) {
		CHECK_JOB_RC(&late[i], 0);
		lq = req_of(AGENTS + i, 0);
		if (!lq) {
			t_failf(__FILE__, __LINE__,
				"late agent %d: no request came", i);
			continue;
		}
		CHECK(lq->at - pq->sent >= RETRY_S,
		      "late agent %d, started once the probe had read its 429 "
		      "(Retry-After: 1), reached the server %.3f s after it",
		      i, lq->at - pq->sent);
	}
	pthread_mutex_unlock(&R.mu);

	pool_done(p);
	t_rt_done(rt);
	responder_stop();
	return t_result();
}
