/* SPDX-License-Identifier: MIT */
/*
 * bench/servers_start.c: the agents workload's mock servers (llm-server,
 * tool-server), started as child processes on ephemeral ports.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/*
 * The agents workload's servers (servers/), when no --tool-port and
 * --llm-port are given: started here on ephemeral ports (--port 0, each
 * prints "PORT <n>"), from $MYRIAD_BENCH_SERVERS or the servers/ folder
 * beside this binary's folder (<build>/servers/ for <build>/bench/), and
 * stopped at exit. They are separate processes: getrusage(RUSAGE_SELF)
 * does not count them.
 */
struct server {
	const char *name;
	pid_t pid;
	int out; /* its stdout, kept open so that it never sees EPIPE */
};

static struct server servers[2] = { { "llm-server", -1, -1 },
				    { "tool-server", -1, -1 } };

/* How long a server may take to print its PORT line. */
#define SERVER_START_MS 10000

static void servers_stop(void)
{
	int i, status;

	for (i = 0; i < 2; i++) {
		if (servers[i].pid <= 0)
			continue;
		kill(servers[i].pid, SIGTERM);
		waitpid(servers[i].pid, &status, 0);
		servers[i].pid = -1;
		if (servers[i].out >= 0)
			close(servers[i].out);
		servers[i].out = -1;
	}
}

/* The servers' folder: $MYRIAD_BENCH_SERVERS, else ../servers from us. */
static int servers_dir(char *dir, size_t cap)
{
	const char *env = getenv("MYRIAD_BENCH_SERVERS");
	char exe[PATH_MAX], *slash;
	ssize_t n;

	if (env && *env)
		return (size_t)snprintf(dir, cap, "%s", env) < cap
			       ? 0
			       : -ENAMETOOLONG;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = 0;
	if ((size_t)snprintf(dir, cap, "%s/../servers", exe) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Start servers[k] with 'args' (NULL-terminated, after the program name)
 * and read its port. Returns the port, or -1 after saying why.
 */
static int server_start(const char *dir, int k, const char *const *args)
{
	struct server *s = &servers[k];
	char path[PATH_MAX + 32], line[128];
	const char *argv[16];
	size_t len = 0;
	uint64_t until;
	int fds[2], i, port = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, s->name);
	if (access(path, X_OK) < 0) {
		fprintf(stderr,
			"myriad-bench: agents: no %s (%s): build it (ninja -C build), set MYRIAD_BENCH_SERVERS to its folder, or pass --tool-port and --llm-port\n",
			path, strerror(errno));
		return -1;
	}
	argv[0] = path;
	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "myriad-bench: agents: pipe: %s\n",
			strerror(errno));
		return -1;
	}
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0) {
		fprintf(stderr, "myriad-bench: agents: fork: %s\n",
			strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (s->pid == 0) {
		/* The server dies with us, however we end. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(127);
		execv(path, (char *const *)argv);
		fprintf(stderr, "myriad-bench: agents: exec %s: %s\n", path,
			strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	s->out = fds[0];
	until = myriad_now_ns() + SERVER_START_MS * UINT64_C(1000000);
	while (port < 0) {
		struct pollfd pfd = { .fd = s->out, .events = POLLIN };
		int64_t left = (int64_t)(until - myriad_now_ns()) / 1000000;
		ssize_t n;
		char *nl;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			fprintf(stderr,
				"myriad-bench: agents: %s printed no PORT line in %d ms\n",
				s->name, SERVER_START_MS);
			return -1;
		}
		n = read(s->out, line + len, sizeof(line) - 1 - len);
		if (n <= 0) {
			fprintf(stderr,
				"myriad-bench: agents: %s ended before printing its port\n",
				s->name);
			return -1;
		}
		len += (size_t)n;
		line[len] = 0;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			if (sscanf(line, "PORT %d", &port) == 1 && port > 0 &&
			    port < 65536)
				break;
			port = -1;
			len -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, len + 1);
		}
		if (port < 0 && len >= sizeof(line) - 1) {
			fprintf(stderr,
				"myriad-bench: agents: %s: no PORT line\n",
				s->name);
			return -1;
		}
	}
	return port;
}

bool servers_start(int64_t llm_ms, int64_t llm_conc, int64_t tool_ms,
		   int *llm_port, int *tool_port)
{
	char dir[PATH_MAX], ms[32], conc[32], tms[32];
	const char *llm[] = { "--port",	       "0",  "--llm-ms", ms,
			      "--concurrency", conc, NULL };
	const char *tool[] = { "--port", "0", "--tool-ms", tms, NULL };
	int r;

	r = servers_dir(dir, sizeof(dir));
	if (r < 0) {
		fprintf(stderr,
			"myriad-bench: agents: cannot find the servers' folder: %s\n",
			strerror(-r));
		return false;
	}
	snprintf(ms, sizeof(ms), "%" PRId64, llm_ms);
	snprintf(conc, sizeof(conc), "%" PRId64, llm_conc);
	snprintf(tms, sizeof(tms), "%" PRId64, tool_ms);
	atexit(servers_stop);
	if (!*llm_port && (*llm_port = server_start(dir, 0, llm)) < 0)
		return false;
	if (!*tool_port && (*tool_port = server_start(dir, 1, tool)) < 0)
		return false;
	return true;
}
