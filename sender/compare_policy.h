/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the decisions of hash comparison (compare_pass.h), as pure
 * functions of what is known: whether a pass compares, in what units,
 * and where a run of matching (or differing) units ends.  No I/O.
 */
#ifndef STM_SENDER_COMPARE_POLICY_H
#define STM_SENDER_COMPARE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "hash_window.h"

/* Hash units are the disk's block size, from WIRE_HASH_MIN_UNIT to
 * COMPARE_UNIT_MAX: a differing unit is sent whole, and a larger unit
 * would send much that did not change. */
#define COMPARE_UNIT_MAX (64u * 1024)

/* Pure: should the first pass on a connection compare?  Only if the
 * receiver answers hashes (it echoed WIRE_FEATURE_HASH); then if it kept
 * data for a new migration (it must: skipping a block would keep the old
 * contents), or if it holds an earlier run of this migration (resume,
 * prepared): whatever is to be sent again may be there already, such as
 * the whole disk when the source's nbdkit restarted and its tracking
 * says every block is dirty. */
bool compare_pass_wanted (bool receiver_hashes, bool kept, bool resumed);

/* Pure: the hash unit for a disk of block size block. */
uint32_t compare_pass_unit (uint32_t block);

/* Pure: within a read of [req->offset, +req->length) hashed in units of
 * req->unit, the run from from (inside the read, below to) of units that
 * all match (*differs false) or all differ: its end, at most to. */
uint64_t compare_run_end (const struct hash_request *req, const uint8_t *src_hashes,
                          uint64_t from, uint64_t to, bool *differs);

#endif /* STM_SENDER_COMPARE_POLICY_H */
