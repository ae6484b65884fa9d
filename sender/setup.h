/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: setting up every disk of a migration before the loop runs,
 * and reporting a failure there (setup.c).
 */
#ifndef STM_SENDER_SETUP_H
#define STM_SENDER_SETUP_H

#include "migration.h"

/* Open every disk's source and control connections, check them, derive
 * the migration id, find whether the group already flipped for it
 * (m->cut.flipped_at_start), and hand the owning control connections to
 * the loop.  -1 after the failure was reported (every source unchanged). */
int setup_disks (struct migration *m);

/* A failure before the migration started: nothing was frozen or reset
 * (or the sources had already flipped for this migration: exit 0). */
void setup_error (struct migration *m, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

#endif /* STM_SENDER_SETUP_H */
