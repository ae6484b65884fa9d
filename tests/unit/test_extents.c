/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the extent list (common/extents.c): coalescing,
 * growth past the first allocation, clear versus free, totals, and the
 * ranges that end at 2^64.
 */
#include <config.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "extents.h"

static void
test_empty (void **state)
{
  struct extent_list list = EXTENT_LIST_INIT;

  assert_int_equal (list.len, 0);
  assert_int_equal (extent_list_total_bytes (&list), 0);
  /* Zero-length extents are ignored, even on an empty list. */
  assert_int_equal (extent_list_append (&list, 100, 0), 0);
  assert_int_equal (list.len, 0);
  extent_list_free (&list);
  extent_list_free (&list);     /* freeing twice is harmless */
}

static void
test_coalesce (void **state)
{
  struct extent_list list = EXTENT_LIST_INIT;

  assert_int_equal (extent_list_append (&list, 0, 4096), 0);
  assert_int_equal (extent_list_append (&list, 4096, 4096), 0);  /* merges */
  assert_int_equal (extent_list_append (&list, 8192, 0), 0);     /* ignored */
  assert_int_equal (list.len, 1);
  assert_int_equal (list.items[0].offset, 0);
  assert_int_equal (list.items[0].length, 8192);

  assert_int_equal (extent_list_append (&list, 16384, 100), 0);  /* gap */
  assert_int_equal (extent_list_append (&list, 16484, 50), 0);   /* merges */
  assert_int_equal (list.len, 2);
  assert_int_equal (list.items[1].offset, 16384);
  assert_int_equal (list.items[1].length, 150);

  /* Only the last item is a merge candidate: an extent contiguous with an
   * earlier one, or overlapping, is appended as it is. */
  assert_int_equal (extent_list_append (&list, 8192, 10), 0);
  assert_int_equal (list.len, 3);
  assert_int_equal (extent_list_append (&list, 8000, 192), 0);   /* ends at 8192 */
  assert_int_equal (list.len, 4);

  assert_int_equal (extent_list_total_bytes (&list), 8192 + 150 + 10 + 192);
  extent_list_free (&list);
  assert_null (list.items);
  assert_int_equal (list.len, 0);
  assert_int_equal (list.cap, 0);
}

static void
test_growth (void **state)
{
  struct extent_list list = EXTENT_LIST_INIT;
  const size_t n = 10000;
  size_t i, cap;

  /* Non-contiguous extents, many more than the first allocation. */
  for (i = 0; i < n; i++)
    assert_int_equal (extent_list_append (&list, i * 2 * 512, 512), 0);
  assert_int_equal (list.len, n);
  assert_true (list.cap >= n);
  for (i = 0; i < n; i++) {
    assert_int_equal (list.items[i].offset, i * 2 * 512);
    assert_int_equal (list.items[i].length, 512);
  }
  assert_int_equal (extent_list_total_bytes (&list), n * 512);

  /* Clear keeps the memory for reuse. */
  cap = list.cap;
  extent_list_clear (&list);
  assert_int_equal (list.len, 0);
  assert_int_equal (list.cap, cap);
  assert_non_null (list.items);
  assert_int_equal (extent_list_total_bytes (&list), 0);
  assert_int_equal (extent_list_append (&list, 7, 3), 0);
  assert_int_equal (list.len, 1);
  assert_int_equal (list.items[0].offset, 7);
  extent_list_free (&list);
}

static void
test_contiguous_stays_one (void **state)
{
  struct extent_list list = EXTENT_LIST_INIT;
  uint64_t off = 0;
  size_t i;

  for (i = 0; i < 1000; i++) {
    assert_int_equal (extent_list_append (&list, off, i + 1), 0);
    off += i + 1;
  }
  assert_int_equal (list.len, 1);
  assert_int_equal (list.items[0].length, off);
  extent_list_free (&list);
}

static void
test_end_of_range (void **state)
{
  struct extent_list list = EXTENT_LIST_INIT;

  /* An extent ending exactly at 2^64 is representable. */
  assert_int_equal (extent_list_append (&list, UINT64_MAX - 99, 50), 0);
  assert_int_equal (extent_list_append (&list, UINT64_MAX - 49, 50), 0);
  assert_int_equal (list.len, 1);
  assert_int_equal (list.items[0].length, 100);

  /* Something at offset 0 after it is not "contiguous" by wrap-around. */
  assert_int_equal (extent_list_append (&list, 0, 10), 0);
  assert_int_equal (list.len, 2);

  /* One past 2^64 is an error, and leaves the list unchanged. */
  errno = 0;
  assert_int_equal (extent_list_append (&list, UINT64_MAX, 2), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (list.len, 2);
  extent_list_free (&list);
}

/* A list bounded to a few items bridges the shortest gaps first and
 * always covers every byte it was given. */
static void
test_bounded (void **state)
{
  (void) state;
  struct extent_list l = EXTENT_LIST_INIT;
  uint64_t bridge = 0;
  const uint64_t K = 1024;

  /* Under the bound: as extent_list_append. */
  assert_int_equal (extent_list_append_bounded (&l, 0, 4 * K, 8, 64 * K, &bridge), 0);
  assert_int_equal (extent_list_append_bounded (&l, 4 * K, 4 * K, 8, 64 * K, &bridge), 0);
  assert_int_equal (l.len, 1);
  assert_int_equal (bridge, 0);
  /* Out of order or overlapping: refused. */
  assert_int_equal (extent_list_append_bounded (&l, 4 * K, 4 * K, 8, 64 * K, &bridge), -1);
  assert_int_equal (errno, EINVAL);

  /* 1000 blocks of 4K, every other one (gaps of 4K), then a far one. */
  extent_list_clear (&l);
  bridge = 0;
  uint64_t given = 0;
  for (uint64_t i = 0; i < 1000; i++) {
    assert_int_equal (extent_list_append_bounded (&l, i * 8 * K, 4 * K, 8, 64 * K, &bridge), 0);
    given += 4 * K;
    assert_true (l.len <= 8);
  }
  assert_int_equal (extent_list_append_bounded (&l, 1 << 30, 4 * K, 8, 64 * K, &bridge), 0);
  given += 4 * K;
  assert_true (l.len <= 8);
  assert_int_equal (bridge, 64 * K);
  /* The short gaps are bridged, the 1 GiB one is not. */
  assert_int_equal (l.len, 2);
  assert_int_equal (l.items[0].offset, 0);
  assert_int_equal (l.items[0].length, 999 * 8 * K + 4 * K);
  assert_int_equal (l.items[1].offset, 1 << 30);
  assert_int_equal (l.items[1].length, 4 * K);
  assert_true (extent_list_total_bytes (&l) >= given);

  /* Groups of three extents 16K apart, the groups 1 MiB apart: bridging
   * the short gaps is enough, and the long ones stay. */
  extent_list_clear (&l);
  bridge = 0;
  uint64_t off = 0;
  for (unsigned i = 0; i < 45; i++) {
    assert_int_equal (extent_list_append_bounded (&l, off, 4 * K, 16, 64 * K, &bridge), 0);
    off += 4 * K + (i % 3 == 2 ? 1024 * K : 16 * K);
    assert_true (l.len <= 16);
  }
  assert_int_equal (bridge, 64 * K);
  assert_int_equal (l.len, 15);
  for (size_t i = 1; i < l.len; i++)
    assert_int_equal (l.items[i].offset - (l.items[i - 1].offset + l.items[i - 1].length),
                      1024 * K);
  extent_list_free (&l);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_empty),
    cmocka_unit_test (test_coalesce),
    cmocka_unit_test (test_growth),
    cmocka_unit_test (test_contiguous_stays_one),
    cmocka_unit_test (test_end_of_range),
    cmocka_unit_test (test_bounded),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
