/* SPDX-License-Identifier: MIT */
/*
 * base/shm_stale.c: stale /dev/shm/myriad.<pid>.<n> files (their process
 * was killed): tell them from live ones, and remove them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "read_text.h"
#include "shm_stale.h"

int shm_proc_start(pid_t pid, int64_t *real_ns)
{
	char path[64], buf[1024];
	unsigned long long ticks;
	const char *p;
	long hz = sysconf(_SC_CLK_TCK);
	int r, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_text(path, buf, sizeof(buf));
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	/* The name in parentheses may hold spaces and ')': after the last. */
	p = strrchr(buf, ')');
	if (!p || hz <= 0)
		return -EINVAL;
	/* p + 2 is field 3 (state); starttime is field 22. */
	p += 2;
	for (field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EINVAL;
		p++;
	}
	if (sscanf(p, "%llu", &ticks) != 1)
		return -EINVAL;
	/*
	 * starttime counts clock ticks in boot time (suspend included):
	 * the wall clock of boot is now's wall clock less now's boot time.
	 */
	*real_ns = (int64_t)clock_ns(CLOCK_REALTIME) -
		   (int64_t)clock_ns(CLOCK_BOOTTIME) +
		   (int64_t)(ticks * (1000000000ull / (unsigned long)hz));
	return 0;
}

int shm_file_stale(pid_t pid, const struct timespec *ctime)
{
	int64_t start, made;
	int r;

	if (pid <= 0)
		return 1;
	/* EPERM: another user's live process. */
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 1;
	r = shm_proc_start(pid, &start);
	if (r == -ESRCH)
		return 1; /* gone between the two looks */
	if (r < 0)
		return r;
	made = (int64_t)ctime->tv_sec * 1000000000ll + ctime->tv_nsec;
	return made < start - SHM_STALE_SLACK_NS;
}

/* "myriad.<pid>.<n>", digits only: the pid, else 0. */
static pid_t name_pid(const char *name)
{
	const char *p;
	char *end;
	long pid;

	if (strncmp(name, "myriad.", 7))
		return 0;
	p = name + 7;
	if (*p < '0' || *p > '9')
		return 0;
	pid = strtol(p, &end, 10);
	if (*end != '.' || pid <= 0 || pid > 0x3fffffff)
		return 0;
	p = end + 1;
	if (!*p)
		return 0;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return (pid_t)pid;
}

int shm_sweep_stale(void)
{
	struct dirent *de;
	struct stat st;
	int n = 0, dfd;
	pid_t pid;
	DIR *d;

	d = opendir("/dev/shm");
	if (!d)
		return -errno;
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		pid = name_pid(de->d_name);
		if (!pid)
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_uid != geteuid())
			continue;
		if (shm_file_stale(pid, &st.st_ctim) != 1)
			continue;
		/*
		 * Another sweeper may have removed it first (ENOENT). A race
		 * is left: if, between our look and this unlink, the other
		 * sweeper removes it *and* a new process with the same pid
		 * makes the name again, that process loses its file (its
		 * runtime runs on; only tools lose the view). It needs a
		 * reused pid inside a window of microseconds.
		 */
		if (unlinkat(dfd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}
