/* SPDX-License-Identifier: MIT */
/*
 * infer/stream.c: a streamed chat answer: server-sent events parsed by the
 * driver as they arrive, each chat.completion.chunk's deltas assembled per
 * choice (content, refusal, tool calls by index with their arguments
 * joined, finish_reason), usage from the final "choices": [] chunk, an
 * "error" event; choices[0]'s content and completed tool calls read by the
 * task while the stream goes on.
 *
 * Sharing: the driver appends, the task reads, under the call's spin lock
 * (slock). A tool call, once complete, is never written again, and each
 * lives in its own allocation, so the strings the task copied out stay put
 * while the driver grows the arrays. The rest of the assembled state is
 * read by the task only after the call completed (its acquire of the
 * record's word, io/record.c).
 */
#include <stdio.h>
#include <string.h>

#include "infer/internal.h"

/* Append to a growing buffer, bounded by max_response over the whole
 * stream; false: no memory or over the bound (too_big set). */
static bool grow_append(struct icall *c, char **b, size_t *len, size_t *cap,
			const char *t, size_t n)
{
	size_t nc;
	char *x;

	if (c->s_total + n > c->pool->o.max_response) {
		c->too_big = true;
		return false;
	}
	if (*len + n + 1 > *cap) {
		nc = *cap ? *cap : 64;
		while (nc < *len + n + 1)
			nc *= 2;
		x = mem_realloc(*b, nc);
		if (!x)
			return false;
		*b = x;
		*cap = nc;
	}
	memcpy(*b + *len, t, n);
	*len += n;
	(*b)[*len] = 0;
	c->s_total += n;
	return true;
}

static char *dup_str(json_t *v)
{
	size_t n = json_string_length(v);
	char *r = mem_alloc(n + 1);

	if (r)
		memcpy(r, json_string_value(v), n + 1);
	return r;
}

static struct schoice *choice_of(struct icall *c, unsigned index)
{
	struct schoice *ch, **v;
	size_t i;

	for (i = 0; i < c->nsch; i++)
		if (c->sch[i]->index == index)
			return c->sch[i];
	if (c->nsch >= 128)
		return NULL; /* the API's n is at most 128 */
	if (c->nsch == c->sch_cap) {
		size_t cap = c->sch_cap ? 2 * c->sch_cap : 4;

		v = mem_realloc(c->sch, cap * sizeof(*v));
		if (!v)
			return NULL;
		c->sch = v;
		c->sch_cap = cap;
	}
	ch = mem_zalloc(sizeof(*ch));
	if (!ch)
		return NULL;
	ch->index = index;
	c->sch[c->nsch++] = ch;
	return ch;
}

/* Tool calls before 'upto' of choice 'ch' are complete; true if one of
 * choices[0]'s became so (the task may want it). */
static bool tools_complete(struct schoice *ch, size_t upto)
{
	bool any = false;
	size_t i;

	for (i = 0; i < upto && i < ch->ntools; i++)
		if (!ch->tools[i]->complete) {
			ch->tools[i]->complete = true;
			any = ch->index == 0;
		}
	return any;
}

/* One delta.tool_calls[] entry: a new call at its index, or more of it. */
static bool tool_delta(struct icall *c, struct schoice *ch, json_t *x,
		       bool *woke)
{
	json_t *ix = json_object_get(x, "index");
	json_t *f = json_object_get(x, "function");
	json_t *v;
	struct stool *t, **tv;
	size_t at;

	if (json_is_integer(ix) && json_integer_value(ix) >= 0 &&
	    json_integer_value(ix) < 1024)
		at = (size_t)json_integer_value(ix);
	else if (!json_is_integer(ix) && ch->ntools &&
		 !json_is_string(json_object_get(x, "id")))
		at = ch->ntools - 1; /* no index, no id: more of the last */
	else if (!json_is_integer(ix))
		at = ch->ntools; /* no index, an id: the next call */
	else
		return false;
	while (ch->ntools <= at) {
		if (ch->ntools == ch->tools_cap) {
			size_t cap = ch->tools_cap ? 2 * ch->tools_cap : 4;

			tv = mem_realloc(ch->tools, cap * sizeof(*tv));
			if (!tv)
				return false;
			ch->tools = tv;
			ch->tools_cap = cap;
		}
		t = mem_zalloc(sizeof(*t));
		if (!t)
			return false;
		ch->tools[ch->ntools++] = t;
	}
	/* Calls arrive one after another: a later index ends the earlier. */
	if (tools_complete(ch, at))
		*woke = true;
	t = ch->tools[at];
	if (t->complete)
		return true; /* a delta after its end: nothing to add */
	if (json_is_string(v = json_object_get(x, "id")) && !t->id &&
	    !(t->id = dup_str(v)))
		return false;
	if (json_is_string(v = json_object_get(x, "type")) && !t->type &&
	    !(t->type = dup_str(v)))
		return false;
	if (json_is_object(f)) {
		if (json_is_string(v = json_object_get(f, "name")) &&
		    !t->name && !(t->name = dup_str(v)))
			return false;
		v = json_object_get(f, "arguments");
		if (json_is_string(v) && json_string_length(v) &&
		    !grow_append(c, &t->args, &t->args_len, &t->args_cap,
				 json_string_value(v), json_string_length(v)))
			return false;
	}
	return true;
}

/* choices[] of a chunk; false: no memory or over the bound. */
static bool choice_deltas(struct icall *c, json_t *chs, bool *woke)
{
	size_t i, j;

	for (i = 0; i < json_array_size(chs); i++) {
		json_t *x = json_array_get(chs, i);
		json_t *d = json_object_get(x, "delta");
		json_t *ix = json_object_get(x, "index");
		json_t *v, *tc;
		struct schoice *ch;

		ch = choice_of(c, json_is_integer(ix) &&
						  json_integer_value(ix) >= 0 &&
						  json_integer_value(ix) < 128
					  ? (unsigned)json_integer_value(ix)
					  : 0);
		if (!ch)
			return false;
		if (json_is_string(v = json_object_get(d, "content"))) {
			ch->has_content = true;
			c->s_delivered |= json_string_length(v) > 0;
			if (!json_string_length(v)) {
			} else if (ch->index == 0) {
				if (!grow_append(c, &c->sbuf, &c->slen,
						 &c->scap, json_string_value(v),
						 json_string_length(v)))
					return false;
				*woke = true;
			} else if (!grow_append(c, &ch->content,
						&ch->content_len,
						&ch->content_cap,
						json_string_value(v),
						json_string_length(v))) {
				return false;
			}
		}
		if (json_is_string(v = json_object_get(d, "refusal")))
			c->s_delivered = true;
		if (json_is_string(v = json_object_get(d, "refusal")) &&
		    !grow_append(c, &ch->refusal, &ch->refusal_len,
				 &ch->refusal_cap, json_string_value(v),
				 json_string_length(v)))
			return false;
		tc = json_object_get(d, "tool_calls");
		for (j = 0; json_is_array(tc) && j < json_array_size(tc); j++) {
			c->s_delivered = true;
			if (!tool_delta(c, ch, json_array_get(tc, j), woke))
				return false;
		}
		v = json_object_get(x, "finish_reason");
		if (json_is_string(v) && !ch->finish_reason) {
			if (!(ch->finish_reason = dup_str(v)))
				return false;
			if (tools_complete(ch, ch->ntools))
				*woke = true;
		}
	}
	return true;
}

/* The chunk's id, model, system_fingerprint: the first seen. */
static void chunk_ids(struct icall *c, json_t *j)
{
	json_t *v;

	if (!c->s_id && json_is_string(v = json_object_get(j, "id")))
		c->s_id = dup_str(v);
	if (!c->s_model && json_is_string(v = json_object_get(j, "model")))
		c->s_model = dup_str(v);
	if (!c->s_fp &&
	    json_is_string(v = json_object_get(j, "system_fingerprint")))
		c->s_fp = dup_str(v);
}

/* One event's data: false to stop the transfer. */
static bool sse_event(struct icall *c, const char *d, bool *woke)
{
	json_error_t jerr;
	json_t *j, *e;
	bool ok;

	j = json_loads(d, 0, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(c->err, sizeof(c->err),
			 "stream event is not a JSON object: %s",
			 j ? "another value" : jerr.text);
		c->bad_body = true;
		return false;
	}
	e = json_object_get(j, "error");
	if (c->sse_error || (e && !json_is_null(e))) {
		/* The server's error, on a stream that began as 200. */
		error_from_json(c, j);
		json_decref(j);
		c->server_error = true;
		error_describe(c, "the server sent an error event");
		return false;
	}
	chunk_ids(c, j);
	usage_read(&c->res, json_object_get(j, "usage"));
	spin_lock(&c->slock);
	ok = choice_deltas(c, json_object_get(j, "choices"), woke);
	spin_unlock(&c->slock);
	json_decref(j);
	if (!ok && !c->too_big) {
		snprintf(c->err, sizeof(c->err), "%s",
			 "out of memory assembling the stream");
		c->bad_body = true;
	}
	return ok;
}

/*
 * Server-sent events: each complete "data:" line is a chunk (or, after an
 * "event: error" line, the error); "data: [DONE]" ends the stream. Returns
 * false to stop the transfer.
 */
bool sse_parse(struct icall *c)
{
	char *line, *nl, *d;
	bool woke = false, ok = true;

	while (ok && (nl = memchr(c->resp + c->sparsed, '\n',
				  c->resp_len - c->sparsed))) {
		line = c->resp + c->sparsed;
		c->sparsed = (size_t)(nl - c->resp) + 1;
		*nl = 0;
		if (nl > line && nl[-1] == '\r')
			nl[-1] = 0;
		if (!strncmp(line, "event:", 6)) {
			d = line + 6;
			while (*d == ' ')
				d++;
			c->sse_error = !strcmp(d, "error");
			continue;
		}
		if (strncmp(line, "data:", 5))
			continue; /* blank lines, comments, other fields */
		d = line + 5;
		while (*d == ' ')
			d++;
		if (!strcmp(d, "[DONE]")) {
			c->sdone = true;
			continue;
		}
		ok = sse_event(c, d, &woke);
	}
	/* Keep only the partial line: memory bounded by a line. */
	memmove(c->resp, c->resp + c->sparsed, c->resp_len - c->sparsed);
	c->resp_len -= c->sparsed;
	c->sparsed = 0;
	if (woke)
		task_op_wake(cur_worker(), c->task);
	return ok;
}

static int cmp_choice(const void *a, const void *b)
{
	const struct myriad_infer_choice *x = a, *y = b;

	return (x->index > y->index) - (x->index < y->index);
}

/*
 * The driver, before completing a stream that ended well: every choice
 * into the result (its strings stay in the stream state, freed with it).
 */
int stream_finish(struct icall *c)
{
	struct myriad_infer_choice *out;
	struct myriad_infer_result *r = &c->res;
	size_t i, k;

	spin_lock(&c->slock);
	for (i = 0; i < c->nsch; i++)
		tools_complete(c->sch[i], c->sch[i]->ntools);
	spin_unlock(&c->slock);
	r->id = c->s_id;
	r->model = c->s_model;
	r->system_fingerprint = c->s_fp;
	if (!c->nsch)
		return 0; /* no choice at all: nothing to show */
	out = arena_alloc(&c->arena, c->nsch * sizeof(*out));
	if (!out)
		return -ENOMEM;
	memset(out, 0, c->nsch * sizeof(*out));
	for (i = 0; i < c->nsch; i++) {
		struct schoice *ch = c->sch[i];
		struct myriad_infer_tool_call *t = NULL;

		out[i].index = ch->index;
		out[i].finish_reason = ch->finish_reason;
		if (ch->index == 0 && ch->has_content) {
			out[i].content = c->sbuf ? c->sbuf : "";
			out[i].content_len = c->slen;
		} else if (ch->has_content) {
			out[i].content = ch->content ? ch->content : "";
			out[i].content_len = ch->content_len;
		}
		out[i].refusal = ch->refusal;
		if (ch->ntools &&
		    !(t = arena_alloc(&c->arena, ch->ntools * sizeof(*t))))
			return -ENOMEM;
		for (k = 0; k < ch->ntools; k++) {
			struct stool *s = ch->tools[k];

			t[k].id = s->id ? s->id : "";
			t[k].type = s->type ? s->type : "function";
			t[k].name = s->name ? s->name : "";
			t[k].arguments = s->args ? s->args : "";
			t[k].arguments_len = s->args_len;
		}
		out[i].tool_calls = t;
		out[i].ntool_calls = ch->ntools;
	}
	qsort(out, c->nsch, sizeof(*out), cmp_choice);
	r->choices = out;
	r->nchoices = c->nsch;
	if (out[0].index == 0) {
		r->content = out[0].content;
		r->content_len = out[0].content_len;
		r->finish_reason = out[0].finish_reason;
		r->refusal = out[0].refusal;
		r->tool_calls = out[0].tool_calls;
		r->ntool_calls = out[0].ntool_calls;
	}
	return 0;
}

void stream_free(struct icall *c)
{
	size_t i, k;

	for (i = 0; i < c->nsch; i++) {
		struct schoice *ch = c->sch[i];

		for (k = 0; k < ch->ntools; k++) {
			mem_free(ch->tools[k]->id);
			mem_free(ch->tools[k]->type);
			mem_free(ch->tools[k]->name);
			mem_free(ch->tools[k]->args);
			mem_free(ch->tools[k]);
		}
		mem_free(ch->tools);
		mem_free(ch->content);
		mem_free(ch->refusal);
		mem_free(ch->finish_reason);
		mem_free(ch);
	}
	mem_free(c->sch);
	c->sch = NULL;
	c->nsch = c->sch_cap = 0;
	mem_free(c->s_id);
	mem_free(c->s_model);
	mem_free(c->s_fp);
	c->s_id = c->s_model = c->s_fp = NULL;
	mem_free(c->sbuf);
	c->sbuf = NULL;
	c->slen = c->scap = c->sread = 0;
	c->s_total = 0;
	c->s_delivered = false;
}

/* What an ended stream's reader gets: its collected result, kept. */
static int stream_rc(myriad_task_t *self, struct io_op *op, struct icall *c,
		     uint32_t st)
{
	if (st != 0)
		c->collected_rc = settle(c, io_op_result(self, op));
	return c->collected_rc;
}

static struct icall *stream_call(myriad_task_t *self, struct io_op *op)
{
	struct worker *w = cur_worker();
	struct icall *c;

	if (!self || !op || !w || w->current != self || op->kind != IOK_EXT ||
	    !(c = op->u.ext.ctx) || !c->stream)
		return NULL;
	return c;
}

int myriad_infer_stream_read(myriad_task_t *self, myriad_infer_call_t *call,
			     char *buf, size_t cap)
{
	struct io_op *op = (struct io_op *)call;
	struct icall *c = stream_call(self, op);
	size_t n = 0;
	uint32_t st;
	int r;

	if (!c || !buf || !cap || cap > INT32_MAX)
		return -EINVAL;
	/* Acquire: when DONE is seen, every append before it is. */
	st = atomic_load_explicit(&op->st, memory_order_acquire) & 3u;
	spin_lock(&c->slock);
	if (c->slen > c->sread) {
		n = c->slen - c->sread;
		if (n > cap)
			n = cap;
		memcpy(buf, c->sbuf + c->sread, n);
		c->sread += n;
	}
	spin_unlock(&c->slock);
	if (n)
		return (int)n;
	if (st == 1)
		return -EAGAIN;
	r = stream_rc(self, op, c, st);
	return r < 0 ? r : 0; /* ended, and all of it read */
}

int myriad_infer_stream_tool_call(myriad_task_t *self,
				  myriad_infer_call_t *call, size_t i,
				  struct myriad_infer_tool_call *out)
{
	struct io_op *op = (struct io_op *)call;
	struct icall *c = stream_call(self, op);
	struct stool *t = NULL;
	uint32_t st;
	size_t k;
	int r;

	if (!c || !out)
		return -EINVAL;
	st = atomic_load_explicit(&op->st, memory_order_acquire) & 3u;
	spin_lock(&c->slock);
	for (k = 0; k < c->nsch; k++)
		if (c->sch[k]->index == 0) {
			if (i < c->sch[k]->ntools &&
			    c->sch[k]->tools[i]->complete)
				t = c->sch[k]->tools[i];
			break;
		}
	spin_unlock(&c->slock);
	if (t) {
		/* Complete: never written again (stream.c's header). */
		out->id = t->id ? t->id : "";
		out->type = t->type ? t->type : "function";
		out->name = t->name ? t->name : "";
		out->arguments = t->args ? t->args : "";
		out->arguments_len = t->args_len;
		return 0;
	}
	if (st == 1)
		return -EAGAIN;
	r = stream_rc(self, op, c, st);
	return r < 0 ? r : -ENOENT;
}
