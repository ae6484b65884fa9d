/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of what a group of disks does after its flips
 * (sender/flip_policy.c): never back to the sources once a disk may have
 * flipped, complete only when every disk forwards or is fenced. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "flip_policy.h"

#define N(a) (sizeof (a) / sizeof (a)[0])

static void
test_every_disk_flipped (void **state)
{
  (void) state;
  enum disk_flip one[] = { DISK_FLIP_DONE };
  enum disk_flip two[] = { DISK_FLIP_DONE, DISK_FLIP_DONE };
  assert_int_equal (flip_group_after_flips (one, N (one)), FLIP_GROUP_FLIPPED);
  assert_int_equal (flip_group_after_flips (two, N (two)), FLIP_GROUP_FLIPPED);
}

static void
test_nothing_flipped_thaws_all (void **state)
{
  (void) state;
  enum disk_flip a[] = { DISK_FLIP_REFUSED, DISK_FLIP_THAWED };
  enum disk_flip b[] = { DISK_FLIP_REFUSED };
  enum disk_flip c[] = { DISK_FLIP_THAWED };
  assert_int_equal (flip_group_after_flips (a, N (a)), FLIP_GROUP_NOTHING_FLIPPED);
  assert_int_equal (flip_group_after_flips (b, N (b)), FLIP_GROUP_NOTHING_FLIPPED);
  assert_int_equal (flip_group_after_flips (c, N (c)), FLIP_GROUP_NOTHING_FLIPPED);
}

static void
test_one_disk_unknown_is_reported (void **state)
{
  (void) state;
  enum disk_flip a[] = { DISK_FLIP_UNKNOWN };
  assert_int_equal (flip_group_after_flips (a, N (a)), FLIP_GROUP_UNKNOWN);
}

static void
test_refused_disks_are_fenced_once_another_may_have_flipped (void **state)
{
  (void) state;
  enum disk_flip a[] = { DISK_FLIP_DONE, DISK_FLIP_REFUSED };
  enum disk_flip b[] = { DISK_FLIP_UNKNOWN, DISK_FLIP_REFUSED, DISK_FLIP_REFUSED };
  enum disk_flip c[] = { DISK_FLIP_REFUSED, DISK_FLIP_DONE, DISK_FLIP_THAWED };
  assert_int_equal (flip_group_after_flips (a, N (a)), FLIP_GROUP_FENCE);
  assert_int_equal (flip_group_after_flips (b, N (b)), FLIP_GROUP_FENCE);
  assert_int_equal (flip_group_after_flips (c, N (c)), FLIP_GROUP_FENCE);
}

static void
test_split_when_a_disk_serves_or_is_unknown (void **state)
{
  (void) state;
  enum disk_flip a[] = { DISK_FLIP_DONE, DISK_FLIP_THAWED };
  enum disk_flip b[] = { DISK_FLIP_DONE, DISK_FLIP_UNKNOWN };
  assert_int_equal (flip_group_after_flips (a, N (a)), FLIP_GROUP_SPLIT);
  assert_int_equal (flip_group_after_flips (b, N (b)), FLIP_GROUP_SPLIT);
}

static void
test_complete_only_when_forwarding_or_fenced (void **state)
{
  (void) state;
  enum disk_flip ok[] = { DISK_FLIP_DONE, DISK_FLIP_FENCED, DISK_FLIP_FENCED };
  enum disk_flip no1[] = { DISK_FLIP_DONE, DISK_FLIP_UNKNOWN };
  enum disk_flip no2[] = { DISK_FLIP_FENCED, DISK_FLIP_THAWED };
  enum disk_flip no3[] = { DISK_FLIP_REFUSED, DISK_FLIP_DONE };
  assert_true (flip_group_complete (ok, N (ok)));
  assert_false (flip_group_complete (no1, N (no1)));
  assert_false (flip_group_complete (no2, N (no2)));
  assert_false (flip_group_complete (no3, N (no3)));
  assert_string_equal (disk_flip_name (DISK_FLIP_FENCED), "fenced");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_every_disk_flipped),
    cmocka_unit_test (test_nothing_flipped_thaws_all),
    cmocka_unit_test (test_one_disk_unknown_is_reported),
    cmocka_unit_test (test_refused_disks_are_fenced_once_another_may_have_flipped),
    cmocka_unit_test (test_split_when_a_disk_serves_or_is_unknown),
    cmocka_unit_test (test_complete_only_when_forwarding_or_fenced),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
