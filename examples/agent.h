/* SPDX-License-Identifier: MIT */
/*
 * examples/agent.h: what the agent (agent.c) and its tools (agent_tools.c)
 * share: a tool call as the agent runs it, and how a tool is registered.
 */
#ifndef MYRIAD_EXAMPLES_AGENT_H
#define MYRIAD_EXAMPLES_AGENT_H

#include <jansson.h>
#include <myriad.h>

/* A tool call of the model's answer, as the agent runs it. */
struct call {
	const struct myriad_infer_tool_call *tc; /* in the model's answer */
	const struct tool *tool; /* NULL: the model named no tool of ours */
	json_t *args;		 /* its arguments, parsed (an object) */
	char *result;		 /* what goes back to the model (malloc) */
};

/*
 * A tool: its step function runs as a child task of the agent, one task
 * per call, in parallel with the other calls of the same answer. Its
 * state (state_size bytes) starts with TOOL_TASK_HEAD, zeros after it;
 * before it ends it sets its call's result with tool_answer(). The agent
 * reads the result only after joining the task, so no lock is needed.
 */
struct tool {
	const char *name, *description;
	const char *parameters; /* JSON schema of its arguments */
	myriad_step_fn step;
	size_t state_size;
};

#define TOOL_TASK_HEAD     \
	MYRIAD_CORO_FIELD; \
	struct call *call

struct tool_task {
	TOOL_TASK_HEAD;
};

/* The tools of agent_tools.c: calc, fetch, read_file. */
extern const struct tool agent_tools[];
extern const size_t agent_ntools;

/* Set the call's result (printf-style), replacing any before it. */
void tool_answer(struct call *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Where fetch sends its queries: "host:port". NULL, or why not. */
const char *tool_server_set(const char *host_port);

#endif
