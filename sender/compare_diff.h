/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: where one disk differs from its destination,
 * and which of those places the guest wrote while it was being compared.
 *
 * Two bitmaps of hash units (compare_pass_unit of the disk's block): the
 * units whose hashes differed, and the units the source's filter
 * reported written during the comparison (its SNAPSHOTs after the first).
 * Bitmaps rather than lists of ranges, so the memory is bounded by the
 * disk's size (two bits per unit: 4 MiB for a TiB in 64 KiB units) however
 * the differences are scattered.  A difference inside a written unit is
 * not a difference of the pair, since the source changed under the
 * comparison; it is counted apart ("changed during").  The written
 * extents come in blocks of the filter, a multiple of the unit, so
 * marking every unit they touch marks nothing the guest did not write.
 *
 * Pure: no I/O.  Ranges are in bytes; the last unit of a disk may be
 * shorter than the others, and ranges are clipped to the disk's size.
 */
#ifndef STM_SENDER_COMPARE_DIFF_H
#define STM_SENDER_COMPARE_DIFF_H

#include <stdbool.h>
#include <stdint.h>

#include "bitmap.h"

struct compare_diff {
  uint64_t size;                 /* the disk's size in bytes */
  uint32_t unit;                 /* the hash unit, a power of two */
  struct block_bitmap differs;   /* units whose hashes differed */
  struct block_bitmap written;   /* units written during the comparison */
};

/* What a finished comparison found on one disk. */
struct compare_diff_totals {
  uint64_t bytes_differing;      /* differing, outside written units */
  uint64_t ranges;               /* maximal runs of those */
  uint64_t bytes_changed_during; /* differing, inside written units */
};

/* Both bitmaps, all clear, for a disk of size bytes in units of unit (a
 * power of two).  -1 with errno ENOMEM. */
int compare_diff_init (struct compare_diff *d, uint64_t size, uint32_t unit);
void compare_diff_free (struct compare_diff *d);

/* The units of [offset, offset+length) differ.  offset is a multiple of
 * the unit, and the range ends on a unit or at the disk's end (as
 * compare_run_end's runs do); asserted. */
void compare_diff_mark (struct compare_diff *d, uint64_t offset, uint64_t length);

/* The guest wrote [offset, offset+length) during the comparison: every
 * unit it touches is written (clipped to the disk). */
void compare_diff_written (struct compare_diff *d, uint64_t offset, uint64_t length);

/* The first range at or after *cursor that differs outside the written
 * units, maximal: true with *offset and *length filled and *cursor moved
 * past it; false when there is none.  Start with *cursor 0. */
bool compare_diff_next (const struct compare_diff *d, uint64_t *cursor,
                        uint64_t *offset, uint64_t *length);

/* The totals of the disk, as compare_diff_next would list them. */
void compare_diff_totals (const struct compare_diff *d, struct compare_diff_totals *t);

#endif /* STM_SENDER_COMPARE_DIFF_H */
