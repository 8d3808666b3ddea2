/* SPDX-License-Identifier: MIT */
/*
 * tests/trace/usdt_target.c: a program linked with the static libmyriad
 * that fires every USDT probe of the README's table at least once, for
 * tests/trace/usdt_oneliners.sh (bpftrace attaches to a static
 * executable's probes; Debian 12's bpftrace 0.17 does not fire them in
 * the shared library):
 * spawn, run, run_done, steal, park, wake: fork-join fib(20) rounds on 2
 *   workers with pauses between them (the workers park and are woken);
 * io_submit, io_complete: a read of a pipe;
 * blocking_start, blocking_end: myriad_io_blocking() of a 1 ms sleep;
 * offload_start, offload_end: a chat call to the mock LLM server whose
 *   port is the first argument.
 *   test-trace-usdt-target LLM_PORT
 * Exit 0 when every part gave the expected result.
 */
#include <myriad.h>
#include <myriad/infer.h>

#include "helpers.h"

static int64_t nap(void *arg)
{
	(void)arg;
	usleep(1000);
	return 7;
}

static myriad_infer_t *pool;

/* What the root task saw (its state is a copy of main's). */
static struct {
	int64_t fibs, block;
	int read, chat;
} res = { 0, 0, -1, -1 };

struct root {
	MYRIAD_CORO_FIELD;
	int i, fds[2];
	char buf[8];
	myriad_io_t op;
	myriad_timer_t tm;
	myriad_infer_call_t call;
	myriad_task_t *f;
	int rc;
	int64_t rc64;
};

static int root_step(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct t_fib f = { .n = 20 };
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < 5; st->i++) {
		st->f = myriad_task_spawn(self, t_fib_step, &f, sizeof(f), 0,
					  NULL);
		MYRIAD_JOIN(st, self);
		res.fibs += myriad_task_result(st->f);
		MYRIAD_SLEEP(st, self, &st->tm, 20000000,
			     rc); /* workers park */
		(void)rc;
	}
	if (pipe(st->fds) < 0 || write(st->fds[1], "usdt", 4) != 4)
		return MYRIAD_DONE;
	MYRIAD_IO(st, st->rc,
		  myriad_io_read(self, &st->op, st->fds[0], st->buf,
				 sizeof(st->buf), -1));
	res.read = st->rc;
	close(st->fds[0]);
	close(st->fds[1]);
	MYRIAD_IO(st, st->rc64, myriad_io_blocking(self, &st->op, nap, NULL));
	res.block = st->rc64;
	MYRIAD_IO(st, st->rc,
		  myriad_infer_chat(
			  self, pool, &st->call,
			  "[{\"role\":\"user\",\"content\":\"usdt\"}]", NULL));
	res.chat = st->rc;
	myriad_infer_release(self, &st->call);
	MYRIAD_END(st);
}

int main(int argc, char **argv)
{
	struct myriad_rt_opts o = { .sz = sizeof(o), .workers = 2 };
	struct myriad_infer_opts io = { .sz = sizeof(io) };
	struct myriad_infer_endpoint ep = { .sz = sizeof(ep) };
	struct root r = { 0 };
	char url[64];
	myriad_rt_t *rt;
	int err;

	t_name = "trace/usdt_target";
	if (argc < 2) {
		fprintf(stderr, "usage: %s LLM_PORT\n", argv[0]);
		return T_FAIL;
	}
	rt = myriad_rt_create(&o, &err);
	REQUIRE(rt, "myriad_rt_create: %s", strerror(-err));
	pool = myriad_infer_create(rt, &io, &err);
	REQUIRE(pool, "myriad_infer_create: %s", strerror(-err));
	snprintf(url, sizeof(url), "http://127.0.0.1:%s", argv[1]);
	ep.base_url = url;
	ep.model = "usdt";
	ep.window = 4;
	REQUIRE(myriad_infer_add(pool, &ep) == 0, "myriad_infer_add");
	CHECK_EQ(myriad_rt_block_on(rt, root_step, &r, sizeof(r), NULL), 0);
	CHECK_EQ(res.fibs, 5 * 6765);
	CHECK_EQ(res.read, 4);
	CHECK_EQ(res.block, 7);
	CHECK_EQ(res.chat, 0);
	CHECK_EQ(myriad_infer_destroy(pool), 0);
	CHECK_EQ(myriad_rt_destroy(rt), 0);
	return t_result();
}
