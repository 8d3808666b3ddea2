/* SPDX-License-Identifier: MIT */
/*
 * sched/futex.h: futex wait and wake on a 32-bit word, for the few places
 * where an outside thread blocks (joining a handle).
 */
#ifndef MYRIAD_FUTEX_H
#define MYRIAD_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Returns 0 when woken (or the word changed), -ETIMEDOUT, -EINTR. */
static inline int myriad_futex_wait(_Atomic uint32_t *word, uint32_t expect,
				    const struct timespec *rel)
{
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE,
			 expect, rel, NULL, 0);

	if (r == 0)
		return 0;
	if (errno == EAGAIN)
		return 0;
	return -errno;
}

static inline void myriad_futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
		NULL, 0);
}

#endif
