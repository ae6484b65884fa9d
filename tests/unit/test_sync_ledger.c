/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the sender's sync ledger (sender/sync_ledger.c):
 * which ranges each SYNC covers (block-aligned, the unaligned tail left
 * for the next), when a SYNC is due within a pass, retiring what DURABLE
 * answered, and SYNC numbers that never go back.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sync_ledger.h"

#define K 1024u
#define BLOCK (64 * K)
#define SIZE (100 * BLOCK + 4 * K)      /* the last block is partial */

static void
assert_range (const struct extent_list *l, size_t i, uint64_t offset, uint64_t length)
{
  assert_true (i < l->len);
  assert_int_equal (l->items[i].offset, offset);
  assert_int_equal (l->items[i].length, length);
}

static void
test_cut_aligns (void **state)
{
  struct sync_ledger l;

  sync_ledger_init (&l);
  assert_int_equal (sync_ledger_note_sent (&l, 0, 2 * BLOCK, true), 0);
  /* A pass that stopped mid-extent: the tail past the last whole block
   * stays for the next SYNC. */
  assert_int_equal (sync_ledger_note_sent (&l, 4 * BLOCK, BLOCK + 8 * K, true), 0);
  assert_int_equal (sync_ledger_cut (&l, SIZE, BLOCK, false, 100), 1);
  assert_int_equal (l.npending, 1);
  const struct extent_list *r = &l.pending[0].ranges;
  assert_range (r, 0, 0, 2 * BLOCK);
  assert_range (r, 1, 4 * BLOCK, BLOCK);
  assert_int_equal (l.unsynced.len, 1);
  assert_int_equal (l.unsynced.items[0].offset, 5 * BLOCK);
  assert_int_equal (l.data_since_sync, 0);
  assert_int_equal (l.last_sync_ns, 100);

  /* The next SYNC covers the tail with what follows it; a range that
   * ends at the image size is whole however it ends. */
  assert_int_equal (sync_ledger_note_sent (&l, 5 * BLOCK + 8 * K, BLOCK - 8 * K, false), 0);
  assert_int_equal (sync_ledger_note_sent (&l, 100 * BLOCK, 4 * K, false), 0);
  assert_int_equal (sync_ledger_cut (&l, SIZE, BLOCK, true, 200), 2);
  r = &l.pending[1].ranges;
  assert_int_equal (extent_list_total_bytes (r), 5 * BLOCK + 8 * K - 5 * BLOCK
                    + BLOCK - 8 * K + 4 * K);
  assert_true (l.pending[1].ends_pass);
  assert_int_equal (l.unsynced.len, 0);
  sync_ledger_free (&l);
}

static void
test_due (void **state)
{
  struct sync_ledger l;
  const uint64_t every = 256 * K * K, min = K * K, interval = 1000000000;

  sync_ledger_init (&l);
  assert_false (sync_ledger_due (&l, 5 * interval, every, min, interval));
  /* Zeroes cost the receiver no writing: they never make a SYNC due. */
  assert_int_equal (sync_ledger_note_sent (&l, 0, every, false), 0);
  assert_false (sync_ledger_due (&l, 5 * interval, every, min, interval));
  assert_int_equal (sync_ledger_note_sent (&l, every, min, true), 0);
  assert_false (sync_ledger_due (&l, interval - 1, every, min, interval));
  assert_true (sync_ledger_due (&l, interval, every, min, interval));
  assert_int_equal (sync_ledger_cut (&l, 4 * every, BLOCK, false, interval), 1);
  assert_false (sync_ledger_due (&l, 3 * interval, every, min, interval));
  assert_int_equal (sync_ledger_note_sent (&l, 2 * every, every, true), 0);
  assert_true (sync_ledger_due (&l, interval, every, min, interval));
  sync_ledger_free (&l);
}

static void
test_retire_and_resume (void **state)
{
  struct sync_ledger l;

  sync_ledger_init (&l);
  for (uint64_t i = 0; i < 20; i++) {
    assert_int_equal (sync_ledger_note_sent (&l, i * BLOCK, BLOCK, true), 0);
    assert_int_equal (sync_ledger_cut (&l, SIZE, BLOCK, i % 5 == 4, i), i + 1);
  }
  assert_int_equal (l.npending, 20);
  assert_int_equal (sync_ledger_count_up_to (&l, 0), 0);
  assert_int_equal (sync_ledger_count_up_to (&l, 7), 7);
  assert_int_equal (sync_ledger_count_up_to (&l, 99), 20);
  assert_int_equal (sync_ledger_bytes_of_first (&l, 7), 7 * BLOCK);
  sync_ledger_retire (&l, 7);
  assert_int_equal (l.npending, 13);
  assert_int_equal (l.pending[0].seq, 8);
  assert_int_equal (sync_ledger_count_up_to (&l, 7), 0);
  assert_int_equal (sync_ledger_count_up_to (&l, 10), 3);

  /* The connection is lost: nothing pending is answered any more, and
   * what a half-sent pass sent goes again. */
  assert_int_equal (sync_ledger_note_sent (&l, 50 * BLOCK, BLOCK, true), 0);
  sync_ledger_drop_pending (&l);
  sync_ledger_forget_unsynced (&l);
  assert_int_equal (l.npending, 0);
  assert_int_equal (l.unsynced.len, 0);
  assert_int_equal (l.data_since_sync, 0);

  /* Numbers never go back, even to a receiver that held less. */
  sync_ledger_resume_from (&l, 3);
  assert_int_equal (sync_ledger_cut (&l, SIZE, BLOCK, false, 0), 21);
  /* And they follow a receiver that held more (an earlier sender's). */
  sync_ledger_resume_from (&l, 500);
  assert_int_equal (sync_ledger_cut (&l, SIZE, BLOCK, false, 0), 501);
  sync_ledger_free (&l);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_cut_aligns),
    cmocka_unit_test (test_due),
    cmocka_unit_test (test_retire_and_resume),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
