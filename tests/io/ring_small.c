/* SPDX-License-Identifier: MIT */
/*
 * tests/io/ring_small.c: rings far smaller than the work: with 8
 * submission entries (32 completion entries) per worker, tasks start 200
 * sends and recvs in one step, each with its own record, so that the
 * submission queue fills many times per step (flushed, never dropped) and
 * completions outrun the completion queue (the overflow path); hundreds
 * of polls on one eventfd complete at once; hundreds of recvs with the
 * same deadline time out at once; timers alongside. Every result and
 * byte is checked. Also: ring_entries out of range fails, and a caller
 * whose opts end before ring_entries gets the default.
 *   ring_small [--workers N]
 */
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "helpers.h"

#define RING 8
#define NPAIRS 100
#define MSG 64
#define NOTDONE INT32_MIN

static myriad_rt_t *rt;
static unsigned nworkers;

static myriad_rt_t *rt_ring(unsigned workers, unsigned entries, size_t sz,
			    int *err)
{
	struct myriad_rt_opts o;

	memset(&o, 0, sizeof(o));
	o.sz = sz;
	o.workers = workers;
	o.ring_entries = entries;
	return myriad_rt_create(&o, err);
}

/* ---- the option itself ---- */

static void test_opts(void)
{
	static const unsigned bad[] = { 1, 3, 6, 100, 65536, 1u << 31 };
	static const unsigned good[] = { 2, 4, 32768 };
	myriad_rt_t *r;
	unsigned i;
	int err;

	t_phase("ring_entries option");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = 0;
		r = rt_ring(1, bad[i], sizeof(struct myriad_rt_opts), &err);
		CHECK(r == NULL && err == -EINVAL,
		      "ring_entries %u: expected -EINVAL, got %p, %d", bad[i],
		      (void *)r, err);
		if (r)
			myriad_rt_destroy(r);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err = 0;
		r = rt_ring(2, good[i], sizeof(struct myriad_rt_opts), &err);
		CHECK(r != NULL, "ring_entries %u: %d", good[i], err);
		if (r)
			CHECK_EQ(myriad_rt_destroy(r), 0);
	}
	/* An older caller's struct ends before the field: ignored. */
	err = 0;
	r = rt_ring(1, 3, offsetof(struct myriad_rt_opts, ring_entries), &err);
	CHECK(r != NULL, "opts without ring_entries: %d", err);
	if (r)
		CHECK_EQ(myriad_rt_destroy(r), 0);
}

/* ---- 200 operations in one step ---- */

static _Atomic int64_t burst_rounds_ok;

struct burst {
	MYRIAD_CORO_FIELD;
	int id, round, rounds, left;
	int fds[NPAIRS][2];
	myriad_io_t rop[NPAIRS], sop[NPAIRS];
	int rres[NPAIRS], sres[NPAIRS];
	uint8_t rbuf[NPAIRS][MSG], sbuf[NPAIRS][MSG];
};

static int recv_one(myriad_task_t *self, struct burst *st, int i)
{
	return myriad_io_recv(self, &st->rop[i], st->fds[i][0], st->rbuf[i],
			      MSG, 0);
}

static int send_one(myriad_task_t *self, struct burst *st, int i)
{
	return myriad_io_send(self, &st->sop[i], st->fds[i][1], st->sbuf[i],
			      MSG, MSG_NOSIGNAL);
}

/* Collect what completed; the number of operations still in flight. */
static int burst_poll(myriad_task_t *self, struct burst *st)
{
	int i, rc;

	for (i = 0; i < NPAIRS; i++) {
		if (st->rres[i] == NOTDONE) {
			rc = recv_one(self, st, i);
			if (rc != -EAGAIN) {
				st->rres[i] = rc;
				st->left--;
			}
		}
		if (st->sres[i] == NOTDONE) {
			rc = send_one(self, st, i);
			if (rc != -EAGAIN) {
				st->sres[i] = rc;
				st->left--;
			}
		}
	}
	return st->left;
}

static int burst_step(myriad_task_t *self, void *p)
{
	struct burst *st = p;
	int i, j, rc, bad;

	MYRIAD_BEGIN(st);
	for (st->round = 0; st->round < st->rounds; st->round++) {
		for (i = 0; i < NPAIRS; i++) {
			for (j = 0; j < MSG; j++)
				st->sbuf[i][j] =
					(uint8_t)(st->id * 31 + st->round * 7 +
						  i * 3 + j);
			memset(st->rbuf[i], 0, MSG);
			st->rres[i] = st->sres[i] = NOTDONE;
		}
		/* All 200 in this step: recvs first, then the sends. */
		for (i = 0; i < NPAIRS; i++) {
			rc = recv_one(self, st, i);
			CHECK_ERR(rc, -EAGAIN);
		}
		for (i = 0; i < NPAIRS; i++) {
			rc = send_one(self, st, i);
			CHECK_ERR(rc, -EAGAIN);
		}
		st->left = 2 * NPAIRS;
		MYRIAD_WAIT_UNTIL(st, burst_poll(self, st) == 0);
		bad = 0;
		for (i = 0; i < NPAIRS; i++) {
			if (st->sres[i] != MSG || st->rres[i] != MSG ||
			    memcmp(st->rbuf[i], st->sbuf[i], MSG)) {
				if (!bad++)
					t_failf(__FILE__, __LINE__,
						"task %d round %d pair %d: "
						"send %d, recv %d, data %s",
						st->id, st->round, i,
						st->sres[i], st->rres[i],
						memcmp(st->rbuf[i], st->sbuf[i],
						       MSG)
							? "differs"
							: "same");
			}
		}
		if (!bad)
			atomic_fetch_add(&burst_rounds_ok, 1);
	}
	MYRIAD_END(st);
}

static void test_burst(void)
{
	int ntasks = nworkers > 1 ? 4 : 2, i, k;
	int rounds = (int)t_scaled_min(30, 5);
	myriad_handle_t *h[4];
	struct burst *b;
	char c;

	t_phase("200 operations per step");
	b = calloc((size_t)ntasks, sizeof(*b));
	REQUIRE(b, "calloc");
	for (k = 0; k < ntasks; k++) {
		b[k].id = k;
		b[k].rounds = rounds;
		for (i = 0; i < NPAIRS; i++)
			REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
					   0, b[k].fds[i]) == 0,
				"socketpair: %s", strerror(errno));
		REQUIRE(myriad_rt_spawn(rt, burst_step, &b[k], sizeof(b[k]),
					&h[k]) == 0,
			"spawn");
	}
	for (k = 0; k < ntasks; k++) {
		CHECK_EQ(t_join(h[k], NULL, "burst"), 0);
		CHECK_EQ(myriad_handle_release(h[k]), 0);
	}
	CHECK_EQ(atomic_load(&burst_rounds_ok), (int64_t)ntasks * rounds);
	for (k = 0; k < ntasks; k++)
		for (i = 0; i < NPAIRS; i++) {
			/* Nothing left over, nothing missing. */
			CHECK(recv(b[k].fds[i][0], &c, 1, MSG_DONTWAIT) < 0 &&
				      errno == EAGAIN,
			      "task %d pair %d: bytes left over", k, i);
			close(b[k].fds[i][0]);
			close(b[k].fds[i][1]);
		}
	free(b);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

/* ---- completions at once: polls on one eventfd, deadlines, timers ---- */

#define NPOLL 300
#define NDL 150
#define NSLEEP 300

static int efd = -1, idle_pair[2];
static _Atomic int polls_armed, polls_ok, dl_ok, sleeps_ok, sleeps_early;
static _Atomic int efd_written;

struct many_polls {
	MYRIAD_CORO_FIELD;
	myriad_io_t op[NPOLL];
	int res[NPOLL], left;
	uint64_t v;
};

static int polls_collect(myriad_task_t *self, struct many_polls *st)
{
	int i, rc;

	for (i = 0; i < NPOLL; i++) {
		if (st->res[i] != NOTDONE)
			continue;
		rc = myriad_io_poll(self, &st->op[i], efd, POLLIN);
		if (rc != -EAGAIN) {
			st->res[i] = rc;
			st->left--;
		}
	}
	return st->left;
}

static int many_polls_step(myriad_task_t *self, void *p)
{
	struct many_polls *st = p;
	int i, rc;

	MYRIAD_BEGIN(st);
	for (i = 0; i < NPOLL; i++) {
		st->res[i] = NOTDONE;
		rc = myriad_io_poll(self, &st->op[i], efd, POLLIN);
		CHECK_ERR(rc, -EAGAIN);
	}
	st->left = NPOLL;
	atomic_store(&polls_armed, 1);
	MYRIAD_WAIT_UNTIL(st, polls_collect(self, st) == 0);
	CHECK(atomic_load(&efd_written), "polls completed before the write");
	for (i = 0; i < NPOLL; i++)
		if (st->res[i] == POLLIN)
			atomic_fetch_add(&polls_ok, 1);
		else
			CHECK(st->res[i] == POLLIN, "poll %d: %d", i,
			      st->res[i]);
	MYRIAD_IO(st, rc,
		  myriad_io_read(self, &st->op[0], efd, &st->v, sizeof(st->v),
				 -1));
	CHECK_EQ(rc, sizeof(st->v));
	CHECK_EQ(st->v, 1);
	MYRIAD_END(st);
}

/* Many recvs on one idle socket, one deadline for all. */
struct many_dl {
	MYRIAD_CORO_FIELD;
	myriad_io_t op[NDL];
	int res[NDL], left;
	uint64_t dl;
	char buf[NDL][4];
};

static int dl_collect(myriad_task_t *self, struct many_dl *st)
{
	int i, rc;

	for (i = 0; i < NDL; i++) {
		if (st->res[i] != NOTDONE)
			continue;
		rc = myriad_io_recv(self, &st->op[i], idle_pair[0], st->buf[i],
				    sizeof(st->buf[i]), 0);
		if (rc != -EAGAIN) {
			st->res[i] = rc;
			st->left--;
		}
	}
	return st->left;
}

static int many_dl_step(myriad_task_t *self, void *p)
{
	struct many_dl *st = p;
	int i, rc;

	MYRIAD_BEGIN(st);
	st->dl = myriad_now_ns() + 50000000ull;
	for (i = 0; i < NDL; i++) {
		st->res[i] = NOTDONE;
		CHECK_EQ(myriad_io_deadline(&st->op[i], st->dl), 0);
		rc = myriad_io_recv(self, &st->op[i], idle_pair[0], st->buf[i],
				    sizeof(st->buf[i]), 0);
		CHECK_ERR(rc, -EAGAIN);
	}
	st->left = NDL;
	MYRIAD_WAIT_UNTIL(st, dl_collect(self, st) == 0);
	CHECK(myriad_now_ns() + 1000000 >= st->dl, "deadlines fired early");
	for (i = 0; i < NDL; i++)
		if (st->res[i] == -ETIME)
			atomic_fetch_add(&dl_ok, 1);
		else
			CHECK_ERR(st->res[i], -ETIME);
	MYRIAD_END(st);
}

struct sleeper {
	MYRIAD_CORO_FIELD;
	myriad_timer_t tm;
	uint64_t until;
};

static int sleeper_step(myriad_task_t *self, void *p)
{
	struct sleeper *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, rc, myriad_sleep_until(self, &st->tm, st->until));
	CHECK_EQ(rc, 0);
	if (myriad_now_ns() < st->until)
		atomic_fetch_add(&sleeps_early, 1);
	else
		atomic_fetch_add(&sleeps_ok, 1);
	MYRIAD_END(st);
}

static int burst_root_step(myriad_task_t *self, void *p)
{
	struct sleeper s;
	int i, err = 0;

	/* Timers due with the deadlines: the wheel fires them together. */
	memset(&s, 0, sizeof(s));
	s.until = myriad_now_ns() + 50000000ull;
	for (i = 0; i < NSLEEP && !err; i++)
		myriad_task_spawn(self, sleeper_step, &s, sizeof(s),
				  MYRIAD_SPAWN_DETACHED, &err);
	if (!err)
		myriad_task_spawn(self, many_dl_step, NULL,
				  sizeof(struct many_dl), MYRIAD_SPAWN_DETACHED,
				  &err);
	REQUIRE(err == 0, "spawn: %d", err);
	return MYRIAD_DONE;
}

static int polls_are_armed(void *p)
{
	return atomic_load(&polls_armed);
}

static int all_settled(void *p)
{
	return atomic_load(&dl_ok) + atomic_load(&sleeps_ok) +
			       atomic_load(&sleeps_early) >=
		       NDL + NSLEEP &&
	       myriad_rt_tasks_live(rt) == 0;
}

static void test_overflow(void)
{
	myriad_handle_t *h;

	t_phase("completions outrun the completion queue");
	efd = eventfd(0, EFD_CLOEXEC);
	REQUIRE(efd >= 0, "eventfd");
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, idle_pair) ==
			0,
		"socketpair");
	REQUIRE(myriad_rt_spawn(rt, many_polls_step, NULL,
				sizeof(struct many_polls), &h) == 0,
		"spawn");
	REQUIRE(myriad_rt_spawn(rt, burst_root_step, NULL, 0, NULL) == 0,
		"spawn");
	REQUIRE(t_wait_until(polls_are_armed, NULL, 20), "polls armed");
	t_sleep_ms(20);
	atomic_store(&efd_written, 1);
	CHECK_EQ(eventfd_write(efd, 1), 0);
	CHECK_EQ(t_join(h, NULL, "polls"), 0);
	CHECK_EQ(myriad_handle_release(h), 0);
	CHECK_EQ(atomic_load(&polls_ok), NPOLL);
	CHECK(t_wait_until(all_settled, NULL, 20),
	      "deadlines %d/%d, sleeps %d/%d (%d early), %lld tasks live",
	      atomic_load(&dl_ok), NDL, atomic_load(&sleeps_ok), NSLEEP,
	      atomic_load(&sleeps_early), (long long)myriad_rt_tasks_live(rt));
	CHECK_EQ(atomic_load(&dl_ok), NDL);
	CHECK_EQ(atomic_load(&sleeps_ok), NSLEEP);
	CHECK_EQ(atomic_load(&sleeps_early), 0);
	close(efd);
	close(idle_pair[0]);
	close(idle_pair[1]);
}

int main(int argc, char **argv)
{
	int err = 0;

	t_name = "ring_small";
	nworkers = t_parse_workers(argc, argv);
	t_watchdog(60);
	signal(SIGPIPE, SIG_IGN);
	test_opts();
	rt = rt_ring(nworkers, RING, sizeof(struct myriad_rt_opts), &err);
	REQUIRE(rt, "myriad_rt_create(ring_entries=%d): %d", RING, err);
	test_burst();
	test_overflow();
	t_rt_done(rt);
	return t_result();
}
