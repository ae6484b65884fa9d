/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: answering a sender's hash comparison (docs/protocol.md,
 * "Comparing"): the key of the session (HASH_KEY), and for each HASH_REQ
 * the HASHES frame of that range of an output, read back and hashed with
 * block_hash_units.
 *
 * One hash_answer belongs to one session.  It keeps the key and one
 * buffer of WIRE_MAX_HASH_RANGE bytes, allocated at the first request
 * (most sessions never compare), into which the range is read and after
 * which its HASHES frame is built, so answering allocates nothing more.
 * The read blocks the event loop, as the session's writes do: a request
 * is at most 8 MiB, tens of milliseconds of a disk's work, and while it
 * is read nothing more is read from the sender, which paces it.
 *
 * It reports nothing itself: errors come back as a wire error code with
 * the reason in words (or errno, for a read), and the session, which knows
 * the peer and the output's name, reports them once.
 */
#ifndef STM_RECEIVER_HASH_ANSWER_H
#define STM_RECEIVER_HASH_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct image_writer;

struct hash_answer {
  bool have_key;
  uint8_t key[WIRE_HASH_KEY_LEN];
  /* WIRE_MAX_HASH_RANGE bytes read from the output, then the HASHES
   * frame; NULL until the first request. */
  uint8_t *buf;
  uint8_t *frame;
  /* Requests answered and bytes hashed, in all, and since the counts
   * were last taken (the pass's). */
  uint64_t requests, bytes;
  uint64_t pass_requests, pass_bytes;
};

/* Nothing held, no key. */
void hash_answer_init (struct hash_answer *h);

/* Free the buffers and forget the key. */
void hash_answer_free (struct hash_answer *h);

/* Answer HASH_KEY or HASH_REQ (msg, decoded and checked by the decoder),
 * reading a request's range from image (the output of msg->disk).
 * offered: the session's HELLO allowed hash messages
 * (hash_policy_hash_offered).  HASH_KEY sets the key of the requests
 * that follow (a later one replaces it) and answers nothing (*frame_len
 * 0).  HASH_REQ answers with *frame and *frame_len, the whole HASHES
 * frame (valid until the next call).  0 on success; otherwise the wire
 * error code to fail the session with: WIRE_ERR_IO when the read failed
 * (errno set; why is empty: the caller names the output, offset and
 * errno), WIRE_ERR_PROTOCOL for a hash message the HELLO did not offer or
 * a HASH_REQ before any HASH_KEY, WIRE_ERR_INTERNAL when memory or the
 * hash failed; why says which. */
uint32_t hash_answer_message (struct hash_answer *h, bool offered,
                              const struct wire_msg *msg,
                              struct image_writer *image,
                              const uint8_t **frame, size_t *frame_len,
                              char *why, size_t why_len);

/* The counts of the pass now ending, which start again from 0. */
void hash_answer_take_pass (struct hash_answer *h, uint64_t *requests,
                            uint64_t *bytes);

#endif /* STM_RECEIVER_HASH_ANSWER_H */
