/* SPDX-License-Identifier: MIT */
/*
 * tests/bpf/migrate.c: moving a registered thread between two CPUs by
 * changing its affinity counts migrations and updates its CPU; pinned to
 * one CPU it does not migrate. --source bpf (root) or proc.
 */
#include "bpf_test.h"

#define MOVES 10

/* Mostly busy, sometimes asleep: it is moved both running and sleeping. */
static void busy_sleepy(struct t_thread *t)
{
	while (!atomic_load(&t->stop)) {
		t_burn_ms(2);
		t_sleep_ms(1);
	}
}

int main(int argc, char **argv)
{
	struct t_thread w = { .cpu = -1, .fn = busy_sleepy };
	struct worker_signals a, b, d;
	const char *source;
	struct signals *s;
	int cpu[2], i, n, ok_cpu = 0;
	pid_t tid;

	t_name = "bpf/migrate";
	source = t_parse_source(argc, argv);
	t_watchdog(25);
	n = t_cpus(&cpu[0], &cpu[1]);
	if (n < 2)
		t_skip("needs two usable CPUs to move a thread between");

	w.cpu = cpu[0];
	t_thread_start(&w);
	tid = w.tid;
	s = t_open_source(source, &tid, 1, 0);
	atomic_store(&w.go, 1);

	/*
	 * Pinned to one CPU (before it was registered): no migration. Its
	 * CPU is known once it ran since the registration.
	 */
	t_phase("pinned");
	t_snap(s, 0, &a);
	REQUIRE(t_ran_since(s, 0, &a, &a), "the thread never ran");
	t_sleep_ms(200);
	t_snap(s, 0, &b);
	t_delta(&d, &a, &b);
	t_print("pinned 200 ms", &d);
	CHECK_EQ(d.migrations, 0);
	CHECK_EQ(d.cpu, cpu[0]);

	/*
	 * Moved MOVES times, each time to the other CPU: once it ran after a
	 * pin it is on the new CPU, and got there by a migration; pinned in
	 * between, it has no other way to move.
	 */
	t_phase("moves");
	a = b;
	for (i = 1; i <= MOVES; i++) {
		struct worker_signals p;
		int to = cpu[i & 1];

		CHECK_EQ(t_pin(tid, to), 0);
		t_snap(s, 0, &p);
		if (!t_ran_since(s, 0, &p, &b)) {
			t_failf(__FILE__, __LINE__,
				"move %d: the thread did not run again", i);
			break;
		}
		if (b.cpu == to)
			ok_cpu++;
		else
			printf("move %d: ran on CPU %d, pinned to %d\n", i,
			       b.cpu, to);
	}
	t_delta(&d, &a, &b);
	t_print("moved 10 times", &d);
	CHECK(d.migrations >= MOVES && d.migrations <= MOVES * 3,
	      "migrations %" PRIu64 " for %d moves", d.migrations, MOVES);
	CHECK_EQ(ok_cpu, MOVES);

	/* Unpinned and running: whatever it does, the count never drops. */
	CHECK_EQ(t_unpin(tid), 0);
	t_snap(s, 0, &a);
	t_ran_since(s, 0, &a, &a);
	CHECK(a.migrations >= b.migrations, "%" PRIu64 " < %" PRIu64,
	      a.migrations, b.migrations);

	t_thread_join(&w);
	signals_close(s);
	return t_result();
}
