/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the small shared pieces of arithmetic in common/: the
 * deadline helpers of clock.c (saturation at both ends, rounding of poll
 * timeouts, conversion to struct timespec), the time units, and the
 * power-of-two and out-of-space checks of bits.h and no_space.h.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "bits.h"
#include "clock.h"
#include "no_space.h"
#include "time_units.h"

static void
test_time_units (void **state)
{
  (void) state;
  assert_true (NS_PER_S == 1000 * NS_PER_MS);
  assert_true (NS_PER_MS == 1000 * NS_PER_US);
  assert_true (NS_PER_MS == US_PER_MS * NS_PER_US);
  assert_true (NS_PER_S == MS_PER_S * NS_PER_MS);
  /* 64-bit constants: a day in nanoseconds does not overflow int. */
  assert_true (24 * 3600 * NS_PER_S == UINT64_C (86400000000000));
}

static void
test_deadline_at (void **state)
{
  (void) state;
  assert_true (deadline_at (0, 0) == 0);
  assert_true (deadline_at (5, 7) == 12);
  assert_true (deadline_at (UINT64_MAX - 10, 10) == UINT64_MAX);
  /* Past the end saturates: an enormous timeout is never "already over". */
  assert_true (deadline_at (UINT64_MAX - 10, 11) == UINT64_MAX);
  assert_true (deadline_at (1, UINT64_MAX) == UINT64_MAX);
  assert_true (deadline_at (UINT64_MAX, UINT64_MAX) == UINT64_MAX);
}

static void
test_deadline_left_at (void **state)
{
  (void) state;
  assert_true (deadline_left_at (100, 40) == 60);
  assert_true (deadline_left_at (100, 99) == 1);
  assert_true (deadline_left_at (100, 100) == 0);
  assert_true (deadline_left_at (100, 101) == 0);
  assert_true (deadline_left_at (0, UINT64_MAX) == 0);
  assert_true (deadline_left_at (UINT64_MAX, 0) == UINT64_MAX);
  /* A deadline made and asked at the same instant has all of its time. */
  assert_true (deadline_left_at (deadline_at (123, 456), 123) == 456);
}

static void
test_deadline_clock (void **state)
{
  uint64_t before, deadline, left;

  (void) state;
  /* Against the real clock: what is left never exceeds the timeout and
   * the time cannot have run backwards. */
  before = time_monotonic_ns ();
  deadline = deadline_after_ns (10 * NS_PER_S);
  assert_true (deadline >= before + 10 * NS_PER_S);
  left = deadline_left_ns (deadline);
  assert_true (left > 0 && left <= 10 * NS_PER_S);
  assert_true (deadline_left_ns (before) == 0);
  assert_true (deadline_after_ns (UINT64_MAX) == UINT64_MAX);
}

static void
test_poll_timeout_ms (void **state)
{
  (void) state;
  assert_int_equal (poll_timeout_ms (0), 0);
  /* Any remainder rounds up, so that poll does not wake just before the
   * deadline and spin. */
  assert_int_equal (poll_timeout_ms (1), 1);
  assert_int_equal (poll_timeout_ms (NS_PER_MS - 1), 1);
  assert_int_equal (poll_timeout_ms (NS_PER_MS), 1);
  assert_int_equal (poll_timeout_ms (NS_PER_MS + 1), 2);
  assert_int_equal (poll_timeout_ms (30 * NS_PER_S), 30000);
  assert_int_equal (poll_timeout_ms ((uint64_t) INT_MAX * NS_PER_MS), INT_MAX);
  assert_int_equal (poll_timeout_ms ((uint64_t) INT_MAX * NS_PER_MS + 1), INT_MAX);
  assert_int_equal (poll_timeout_ms (UINT64_MAX), INT_MAX);
}

static void
test_timespec_of_ns (void **state)
{
  struct timespec ts;

  (void) state;
  ts = timespec_of_ns (0);
  assert_int_equal (ts.tv_sec, 0);
  assert_int_equal (ts.tv_nsec, 0);
  ts = timespec_of_ns (10 * NS_PER_MS);
  assert_int_equal (ts.tv_sec, 0);
  assert_int_equal (ts.tv_nsec, 10000000);
  ts = timespec_of_ns (3 * NS_PER_S + 999999999);
  assert_int_equal (ts.tv_sec, 3);
  assert_int_equal (ts.tv_nsec, 999999999);
  ts = timespec_of_ns (UINT64_MAX);
  assert_true ((uint64_t) ts.tv_sec == UINT64_MAX / NS_PER_S);
  assert_int_equal (ts.tv_nsec, (long) (UINT64_MAX % NS_PER_S));
}

static void
test_is_power_of_two (void **state)
{
  (void) state;
  assert_false (is_power_of_two (0));
  assert_true (is_power_of_two (1));
  assert_true (is_power_of_two (2));
  assert_false (is_power_of_two (3));
  assert_true (is_power_of_two (4096));
  assert_false (is_power_of_two (4097));
  assert_false (is_power_of_two (65535));
  assert_true (is_power_of_two (UINT32_C (1) << 31));
  assert_false (is_power_of_two (UINT32_MAX));
  assert_true (is_power_of_two (UINT64_C (1) << 63));
  assert_false (is_power_of_two ((UINT64_C (1) << 63) + 1));
  assert_false (is_power_of_two (UINT64_MAX));
}

static void
test_errno_is_no_space (void **state)
{
  (void) state;
  assert_true (errno_is_no_space (ENOSPC));
  assert_true (errno_is_no_space (EDQUOT));
  assert_true (errno_is_no_space (EFBIG));
  assert_false (errno_is_no_space (0));
  assert_false (errno_is_no_space (EIO));
  assert_false (errno_is_no_space (ENOMEM));
  assert_false (errno_is_no_space (EROFS));
  assert_false (errno_is_no_space (EINTR));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_time_units),
    cmocka_unit_test (test_deadline_at),
    cmocka_unit_test (test_deadline_left_at),
    cmocka_unit_test (test_deadline_clock),
    cmocka_unit_test (test_poll_timeout_ms),
    cmocka_unit_test (test_timespec_of_ns),
    cmocka_unit_test (test_is_power_of_two),
    cmocka_unit_test (test_errno_is_no_space),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
