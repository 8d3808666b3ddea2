/* SPDX-License-Identifier: MIT */
/*
 * infer/mem.h: the inference layer's allocator shims: libcurl's memory and
 * the client's own buffers from jemalloc (malloc under the sanitizers).
 */
#ifndef MYRIAD_INFER_MEM_H
#define MYRIAD_INFER_MEM_H

#include <stdlib.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

/*
 * libcurl's memory from jemalloc (its thread caches and per-thread arenas),
 * not glibc malloc: a transfer makes dozens of allocations, some of them
 * large (the 16 KiB receive buffer), made on one worker and freed on
 * another; under glibc each large one consolidated the fastbins and the
 * cross-thread frees met on arena locks (agents: about a tenth of the
 * client's CPU). curl_global_init_mem() takes effect only for the first
 * initialisation in the process: an application that initialised libcurl
 * before keeps its own functions, consistently. Sanitizer builds keep
 * malloc so that ASan sees libcurl's leaks.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CURL_JEMALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CURL_JEMALLOC 0
#endif
#endif
#ifndef CURL_JEMALLOC
#define CURL_JEMALLOC 1
#endif

/*
 * The client's own buffers (calls, bodies, responses) come from the same
 * place: mem_*() below.
 */
#if CURL_JEMALLOC
static inline void *cm_malloc(size_t n)
{
	return mallocx(n ? n : 1, 0);
}

static inline void cm_free(void *ptr)
{
	if (ptr)
		dallocx(ptr, 0);
}

static inline void *cm_realloc(void *ptr, size_t n)
{
	if (!ptr)
		return cm_malloc(n);
	if (!n) {
		dallocx(ptr, 0);
		return NULL;
	}
	return rallocx(ptr, n, 0);
}

static inline char *cm_strdup(const char *str)
{
	size_t n = strlen(str) + 1;
	char *d = mallocx(n, 0);

	if (d)
		memcpy(d, str, n);
	return d;
}

static inline void *cm_calloc(size_t nmemb, size_t size)
{
	size_t n;

	if (__builtin_mul_overflow(nmemb, size, &n))
		return NULL;
	return mallocx(n ? n : 1, MALLOCX_ZERO);
}
#define mem_alloc(n) cm_malloc(n)
#define mem_zalloc(n) cm_calloc(1, (n))
#define mem_realloc(p, n) cm_realloc((p), (n))
#define mem_free(p) cm_free(p)
#else
#define mem_alloc(n) malloc(n)
#define mem_zalloc(n) calloc(1, (n))
#define mem_realloc(p, n) realloc((p), (n))
#define mem_free(p) free(p)
#endif

#endif
