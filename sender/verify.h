/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --verify: before the commit, while the source is frozen and
 * the final pass is durable on the destination, compare the whole of
 * every disk with its destination by hashes.
 *
 * Each disk is read from start to end through its source reader (every
 * byte, holes included: the destination must read back the same zeroes),
 * with HASH_REQ for each read (compare_pass_ask); a read is delivered
 * once its hashes are in, and the units whose hashes differ are marked
 * in a bitmap (compare_diff.h).  At the end the migration goes on to the
 * commit if nothing differs; otherwise every differing range is reported
 * (a "difference" event each) and the migration fails, which thaws the
 * source: it stays authoritative, and the destination is never committed.
 * The guest is held for the whole verification, so it counts in the
 * downtime, and the filter's migrate-freeze-timeout must allow for it.
 */
#ifndef STM_SENDER_VERIFY_H
#define STM_SENDER_VERIFY_H

#include <stdint.h>

#include "migration.h"

/* Start (phase VERIFYING); verified is called when every disk matched. */
void verify_begin (struct migration *m, void (*verified) (struct migration *m));
/* Issue reads while there are free slots (from the source reader's
 * on_slots_free, in VERIFYING). */
void verify_pump (struct migration *m);
/* A read of the verification is delivered. */
void verify_on_read (struct migration_disk *d, uint64_t offset, uint32_t length,
                     const void *buf, int err);
/* Free what the disk's verification holds. */
void verify_free (struct migration_disk *d);

#endif /* STM_SENDER_VERIFY_H */
