/* SPDX-License-Identifier: MIT */
/*
 * base/shm_stale.h: /dev/shm/myriad.<pid>.<n> files left behind by a
 * process that was killed before myriad_rt_destroy() removed them: how to
 * tell them from a live process's, and the sweep. Internal.
 */
#ifndef MYRIAD_SHM_STALE_H
#define MYRIAD_SHM_STALE_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/*
 * A file made more than this long before its pid's process started was
 * left by an earlier process with that pid. The margin covers the
 * granularity of both times (a clock tick; the file system's coarse
 * clock) and small steps of the wall clock between the file's making and
 * now: the process start is known in boot time, the file's in wall time.
 */
#define SHM_STALE_SLACK_NS 1000000000ll

/*
 * The start of process 'pid' in wall-clock time (CLOCK_REALTIME ns), from
 * /proc/PID/stat's starttime. Returns 0, or -ESRCH (no such process) or
 * another -errno.
 */
int shm_proc_start(pid_t pid, int64_t *real_ns);

/*
 * Whether a file made at 'ctime' (its st_ctim) cannot belong to process
 * 'pid': 1 (the pid is gone, or its process started after the file was
 * made: a reused pid), 0 (it may), or -errno when /proc cannot tell.
 */
int shm_file_stale(pid_t pid, const struct timespec *ctime);

/*
 * Remove the caller's (same owner) /dev/shm/myriad.<pid>.<n> files that
 * are stale as shm_file_stale() says, the caller's own pid included.
 * Other users' files and other names are left alone. Safe to call from
 * several processes at once (a file already gone is not an error).
 * Returns how many were removed, or -errno when /dev/shm cannot be read.
 */
int shm_sweep_stale(void);

#endif
