/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the progress bar's line (sender/progress_line.c):
 * at 200 columns every field and a full bar; at 80 every field; at 40
 * (where the old fixed line of about 85 columns wrapped over three lines)
 * no bar, the least important fields dropped first, the pass and the
 * percentage kept; never into the last column, at any width from 1 to
 * 300; and the width taken from $COLUMNS when there is no terminal.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "progress_line.h"

#define MiB (UINT64_C(1024) * 1024)

static const struct progress_sample sample = {
  .pass = 12, .final = true, .pass_bytes = 64 * MiB, .pass_done = 16 * MiB,
  .counts = { .copied = 1024 * MiB, .sent = 1024 * MiB },
  .dirty_bytes = 3 * MiB / 2, .rate = 100.0 * MiB,
};

static void
test_wide (void **state)
{
  (void) state;
  char line[256];
  size_t n = progress_format_line (line, sizeof line, &sample, 200);
  assert_int_equal (n, strlen (line));
  assert_string_equal (line, "pass 12 (final) [#######-----------------------]  "
                       "25.0% 100.0 MiB/s ETA 0:00:01 dirty 1.5 MiB");
}

static void
test_80 (void **state)
{
  (void) state;
  char line[256];
  size_t n = progress_format_line (line, sizeof line, &sample, 80);
  assert_true (n <= 79);
  assert_non_null (strstr (line, "pass 12 (final) ["));
  assert_non_null (strstr (line, "25.0%"));
  assert_non_null (strstr (line, "100.0 MiB/s"));
  assert_non_null (strstr (line, "ETA 0:00:01"));
  assert_non_null (strstr (line, "dirty 1.5 MiB"));
}

static void
test_40 (void **state)
{
  (void) state;
  char line[256];
  size_t n = progress_format_line (line, sizeof line, &sample, 40);
  assert_true (n <= 39);
  /* No room for a bar of ten cells: it goes first, then the dirty bytes. */
  assert_null (strchr (line, '['));
  assert_null (strstr (line, "dirty"));
  assert_string_equal (line, "pass 12 (final)  25.0% 100.0 MiB/s");
  /* Narrower: the rate goes, the pass and percentage stay. */
  progress_format_line (line, sizeof line, &sample, 25);
  assert_string_equal (line, "pass 12 (final)  25.0%");
  /* Narrower than the pass itself: cut, never wrapped. */
  progress_format_line (line, sizeof line, &sample, 8);
  assert_string_equal (line, "pass 12");
}

static void
test_every_width (void **state)
{
  (void) state;
  char line[256];
  for (unsigned w = 0; w <= 300; w++) {
    size_t n = progress_format_line (line, sizeof line, &sample, w);
    assert_int_equal (n, strlen (line));
    assert_true (n + 1 <= (w > 0 ? w : 1));
  }
  /* A small buffer is never overrun. */
  char tiny[10];
  size_t n = progress_format_line (tiny, sizeof tiny, &sample, 200);
  assert_int_equal (n, strlen (tiny));
  assert_true (n < sizeof tiny);
}

static void
test_terminal_width (void **state)
{
  (void) state;
  /* Not a terminal: $COLUMNS, else the default. */
  setenv ("COLUMNS", "40", 1);
  assert_int_equal (progress_terminal_width (-1), 40);
  setenv ("COLUMNS", "junk", 1);
  assert_int_equal (progress_terminal_width (-1), PROGRESS_LINE_DEFAULT_WIDTH);
  unsetenv ("COLUMNS");
  assert_int_equal (progress_terminal_width (-1), PROGRESS_LINE_DEFAULT_WIDTH);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_wide),
    cmocka_unit_test (test_80),
    cmocka_unit_test (test_40),
    cmocka_unit_test (test_every_width),
    cmocka_unit_test (test_terminal_width),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
