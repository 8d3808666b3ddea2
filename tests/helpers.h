/* SPDX-License-Identifier: MIT */
/*
 * tests/helpers.h: what every test program shares: CHECK macros that print
 * file:line with what was expected and what came, the MYRIAD_TEST_SCALE
 * iteration scale, --workers parsing, a watchdog, and a runtime helper that
 * joins with a timeout so that a lost wake-up fails instead of hanging.
 *
 * Exit codes (meson's): T_PASS 0, T_FAIL 1, T_SKIP 77.
 */
#ifndef MYRIAD_TESTS_HELPERS_H
#define MYRIAD_TESTS_HELPERS_H

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <myriad.h>

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

/* Sanitizer builds run slower: timeouts stretch by this factor. */
#if defined(__SANITIZE_THREAD__)
#define T_SLOW 4
#define T_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define T_SLOW 2
#define T_TSAN 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_SLOW 4
#define T_TSAN 1
#elif __has_feature(address_sanitizer)
#define T_SLOW 2
#define T_TSAN 0
#endif
#endif
#ifndef T_SLOW
#define T_SLOW 1
#define T_TSAN 0
#endif

/* Failed checks so far; checks may fail on worker threads too. */
static _Atomic int t_failures;
static const char *t_name = "test";

static inline void t_failf(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void t_failf(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n = atomic_fetch_add(&t_failures, 1);

	/* The first failures say enough; a storm of them says nothing. */
	if (n >= 25) {
		if (n == 25)
			fprintf(stderr, "%s: (further failures not shown)\n",
				t_name);
		return;
	}
	fprintf(stderr, "%s: %s:%d: ", t_name, file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A condition that must hold; 'fmt' says what came. */
#define CHECK(cond, ...)                                                  \
	do {                                                              \
		if (!(cond))                                              \
			t_failf(__FILE__, __LINE__,                       \
				"check failed: " #cond ": " __VA_ARGS__); \
	} while (0)

/* Two integers that must be equal. */
#define CHECK_EQ(got, want)                                                   \
	do {                                                                  \
		long long g_ = (long long)(got), w_ = (long long)(want);      \
		if (g_ != w_)                                                 \
			t_failf(__FILE__, __LINE__,                           \
				"%s: expected %lld (%s), got %lld", #got, w_, \
				#want, g_);                                   \
	} while (0)

/* An error code that must be the expected one (prints the names). */
#define CHECK_ERR(got, want)                                                   \
	do {                                                                   \
		long long g_ = (long long)(got), w_ = (long long)(want);       \
		if (g_ != w_)                                                  \
			t_failf(__FILE__, __LINE__,                            \
				"%s: expected %lld (%s), got %lld (%s)", #got, \
				w_, #want, g_,                                 \
				g_ < 0 ? strerror((int)-g_) : "no error");     \
	} while (0)

/* A check whose failure makes going on pointless. */
#define REQUIRE(cond, ...)                                            \
	do {                                                          \
		if (!(cond)) {                                        \
			t_failf(__FILE__, __LINE__,                   \
				"required: " #cond ": " __VA_ARGS__); \
			fflush(stderr);                               \
			_exit(T_FAIL);                                \
		}                                                     \
	} while (0)

static inline void t_skip(const char *why)
{
	printf("SKIP %s: %s\n", t_name, why);
	fflush(stdout);
	exit(T_SKIP);
}

/* main's return value. */
static inline int t_result(void)
{
	int n = atomic_load(&t_failures);

	if (n) {
		fprintf(stderr, "%s: FAIL (%d failed check%s)\n", t_name, n,
			n == 1 ? "" : "s");
		return T_FAIL;
	}
	printf("%s: PASS\n", t_name);
	return T_PASS;
}

/*
 * MYRIAD_TEST_SCALE multiplies iteration counts: 1 by default, 0.2 under
 * ThreadSanitizer unless set (CI sets it explicitly).
 */
static inline double t_scale(void)
{
	static double s;
	const char *e;

	if (s > 0)
		return s;
	e = getenv("MYRIAD_TEST_SCALE");
	s = (e && *e) ? strtod(e, NULL) : (T_TSAN ? 0.2 : 1.0);
	if (!(s > 0))
		s = 1.0;
	return s;
}

/* n scaled, at least 'min'. */
static inline int64_t t_scaled_min(int64_t n, int64_t min)
{
	int64_t v = (int64_t)((double)n * t_scale());

	return v < min ? min : v;
}

static inline int64_t t_scaled(int64_t n)
{
	return t_scaled_min(n, 1);
}

/*
 * Arguments every test takes: --workers N (0 or absent: the runtime's
 * default). Others are left for the program; unknown ones fail.
 */
static inline unsigned t_parse_workers(int argc, char **argv)
{
	unsigned w = 0;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
			w = (unsigned)strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n", t_name,
				argv[i]);
			exit(T_FAIL);
		}
	}
	return w;
}

static inline double t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void t_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * The watchdog: if the program is still running after 'seconds' (times
 * T_SLOW), print what it was doing and fail, rather than let meson kill a
 * silent hang. t_phase() names the current phase; t_watchdog_dump, if set,
 * prints more state (best effort: the process is about to exit anyway).
 */
static const char *volatile t_phase_name = "start";
static void (*volatile t_watchdog_dump)(void);

static inline void t_phase(const char *what)
{
	t_phase_name = what;
}

static void t_on_alarm(int sig)
{
	(void)sig;
	fprintf(stderr,
		"%s: watchdog: still in phase '%s' after the time limit: "
		"a lost wake-up or a deadlock\n",
		t_name, t_phase_name);
	if (t_watchdog_dump)
		t_watchdog_dump();
	fflush(stderr);
	_exit(T_FAIL);
}

static inline void t_watchdog(unsigned seconds)
{
	signal(SIGALRM, t_on_alarm);
	alarm(seconds * T_SLOW);
}

/* ---- runtimes ---- */

static inline myriad_rt_t *t_rt_new(unsigned workers)
{
	struct myriad_rt_opts o;
	myriad_rt_t *rt;
	int err = 0;

	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = workers;
	rt = myriad_rt_create(&o, &err);
	REQUIRE(rt != NULL, "myriad_rt_create(workers=%u): %s", workers,
		strerror(-err));
	return rt;
}

/* Timeout of one join: generous, it only turns a hang into a message. */
static inline int64_t t_join_timeout_ns(void)
{
	return (int64_t)30 * T_SLOW * 1000000000;
}

/*
 * Join a handle with the timeout; a timeout is fatal (the task is lost).
 * Returns what myriad_handle_join() returned.
 */
static inline int t_join(myriad_handle_t *h, int64_t *result, const char *what)
{
	int r = myriad_handle_join(h, result, t_join_timeout_ns());

	if (r == -ETIMEDOUT) {
		t_failf(__FILE__, __LINE__,
			"%s: myriad_handle_join timed out: a lost wake-up?",
			what);
		if (t_watchdog_dump)
			t_watchdog_dump();
		fflush(stderr);
		_exit(T_FAIL);
	}
	return r;
}

/* Spawn a root task, join it with the timeout, release it. */
static inline int t_run(myriad_rt_t *rt, myriad_step_fn fn, const void *init,
			size_t size, int64_t *result, const char *what)
{
	myriad_handle_t *h = NULL;
	int r = myriad_rt_spawn(rt, fn, init, size, &h);

	if (r < 0) {
		t_failf(__FILE__, __LINE__, "%s: myriad_rt_spawn: %s", what,
			strerror(-r));
		return r;
	}
	r = t_join(h, result, what);
	CHECK_EQ(myriad_handle_release(h), 0);
	return r;
}

/* Destroy a runtime that must have no task left. */
static inline void t_rt_done(myriad_rt_t *rt)
{
	int64_t live = myriad_rt_tasks_live(rt);
	int r;

	CHECK(live == 0, "tasks_live at the end: expected 0, got %" PRId64,
	      live);
	r = myriad_rt_destroy(rt);
	CHECK(r == 0, "myriad_rt_destroy: expected 0, got %d (%s)", r,
	      r < 0 ? strerror(-r) : "");
}

/*
 * Wait (polling) until cond() holds or the timeout passes; returns whether
 * it holds. For waits on other threads' progress where no event exists.
 */
static inline int t_wait_until(int (*cond)(void *), void *arg, double seconds)
{
	double end = t_now() + seconds * T_SLOW;
	unsigned spins = 0;

	while (!cond(arg)) {
		if (t_now() > end)
			return 0;
		if (++spins < 100)
			sched_yield();
		else
			t_sleep_ms(1);
	}
	return 1;
}

/* Sum of one counter over every worker, or -1 when compiled out. */
static inline int64_t t_counter_sum(myriad_rt_t *rt, enum myriad_counter c)
{
	uint64_t v[MYRIAD_CTR__COUNT];
	int64_t sum = 0;
	int i, n = myriad_rt_workers(rt), r;

	for (i = 0; i < n; i++) {
		r = myriad_rt_counters(rt, (unsigned)i, v, MYRIAD_CTR__COUNT);
		if (r == -ENOTSUP)
			return -1;
		if (r < (int)c + 1)
			return -1;
		sum += (int64_t)v[c];
	}
	return sum;
}

/*
 * Fork-join fib(n), a task per call and no cutoff, the parent joining both
 * children: what most tests run to keep the workers busy with short steps.
 * The result is fib(n); a failed spawn fails the test.
 */
struct t_fib {
	MYRIAD_CORO_FIELD;
	int n;
	myriad_task_t *a, *b;
};

static inline int t_fib_step(myriad_task_t *self, void *p)
{
	struct t_fib *st = p;
	struct t_fib c;

	MYRIAD_BEGIN(st);
	if (st->n < 2) {
		myriad_task_set_result(self, st->n);
		return MYRIAD_DONE;
	}
	memset(&c, 0, sizeof(c));
	c.n = st->n - 1;
	st->a = myriad_task_spawn(self, t_fib_step, &c, sizeof(c), 0, NULL);
	c.n = st->n - 2;
	st->b = myriad_task_spawn(self, t_fib_step, &c, sizeof(c), 0, NULL);
	REQUIRE(st->a && st->b, "fib(%d): spawn failed", st->n);
	MYRIAD_JOIN(st, self);
	myriad_task_set_result(self, myriad_task_result(st->a) +
					     myriad_task_result(st->b));
	MYRIAD_END(st);
}

#endif
