/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: a growable list of byte extents (see extents.h).
 *
 * The array doubles when full, so appending n extents costs O(n) in all.
 * An extent that starts exactly where the last one ends is merged into it:
 * walking a bitmap run by run already yields maximal runs, but extents
 * built from several sources (or split at a size limit) come out coalesced
 * too.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "extents.h"

/* The first allocation; small enough not to matter, large enough that a
 * typical snapshot needs no regrowth. */
#define EXTENT_LIST_INITIAL_CAP 16

static int
extent_list_grow (struct extent_list *list)
{
  size_t new_cap = list->cap == 0 ? EXTENT_LIST_INITIAL_CAP : list->cap * 2;
  struct extent *items;

  if (new_cap < list->cap || new_cap > SIZE_MAX / sizeof (struct extent)) {
    errno = ENOMEM;
    return -1;
  }
  items = realloc (list->items, new_cap * sizeof (struct extent));
  if (items == NULL) {
    errno = ENOMEM;
    return -1;
  }
  list->items = items;
  list->cap = new_cap;
  return 0;
}

int
extent_list_append (struct extent_list *list, uint64_t offset, uint64_t length)
{
  if (length == 0)
    return 0;
  /* An extent that would end past 2^64 describes no real byte range; it is
   * a caller's arithmetic error, not something to wrap around. */
  if (length - 1 > UINT64_MAX - offset) {
    errno = EINVAL;
    return -1;
  }

  if (list->len > 0) {
    struct extent *last = &list->items[list->len - 1];

    /* Merge when contiguous, unless the merged length would not fit (only
     * possible for a list covering all of the 2^64 byte space). */
    if (last->length <= UINT64_MAX - last->offset
        && last->offset + last->length == offset
        && length <= UINT64_MAX - last->length) {
      last->length += length;
      return 0;
    }
  }

  if (list->len == list->cap && extent_list_grow (list) == -1)
    return -1;
  list->items[list->len].offset = offset;
  list->items[list->len].length = length;
  list->len++;
  return 0;
}

/* Merge, in place, neighbours less than gap bytes apart. */
static void
extent_list_bridge (struct extent_list *list, uint64_t gap)
{
  size_t out = 0;

  for (size_t i = 0; i < list->len; i++) {
    struct extent e = list->items[i];
    if (out > 0) {
      struct extent *last = &list->items[out - 1];
      uint64_t end = last->offset + last->length;
      if (e.offset - end < gap) {
        last->length = e.offset + e.length - last->offset;
        continue;
      }
    }
    list->items[out++] = e;
  }
  list->len = out;
}

int
extent_list_append_bounded (struct extent_list *list, uint64_t offset,
                            uint64_t length, size_t max_len,
                            uint64_t min_bridge, uint64_t *bridge)
{
  assert (max_len >= 2 && min_bridge > 0);
  if (length == 0)
    return 0;
  if (list->len > 0) {
    struct extent *last = &list->items[list->len - 1];
    uint64_t end = last->offset + last->length;
    if (offset < end || length - 1 > UINT64_MAX - offset) {
      errno = EINVAL;
      return -1;
    }
    if (offset - end < *bridge) {
      last->length = offset + length - last->offset;
      return 0;
    }
  }
  if (extent_list_append (list, offset, length) == -1)
    return -1;
  while (list->len > max_len) {
    /* Each doubling merges at least the gaps below the new bridge; with
     * max_len / 2 items left there is room to append again. */
    do {
      *bridge = *bridge == 0 ? min_bridge
        : *bridge > UINT64_MAX / 2 ? UINT64_MAX : *bridge * 2;
      extent_list_bridge (list, *bridge);
    } while (list->len > max_len / 2 && *bridge != UINT64_MAX);
  }
  return 0;
}

void
extent_list_clear (struct extent_list *list)
{
  list->len = 0;
}

void
extent_list_free (struct extent_list *list)
{
  free (list->items);
  list->items = NULL;
  list->len = 0;
  list->cap = 0;
}

uint64_t
extent_list_total_bytes (const struct extent_list *list)
{
  uint64_t total = 0;
  size_t i;

  for (i = 0; i < list->len; i++)
    total += list->items[i].length;
  return total;
}
