/* SPDX-License-Identifier: MIT */
/*
 * bpf/log_capture.h: libbpf's messages captured around the loaders' own
 * libbpf calls (signals_bpf.c, trace_loader.c), never printed on stderr.
 */
#ifndef MYRIAD_LOG_CAPTURE_H
#define MYRIAD_LOG_CAPTURE_H

/*
 * Install the capturing printer (warnings and information; debug
 * messages are dropped) over an empty buffer. Holds a process-wide lock
 * until log_capture_end(): one capture at a time.
 */
void log_capture_begin(void);

/*
 * Put the previous printer back and release the lock. When 'keep' is not
 * NULL and there were messages, *keep is freed and replaced by a copy of
 * them (NULL when out of memory); else they are dropped.
 */
void log_capture_end(char **keep);

#endif
