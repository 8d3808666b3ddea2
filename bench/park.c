/* SPDX-License-Identifier: MIT */
/*
 * bench/park.c: the park workload: N tasks each sleep S ms on a timer, all
 * alive at once; it measures memory a task, and how late the wake-ups are.
 */
#include "bench.h"

/*
 * Per worker, on their own cache lines: ten million wake-ups must not
 * queue on one shared counter (the runtime's figure, not the benchmark's).
 */
struct park_shard {
	_Atomic int64_t finished, late_max_ns;
} __attribute__((aligned(64)));

static struct park_shard *shards;
static unsigned nshards;
static _Atomic int64_t alive_max;
static uint64_t park_ns;

/* The whole state is the timer: 64 + 32 bytes a task. */
static int park_step(myriad_task_t *self, void *p)
{
	myriad_timer_t *tm = p;
	struct park_shard *sh;
	int64_t late;
	int rc;

	rc = myriad_sleep(self, tm, park_ns);
	if (rc == -EAGAIN)
		return MYRIAD_PENDING;
	late = (int64_t)(myriad_now_ns() - myriad_timer_deadline(tm));
	/* Only this worker writes its shard: no read-modify-write. */
	sh = &shards[(unsigned)myriad_current_worker() % nshards];
	if (late > atomic_load_explicit(&sh->late_max_ns, memory_order_relaxed))
		atomic_store_explicit(&sh->late_max_ns, late,
				      memory_order_relaxed);
	atomic_store_explicit(
		&sh->finished,
		atomic_load_explicit(&sh->finished, memory_order_relaxed) + 1,
		memory_order_relaxed);
	count_down();
	return MYRIAD_DONE;
}

static int64_t park_late_ns(void)
{
	int64_t m = 0;
	unsigned k;

	for (k = 0; k < nshards; k++)
		if (atomic_load(&shards[k].late_max_ns) > m)
			m = atomic_load(&shards[k].late_max_ns);
	return m;
}

/* Alive now: spawned so far minus those finished. */
static void park_note_alive(int64_t spawned)
{
	int64_t a = spawned;
	unsigned k;

	for (k = 0; k < nshards; k++)
		a -= atomic_load(&shards[k].finished);
	if (a > atomic_load(&alive_max))
		atomic_store(&alive_max, a);
}

static int park_root(myriad_task_t *self, void *p)
{
	struct root *st = p;

	MYRIAD_BEGIN(st);
	B.root = myriad_task_waker(self);
	clock_gettime(CLOCK_MONOTONIC, &B.t0);
	for (st->i = 0; st->i < B.n && !B.failed; st->i++) {
		spawn(self, park_step, NULL, sizeof(myriad_timer_t),
		      MYRIAD_SPAWN_DETACHED);
		if ((st->i & 1023) == 1023) {
			park_note_alive(st->i + 1);
			MYRIAD_YIELD(st);
		}
	}
	park_note_alive(B.n);
	clock_gettime(CLOCK_MONOTONIC, &B.t_spawned);
	MYRIAD_WAIT_UNTIL(st, run_over());
	MYRIAD_END(st);
}

/* --n N (1,000,000) --sleep-ms S (20,000) */
static int64_t park_parse(const struct bench_args *a)
{
	if (a->tasks >= 0 || a->yields >= 0 || a->pairs >= 0 || a->rounds >= 0)
		usage("park takes --n and --sleep-ms");
	B.n = a->n >= 0 ? a->n : 1000000;
	if (B.n < 1)
		usage("--n must be at least 1");
	park_ns = (uint64_t)(a->sleep_ms >= 0 ? a->sleep_ms : 20000) * 1000000u;
	return B.n;
}

static int park_setup(myriad_rt_t *rt)
{
	nshards = (unsigned)myriad_rt_workers(rt);
	shards = aligned_alloc(64, sizeof(*shards) * nshards);
	if (!shards)
		return 1;
	memset(shards, 0, sizeof(*shards) * nshards);
	return 0;
}

static int park_run(myriad_rt_t *rt, int64_t *tasks)
{
	return run_root(rt, park_root);
}

static void park_result(double w, int64_t tasks)
{
	struct rusage ru;
	int64_t am = atomic_load(&alive_max);

	getrusage(RUSAGE_SELF, &ru);
	printf(" alive_max=%lld bytes_per_task=%.1f spawn_s=%.6f"
	       " late_ms=%.3f minflt=%ld",
	       (long long)am,
	       am ? (status_kb("VmHWM:") - B.rss_before) * 1024.0 / am : 0.0,
	       now_s(&B.t_spawned) - now_s(&B.t0), park_late_ns() / 1e6,
	       ru.ru_minflt);
}

const struct workload wl_park = {
	.name = "park",
	.usage = "park --n N --sleep-ms S",
	.usage_cont = true,
	.parse = park_parse,
	.setup = park_setup,
	.run = park_run,
	.result = park_result,
};
