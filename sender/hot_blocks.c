/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: deferring hot blocks to the final pass (see hot_blocks.h).
 *
 * Both list operations are one merge walk over the two sorted lists, so a
 * pass costs time linear in the number of extents.
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "hot_blocks.h"

void
hot_blocks_free (struct hot_blocks *h)
{
  for (unsigned i = 0; i < HOT_BLOCKS_HISTORY - 1; i++)
    extent_list_free (&h->prev[i]);
  extent_list_free (&h->deferred);
  h->history = 0;
}

uint64_t
hot_blocks_deferred_bytes (const struct hot_blocks *h)
{
  return extent_list_total_bytes (&h->deferred);
}

void
hot_blocks_forget_deferred (struct hot_blocks *h)
{
  extent_list_clear (&h->deferred);
}

static uint64_t
end_of (const struct extent *e)
{
  return e->offset + e->length;
}

int
hot_blocks_intersect (const struct extent_list *a, const struct extent_list *b,
                      struct extent_list *out)
{
  size_t i = 0, j = 0;
  extent_list_clear (out);
  while (i < a->len && j < b->len) {
    const struct extent *x = &a->items[i], *y = &b->items[j];
    uint64_t lo = x->offset > y->offset ? x->offset : y->offset;
    uint64_t hi = end_of (x) < end_of (y) ? end_of (x) : end_of (y);
    if (lo < hi && extent_list_append (out, lo, hi - lo) == -1)
      return -1;
    /* Move past whichever ends first. */
    if (end_of (x) < end_of (y))
      i++;
    else
      j++;
  }
  return 0;
}

int
hot_blocks_subtract (const struct extent_list *a, const struct extent_list *b,
                     struct extent_list *out)
{
  size_t j = 0;
  extent_list_clear (out);
  for (size_t i = 0; i < a->len; i++) {
    uint64_t pos = a->items[i].offset, end = end_of (&a->items[i]);
    /* Skip the parts of b that end before this extent. */
    while (j < b->len && end_of (&b->items[j]) <= pos)
      j++;
    size_t k = j;
    while (pos < end) {
      if (k == b->len || b->items[k].offset >= end) {
        if (extent_list_append (out, pos, end - pos) == -1)
          return -1;
        break;
      }
      if (b->items[k].offset > pos &&
          extent_list_append (out, pos, b->items[k].offset - pos) == -1)
        return -1;
      if (end_of (&b->items[k]) > pos)
        pos = end_of (&b->items[k]);
      k++;
    }
  }
  return 0;
}

/* Union of two sorted lists into out (cleared first). */
static int
merge (const struct extent_list *a, const struct extent_list *b,
       struct extent_list *out)
{
  size_t i = 0, j = 0;
  uint64_t cur_off = 0, cur_end = 0;
  bool have = false;
  extent_list_clear (out);
  while (i < a->len || j < b->len) {
    const struct extent *e;
    if (j == b->len || (i < a->len && a->items[i].offset <= b->items[j].offset))
      e = &a->items[i++];
    else
      e = &b->items[j++];
    if (have && e->offset <= cur_end) {
      if (end_of (e) > cur_end)
        cur_end = end_of (e);
      continue;
    }
    if (have && extent_list_append (out, cur_off, cur_end - cur_off) == -1)
      return -1;
    cur_off = e->offset;
    cur_end = end_of (e);
    have = true;
  }
  if (have && extent_list_append (out, cur_off, cur_end - cur_off) == -1)
    return -1;
  return 0;
}

/* Keep the first whole blocks of list that fit in room bytes. */
static void
truncate_to (struct extent_list *list, uint64_t room, uint32_t block)
{
  uint64_t used = 0;
  for (size_t i = 0; i < list->len; i++) {
    struct extent *e = &list->items[i];
    if (used + e->length <= room) {
      used += e->length;
      continue;
    }
    uint64_t keep = (room - used) / block * block;
    e->length = keep;
    list->len = keep ? i + 1 : i;
    return;
  }
}

static int
copy_list (const struct extent_list *from, struct extent_list *to)
{
  extent_list_clear (to);
  for (size_t i = 0; i < from->len; i++)
    if (extent_list_append (to, from->items[i].offset, from->items[i].length) == -1)
      return -1;
  return 0;
}

int
hot_blocks_filter (struct hot_blocks *h, struct extent_list *pass,
                   bool full, uint64_t budget_bytes, uint32_t block)
{
  struct extent_list hot = EXTENT_LIST_INIT, fresh = EXTENT_LIST_INIT;
  struct extent_list deferred = EXTENT_LIST_INIT, send = EXTENT_LIST_INIT;
  struct extent_list newest = EXTENT_LIST_INIT, tmp = EXTENT_LIST_INIT;
  int r = -1;

  /* Hot: in this snapshot and each of the previous ones held, once a
   * whole history of them is held. */
  uint64_t have = hot_blocks_deferred_bytes (h);
  if (!full && h->history == HOT_BLOCKS_HISTORY - 1 && budget_bytes > have) {
    if (copy_list (pass, &hot) == -1)
      goto out;
    for (unsigned i = 0; i < h->history; i++) {
      if (hot_blocks_intersect (&hot, &h->prev[i], &tmp) == -1)
        goto out;
      extent_list_free (&hot);
      hot = tmp;
      tmp = (struct extent_list) EXTENT_LIST_INIT;
    }
    /* Those not deferred yet join, while the budget allows. */
    if (hot_blocks_subtract (&hot, &h->deferred, &fresh) == -1)
      goto out;
    truncate_to (&fresh, budget_bytes - have, block);
  }
  if (merge (&h->deferred, &fresh, &deferred) == -1 ||
      hot_blocks_subtract (pass, &deferred, &send) == -1 ||
      (!full && copy_list (pass, &newest) == -1))
    goto out;

  /* Commit: nothing above changed h or pass.  The full pass clears the
   * history, the others shift it. */
  if (full) {
    for (unsigned i = 0; i < HOT_BLOCKS_HISTORY - 1; i++)
      extent_list_clear (&h->prev[i]);
    h->history = 0;
  }
  else {
    extent_list_free (&h->prev[HOT_BLOCKS_HISTORY - 2]);
    for (unsigned i = HOT_BLOCKS_HISTORY - 2; i > 0; i--)
      h->prev[i] = h->prev[i - 1];
    h->prev[0] = newest;
    newest = (struct extent_list) EXTENT_LIST_INIT;
    if (h->history < HOT_BLOCKS_HISTORY - 1)
      h->history++;
  }
  extent_list_free (&h->deferred);
  h->deferred = deferred;
  deferred = (struct extent_list) EXTENT_LIST_INIT;
  extent_list_free (pass);
  *pass = send;
  send = (struct extent_list) EXTENT_LIST_INIT;
  r = 0;

 out:
  if (r == -1)
    errno = ENOMEM;
  extent_list_free (&hot);
  extent_list_free (&fresh);
  extent_list_free (&deferred);
  extent_list_free (&send);
  extent_list_free (&newest);
  extent_list_free (&tmp);
  return r;
}
