/* SPDX-License-Identifier: MIT */
/*
 * tests/trace/trace_test.h: what the myriad-trace tests share: their
 * "--name value" arguments (the tool's, the target's paths, ...).
 */
#ifndef MYRIAD_TRACE_TEST_H
#define MYRIAD_TRACE_TEST_H

#include <string.h>

/* The value after 'name' in argv, else 'dflt'. */
static inline const char *arg(int argc, char **argv, const char *name,
			      const char *dflt)
{
	int i;

	for (i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return dflt;
}

#endif
