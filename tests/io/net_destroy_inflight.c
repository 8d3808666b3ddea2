/* SPDX-License-Identifier: MIT */
/*
 * tests/io/net_destroy_inflight.c: myriad_rt_destroy with recvs, an accept
 * and a poll in flight returns soon, and reads nothing from the sockets.
 *   net_destroy_inflight [--workers N]
 */
#include "net.h"

/* ---- destroy with operations in flight ---- */

static _Atomic int sd_waiting;

struct sd_task {
	myriad_io_t op;
	int fd, kind, reg;
	char buf[32];
};

static int sd_step(myriad_task_t *self, void *p)
{
	struct sd_task *st = p;
	int rc;

	switch (st->kind) {
	case 0:
		rc = myriad_io_recv(self, &st->op, st->fd, st->buf,
				    sizeof(st->buf), 0);
		break;
	case 1:
		rc = myriad_io_accept(self, &st->op, st->fd, SOCK_CLOEXEC);
		break;
	default:
		rc = myriad_io_poll(self, &st->op, st->fd, POLLIN);
		break;
	}
	if (rc == -EAGAIN) {
		if (!st->reg++)
			atomic_fetch_add(&sd_waiting, 1);
		return MYRIAD_PENDING;
	}
	t_failf(__FILE__, __LINE__,
		"an operation that nothing completes returned %d (kind %d)", rc,
		st->kind);
	return MYRIAD_DONE;
}

static int all_waiting(void *p)
{
	return atomic_load(&sd_waiting) == *(int *)p;
}

static void test_destroy_inflight(void)
{
	int n = (int)t_scaled_min(400, 50), i, want;
	int(*sp)[2] = calloc((size_t)n, sizeof(*sp));
	myriad_rt_t *r2 = t_rt_new(nworkers);
	struct sockaddr_in a;
	struct sd_task s;
	int lfd = listen_any(&a, 16), pfd[2], r;
	double t0;

	t_phase("destroy with operations in flight");
	REQUIRE(sp, "calloc");
	REQUIRE(pipe2(pfd, O_CLOEXEC) == 0, "pipe");
	for (i = 0; i < n; i++) {
		REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				   sp[i]) == 0,
			"socketpair");
		memset(&s, 0, sizeof(s));
		s.fd = sp[i][i % 2];
		REQUIRE(myriad_rt_spawn(r2, sd_step, &s, sizeof(s), NULL) == 0,
			"spawn");
	}
	memset(&s, 0, sizeof(s));
	s.kind = 1;
	s.fd = lfd;
	REQUIRE(myriad_rt_spawn(r2, sd_step, &s, sizeof(s), NULL) == 0,
		"spawn");
	s.kind = 2;
	s.fd = pfd[0];
	REQUIRE(myriad_rt_spawn(r2, sd_step, &s, sizeof(s), NULL) == 0,
		"spawn");
	want = n + 2;
	REQUIRE(t_wait_until(all_waiting, &want, 20), "%d of %d waiting",
		atomic_load(&sd_waiting), want);
	t_sleep_ms(20); /* submitted, in the kernel */
	t0 = t_now();
	r = myriad_rt_destroy(r2);
	CHECK(r == 0, "myriad_rt_destroy with operations in flight: %d", r);
	CHECK(t_now() - t0 < 5.0 * T_SLOW,
	      "myriad_rt_destroy took %.2f s with operations in flight",
	      t_now() - t0);
	/* Nothing was read from the sockets. */
	for (i = 0; i < n; i++) {
		CHECK_EQ(send(sp[i][(i + 1) % 2], "q", 1, MSG_NOSIGNAL), 1);
		CHECK_EQ(recv(sp[i][i % 2], s.buf, 1, MSG_DONTWAIT), 1);
		close(sp[i][0]);
		close(sp[i][1]);
	}
	close(lfd);
	close(pfd[0]);
	close(pfd[1]);
	free(sp);
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, "net_destroy_inflight",
			test_destroy_inflight, false);
}
