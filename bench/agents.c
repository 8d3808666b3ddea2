/* SPDX-License-Identifier: MIT */
/*
 * bench/agents.c: the agents workload: A agents of S steps each, a step
 * being CPU work, a call to the tool server and one to the LLM server.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agents.h"

/*
 * The agents step of docs/bench.md, as the Go and Tokio peers do it
 * (bench/peers/):
 * 1. CPU work: FNV-1a over a shared read-only 4 KiB buffer, 4 passes,
 *    seeded by the agent and the step; the hash goes into the tool request
 *    and comes back in the answer, so it cannot be optimised away.
 * 2. Tool call: one request line on a kept-alive TCP connection to the
 *    tool server; the answer line ("ok <request>") is read whole and
 *    checked. By default each agent has its own connection, connected
 *    when it starts and kept for all its steps (not a connection per
 *    step), as the peers do. With --tool-conns N, or when the descriptor
 *    limit cannot hold one per agent (a million agents), the agents share
 *    a pool of N connections instead: a channel of idle descriptors that
 *    an agent takes for its request and answer and puts back (as an HTTP
 *    client's connection pool does); tool_conns in the RESULT line says
 *    which.
 * 3. LLM call: myriad_infer_chat() on a pool with one endpoint (the mock
 *    server, window = llm_concurrency); choices[0].message.content, parsed
 *    by the client, must not be empty.
 * A step's latency runs from the start of its CPU work to the LLM result.
 * wall_s runs from the first agent spawned (its connect included) to the
 * last one done; tasks = A.
 */
/*
 * Descriptors besides one per agent (its tool connection) and
 * llm_concurrency (the LLM pool's connections): stdio, the rings,
 * connections curl is still closing.
 */
#define AGENT_SPARE_FDS 64
/* The most connections the shared tool pool opens on its own. */
#define AGENT_POOL_MAX 1024

struct agents G;

uint8_t agent_buf[AGENT_BUF];

/* The same bytes in every runner: byte i is i * 131 + 7 (mod 256). */
static void agent_buf_init(void)
{
	int i;

	for (i = 0; i < AGENT_BUF; i++)
		agent_buf[i] = (uint8_t)(i * 131 + 7);
}

/* As echo_fail(): the first failure is printed, every one is counted. */
void agent_fail(int64_t id, const char *what, int rc, const char *msg)
{
	if (rc == -ECANCELED && (atomic_load(&G.failures) || B.failed))
		return;
	if (atomic_fetch_add(&G.failures, 1) == 0)
		fprintf(stderr,
			id >= 0 ? "myriad-bench: agents: agent %" PRId64
				  ": %s: %s\n"
				: "myriad-bench: agents: tool connection %" PRId64
				  ": %s: %s\n",
			id >= 0 ? id : -1 - id, what,
			msg	 ? msg
			: rc < 0 ? strerror(-rc)
				 : "unexpected end of stream");
	myriad_waker_wake(B.root);
}

static bool agents_over(void)
{
	return run_over() || atomic_load(&G.failures);
}

struct agent {
	MYRIAD_CORO_FIELD;
	int fd;
	struct dialer dial; /* its own tool connection */
	int off, len;
	uint32_t hash;
	int64_t id, s;
	uint64_t t0;
	myriad_io_t op;		  /* connect, send, recv, close */
	myriad_infer_call_t call; /* the LLM call */
	myriad_timer_t tm;	  /* connect retries */
	char req[80];		  /* the tool request line */
	char ans[120];		  /* its answer, "ok " + the request */
	char msgs[160];		  /* the chat messages, JSON */
};

static int agent_step(myriad_task_t *self, void *p)
{
	struct agent *st = p;
	const struct myriad_infer_result *res;
	const char *nl;
	int rc;

	MYRIAD_BEGIN(st);
	if (G.tool_ch)
		goto steps; /* the shared pool's connections */
	/* The agent's own tool connection, kept for all its steps. */
	MYRIAD_IO(st, rc,
		  dial(self, &st->dial, &st->op, &st->tm, &G.tool_addr,
		       &G.retries));
	if (rc < 0) {
		agent_fail(st->id, st->dial.what, rc, NULL);
		return MYRIAD_DONE;
	}
	st->fd = rc;
steps:
	for (st->s = 0; st->s < G.steps; st->s++) {
		/* 1. CPU work. */
		st->t0 = myriad_now_ns();
		st->hash = agent_cpu((uint32_t)(st->id * 1000003 + st->s));
		/* 2. The tool call. */
		st->len = snprintf(st->req, sizeof(st->req),
				   "agent %" PRId64 " step %" PRId64
				   " fnv %08x\n",
				   st->id, st->s, st->hash);
		if (G.tool_ch) {
			MYRIAD_RECV(st, self, G.tool_ch, &st->fd, rc);
			if (rc < 0) {
				agent_fail(st->id, "tool connection pool", rc,
					   NULL);
				return MYRIAD_DONE;
			}
		}
		for (st->off = 0; st->off < st->len; st->off += rc) {
			MYRIAD_IO(st, rc,
				  myriad_io_send(self, &st->op, st->fd,
						 st->req + st->off,
						 (size_t)(st->len - st->off),
						 MSG_NOSIGNAL));
			if (rc <= 0) {
				agent_fail(st->id, "tool send", rc, NULL);
				goto out_close;
			}
		}
		/* The answer may come in pieces: read to its newline. */
		st->off = 0;
		do {
			if (st->off >= (int)sizeof(st->ans) - 1) {
				agent_fail(st->id, "tool answer", 0,
					   "longer than expected");
				goto out_close;
			}
			MYRIAD_IO(st, rc,
				  myriad_io_recv(self, &st->op, st->fd,
						 st->ans + st->off,
						 sizeof(st->ans) - 1 - st->off,
						 0));
			if (rc <= 0) {
				agent_fail(st->id, "tool recv", rc, NULL);
				goto out_close;
			}
			st->off += rc;
			nl = memchr(st->ans, '\n', (size_t)st->off);
		} while (!nl);
		if (st->off != st->len + 3 || memcmp(st->ans, "ok ", 3) ||
		    memcmp(st->ans + 3, st->req, (size_t)st->len)) {
			agent_fail(st->id, "tool answer", 0,
				   "not \"ok <request>\"");
			goto out_close;
		}
		/* Back to the pool (it has room for all of them). */
		if (G.tool_ch) {
			rc = myriad_chan_try_send(G.tool_ch, &st->fd);
			if (rc < 0) {
				agent_fail(st->id, "tool connection pool", rc,
					   NULL);
				goto out_close;
			}
			st->fd = -1;
		}
		/* 3. The LLM call. */
		snprintf(st->msgs, sizeof(st->msgs),
			 "[{\"role\":\"user\",\"content\":\"agent %" PRId64
			 " step %" PRId64 ": the tool said ok (fnv %08x)\"}]",
			 st->id, st->s, st->hash);
		MYRIAD_IO(st, rc,
			  myriad_infer_chat(self, G.pool, &st->call, st->msgs,
					    NULL));
		res = myriad_infer_result(&st->call);
		if (rc < 0) {
			agent_fail(st->id, "LLM call", rc,
				   res && res->error[0] ? res->error : NULL);
			goto out_close;
		}
		if (!res || !res->content || !res->content_len) {
			agent_fail(st->id, "LLM call", 0,
				   "empty choices[0].message.content");
			goto out_close;
		}
		G.lats[st->id * G.steps + st->s] = myriad_now_ns() - st->t0;
		if (res->attempts > 1)
			atomic_fetch_add(&G.llm_extra, res->attempts - 1);
		/* The parsed response is freed now, not at the next call. */
		myriad_infer_release(self, &st->call);
	}
	atomic_fetch_xor_explicit(&G.hash_sink, st->hash, memory_order_relaxed);
	if (G.tool_ch) {
		count_down();
		return MYRIAD_DONE;
	}
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	if (rc < 0) {
		agent_fail(st->id, "close", rc, NULL);
		return MYRIAD_DONE;
	}
	count_down();
	return MYRIAD_DONE;
out_close:
	/* After a failure: the kernel closes it at once, nothing to wait for. */
	if (st->fd >= 0)
		close(st->fd);
	MYRIAD_END(st);
}

/* One connection of the shared pool: connected, then made idle. */
struct tool_conn {
	MYRIAD_CORO_FIELD;
	int fd;
	struct dialer dial;
	int64_t id;
	myriad_io_t op;
	myriad_timer_t tm;
};

static int tool_conn_step(myriad_task_t *self, void *p)
{
	struct tool_conn *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, rc,
		  dial(self, &st->dial, &st->op, &st->tm, &G.tool_addr,
		       &G.retries));
	if (rc < 0) {
		agent_fail(-1 - st->id, st->dial.what, rc, NULL);
		return MYRIAD_DONE;
	}
	st->fd = rc;
	rc = myriad_chan_try_send(G.tool_ch, &st->fd);
	if (rc < 0) {
		agent_fail(-1 - st->id, "tool connection pool", rc, NULL);
		close(st->fd);
	}
	MYRIAD_END(st);
}

static int agents_root(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct tool_conn tc;
	struct agent a;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	/* The shared pool's connections, made beside the first agents. */
	for (st->i = 0; G.tool_ch && st->i < G.tool_conns; st->i++) {
		memset(&tc, 0, sizeof(tc));
		tc.id = st->i;
		spawn(self, tool_conn_step, &tc, sizeof(tc), 0);
	}
	for (st->i = 0; st->i < B.n && !B.failed && !G.failures; st->i++) {
		if (G.tools) {
			agent_tools_spawn(self, st->i);
		} else {
			memset(&a, 0, sizeof(a));
			a.id = st->i;
			spawn(self, agent_step, &a, sizeof(a), 0);
		}
		if ((st->i & 255) == 255)
			MYRIAD_YIELD(st);
	}
	MYRIAD_WAIT_UNTIL(st, agents_over());
	/* A failure ends the others: their calls return -ECANCELED. */
	if (B.failed || G.failures)
		myriad_task_cancel(self);
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

/* --agents A (10,000) --steps S (10) --tool-ms T (2) --llm-ms L (20)
 * --llm-concurrency C (256) --tool-port P --llm-port P --tool-conns N
 * --tools N (0: the plain step) */
static int64_t agents_parse(const struct bench_args *a)
{
	if (a->n >= 0 || a->tasks >= 0 || a->yields >= 0 || a->pairs >= 0 ||
	    a->rounds >= 0)
		usage("agents takes --agents --steps --tool-ms --llm-ms --llm-concurrency --tool-port --llm-port --tool-conns --tools");
	B.n = a->agents >= 0 ? a->agents : 10000;
	G.steps = a->steps >= 0 ? a->steps : 10;
	G.tool_ms = a->tool_ms >= 0 ? a->tool_ms : 2;
	G.llm_ms = a->llm_ms >= 0 ? a->llm_ms : 20;
	G.llm_conc = a->llm_conc >= 0 ? a->llm_conc : 256;
	G.tool_port = a->tool_port >= 0 ? (int)a->tool_port : 0;
	G.llm_port = a->llm_port >= 0 ? (int)a->llm_port : 0;
	G.tool_conns = a->tool_conns >= 0 ? a->tool_conns : 0;
	G.tools = a->tools >= 0 ? a->tools : 0;
	if (B.n * G.steps > INT64_C(1) << 28)
		usage("--agents times --steps over 2^28");
	return B.n;
}

static int agents_prepare(struct myriad_rt_opts *o)
{
	/*
	 * A tool connection per agent (per tool call of an answer with
	 * --tools), or the shared pool's, and the LLM pool's connections.
	 * Agents beyond what the descriptor limit holds share a pool of
	 * the connections it has room for (at most AGENT_POOL_MAX), said
	 * on stderr.
	 */
	uint64_t per = G.tools ? (uint64_t)G.tools : 1;

	if (!G.tool_conns) {
		uint64_t room = nofile_max();
		uint64_t other = (uint64_t)G.llm_conc + AGENT_SPARE_FDS;

		if ((uint64_t)B.n * per + other > room) {
			G.tool_conns = room > other + 16
					       ? (int64_t)(room - other)
					       : 16;
			if (G.tool_conns > AGENT_POOL_MAX)
				G.tool_conns = AGENT_POOL_MAX;
			fprintf(stderr,
				"myriad-bench: agents: %" PRId64
				" agents do not fit %" PRIu64
				" tool connection(s) each in RLIMIT_NOFILE %" PRIu64
				": they share a pool of %" PRId64
				" (--tool-conns)\n",
				B.n, per, room, G.tool_conns);
		}
	}
	raise_nofile(
		(G.tool_conns ? (uint64_t)G.tool_conns : (uint64_t)B.n * per) +
			(uint64_t)(G.llm_conc + AGENT_SPARE_FDS),
		G.tool_conns
			? "agents (the tool connection pool, the LLM connections and some to spare)"
			: "agents (a tool connection per agent, the LLM connections and some to spare)",
		G.tool_conns ? "--tool-conns" : "--agents",
		G.tool_conns ? 1 : per, (uint64_t)G.llm_conc + AGENT_SPARE_FDS);
	G.lats = calloc((size_t)(B.n * G.steps), sizeof(*G.lats));
	if (!G.lats) {
		fprintf(stderr, "myriad-bench: agents: out of memory\n");
		return 1;
	}
	agent_buf_init();
	/* Before any thread exists: the servers are forked. */
	if ((!G.tool_port || !G.llm_port) &&
	    !servers_start(G.llm_ms, G.llm_conc, G.tool_ms, &G.llm_port,
			   &G.tool_port))
		return 1;
	memset(&G.tool_addr, 0, sizeof(G.tool_addr));
	G.tool_addr.sin_family = AF_INET;
	G.tool_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	G.tool_addr.sin_port = htons((uint16_t)G.tool_port);
	return 0;
}

/* The LLM pool on the server's port, and the tool connection pool. */
static int agents_setup(myriad_rt_t *rt)
{
	struct myriad_infer_opts io = { .sz = sizeof(io) };
	struct myriad_infer_endpoint ep = { .sz = sizeof(ep) };
	char url[64];
	int err;

	G.pool = myriad_infer_create(rt, &io, &err);
	if (!G.pool) {
		fprintf(stderr,
			"myriad-bench: agents: myriad_infer_create: %s\n",
			strerror(-err));
		return 1;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", G.llm_port);
	ep.base_url = url;
	ep.model = "mock";
	ep.window = (unsigned)G.llm_conc;
	err = myriad_infer_add(G.pool, &ep);
	if (err < 0) {
		fprintf(stderr, "myriad-bench: agents: myriad_infer_add: %s\n",
			strerror(-err));
		return 1;
	}
	if (G.tools && agents_tools_setup())
		return 1;
	if (G.tool_conns) {
		G.tool_ch = myriad_chan_create(rt, sizeof(int),
					       (size_t)G.tool_conns, &err);
		if (!G.tool_ch) {
			fprintf(stderr,
				"myriad-bench: agents: the tool connection pool: %s\n",
				strerror(-err));
			return 1;
		}
	}
	return 0;
}

/* CPU time of this process during the run: the servers are others. */
static double cpu_s;

static int agents_run(myriad_rt_t *rt, int64_t *tasks)
{
	struct rusage ru0, ru1;
	int r;

	getrusage(RUSAGE_SELF, &ru0);
	r = run_root(rt, agents_root);
	getrusage(RUSAGE_SELF, &ru1);
	cpu_s = cpu_seconds(&ru1) - cpu_seconds(&ru0);
	return r;
}

static int agents_check(int r)
{
	if (G.failures) {
		fprintf(stderr,
			"myriad-bench: agents: %" PRId64
			" agents failed (the first above)\n",
			atomic_load(&G.failures));
		return 1;
	}
	return 0;
}

static void agents_notes(void)
{
	if (G.retries)
		fprintf(stderr,
			"myriad-bench: agents: %" PRId64
			" tool connects retried\n",
			atomic_load(&G.retries));
	if (G.llm_extra)
		fprintf(stderr,
			"myriad-bench: agents: %" PRId64
			" LLM attempts retried by the client\n",
			atomic_load(&G.llm_extra));
}

static int agents_teardown(void)
{
	int r;

	if (G.tool_ch) {
		int fd;

		while (myriad_chan_try_recv(G.tool_ch, &fd) == 0)
			close(fd);
		myriad_chan_destroy(G.tool_ch);
	}
	agents_tools_teardown();
	r = myriad_infer_destroy(G.pool);
	if (r < 0) {
		fprintf(stderr,
			"myriad-bench: agents: myriad_infer_destroy: %s\n",
			strerror(-r));
		return 1;
	}
	return 0;
}

static void agents_result(double w, int64_t tasks)
{
	size_t nl = (size_t)(B.n * G.steps);
	double sps = (double)nl / w;
	/* A step with tools makes two LLM calls. */
	double llm_per_s = G.tools ? 2 * sps : sps;

	/* Nearest rank, as the peers. */
	qsort(G.lats, nl, sizeof(*G.lats), cmp_u64);
	printf(" steps_per_s=%.1f cpu_s_per_step=%.9f p50_ms=%.3f"
	       " p99_ms=%.3f bound_frac=%.4f",
	       sps, cpu_s / (double)nl, G.lats[(nl * 50 + 99) / 100 - 1] / 1e6,
	       G.lats[(nl * 99 + 99) / 100 - 1] / 1e6,
	       llm_per_s / ((double)G.llm_conc * 1000.0 / (double)G.llm_ms));
	/* Not the peers' (docs/bench.md): how tool calls connect, memory. */
	printf(" tool_conns=%" PRId64 " bytes_per_agent=%.0f",
	       G.tool_conns ? G.tool_conns : B.n * (G.tools ? G.tools : 1),
	       peak_rss_kb() * 1024.0 / (double)B.n);
	if (G.tools)
		printf(" tools=%" PRId64 " tool_calls_per_s=%.1f", G.tools,
		       sps * (double)G.tools);
}

const struct workload wl_agents = {
	.name = "agents",
	.usage =
		"agents --agents A --steps S --tool-ms T --llm-ms L\n"
		"                --llm-concurrency C [--tool-port P --llm-port P]\n"
		"                [--tool-conns N]  (a shared pool of N tool\n"
		"                connections; default one per agent)\n"
		"                [--tools [N]]  (a step is model -> N tool calls\n"
		"                -> model; N 1 to 8, default 1)",
	.parse = agents_parse,
	.prepare = agents_prepare,
	.setup = agents_setup,
	.run = agents_run,
	.check = agents_check,
	.notes = agents_notes,
	.teardown = agents_teardown,
	.result = agents_result,
};
