/* SPDX-License-Identifier: MIT */
/*
 * tests/io/cancel_race.c: myriad_io_cancel racing the completion it
 * cancels, thousands of times: a receiver submits a recv, lets its peer
 * go, and cancels while the peer (a task on another worker, or a thread
 * outside the runtime) sends the value at about the same moment; some
 * recvs also carry a deadline that expires then. Each result must be the
 * value (checked), -ECANCELED or (with a deadline) -ETIME, and in the
 * latter cases the value must then arrive whole on the next recv; the
 * receiver is woken once per completion (no wake storms: a run finding
 * the recv in flight after the cancel is at most one late wake) and never
 * hangs. Receivers move
 * between submit and cancel (yields, and wakes by the sender's channel
 * token, so that the cancel often runs on another worker than the
 * submit), under the default policy and one that sends every wake to the
 * inject queue.
 *   cancel_race [--workers N]
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>

#include "helpers.h"

#define PAIRS 16
#define THREAD_PAIRS 4 /* pairs whose sender is an outside thread */

static unsigned nworkers;

struct pair {
	int rfd, sfd;
	myriad_chan_t *tok;	 /* the sender's token, odd iterations */
	_Atomic int64_t go;	 /* receiver's iteration submitted, plus one */
	_Atomic int64_t settled; /* ... its cancelled recv completed, + 1 */
	int iters;
	int by_thread;
};

static struct pair pairs[PAIRS];

/* Odd iterations: the receiver waits for its sender's channel token. */
static int use_tokens;

/*
 * Runs of a receiver after its cancel that find the recv still in flight,
 * beyond the first: wakes without a completion. One completion wakes the
 * task once, but that wake may land after the task read the result
 * (ops.c publishes DONE, then wakes) and so find the next recv in flight:
 * at most one such run per iteration, two with tokens (a channel may wake
 * late too). More is a wake storm or a wake for nothing.
 */

static _Atomic int64_t won, cancelled, timed_out, migrated, extra_wakes;
static _Atomic int64_t done_iters;

static inline uint64_t want_v(int p, int i)
{
	return ((uint64_t)(p + 1) << 40) ^ ((uint64_t)i * 0x9e3779b1u) ^
	       0xa5a5a5a5ull;
}

/*
 * Every fifth iteration the value is sent only once the cancelled recv has
 * completed: no race, the cancel alone must end it (a lost cancel hangs).
 */
static inline int withheld(int i)
{
	return i % 5 == 4;
}

static inline uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 16);
}

static void tcp_pair(int fds[2])
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	REQUIRE(lfd >= 0, "socket");
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			listen(lfd, 1) == 0 &&
			getsockname(lfd, (struct sockaddr *)&a, &len) == 0,
		"listen: %s", strerror(errno));
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fds[0] >= 0 &&
			connect(fds[0], (struct sockaddr *)&a, sizeof(a)) == 0,
		"connect: %s", strerror(errno));
	fds[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	REQUIRE(fds[1] >= 0, "accept: %s", strerror(errno));
	close(lfd);
	setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- the receiver ---- */

struct receiver {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int p, i, yields, wsub, eagain, with_dl;
	int64_t tok;
	uint64_t v, rng;
};

/* Counts the calls that found the operation still in flight. */
static inline int count_eagain(struct receiver *st, int rc)
{
	if (rc == -EAGAIN)
		st->eagain++;
	return rc;
}

static int receiver_step(myriad_task_t *self, void *p)
{
	struct receiver *st = p;
	struct pair *pp = &pairs[st->p];
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < pp->iters; st->i++) {
		st->v = 0;
		/* Every fourth: a deadline due about when the cancel comes. */
		st->with_dl = st->i % 4 == 3;
		if (st->with_dl)
			CHECK_EQ(myriad_io_deadline(&st->op,
						    myriad_now_ns() +
							    rnd(&st->rng) %
								    200000),
				 0);
		rc = myriad_io_recv(self, &st->op, pp->rfd, &st->v,
				    sizeof(st->v), 0);
		if (rc != -EAGAIN) {
			t_failf(__FILE__, __LINE__,
				"pair %d iteration %d: the first recv call "
				"returned %d, not -EAGAIN",
				st->p, st->i, rc);
			break;
		}
		st->wsub = myriad_current_worker();
		atomic_store(&pp->go, st->i + 1);
		if (use_tokens && st->i % 2) {
			/* Woken by the sender's token: often elsewhere. */
			MYRIAD_RECV(st, self, pp->tok, &st->tok, rc);
			CHECK_EQ(rc, 0);
			CHECK_EQ(st->tok, st->i);
		}
		st->yields = (int)(rnd(&st->rng) % 4);
		while (st->yields-- > 0)
			MYRIAD_YIELD(st);
		if (myriad_current_worker() != st->wsub)
			atomic_fetch_add(&migrated, 1);
		CHECK_EQ(myriad_io_cancel(self, &st->op), 0);
		st->eagain = 0;
		MYRIAD_IO(st, rc,
			  count_eagain(st, myriad_io_recv(self, &st->op,
							  pp->rfd, &st->v,
							  sizeof(st->v), 0)));
		/*
		 * The first call may find it in flight; after that only its
		 * completion wakes this task.
		 */
		atomic_store(&pp->settled, st->i + 1);
		if (st->eagain > 1) {
			atomic_fetch_add(&extra_wakes, st->eagain - 1);
			CHECK(st->eagain - 1 <= 1 + use_tokens,
			      "pair %d iteration %d: %d runs without a "
			      "completion after the cancel",
			      st->p, st->i, st->eagain - 1);
		}
		if (rc == (int)sizeof(st->v) && !withheld(st->i)) {
			atomic_fetch_add(&won, 1);
		} else if (rc == -ECANCELED || (rc == -ETIME && st->with_dl)) {
			atomic_fetch_add(rc == -ETIME ? &timed_out : &cancelled,
					 1);
			/* The value was not taken: it comes whole now. */
			CHECK_EQ(st->v, 0);
			MYRIAD_IO(st, rc,
				  myriad_io_recv(self, &st->op, pp->rfd, &st->v,
						 sizeof(st->v), 0));
			CHECK_EQ(rc, sizeof(st->v));
		} else {
			t_failf(__FILE__, __LINE__,
				"pair %d iteration %d: a cancelled recv%s "
				"returned %d (%s): expected %s-ECANCELED%s",
				st->p, st->i,
				st->with_dl ? " with deadline" : "", rc,
				rc < 0 ? strerror(-rc) : "bytes",
				withheld(st->i) ? "(nothing sent yet) " : "8, ",
				st->with_dl ? " or -ETIME" : "");
			break;
		}
		CHECK(st->v == want_v(st->p, st->i),
		      "pair %d iteration %d: got 0x%llx, sent 0x%llx", st->p,
		      st->i, (unsigned long long)st->v,
		      (unsigned long long)want_v(st->p, st->i));
		atomic_fetch_add(&done_iters, 1);
	}
	MYRIAD_END(st);
}

/* ---- the senders: a task, or a thread outside the runtime ---- */

struct sender {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int p, i, yields, tok_first;
	int64_t tok;
	uint64_t v, rng;
};

static int sender_step(myriad_task_t *self, void *p)
{
	struct sender *st = p;
	struct pair *pp = &pairs[st->p];
	int rc;

	MYRIAD_BEGIN(st);
	for (st->i = 0; st->i < pp->iters; st->i++) {
		while (atomic_load(&pp->go) <= st->i)
			MYRIAD_YIELD(st);
		st->v = want_v(st->p, st->i);
		st->tok = st->i;
		st->tok_first = use_tokens && st->i % 2 &&
				(withheld(st->i) || rnd(&st->rng) % 2);
		if (st->tok_first) {
			MYRIAD_SEND(st, self, pp->tok, &st->tok, rc);
			CHECK_EQ(rc, 0);
		}
		while (withheld(st->i) && atomic_load(&pp->settled) <= st->i)
			MYRIAD_YIELD(st);
		st->yields = (int)(rnd(&st->rng) % 3);
		while (st->yields-- > 0)
			MYRIAD_YIELD(st);
		if (st->i % 3 == 0) {
			MYRIAD_IO(st, rc,
				  myriad_io_send(self, &st->op, pp->sfd, &st->v,
						 sizeof(st->v), MSG_NOSIGNAL));
		} else {
			rc = (int)send(pp->sfd, &st->v, sizeof(st->v),
				       MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		CHECK_EQ(rc, sizeof(st->v));
		if (use_tokens && st->i % 2 && !st->tok_first) {
			MYRIAD_SEND(st, self, pp->tok, &st->tok, rc);
			CHECK_EQ(rc, 0);
		}
	}
	MYRIAD_END(st);
}

static void spin(uint32_t n)
{
	volatile uint32_t x = 0;

	while (n--)
		x++;
}

static void *thread_sender(void *arg)
{
	int next[PAIRS] = { 0 }, held[PAIRS] = { 0 };
	int left = THREAD_PAIRS, p, i;
	uint64_t rng = 88172645463325252ull, v;
	int64_t tok;
	int tok_first;

	(void)arg;
	while (left > 0) {
		for (p = 0; p < PAIRS; p++) {
			struct pair *pp = &pairs[p];

			i = next[p];
			if (!pp->by_thread || i >= pp->iters ||
			    atomic_load(&pp->go) <= i)
				continue;
			v = want_v(p, i);
			tok = i;
			if (held[p]) {
				/* Withheld, token sent: wait for the end. */
				if (atomic_load(&pp->settled) <= i)
					continue;
				held[p] = 0;
				tok_first = 1;
				goto send;
			}
			tok_first = use_tokens && i % 2 &&
				    (withheld(i) || rnd(&rng) % 2);
			if (tok_first)
				CHECK_EQ(myriad_chan_try_send(pp->tok, &tok),
					 0);
			if (withheld(i)) {
				held[p] = 1;
				continue;
			}
			spin(rnd(&rng) % 4000);
		send:
			CHECK_EQ(send(pp->sfd, &v, sizeof(v), MSG_NOSIGNAL),
				 sizeof(v));
			if (use_tokens && i % 2 && !tok_first)
				CHECK_EQ(myriad_chan_try_send(pp->tok, &tok),
					 0);
			if (++next[p] == pp->iters)
				left--;
		}
		sched_yield();
	}
	return NULL;
}

struct root {
	MYRIAD_CORO_FIELD;
};

static int root_step(myriad_task_t *self, void *p)
{
	struct root *st = p;
	struct receiver r;
	struct sender s;
	int i, err = 0;

	MYRIAD_BEGIN(st);
	for (i = 0; i < PAIRS; i++) {
		memset(&r, 0, sizeof(r));
		r.p = i;
		r.rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
		REQUIRE(myriad_task_spawn(self, receiver_step, &r, sizeof(r), 0,
					  &err),
			"spawn: %d", err);
		if (pairs[i].by_thread)
			continue;
		memset(&s, 0, sizeof(s));
		s.p = i;
		s.rng = 0xbf58476d1ce4e5b9ull * (uint64_t)(i + 1);
		REQUIRE(myriad_task_spawn(self, sender_step, &s, sizeof(s), 0,
					  &err),
			"spawn: %d", err);
	}
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static void dump(void)
{
	int i;

	fprintf(stderr, "  done %lld iterations; go per pair:",
		(long long)atomic_load(&done_iters));
	for (i = 0; i < PAIRS; i++)
		fprintf(stderr, " %lld/%d",
			(long long)atomic_load(&pairs[i].go), pairs[i].iters);
	fputc('\n', stderr);
}

/* Every wake and spawn to the inject queue: any worker takes it. */
static int place_inject(void *ctx, unsigned self)
{
	return MYRIAD_PLACE_INJECT;
}

static void run_race(const char *what, const struct myriad_policy_ops *pol,
		     int tokens, int total)
{
	struct myriad_rt_opts o;
	myriad_rt_t *rt;
	pthread_t th;
	struct root root;
	int64_t w0 = atomic_load(&won), c0 = atomic_load(&cancelled),
		t0 = atomic_load(&timed_out), m0 = atomic_load(&migrated),
		d0 = atomic_load(&done_iters);
	int i, err = 0, fds[2];

	t_phase(what);
	use_tokens = tokens;
	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.workers = nworkers;
	o.policy = pol;
	rt = myriad_rt_create(&o, &err);
	REQUIRE(rt, "myriad_rt_create: %d", err);
	for (i = 0; i < PAIRS; i++) {
		struct pair *pp = &pairs[i];

		/* Half the pairs TCP, half AF_UNIX. */
		if (i % 2)
			tcp_pair(fds);
		else
			REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
					   0, fds) == 0,
				"socketpair");
		pp->rfd = fds[0];
		pp->sfd = fds[1];
		pp->tok = myriad_chan_create(rt, sizeof(int64_t), 1, &err);
		REQUIRE(pp->tok, "chan_create: %d", err);
		atomic_store(&pp->go, 0);
		pp->iters = total / PAIRS;
		pp->by_thread = i % (PAIRS / THREAD_PAIRS) == 1;
	}
	REQUIRE(pthread_create(&th, NULL, thread_sender, NULL) == 0,
		"pthread_create");
	memset(&root, 0, sizeof(root));
	CHECK_EQ(t_run(rt, root_step, &root, sizeof(root), NULL, what), 0);
	pthread_join(th, NULL);
	CHECK_EQ(atomic_load(&done_iters) - d0, (total / PAIRS) * PAIRS);
	CHECK_EQ(atomic_load(&won) - w0 + atomic_load(&cancelled) - c0 +
			 atomic_load(&timed_out) - t0,
		 (total / PAIRS) * PAIRS);
	printf("cancel_race %s: %d races: %lld completed, %lld cancelled, "
	       "%lld timed out; %lld cancels on another worker than the "
	       "submit\n",
	       what, (total / PAIRS) * PAIRS,
	       (long long)(atomic_load(&won) - w0),
	       (long long)(atomic_load(&cancelled) - c0),
	       (long long)(atomic_load(&timed_out) - t0),
	       (long long)(atomic_load(&migrated) - m0));
	/* Every value was read: nothing is left in the sockets. */
	for (i = 0; i < PAIRS; i++) {
		uint64_t v;

		CHECK(recv(pairs[i].rfd, &v, sizeof(v), MSG_DONTWAIT) < 0 &&
			      errno == EAGAIN,
		      "pair %d: bytes left over", i);
		close(pairs[i].rfd);
		close(pairs[i].sfd);
		CHECK_EQ(myriad_chan_destroy(pairs[i].tok), 0);
	}
	t_rt_done(rt);
}

/* Both outcomes seen, and a cancel on another worker than its submit. */
static bool covered(void)
{
	return atomic_load(&won) > 0 && atomic_load(&cancelled) > 0 &&
	       (nworkers < 2 || atomic_load(&migrated) > 0);
}

int main(int argc, char **argv)
{
	struct myriad_policy_ops inject = myriad_policy_default;
	double end;
	int total;

	t_name = "cancel_race";
	nworkers = t_parse_workers(argc, argv);
	t_watchdog(120);
	t_watchdog_dump = dump;
	signal(SIGPIPE, SIG_IGN);
	total = (int)t_scaled_min(5000, 1000);
	inject.name = "inject";
	inject.spawn_place = place_inject;
	run_race("default policy", NULL, 0, total);
	run_race("default policy, tokens", NULL, 1, total);
	run_race("inject policy, tokens", &inject, 1, total);
	/*
	 * Which side wins a race, and which worker runs a cancel, is the
	 * machine's timing: a loaded one may deal the same hand every time.
	 * The outcomes checked below only say that the races above reached
	 * both ends; more rounds, while time is left, until they have.
	 */
	end = t_now() + 30.0 * T_SLOW;
	while (!covered() && t_now() < end)
		run_race("inject policy, tokens (more)", &inject, 1, total);
	CHECK(atomic_load(&won) > 0, "no recv ever won against its cancel");
	CHECK(atomic_load(&cancelled) > 0, "no cancel ever won");
	if (nworkers >= 2)
		CHECK(atomic_load(&migrated) > 0,
		      "with %u workers no cancel ran on another worker than "
		      "its submit",
		      nworkers);
	printf("cancel_race: %lld runs without a completion after a cancel "
	       "(late wakes)\n",
	       (long long)atomic_load(&extra_wakes));
	return t_result();
}
