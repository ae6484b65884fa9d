/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of stm-send's --disk parser (sender/disk_spec.c); the disk name
 * alphabet itself is the wire's (test_wire_disks.c). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "disk_spec.h"

static void
test_parses_all_keys_in_any_order (void **state)
{
  (void) state;
  struct disk_spec s;
  char why[256];

  assert_int_equal (disk_spec_parse ("name=sys,source=nbd+unix:///?socket=/run/a.sock,"
                                     "control=/run/a.ctl", true, &s, why, sizeof why), 0);
  assert_string_equal (s.name, "sys");
  assert_string_equal (s.source, "nbd+unix:///?socket=/run/a.sock");
  assert_string_equal (s.control, "/run/a.ctl");
  disk_spec_free (&s);

  assert_int_equal (disk_spec_parse ("control=c,source=nbd://h:1/x,name=data-1",
                                     true, &s, why, sizeof why), 0);
  assert_string_equal (s.name, "data-1");
  assert_string_equal (s.source, "nbd://h:1/x");
  assert_string_equal (s.control, "c");
  disk_spec_free (&s);
}

static void
test_double_comma_is_a_comma (void **state)
{
  (void) state;
  struct disk_spec s;
  char why[256];

  assert_int_equal (disk_spec_parse ("name=a,control=/tmp/x,,y,,,source=nbd://h/e,,f",
                                     true, &s, why, sizeof why), 0);
  assert_string_equal (s.control, "/tmp/x,y,");
  assert_string_equal (s.source, "nbd://h/e,f");
  disk_spec_free (&s);
}

static void
expect_error (const char *text, const char *fragment)
{
  struct disk_spec s;
  char why[256] = "";

  assert_int_equal (disk_spec_parse (text, true, &s, why, sizeof why), -1);
  if (strstr (why, fragment) == NULL)
    fail_msg ("\"%s\": \"%s\" does not say \"%s\"", text, why, fragment);
  assert_null (s.name);
  assert_null (s.source);
  assert_null (s.control);
}

static void
test_errors_say_what (void **state)
{
  (void) state;
  expect_error ("", "empty");
  expect_error ("name=a,source=s", "control= is missing");
  expect_error ("source=s,control=c", "name= is missing");
  expect_error ("name=a,control=c", "source= is missing");
  expect_error ("name=a,name=b,source=s,control=c", "name= is given twice");
  expect_error ("name=a,sorce=s,control=c", "unknown key \"sorce\"");
  expect_error ("name=a,source,control=c", "\"source\" is not key=value");
  expect_error ("name=,source=s,control=c", "name= is empty");
  expect_error ("name=a b,source=s,control=c", "name \"a b\"");
  expect_error ("name=-a,source=s,control=c", "name \"-a\"");
}

/* stm-send --compare-only: a source need not be behind the filter. */
static void
test_control_optional_when_told (void **state)
{
  (void) state;
  struct disk_spec s;
  char why[256] = "";

  assert_int_equal (disk_spec_parse ("name=a,source=nbd://h/e", false, &s, why,
                                     sizeof why), 0);
  assert_string_equal (s.name, "a");
  assert_string_equal (s.source, "nbd://h/e");
  assert_null (s.control);
  disk_spec_free (&s);
  /* Given, it is kept. */
  assert_int_equal (disk_spec_parse ("name=a,source=s,control=c", false, &s, why,
                                     sizeof why), 0);
  assert_string_equal (s.control, "c");
  disk_spec_free (&s);
  /* The other keys stay required, and the message says control is not. */
  assert_int_equal (disk_spec_parse ("name=a,control=c", false, &s, why,
                                     sizeof why), -1);
  assert_non_null (strstr (why, "source= is missing"));
  assert_non_null (strstr (why, "control is optional"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parses_all_keys_in_any_order),
    cmocka_unit_test (test_double_comma_is_a_comma),
    cmocka_unit_test (test_errors_say_what),
    cmocka_unit_test (test_control_optional_when_told),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
