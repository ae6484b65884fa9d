/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the sync ledger (see sync_ledger.h). */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sync_ledger.h"
#include "bits.h"

void
sync_ledger_init (struct sync_ledger *l)
{
  memset (l, 0, sizeof *l);
  l->unsynced = (struct extent_list) EXTENT_LIST_INIT;
}

void
sync_ledger_free (struct sync_ledger *l)
{
  sync_ledger_drop_pending (l);
  free (l->pending);
  extent_list_free (&l->unsynced);
  sync_ledger_init (l);
}

int
sync_ledger_note_sent (struct sync_ledger *l, uint64_t offset, uint64_t length,
                       bool data)
{
  if (extent_list_append (&l->unsynced, offset, length) == -1) {
    errno = ENOMEM;
    return -1;
  }
  if (data)
    l->data_since_sync += length;
  return 0;
}

uint64_t
sync_ledger_cut (struct sync_ledger *l, uint64_t image_size, uint32_t block,
                 bool ends_pass, uint64_t now_ns)
{
  assert (is_power_of_two (block));
  if (l->npending == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    struct pending_sync *p = realloc (l->pending, cap * sizeof *p);
    if (p == NULL) {
      errno = ENOMEM;
      return 0;
    }
    l->pending = p;
    l->cap = cap;
  }

  struct pending_sync s = { .ranges = EXTENT_LIST_INIT };
  struct extent_list leftover = EXTENT_LIST_INIT;
  for (size_t i = 0; i < l->unsynced.len; i++) {
    uint64_t start = l->unsynced.items[i].offset;
    uint64_t end = start + l->unsynced.items[i].length;
    uint64_t aligned = end == image_size ? end : end & ~(uint64_t) (block - 1);
    if (aligned < start)
      aligned = start;
    if (extent_list_append (&s.ranges, start, aligned - start) == -1 ||
        extent_list_append (&leftover, aligned, end - aligned) == -1) {
      extent_list_free (&s.ranges);
      extent_list_free (&leftover);
      errno = ENOMEM;
      return 0;
    }
  }
  extent_list_free (&l->unsynced);
  l->unsynced = leftover;
  l->data_since_sync = 0;

  s.seq = ++l->last_seq;
  s.ends_pass = ends_pass;
  s.mirror_pos = l->mirror_pos;
  s.mirror_entries = l->mirror_entries;
  l->mirror_since_sync = 0;
  l->mirror_cut_pos = l->mirror_pos;
  s.sent_ns = now_ns;
  l->last_sync_ns = now_ns;
  l->pending[l->npending++] = s;
  return s.seq;
}

bool
sync_ledger_due (const struct sync_ledger *l, uint64_t now_ns,
                 uint64_t every_bytes, uint64_t min_bytes, uint64_t interval_ns)
{
  return l->data_since_sync >= every_bytes ||
    (l->data_since_sync >= min_bytes && now_ns - l->last_sync_ns >= interval_ns);
}

void
sync_ledger_note_mirror (struct sync_ledger *l, uint64_t pos, uint64_t entries,
                         uint64_t data_bytes, uint64_t now_ns)
{
  assert (pos >= l->mirror_pos);
  if (l->mirror_pos == l->mirror_cut_pos && pos > l->mirror_pos)
    l->mirror_first_unsynced_ns = now_ns;
  l->mirror_pos = pos;
  l->mirror_entries = entries;
  l->data_since_sync += data_bytes;
  l->mirror_since_sync += data_bytes;
}

bool
sync_ledger_mirror_durable (const struct sync_ledger *l, size_t n,
                            uint64_t *pos, uint64_t *entries)
{
  if (n == 0)
    return false;
  /* Positions only grow with the seqs: the last of the n is the furthest. */
  *pos = l->pending[n - 1].mirror_pos;
  *entries = l->pending[n - 1].mirror_entries;
  return true;
}

void
sync_ledger_rewind_mirror (struct sync_ledger *l, uint64_t pos, uint64_t entries)
{
  l->mirror_pos = l->mirror_cut_pos = pos;
  l->mirror_entries = entries;
  l->mirror_since_sync = 0;
}

bool
sync_ledger_mirror_due (const struct sync_ledger *l, uint64_t now_ns,
                        bool at_once, uint64_t every_bytes, uint64_t interval_ns)
{
  if (l->mirror_pos == l->mirror_cut_pos)
    return false;
  return at_once || l->mirror_since_sync >= every_bytes ||
    now_ns - l->mirror_first_unsynced_ns >= interval_ns;
}

size_t
sync_ledger_count_up_to (const struct sync_ledger *l, uint64_t seq)
{
  size_t n = 0;

  while (n < l->npending && l->pending[n].seq <= seq)
    n++;
  return n;
}

uint64_t
sync_ledger_bytes_of_first (const struct sync_ledger *l, size_t n)
{
  uint64_t bytes = 0;

  assert (n <= l->npending);
  for (size_t i = 0; i < n; i++)
    bytes += extent_list_total_bytes (&l->pending[i].ranges);
  return bytes;
}

void
sync_ledger_retire (struct sync_ledger *l, size_t n)
{
  assert (n <= l->npending);
  for (size_t i = 0; i < n; i++)
    extent_list_free (&l->pending[i].ranges);
  memmove (l->pending, l->pending + n, (l->npending - n) * sizeof *l->pending);
  l->npending -= n;
}

void
sync_ledger_drop_pending (struct sync_ledger *l)
{
  sync_ledger_retire (l, l->npending);
}

void
sync_ledger_forget_unsynced (struct sync_ledger *l)
{
  extent_list_clear (&l->unsynced);
  l->data_since_sync = 0;
}

void
sync_ledger_resume_from (struct sync_ledger *l, uint64_t durable_seq)
{
  if (durable_seq > l->last_seq)
    l->last_seq = durable_seq;
}
