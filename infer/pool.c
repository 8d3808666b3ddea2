/* SPDX-License-Identifier: MIT */
/*
 * infer/pool.c: the public pool: libcurl's one-time setup, creating the
 * pool and its driver tasks, adding endpoints, destroying it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "infer/internal.h"

#define MYRIAD_STR_(x) #x
#define MYRIAD_STR(x) MYRIAD_STR_(x)

/* curl_global_init is not thread-safe in this libcurl: once. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
#if CURL_JEMALLOC
	curl_init_rc =
		curl_global_init_mem(CURL_GLOBAL_DEFAULT, cm_malloc, cm_free,
				     cm_realloc, cm_strdup, cm_calloc);
#else
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
}

myriad_infer_t *myriad_infer_create(myriad_rt_t *rt,
				    const struct myriad_infer_opts *opts,
				    int *err)
{
	struct myriad_infer *p = NULL;
	unsigned i;
	int r = 0;

	if (!rt || (opts && opts->sz < sizeof(size_t))) {
		r = -EINVAL;
		goto out;
	}
	if (cur_worker()) {
		r = -EDEADLK;
		goto out;
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		r = -EIO;
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		r = -ENOMEM;
		goto out;
	}
	p->rt = rt;
	if (opts)
		memcpy(&p->o, opts,
		       opts->sz < sizeof(p->o) ? opts->sz : sizeof(p->o));
	p->o.sz = sizeof(p->o);
	if (!p->o.connect_timeout_ns)
		p->o.connect_timeout_ns = 10000000000ull;
	if (!p->o.timeout_ns)
		p->o.timeout_ns = 300000000000ull;
	if (!p->o.max_retries)
		p->o.max_retries = 4;
	if (!p->o.backoff_base_ns)
		p->o.backoff_base_ns = 100000000ull;
	if (!p->o.backoff_max_ns)
		p->o.backoff_max_ns = 10000000000ull;
	if (!p->o.max_response)
		p->o.max_response = 8u << 20;
	if (!p->o.cooldown_jitter_ns)
		p->o.cooldown_jitter_ns = 100000000ull;
	if (!p->o.batch_promote_ns)
		p->o.batch_promote_ns = 30000000000ull;
	if (p->o.retry_ratio == 0)
		p->o.retry_ratio = 0.1;
	if (!p->o.retry_reserve)
		p->o.retry_reserve = 100;
	if (!p->o.retry_window_ns)
		p->o.retry_window_ns = 10000000000ull;
	p->ndrv = p->o.drivers ? p->o.drivers : (unsigned)myriad_rt_workers(rt);
	if (p->ndrv > 64)
		p->ndrv = 64;
	pthread_mutex_init(&p->lock, NULL);
	p->eps_cap = 64;
	p->eps = calloc(p->eps_cap, sizeof(*p->eps));
	p->drv = calloc(p->ndrv, sizeof(*p->drv));
	if (!p->eps || !p->drv || !q_key(p, "")) {
		r = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < p->ndrv; i++) {
		r = driver_init(p, i);
		if (r < 0)
			goto fail;
	}
	for (i = 0; i < p->ndrv; i++) {
		struct driver *d = &p->drv[i];

		r = myriad_rt_spawn(rt, driver_step, &d, sizeof(d), &d->handle);
		if (r < 0)
			goto fail_spawned;
		d->waker.rt = rt;
		d->waker.task = d->handle;
	}
	if (err)
		*err = 0;
	return p;

fail_spawned:
	while (i-- > 0) {
		atomic_store(&p->drv[i].stop, true);
		myriad_waker_wake(p->drv[i].waker);
		myriad_handle_join(p->drv[i].handle, NULL, -1);
		myriad_handle_release(p->drv[i].handle);
	}
fail:
	if (p->drv)
		for (i = 0; i < p->ndrv; i++)
			if (p->drv[i].multi)
				curl_multi_cleanup(p->drv[i].multi);
	free(p->drv);
	free(p->eps);
	q_fini(p);
	pthread_mutex_destroy(&p->lock);
	free(p);
	p = NULL;
out:
	if (err)
		*err = r;
	return r ? NULL : p;
}

/* A field of 'ep' the caller's struct has (an older caller's is shorter). */
#define EP_HAS(ep, f)                                            \
	((ep)->sz >= offsetof(struct myriad_infer_endpoint, f) + \
			     sizeof((ep)->f) &&                  \
	 (ep)->f)

/* A header value or line a request can carry: no CR or LF. */
static bool header_ok(const char *s)
{
	return !strpbrk(s, "\r\n");
}

/* The name of header line 'h' matches 'name' ("Name:" prefix). */
static bool header_is(const char *h, const char *name)
{
	size_t n = strlen(name);

	return !strncasecmp(h, name, n) && h[n] == ':';
}

/* 'name' is set by one of the endpoint's own headers. */
static bool overridden(const struct myriad_infer_endpoint *ep, const char *name)
{
	const char *const *h;

	if (!EP_HAS(ep, headers))
		return false;
	for (h = ep->headers; *h; h++)
		if (header_is(*h, name))
			return true;
	return false;
}

/* Append "Name: value" unless the endpoint's headers set 'name'. */
static int add_header(struct curl_slist **l,
		      const struct myriad_infer_endpoint *ep, const char *name,
		      const char *value)
{
	struct curl_slist *n;
	char *line;

	if (overridden(ep, name))
		return 0;
	if (asprintf(&line, "%s: %s", name, value) < 0)
		return -ENOMEM;
	n = curl_slist_append(*l, line);
	free(line);
	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

/* The request headers of endpoint 'ep' with API key 'key' (or NULL). */
static int build_headers(struct endpoint *e,
			 const struct myriad_infer_endpoint *ep,
			 const char *key)
{
	static const char ua[] = "myriad/" MYRIAD_STR(
		MYRIAD_VERSION_MAJOR) "." MYRIAD_STR(MYRIAD_VERSION_MINOR);
	const char *const *h;
	char *bearer = NULL;
	int r = 0;

	e->hdrs = NULL;
	r |= add_header(&e->hdrs, ep, "Content-Type", "application/json");
	r |= add_header(&e->hdrs, ep, "User-Agent", ua);
	if (key && EP_HAS(ep, azure_api_version)) {
		r |= add_header(&e->hdrs, ep, "api-key", key);
	} else if (key) {
		if (asprintf(&bearer, "Bearer %s", key) < 0)
			return -ENOMEM;
		r |= add_header(&e->hdrs, ep, "Authorization", bearer);
		free(bearer);
	}
	if (EP_HAS(ep, organization))
		r |= add_header(&e->hdrs, ep, "OpenAI-Organization",
				ep->organization);
	if (EP_HAS(ep, project))
		r |= add_header(&e->hdrs, ep, "OpenAI-Project", ep->project);
	for (h = EP_HAS(ep, headers) ? ep->headers : NULL; h && *h; h++) {
		struct curl_slist *n = curl_slist_append(e->hdrs, *h);

		if (!n)
			return -ENOMEM;
		e->hdrs = n;
	}
	/* No "Expect: 100-continue" wait before a large body. */
	if (!r && !overridden(ep, "Expect")) {
		struct curl_slist *n = curl_slist_append(e->hdrs, "Expect:");

		if (!n)
			return -ENOMEM;
		e->hdrs = n;
	}
	return r ? -ENOMEM : 0;
}

/* Whatever of the endpoint's input cannot go into a request. */
static bool endpoint_bad(const struct myriad_infer_endpoint *ep)
{
	const char *const *h;
	const char *v;

	if (EP_HAS(ep, organization) && !header_ok(ep->organization))
		return true;
	if (EP_HAS(ep, project) && !header_ok(ep->project))
		return true;
	if (EP_HAS(ep, azure_api_version)) {
		for (v = ep->azure_api_version; *v; v++)
			if (!isalnum((unsigned char)*v) && !strchr("-._", *v))
				return true;
		if (!*ep->azure_api_version)
			return true;
	}
	for (h = EP_HAS(ep, headers) ? ep->headers : NULL; h && *h; h++) {
		const char *colon = strchr(*h, ':');

		if (!colon || colon == *h || !header_ok(*h))
			return true;
		for (v = *h; v < colon; v++)
			if (!isgraph((unsigned char)*v))
				return true; /* a name is a token */
	}
	return false;
}

int myriad_infer_add(myriad_infer_t *p, const struct myriad_infer_endpoint *ep)
{
	struct endpoint *e;
	const char *key = NULL, *q = "", *ver = "";
	size_t n, host, cap;
	bool v1;
	int idx;

	if (!p || !ep ||
	    ep->sz < offsetof(struct myriad_infer_endpoint, window) +
			     sizeof(ep->window) ||
	    !ep->base_url || !ep->model || ep->window > 65535 ||
	    (strncmp(ep->base_url, "http://", 7) &&
	     strncmp(ep->base_url, "https://", 8)) ||
	    endpoint_bad(ep))
		return -EINVAL;
	/*
	 * The base URL as the OpenAI SDKs take it: its path is the API's
	 * root, to which /chat/completions and /embeddings are added
	 * ("https://api.openai.com/v1", "http://host/openai/v1"). A bare
	 * "scheme://host[:port]" has no path: the root is /v1 then.
	 */
	host = strncmp(ep->base_url, "https://", 8) ? 7 : 8;
	n = strlen(ep->base_url);
	while (n > host && ep->base_url[n - 1] == '/')
		n--;
	if (n == host || n > 4096 || memchr(ep->base_url, '?', n) ||
	    !header_ok(ep->base_url))
		return -EINVAL; /* no host, a query, no URL anyone serves */
	v1 = !memchr(ep->base_url + host, '/', n - host);
	if (ep->api_key_env) {
		key = getenv(ep->api_key_env);
		if (!key)
			return -ENOKEY;
		if (!header_ok(key))
			return -EINVAL;
	}
	if (EP_HAS(ep, azure_api_version)) {
		q = "?api-version=";
		ver = ep->azure_api_version;
	}
	cap = n + 32 + strlen(q) + strlen(ver);
	pthread_mutex_lock(&p->lock);
	idx = (int)atomic_load(&p->neps);
	if ((unsigned)idx == p->eps_cap) {
		pthread_mutex_unlock(&p->lock);
		return -ENOSPC;
	}
	e = &p->eps[idx];
	e->chat_url = malloc(cap);
	e->embed_url = malloc(cap);
	e->model = strdup(ep->model);
	if (!e->chat_url || !e->embed_url || !e->model ||
	    build_headers(e, ep, key) < 0) {
		free(e->chat_url);
		free(e->embed_url);
		free(e->model);
		curl_slist_free_all(e->hdrs);
		memset(e, 0, sizeof(*e));
		pthread_mutex_unlock(&p->lock);
		return -ENOMEM;
	}
	snprintf(e->chat_url, cap, "%.*s%s/chat/completions%s%s", (int)n,
		 ep->base_url, v1 ? "/v1" : "", q, ver);
	snprintf(e->embed_url, cap, "%.*s%s/embeddings%s%s", (int)n,
		 ep->base_url, v1 ? "/v1" : "", q, ver);
	e->window = ep->window ? ep->window : 64;
	budget_init(
		e, EP_HAS(ep, rpm) ? ep->rpm : 0, EP_HAS(ep, tpm) ? ep->tpm : 0,
		EP_HAS(ep, default_max_tokens) ? ep->default_max_tokens : 0);
	atomic_init(&e->inflight, 0);
	atomic_init(&e->cool_until_ns, 0);
	atomic_store_explicit(&p->neps, (unsigned)idx + 1,
			      memory_order_release);
	pthread_mutex_unlock(&p->lock);
	/* Calls that waited for an endpoint may go now. */
	for (n = 0; n < p->ndrv; n++)
		myriad_waker_wake(p->drv[n].waker);
	return idx;
}

int myriad_infer_destroy(myriad_infer_t *p)
{
	unsigned i;

	if (!p)
		return -EINVAL;
	if (cur_worker())
		return -EDEADLK;
	for (i = 0; i < p->ndrv; i++) {
		atomic_store(&p->drv[i].stop, true);
		myriad_waker_wake(p->drv[i].waker);
	}
	for (i = 0; i < p->ndrv; i++) {
		/* A stopped runtime returns -ESHUTDOWN: nothing runs then. */
		myriad_handle_join(p->drv[i].handle, NULL, -1);
		myriad_handle_release(p->drv[i].handle);
		driver_fini(&p->drv[i]);
	}
	for (i = 0; i < atomic_load(&p->neps); i++) {
		free(p->eps[i].chat_url);
		free(p->eps[i].embed_url);
		free(p->eps[i].model);
		curl_slist_free_all(p->eps[i].hdrs);
	}
	free(p->eps);
	free(p->drv);
	q_fini(p);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return 0;
}
