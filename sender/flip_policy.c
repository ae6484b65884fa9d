/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the group's decisions after its flips (see flip_policy.h). */
#include <config.h>

#include "flip_policy.h"

enum flip_group_next
flip_group_after_flips (const enum disk_flip *f, size_t n)
{
  size_t done = 0, unknown = 0, refused = 0;

  for (size_t i = 0; i < n; i++) {
    done += f[i] == DISK_FLIP_DONE;
    unknown += f[i] == DISK_FLIP_UNKNOWN;
    refused += f[i] == DISK_FLIP_REFUSED;
  }
  if (done == n)
    return FLIP_GROUP_FLIPPED;
  if (done == 0 && unknown == 0)
    return FLIP_GROUP_NOTHING_FLIPPED;
  /* One disk whose outcome is unknown: there is nothing else to fence,
   * and claiming either outcome would be a guess. */
  if (n == 1)
    return FLIP_GROUP_UNKNOWN;
  if (refused > 0)
    return FLIP_GROUP_FENCE;
  return flip_group_complete (f, n) ? FLIP_GROUP_FLIPPED : FLIP_GROUP_SPLIT;
}

bool
flip_group_complete (const enum disk_flip *f, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (f[i] != DISK_FLIP_DONE && f[i] != DISK_FLIP_FENCED)
      return false;
  return true;
}

const char *
disk_flip_name (enum disk_flip f)
{
  switch (f) {
  case DISK_FLIP_NONE: return "not flipped";
  case DISK_FLIP_IN_FLIGHT: return "flipping";
  case DISK_FLIP_DONE: return "flipped";
  case DISK_FLIP_FENCED: return "fenced";
  case DISK_FLIP_REFUSED: return "frozen, not flipped";
  case DISK_FLIP_THAWED: return "tracking (serving from its source)";
  case DISK_FLIP_UNKNOWN: return "unknown";
  }
  return "unknown";
}
