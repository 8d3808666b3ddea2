/* SPDX-License-Identifier: MIT */
/*
 * tests/trace/block.c: myriad-trace reports the steps that block their
 * worker in the kernel, with the task, the step function's symbol and the
 * time blocked (eBPF: as root; skips, 77, otherwise).
 *
 *   test-trace-block --trace PATH --target PATH [--have-bpf 0|1]
 *
 * The target (block_target.c) runs, on 2 workers, a step that sleeps 50
 * ms and a step that computes for 1 ms. Three runs of the tool:
 *   1. --json --duration 2 --block-min-ms 10: blocking events name
 *      step_sleeps in the target's executable (a static function: from
 *      .symtab), on a worker, none under 10 ms, 80% at least 45 ms (off
 *      its CPU for the sleep, back on after it: shorter only if preempted
 *      between arming its timer and sleeping); none names step_burns;
 *      the intervals cover the 2 s;
 *   2. text, --duration 1: the "blocking" section under the table and a
 *      line per event with the worker, the task, the time and the step;
 *   3. --json --duration 1 --block-min-ms 100: none listed under 100 ms,
 *      the shorter ones counted.
 * How many sleeps a run sees, and how long each took to get its CPU back,
 * is the machine's: a run that saw none of what is looked for (a starved
 * target) is repeated, for 30 s (times T_SLOW) at most.
 */
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <jansson.h>

#include "helpers.h"
#include "trace_test.h"

static pid_t target_pid;
static int target_in = -1; /* closing it ends the target */

/* Start the target; returns once it said "ready". */
static void start_target(const char *path)
{
	int in[2], out[2];
	char line[64] = "";
	FILE *f;
	pid_t p;

	REQUIRE(pipe(in) == 0 && pipe(out) == 0, "pipe: %s", strerror(errno));
	p = fork();
	REQUIRE(p >= 0, "fork: %s", strerror(errno));
	if (p == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	target_pid = p;
	target_in = in[1];
	f = fdopen(out[0], "r");
	REQUIRE(f && fgets(line, sizeof(line), f) && !strncmp(line, "ready", 5),
		"%s did not start: '%s'", path, line);
	fclose(f);
}

static void stop_target(void)
{
	int st;

	if (target_in < 0)
		return;
	close(target_in);
	target_in = -1;
	REQUIRE(waitpid(target_pid, &st, 0) == target_pid, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the target ended with status %#x, want exit 0", st);
}

/* Run the tool with 'args' (NULL-terminated) on the target: its stdout. */
static char *run_trace(const char *trace, const char *const *args)
{
	const char *argvv[16];
	char pid[16], *buf = NULL;
	size_t len = 0;
	FILE *mem;
	int pfd[2], st, n = 0, i;
	ssize_t r;
	pid_t p;

	snprintf(pid, sizeof(pid), "%d", (int)target_pid);
	argvv[n++] = trace;
	for (i = 0; args[i] && n < 14; i++)
		argvv[n++] = args[i];
	argvv[n++] = pid;
	argvv[n] = NULL;
	REQUIRE(pipe(pfd) == 0, "pipe");
	p = fork();
	REQUIRE(p >= 0, "fork");
	if (p == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(trace, (char *const *)argvv);
		_exit(127);
	}
	close(pfd[1]);
	mem = open_memstream(&buf, &len);
	REQUIRE(mem, "open_memstream");
	for (;;) {
		char chunk[4096];

		r = read(pfd[0], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		fwrite(chunk, 1, (size_t)r, mem);
	}
	fclose(mem);
	close(pfd[0]);
	REQUIRE(waitpid(p, &st, 0) == p, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "myriad-trace %s...: status %#x, want exit 0", args[0], st);
	return buf;
}

static const char *str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static long long num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

struct seen {
	unsigned intervals, blocks, sleeps, in_range, burns;
	unsigned slept; /* step_sleeps' blocks of 45 ms or more */
	long long shorter, lost;
	double traced_s; /* the intervals' lengths */
};

/* Time left for one more run of the tool. */
static bool more(const double *end)
{
	return t_now() < *end;
}

/* The interval lines of one --json run. */
static void parse_json(char *out, long long min_ns, struct seen *s,
		       const char *object)
{
	char *line, *save = NULL;

	memset(s, 0, sizeof(*s));
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *o = json_loads(line, 0, &e), *bs;
		size_t i;

		REQUIRE(o && json_is_object(o), "not a JSON object (%s): %s",
			e.text, line);
		s->intervals++;
		s->traced_s +=
			json_real_value(json_object_get(o, "interval_s"));
		CHECK(num(o, "block_min_ns") == min_ns,
		      "block_min_ns %lld, want %lld", num(o, "block_min_ns"),
		      min_ns);
		CHECK(num(o, "blocks_short") >= 0 &&
			      num(o, "blocks_lost") >= 0 &&
			      num(o, "blocks_not_listed") == 0,
		      "blocks_short/lost/not_listed missing or wrong: %s",
		      line);
		s->shorter += num(o, "blocks_short");
		s->lost += num(o, "blocks_lost");
		bs = json_object_get(o, "blocks");
		REQUIRE(json_is_array(bs), "no \"blocks\" array: %s", line);
		for (i = 0; i < json_array_size(bs); i++) {
			json_t *b = json_array_get(bs, i);
			const char *sym = str(b, "sym"),
				   *obj = str(b, "object");
			const char *step = str(b, "step"),
				   *task = str(b, "task");
			long long ns = num(b, "blocked_ns");

			s->blocks++;
			if (s->blocks <= 3)
				printf("block: worker %lld tid %lld task %s "
				       "step %s: %.2f ms, state %s\n",
				       num(b, "idx"), num(b, "tid"),
				       task ? task : "?", step ? step : "?",
				       ns / 1e6,
				       str(b, "state") ? str(b, "state") : "?");
			CHECK(ns >= min_ns, "blocked %lld ns, under %lld", ns,
			      min_ns);
			CHECK(num(b, "idx") == 0 || num(b, "idx") == 1,
			      "idx %lld: not a worker", num(b, "idx"));
			CHECK(num(b, "tid") > 0, "tid %lld", num(b, "tid"));
			CHECK(task && !strncmp(task, "0x", 2) &&
				      strcmp(task, "0x0"),
			      "task %s", task ? task : "(none)");
			CHECK(str(b, "fn") && !strncmp(str(b, "fn"), "0x", 2),
			      "fn not an address");
			CHECK(str(b, "state") && !strcmp(str(b, "state"), "S"),
			      "state %s, want S (a nanosleep)",
			      str(b, "state") ? str(b, "state") : "(none)");
			if (sym && !strcmp(sym, "step_burns"))
				s->burns++;
			if (!sym || strcmp(sym, "step_sleeps"))
				continue;
			s->sleeps++;
			CHECK(num(b, "sym_off") == 0, "sym_off %lld",
			      num(b, "sym_off"));
			CHECK(obj && !strcmp(obj, object), "object %s, want %s",
			      obj ? obj : "(none)", object);
			CHECK(step && strstr(step, "step_sleeps (") == step,
			      "step %s", step ? step : "(none)");
			if (ns >= 45000000 && ns <= 250000000)
				s->in_range++;
			if (ns >= 45000000)
				s->slept++;
		}
		json_decref(o);
	}
}

int main(int argc, char **argv)
{
	const char *trace = arg(argc, argv, "--trace", NULL);
	const char *target = arg(argc, argv, "--target", NULL);
	const char *object;
	struct seen s;
	char *out, *p;
	unsigned lines = 0;
	double end;

	t_name = "trace/block";
	if (!trace || !target) {
		fprintf(stderr,
			"usage: %s --trace PATH --target PATH "
			"[--have-bpf 0|1]\n",
			argv[0]);
		return T_FAIL;
	}
	if (geteuid() != 0) {
		t_skip("blocking events need the eBPF source: run as root "
		       "(or with CAP_BPF+CAP_PERFMON)");
		return T_SKIP;
	}
	if (!strcmp(arg(argc, argv, "--have-bpf", "1"), "0")) {
		t_skip("myriad-trace was built without its eBPF probes");
		return T_SKIP;
	}
	t_watchdog(60);
	object = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	start_target(target);
	end = t_now() + 30.0 * T_SLOW;

	/*
	 * 1. JSON, 10 ms threshold: the 50 ms sleeps, named. The tool sleeps
	 *    to absolute times: 2 intervals of 1 s, or 1 when it woke after
	 *    the end; together they cover the 2 s.
	 */
	do {
		out = run_trace(trace, (const char *const[]){
					       "--json", "--duration", "2",
					       "--block-min-ms", "10", NULL });
		parse_json(out, 10000000, &s, object);
		free(out);
		printf("run 1: %u intervals over %.3f s, %u blocks (%u "
		       "step_sleeps, %u of them 45 ms or more, %u 45-250 ms), "
		       "%lld shorter, %lld lost\n",
		       s.intervals, s.traced_s, s.blocks, s.sleeps, s.slept,
		       s.in_range, s.shorter, s.lost);
		CHECK(s.intervals >= 1 && s.intervals <= 2,
		      "%u intervals of 1 s in 2 s", s.intervals);
		CHECK(s.traced_s >= 2.0 - 1e-3, "the intervals cover %.3f s",
		      s.traced_s);
		CHECK(s.burns == 0,
		      "step_burns blocked %u times: it never sleeps", s.burns);
		CHECK(s.lost == 0, "%lld events lost", s.lost);
	} while ((!s.sleeps || s.slept * 10 < s.sleeps * 8) && more(&end));
	CHECK(s.sleeps >= 1 && s.slept * 10 >= s.sleeps * 8,
	      "%u of %u step_sleeps blocks of 45 ms or more (its sleep: "
	      "50 ms), want 80%%",
	      s.slept, s.sleeps);

	/* 2. Text: the section and its lines. */
	do {
		out = run_trace(trace, (const char *const[]){ "--duration", "1",
							      "--interval",
							      "0.5", NULL });
		fputs(out, stdout);
		CHECK(strstr(out,
			     "blocking (steps asleep in the kernel >= 1 ms): "),
		      "text: no blocking section");
		CHECK(strstr(out, "shorter (suppressed)"),
		      "text: no count of the shorter events");
		lines = 0;
		for (p = strtok(out, "\n"); p; p = strtok(NULL, "\n")) {
			char w[8], st[8], step[128];
			unsigned tid;
			unsigned long long task;
			double ms;

			if (sscanf(p, "%7s %u 0x%llx %lf %7s %127s", w, &tid,
				   &task, &ms, st, step) == 6 &&
			    (!strcmp(w, "w0") || !strcmp(w, "w1")) &&
			    !strcmp(step, "step_sleeps") && strstr(p, object) &&
			    ms >= 1)
				lines++;
		}
		free(out);
	} while (!lines && more(&end));
	CHECK(lines >= 1, "text: no line of a step_sleeps block");

	/* 3. A threshold over the sleeps: listed only from 100 ms, the
	 *    shorter ones counted. */
	do {
		out = run_trace(trace, (const char *const[]){
					       "--json", "--duration", "1",
					       "--block-min-ms", "100", NULL });
		parse_json(out, 100000000, &s, object);
		free(out);
		printf("run 3 (>= 100 ms): %u blocks listed, %lld shorter\n",
		       s.blocks, s.shorter);
	} while (s.shorter < 1 && more(&end));
	CHECK(s.shorter >= 1, "no shorter block counted");

	stop_target();
	return t_result();
}
