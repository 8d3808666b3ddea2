/* SPDX-License-Identifier: MIT */
/*
 * signals/signals.c: the signals interface: picks the source (eBPF, else
 * /proc), the step words, the poll period, and the cgroup's cpu.stat; and
 * myriad_symbol_name(), to name the step functions of blocking events.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <myriad/stats.h>

#include "signals_impl.h"

ssize_t signals_pread(int fd, char *buf, size_t len)
{
	ssize_t r;

	/* seq_file and kernfs files regenerate their text on a read at 0. */
	do
		r = pread(fd, buf, len - 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	buf[r] = '\0';
	return r;
}

int signals_parse_stat(const char *buf, char *state, int *cpu)
{
	/* The name in parentheses may hold spaces and ')': after the last. */
	const char *p = strrchr(buf, ')');
	char *end;
	int field;

	if (!p || p[1] != ' ' || !p[2])
		return -EINVAL;
	p += 2;
	if (state)
		*state = *p;
	/* p is at field 3 (state); processor is field 39. */
	for (field = 3; field < 39; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EINVAL;
		p++;
	}
	if (cpu) {
		long v = strtol(p, &end, 10);

		if (end == p)
			return -EINVAL;
		*cpu = (int)v;
	}
	return 0;
}

int signals_task_stat(pid_t tid, char *state, int *cpu)
{
	char path[64], buf[1024];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = signals_pread(fd, buf, sizeof(buf));
	close(fd);
	if (r < 0)
		return (int)r;
	return signals_parse_stat(buf, state, cpu);
}

/* ---- the cgroup ---- */

/* "a,b,c" holds "cpu" as a whole word. */
static int has_controller(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && !strncmp(p, name, n))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

static int open_in(const char *dir, const char *file)
{
	char path[4600];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/*
 * Find the process's cpu.stat: v1's cpu controller first (on a hybrid
 * system the throttling lives there, the v2 file has only usage), else
 * v2 under /sys/fs/cgroup (or /sys/fs/cgroup/unified on a hybrid one).
 */
static void cgroup_find(struct signals *s)
{
	char line[4096], v1[256] = "", v1_path[4096] = "", v2[4096] = "";
	char dir[4500];
	int have_v1 = 0, have_v2 = 0;
	FILE *f = fopen("/proc/self/cgroup", "re");

	s->cg_stat_fd = s->cg_max_fd = s->cg_period_fd = -1;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2, *nl;

		if (!c1)
			continue;
		c2 = strchr(c1 + 1, ':');
		if (!c2)
			continue;
		*c2 = '\0';
		nl = strchr(c2 + 1, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, "0:", 2) && c2 == c1 + 1) {
			snprintf(v2, sizeof(v2), "%s", c2 + 1);
			have_v2 = 1;
		} else if (has_controller(c1 + 1, "cpu")) {
			/* The mount is named by the controller list. */
			snprintf(v1, sizeof(v1), "%s", c1 + 1);
			snprintf(v1_path, sizeof(v1_path), "%s", c2 + 1);
			have_v1 = 1;
		}
	}
	fclose(f);
	if (have_v1) {
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s%s", v1, v1_path);
		s->cg_stat_fd = open_in(dir, "cpu.stat");
		if (s->cg_stat_fd < 0) {
			snprintf(dir, sizeof(dir), "/sys/fs/cgroup/cpu%s",
				 v1_path);
			s->cg_stat_fd = open_in(dir, "cpu.stat");
		}
		if (s->cg_stat_fd >= 0) {
			s->cg.version = 1;
			s->cg_max_fd = open_in(dir, "cpu.cfs_quota_us");
			s->cg_period_fd = open_in(dir, "cpu.cfs_period_us");
			return;
		}
	}
	if (have_v2) {
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s", v2);
		s->cg_stat_fd = open_in(dir, "cpu.stat");
		if (s->cg_stat_fd < 0) {
			snprintf(dir, sizeof(dir), "/sys/fs/cgroup/unified%s",
				 v2);
			s->cg_stat_fd = open_in(dir, "cpu.stat");
		}
		if (s->cg_stat_fd >= 0) {
			s->cg.version = 2;
			s->cg_max_fd = open_in(dir, "cpu.max");
		}
	}
}

static uint64_t stat_field(const char *buf, const char *key, int *found)
{
	size_t n = strlen(key);
	const char *p = buf;

	while ((p = strstr(p, key))) {
		if ((p == buf || p[-1] == '\n') && p[n] == ' ') {
			*found = 1;
			return strtoull(p + n + 1, NULL, 10);
		}
		p += n;
	}
	return 0;
}

/* Under poll_lock. */
static void cgroup_refresh(struct signals *s, uint64_t now)
{
	struct cgroup_signals cg = s->cg;
	char buf[1024];
	int found = 0, f2 = 0;

	if (s->cg_stat_fd < 0 ||
	    signals_pread(s->cg_stat_fd, buf, sizeof(buf)) < 0)
		return;
	cg.nr_periods = stat_field(buf, "nr_periods", &found);
	cg.nr_throttled = stat_field(buf, "nr_throttled", &found);
	if (cg.version == 1) {
		cg.throttled_ns = stat_field(buf, "throttled_time", &found);
	} else {
		cg.throttled_ns =
			stat_field(buf, "throttled_usec", &found) * 1000;
		cg.usage_ns = stat_field(buf, "usage_usec", &f2) * 1000;
	}
	cg.quota_us = -1;
	cg.period_us = 0;
	if (s->cg_max_fd >= 0 &&
	    signals_pread(s->cg_max_fd, buf, sizeof(buf)) > 0) {
		if (cg.version == 2) {
			/* "max 100000" or "50000 100000" */
			char *sp = strchr(buf, ' ');

			if (strncmp(buf, "max", 3))
				cg.quota_us = strtoll(buf, NULL, 10);
			if (sp)
				cg.period_us = strtoull(sp + 1, NULL, 10);
		} else {
			cg.quota_us = strtoll(buf, NULL, 10);
		}
	}
	if (s->cg_period_fd >= 0 &&
	    signals_pread(s->cg_period_fd, buf, sizeof(buf)) > 0)
		cg.period_us = strtoull(buf, NULL, 10);
	cg.stamp_ns = now;
	pthread_mutex_lock(&s->cg_lock);
	s->cg = cg;
	s->cg_ok = found || f2;
	pthread_mutex_unlock(&s->cg_lock);
}

int signals_cgroup(struct signals *s, struct cgroup_signals *out)
{
	int ok;

	if (!s || !out)
		return -EINVAL;
	pthread_mutex_lock(&s->cg_lock);
	ok = s->cg_ok;
	*out = s->cg;
	pthread_mutex_unlock(&s->cg_lock);
	return ok ? 0 : -ENOENT;
}

/* ---- open and close ---- */

static void free_signals(struct signals *s)
{
	if (s->ops)
		s->ops->close(s);
	if (s->cg_stat_fd >= 0)
		close(s->cg_stat_fd);
	if (s->cg_max_fd >= 0)
		close(s->cg_max_fd);
	if (s->cg_period_fd >= 0)
		close(s->cg_period_fd);
	pthread_mutex_destroy(&s->poll_lock);
	pthread_mutex_destroy(&s->cg_lock);
	free(s->log);
	free(s->tids);
	free(s);
}

struct signals *signals_open(const pid_t *tids, unsigned n, unsigned flags,
			     int *err)
{
	const unsigned known =
		SIGNALS_FORCE_PROC | SIGNALS_REQUIRE_BPF | SIGNALS_NO_BLOCKING;
	struct signals *s;
	unsigned i;
	int r = -ENOTSUP;

	if (!n || n > SIGNALS_MAX_WORKERS || (flags & ~known) ||
	    ((flags & SIGNALS_FORCE_PROC) && (flags & SIGNALS_REQUIRE_BPF))) {
		r = -EINVAL;
		goto err;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		r = -ENOMEM;
		goto err;
	}
	s->tids = calloc(n, sizeof(*s->tids));
	if (!s->tids) {
		free(s);
		r = -ENOMEM;
		goto err;
	}
	s->n = n;
	s->flags = flags;
	s->period_ns = SIGNALS_PERIOD_NS;
	s->cg_stat_fd = s->cg_max_fd = s->cg_period_fd = -1;
	pthread_mutex_init(&s->poll_lock, NULL);
	pthread_mutex_init(&s->cg_lock, NULL);

	if (flags & SIGNALS_FORCE_PROC) {
		snprintf(s->error, sizeof(s->error),
			 "eBPF: not tried (SIGNALS_FORCE_PROC)");
	} else {
#if MYRIAD_SIGNALS_BPF
		r = signals_bpf_ops.open(s);
		if (r == 0) {
			s->ops = &signals_bpf_ops;
			s->source = SIGNALS_BPF;
			s->error[0] = '\0';
		}
#else
		snprintf(s->error, sizeof(s->error),
			 "eBPF: not built (clang, bpftool or the kernel's BTF "
			 "was missing when meson configured)");
#endif
		if (!s->ops && (flags & SIGNALS_REQUIRE_BPF))
			goto err_free;
	}
	if (!s->ops) {
		r = signals_proc_ops.open(s);
		if (r < 0)
			goto err_free;
		s->ops = &signals_proc_ops;
		s->source = SIGNALS_PROC;
	}
	for (i = 0; tids && i < n; i++) {
		if (!tids[i])
			continue;
		r = signals_register(s, i, tids[i]);
		if (r < 0)
			goto err_free;
	}
	cgroup_find(s);
	cgroup_refresh(s, clock_ns(CLOCK_MONOTONIC));
	return s;

err_free:
	free_signals(s);
err:
	if (err)
		*err = r;
	return NULL;
}

int signals_register(struct signals *s, unsigned worker, pid_t tid)
{
	int r;

	if (!s || worker >= s->n || tid <= 0)
		return -EINVAL;
	pthread_mutex_lock(&s->poll_lock);
	r = s->ops->add(s, worker, tid);
	if (r == 0)
		s->tids[worker] = tid;
	pthread_mutex_unlock(&s->poll_lock);
	return r;
}

void signals_close(struct signals *s)
{
	if (s)
		free_signals(s);
}

int signals_source(const struct signals *s)
{
	return s ? s->source : 0;
}

const char *signals_error(const struct signals *s)
{
	return s ? s->error : "no signals";
}

const char *signals_log(const struct signals *s)
{
	return s && s->log ? s->log : "";
}

void signals_set_period(struct signals *s, uint64_t period_ns)
{
	if (s)
		s->period_ns = period_ns ? period_ns : SIGNALS_PERIOD_NS;
}

/* ---- the hot paths ---- */

int signals_poll(struct signals *s, uint64_t now_ns)
{
	uint64_t last;
	int r = 0;

	if (!s)
		return -EINVAL;
	last = atomic_load_explicit(&s->last_poll_ns, memory_order_relaxed);
	if (last && now_ns - last < s->period_ns && now_ns >= last)
		return 0;
	/* One poller at a time; the others have nothing to add. */
	if (pthread_mutex_trylock(&s->poll_lock))
		return 0;
	last = atomic_load_explicit(&s->last_poll_ns, memory_order_relaxed);
	if (last && now_ns - last < s->period_ns && now_ns >= last)
		goto out;
	if (s->ops->poll)
		r = s->ops->poll(s, now_ns);
	cgroup_refresh(s, now_ns);
	atomic_store_explicit(&s->last_poll_ns, now_ns, memory_order_relaxed);
	if (r >= 0)
		r = 1;
out:
	pthread_mutex_unlock(&s->poll_lock);
	return r;
}

void signals_read(struct signals *s, unsigned worker,
		  struct worker_signals *out)
{
	if (!out)
		return;
	if (!s || worker >= s->n || !s->tids[worker]) {
		memset(out, 0, sizeof(*out));
		out->cpu = -1;
		return;
	}
	s->ops->read(s, worker, out);
}

int signals_blocks(struct signals *s, unsigned worker,
		   struct signals_block *out, unsigned n)
{
	if (!s || worker >= s->n || (!out && n))
		return -EINVAL;
	if (n > SIGNALS_BLOCK_RING)
		n = SIGNALS_BLOCK_RING;
	if (!n || !s->tids[worker])
		return 0;
	return s->ops->blocks(s, worker, out, n);
}

struct sig_step *signals_step_word(struct signals *s, unsigned worker)
{
	if (!s || worker >= s->n)
		return NULL;
	return &s->steps[worker];
}

void signals_step_begin(struct signals *s, unsigned worker, uint64_t task_id,
			const void *fn)
{
	if (s && worker < s->n)
		sig_step_begin(&s->steps[worker], task_id, fn, 0);
}

void signals_step_begin_at(struct signals *s, unsigned worker, uint64_t task_id,
			   const void *fn, uint64_t now_ns)
{
	if (s && worker < s->n)
		sig_step_begin(&s->steps[worker], task_id, fn, now_ns);
}

void signals_step_end(struct signals *s, unsigned worker)
{
	if (s && worker < s->n)
		sig_step_end(&s->steps[worker]);
}

/*
 * A code address of this process as "symbol+0xoff (object)". In this file,
 * not its own: the library takes from the myriad_signals archive only the
 * objects it references, and nothing inside the library calls this.
 */
int myriad_symbol_name(const void *addr, char *buf, size_t len)
{
	const char *obj;
	uintptr_t a = (uintptr_t)addr;
	Dl_info di;
	int n;

	if (!buf || !len)
		return -EINVAL;
	/*
	 * dladdr() sees the dynamic symbol tables only (.dynsym): a static
	 * function, or one of an executable linked without -rdynamic, has
	 * none; the object and the offset in it still say where it is.
	 */
	if (!addr || !dladdr(addr, &di) || !di.dli_fname) {
		snprintf(buf, len, "0x%" PRIxPTR, a);
		return -ENOENT;
	}
	obj = strrchr(di.dli_fname, '/');
	obj = obj ? obj + 1 : di.dli_fname;
	if (!*obj)
		obj = "?";
	if (di.dli_sname && di.dli_saddr && a >= (uintptr_t)di.dli_saddr) {
		uintptr_t off = a - (uintptr_t)di.dli_saddr;

		if (off)
			n = snprintf(buf, len, "%s+0x%" PRIxPTR " (%s)",
				     di.dli_sname, off, obj);
		else
			n = snprintf(buf, len, "%s (%s)", di.dli_sname, obj);
	} else {
		/* From the object's base: for a shared object or a PIE, the
		 * address addr2line -e OBJ takes. */
		n = snprintf(buf, len, "0x%" PRIxPTR " (%s)",
			     a - (uintptr_t)di.dli_fbase, obj);
	}
	return n < 0 ? -EINVAL : (size_t)n >= len ? -ENOSPC : 0;
}
