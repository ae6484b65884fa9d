/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the migration id sent in HELLO.
 *
 * The receiver answers "resume" only to the id it already holds, so a
 * sender that crashed and is started again must present the same id, or
 * the whole disk is copied again.  The id is therefore derived, not drawn
 * at random: a SHA-256 of the filter's instance id (random, drawn when
 * the filter starts serving, reported by STATUS as instance=), the image
 * size and the destination.  It is safe to resume under it: the filter
 * only holds a block as confirmed after a receiver holding this same id
 * said it was durable, and a restarted nbdkit (all blocks dirty again)
 * draws a new instance id, so it is a new migration.  The instance id
 * names the filter, not a process: it is the same whether nbdkit runs in
 * the foreground, daemonized, under a service manager or under --run.
 *
 * The destination (--dest exactly as typed) is part of the id on purpose:
 * blocks confirmed as durable on one receiver must never count as copied
 * to another, so switching destination, even to another spelling of the
 * same address, is a new migration and a full copy, which is safe.
 */
#ifndef STM_SENDER_MIGRATION_ID_H
#define STM_SENDER_MIGRATION_ID_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* What identifies one migration. */
struct migration_id_inputs {
  const char *filter_instance;   /* STATUS instance=, 32 hex digits */
  uint64_t image_size;
  const char *dest;              /* HOST:PORT as given */
};

/* Pure: hash the inputs into an id.  Returns -1 if hashing fails or the
 * instance id is not 32 hex digits. */
int migration_id_derive (const struct migration_id_inputs *in,
                         uint8_t id[WIRE_MIGRATION_ID_LEN]);

/* One disk of a group of named disks (--disk). */
struct migration_id_disk {
  const char *name;
  const char *filter_instance;   /* its filter's STATUS instance= */
  uint64_t image_size;
};

/* Pure: the id of a group of named disks, from every disk's name, filter
 * instance id and size, in the order given, and the destination.  A
 * different text from the one-disk form's, so the two never collide; a
 * named disk alone is a group of one.  -1 as migration_id_derive. */
int migration_id_derive_group (const struct migration_id_disk *disks, size_t ndisks,
                               const char *dest, uint8_t id[WIRE_MIGRATION_ID_LEN]);

/* Lower-case hex, 2 * WIRE_MIGRATION_ID_LEN + 1 bytes. */
void migration_id_hex (const uint8_t id[WIRE_MIGRATION_ID_LEN], char *out);

#endif /* STM_SENDER_MIGRATION_ID_H */
