/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the decisions of hash comparison.  Pure logic; see
 * hash_policy.h.
 */
#include <config.h>

#include "hash_policy.h"

bool
hash_policy_holds_data (const struct compare_output *o)
{
  /* A block device cannot be emptied anyway, and what it holds is as
   * likely as a file's to be an earlier copy of the image. */
  return o->is_block_device || o->size > 0;
}

bool
hash_policy_keep (uint32_t hello_features, bool force, bool holds_data)
{
  /* A sender without WIRE_FEATURE_HASH would copy its first pass blindly
   * and skip nothing, but it would also not know that the old data is
   * there: only a sender that compares may be given an output that is
   * not empty. */
  if ((hello_features & WIRE_FEATURE_HASH) == 0)
    return false;
  if ((hello_features & WIRE_FEATURE_KEEP) == 0 && !force)
    return false;
  return holds_data;
}

uint64_t
hash_policy_kept_bytes (uint32_t hello_features, bool force,
                           const struct compare_output *o, uint32_t n)
{
  uint64_t bytes = 0;
  bool holds = false;

  for (uint32_t i = 0; i < n; i++) {
    bytes += o[i].size;
    holds |= hash_policy_holds_data (&o[i]);
  }
  return hash_policy_keep (hello_features, force, holds) ? bytes : 0;
}

bool
hash_policy_hash_offered (uint32_t hello_features)
{
  return (hello_features & (WIRE_FEATURE_HASH | WIRE_FEATURE_COMPARE_ONLY)) != 0;
}

bool
hash_policy_compare_only (uint32_t hello_features)
{
  return (hello_features & WIRE_FEATURE_COMPARE_ONLY) != 0;
}

uint32_t
hash_policy_reply_features (uint32_t hello_features, bool kept)
{
  return (hello_features & WIRE_FEATURES_KNOWN) | (kept ? WIRE_FEATURE_KEPT : 0);
}

bool
hash_policy_size_ok (const struct compare_output *o, uint64_t announced)
{
  return o->is_block_device ? o->size >= announced : o->size == announced;
}

int
hash_policy_size_mismatch (const struct compare_output *o,
                              const uint64_t *announced, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    if (!hash_policy_size_ok (&o[i], announced[i]))
      return (int) i;
  return -1;
}

bool
hash_policy_allows (enum wire_type type)
{
  switch (type) {
  case WIRE_HASH_KEY:
  case WIRE_HASH_REQ:
  case WIRE_KEEPALIVE:
  case WIRE_ERROR:
  case WIRE_ABORT:
    return true;
  default:
    return false;
  }
}
