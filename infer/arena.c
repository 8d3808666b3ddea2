/* SPDX-License-Identifier: MIT */
/*
 * infer/arena.c: the memory a call's result lives in: its choice and tool
 * call arrays, vectors and copied strings, freed at once on release.
 */
#include <string.h>

#include "infer/internal.h"

struct arena_blk {
	struct arena_blk *next;
	max_align_t data[];
};

#define ARENA_BLK 4096

void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_blk *b;
	size_t sz;
	void *r;

	n = (n + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
	if (!n)
		n = _Alignof(max_align_t);
	if (n > a->left) {
		sz = n > ARENA_BLK / 2 ? n : ARENA_BLK;
		b = mem_alloc(sizeof(*b) + sz);
		if (!b)
			return NULL;
		if (sz == n && a->head) {
			/* A big one on its own, behind the current block. */
			b->next = a->head->next;
			a->head->next = b;
			return b->data;
		}
		b->next = a->head;
		a->head = b;
		a->p = (char *)b->data;
		a->left = sz;
	}
	r = a->p;
	a->p += n;
	a->left -= n;
	return r;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *r = arena_alloc(a, n + 1);

	if (r) {
		memcpy(r, s, n);
		r[n] = 0;
	}
	return r;
}

void arena_free(struct arena *a)
{
	struct arena_blk *b, *n;

	for (b = a->head; b; b = n) {
		n = b->next;
		mem_free(b);
	}
	a->head = NULL;
	a->p = NULL;
	a->left = 0;
}
