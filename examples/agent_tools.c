/* SPDX-License-Identifier: MIT */
/*
 * examples/agent_tools.c: the agent's tools, each a step function run as
 * a child task per call: calc (arithmetic), fetch (a line to
 * servers/tool-server over TCP on io_uring), read_file (on io_uring).
 */
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define READ_MAX 8192	   /* read_file returns at most this many bytes */
#define TOOL_LINE_MAX 1024 /* a tool-server line, with its '\n' */
#define CALC_DEPTH 64	   /* nesting of calc's parentheses and signs */

void tool_answer(struct call *c, const char *fmt, ...)
{
	va_list ap, again;
	int n;

	va_start(ap, fmt);
	va_copy(again, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	free(c->result);
	c->result = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (c->result) /* else the agent sends an error instead */
		vsnprintf(c->result, (size_t)n + 1, fmt, again);
	va_end(again);
	va_end(ap);
}

/* The string argument 'key', or NULL after answering an error. */
static const char *arg_string(struct call *c, const char *key)
{
	const char *s = json_string_value(json_object_get(c->args, key));

	if (!s)
		tool_answer(c, "error: %s needs \"%s\" (a string)",
			    c->tool->name, key);
	return s;
}

/* calc: + - * / and parentheses over decimal numbers. */
struct calc {
	const char *s, *p; /* the expression, where we are */
	const char *err;   /* the first error */
	int depth;
};

static double calc_expr(struct calc *c);

static double calc_fail(struct calc *c, const char *msg)
{
	if (!c->err)
		c->err = msg;
	return 0;
}

static char calc_peek(struct calc *c)
{
	while (isspace((unsigned char)*c->p))
		c->p++;
	return c->err ? 0 : *c->p;
}

/* factor := ('+' | '-') factor | number | '(' expr ')' */
static double calc_factor(struct calc *c)
{
	char num[64], ch = calc_peek(c);
	size_t n, dots = 0;
	double v;

	if (ch == '+' || ch == '-' || ch == '(') {
		if (++c->depth > CALC_DEPTH)
			return calc_fail(c, "too deeply nested");
		c->p++;
		v = ch == '(' ? calc_expr(c) : calc_factor(c);
		if (ch == '(' && calc_peek(c) != ')')
			return calc_fail(c, "expected ')'");
		if (ch == '(')
			c->p++;
		c->depth--;
		return ch == '-' ? -v : v;
	}
	/* A number: digits with at most one '.', nothing else. */
	for (n = 0; isdigit((unsigned char)c->p[n]) || c->p[n] == '.'; n++)
		dots += c->p[n] == '.';
	if (n == dots || dots > 1)
		return calc_fail(c, "expected a number or '('");
	if (n >= sizeof(num))
		return calc_fail(c, "number too long");
	memcpy(num, c->p, n);
	num[n] = 0;
	c->p += n;
	return strtod(num, NULL);
}

/* term := factor (('*' | '/') factor)* */
static double calc_term(struct calc *c)
{
	double v = calc_factor(c), r;
	char op;

	while ((op = calc_peek(c)) == '*' || op == '/') {
		c->p++;
		r = calc_factor(c);
		if (op == '/' && r == 0)
			return calc_fail(c, "division by zero");
		v = op == '*' ? v * r : v / r;
	}
	return v;
}

/* expr := term (('+' | '-') term)* */
static double calc_expr(struct calc *c)
{
	double v = calc_term(c);
	char op;

	while ((op = calc_peek(c)) == '+' || op == '-') {
		c->p++;
		v = op == '+' ? v + calc_term(c) : v - calc_term(c);
	}
	return v;
}

static int calc_step(myriad_task_t *self, void *p)
{
	struct tool_task *st = p;
	struct calc c = { 0 };
	double v;

	c.s = c.p = arg_string(st->call, "expression");
	if (!c.s)
		return MYRIAD_DONE;
	v = calc_expr(&c);
	if (!c.err && calc_peek(&c))
		calc_fail(&c, "unexpected character");
	if (!c.err && !isfinite(v))
		calc_fail(&c, "result out of range");
	if (c.err)
		tool_answer(st->call, "error: %s at offset %d of \"%s\"", c.err,
			    (int)(c.p - c.s), c.s);
	else
		tool_answer(st->call, "%.15g", v);
	return MYRIAD_DONE;
}

/* fetch: one line to the tool server over TCP, its answer line back. */
static struct sockaddr_storage tool_addr;
static socklen_t tool_addrlen; /* 0: TOOL_SERVER did not resolve */
static const char *tool_server;

struct fetch_task {
	TOOL_TASK_HEAD;
	int fd, off, len;
	myriad_io_t op;
	char line[TOOL_LINE_MAX]; /* the request, then the answer */
};

static int fetch_step(myriad_task_t *self, void *p)
{
	struct fetch_task *st = p;
	const char *q;
	char *nl;
	int rc;

	MYRIAD_BEGIN(st);
	q = arg_string(st->call, "query");
	if (!q)
		return MYRIAD_DONE;
	st->len = snprintf(st->line, sizeof(st->line), "%s\n", q);
	if (st->len >= (int)sizeof(st->line) || strpbrk(q, "\r\n")) {
		tool_answer(st->call,
			    "error: a query is one line of at most %d bytes",
			    TOOL_LINE_MAX - 1);
		return MYRIAD_DONE;
	}
	if (!tool_addrlen) {
		tool_answer(st->call,
			    "error: TOOL_SERVER '%s' does not resolve",
			    tool_server);
		return MYRIAD_DONE;
	}
	st->fd = socket(tool_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (st->fd < 0) {
		tool_answer(st->call, "error: socket: %s", strerror(errno));
		return MYRIAD_DONE;
	}
	MYRIAD_IO(st, rc,
		  myriad_io_connect(self, &st->op, st->fd,
				    (struct sockaddr *)&tool_addr,
				    tool_addrlen));
	if (rc < 0)
		goto fail;
	for (st->off = 0; st->off < st->len; st->off += rc) {
		MYRIAD_IO(st, rc,
			  myriad_io_send(
				  self, &st->op, st->fd, st->line + st->off,
				  (size_t)(st->len - st->off), MSG_NOSIGNAL));
		if (rc <= 0)
			goto fail;
	}
	/* The answer is one line; it may arrive in pieces. */
	for (st->off = 0; !memchr(st->line, '\n', (size_t)st->off);
	     st->off += rc) {
		if (st->off == (int)sizeof(st->line) - 1) {
			tool_answer(st->call, "error: answer over %d bytes",
				    TOOL_LINE_MAX);
			goto out;
		}
		MYRIAD_IO(st, rc,
			  myriad_io_recv(self, &st->op, st->fd,
					 st->line + st->off,
					 sizeof(st->line) - 1 - st->off, 0));
		if (rc <= 0)
			goto fail;
	}
	nl = memchr(st->line, '\n', (size_t)st->off);
	*nl = 0;
	tool_answer(st->call, "%s", st->line);
	goto out;
fail:
	tool_answer(st->call, "error: tool server %s: %s", tool_server,
		    rc < 0 ? strerror(-rc) : "closed the connection");
out:
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	MYRIAD_END(st);
}

/* Resolved once, before the runtime: getaddrinfo() blocks (from a task
 * it would go through myriad_io_blocking()). */
const char *tool_server_set(const char *hp)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	const char *colon = strrchr(hp, ':');
	char host[256];
	int rc;

	tool_server = hp;
	if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof(host))
		return "not host:port";
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = 0;
	rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc)
		return gai_strerror(rc);
	memcpy(&tool_addr, ai->ai_addr, ai->ai_addrlen);
	tool_addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return NULL;
}

/* read_file: a file under the working directory, read on io_uring. */
struct read_task {
	TOOL_TASK_HEAD;
	const char *path;
	int fd, len;
	myriad_io_t op;
	char buf[READ_MAX + 1]; /* one byte more: was there more? */
};

/* Relative, without "..": the model reads below the working directory
 * only (a symbolic link there can still lead elsewhere). */
static bool path_allowed(const char *path)
{
	const char *s;

	if (!*path || *path == '/')
		return false;
	for (s = path; (s = strstr(s, "..")); s += 2)
		if ((s == path || s[-1] == '/') && (!s[2] || s[2] == '/'))
			return false;
	return true;
}

static int read_step(myriad_task_t *self, void *p)
{
	struct read_task *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	st->path = arg_string(st->call, "path");
	if (!st->path)
		return MYRIAD_DONE;
	if (!path_allowed(st->path)) {
		tool_answer(st->call,
			    "error: '%s': only relative paths without '..'",
			    st->path);
		return MYRIAD_DONE;
	}
	MYRIAD_IO(st, rc,
		  myriad_io_openat(self, &st->op, AT_FDCWD, st->path,
				   O_RDONLY | O_CLOEXEC, 0));
	if (rc < 0) {
		tool_answer(st->call, "error: '%s': %s", st->path,
			    strerror(-rc));
		return MYRIAD_DONE;
	}
	st->fd = rc;
	for (st->len = 0; st->len < (int)sizeof(st->buf); st->len += rc) {
		MYRIAD_IO(st, rc,
			  myriad_io_read(self, &st->op, st->fd,
					 st->buf + st->len,
					 sizeof(st->buf) - st->len, st->len));
		if (rc <= 0)
			break;
	}
	if (rc < 0)
		tool_answer(st->call, "error: '%s': %s", st->path,
			    strerror(-rc));
	else if (st->len > READ_MAX)
		tool_answer(st->call, "%.*s\n[the first %d bytes]", READ_MAX,
			    st->buf, READ_MAX);
	else
		tool_answer(st->call, "%.*s", st->len, st->buf);
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	MYRIAD_END(st);
}

const struct tool agent_tools[] = {
	{ "calc",
	  "Evaluate an arithmetic expression: + - * / and parentheses over decimal numbers.",
	  "{\"type\":\"object\",\"properties\":{\"expression\":{\"type\":\"string\"}},\"required\":[\"expression\"]}",
	  calc_step, sizeof(struct tool_task) },
	{ "fetch",
	  "Ask the tool server a one-line query; it answers with one line.",
	  "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"}},\"required\":[\"query\"]}",
	  fetch_step, sizeof(struct fetch_task) },
	{ "read_file",
	  "Read a text file below the working directory (at most 8 KiB).",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},\"required\":[\"path\"]}",
	  read_step, sizeof(struct read_task) },
};

const size_t agent_ntools = sizeof(agent_tools) / sizeof(agent_tools[0]);
