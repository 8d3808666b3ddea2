/* SPDX-License-Identifier: MIT */
/*
 * policy/default.c: the default placement policy: a random steal victim,
 * new tasks on the spawning worker, every worker active.
 */
#include <myriad/policy.h>

#include "base/random.h"

/*
 * Victims in a random rotation: attempt 0 picks a random other worker, the
 * next attempts walk on from there, so a search visits each other worker
 * once and two searchers rarely start at the same victim.
 */
static int default_steal_victim(void *ctx, unsigned self, unsigned attempt,
				uint64_t *rng)
{
	unsigned n = (unsigned)(uintptr_t)ctx;
	unsigned start, v;

	if (n < 2 || attempt + 1 >= n)
		return -1;
	if (attempt == 0) {
		rng_next(rng);
		*rng |= 1;
	}
	start = (unsigned)((*rng >> 33) % (n - 1));
	v = (self + 1 + (start + attempt) % (n - 1)) % n;
	return (int)v;
}

static int default_init(void **ctx, const struct myriad_policy_env *env)
{
	*ctx = (void *)(uintptr_t)env->workers;
	return 0;
}

const struct myriad_policy_ops myriad_policy_default = {
	.sz = sizeof(struct myriad_policy_ops),
	.name = "default",
	.init = default_init,
	.steal_victim = default_steal_victim,
	.spawn_place = NULL,
	.active_workers = NULL,
};
