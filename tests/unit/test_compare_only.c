/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of stm-send --compare-only's pure parts: the difference map
 * of a disk (sender/compare_diff.c) and the decisions
 * (sender/compare_only_policy.c). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "compare_diff.h"
#include "compare_only_policy.h"
#include "source_reader.h"
#include "wire.h"

#define K 1024u
#define UNIT (64u * K)

/* Collect every range compare_diff_next lists, as "offset+length " text. */
static void
ranges_text (const struct compare_diff *d, char *buf, size_t len)
{
  uint64_t cursor = 0, offset, length;
  size_t used = 0;

  buf[0] = '\0';
  while (compare_diff_next (d, &cursor, &offset, &length) && used < len)
    used += snprintf (buf + used, len - used, "%llu+%llu ",
                      (unsigned long long) offset, (unsigned long long) length);
}

static void
test_no_difference (void **state)
{
  (void) state;
  struct compare_diff d;
  struct compare_diff_totals t;
  uint64_t cursor = 0, offset, length;

  assert_int_equal (compare_diff_init (&d, 10 * UNIT, UNIT), 0);
  assert_false (compare_diff_next (&d, &cursor, &offset, &length));
  compare_diff_totals (&d, &t);
  assert_int_equal (t.bytes_differing, 0);
  assert_int_equal (t.ranges, 0);
  assert_int_equal (t.bytes_changed_during, 0);
  compare_diff_free (&d);
}

/* Adjacent runs, marked by separate reads, are one range. */
static void
test_adjacent_marks_coalesce (void **state)
{
  (void) state;
  struct compare_diff d;
  struct compare_diff_totals t;
  char text[256];

  assert_int_equal (compare_diff_init (&d, 100 * UNIT, UNIT), 0);
  compare_diff_mark (&d, 15 * UNIT, UNIT);     /* the end of one read */
  compare_diff_mark (&d, 16 * UNIT, 2 * UNIT); /* the start of the next */
  compare_diff_mark (&d, 40 * UNIT, UNIT);
  ranges_text (&d, text, sizeof text);
  assert_string_equal (text, "983040+196608 2621440+65536 ");
  compare_diff_totals (&d, &t);
  assert_int_equal (t.ranges, 2);
  assert_int_equal (t.bytes_differing, 4 * UNIT);
  compare_diff_free (&d);
}

/* Ranges across the 64-unit words of the bitmaps, and the last one. */
static void
test_ranges_across_words (void **state)
{
  (void) state;
  struct compare_diff d;
  char text[256];

  assert_int_equal (compare_diff_init (&d, 200 * UNIT, UNIT), 0);
  compare_diff_mark (&d, 60 * UNIT, 10 * UNIT);
  compare_diff_mark (&d, 127 * UNIT, UNIT);
  compare_diff_mark (&d, 199 * UNIT, UNIT);
  ranges_text (&d, text, sizeof text);
  assert_string_equal (text, "3932160+655360 8323072+65536 13041664+65536 ");
  compare_diff_free (&d);
}

/* A disk whose size is not a multiple of the unit: the last range is
 * clipped, and so are the totals. */
static void
test_short_last_unit (void **state)
{
  (void) state;
  struct compare_diff d;
  struct compare_diff_totals t;
  uint64_t size = 3 * UNIT + 5000, cursor = 0, offset, length;

  assert_int_equal (compare_diff_init (&d, size, UNIT), 0);
  compare_diff_mark (&d, 2 * UNIT, UNIT + 5000);
  assert_true (compare_diff_next (&d, &cursor, &offset, &length));
  assert_int_equal (offset, 2 * UNIT);
  assert_int_equal (length, UNIT + 5000);
  assert_int_equal (cursor, size);
  assert_false (compare_diff_next (&d, &cursor, &offset, &length));
  /* Written over the end: clipped, and the short unit counts short. */
  compare_diff_written (&d, 3 * UNIT, 10 * UNIT);
  compare_diff_totals (&d, &t);
  assert_int_equal (t.bytes_differing, UNIT);
  assert_int_equal (t.ranges, 1);
  assert_int_equal (t.bytes_changed_during, 5000);
  compare_diff_free (&d);
}

/* Written units split a differing run; written units that do not differ
 * count for nothing. */
static void
test_written_units_are_left_out (void **state)
{
  (void) state;
  struct compare_diff d;
  struct compare_diff_totals t;
  char text[256];

  assert_int_equal (compare_diff_init (&d, 100 * UNIT, UNIT), 0);
  compare_diff_mark (&d, 10 * UNIT, 10 * UNIT);          /* units 10..19 */
  compare_diff_written (&d, 12 * UNIT + 100, 4 * K);     /* touches unit 12 */
  compare_diff_written (&d, 18 * UNIT, 5 * UNIT);        /* units 18..22 */
  compare_diff_written (&d, 50 * UNIT, UNIT);            /* nothing differs */
  ranges_text (&d, text, sizeof text);
  /* 10..11 and 13..17 are left. */
  assert_string_equal (text, "655360+131072 851968+327680 ");
  compare_diff_totals (&d, &t);
  assert_int_equal (t.ranges, 2);
  assert_int_equal (t.bytes_differing, 7 * UNIT);
  assert_int_equal (t.bytes_changed_during, 3 * UNIT);
  compare_diff_free (&d);
}

/* A cursor in the middle of a disk lists only what follows it. */
static void
test_cursor_resumes (void **state)
{
  (void) state;
  struct compare_diff d;
  uint64_t cursor, offset, length;

  assert_int_equal (compare_diff_init (&d, 10 * UNIT, 4 * K), 0);
  compare_diff_mark (&d, 0, 4 * K);
  compare_diff_mark (&d, 9 * UNIT, UNIT);
  cursor = 4 * K;
  assert_true (compare_diff_next (&d, &cursor, &offset, &length));
  assert_int_equal (offset, 9 * UNIT);
  assert_int_equal (length, UNIT);
  assert_false (compare_diff_next (&d, &cursor, &offset, &length));
  compare_diff_free (&d);
}

static void
test_phases (void **state)
{
  (void) state;
  assert_true (compare_phase_allowed (COMPARE_CONNECTING, COMPARE_HELLO));
  assert_true (compare_phase_allowed (COMPARE_HELLO, COMPARE_READING));
  assert_true (compare_phase_allowed (COMPARE_READING, COMPARE_FINAL_SNAPSHOT));
  assert_true (compare_phase_allowed (COMPARE_READING, COMPARE_DONE));
  assert_true (compare_phase_allowed (COMPARE_FINAL_SNAPSHOT, COMPARE_DONE));
  assert_true (compare_phase_allowed (COMPARE_CONNECTING, COMPARE_FAILED));
  assert_true (compare_phase_allowed (COMPARE_FINAL_SNAPSHOT, COMPARE_FAILED));
  /* No skipping the HELLO, no going back, nothing after the end. */
  assert_false (compare_phase_allowed (COMPARE_CONNECTING, COMPARE_READING));
  assert_false (compare_phase_allowed (COMPARE_HELLO, COMPARE_DONE));
  assert_false (compare_phase_allowed (COMPARE_READING, COMPARE_HELLO));
  assert_false (compare_phase_allowed (COMPARE_DONE, COMPARE_FAILED));
  assert_false (compare_phase_allowed (COMPARE_FAILED, COMPARE_FAILED));
  assert_false (compare_phase_allowed (COMPARE_FAILED, COMPARE_DONE));
  assert_false (compare_phase_allowed (COMPARE_HELLO, COMPARE_CONNECTING));
  assert_string_equal (compare_phase_name (COMPARE_FINAL_SNAPSHOT), "final-snapshot");
}

static void
test_source_refusal (void **state)
{
  (void) state;
  assert_null (compare_source_refusal ("tracking", "none"));
  assert_non_null (strstr (compare_source_refusal ("frozen", "other"), "frozen"));
  assert_non_null (strstr (compare_source_refusal ("fenced", "none"), "flipped"));
  assert_non_null (strstr (compare_source_refusal ("forwarding", "none"), "flipped"));
  assert_non_null (strstr (compare_source_refusal ("tracking", "other"), "owned"));
  assert_non_null (compare_source_refusal ("newstate", "none"));
}

static void
test_reply_agrees (void **state)
{
  (void) state;
  assert_true (compare_reply_agrees (WIRE_FEATURE_COMPARE_ONLY | WIRE_FEATURE_HASH));
  assert_true (compare_reply_agrees (WIRE_FEATURE_COMPARE_ONLY | WIRE_FEATURE_HASH |
                                     WIRE_FEATURE_DISKS));
  /* An older receiver echoes only what it knows. */
  assert_false (compare_reply_agrees (WIRE_FEATURE_HASH));
  assert_false (compare_reply_agrees (WIRE_FEATURE_COMPARE_ONLY));
  assert_false (compare_reply_agrees (0));
}

static void
test_read_length (void **state)
{
  (void) state;
  assert_int_equal (compare_read_length (0, 10ull * SOURCE_READER_CHUNK),
                    SOURCE_READER_CHUNK);
  assert_int_equal (compare_read_length (10ull * SOURCE_READER_CHUNK - 5,
                                         10ull * SOURCE_READER_CHUNK), 5);
  assert_int_equal (compare_read_length (0, 4096), 4096);
}

static void
test_result (void **state)
{
  (void) state;
  assert_int_equal (compare_result_of (0, 0, false), COMPARE_IDENTICAL);
  assert_int_equal (compare_result_of (0, 4096, false), COMPARE_IDENTICAL);
  assert_int_equal (compare_result_of (0, 0, true), COMPARE_IDENTICAL);
  assert_int_equal (compare_result_of (1, 0, false), COMPARE_DIFFERENT);
  /* A difference outside bridged ranges is one all the same. */
  assert_int_equal (compare_result_of (1, 4096, true), COMPARE_DIFFERENT);
  /* Only inside them: it cannot be told. */
  assert_int_equal (compare_result_of (0, 4096, true), COMPARE_INEXACT);
  assert_int_equal (compare_result_exit_code (COMPARE_IDENTICAL), 0);
  assert_int_equal (compare_result_exit_code (COMPARE_DIFFERENT), 1);
  assert_int_equal (compare_result_exit_code (COMPARE_INEXACT), 1);
  assert_string_equal (compare_result_name (COMPARE_DIFFERENT), "different");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_no_difference),
    cmocka_unit_test (test_adjacent_marks_coalesce),
    cmocka_unit_test (test_ranges_across_words),
    cmocka_unit_test (test_short_last_unit),
    cmocka_unit_test (test_written_units_are_left_out),
    cmocka_unit_test (test_cursor_resumes),
    cmocka_unit_test (test_phases),
    cmocka_unit_test (test_source_refusal),
    cmocka_unit_test (test_reply_agrees),
    cmocka_unit_test (test_read_length),
    cmocka_unit_test (test_result),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
