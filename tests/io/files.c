/* SPDX-License-Identifier: MIT */
/*
 * tests/io/files.c: files, pipes, eventfds and the blocking pool through
 * the workers' rings: many tasks at once openat/write/read/close files in
 * a temporary directory (positional and file-position writes and reads, a
 * hole), content checked byte for byte; -ENOENT, -EEXIST, -EBADF (read
 * on a closed or never-opened descriptor, write on a read-only one);
 * poll on pipes and an eventfd that another thread writes. (The blocking
 * pool: tests/io/blocking.c.)
 *   files [--workers N]
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "helpers.h"

static myriad_rt_t *rt;
static char dir[PATH_MAX];
static int dfd = -1;

static inline uint8_t pat(int id, uint32_t off)
{
	uint32_t x = (uint32_t)id * 2654435761u ^ off * 2246822519u;

	x ^= x >> 15;
	x *= 2246822519u;
	x ^= x >> 13;
	return (uint8_t)x;
}

static void tmpdir_make(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/myriad-io-files-XXXXXX",
		 t && *t ? t : "/tmp");
	REQUIRE(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(dfd >= 0, "open %s: %s", dir, strerror(errno));
}

static void tmpdir_remove(void)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;

	REQUIRE(d, "fdopendir");
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			CHECK(unlinkat(dfd, e->d_name, 0) == 0, "unlink %s: %s",
			      e->d_name, strerror(errno));
	closedir(d);
	CHECK(rmdir(dir) == 0, "rmdir %s: %s", dir, strerror(errno));
}

/* ---- many tasks, a file each ---- */

#define TAIL_GAP 100
#define TAIL_LEN 16

static _Atomic int files_ok;

struct file_task {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int id, fd, len, got, i;
	char name[32], tail[TAIL_LEN];
	uint8_t *buf, *rbuf;
	uint8_t small[4096];
};

static int file_len(int id)
{
	return 100000 + id * 37;
}

static int file_step(myriad_task_t *self, void *p)
{
	struct file_task *st = p;
	struct stat sb;
	int rc, i;

	MYRIAD_BEGIN(st);
	st->len = file_len(st->id);
	snprintf(st->name, sizeof(st->name), "f%d", st->id);
	snprintf(st->tail, sizeof(st->tail), "tail-of-%07d", st->id);
	st->buf = malloc((size_t)st->len);
	st->rbuf = malloc((size_t)st->len + TAIL_GAP + TAIL_LEN);
	REQUIRE(st->buf && st->rbuf, "malloc");
	for (i = 0; i < st->len; i++)
		st->buf[i] = pat(st->id, (uint32_t)i);

	MYRIAD_IO(st, rc,
		  myriad_io_openat(self, &st->op, dfd, st->name,
				   O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC,
				   0600));
	if (rc < 0) {
		t_failf(__FILE__, __LINE__, "openat %s: %d (%s)", st->name, rc,
			strerror(-rc));
		goto out;
	}
	st->fd = rc;
	CHECK(fcntl(st->fd, F_GETFD) == FD_CLOEXEC, "O_CLOEXEC lost");
	/* Two writes at the file position, then one past a hole. */
	MYRIAD_IO(st, rc,
		  myriad_io_write(self, &st->op, st->fd, st->buf,
				  (size_t)(st->len / 2), -1));
	CHECK_EQ(rc, st->len / 2);
	MYRIAD_IO(st, rc,
		  myriad_io_write(self, &st->op, st->fd, st->buf + st->len / 2,
				  (size_t)(st->len - st->len / 2), -1));
	CHECK_EQ(rc, st->len - st->len / 2);
	MYRIAD_IO(st, rc,
		  myriad_io_write(self, &st->op, st->fd, st->tail, TAIL_LEN,
				  st->len + TAIL_GAP));
	CHECK_EQ(rc, TAIL_LEN);
	/* The position is at len: the hole, then the tail. */
	MYRIAD_IO(st, rc,
		  myriad_io_read(self, &st->op, st->fd, st->small,
				 sizeof(st->small), -1));
	CHECK_EQ(rc, TAIL_GAP + TAIL_LEN);
	for (i = 0; i < TAIL_GAP; i++)
		if (st->small[i])
			break;
	CHECK(i == TAIL_GAP, "file %d: the hole has byte %d = %u", st->id, i,
	      st->small[i]);
	CHECK(!memcmp(st->small + TAIL_GAP, st->tail, TAIL_LEN),
	      "file %d: tail differs", st->id);
	/* All of it, positional. */
	MYRIAD_IO(st, rc,
		  myriad_io_read(self, &st->op, st->fd, st->rbuf,
				 (size_t)st->len, 0));
	CHECK_EQ(rc, st->len);
	CHECK(!memcmp(st->rbuf, st->buf, (size_t)st->len),
	      "file %d: content differs", st->id);
	CHECK_EQ(fstat(st->fd, &sb), 0);
	CHECK_EQ(sb.st_size, st->len + TAIL_GAP + TAIL_LEN);
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	CHECK_ERR(rc, 0);

	/* Errors of openat. */
	MYRIAD_IO(st, rc,
		  myriad_io_openat(self, &st->op, dfd, "no-such-file",
				   O_RDONLY | O_CLOEXEC, 0));
	CHECK_ERR(rc, -ENOENT);
	MYRIAD_IO(st, rc,
		  myriad_io_openat(self, &st->op, dfd, st->name,
				   O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
				   0600));
	CHECK_ERR(rc, -EEXIST);

	/* Read-only: writes fail, sequential reads see it all. */
	MYRIAD_IO(st, rc,
		  myriad_io_openat(self, &st->op, dfd, st->name,
				   O_RDONLY | O_CLOEXEC, 0));
	if (rc < 0) {
		t_failf(__FILE__, __LINE__, "openat %s O_RDONLY: %d", st->name,
			rc);
		goto out;
	}
	st->fd = rc;
	MYRIAD_IO(st, rc,
		  myriad_io_write(self, &st->op, st->fd, st->buf, 10, 0));
	CHECK_ERR(rc, -EBADF);
	memset(st->rbuf, 0xee, (size_t)st->len + TAIL_GAP + TAIL_LEN);
	for (st->got = 0;; st->got += rc) {
		MYRIAD_IO(st, rc,
			  myriad_io_read(self, &st->op, st->fd, st->small,
					 sizeof(st->small), -1));
		if (rc <= 0) {
			CHECK_ERR(rc, 0);
			break;
		}
		if (st->got + rc > st->len + TAIL_GAP + TAIL_LEN) {
			t_failf(__FILE__, __LINE__, "read past the end");
			break;
		}
		memcpy(st->rbuf + st->got, st->small, (size_t)rc);
	}
	CHECK_EQ(st->got, st->len + TAIL_GAP + TAIL_LEN);
	CHECK(!memcmp(st->rbuf, st->buf, (size_t)st->len) &&
		      !memcmp(st->rbuf + st->len + TAIL_GAP, st->tail,
			      TAIL_LEN),
	      "file %d: sequential read differs", st->id);
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	CHECK_ERR(rc, 0);
	atomic_fetch_add(&files_ok, 1);
out:
	free(st->buf);
	free(st->rbuf);
	MYRIAD_END(st);
}

struct files_root {
	MYRIAD_CORO_FIELD;
	int n;
};

static int files_root_step(myriad_task_t *self, void *p)
{
	struct files_root *st = p;
	struct file_task f;
	int i, err = 0;

	MYRIAD_BEGIN(st);
	for (i = 0; i < st->n; i++) {
		memset(&f, 0, sizeof(f));
		f.id = i;
		REQUIRE(myriad_task_spawn(self, file_step, &f, sizeof(f), 0,
					  &err),
			"spawn: %d", err);
	}
	MYRIAD_JOIN(st, self);
	MYRIAD_END(st);
}

static void test_files(void)
{
	struct files_root r = { .n = (int)t_scaled_min(64, 16) };

	t_phase("files");
	CHECK_EQ(t_run(rt, files_root_step, &r, sizeof(r), NULL, "files"), 0);
	CHECK_EQ(atomic_load(&files_ok), r.n);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

/* ---- bad descriptors (alone: no descriptor is opened meanwhile) ---- */

struct badfd {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int fd, never;
	char buf[8];
};

static int badfd_step(myriad_task_t *self, void *p)
{
	struct badfd *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	MYRIAD_IO(st, rc,
		  myriad_io_openat(self, &st->op, dfd, "bad",
				   O_CREAT | O_RDWR | O_CLOEXEC, 0600));
	REQUIRE(rc >= 0, "openat: %d", rc);
	st->fd = rc;
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	CHECK_ERR(rc, 0);
	/* Closed: its number is free again, and nobody opens meanwhile. */
	MYRIAD_IO(st, rc,
		  myriad_io_read(self, &st->op, st->fd, st->buf,
				 sizeof(st->buf), 0));
	CHECK_ERR(rc, -EBADF);
	MYRIAD_IO(st, rc,
		  myriad_io_write(self, &st->op, st->fd, st->buf,
				  sizeof(st->buf), 0));
	CHECK_ERR(rc, -EBADF);
	MYRIAD_IO(st, rc, myriad_io_close(self, &st->op, st->fd));
	CHECK_ERR(rc, -EBADF);
	/* A number never opened. */
	MYRIAD_IO(st, rc,
		  myriad_io_read(self, &st->op, st->never, st->buf,
				 sizeof(st->buf), -1));
	CHECK_ERR(rc, -EBADF);
	/* Bad arguments are the call's. */
	CHECK_ERR(myriad_io_openat(self, &st->op, dfd, NULL, O_RDONLY, 0),
		  -EINVAL);
	MYRIAD_END(st);
}

static void test_badfd(void)
{
	struct badfd b;

	t_phase("bad descriptors");
	memset(&b, 0, sizeof(b));
	b.never = 1 << 20;
	CHECK(fcntl(b.never, F_GETFD) < 0 && errno == EBADF,
	      "descriptor %d is open", b.never);
	CHECK_EQ(t_run(rt, badfd_step, &b, sizeof(b), NULL, "bad fds"), 0);
}

/* ---- poll: pipes and an eventfd written by another thread ---- */

#define NPIPES 32

static int pipes[NPIPES][2];
static int efd = -1;
static _Atomic int pollers_armed, written;

struct poller {
	MYRIAD_CORO_FIELD;
	myriad_io_t op;
	int i, armed;
	char c;
	uint64_t v;
};

static inline int count_armed(struct poller *st, int rc)
{
	if (rc == -EAGAIN && !st->armed++)
		atomic_fetch_add(&pollers_armed, 1);
	return rc;
}

static int poller_step(myriad_task_t *self, void *p)
{
	struct poller *st = p;
	int rc;

	MYRIAD_BEGIN(st);
	if (st->i < 0) {
		/* The eventfd. */
		MYRIAD_IO(st, rc,
			  count_armed(st, myriad_io_poll(self, &st->op, efd,
							 POLLIN)));
		CHECK_EQ(rc, POLLIN);
		CHECK(atomic_load(&written), "poll woke before the write");
		MYRIAD_IO(st, rc,
			  myriad_io_read(self, &st->op, efd, &st->v,
					 sizeof(st->v), -1));
		CHECK_EQ(rc, sizeof(st->v));
		CHECK_EQ(st->v, 7);
		goto out;
	}
	/* A pipe's write end is writable at once. */
	MYRIAD_IO(st, rc,
		  myriad_io_poll(self, &st->op, pipes[st->i][1], POLLOUT));
	CHECK_EQ(rc, POLLOUT);
	MYRIAD_IO(st, rc,
		  count_armed(st, myriad_io_poll(self, &st->op, pipes[st->i][0],
						 POLLIN)));
	CHECK_EQ(rc, POLLIN);
	CHECK(atomic_load(&written), "poll woke before the write");
	MYRIAD_IO(
		st, rc,
		myriad_io_read(self, &st->op, pipes[st->i][0], &st->c, 1, -1));
	CHECK_EQ(rc, 1);
	CHECK_EQ(st->c, 'a' + st->i % 26);
out:;
	MYRIAD_END(st);
}

static int all_armed(void *p)
{
	return atomic_load(&pollers_armed) == *(int *)p;
}

static void *writer_main(void *arg)
{
	int want = NPIPES + 1, i;
	char c;

	(void)arg;
	if (!t_wait_until(all_armed, &want, 20))
		return (void *)1;
	/* Armed, then submitted and in the kernel. */
	t_sleep_ms(20);
	atomic_store(&written, 1);
	CHECK_EQ(eventfd_write(efd, 7), 0);
	for (i = 0; i < NPIPES; i++) {
		c = (char)('a' + i % 26);
		CHECK_EQ(write(pipes[i][1], &c, 1), 1);
	}
	return NULL;
}

static void test_poll(void)
{
	myriad_handle_t *h[NPIPES + 1];
	struct poller s;
	pthread_t th;
	void *tr = NULL;
	int i;

	t_phase("poll");
	efd = eventfd(0, EFD_CLOEXEC);
	REQUIRE(efd >= 0, "eventfd: %s", strerror(errno));
	for (i = 0; i < NPIPES; i++)
		REQUIRE(pipe2(pipes[i], O_CLOEXEC) == 0, "pipe2");
	REQUIRE(pthread_create(&th, NULL, writer_main, NULL) == 0, "thread");
	for (i = 0; i <= NPIPES; i++) {
		memset(&s, 0, sizeof(s));
		s.i = i < NPIPES ? i : -1;
		REQUIRE(myriad_rt_spawn(rt, poller_step, &s, sizeof(s),
					&h[i]) == 0,
			"spawn");
	}
	for (i = 0; i <= NPIPES; i++) {
		CHECK_EQ(t_join(h[i], NULL, "poller"), 0);
		CHECK_EQ(myriad_handle_release(h[i]), 0);
	}
	pthread_join(th, &tr);
	CHECK(tr == NULL, "the pollers never all armed: %d",
	      atomic_load(&pollers_armed));
	for (i = 0; i < NPIPES; i++) {
		close(pipes[i][0]);
		close(pipes[i][1]);
	}
	close(efd);
	CHECK_EQ(myriad_rt_tasks_live(rt), 0);
}

int main(int argc, char **argv)
{
	unsigned workers;

	t_name = "files";
	workers = t_parse_workers(argc, argv);
	t_watchdog(60);
	tmpdir_make();
	rt = t_rt_new(workers);
	test_badfd();
	test_files();
	test_poll();
	t_rt_done(rt);
	tmpdir_remove();
	return t_result();
}
