/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/llm.h: what the inference tests share: the mock server
 * (servers/llm-server) started as a child on an ephemeral port and
 * killed however the test ends, its /stats counters read over a plain
 * socket from the main thread, pools, and "jobs": one inference call made
 * by a real task, its result copied out for the main thread to check.
 *
 * Every test takes --workers N and --server PATH (meson passes the
 * llm-server it built).
 */
#ifndef MYRIAD_TESTS_INFER_LLM_H
#define MYRIAD_TESTS_INFER_LLM_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "helpers.h"

/* ---- arguments ---- */

static const char *srv_path;
extern char **environ;

static inline unsigned t_parse_args(int argc, char **argv)
{
	unsigned w = 0;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
			w = (unsigned)strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--server") && i + 1 < argc) {
			srv_path = argv[++i];
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n", t_name,
				argv[i]);
			exit(T_FAIL);
		}
	}
	if (!srv_path)
		t_skip("no --server PATH to llm-server given");
	if (access(srv_path, X_OK))
		t_skip("llm-server not built");
	return w;
}

/* ---- the mock server ---- */

#define SRV_MAX 16

struct srv {
	pid_t pid;
	int port;
	int out; /* its stdout, kept open: it may print more */
	char url[64];
};

/* Servers still running, for the atexit handler and the watchdog. */
static pid_t srv_pids[SRV_MAX];

static inline void srv_kill_all_now(void)
{
	int i;

	/* Async-signal-safe: the watchdog calls it from a handler. */
	for (i = 0; i < SRV_MAX; i++)
		if (srv_pids[i] > 0)
			kill(srv_pids[i], SIGKILL);
}

static inline void srv_atexit(void)
{
	int i;

	for (i = 0; i < SRV_MAX; i++) {
		if (srv_pids[i] <= 0)
			continue;
		kill(srv_pids[i], SIGKILL);
		waitpid(srv_pids[i], NULL, 0);
		srv_pids[i] = 0;
	}
}

static inline void srv_watchdog_dump(void)
{
	srv_kill_all_now();
}

/*
 * Start llm-server with 'args' (NULL-terminated) plus --port 0 and wait
 * for its "PORT n". The child dies with this process (PR_SET_PDEATHSIG,
 * so also after _exit from REQUIRE or the watchdog); call from the main
 * thread only, since the death signal follows the thread that forked.
 */
static inline void srv_start(struct srv *s, const char *const *args)
{
	static int registered;
	const char *argv[48];
	char line[128];
	size_t len = 0;
	pid_t parent = getpid();
	int fds[2], n = 0, i, slot = -1;
	double end;

	if (!registered) {
		registered = 1;
		atexit(srv_atexit);
		t_watchdog_dump = srv_watchdog_dump;
	}
	for (i = 0; i < SRV_MAX; i++)
		if (srv_pids[i] <= 0) {
			slot = i;
			break;
		}
	REQUIRE(slot >= 0, "more than %d servers", SRV_MAX);
	argv[n++] = srv_path;
	argv[n++] = "--port";
	argv[n++] = "0";
	for (i = 0; args && args[i] && n < 47; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	REQUIRE(pipe2(fds, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
	memset(s, 0, sizeof(*s));
	/*
	 * A bare clone(2) rather than fork(): no atfork handlers run (under
	 * ThreadSanitizer, jemalloc's prefork handler takes more locks than
	 * its deadlock detector can track and it aborts), and the child
	 * makes raw system calls only, none that a sanitizer intercepts,
	 * until it execs.
	 */
	s->pid = (pid_t)syscall(SYS_clone, (long)SIGCHLD, 0L, NULL, NULL, 0L);
	REQUIRE(s->pid >= 0, "clone: %s", strerror(errno));
	if (s->pid == 0) {
		syscall(SYS_prctl, (long)PR_SET_PDEATHSIG, (long)SIGKILL, 0L,
			0L, 0L);
		if (syscall(SYS_getppid) != parent)
			syscall(SYS_exit_group, 127L);
		syscall(SYS_dup3, (long)fds[1], 1L, 0L);
		syscall(SYS_execve, srv_path, argv, environ);
		syscall(SYS_exit_group, 127L);
	}
	srv_pids[slot] = s->pid;
	close(fds[1]);
	s->out = fds[0];
	end = t_now() + 10.0 * T_SLOW;
	while (len < sizeof(line) - 1) {
		struct pollfd pf = { .fd = s->out, .events = POLLIN };
		ssize_t r;

		REQUIRE(t_now() < end, "llm-server printed no PORT line");
		if (poll(&pf, 1, 100) <= 0)
			continue;
		r = read(s->out, line + len, sizeof(line) - 1 - len);
		REQUIRE(r > 0, "llm-server exited before listening");
		len += (size_t)r;
		line[len] = 0;
		if (strchr(line, '\n'))
			break;
	}
	n = sscanf(line, "PORT %d", &s->port);
	REQUIRE(n == 1 && s->port > 0, "llm-server said '%s'", line);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
}

static inline void srv_stop(struct srv *s)
{
	int i, st;

	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	for (i = 0; i < 200 && waitpid(s->pid, &st, WNOHANG) == 0; i++)
		t_sleep_ms(10);
	if (i == 200) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &st, 0);
	}
	for (i = 0; i < SRV_MAX; i++)
		if (srv_pids[i] == s->pid)
			srv_pids[i] = 0;
	close(s->out);
	s->pid = 0;
}

/*
 * One HTTP/1.1 request with "Connection: close", blocking, from the main
 * thread: the body of the answer into buf (NUL-terminated), or -1.
 */
static inline int srv_http(const struct srv *s, const char *method,
			   const char *path, char *buf, size_t cap)
{
	struct sockaddr_in a;
	char req[256];
	size_t len = 0;
	int fd, n;
	char *body;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)s->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		     "Content-Length: 0\r\nConnection: close\r\n\r\n",
		     method, path);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t r;

		if (len + 1 >= cap)
			break;
		r = recv(fd, buf + len, cap - 1 - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	body = strstr(buf, "\r\n\r\n");
	if (!body || strncmp(buf, "HTTP/1.1 200", 12))
		return -1;
	body += 4;
	memmove(buf, body, strlen(body) + 1);
	return (int)strlen(buf);
}

/* A counter from /stats in 'json', or -1 if absent. */
static inline int64_t stat_of(const char *json, const char *key)
{
	char pat[96];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (!p)
		return -1;
	return strtoll(p + strlen(pat), NULL, 10);
}

/* GET /stats into buf (REQUIREd to work). */
static inline void srv_stats(const struct srv *s, char *buf, size_t cap)
{
	REQUIRE(srv_http(s, "GET", "/stats", buf, cap) > 0,
		"GET /stats from port %d failed", s->port);
}

static inline int64_t srv_stat(const struct srv *s, const char *key)
{
	char buf[2048];
	int64_t v;

	srv_stats(s, buf, sizeof(buf));
	v = stat_of(buf, key);
	REQUIRE(v >= 0, "/stats has no '%s': %s", key, buf);
	return v;
}

static inline void srv_reset_stats(const struct srv *s)
{
	char buf[256];

	REQUIRE(srv_http(s, "POST", "/reset-stats", buf, sizeof(buf)) > 0,
		"POST /reset-stats failed");
}

/*
 * Poll /stats until 'key' is at least 'want' or 'seconds' (times T_SLOW)
 * pass; returns the last value.
 */
static inline int64_t srv_wait_stat(const struct srv *s, const char *key,
				    int64_t want, double seconds)
{
	double end = t_now() + seconds * T_SLOW;
	int64_t v;

	for (;;) {
		v = srv_stat(s, key);
		if (v >= want || t_now() > end)
			return v;
		t_sleep_ms(5);
	}
}

/* ---- pools ---- */

static myriad_rt_t *rt;

static inline void opts_init(struct myriad_infer_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
}

static inline myriad_infer_t *pool_new(const struct myriad_infer_opts *o)
{
	myriad_infer_t *p;
	int err = 0;

	/* (*err is left alone on success.) */
	p = myriad_infer_create(rt, o, &err);
	REQUIRE(p != NULL, "myriad_infer_create: %d (%s)", err, strerror(-err));
	return p;
}

static inline int pool_add(myriad_infer_t *p, const struct srv *s,
			   unsigned window)
{
	struct myriad_infer_endpoint e;
	int idx;

	memset(&e, 0, sizeof(e));
	e.sz = sizeof(e);
	e.base_url = s->url;
	e.model = "test-model";
	e.window = window;
	idx = myriad_infer_add(p, &e);
	REQUIRE(idx >= 0, "myriad_infer_add(%s): %d (%s)", s->url, idx,
		strerror(-idx));
	return idx;
}

static inline void pool_done(myriad_infer_t *p)
{
	int r = myriad_infer_destroy(p);

	CHECK_ERR(r, 0);
}

/* ---- jobs: one call by one task ---- */

enum { JOB_CHAT, JOB_EMBED };

#define JOB_DIMS_MAX 64

struct job {
	/* in */
	myriad_infer_t *pool;
	int kind;
	const char *messages; /* chat */
	const char *extra;    /* chat, may be NULL */
	const char *input;    /* embed */
	uint64_t deadline_ms; /* a task deadline before the call; 0: none */
	uint64_t call_deadline_ms; /* myriad_io_deadline on the call; 0 */
	/* out */
	_Atomic int started; /* the call was issued (-EAGAIN seen) */
	int finished;
	int rc;
	int has_result;
	int http_status;
	unsigned attempts;
	int endpoint;
	char content[512];
	size_t content_len;
	size_t dims;
	double emb[JOB_DIMS_MAX];
	int64_t prompt_tokens, completion_tokens, total_tokens;
	double queue_ms, prompt_ms, predicted_ms;
	char error[512];
	int error_null;
	double t0, t1; /* call issued, call returned (t_now) */
};

static inline void job_take(struct job *j, int rc,
			    const struct myriad_infer_result *r)
{
	size_t i;

	j->rc = rc;
	j->t1 = t_now();
	j->finished = 1;
	j->has_result = r != NULL;
	if (!r)
		return;
	j->http_status = r->http_status;
	j->attempts = r->attempts;
	j->endpoint = r->endpoint;
	j->content_len = r->content_len;
	if (r->content) {
		size_t n = r->content_len < sizeof(j->content) - 1
				   ? r->content_len
				   : sizeof(j->content) - 1;

		memcpy(j->content, r->content, n);
		j->content[n] = 0;
	}
	j->dims = r->dims;
	for (i = 0; r->embedding && i < r->dims && i < JOB_DIMS_MAX; i++)
		j->emb[i] = r->embedding[i];
	j->prompt_tokens = r->prompt_tokens;
	j->completion_tokens = r->completion_tokens;
	j->total_tokens = r->total_tokens;
	j->queue_ms = r->queue_ms;
	j->prompt_ms = r->prompt_ms;
	j->predicted_ms = r->predicted_ms;
	j->error_null = r->error == NULL;
	if (r->error)
		snprintf(j->error, sizeof(j->error), "%s", r->error);
}

struct call_st {
	MYRIAD_CORO_FIELD;
	myriad_infer_call_t call;
	myriad_io_t dl;
	struct job *j;
};

static inline int job_call(myriad_task_t *self, struct call_st *st)
{
	struct job *j = st->j;
	int rc;

	if (j->kind == JOB_EMBED)
		rc = myriad_infer_embed(self, j->pool, &st->call, j->input);
	else
		rc = myriad_infer_chat(self, j->pool, &st->call, j->messages,
				       j->extra);
	if (rc == -EAGAIN)
		atomic_store(&j->started, 1);
	return rc;
}

static inline int call_step(myriad_task_t *self, void *p)
{
	struct call_st *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	st->j->t0 = t_now();
	if (st->j->deadline_ms) {
		rc = myriad_task_deadline(self, &st->dl,
					  myriad_now_ns() +
						  st->j->deadline_ms * 1000000);
		CHECK_ERR(rc, 0);
	}
	if (st->j->call_deadline_ms) {
		rc = myriad_io_deadline(
			&st->call,
			myriad_now_ns() + st->j->call_deadline_ms * 1000000);
		CHECK_ERR(rc, 0);
	}
	MYRIAD_IO(st, rc, job_call(self, st));
	job_take(st->j, rc, myriad_infer_result(&st->call));
	/* A finished call's result stays until release or reuse. */
	CHECK_ERR(myriad_infer_release(self, &st->call), 0);
	MYRIAD_END(st);
}

/* A root task that runs every job as its own child and joins them. */
struct jobs_st {
	MYRIAD_CORO_FIELD;
	struct job *jobs;
	int n;
};

static inline int jobs_step(myriad_task_t *self, void *p)
{
	struct jobs_st *st = p;
	struct call_st c;
	int i, err;

	MYRIAD_BEGIN(st);
	for (i = 0; i < st->n; i++) {
		memset(&c, 0, sizeof(c));
		c.j = &st->jobs[i];
		myriad_task_spawn(self, call_step, &c, sizeof(c), 0, &err);
		CHECK(err == 0, "spawn: %s", strerror(-err));
	}
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

/* Start the jobs under a root task; join with jobs_join(). */
static inline myriad_handle_t *jobs_spawn(struct job *jobs, int n)
{
	struct jobs_st st = { 0, jobs, n };
	myriad_handle_t *h = NULL;
	int r = myriad_rt_spawn(rt, jobs_step, &st, sizeof(st), &h);

	REQUIRE(r == 0, "myriad_rt_spawn: %s", strerror(-r));
	return h;
}

static inline void jobs_join(myriad_handle_t *h, const char *what)
{
	t_join(h, NULL, what);
	CHECK_EQ(myriad_handle_release(h), 0);
}

static inline void run_jobs(struct job *jobs, int n, const char *what)
{
	struct jobs_st st = { 0, jobs, n };

	t_phase(what);
	t_run(rt, jobs_step, &st, sizeof(st), NULL, what);
}

static inline void job_chat(struct job *j, myriad_infer_t *p, const char *msgs,
			    const char *extra)
{
	memset(j, 0, sizeof(*j));
	j->pool = p;
	j->kind = JOB_CHAT;
	j->messages = msgs;
	j->extra = extra;
}

static inline void job_embed(struct job *j, myriad_infer_t *p,
			     const char *input)
{
	memset(j, 0, sizeof(*j));
	j->pool = p;
	j->kind = JOB_EMBED;
	j->input = input;
}

/* One chat from one task, run to the end. */
static inline void run_chat(struct job *j, myriad_infer_t *p, const char *msgs,
			    const char *extra, const char *what)
{
	job_chat(j, p, msgs, extra);
	run_jobs(j, 1, what);
}

static inline const char *rc_name(int rc)
{
	switch (rc) {
	case MYRIAD_INFER_EHTTP:
		return "MYRIAD_INFER_EHTTP";
	case MYRIAD_INFER_EBODY:
		return "MYRIAD_INFER_EBODY";
	case MYRIAD_INFER_ETOOBIG:
		return "MYRIAD_INFER_ETOOBIG";
	case MYRIAD_INFER_ECONNECT:
		return "MYRIAD_INFER_ECONNECT";
	case MYRIAD_INFER_ENOENDPOINT:
		return "MYRIAD_INFER_ENOENDPOINT";
	}
	return rc < 0 ? strerror(-rc) : "ok";
}

/*
 * The job ended with 'want'; an error must come with a message. Prints
 * what came (error text included) when it did not.
 */
#define CHECK_JOB_RC(j, want)                                                 \
	do {                                                                  \
		const struct job *j_ = (j);                                   \
		int w_ = (want);                                              \
		if (!j_->finished)                                            \
			t_failf(__FILE__, __LINE__,                           \
				"%s: the call never "                         \
				"returned",                                   \
				#j);                                          \
		else if (j_->rc != w_)                                        \
			t_failf(__FILE__, __LINE__,                           \
				"%s: expected %d (%s), got %d (%s): "         \
				"http %d, attempts %u, error '%s'",           \
				#j, w_, rc_name(w_), j_->rc, rc_name(j_->rc), \
				j_->http_status, j_->attempts, j_->error);    \
		if (j_->finished && j_->rc < 0 && j_->has_result)             \
			CHECK(!j_->error_null && j_->error[0],                \
			      "%s: error %d (%s) without a message", #j,      \
			      j_->rc, rc_name(j_->rc));                       \
	} while (0)

#endif
