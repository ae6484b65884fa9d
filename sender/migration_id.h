/* stm-send: the migration id sent in HELLO.
 *
 * The receiver answers "resume" only to the id it already holds, so a
 * sender that crashed and is started again must present the same id, or
 * the whole disk is copied again.  The id is therefore derived, not drawn
 * at random: a SHA-256 of this host's machine id, the identity of the
 * nbdkit process behind the control socket (its pid and start time, from
 * the socket's peer credentials), the control socket's path, the image
 * size and the destination.  It is safe to resume under it: the filter
 * only holds a block as confirmed after a receiver holding this same id
 * said it was durable, and a new nbdkit process (all blocks dirty) gets a
 * new id.  If the nbdkit process cannot be identified the id is random
 * and a restarted sender starts over.
 *
 * The destination (--dest exactly as typed) is part of the id on purpose:
 * blocks confirmed as durable on one receiver must never count as copied
 * to another, so switching destination, even to another spelling of the
 * same address, is a new migration and a full copy, which is safe.
 */
#ifndef STM_SENDER_MIGRATION_ID_H
#define STM_SENDER_MIGRATION_ID_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

/* What identifies one migration. */
struct migration_id_inputs {
  const char *machine_id;        /* /etc/machine-id or the host name */
  pid_t filter_pid;              /* the nbdkit process */
  uint64_t filter_start_time;    /* its start time in clock ticks since boot */
  const char *control_path;
  uint64_t image_size;
  const char *dest;              /* HOST:PORT as given */
};

/* Pure: hash the inputs into an id.  Returns -1 if hashing fails. */
int migration_id_derive (const struct migration_id_inputs *in,
                         uint8_t id[WIRE_MIGRATION_ID_LEN]);

/* Gather the inputs (control_fd is the connected control socket) and
 * derive the id; on any failure fill id with random bytes and return
 * false (true when the id is stable).  Returns -1 only if not even random
 * bytes could be had. */
int migration_id_make (int control_fd, const char *control_path,
                       uint64_t image_size, const char *dest,
                       uint8_t id[WIRE_MIGRATION_ID_LEN], bool *stable);

/* Lower-case hex, 2 * WIRE_MIGRATION_ID_LEN + 1 bytes. */
void migration_id_hex (const uint8_t id[WIRE_MIGRATION_ID_LEN], char *out);

#endif /* STM_SENDER_MIGRATION_ID_H */
