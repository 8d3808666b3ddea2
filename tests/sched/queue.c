/* SPDX-License-Identifier: MIT */
/*
 * tests/sched/queue.c: the local queue (lq_*) and the inject queue
 * (inject_*) driven directly on hand-made workers: wrap-around, overflow,
 * steal-half, the LIFO slot, a validator tried on wrapped and corrupt ring
 * states, and a concurrent stress in which every pointer comes out once.
 *   queue [--thieves K] [--n N]
 */
#include <pthread.h>

#include "helpers.h"
#include "sched/sched.h"

#define C MYRIAD_LQ_CAP
#define R (MYRIAD_LQ_CAP - 1) /* a ck ring of C slots holds C - 1 */
#define IC MYRIAD_INJECT_CAP

static struct myriad_task *tasks; /* fake task headers */
static size_t ntasks;
static _Atomic uint32_t *seen; /* times each came out */

static size_t id_of(struct myriad_task *t)
{
	return (size_t)(t - tasks);
}

static void mark(struct myriad_task *t)
{
	size_t id = id_of(t);
	uint32_t n;

	if (id >= ntasks) {
		t_failf(__FILE__, __LINE__,
			"a pointer that was never pushed: %p", (void *)t);
		return;
	}
	n = atomic_fetch_add_explicit(&seen[id], 1, memory_order_relaxed);
	if (n)
		t_failf(__FILE__, __LINE__, "task %zu came out twice", id);
}

static void reset_seen(void)
{
	size_t i;

	for (i = 0; i < ntasks; i++)
		atomic_store(&seen[i], 0);
}

/* Every task in [0, n) came out exactly once. */
static void check_all_seen(size_t n, const char *what)
{
	size_t i, missing = 0;

	for (i = 0; i < n; i++)
		if (atomic_load(&seen[i]) != 1)
			missing++;
	if (missing) {
		for (i = 0; i < n; i++)
			if (atomic_load(&seen[i]) != 1)
				break;
		t_failf(__FILE__, __LINE__,
			"%s: every task out exactly once: %zu of %zu are not "
			"(first: task %zu out %u times)",
			what, missing, n, i, atomic_load(&seen[i]));
	}
}

static struct myriad_rt *fake_rt(unsigned nworkers)
{
	struct myriad_rt *rt;
	unsigned i;

	rt = aligned_alloc(CACHELINE, (sizeof(*rt) + CACHELINE - 1) /
					      CACHELINE * CACHELINE);
	REQUIRE(rt, "alloc");
	memset(rt, 0, sizeof(*rt));
	REQUIRE(inject_init(&rt->inject) == 0, "inject_init");
	rt->nworkers = nworkers;
	rt->workers =
		aligned_alloc(CACHELINE, sizeof(struct worker) * nworkers);
	REQUIRE(rt->workers, "alloc");
	memset(rt->workers, 0, sizeof(struct worker) * nworkers);
	for (i = 0; i < nworkers; i++) {
		rt->workers[i].rt = rt;
		rt->workers[i].idx = i;
		REQUIRE(lq_init(&rt->workers[i]) == 0, "lq_init");
	}
	return rt;
}

static void fake_rt_free(struct myriad_rt *rt)
{
	unsigned i;

	for (i = 0; i < rt->nworkers; i++)
		lq_fini(&rt->workers[i]);
	free(rt->workers);
	inject_fini(&rt->inject);
	free(rt);
}

/*
 * Drain a worker (ring, LIFO slot, spawn stack) and the inject queue: mark
 * all. Owner only (the stack is the owner's).
 */
static size_t drain(struct myriad_rt *rt, struct worker *w)
{
	struct myriad_task *t;
	size_t n = 0;

	while ((t = lq_pop(w)) || (t = lq_pop_lifo(w)) ||
	       (t = lq_pop_stack(w))) {
		mark(t);
		n++;
	}
	while ((t = inject_pop(&rt->inject))) {
		mark(t);
		n++;
	}
	return n;
}

/*
 * The validator of a ring used through ck's SPMC calls (the local queue;
 * the inject ring, whose producers take a lock). ck_ring_valid() compares
 * c_head with p_head, which only ck's multi-producer enqueue advances; the
 * single-producer enqueue publishes p_tail, so
 * here the invariant is: size a power of two, mask = size - 1, at most
 * size - 1 entries between c_head and p_tail (unsigned distance: the
 * counters wrap), and every entry a task this test pushed.
 */
static bool lq_ring_valid(const struct ck_ring *r, const ck_ring_buffer_t *buf)
{
	unsigned n, i;

	if (!r->size || (r->size & (r->size - 1)) || r->mask != r->size - 1)
		return false;
	n = r->p_tail - r->c_head;
	if (n > r->mask)
		return false;
	for (i = 0; i < n; i++) {
		struct myriad_task *t = buf[(r->c_head + i) & r->mask].value;

		if (!t || id_of(t) >= ntasks)
			return false;
	}
	return true;
}

/* ---- single-threaded ---- */

static void test_wraparound(void)
{
	struct myriad_rt *rt = fake_rt(1);
	struct worker *w = &rt->workers[0];
	unsigned round, k, i, next = 0, expect;
	struct myriad_task *t;

	t_phase("wrap-around");
	reset_seen();
	for (round = 0; round < 8 * C + 7; round++) {
		k = 1 + round % R;
		expect = next;
		for (i = 0; i < k; i++) {
			w->need_notify = false;
			lq_push(w, &tasks[(next++) % ntasks]);
			CHECK(w->need_notify, "lq_push sets need_notify");
		}
		CHECK_EQ(lq_len(w), k);
		CHECK(lq_ring_valid(&w->ring, w->buf),
		      "round %u: a valid ring state", round);
		for (i = 0; i < k; i++) {
			t = lq_pop(w);
			REQUIRE(t, "round %u: pop %u of %u", round, i, k);
			CHECK_EQ(id_of(t), (expect++) % ntasks);
		}
		CHECK(lq_pop(w) == NULL, "empty after popping all");
		CHECK_EQ(lq_len(w), 0);
	}
	CHECK(w->ring.c_head > 4 * C, "the counters went round the ring: %u",
	      w->ring.c_head);
	CHECK(inject_empty(&rt->inject), "nothing overflowed");
#if MYRIAD_COUNTERS
	CHECK_EQ(w->ctr[MYRIAD_CTR_OVERFLOWS], 0);
#endif

	/* The same on the inject ring (single producer at a time, too). */
	next = 0;
	for (round = 0; round < 8 * IC / (IC > 64 ? 64 : 1) + 7; round++) {
		k = 1 + round % (IC - 1);
		expect = next;
		for (i = 0; i < k; i++)
			inject_push(&rt->inject, &tasks[(next++) % ntasks]);
		CHECK_EQ(inject_len(&rt->inject), k);
		CHECK(lq_ring_valid(&rt->inject.ring, rt->inject.buf),
		      "round %u: ck_ring_valid on the inject ring", round);
		CHECK_EQ(atomic_load(&rt->inject.olen), 0);
		for (i = 0; i < k; i++) {
			t = inject_pop(&rt->inject);
			REQUIRE(t, "inject round %u: pop %u of %u", round, i,
				k);
			CHECK_EQ(id_of(t), (expect++) % ntasks);
		}
		CHECK(inject_pop(&rt->inject) == NULL, "inject empty");
	}
	CHECK(lq_ring_valid(&rt->inject.ring, rt->inject.buf),
	      "inject ring valid at the end");
	fake_rt_free(rt);
}

static void test_overflow(void)
{
	struct myriad_rt *rt = fake_rt(1);
	struct worker *w = &rt->workers[0];
	size_t total = IC + 3 * C, i, prev_l = 0, n_l = 0;
	bool first_l = true, list_used = false;
	struct myriad_task *t;

	t_phase("overflow");
	REQUIRE(total + total / 2 <= ntasks, "enough fake tasks");
	reset_seen();
	for (i = 0; i < R; i++)
		lq_push(w, &tasks[i]);
	CHECK_EQ(lq_len(w), R);
	CHECK(inject_empty(&rt->inject), "a full ring has not overflowed");

	/* One more: half the ring and the new task move to inject. */
	lq_push(w, &tasks[R]);
	CHECK_EQ(lq_len(w), R - C / 2);
	CHECK_EQ(inject_len(&rt->inject), C / 2 + 1);
#if MYRIAD_COUNTERS
	CHECK_EQ(w->ctr[MYRIAD_CTR_OVERFLOWS], 1);
#endif
	/* The oldest went, in order, then the new task. */
	for (i = 0; i < C / 2; i++) {
		t = inject_pop(&rt->inject);
		REQUIRE(t, "inject pop");
		CHECK_EQ(id_of(t), i);
		mark(t);
	}
	t = inject_pop(&rt->inject);
	REQUIRE(t, "inject pop");
	CHECK_EQ(id_of(t), R);
	mark(t);
	for (i = C / 2; i < R; i++) {
		t = lq_pop(w);
		REQUIRE(t, "lq pop");
		CHECK_EQ(id_of(t), i);
		mark(t);
	}
	CHECK(lq_pop(w) == NULL && inject_empty(&rt->inject), "all out");
	check_all_seen(C, "one overflow");

	/* Many more than ring and inject ring hold: the overflow list. */
	reset_seen();
	for (i = 0; i < total; i++) {
		lq_push(w, &tasks[i]);
		if (atomic_load(&rt->inject.olen))
			list_used = true;
	}
	CHECK(list_used,
	      "pushing %zu tasks spilled into the inject overflow "
	      "list",
	      total);
	CHECK_EQ(lq_len(w) + inject_len(&rt->inject), total);
	CHECK(lq_ring_valid(&rt->inject.ring, rt->inject.buf),
	      "inject ring valid when full");
	CHECK(lq_ring_valid(&w->ring, w->buf), "local ring valid when full");
	/* Each queue gives its tasks oldest first. */
	while ((t = lq_pop(w))) {
		CHECK(first_l || id_of(t) > prev_l, "local FIFO: %zu after %zu",
		      id_of(t), prev_l);
		first_l = false;
		prev_l = id_of(t);
		mark(t);
		n_l++;
	}
	/*
	 * Inject gets each spill's oldest half, then the new task: not one
	 * global order (a spill's new task goes before older tasks still in
	 * the ring), which nobody promises; exactly once is what counts.
	 */
	while ((t = inject_pop(&rt->inject)))
		mark(t);
	CHECK_EQ(atomic_load(&rt->inject.olen), 0);
	CHECK(rt->inject.ohead == NULL && rt->inject.otail == NULL,
	      "overflow list empty");
	check_all_seen(total, "many overflows");

	/*
	 * The inject queue alone is FIFO across its ring and its list: fill
	 * both, take half, push more (they queue behind the list), drain.
	 */
	reset_seen();
	for (i = 0; i < total; i++)
		inject_push(&rt->inject, &tasks[i]);
	CHECK(atomic_load(&rt->inject.olen) > 0,
	      "%zu pushes spilled into the inject overflow list", total);
	for (i = 0; i < total / 2; i++) {
		t = inject_pop(&rt->inject);
		REQUIRE(t, "inject pop");
		CHECK_EQ(id_of(t), i);
		mark(t);
	}
	for (i = total; i < total + total / 2; i++)
		inject_push(&rt->inject, &tasks[i]);
	for (i = total / 2; i < total + total / 2; i++) {
		t = inject_pop(&rt->inject);
		REQUIRE(t, "inject pop");
		CHECK(id_of(t) == i,
		      "inject FIFO across ring and list: "
		      "expected task %zu, got %zu",
		      i, id_of(t));
		mark(t);
	}
	CHECK(inject_pop(&rt->inject) == NULL, "inject empty");
	CHECK_EQ(inject_len(&rt->inject), 0);
	check_all_seen(total + total / 2, "inject FIFO");
	fake_rt_free(rt);
}

static void test_steal_half(void)
{
	struct myriad_rt *rt = fake_rt(2);
	struct worker *v = &rt->workers[0], *th = &rt->workers[1];
	struct myriad_task *t;
	unsigned n, i, got;

	t_phase("steal-half");
	CHECK(lq_steal_half(th, v) == NULL, "nothing to steal from an empty "
					    "ring");
	for (n = 1; n <= R; n++) {
		reset_seen();
		for (i = 0; i < n; i++)
			lq_push(v, &tasks[i]);
		t = lq_steal_half(th, v);
		REQUIRE(t, "steal from %u", n);
		/* The thief takes the oldest ceil(n/2), the first to run. */
		CHECK_EQ(id_of(t), 0);
		mark(t);
		got = 1 + lq_len(th);
		CHECK(got == (n + 1) / 2,
		      "steal-half of %u: expected ceil = %u, got %u", n,
		      (n + 1) / 2, got);
		CHECK_EQ(lq_len(v), n / 2);
		for (i = 1; i < got; i++) {
			t = lq_pop(th);
			REQUIRE(t, "thief pop");
			CHECK_EQ(id_of(t), i);
			mark(t);
		}
		for (i = got; i < n; i++) {
			t = lq_pop(v);
			REQUIRE(t, "victim pop");
			CHECK_EQ(id_of(t), i);
			mark(t);
		}
		CHECK(inject_empty(&rt->inject), "an empty thief has room");
		check_all_seen(n, "steal-half");
	}

	/* A thief whose ring is full spills what does not fit to inject. */
	reset_seen();
	for (i = 0; i < R; i++)
		lq_push(th, &tasks[i]);
	for (i = 0; i < R; i++)
		lq_push(v, &tasks[R + i]);
	t = lq_steal_half(th, v);
	REQUIRE(t, "steal into a full thief");
	mark(t);
	CHECK_EQ(inject_len(&rt->inject), (R + 1) / 2 - 1);
	drain(rt, th);
	drain(rt, v);
	check_all_seen(2 * R, "steal into a full thief");
	fake_rt_free(rt);
}

static void test_lifo(void)
{
	struct myriad_rt *rt = fake_rt(2);
	struct worker *w = &rt->workers[0], *th = &rt->workers[1];
	struct myriad_task *t;
	unsigned i, n;

	t_phase("lifo");
	reset_seen();
	lq_push_lifo(w, &tasks[0]);
	CHECK(atomic_load(&w->lifo) == &tasks[0], "the slot holds task 0");
	CHECK_EQ(ck_ring_size(&w->ring), 0);
	CHECK_EQ(lq_len(w), 1);
	/* A second one displaces the first onto the spawn stack. */
	lq_push_lifo(w, &tasks[1]);
	CHECK(atomic_load(&w->lifo) == &tasks[1], "the slot holds task 1");
	CHECK_EQ(w->stack_n, 1);
	CHECK_EQ(ck_ring_size(&w->ring), 0);
	t = lq_pop_lifo(w);
	CHECK(t == &tasks[1], "pop_lifo gives the newest");
	CHECK(lq_pop_lifo(w) == NULL, "slot empty");
	CHECK(lq_pop(w) == NULL, "the ring is empty");
	t = lq_pop_stack(w);
	CHECK(t == &tasks[0], "the displaced task is on the stack");
	CHECK(lq_pop_stack(w) == NULL, "the stack is empty");
	CHECK_EQ(lq_len(w), 0);

	/* A thief takes the slot; then it is empty for everyone. */
	lq_push_lifo(w, &tasks[2]);
	t = lq_steal_lifo(w);
	CHECK(t == &tasks[2], "steal_lifo gives the slot's task");
	CHECK(lq_steal_lifo(w) == NULL, "stolen slot is empty");
	CHECK(lq_pop_lifo(w) == NULL, "... for the owner too");
	CHECK(lq_steal_lifo(th) == NULL, "empty slot: nothing to steal");

	/*
	 * Displacing past a full stack spills to the ring, and past a full
	 * ring to inject: nothing lost.
	 */
	reset_seen();
	n = MYRIAD_STACK_CAP + 4 * C + 3;
	for (i = 0; i < n; i++)
		lq_push_lifo(w, &tasks[i]);
	CHECK(atomic_load(&w->lifo) == &tasks[n - 1], "newest in slot");
	CHECK(w->stack_n <= MYRIAD_STACK_CAP, "stack within its capacity");
	CHECK_EQ(lq_len(w) + w->stack_n + inject_len(&rt->inject), n);
	CHECK_EQ(drain(rt, w), n);
	check_all_seen(n, "lifo displacement");
	fake_rt_free(rt);
}

/* The owner's spawn stack: LIFO, spills its oldest half to the ring. */
static void test_stack(void)
{
	struct myriad_rt *rt = fake_rt(2);
	struct worker *w = &rt->workers[0], *th = &rt->workers[1];
	struct myriad_task *t;
	unsigned i, n, k;

	t_phase("spawn stack");
	reset_seen();
	CHECK(lq_pop_stack(w) == NULL, "empty stack");
	for (i = 0; i < 10; i++)
		lq_push_stack(w, &tasks[i]);
	CHECK_EQ(w->stack_n, 10);
	CHECK_EQ(lq_len(w), 0); /* not stealable, not counted */
	CHECK(lq_steal_half(th, w) == NULL, "the stack is not stolen");
	for (i = 10; i-- > 0;) {
		t = lq_pop_stack(w);
		REQUIRE(t, "pop_stack");
		CHECK_EQ(id_of(t), i); /* newest first */
		mark(t);
	}
	check_all_seen(10, "stack order");

	/*
	 * Spill (another worker idles): the whole stack becomes stealable,
	 * oldest first, as far as the ring has room.
	 */
	reset_seen();
	n = R < 7 ? R : 7;
	for (i = 0; i < n; i++)
		lq_push_stack(w, &tasks[i]);
	lq_spill(w);
	CHECK_EQ(ck_ring_size(&w->ring), n);
	CHECK_EQ(w->stack_n, 0);
	CHECK(inject_empty(&rt->inject), "a spill into room stays local");
	for (i = 0; i < n; i++) {
		t = lq_pop(th);
		if (!t)
			t = lq_steal_half(th, w);
		REQUIRE(t, "stealable after spill");
		CHECK_EQ(id_of(t), i);
		mark(t);
	}
	check_all_seen(n, "spill");
	CHECK_EQ(drain(rt, th), 0);

	/* Spill into a ring with little room: as far as it goes. */
	reset_seen();
	for (i = 0; i < R - 1; i++)
		lq_push(w, &tasks[i]);
	k = R - 1;
	for (i = 0; i < 6; i++)
		lq_push_stack(w, &tasks[k + i]);
	lq_spill(w);
	CHECK_EQ(ck_ring_size(&w->ring), R);
	CHECK_EQ(w->stack_n, 5);
	CHECK(inject_empty(&rt->inject), "spill stops at the ring's room");
	/* A full ring: one task goes, through the ring's overflow. */
	lq_spill(w);
	CHECK_EQ(w->stack_n, 4);
	CHECK(!inject_empty(&rt->inject), "spill into a full ring overflows");
	CHECK_EQ(drain(rt, w), k + 6);
	check_all_seen(k + 6, "spill into a full ring");

	/* Pushing onto a full stack spills: nothing lost. */
	reset_seen();
	n = 3 * MYRIAD_STACK_CAP + 5;
	for (i = 0; i < n; i++)
		lq_push_stack(w, &tasks[i]);
	CHECK(w->stack_n <= MYRIAD_STACK_CAP, "stack within capacity: %u",
	      w->stack_n);
	CHECK_EQ(lq_len(w) + w->stack_n + inject_len(&rt->inject), n);
	/* The newest are on the stack. */
	t = lq_pop_stack(w);
	CHECK(t && id_of(t) == n - 1, "newest on top");
	if (t)
		mark(t);
	CHECK_EQ(drain(rt, w) + 1, n);
	check_all_seen(n, "full stack");
	fake_rt_free(rt);
}

/* ck_ring_valid and lq_ring_valid on hand-built states. */
static void test_validate(void)
{
	struct ck_ring r;
	ck_ring_buffer_t buf[4];
	unsigned i;

	t_phase("validate");
	for (i = 0; i < 4; i++)
		buf[i].value = &tasks[i];

	ck_ring_init(&r, 4);
	CHECK(ck_ring_valid(&r), "fresh ring is valid");
	/* Wrapped: the counters are past the size, two entries. */
	r.c_head = 9;
	r.p_head = r.p_tail = 11;
	CHECK(ck_ring_valid(&r), "wrapped ring with 2 entries is valid");
	CHECK(lq_ring_valid(&r, buf), "lq: wrapped ring with 2 entries");
	/* Wrapped and full (size - 1 entries). */
	r.c_head = 13;
	r.p_head = r.p_tail = 16;
	CHECK(ck_ring_valid(&r), "wrapped full ring is valid");
	CHECK(lq_ring_valid(&r, buf), "lq: wrapped full ring");
	/* Corrupt: the consumer ahead of the producer. */
	r.c_head = 12;
	r.p_head = r.p_tail = 10;
	CHECK(!ck_ring_valid(&r), "consumer ahead of producer is invalid");
	CHECK(!lq_ring_valid(&r, buf), "lq: consumer ahead of producer");
	/* Corrupt: more entries than the ring holds. */
	r.c_head = 20;
	r.p_head = r.p_tail = 24;
	CHECK(!ck_ring_valid(&r), "size entries in a size ring is invalid");
	CHECK(!lq_ring_valid(&r, buf), "lq: size entries");
	/* Corrupt: a size that is not a power of two. */
	ck_ring_init(&r, 4);
	r.size = 6;
	r.mask = 5;
	CHECK(!ck_ring_valid(&r), "size 6 is invalid");
	CHECK(!lq_ring_valid(&r, buf), "lq: size 6");
	/* Corrupt: an entry that is no task (lq only checks contents). */
	ck_ring_init(&r, 4);
	r.c_head = 5;
	r.p_head = r.p_tail = 7;
	buf[6 & 3].value = NULL;
	CHECK(!lq_ring_valid(&r, buf), "lq: a NULL entry in range");
	buf[6 & 3].value = (char *)tasks - 64;
	CHECK(!lq_ring_valid(&r, buf), "lq: a foreign pointer in range");
	buf[6 & 3].value = &tasks[2];
	CHECK(lq_ring_valid(&r, buf), "lq: repaired");
}

/* ---- concurrent ---- */

struct stress {
	struct myriad_rt *rt;
	struct worker *owner, *thief;
	_Atomic int *owner_done;
	size_t n, got;
};

static void *owner_main(void *p)
{
	struct stress *s = p;
	struct worker *w = s->owner;
	struct myriad_task *t;
	size_t i;

	for (i = 0; i < s->n; i++) {
		if (i % 3 == 0)
			lq_push_lifo(w, &tasks[i]);
		else
			lq_push(w, &tasks[i]);
		if (i % 2 == 0) {
			t = (i % 4 == 0) ? lq_pop(w) : lq_pop_lifo(w);
			if (t) {
				mark(t);
				s->got++;
			}
		}
		if (i % 64 == 0 && (t = inject_pop(&s->rt->inject))) {
			mark(t);
			s->got++;
		}
		if (i % 5 == 0 && (t = lq_pop_stack(w))) {
			mark(t);
			s->got++;
		}
		/* What a worker does before a step when others idle. */
		if (i % 16 == 0 && w->stack_n)
			lq_spill(w);
	}
	while ((t = lq_pop(w)) || (t = lq_pop_lifo(w)) ||
	       (t = lq_pop_stack(w))) {
		mark(t);
		s->got++;
	}
	atomic_store(s->owner_done, 1);
	return NULL;
}

static void *thief_main(void *p)
{
	struct stress *s = p;
	struct worker *th = s->thief;
	struct myriad_task *t;
	int done;

	do {
		done = atomic_load(s->owner_done);
		t = lq_steal_half(th, s->owner);
		if (!t)
			t = lq_steal_lifo(s->owner);
		if (!t)
			t = inject_pop(&s->rt->inject);
		if (t) {
			mark(t);
			s->got++;
		}
		while ((t = lq_pop(th))) {
			mark(t);
			s->got++;
		}
		if (!t)
			cpu_relax();
	} while (!done || lq_len(s->owner));
	return NULL;
}

static void test_stress(unsigned nthieves, size_t n)
{
	struct myriad_rt *rt = fake_rt(1 + nthieves);
	struct stress *s = calloc(1 + nthieves, sizeof(*s));
	pthread_t *th = calloc(1 + nthieves, sizeof(*th));
	_Atomic int owner_done = 0;
	size_t got = 0;
	unsigned i;

	t_phase("stress: owner and thieves");
	REQUIRE(s && th && n <= ntasks, "alloc");
	reset_seen();
	for (i = 0; i <= nthieves; i++) {
		s[i].rt = rt;
		s[i].owner = &rt->workers[0];
		s[i].thief = &rt->workers[i];
		s[i].owner_done = &owner_done;
		s[i].n = n;
	}
	pthread_create(&th[0], NULL, owner_main, &s[0]);
	for (i = 1; i <= nthieves; i++)
		pthread_create(&th[i], NULL, thief_main, &s[i]);
	for (i = 0; i <= nthieves; i++) {
		pthread_join(th[i], NULL);
		got += s[i].got;
	}
	got += drain(rt, &rt->workers[0]);
	for (i = 1; i <= nthieves; i++)
		got += drain(rt, &rt->workers[i]);
	CHECK_EQ(got, n);
	check_all_seen(n, "owner/thieves stress");
	for (i = 0; i <= nthieves; i++)
		CHECK(lq_ring_valid(&rt->workers[i].ring, rt->workers[i].buf),
		      "worker %u ring valid after the stress", i);
	CHECK(lq_ring_valid(&rt->inject.ring, rt->inject.buf),
	      "inject ring valid");
	free(s);
	free(th);
	fake_rt_free(rt);
}

struct istress {
	struct inject *q;
	size_t from, to;      /* producer: the range it pushes */
	_Atomic size_t *left; /* consumers stop when 0 */
	size_t got;
};

static void *iproducer(void *p)
{
	struct istress *s = p;
	size_t i;

	for (i = s->from; i < s->to; i++)
		inject_push(s->q, &tasks[i]);
	return NULL;
}

static void *iconsumer(void *p)
{
	struct istress *s = p;
	struct myriad_task *t;

	while (atomic_load(s->left)) {
		t = inject_pop(s->q);
		if (!t) {
			cpu_relax();
			continue;
		}
		mark(t);
		s->got++;
		atomic_fetch_sub(s->left, 1);
	}
	return NULL;
}

static void test_inject_stress(unsigned k, size_t n)
{
	struct myriad_rt *rt = fake_rt(1);
	struct istress *s = calloc(2 * k, sizeof(*s));
	pthread_t *th = calloc(2 * k, sizeof(*th));
	_Atomic size_t left = n;
	size_t got = 0;
	unsigned i;

	t_phase("stress: inject producers and consumers");
	REQUIRE(s && th && n <= ntasks, "alloc");
	reset_seen();
	for (i = 0; i < 2 * k; i++) {
		s[i].q = &rt->inject;
		s[i].left = &left;
		s[i].from = n * (i % k) / k;
		s[i].to = n * (i % k + 1) / k;
	}
	for (i = 0; i < k; i++)
		pthread_create(&th[i], NULL, iproducer, &s[i]);
	for (i = k; i < 2 * k; i++)
		pthread_create(&th[i], NULL, iconsumer, &s[i]);
	for (i = 0; i < 2 * k; i++)
		pthread_join(th[i], NULL);
	for (i = k; i < 2 * k; i++)
		got += s[i].got;
	CHECK_EQ(got, n);
	CHECK(inject_empty(&rt->inject), "inject empty at the end");
	check_all_seen(n, "inject stress");
	free(s);
	free(th);
	fake_rt_free(rt);
}

int main(int argc, char **argv)
{
	unsigned thieves = 3;
	size_t n = 0;
	int i;

	t_name = "queue";
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--thieves") && i + 1 < argc)
			thieves = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = strtoul(argv[++i], NULL, 10);
		else
			REQUIRE(0, "unknown argument '%s'", argv[i]);
	}
	if (!n)
		n = (size_t)t_scaled(2000000);
	if (thieves < 1)
		thieves = 1;
	ntasks = n;
	if (ntasks < 2 * (size_t)IC + 8 * C + 4 * MYRIAD_STACK_CAP)
		ntasks = 2 * (size_t)IC + 8 * C + 4 * MYRIAD_STACK_CAP;
	tasks = aligned_alloc(CACHELINE, ntasks * sizeof(*tasks));
	seen = calloc(ntasks, sizeof(*seen));
	REQUIRE(tasks && seen, "alloc %zu tasks", ntasks);
	memset(tasks, 0, ntasks * sizeof(*tasks));
	t_watchdog(50);

	printf("queue: lq_cap %d inject_cap %d lifo_max %d stack_cap %d, %zu "
	       "tasks, %u thieves\n",
	       C, IC, MYRIAD_LIFO_MAX, MYRIAD_STACK_CAP, n, thieves);
	test_wraparound();
	test_overflow();
	test_steal_half();
	test_lifo();
	test_stack();
	test_validate();
	test_stress(thieves, n);
	test_inject_stress(thieves, n);
	free(tasks);
	free(seen);
	return t_result();
}
