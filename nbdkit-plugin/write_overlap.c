/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: writes to one block in flight at once (see
 * write_overlap.h). */
#include <config.h>

#include <stdbool.h>
#include <stdint.h>

#include "write_overlap.h"

/* A request touches each slot at most once: a range longer than the table
 * covers every slot. */
static uint64_t
slots_touched (uint64_t count)
{
  return count < WRITE_OVERLAP_SLOTS ? count : WRITE_OVERLAP_SLOTS;
}

void
write_overlap_enter (struct write_overlap *wo, uint64_t first, uint64_t count)
{
  uint64_t n = slots_touched (count);

  for (uint64_t i = 0; i < n; i++) {
    uint32_t *slot = &wo->slots[(first + i) & (WRITE_OVERLAP_SLOTS - 1)];
    uint32_t old = __atomic_fetch_add (slot, 1, __ATOMIC_SEQ_CST);

    if ((old & ~WRITE_OVERLAP_CONTENDED) != 0 &&
        (old & WRITE_OVERLAP_CONTENDED) == 0)
      __atomic_fetch_or (slot, WRITE_OVERLAP_CONTENDED, __ATOMIC_SEQ_CST);
  }
}

bool
write_overlap_leave (struct write_overlap *wo, uint64_t first, uint64_t count)
{
  uint64_t n = slots_touched (count);
  bool last_of_group = false;

  for (uint64_t i = 0; i < n; i++) {
    uint32_t *slot = &wo->slots[(first + i) & (WRITE_OVERLAP_SLOTS - 1)];
    uint32_t old = __atomic_fetch_sub (slot, 1, __ATOMIC_SEQ_CST);
    uint32_t expected = WRITE_OVERLAP_CONTENDED;

    if ((old & ~WRITE_OVERLAP_CONTENDED) != 1 ||
        (old & WRITE_OVERLAP_CONTENDED) == 0)
      continue;
    /* We were the last inside a contended slot.  If nobody has entered
     * since, clear the mark and report; if someone has, the mark stays
     * and the last of the group that now holds the slot reports. */
    if (__atomic_compare_exchange_n (slot, &expected, 0, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
      last_of_group = true;
  }
  return last_of_group;
}
