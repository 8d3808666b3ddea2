/* SPDX-License-Identifier: MIT */
/*
 * myriad/common.h: the export macro, version and the types every other
 * public header shares.
 */
#ifndef MYRIAD_COMMON_H
#define MYRIAD_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MYRIAD_BUILDING)
#define MYRIAD_API __attribute__((visibility("default")))
#else
#define MYRIAD_API
#endif

#define MYRIAD_VERSION_MAJOR 0
#define MYRIAD_VERSION_MINOR 2

/* A runtime: its workers, queues and rings. */
typedef struct myriad_rt myriad_rt_t;
/* A task: a step function and its state, allocated together. */
typedef struct myriad_task myriad_task_t;

#ifdef __cplusplus
}
#endif
#endif
