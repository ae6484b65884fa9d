/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: noticing guest writes to the same block that are in
 * flight at the same time.
 *
 * Records in the mirror ring are ordered by reservation, after the plugin
 * has completed each write.  Two writes to one block that overlap in time
 * may reach the plugin in one order and the ring in the other, and then
 * the destination would keep the data the source overwrote.  NBD leaves
 * the outcome of such writes to the server, but the destination must
 * match whatever the source ended up with, so the filter notices them and
 * has the block copied again from the source once they have all
 * completed.
 *
 * A fixed table of counters, one per unit (4 KiB, see migrate.c) modulo
 * its size, counts the write-like requests inside each unit; a request that enters a slot
 * already counted marks it contended.  The last request to leave a
 * contended slot clears the mark and is told to mark its blocks dirty:
 * by then every request of the group has reserved its ring record, so
 * the copy read that the dirty bit causes is placed after all of them
 * (docs/architecture.md, "Mirroring").  Two units that share a slot
 * only cause a needless copy.  Every update is one atomic operation on
 * the slot, so writers to different blocks share nothing.
 */
#ifndef STM_WRITE_OVERLAP_H
#define STM_WRITE_OVERLAP_H

#include <stdbool.h>
#include <stdint.h>

#define WRITE_OVERLAP_SLOTS 65536u           /* a power of two */
#define WRITE_OVERLAP_CONTENDED UINT32_C (0x80000000)

struct write_overlap {
  uint32_t slots[WRITE_OVERLAP_SLOTS];       /* count | CONTENDED, atomic */
};

/* A request on units [first, first+count) enters, before the plugin. */
void write_overlap_enter (struct write_overlap *wo, uint64_t first,
                          uint64_t count);

/* It leaves, after its ring record (if any) is committed.  Returns true
 * when it was the last of a group that overlapped in time: the caller
 * marks its range dirty. */
bool write_overlap_leave (struct write_overlap *wo, uint64_t first,
                          uint64_t count);

#endif /* STM_WRITE_OVERLAP_H */
