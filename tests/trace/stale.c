/* SPDX-License-Identifier: MIT */
/*
 * tests/trace/stale.c: /dev/shm/myriad.<pid>.<n> files left by a process
 * that was killed (base/shm_stale.c), and myriad-trace facing them.
 *
 *   test-trace-stale --trace PATH --target PATH
 *
 * 1. shm_file_stale(): a live pid and a file made after its start: not
 *    stale; made long before its start (a reused pid): stale; a pid that
 *    is gone: stale.
 * 2. shm_sweep_stale(): removes the files of a gone pid, keeps this
 *    process's fresh file and names that are not myriad.<pid>.<n>.
 * 3. As root, where /proc/sys/kernel/ns_last_pid can be written: a stale
 *    file made for pid X, then a process given pid X. Not a myriad
 *    process: myriad-trace refuses it (exit 2), saying the file is stale;
 *    a myriad process (the block target, no shm file of its own): traced,
 *    the header says the stale file was ignored.
 * 4. A runtime with shared-memory counters sweeps stale files as it starts.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/shm_stale.h"
#include "helpers.h"
#include "trace_test.h"
#include <myriad/stats.h>

/* A pid that was ours a moment ago and is gone (reaped). */
static pid_t dead_pid(void)
{
	pid_t p = fork();

	REQUIRE(p >= 0, "fork: %s", strerror(errno));
	if (p == 0)
		_exit(0);
	REQUIRE(waitpid(p, NULL, 0) == p, "waitpid");
	return p;
}

/* Make /dev/shm/<name> with a whole header naming 'pid'. */
static void make_file(const char *name, pid_t pid)
{
	struct myriad_shm h;
	char path[128];
	int fd;

	memset(&h, 0, sizeof(h));
	h.magic = MYRIAD_SHM_MAGIC;
	h.version = MYRIAD_SHM_VERSION;
	h.worker_size = sizeof(struct myriad_shm_worker);
	h.pid = (int32_t)pid;
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	REQUIRE(fd >= 0, "%s: %s", path, strerror(errno));
	REQUIRE(write(fd, &h, sizeof(h)) == (ssize_t)sizeof(h), "write");
	close(fd);
}

static bool exists(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	return access(path, F_OK) == 0;
}

static void rm(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	unlink(path);
}

static void unit(void)
{
	struct timespec now, old;
	char gone0[64], gone3[64], mine[64], odd1[64], odd2[64];
	pid_t dead = dead_pid();
	int r;

	clock_gettime(CLOCK_REALTIME, &now);
	old = now;
	old.tv_sec -= 3600;
	CHECK_EQ(shm_file_stale(getpid(), &now), 0);
	CHECK_EQ(shm_file_stale(getpid(), &old), 1);
	CHECK_EQ(shm_file_stale(dead, &now), 1);
	CHECK_EQ(shm_file_stale(0, &now), 1);

	snprintf(gone0, sizeof(gone0), "myriad.%d.0", (int)dead);
	snprintf(gone3, sizeof(gone3), "myriad.%d.3", (int)dead);
	snprintf(mine, sizeof(mine), "myriad.%d.99", (int)getpid());
	snprintf(odd1, sizeof(odd1), "myriad.%d.x", (int)dead);
	snprintf(odd2, sizeof(odd2), "myriad.%d", (int)dead);
	make_file(gone0, dead);
	make_file(gone3, dead);
	make_file(mine, getpid());
	make_file(odd1, dead);
	make_file(odd2, dead);
	r = shm_sweep_stale();
	printf("shm_sweep_stale: removed %d\n", r);
	/* Others' stale files may go too: at least ours. */
	CHECK(r >= 2, "removed %d, want >= 2", r);
	CHECK(!exists(gone0), "%s (pid gone) kept", gone0);
	CHECK(!exists(gone3), "%s (pid gone) kept", gone3);
	CHECK(exists(mine), "%s (this process's, fresh) removed", mine);
	CHECK(exists(odd1) && exists(odd2), "a name not myriad.<pid>.<n> "
					    "removed");
	rm(gone0);
	rm(gone3);
	rm(mine);
	rm(odd1);
	rm(odd2);
}

/*
 * 4. A runtime started with MYRIAD_STATS_SHM=1 (the block target) sweeps a
 *    stale file of a gone pid before it makes its own.
 */
static void runtime_sweeps(const char *exe)
{
	char gone[64], own[64];
	pid_t dead = dead_pid(), c;
	double end;
	int pi[2];

	snprintf(gone, sizeof(gone), "myriad.%d.0", (int)dead);
	make_file(gone, dead);
	REQUIRE(pipe(pi) == 0, "pipe");
	c = fork();
	REQUIRE(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		int null = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pi[0], 0);
		dup2(null, 1);
		close(pi[0]);
		close(pi[1]);
		setenv("MYRIAD_STATS_SHM", "1", 1);
		execl(exe, exe, (char *)NULL);
		_exit(127);
	}
	close(pi[0]);
	snprintf(own, sizeof(own), "myriad.%d.0", (int)c);
	/* However slowly a loaded machine starts it (a watchdog's time). */
	end = t_now() + 30.0 * T_SLOW;
	while (!exists(own) && t_now() < end)
		usleep(10000);
	CHECK(exists(own), "the target made no %s in %d s", own, 30 * T_SLOW);
	CHECK(!exists(gone), "%s (pid gone) kept by a runtime starting", gone);
	close(pi[1]); /* the target ends */
	REQUIRE(waitpid(c, NULL, 0) == c, "waitpid");
	CHECK(!exists(own), "%s left after the runtime ended", own);
	rm(gone);
	rm(own);
}

/*
 * Fork a child with pid 'want' (ns_last_pid), which runs 'exe' (NULL:
 * waits for its stdin to close) with stdin from a pipe whose write end
 * goes to *in. Returns the pid, 0 if another pid came (retry), -1 if
 * ns_last_pid cannot be written.
 */
static pid_t fork_as(pid_t want, const char *exe, int *in, int *out)
{
	char buf[32];
	int fd, len, pi[2], po[2];
	pid_t p;

	fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
	if (fd < 0)
		return -1;
	REQUIRE(pipe(pi) == 0 && pipe(po) == 0, "pipe");
	len = snprintf(buf, sizeof(buf), "%d", (int)want - 1);
	if (write(fd, buf, (size_t)len) != len) {
		close(fd);
		return -1;
	}
	close(fd);
	p = fork();
	REQUIRE(p >= 0, "fork: %s", strerror(errno));
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pi[0], 0);
		dup2(po[1], 1);
		close(pi[0]);
		close(pi[1]);
		close(po[0]);
		close(po[1]);
		if (exe)
			execl(exe, exe, (char *)NULL);
		else
			while (read(0, buf, sizeof(buf)) > 0)
				;
		_exit(exe ? 127 : 0);
	}
	close(pi[0]);
	close(po[1]);
	if (p != want) {
		close(pi[1]);
		close(po[0]);
		waitpid(p, NULL, 0);
		return 0;
	}
	*in = pi[1];
	*out = po[0];
	return p;
}

/* The tool on 'pid' for 0.5 s: its exit status, stderr into 'err'. */
static int run_trace(const char *trace, pid_t pid, char *err, size_t len)
{
	char p[16];
	int pfd[2], st;
	ssize_t r, n = 0;
	pid_t c;

	snprintf(p, sizeof(p), "%d", (int)pid);
	REQUIRE(pipe(pfd) == 0, "pipe");
	c = fork();
	REQUIRE(c >= 0, "fork");
	if (c == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		execl(trace, trace, "--json", "--duration", "0.5", p,
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while (n < (ssize_t)len - 1 &&
	       (r = read(pfd[0], err + n, len - 1 - (size_t)n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		n += r;
	}
	err[n] = '\0';
	close(pfd[0]);
	REQUIRE(waitpid(c, &st, 0) == c, "waitpid");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A stale file for pid X, then a process 'exe' with pid X. */
static void reused(const char *trace, const char *exe)
{
	char name[64], err[4096], line[64] = "";
	FILE *f;
	pid_t want, p = 0;
	int i, in, out, rc;

	/* Far enough ahead of the last pid that no one takes it first. */
	want = dead_pid() + 200;
	snprintf(name, sizeof(name), "myriad.%d.0", (int)want);
	make_file(name, want);
	/* Older than the process by more than the slack. */
	t_sleep_ms((unsigned)(SHM_STALE_SLACK_NS / 1000000) + 200);
	for (i = 0; i < 5 && p == 0; i++)
		p = fork_as(want, exe, &in, &out);
	if (p < 0) {
		rm(name);
		printf("skipped: a pid of our choice (ns_last_pid not "
		       "writable)\n");
		return;
	}
	if (p == 0) {
		rm(name);
		printf("skipped: pid %d was taken by another process\n",
		       (int)want);
		return;
	}
	if (exe) {
		f = fdopen(out, "r");
		REQUIRE(f && fgets(line, sizeof(line), f) &&
				!strncmp(line, "ready", 5),
			"%s did not start: '%s'", exe, line);
		fclose(f);
	} else {
		close(out);
	}
	rc = run_trace(trace, p, err, sizeof(err));
	printf("myriad-trace on pid %d (%s), stale %s: exit %d: %s", (int)p,
	       exe ? "a myriad process" : "not a myriad process", name, rc,
	       err);
	if (!exe) {
		CHECK(rc == 2, "exit %d, want 2 (refused)", rc);
		CHECK(strstr(err, "not a myriad process") &&
			      strstr(err, name) && strstr(err, "is stale"),
		      "the refusal does not say the file is stale: %s", err);
	} else {
		CHECK(rc == 0, "exit %d, want 0", rc);
		CHECK(strstr(err, "ignored stale /dev/shm/") &&
			      strstr(err, name),
		      "the header does not say the stale file was ignored: "
		      "%s",
		      err);
	}
	CHECK(exists(name), "myriad-trace removed %s: it only reads", name);
	close(in);
	waitpid(p, &rc, 0);
	if (exe)
		CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0,
		      "the target ended with status %#x", rc);
	rm(name);
}

int main(int argc, char **argv)
{
	const char *trace = arg(argc, argv, "--trace", NULL);
	const char *target = arg(argc, argv, "--target", NULL);

	t_name = "trace/stale";
	if (!trace || !target) {
		fprintf(stderr, "usage: %s --trace PATH --target PATH\n",
			argv[0]);
		return T_FAIL;
	}
	t_watchdog(50);
	unit();
	runtime_sweeps(target);
	if (geteuid() == 0) {
		reused(trace, NULL);
		reused(trace, target);
	} else {
		printf("skipped: a reused pid (needs root for ns_last_pid)\n");
	}
	return t_result();
}
