/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the hash requests of one disk that are on their way, and the
 * answers that came back for them.
 *
 * A comparing pass (compare_pass.h) sends HASH_REQ for each source read
 * as it issues it, and the receiver answers HASHES in the same order.  A
 * read is compared when it is delivered, and may be delivered only once
 * its answer is in (source_reader's can_deliver), so the window holds at
 * most one request per read slot.  Pure bookkeeping: no I/O, so the unit
 * tests reach it directly.
 */
#ifndef STM_SENDER_HASH_WINDOW_H
#define STM_SENDER_HASH_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "source_reader.h"
#include "wire.h"

/* One request per read slot; a read is at most a chunk, hashed in units
 * of at least WIRE_HASH_MIN_UNIT. */
#define HASH_WINDOW_MAX SOURCE_READER_SLOTS
#define HASH_WINDOW_MAX_HASHES (SOURCE_READER_CHUNK / WIRE_HASH_MIN_UNIT)

struct hash_request {
  uint64_t offset;
  uint32_t length;
  uint32_t unit;
  bool answered;
  uint8_t hashes[HASH_WINDOW_MAX_HASHES * WIRE_HASH_LEN];
};

struct hash_window {
  struct hash_request q[HASH_WINDOW_MAX];
  unsigned head, count;
  unsigned answered;             /* how many of the oldest are answered */
};

/* Empty: nothing on the way (a new connection). */
void hash_window_reset (struct hash_window *w);
/* Is there room for another request? */
bool hash_window_can_push (const struct hash_window *w);
/* A HASH_REQ was sent.  The range is at most a chunk (asserted). */
void hash_window_push (struct hash_window *w, uint64_t offset, uint32_t length,
                       uint32_t unit);
/* HASHES arrived: it must answer the oldest request not yet answered,
 * range for range.  -1 (with why set) if it does not: the receiver broke
 * the protocol. */
int hash_window_answer (struct hash_window *w, uint64_t offset, uint32_t length,
                        uint32_t unit, const uint8_t *hashes, const char **why);
/* Is the read of [offset, offset+length) waiting for an answer?  True
 * only if it is the oldest request and still unanswered; a read that
 * was never asked about does not wait. */
bool hash_window_waiting (const struct hash_window *w, uint64_t offset,
                          uint32_t length);
/* The answered request for the read of [offset, offset+length) if it is
 * the oldest, taken out of the window (valid until the next push); NULL
 * if that read was never asked about. */
const struct hash_request *hash_window_take (struct hash_window *w, uint64_t offset,
                                             uint32_t length);

#endif /* STM_SENDER_HASH_WINDOW_H */
