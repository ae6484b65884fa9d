/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: compare a source (one disk, or a group of
 * named disks) with what stm-recv holds, without sending data, freezing
 * or flipping (compare_run.c). */
#ifndef STM_SENDER_COMPARE_RUN_H
#define STM_SENDER_COMPARE_RUN_H

#include "sender_options.h"

/* Run a whole comparison; returns the process exit status: 0 identical,
 * 1 different or not compared (the error says which). */
int compare_run (const struct sender_options *opts);

#endif /* STM_SENDER_COMPARE_RUN_H */
