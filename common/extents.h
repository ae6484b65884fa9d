/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: a growable list of byte extents (offset, length).
 *
 * stm-send keeps in these the extents a SNAPSHOT hands it, the ranges it
 * has yet to confirm and its hot blocks.  (The filter uses none: it
 * streams a SNAPSHOT's extents straight from its bitmap.)  Appending an
 * extent that starts where the last one ends coalesces them, so a list
 * built from a bitmap walk stays short.
 */
#ifndef STM_COMMON_EXTENTS_H
#define STM_COMMON_EXTENTS_H

#include <stddef.h>
#include <stdint.h>

struct extent {
  uint64_t offset;
  uint64_t length;
};

struct extent_list {
  struct extent *items;
  size_t len;
  size_t cap;
};

#define EXTENT_LIST_INIT { NULL, 0, 0 }

/* Append [offset, offset+length); merge with the last item if contiguous.
 * length 0 is ignored.  Returns -1 with errno ENOMEM on failure. */
int extent_list_append (struct extent_list *list, uint64_t offset, uint64_t length);
/* As extent_list_append for a list kept sorted (each extent after the
 * last), with its length bounded by max_len (at least 2): gaps shorter
 * than *bridge are bridged (the extent is merged into the last), and when
 * the list would grow past max_len, *bridge doubles (from min_bridge) and
 * the list is merged in place until it holds at most max_len / 2 items.
 * The list then covers every byte it was given plus some gaps between
 * them, in at most max_len items, whatever was appended.  *bridge starts
 * at 0.  Returns -1 with errno ENOMEM or EINVAL (out of order). */
int extent_list_append_bounded (struct extent_list *list, uint64_t offset,
                                uint64_t length, size_t max_len,
                                uint64_t min_bridge, uint64_t *bridge);
void extent_list_clear (struct extent_list *list);   /* len = 0, keeps memory */
void extent_list_free (struct extent_list *list);
uint64_t extent_list_total_bytes (const struct extent_list *list);

#endif /* STM_COMMON_EXTENTS_H */
