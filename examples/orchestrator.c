/* SPDX-License-Identifier: MIT */
/*
 * examples/orchestrator.c: a small agent orchestrator on libmyriad's public
 * API: agents as stackless coroutines that plan (CPU work), call tools
 * through a pool of tool tasks over channels, and report to their parent.
 *
 *   orchestrator [AGENTS [STEPS [TOOLS]]]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <myriad.h>

/* A tool request: which agent asks, the argument, where to answer. */
struct tool_req {
	uint64_t arg;
	myriad_chan_t *reply;
};

static myriad_chan_t *tool_queue; /* agents -> tool pool */

/* The "plan" step: some CPU work (FNV-1a over the agent's notes). */
static uint64_t plan(uint64_t seed)
{
	uint64_t h = 1469598103934665603ull;
	int i;

	for (i = 0; i < 256; i++) {
		h ^= (seed >> (i % 56)) & 0xff;
		h *= 1099511628211ull;
	}
	return h;
}

/* A tool task: serves requests until the queue is closed. */
struct tool {
	MYRIAD_CORO_FIELD;
	struct tool_req req;
	uint64_t answer;
};

static int tool_step(myriad_task_t *self, void *p)
{
	struct tool *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (;;) {
		MYRIAD_RECV(st, self, tool_queue, &st->req, rc);
		if (rc < 0)
			break; /* -EPIPE: closed and drained */
		st->answer = st->req.arg * 2 + 1;
		MYRIAD_SEND(st, self, st->req.reply, &st->answer, rc);
		if (rc < 0)
			break;
	}
	MYRIAD_END(st);
}

/* An agent: STEPS rounds of plan, then a tool call; its result is a sum. */
struct agent {
	MYRIAD_CORO_FIELD;
	int id, step, steps;
	uint64_t acc, answer;
	myriad_chan_t *reply;
	struct tool_req req;
};

static int agent_step(myriad_task_t *self, void *p)
{
	struct agent *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	for (st->step = 0; st->step < st->steps; st->step++) {
		if (myriad_task_cancelled(self))
			break;
		st->req.arg = plan((uint64_t)st->id * 1000 + st->step) & 0xffff;
		st->req.reply = st->reply;
		MYRIAD_SEND(st, self, tool_queue, &st->req, rc);
		if (rc < 0)
			break;
		MYRIAD_RECV(st, self, st->reply, &st->answer, rc);
		if (rc < 0)
			break;
		st->acc += st->answer;
	}
	myriad_task_set_result(self, (int64_t)st->acc);
	MYRIAD_END(st);
}

/* The orchestrator: spawns the agents as children and joins them. */
struct orch {
	MYRIAD_CORO_FIELD;
	int agents, steps;
	myriad_chan_t **replies;
	myriad_task_t **kids;
	int64_t total;
};

static int orch_step(myriad_task_t *self, void *p)
{
	struct orch *st = p;
	struct agent a;
	int i, err;

	MYRIAD_BEGIN(st);
	for (i = 0; i < st->agents; i++) {
		memset(&a, 0, sizeof(a));
		a.id = i;
		a.steps = st->steps;
		a.reply = st->replies[i];
		st->kids[i] = myriad_task_spawn(self, agent_step, &a, sizeof(a),
						0, &err);
		if (!st->kids[i]) {
			fprintf(stderr, "spawn: %s\n", strerror(-err));
			myriad_task_cancel(self);
			break;
		}
	}
	MYRIAD_JOIN(st, self);
	for (i = 0; i < st->agents && st->kids[i]; i++)
		st->total += myriad_task_result(st->kids[i]);
	myriad_task_set_result(self, st->total);
	MYRIAD_END(st);
}

int main(int argc, char **argv)
{
	int agents = argc > 1 ? atoi(argv[1]) : 1000;
	int steps = argc > 2 ? atoi(argv[2]) : 10;
	int tools = argc > 3 ? atoi(argv[3]) : 8;
	struct myriad_rt_opts o = { .sz = sizeof(o) };
	struct orch root = { 0 };
	myriad_rt_t *rt;
	int64_t total = 0, expect = 0;
	int i, j, r, err;

	if (agents < 1 || steps < 1 || tools < 1) {
		fprintf(stderr,
			"usage: orchestrator [AGENTS [STEPS [TOOLS]]]\n");
		return 2;
	}
	rt = myriad_rt_create(&o, &err);
	if (!rt) {
		fprintf(stderr, "myriad_rt_create: %s\n", strerror(-err));
		return 1;
	}
	tool_queue = myriad_chan_create(rt, sizeof(struct tool_req), 64, &err);
	root.agents = agents;
	root.steps = steps;
	root.replies = calloc(agents, sizeof(*root.replies));
	root.kids = calloc(agents, sizeof(*root.kids));
	if (!tool_queue || !root.replies || !root.kids) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (i = 0; i < agents; i++)
		root.replies[i] =
			myriad_chan_create(rt, sizeof(uint64_t), 1, &err);
	for (i = 0; i < tools; i++)
		myriad_rt_spawn(rt, tool_step, NULL, sizeof(struct tool), NULL);

	r = myriad_rt_block_on(rt, orch_step, &root, sizeof(root), &total);
	myriad_chan_close(tool_queue); /* the tool tasks finish */

	for (i = 0; i < agents; i++)
		for (j = 0; j < steps; j++)
			expect += (int64_t)((plan((uint64_t)i * 1000 + j) &
					     0xffff) *
						    2 +
					    1);
	printf("orchestrator: %d agents x %d steps on %d workers: total %" PRId64
	       " (%s)\n",
	       agents, steps, myriad_rt_workers(rt), total,
	       r == 0 && total == expect ? "ok" : "WRONG");

	/* Stop the workers, then free the channels, then the runtime. */
	myriad_rt_shutdown(rt);
	for (i = 0; i < agents; i++)
		myriad_chan_destroy(root.replies[i]);
	myriad_chan_destroy(tool_queue);
	r = myriad_rt_destroy(rt);
	free(root.replies);
	free(root.kids);
	return total == expect && r == 0 ? 0 : 1;
}
