/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the sender's hot-block deferral (sender/hot_blocks.c):
 * the list intersection and difference, and which blocks a pass leaves for
 * the final one: only blocks dirty in three snapshots in a row after the
 * full pass,
 * never more than the budget, never a deferred block sent, and the pass
 * plus the deferred set always covering the whole snapshot.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hot_blocks.h"

#define B 65536u

static void
make (struct extent_list *l, const uint64_t *pairs, size_t n)
{
  extent_list_clear (l);
  for (size_t i = 0; i < n; i += 2)
    assert_int_equal (extent_list_append (l, pairs[i], pairs[i + 1]), 0);
}

static void
expect (const struct extent_list *l, const uint64_t *pairs, size_t n)
{
  assert_int_equal (l->len, n / 2);
  for (size_t i = 0; i < n; i += 2) {
    assert_int_equal (l->items[i / 2].offset, pairs[i]);
    assert_int_equal (l->items[i / 2].length, pairs[i + 1]);
  }
}

static void
test_intersect_subtract (void **state)
{
  (void) state;
  struct extent_list a = EXTENT_LIST_INIT, b = EXTENT_LIST_INIT, o = EXTENT_LIST_INIT;
  make (&a, (uint64_t[]) { 0, 100, 200, 100, 400, 100 }, 6);
  make (&b, (uint64_t[]) { 50, 200, 350, 100, 1000, 10 }, 6);
  assert_int_equal (hot_blocks_intersect (&a, &b, &o), 0);
  expect (&o, (uint64_t[]) { 50, 50, 200, 50, 400, 50 }, 6);
  assert_int_equal (hot_blocks_subtract (&a, &b, &o), 0);
  expect (&o, (uint64_t[]) { 0, 50, 250, 50, 450, 50 }, 6);
  assert_int_equal (hot_blocks_subtract (&b, &a, &o), 0);
  expect (&o, (uint64_t[]) { 100, 100, 350, 50, 1000, 10 }, 6);
  /* Empty lists. */
  struct extent_list e = EXTENT_LIST_INIT;
  assert_int_equal (hot_blocks_intersect (&a, &e, &o), 0);
  assert_int_equal (o.len, 0);
  assert_int_equal (hot_blocks_subtract (&a, &e, &o), 0);
  expect (&o, (uint64_t[]) { 0, 100, 200, 100, 400, 100 }, 6);
  assert_int_equal (hot_blocks_subtract (&e, &a, &o), 0);
  assert_int_equal (o.len, 0);
  /* One extent of b spanning several of a, and a hole in the middle. */
  make (&b, (uint64_t[]) { 0, 1000 }, 2);
  assert_int_equal (hot_blocks_subtract (&a, &b, &o), 0);
  assert_int_equal (o.len, 0);
  make (&b, (uint64_t[]) { 20, 10 }, 2);
  assert_int_equal (hot_blocks_subtract (&a, &b, &o), 0);
  expect (&o, (uint64_t[]) { 0, 20, 30, 70, 200, 100, 400, 100 }, 8);
  extent_list_free (&a);
  extent_list_free (&b);
  extent_list_free (&o);
}

static void
test_defer (void **state)
{
  (void) state;
  struct hot_blocks h = HOT_BLOCKS_INIT;
  struct extent_list pass = EXTENT_LIST_INIT;
  assert_int_equal (HOT_BLOCKS_HISTORY, 3);

  /* The full pass: everything, nothing deferred. */
  make (&pass, (uint64_t[]) { 0, 16 * B }, 2);
  assert_int_equal (hot_blocks_filter (&h, &pass, true, 100 * B, B), 0);
  expect (&pass, (uint64_t[]) { 0, 16 * B }, 2);
  /* Passes 2 and 3: not enough history yet (the full pass does not
   * count), though blocks 0, 8 and 9 recur. */
  make (&pass, (uint64_t[]) { 0, 2 * B, 8 * B, 2 * B }, 4);
  assert_int_equal (hot_blocks_filter (&h, &pass, false, 100 * B, B), 0);
  expect (&pass, (uint64_t[]) { 0, 2 * B, 8 * B, 2 * B }, 4);
  make (&pass, (uint64_t[]) { 0, B, 4 * B, B, 8 * B, 2 * B }, 6);
  assert_int_equal (hot_blocks_filter (&h, &pass, false, 100 * B, B), 0);
  expect (&pass, (uint64_t[]) { 0, B, 4 * B, B, 8 * B, 2 * B }, 6);
  assert_int_equal (hot_blocks_deferred_bytes (&h), 0);
  /* Pass 4: 0 and 8 in all three (9 is not this time, 4 only twice). */
  make (&pass, (uint64_t[]) { 0, B, 4 * B, B, 8 * B, B }, 6);
  assert_int_equal (hot_blocks_filter (&h, &pass, false, 100 * B, B), 0);
  expect (&pass, (uint64_t[]) { 4 * B, B }, 2);
  expect (&h.deferred, (uint64_t[]) { 0, B, 8 * B, B }, 4);
  /* Pass 5: 0 again (deferred: not sent), 4 the third time in a row:
   * hot; 5..7 new. */
  make (&pass, (uint64_t[]) { 0, B, 4 * B, 4 * B }, 4);
  assert_int_equal (hot_blocks_filter (&h, &pass, false, 100 * B, B), 0);
  expect (&pass, (uint64_t[]) { 5 * B, 3 * B }, 2);
  assert_int_equal (hot_blocks_deferred_bytes (&h), 3 * B);
  /* Passes 6, 7: 5..7 again; budget 4 blocks in all, so only 5 joins. */
  make (&pass, (uint64_t[]) { 5 * B, 3 * B }, 2);
  assert_int_equal (hot_blocks_filter (&h, &pass, false, 4 * B, B), 0);
  expect (&pass, (uint64_t[]) { 5 * B, 3 * B }, 2);
  assert_int_equal (hot_blocks_filter (&h, &pass, false, 4 * B, B), 0);
  assert_int_equal (hot_blocks_deferred_bytes (&h), 4 * B);
  expect (&pass, (uint64_t[]) { 6 * B, 2 * B }, 2);
  /* A budget below what is deferred defers nothing new but still keeps
   * the deferred blocks out. */
  make (&pass, (uint64_t[]) { 0, 10 * B }, 2);
  assert_int_equal (hot_blocks_filter (&h, &pass, false, B, B), 0);
  expect (&pass, (uint64_t[]) { B, 3 * B, 6 * B, 2 * B, 9 * B, B }, 6);
  /* After RESUME the deferred blocks are dirty again: forget them. */
  hot_blocks_forget_deferred (&h);
  assert_int_equal (hot_blocks_deferred_bytes (&h), 0);
  hot_blocks_free (&h);
  extent_list_free (&pass);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_intersect_subtract),
    cmocka_unit_test (test_defer),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
