/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the decisions of hash comparison (docs/protocol.md,
 * "Comparing"), as pure functions with no I/O so unit tests reach them
 * directly: whether a new migration keeps what its outputs hold for the
 * sender to compare against instead of emptying them, whether a HELLO
 * allows hash messages or asks for a compare-only session, which messages
 * such a session accepts, and whether an output's size lets it be
 * compared with the disk the sender announces.
 */
#ifndef STM_RECEIVER_HASH_POLICY_H
#define STM_RECEIVER_HASH_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

/* One output of the HELLO's disks, as the policy sees it. */
struct compare_output {
  bool is_block_device;
  uint64_t size;                /* file size, or the device's capacity */
};

/* Does an output hold data worth comparing against: a regular file of
 * more than 0 bytes, or a block device (whatever it holds)? */
bool hash_policy_holds_data (const struct compare_output *o);

/* Does a new migration (verdict NEW or FORCED) keep the outputs' data
 * instead of emptying them?  Only when the sender can compare
 * (WIRE_FEATURE_HASH), the keeping was asked for (WIRE_FEATURE_KEEP) or
 * the receiver runs with --force (an image taken over, or an output an
 * earlier migration committed), and some output holds data. */
bool hash_policy_keep (uint32_t hello_features, bool force, bool holds_data);

/* The bytes a new migration keeps: the sum of the n outputs' sizes when
 * hash_policy_keep decides to keep them (some output holds data),
 * else 0. */
uint64_t hash_policy_kept_bytes (uint32_t hello_features, bool force,
                                    const struct compare_output *o, uint32_t n);

/* May this session's sender send HASH_KEY and HASH_REQ?  Compare-only
 * implies hash comparison. */
bool hash_policy_hash_offered (uint32_t hello_features);

/* Does the HELLO open a compare-only session (records nothing, changes
 * nothing)? */
bool hash_policy_compare_only (uint32_t hello_features);

/* The features HELLO_REPLY answers: those offered that the receiver
 * knows, and WIRE_FEATURE_KEPT when it kept the outputs' data. */
uint32_t hash_policy_reply_features (uint32_t hello_features, bool kept);

/* Can the output be compared with a disk of announced bytes?  A regular file must be exactly that size; a block device must
 * hold at least that much (a migration writes only its first announced
 * bytes, so a larger device is how a migrated one looks). */
bool hash_policy_size_ok (const struct compare_output *o, uint64_t announced);

/* The first of n outputs whose size does not let it be compared with the
 * disk of announced[i] bytes, or -1 if all can be. */
int hash_policy_size_mismatch (const struct compare_output *o,
                                  const uint64_t *announced, uint32_t n);

/* Does a compare-only session accept this message after its HELLO?
 * Only what compares (HASH_KEY, HASH_REQ) and what every session
 * accepts (KEEPALIVE, ERROR, ABORT); everything that would write, sync,
 * record or commit (DATA, ZERO, PASS_BEGIN, PASS_END, SYNC, COMMIT,
 * OUTCOME) is a protocol error, as are replies only a receiver sends. */
bool hash_policy_allows (enum wire_type type);

#endif /* STM_RECEIVER_HASH_POLICY_H */
