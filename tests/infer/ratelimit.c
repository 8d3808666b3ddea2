/* SPDX-License-Identifier: MIT */
/*
 * tests/infer/ratelimit.c: the x-ratelimit-reset-* durations as the API
 * writes them ("6m0s", "1s", "20ms", "1h2m3.5s"), parsed strictly
 * (infer/budget.c's rl_duration, linked from the static library): every
 * malformed one is refused.
 */
#include "helpers.h"

int64_t rl_duration(const char *s, size_t n);

static void ok(const char *s, int64_t want)
{
	int64_t got = rl_duration(s, strlen(s));

	CHECK(got == want, "'%s': %" PRId64 " ns, expected %" PRId64, s, got,
	      want);
}

static void bad(const char *s)
{
	int64_t got = rl_duration(s, strlen(s));

	CHECK(got == -1, "'%s' accepted as %" PRId64 " ns", s, got);
}

int main(void)
{
	t_name = "infer/ratelimit";
	ok("6m0s", 360000000000);
	ok("1s", 1000000000);
	ok("20ms", 20000000);
	ok("1h2m3.5s", 3723500000000);
	ok("0s", 0);
	ok("0.5s", 500000000);
	ok("2m59.56s", 179560000000);
	ok("150us", 150000);
	ok("150\xc2\xb5s", 150000);
	ok("7ns", 7);
	ok("1s\r\n", 1000000000); /* as a header line ends */
	bad("");
	bad("1");
	bad("s");
	bad("soon");
	bad("1x");
	bad("-1s");
	bad("1 s");
	bad("1s2");
	bad(".s");
	bad("1.5");
	bad("2024-01-01T00:00:00Z");
	bad("99999999999h");
	return t_result();
}
