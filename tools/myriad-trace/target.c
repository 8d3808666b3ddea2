/* SPDX-License-Identifier: MIT */
/*
 * tools/myriad-trace/target.c: the traced process: may we trace it, is it
 * a myriad process, its worker threads, its shm counters and /proc files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/read_text.h"
#include "base/shm_stale.h"
#include "mtrace.h"

/* "Name:\tvalue" in a status file: the value, or -1. */
static long long status_field(const char *buf, const char *name)
{
	size_t n = strlen(name);
	const char *p = buf;

	while (p && *p) {
		if (!strncmp(p, name, n) && p[n] == ':')
			return strtoll(p + n + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* The library's file name: libmyriad.so, libmyriad.so.0, .so.0.1.0 */
static bool is_libmyriad(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	return !strncmp(b, "libmyriad.so", 12) &&
	       (b[12] == '\0' || b[12] == '.' || b[12] == ' ');
}

/* The first executable mapping of libmyriad in /proc/PID/maps. */
static int find_lib(struct target *t)
{
	char path[64], line[4096 + 256];
	FILE *f;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)t->pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	t->lib[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/'), *nl;

		if (!p || !is_libmyriad(p))
			continue;
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		/* The kernel marks a removed or replaced file. */
		nl = strstr(p, " (deleted)");
		if (nl) {
			*nl = '\0';
			t->lib_deleted = true;
		}
		snprintf(t->lib, sizeof(t->lib), "%s", p);
		r = 1;
		break;
	}
	fclose(f);
	return r;
}

static int ctr_index(const volatile struct myriad_shm *m, const char *name,
		     int dflt)
{
	char n[sizeof(m->ctr_names[0]) + 1];
	unsigned i, k;

	for (i = 0; i < m->nctrs && i < MYRIAD_SHM_CTRS; i++) {
		for (k = 0; k < sizeof(m->ctr_names[0]); k++)
			n[k] = m->ctr_names[i][k];
		n[sizeof(m->ctr_names[0])] = '\0';
		if (!strcmp(n, name))
			return (int)i;
	}
	/* Names missing (an older writer): the enum's place, if in range. */
	return dflt < (int)m->nctrs ? dflt : -1;
}

static bool is_stale(const struct target *t, const char *name)
{
	unsigned i;

	for (i = 0; i < t->nstale; i++)
		if (!strcmp(t->stale[i], name))
			return true;
	return false;
}

/*
 * Map /dev/shm/<name> read-only, once its header is whole (the runtime
 * stores the magic last) and it is the process's own: not left by an
 * earlier process with the same pid (a runtime killed before
 * myriad_rt_destroy(); its header names the same pid). Returns 1 mapped,
 * 0 not (yet) usable or stale (then in t->stale), -errno.
 */
static int shm_map(struct target *t, const char *name)
{
	const volatile struct myriad_shm *m;
	struct shm_map *s;
	char path[128];
	struct stat st;
	void *p;
	int fd;

	if (t->nshm >= MT_MAX_SHM)
		return 0;
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return 0;
	}
	/* Older than the process: not its own (the pid was reused). */
	if (shm_file_stale(t->pid, &st.st_ctim) == 1) {
		close(fd);
		if (t->nstale < MT_MAX_SHM)
			snprintf(t->stale[t->nstale++], sizeof(t->stale[0]),
				 "%s", name);
		return 0;
	}
	if ((size_t)st.st_size < sizeof(*m)) {
		close(fd);
		return 0;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	m = p;
	if (__atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) != MYRIAD_SHM_MAGIC ||
	    m->version != MYRIAD_SHM_VERSION || m->pid != (int32_t)t->pid ||
	    m->worker_size != sizeof(struct myriad_shm_worker) ||
	    sizeof(*m) + (size_t)m->nworkers * m->worker_size >
		    (size_t)st.st_size) {
		munmap(p, (size_t)st.st_size);
		return 0;
	}
	s = &t->shm[t->nshm++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->m = m;
	s->len = (size_t)st.st_size;
	s->ctr_run = ctr_index(m, "run", MYRIAD_CTR_RUN);
	s->ctr_stolen = ctr_index(m, "stolen", MYRIAD_CTR_STOLEN);
	s->ctr_parks = ctr_index(m, "parks", MYRIAD_CTR_PARKS);
	s->ctr_wakes = ctr_index(m, "wakes", MYRIAD_CTR_WAKES);
	return 1;
}

/* Map the shm files not mapped yet. Returns how many there are in all. */
static int shm_scan(struct target *t)
{
	char pat[64];
	glob_t g;
	size_t i;
	unsigned k;

	snprintf(pat, sizeof(pat), "/dev/shm/myriad.%d.*", (int)t->pid);
	if (glob(pat, 0, NULL, &g) != 0)
		return 0;
	for (i = 0; i < g.gl_pathc; i++) {
		const char *name = strrchr(g.gl_pathv[i], '/') + 1;
		bool have = false;

		for (k = 0; k < t->nshm; k++)
			have |= !strcmp(t->shm[k].name, name);
		if (!have && !is_stale(t, name))
			shm_map(t, name);
	}
	i = g.gl_pathc;
	globfree(&g);
	return (int)i;
}

int target_open(struct target *t, pid_t pid, char *why, size_t len)
{
	char path[64], buf[4096];
	long long ruid, euid;
	const char *p;
	int r, nshm;

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	if (pid <= 0) {
		snprintf(why, len, "%d is not a process id", (int)pid);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = read_text(path, buf, sizeof(buf));
	if (r < 0) {
		snprintf(why, len, "no process %d", (int)pid);
		return -ESRCH;
	}
	/* A thread id is in /proc too, but is not a process: refuse it. */
	if (status_field(buf, "Tgid") != (long long)pid) {
		snprintf(why, len,
			 "%d is a thread of process %lld, not a process",
			 (int)pid, status_field(buf, "Tgid"));
		return -ESRCH;
	}
	p = strstr(buf, "Name:\t");
	if (p)
		sscanf(p + 6, "%31[^\n]", t->comm);
	/* Exited, not yet reaped: its threads are gone, its shm file not. */
	p = strstr(buf, "\nState:\t");
	if (p && (p[8] == 'Z' || p[8] == 'X')) {
		snprintf(why, len, "process %d (%s) has exited (a zombie)",
			 (int)pid, t->comm);
		return -ESRCH;
	}
	/* Uid: real effective saved fs */
	p = strstr(buf, "\nUid:");
	if (!p || sscanf(p + 5, "%lld %lld", &ruid, &euid) != 2) {
		snprintf(why, len, "cannot read the owner of process %d",
			 (int)pid);
		return -EPERM;
	}
	if (geteuid() != 0 &&
	    (ruid != (long long)getuid() || euid != (long long)getuid())) {
		snprintf(why, len,
			 "process %d (%s) belongs to uid %lld, not to you (uid "
			 "%u): myriad-trace follows only your own processes, "
			 "or any as root",
			 (int)pid, t->comm, euid, (unsigned)getuid());
		return -EPERM;
	}
	/*
	 * Unreadable maps (a process we may not ptrace, even as root in a
	 * container) leave the shm files to tell.
	 */
	r = find_lib(t);
	shm_scan(t);
	nshm = (int)t->nshm; /* those with a whole header for this pid */
	if (r <= 0 && nshm == 0) {
		char note[256] = "";

		if (t->nstale)
			snprintf(note, sizeof(note),
				 " (/dev/shm/%s%s is stale: older than the "
				 "process, left by a killed earlier process "
				 "with the same pid; remove it with rm)",
				 t->stale[0],
				 t->nstale > 1 ? " and others" : "");
		if (r < 0)
			snprintf(why, len,
				 "process %d (%s) is not a myriad process as "
				 "far as we can see: /proc/%d/maps: %s, and "
				 "no /dev/shm/myriad.%d.* file%s",
				 (int)pid, t->comm, (int)pid, strerror(-r),
				 (int)pid, note);
		else
			snprintf(why, len,
				 "process %d (%s) is not a myriad process: no "
				 "libmyriad.so in /proc/%d/maps and no "
				 "/dev/shm/myriad.%d.* file%s",
				 (int)pid, t->comm, (int)pid, (int)pid, note);
		return -ENOEXEC;
	}
	return 0;
}

void target_close(struct target *t)
{
	unsigned i;

	for (i = 0; i < t->nshm; i++)
		munmap((void *)t->shm[i].m, t->shm[i].len);
	t->nshm = 0;
	free(t->w);
	t->w = NULL;
	t->nw = 0;
}

int target_alive(const struct target *t)
{
	char path[64], buf[512];
	const char *p;

	if (kill(t->pid, 0) < 0 && errno == ESRCH)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)t->pid);
	if (read_text(path, buf, sizeof(buf)) < 0)
		return 0;
	p = strrchr(buf, ')');
	return !(p && (p[2] == 'Z' || p[2] == 'X'));
}

static struct worker *worker_of(struct target *t, pid_t tid)
{
	unsigned i;

	for (i = 0; i < t->nw; i++)
		if (t->w[i].tid == tid)
			return &t->w[i];
	return NULL;
}

/* The shm slot of thread 'tid', or NULL. */
static const volatile struct myriad_shm_worker *slot_of(struct target *t,
							pid_t tid)
{
	unsigned i, k;

	for (i = 0; i < t->nshm; i++) {
		const volatile struct myriad_shm *m = t->shm[i].m;

		for (k = 0; k < m->nworkers; k++)
			if (m->w[k].tid == (int32_t)tid)
				return &m->w[k];
	}
	return NULL;
}

static int by_idx(const void *a, const void *b)
{
	const struct worker *x = a, *y = b;

	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

int target_scan(struct target *t)
{
	char path[96], comm[32];
	struct dirent *de;
	unsigned i, idx;
	int added = 0;
	DIR *d;

	shm_scan(t);
	for (i = 0; i < t->nw; i++)
		t->w[i].alive = false;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)t->pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		struct worker *w;

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm",
			 (int)t->pid, (int)tid);
		if (read_text(path, comm, sizeof(comm)) < 0)
			continue;
		/* Workers name themselves myriad-w<N> (sched/worker.c). */
		if (sscanf(comm, "myriad-w%u", &idx) != 1)
			continue;
		w = worker_of(t, tid);
		if (!w) {
			if (t->nw == t->capw) {
				unsigned cap = t->capw ? 2 * t->capw : 16;
				struct worker *nw;

				nw = realloc(t->w, cap * sizeof(*nw));
				if (!nw)
					break;
				t->w = nw;
				t->capw = cap;
			}
			if (t->next_row >= TRACE_MAX_ROWS)
				break;
			w = &t->w[t->nw++];
			memset(w, 0, sizeof(*w));
			w->tid = tid;
			w->idx = (int)idx;
			w->row = t->next_row++;
			w->fresh = true;
			added++;
		}
		w->alive = true;
	}
	closedir(d);
	/* The shm file may come after the threads: (re)match every scan. */
	for (i = 0; i < t->nw; i++)
		if (!t->w[i].slot)
			t->w[i].slot = slot_of(t, t->w[i].tid);
	if (added)
		qsort(t->w, t->nw, sizeof(*t->w), by_idx);
	return added;
}

static uint64_t shm_ctr(const volatile struct myriad_shm_worker *s, int i)
{
	if (i < 0 || i >= MYRIAD_SHM_CTRS)
		return 0;
	/* Plain 64-bit stores on the writer's side: one load each. */
	return __atomic_load_n(&s->ctr[i], __ATOMIC_RELAXED);
}

static const struct shm_map *map_of(const struct target *t,
				    const volatile struct myriad_shm_worker *s)
{
	unsigned i;

	for (i = 0; i < t->nshm; i++) {
		const char *lo = (const char *)t->shm[i].m;

		if ((const char *)s >= lo &&
		    (const char *)s < lo + t->shm[i].len)
			return &t->shm[i];
	}
	return NULL;
}

int target_read(const struct target *t, const struct worker *w,
		struct counts *c)
{
	char path[96], buf[2048];
	unsigned long long exec_ns, delay_ns;
	long long v;
	const char *p;
	int r, field;

	memset(c, 0, sizeof(*c));
	c->queue_len = -1;
	c->cpu = -1;
	if (w->slot) {
		const volatile struct myriad_shm_worker *s = w->slot;
		const struct shm_map *m = map_of(t, s);

		if (m) {
			c->run = shm_ctr(s, m->ctr_run);
			c->steals = shm_ctr(s, m->ctr_stolen);
			c->parks = shm_ctr(s, m->ctr_parks);
			c->wakes = shm_ctr(s, m->ctr_wakes);
			c->queue_len = __atomic_load_n(&s->queue_len,
						       __ATOMIC_RELAXED);
			c->have |= HAVE_CTRS | HAVE_QLEN;
		}
	}
	/* schedstat: on-CPU ns, run-queue wait ns, timeslices. */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)t->pid,
		 (int)w->tid);
	r = read_text(path, buf, sizeof(buf));
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	if (sscanf(buf, "%llu %llu", &exec_ns, &delay_ns) != 2)
		return -EINVAL;
	c->oncpu_ns = exec_ns;
	c->rq_delay_ns = delay_ns;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)t->pid,
		 (int)w->tid);
	r = read_text(path, buf, sizeof(buf));
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	v = status_field(buf, "nonvoluntary_ctxt_switches");
	c->preempt = v > 0 ? (uint64_t)v : 0;
	c->have |= HAVE_SCHED;
	/* stat: the CPU it last ran on is field 39, after the ")". */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)t->pid,
		 (int)w->tid);
	r = read_text(path, buf, sizeof(buf));
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	p = strrchr(buf, ')');
	for (field = 2; p && field < 39; field++) {
		p = strchr(p + 1, ' ');
	}
	if (p)
		c->cpu = atoi(p + 1);
	return 0;
}
