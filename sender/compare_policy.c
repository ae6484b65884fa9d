/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the decisions of hash comparison (see compare_policy.h). */
#include <config.h>

#include <assert.h>
#include <string.h>

#include "compare_policy.h"

bool
compare_pass_wanted (bool receiver_hashes, bool kept, bool resumed)
{
  return receiver_hashes && (kept || resumed);
}

uint32_t
compare_pass_unit (uint32_t block)
{
  if (block < WIRE_HASH_MIN_UNIT)
    return WIRE_HASH_MIN_UNIT;
  if (block > COMPARE_UNIT_MAX)
    return COMPARE_UNIT_MAX;
  return block;
}

/* Do unit i's hashes differ? */
static bool
unit_differs (const struct hash_request *req, const uint8_t *src, uint64_t i)
{
  return memcmp (req->hashes + i * WIRE_HASH_LEN, src + i * WIRE_HASH_LEN,
                 WIRE_HASH_LEN) != 0;
}

uint64_t
compare_run_end (const struct hash_request *req, const uint8_t *src_hashes,
                 uint64_t from, uint64_t to, bool *differs)
{
  assert (from >= req->offset && from < to && to <= req->offset + req->length);
  uint64_t i = (from - req->offset) / req->unit;
  *differs = unit_differs (req, src_hashes, i);
  for (;;) {
    uint64_t end = req->offset + (i + 1) * req->unit;
    if (end >= to)
      return to;
    i++;
    if (unit_differs (req, src_hashes, i) != *differs)
      return end;
  }
}
