/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: comparing a pass instead of copying it (issue: only the
 * differences cross the network).
 *
 * When the receiver holds data this process has not sent it (it kept
 * an existing output for a new migration, WIRE_FEATURE_KEPT, or it holds
 * an earlier run of this migration, mode resume), the first pass on the
 * connection compares: with each source read it asks the receiver for
 * the hashes of the same range (HASH_REQ), the read waits until they are
 * in (hash_window.h), and then only the units whose hashes differ are
 * sent.  Units that match are as good as sent: they are confirmed with
 * the next SYNC like any other range, since that SYNC makes the
 * receiver's copy durable too.  Zero ranges from block status are not
 * compared: a ZERO costs a few bytes however long.  The hashes are keyed
 * (block_hash.h) with a key drawn for each connection and sent in
 * HASH_KEY before any HASH_REQ.
 *
 * pass.c calls this at the points of a pass; run.c hands it the HELLO's
 * answer and the HASHES messages.  The decisions (whether to compare,
 * in what units, where a run of equal units ends) are pure functions in
 * compare_policy.c.
 */
#ifndef STM_SENDER_COMPARE_PASS_H
#define STM_SENDER_COMPARE_PASS_H

#include <stdbool.h>
#include <stdint.h>

#include "compare_policy.h"
#include "hash_window.h"
#include "wire.h"

struct migration;
struct migration_disk;

/* A connection's HELLO was answered: decide for every disk whether its
 * next pass compares, and send HASH_KEY if any does.  -1 after failing
 * the migration. */
int compare_pass_on_hello (struct migration *m, const struct wire_hello_reply *r,
                           bool resumed);
/* Send HASH_KEY with a new key, once per connection.  -1 after failing
 * the migration. */
int compare_pass_send_key (struct migration *m);
/* Make disk d ready to ask for hashes (its window, its unit).  -1 after
 * failing the migration. */
int compare_pass_prepare (struct migration_disk *d);
/* Ask for the hashes of [offset, offset+length) of d, whatever its pass
 * (verify.c reads outside passes).  -1 after failing the migration. */
int compare_pass_ask (struct migration_disk *d, uint64_t offset, uint32_t length);
/* A pass begins: the disks decided for compare it (once). */
void compare_pass_begin (struct migration *m);
/* Is disk d's current pass comparing? */
bool compare_pass_on (const struct migration_disk *d);
/* A read of [offset, offset+length) was issued on d: ask for its hashes
 * if d is comparing.  -1 after failing the migration. */
int compare_pass_issued (struct migration_disk *d, uint64_t offset, uint32_t length);
/* source_reader's can_deliver for d. */
bool compare_pass_can_deliver (struct migration_disk *d, uint64_t offset,
                               uint32_t length);
/* The read of [offset, offset+length) is delivered with buf: its
 * request, with the receiver's hashes, and the source's hashes of buf in
 * *src_hashes; NULL if the read is not compared.  NULL with the
 * migration failed if hashing fails (check migration_ended). */
const struct hash_request *compare_pass_take (struct migration_disk *d, uint64_t offset,
                                              uint32_t length, const void *buf,
                                              const uint8_t **src_hashes);
/* HASHES from the receiver. */
void compare_pass_on_hashes (struct migration *m, const struct wire_msg *msg);
/* Count a compared range: bytes equal (not sent) or differing (sent). */
void compare_pass_count (struct migration_disk *d, uint64_t length, bool differs);
/* The receiver is lost: nothing is on its way any more. */
void compare_pass_abandon (struct migration *m);
/* Free what the disks' comparisons hold. */
void compare_pass_free (struct migration_disk *d);

#endif /* STM_SENDER_COMPARE_PASS_H */
