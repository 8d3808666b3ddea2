/* SPDX-License-Identifier: MIT */
/*
 * bench/agents.h: what the agents workload's two steps share: the plain
 * step (agents.c: CPU work, a tool call, an LLM call) and the step with
 * tool calls (agents_tools.c: CPU work, an LLM call that asks for tools,
 * the tools as child tasks, an LLM call with their results).
 */
#ifndef MYRIAD_BENCH_AGENTS_H
#define MYRIAD_BENCH_AGENTS_H

#include "bench.h"

#define AGENT_BUF 4096
#define AGENT_PASSES 4
/* The most tool calls one answer asks for (--tools N). */
#define AGENT_TOOLS_MAX 8

/* The workload's parameters and what its agents share. */
struct agents {
	int64_t steps;
	int64_t tool_ms, llm_ms, llm_conc;
	int tool_port, llm_port;
	int64_t tool_conns;	/* 0: one per agent; else a shared pool */
	int64_t tools;		/* 0: the plain step; else calls an answer */
	myriad_chan_t *tool_ch; /* the pool's idle connections (fds) */
	struct sockaddr_in tool_addr;
	myriad_infer_t *pool;
	uint64_t *lats;		    /* A * S steps, ns */
	_Atomic int64_t failures;   /* failed agents (the first is printed) */
	_Atomic int64_t retries;    /* tool connects retried */
	_Atomic int64_t llm_extra;  /* LLM attempts beyond the first */
	_Atomic uint64_t hash_sink; /* every agent's last hash, xor-ed */
};

extern struct agents G;
extern uint8_t agent_buf[AGENT_BUF];

/* FNV-1a (32 bit) over the buffer, AGENT_PASSES times, from 'seed'. */
static inline uint32_t agent_cpu(uint32_t seed)
{
	uint32_t h = 2166136261u ^ seed;
	int pass, i;

	for (pass = 0; pass < AGENT_PASSES; pass++)
		for (i = 0; i < AGENT_BUF; i++) {
			h ^= agent_buf[i];
			h *= 16777619u;
		}
	return h;
}

/*
 * A failed agent (id >= 0) or tool connection (-1 - its index): the first
 * failure is printed, every one counted, and the root woken.
 */
void agent_fail(int64_t id, const char *what, int rc, const char *msg);

/* ---- the step with tool calls (agents_tools.c) ---- */

/* Before the run (0, or 1 after a message) and after it. */
int agents_tools_setup(void);
void agents_tools_teardown(void);
/* Spawn agent 'id', whose step is model -> tools -> model (the root). */
void agent_tools_spawn(myriad_task_t *self, int64_t id);

#endif
