/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the filter's detection of writes to the same units in
 * flight at once (nbdkit-plugin/write_overlap.c): who is told to mark
 * its range dirty, and when nobody is. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "write_overlap.h"

static struct write_overlap wo;

static int
reset (void **state)
{
  (void) state;
  for (size_t i = 0; i < WRITE_OVERLAP_SLOTS; i++)
    wo.slots[i] = 0;
  return 0;
}

static void
test_alone (void **state)
{
  (void) state;
  write_overlap_enter (&wo, 10, 3);
  assert_false (write_overlap_leave (&wo, 10, 3));
  /* One after the other, never at once: no overlap. */
  write_overlap_enter (&wo, 11, 1);
  assert_false (write_overlap_leave (&wo, 11, 1));
  assert_int_equal (wo.slots[11], 0);
}

static void
test_two_at_once (void **state)
{
  (void) state;
  write_overlap_enter (&wo, 10, 3);     /* A: 10..12 */
  write_overlap_enter (&wo, 12, 2);     /* B: 12..13, shares 12 */
  /* The first to leave is not the last of the group. */
  assert_false (write_overlap_leave (&wo, 10, 3));
  assert_true (write_overlap_leave (&wo, 12, 2));
  assert_int_equal (wo.slots[12], 0);
  /* The mark is gone: the next write alone is not told. */
  write_overlap_enter (&wo, 12, 1);
  assert_false (write_overlap_leave (&wo, 12, 1));
}

static void
test_disjoint_at_once (void **state)
{
  (void) state;
  write_overlap_enter (&wo, 0, 4);
  write_overlap_enter (&wo, 4, 4);
  assert_false (write_overlap_leave (&wo, 4, 4));
  assert_false (write_overlap_leave (&wo, 0, 4));
}

/* A joins while the group's last member is leaving: the mark stays for
 * the group that now holds the slot, whose last member reports. */
static void
test_chain (void **state)
{
  (void) state;
  write_overlap_enter (&wo, 5, 1);      /* A */
  write_overlap_enter (&wo, 5, 1);      /* B: contended */
  assert_false (write_overlap_leave (&wo, 5, 1));  /* A leaves */
  write_overlap_enter (&wo, 5, 1);      /* C, while B is inside */
  assert_false (write_overlap_leave (&wo, 5, 1));  /* B: C still inside */
  assert_true (write_overlap_leave (&wo, 5, 1));   /* C: last */
  assert_int_equal (wo.slots[5], 0);
}

/* Slots wrap: units a table apart share one, which costs only a copy. */
static void
test_collision_and_huge (void **state)
{
  (void) state;
  write_overlap_enter (&wo, 7, 1);
  write_overlap_enter (&wo, 7 + WRITE_OVERLAP_SLOTS, 1);
  assert_false (write_overlap_leave (&wo, 7, 1));
  assert_true (write_overlap_leave (&wo, 7 + WRITE_OVERLAP_SLOTS, 1));
  /* A request longer than the table touches every slot once. */
  write_overlap_enter (&wo, 3, 3 * (uint64_t) WRITE_OVERLAP_SLOTS);
  for (size_t i = 0; i < WRITE_OVERLAP_SLOTS; i++)
    assert_int_equal (wo.slots[i], 1);
  write_overlap_enter (&wo, 100, 1);
  assert_false (write_overlap_leave (&wo, 3, 3 * (uint64_t) WRITE_OVERLAP_SLOTS));
  assert_true (write_overlap_leave (&wo, 100, 1));
  for (size_t i = 0; i < WRITE_OVERLAP_SLOTS; i++)
    assert_int_equal (wo.slots[i], 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_alone, reset),
    cmocka_unit_test_setup (test_two_at_once, reset),
    cmocka_unit_test_setup (test_disjoint_at_once, reset),
    cmocka_unit_test_setup (test_chain, reset),
    cmocka_unit_test_setup (test_collision_and_huge, reset),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
