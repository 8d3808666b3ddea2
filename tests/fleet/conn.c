/* SPDX-License-Identifier: MIT */
/*
 * tests/fleet/conn.c: the Redis connection driven on myriad's own loop
 * (fleet/conn.c): commands and pipelined replies in order, a timeout
 * against a redis-server stopped with SIGSTOP, reconnection after it is
 * killed and started again, an unreachable Redis at open (a clear error)
 * and a lazy open that connects once Redis appears. Each redis-server is
 * the test's own, on a unix socket in a temporary directory (--port 0: no
 * TCP port), killed however the test ends (its watchdog's _exit aside:
 * then the server outlives it by its idle socket only).
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "helpers.h"

#include "fleet/internal.h"

static char dir[64] = "/tmp/myriad-fleet-conn-XXXXXX";
static char sock[128];
static pid_t redis_pid;
extern char **environ;

static void redis_kill(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGCONT);
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
		redis_pid = 0;
	}
}

static void cleanup(void)
{
	char path[160];

	redis_kill();
	unlink(sock);
	snprintf(path, sizeof(path), "%s", dir);
	rmdir(path);
}

static void redis_start(void)
{
	char *av[] = { "redis-server", "--port", "0", "--unixsocket",
		       sock,	       "--save", "",  "--appendonly",
		       "no",	       "--dir",	 dir, NULL };
	posix_spawn_file_actions_t fa;
	struct stat st;
	int i, r;

	unlink(sock);
	/*
	 * posix_spawn, not fork: jemalloc's fork handlers take every arena
	 * lock, more than ThreadSanitizer's deadlock detector can hold.
	 */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&redis_pid, "redis-server", &fa, NULL, av, environ);
	posix_spawn_file_actions_destroy(&fa);
	REQUIRE(r == 0, "redis-server: %s", strerror(r));
	for (i = 0; i < 400 && stat(sock, &st); i++)
		usleep(10000);
	REQUIRE(i < 400, "redis-server made no socket");
}

static redisReply *cmd(myriad_fleet_t *f, int *err, const char *a,
		       const char *b, const char *c)
{
	return fcommand(&f->cmd, err, a, b, c, NULL);
}

int main(int argc, char **argv)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct fwait w = { .lock = &lock, .cv = &cv };
	struct myriad_fleet_opts o = { .sz = sizeof(o) };
	char url[160], bad[160];
	myriad_fleet_t *f;
	myriad_rt_t *rt;
	struct fbatch b;
	redisReply *r;
	unsigned i, n = (unsigned)t_scaled_min(2000, 200);
	int err;

	t_name = "fleet/conn";
	t_watchdog(120);
	if (system("command -v redis-server >/dev/null 2>&1"))
		t_skip("no redis-server");
	REQUIRE(mkdtemp(dir), "mkdtemp");
	snprintf(sock, sizeof(sock), "%s/r.sock", dir);
	atexit(cleanup);
	rt = t_rt_new(t_parse_workers(argc, argv));
	snprintf(url, sizeof(url), "unix://%s", sock);
	snprintf(bad, sizeof(bad), "unix://%s/none.sock", dir);

	/* Unreachable at open: a clear error once down_wait passes. */
	o.url = bad;
	o.down_wait_ns = 300000000;
	o.backoff_base_ns = 10000000;
	o.backoff_max_ns = 50000000;
	f = myriad_fleet_open(rt, &o, &err);
	CHECK(!f, "opened an unreachable Redis");
	CHECK_ERR(err, -ENOTCONN);
	o.url = "redis//x";
	f = myriad_fleet_open(rt, &o, &err);
	CHECK(!f && err == -EINVAL, "a bad URL: %d", err);

	/* Lazy: commands wait, and the connect is retried until Redis is
	 * there. */
	o.url = url;
	o.lazy = true;
	o.down_wait_ns = 30000000000ull;
	o.command_timeout_ns = 500000000;
	f = myriad_fleet_open(rt, &o, &err);
	REQUIRE(f, "lazy open: %d", err);
	REQUIRE(!fbatch_init(&b, 1, w) && !fbatch_addv(&b, "PING", NULL),
		"batch");
	fbatch_send(&b, &f->cmd);
	usleep(100000); /* not a check: lets the connect fail a few times */
	redis_start();
	fbatch_wait(&b);
	CHECK(!fbatch_err(&b, 0, NULL) && !strcmp(b.s[0].r->str, "PONG"),
	      "PING after a late start: %d", b.s[0].err);
	fbatch_free(&b);

	/* Commands, and a pipeline whose replies land in order. */
	r = cmd(f, &err, "SET", "k", "v");
	CHECK(r && r->type == REDIS_REPLY_STATUS, "SET: %d", err);
	if (r)
		freeReplyObject(r);
	r = cmd(f, &err, "GET", "k", NULL);
	CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "v"),
	      "GET: %d", err);
	if (r)
		freeReplyObject(r);
	REQUIRE(!fbatch_init(&b, n, w), "batch");
	for (i = 0; i < n; i++)
		REQUIRE(!fbatch_addv(&b, "INCR", "ctr", NULL), "add");
	fbatch_send(&b, &f->cmd);
	fbatch_wait(&b);
	for (i = 0; i < n; i++)
		CHECK(!fbatch_err(&b, i, NULL) &&
			      b.s[i].r->integer == (long long)i + 1,
		      "INCR %u: err %d", i, b.s[i].err);
	fbatch_free(&b);

	/* A stopped Redis: the command times out; the connection is made
	 * again once it runs. */
	kill(redis_pid, SIGSTOP);
	r = cmd(f, &err, "PING", NULL, NULL);
	CHECK(!r, "a reply from a stopped Redis");
	CHECK_ERR(err, -ETIMEDOUT);
	CHECK(atomic_load(&f->cmd.timeouts) >= 1, "no timeout counted");
	kill(redis_pid, SIGCONT);
	r = cmd(f, &err, "GET", "ctr", NULL);
	CHECK(r && r->type == REDIS_REPLY_STRING && atoi(r->str) == (int)n,
	      "GET after SIGCONT: %d", err);
	if (r)
		freeReplyObject(r);

	/* Killed and started again: a command sent while it is away waits
	 * and succeeds. */
	redis_kill();
	REQUIRE(!fbatch_init(&b, 1, w) && !fbatch_addv(&b, "PING", NULL),
		"batch");
	fbatch_send(&b, &f->cmd);
	redis_start();
	fbatch_wait(&b);
	CHECK(!fbatch_err(&b, 0, NULL) || b.s[0].err == -ECONNRESET,
	      "PING across a restart: %d", b.s[0].err);
	fbatch_free(&b);
	r = cmd(f, &err, "PING", NULL, NULL);
	CHECK(r && !strcmp(r->str, "PONG"), "PING after a restart: %d", err);
	if (r)
		freeReplyObject(r);
	CHECK(atomic_load(&f->cmd.drops) >= 1, "no reconnect counted");

	CHECK_EQ(myriad_fleet_close(f), 0);
	myriad_rt_destroy(rt);
	return t_result();
}
