/* SPDX-License-Identifier: MIT */
/*
 * myriad.h: the whole public API of libmyriad, a runtime for millions of
 * lightweight agent tasks. Each concept has its own header under myriad/.
 */
#ifndef MYRIAD_H
#define MYRIAD_H

#include <myriad/common.h>
#include <myriad/task.h>
#include <myriad/rt.h>
#include <myriad/waker.h>
#include <myriad/chan.h>
#include <myriad/time.h>
#include <myriad/io.h>
#include <myriad/infer.h>
#include <myriad/fleet.h>
#include <myriad/policy.h>
#include <myriad/stats.h>
#include <myriad/coro.h>

#endif
