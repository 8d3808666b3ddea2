/* SPDX-License-Identifier: MIT */
/*
 * tests/bpf/symbol.c: myriad_symbol_name() names code addresses: a public
 * function of libmyriad at its start and inside it, a static function of
 * this executable (no dynamic symbol: the object and the offset), and
 * addresses no object holds; truncation and bad arguments.
 */
#include <regex.h>

#include "helpers.h"

__attribute__((noinline)) static int not_exported(int x)
{
	return x * 3 + 1;
}

static void like(const char *got, const char *pattern)
{
	regex_t re;

	REQUIRE(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) == 0,
		"regcomp %s", pattern);
	CHECK(regexec(&re, got, 0, NULL, 0) == 0, "got '%s', want /%s/", got,
	      pattern);
	regfree(&re);
}

int main(void)
{
	/* A public function longer than 0x10 bytes (not a tail call). */
	const char *start = (const char *)(uintptr_t)myriad_rt_spawn;
	char buf[256], small[8];
	static int data;
	void *heap;
	int r;

	t_name = "bpf/symbol";
	r = myriad_symbol_name(start, buf, sizeof(buf));
	printf("myriad_rt_spawn: %s (%d)\n", buf, r);
	CHECK_EQ(r, 0);
	CHECK(!strcmp(buf, "myriad_rt_spawn (libmyriad.so.0)"),
	      "got '%s', want 'myriad_rt_spawn (libmyriad.so.0)'", buf);

	r = myriad_symbol_name(start + 0x10, buf, sizeof(buf));
	printf("myriad_rt_spawn + 0x10: %s (%d)\n", buf, r);
	CHECK_EQ(r, 0);
	CHECK(!strcmp(buf, "myriad_rt_spawn+0x10 (libmyriad.so.0)"),
	      "got '%s', want 'myriad_rt_spawn+0x10 (libmyriad.so.0)'", buf);

	/* A static function: only the executable's name and an offset. */
	r = myriad_symbol_name((const void *)(uintptr_t)not_exported, buf,
			       sizeof(buf));
	printf("not_exported: %s (%d)\n", buf, r);
	CHECK_EQ(r, 0);
	like(buf, "^0x[0-9a-f]+ \\(test-bpf-symbol\\)$");

	/* Truncated: NUL-terminated, -ENOSPC. */
	r = myriad_symbol_name(start, small, sizeof(small));
	CHECK_EQ(r, -ENOSPC);
	CHECK(strlen(small) == sizeof(small) - 1 &&
		      !strncmp(small, "myriad_", 7),
	      "truncated to '%s'", small);

	/* No object: the heap, NULL. */
	heap = malloc(64);
	REQUIRE(heap, "malloc");
	r = myriad_symbol_name(heap, buf, sizeof(buf));
	printf("heap: %s (%d)\n", buf, r);
	CHECK_EQ(r, -ENOENT);
	like(buf, "^0x[0-9a-f]+$");
	free(heap);
	CHECK_EQ(myriad_symbol_name(NULL, buf, sizeof(buf)), -ENOENT);
	CHECK(!strcmp(buf, "0x0"), "NULL: got '%s'", buf);

	CHECK_EQ(myriad_symbol_name(&data, NULL, 16), -EINVAL);
	CHECK_EQ(myriad_symbol_name(&data, buf, 0), -EINVAL);
	CHECK_EQ(not_exported(2), 7);
	return t_result();
}
