/* SPDX-License-Identifier: MIT */
/*
 * sched/spin.h: a small test-and-test-and-set lock on C11 atomics for the
 * short critical sections of the inject overflow, idle list and channels.
 */
#ifndef MYRIAD_SPIN_H
#define MYRIAD_SPIN_H

#include <sched.h>
#include <stdatomic.h>

struct spin {
	_Atomic int v;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/*
 * C11 atomics rather than ck_spinlock, so that ThreadSanitizer sees the
 * acquire/release edges. Holders may be preempted (2-core machines are
 * common here), so a waiter yields the CPU after a short spin.
 */
static inline void spin_lock(struct spin *s)
{
	for (;;) {
		unsigned n = 0;

		if (!atomic_exchange_explicit(&s->v, 1, memory_order_acquire))
			return;
		while (atomic_load_explicit(&s->v, memory_order_relaxed)) {
			if (++n < 128)
				cpu_relax();
			else
				sched_yield();
		}
	}
}

static inline void spin_unlock(struct spin *s)
{
	atomic_store_explicit(&s->v, 0, memory_order_release);
}

#endif
