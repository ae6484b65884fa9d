/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: the difference map of one disk (see
 * compare_diff.h).
 *
 * The ranges are found a 64-bit word at a time on "differs and not
 * written", so listing the differences of a large disk that has few
 * costs little more than reading its bitmaps once.
 */
#include <config.h>

#include <assert.h>

#include "compare_diff.h"

#define BITS 64

int
compare_diff_init (struct compare_diff *d, uint64_t size, uint32_t unit)
{
  uint64_t units = block_count_for_size (size, unit);

  d->size = size;
  d->unit = unit;
  if (block_bitmap_init (&d->differs, units) == -1)
    return -1;
  if (block_bitmap_init (&d->written, units) == -1) {
    block_bitmap_free (&d->differs);
    return -1;
  }
  return 0;
}

void
compare_diff_free (struct compare_diff *d)
{
  block_bitmap_free (&d->differs);
  block_bitmap_free (&d->written);
}

void
compare_diff_mark (struct compare_diff *d, uint64_t offset, uint64_t length)
{
  uint64_t first, count;

  assert (offset % d->unit == 0 && length > 0 && offset < d->size &&
          length <= d->size - offset &&
          ((offset + length) % d->unit == 0 || offset + length == d->size));
  block_range_of_bytes (offset, length, d->unit, &first, &count);
  block_bitmap_set_range (&d->differs, first, count);
}

void
compare_diff_written (struct compare_diff *d, uint64_t offset, uint64_t length)
{
  uint64_t first, count;

  if (offset >= d->size || length == 0)
    return;
  if (length > d->size - offset)
    length = d->size - offset;
  block_range_of_bytes (offset, length, d->unit, &first, &count);
  block_bitmap_set_range (&d->written, first, count);
}

/* Word w of "differs and not written". */
static uint64_t
real_word (const struct compare_diff *d, size_t w)
{
  return d->differs.words[w] & ~d->written.words[w];
}

/* The first unit at or after u whose bit in "differs and not written" is
 * set (or clear, when !set); the number of units if there is none. */
static uint64_t
find_unit (const struct compare_diff *d, uint64_t u, bool set)
{
  uint64_t n = d->differs.nbits;

  while (u < n) {
    size_t w = u / BITS;
    uint64_t x = real_word (d, w);
    if (!set)
      x = ~x;
    x &= ~UINT64_C (0) << (u % BITS);
    if (x != 0) {
      uint64_t r = (uint64_t) w * BITS + (uint64_t) __builtin_ctzll (x);
      /* The bits past the last unit are clear, so "clear" finds them. */
      return r < n ? r : n;
    }
    u = ((uint64_t) w + 1) * BITS;
  }
  return n;
}

/* The bytes of units [first, end), the last one clipped to the disk. */
static void
units_to_bytes (const struct compare_diff *d, uint64_t first, uint64_t end,
                uint64_t *offset, uint64_t *length)
{
  uint64_t to = end * d->unit;

  *offset = first * d->unit;
  if (to > d->size)
    to = d->size;
  *length = to - *offset;
}

bool
compare_diff_next (const struct compare_diff *d, uint64_t *cursor,
                   uint64_t *offset, uint64_t *length)
{
  if (*cursor >= d->size)
    return false;
  uint64_t first = find_unit (d, *cursor / d->unit, true);
  if (first >= d->differs.nbits) {
    *cursor = d->size;
    return false;
  }
  uint64_t end = find_unit (d, first, false);
  units_to_bytes (d, first, end, offset, length);
  *cursor = *offset + *length;
  return true;
}

void
compare_diff_totals (const struct compare_diff *d, struct compare_diff_totals *t)
{
  uint64_t cursor = 0, offset, length, both = 0;

  t->bytes_differing = t->ranges = 0;
  while (compare_diff_next (d, &cursor, &offset, &length)) {
    t->bytes_differing += length;
    t->ranges++;
  }
  for (size_t w = 0; w < d->differs.nwords; w++)
    both += (uint64_t) __builtin_popcountll (d->differs.words[w] & d->written.words[w]);
  t->bytes_changed_during = both * d->unit;
  /* The last unit may be short. */
  uint64_t n = d->differs.nbits;
  if (both > 0 && block_bitmap_test (&d->differs, n - 1) &&
      block_bitmap_test (&d->written, n - 1))
    t->bytes_changed_during -= n * d->unit - d->size;
}
