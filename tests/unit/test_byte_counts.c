/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of stm-send's byte counts (sender/byte_counts.c): DATA
 * and ZERO are counted apart, a compressed DATA message counts its
 * payload as copied and its smaller message as sent, and the counts are
 * written as the events' fields, a disk's object's fields and the
 * summary's words.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "byte_counts.h"

#define MiB (UINT64_C(1024) * 1024)
#define GiB (1024 * MiB)

static void
test_add (void **state)
{
  (void) state;
  struct byte_counts c = { 0 };

  byte_counts_add_data (&c, 64 * 1024, 64 * 1024);
  byte_counts_add_zero (&c, 2 * GiB);
  byte_counts_add_data (&c, 4096, 4096);
  assert_int_equal (c.copied, 64 * 1024 + 4096);
  assert_int_equal (c.sent, 64 * 1024 + 4096);
  assert_int_equal (c.zeroed, 2 * GiB);
  assert_int_equal (c.wire, 0);
  /* A message that shrank: all of it was copied, less of it sent. */
  byte_counts_add_data (&c, MiB, 300 * 1024);
  assert_int_equal (c.copied, MiB + 64 * 1024 + 4096);
  assert_int_equal (c.sent, 300 * 1024 + 64 * 1024 + 4096);
  assert_int_equal (c.zeroed, 2 * GiB);
}

static void
test_json (void **state)
{
  (void) state;
  struct byte_counts c = { .copied = 7, .zeroed = UINT64_MAX, .sent = 5, .wire = 90,
                           .compared = 11 };
  struct json_line j;

  json_line_begin (&j, "done", 1.5);
  byte_counts_json (&j, &c, true);
  assert_non_null (strstr (json_line_end (&j),
                           "\"bytes_sent\":5,\"bytes_copied\":7,"
                           "\"bytes_zeroed\":18446744073709551615,\"bytes_compared\":11,"
                           "\"wire_bytes\":90}"));
  json_line_begin (&j, "progress", 1.5);
  byte_counts_json (&j, &c, false);
  assert_null (strstr (json_line_end (&j), "wire_bytes"));
}

static void
test_disk_fields (void **state)
{
  (void) state;
  struct byte_counts c = { .copied = UINT64_MAX, .zeroed = UINT64_MAX,
                           .sent = UINT64_MAX, .wire = 3, .compared = UINT64_MAX };
  char buf[BYTE_COUNTS_DISK_FIELDS_MAX + 1];
  const char *want = ",\"bytes_sent\":18446744073709551615"
    ",\"bytes_copied\":18446744073709551615,\"bytes_zeroed\":18446744073709551615"
    ",\"bytes_compared\":18446744073709551615";

  /* The largest numbers fit the bound exactly. */
  assert_int_equal (byte_counts_disk_fields (buf, sizeof buf, &c), strlen (want));
  assert_string_equal (buf, want);
  assert_int_equal (strlen (want), BYTE_COUNTS_DISK_FIELDS_MAX);
  /* Cut short, it says how much it wrote, not what it wanted to. */
  char small[10];
  assert_int_equal (byte_counts_disk_fields (small, sizeof small, &c), 9);
  assert_string_equal (small, ",\"bytes_s");
}

static void
test_format (void **state)
{
  (void) state;
  char buf[160];
  /* The image: 2 GiB holding 1.37 GiB of data. */
  struct byte_counts c = { .copied = 1471026586, .zeroed = 2 * GiB - 1471026586,
                           .sent = 1471026586, .wire = 1482000000 };

  assert_string_equal (byte_counts_format (buf, sizeof buf, &c),
                       "copied 1.4 GiB, zeroed 645.1 MiB, sent 1.4 GiB, wire 1.4 GiB");
  struct byte_counts none = { 0 };
  assert_string_equal (byte_counts_format (buf, sizeof buf, &none),
                       "copied 0 B, zeroed 0 B, sent 0 B, wire 0 B");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_add),
    cmocka_unit_test (test_json),
    cmocka_unit_test (test_disk_fields),
    cmocka_unit_test (test_format),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
