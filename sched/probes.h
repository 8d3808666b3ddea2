/* SPDX-License-Identifier: MIT */
/*
 * sched/probes.h: USDT probes (provider "myriad") at the runtime's
 * events: a nop instruction each, and a note in the ELF that bpftrace,
 * perf or myriad-trace attach to; nothing runs when nobody traces. The
 * arguments of each are listed in README.md with a bpftrace one-liner.
 */
#ifndef MYRIAD_PROBES_H
#define MYRIAD_PROBES_H

#if defined(__has_include)
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define MYRIAD_HAVE_SDT 1
#endif
#endif

#ifdef MYRIAD_HAVE_SDT
#define PROBE0(name) DTRACE_PROBE(myriad, name)
#define PROBE1(name, a) DTRACE_PROBE1(myriad, name, a)
#define PROBE2(name, a, b) DTRACE_PROBE2(myriad, name, a, b)
#define PROBE3(name, a, b, c) DTRACE_PROBE3(myriad, name, a, b, c)
#else
#define PROBE0(name) ((void)0)
#define PROBE1(name, a) ((void)(a))
#define PROBE2(name, a, b) ((void)(a), (void)(b))
#define PROBE3(name, a, b, c) ((void)(a), (void)(b), (void)(c))
#endif

#endif
