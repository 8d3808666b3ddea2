/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_quitters.c: tasks that finish with a recv in flight: the records
 * are freed once the kernel gives them back, the recvs take no data.
 *   net_quitters [--workers N]
 */
#include "net.h"

/* ---- tasks that finish with a recv in flight ---- */

static _Atomic int quitters_started;

struct quitter {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd, yields;
	char buf[64];
};

static int quitter_step(myriad_task_t *self, void *p)
{
	struct quitter *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	rc = myriad_io_recv(self, &st->op, st->fd, st->buf, sizeof(st->buf), 0);
	CHECK_ERR(rc, -EAGAIN);
	atomic_fetch_add(&quitters_started, 1);
	/* Some finish in the step that queued it, some after it went in. */
	while (st->yields-- > 0)
		MYRIAD_YIELD(st);
	MYRIAD_END(st);
}

static int tasks_drained(void *p)
{
	return myriad_rt_tasks_live(rt) == 0;
}

static void test_quitters(void)
{
	int n = (int)t_scaled_min(200, 40), i, r;
	int(*sp)[2] = calloc((size_t)n, sizeof(*sp));
	myriad_handle_t **h = calloc((size_t)n, sizeof(*h));
	struct quitter q;
	char buf[8];

	t_phase("finish with a recv in flight");
	REQUIRE(sp && h, "calloc");
	for (i = 0; i < n; i++) {
		REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				   sp[i]) == 0,
			"socketpair: %s", strerror(errno));
		memset(&q, 0, sizeof(q));
		q.fd = sp[i][0];
		q.yields = i % 3;
		/* A third detached, the rest joined through handles. */
		r = myriad_rt_spawn(rt, quitter_step, &q, sizeof(q),
				    i % 3 == 2 ? NULL : &h[i]);
		REQUIRE(r == 0, "spawn: %d", r);
	}
	for (i = 0; i < n; i++) {
		if (!h[i])
			continue;
		CHECK_EQ(t_join(h[i], NULL, "quitter"), 0);
		CHECK_EQ(myriad_handle_release(h[i]), 0);
	}
	/* The records are freed only once the kernel gave them back. */
	CHECK(t_wait_until(tasks_drained, NULL, 10),
	      "tasks_live stays %lld after the quitters finished",
	      (long long)myriad_rt_tasks_live(rt));
	/* Only now: the detached third may still be queued after the joins. */
	CHECK_EQ(atomic_load(&quitters_started), n);
	/* Their recvs were cancelled: data sent now stays for us. */
	for (i = 0; i < n; i++) {
		CHECK_EQ(send(sp[i][1], "xyz", 3, MSG_NOSIGNAL), 3);
		r = (int)recv(sp[i][0], buf, sizeof(buf), MSG_DONTWAIT);
		CHECK(r == 3 && !memcmp(buf, "xyz", 3),
		      "pair %d: recv after the quitter: %d (%s)", i, r,
		      r < 0 ? strerror(errno) : "");
		close(sp[i][0]);
		close(sp[i][1]);
	}
	free(sp);
	free(h);
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_quitters", test_quitters, true);
}
