/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: running one migration (run.c). */
#ifndef STM_SENDER_RUN_H
#define STM_SENDER_RUN_H

#include "migration.h"
#include "sender_options.h"

/* Run a whole migration; returns the process exit status (0, 1 or 3,
 * see STM_SEND_EXIT_UNKNOWN). */
int migration_run (const struct sender_options *opts);

#endif /* STM_SENDER_RUN_H */
