/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the report's event parser (report/event.c).
 *
 * Lines as stm-send prints them, escapes decoded for meaning, nested
 * values skipped, and everything a corrupt or hostile log can hold:
 * garbage, every truncation of a valid line, huge numbers, over-long keys
 * and strings, too many fields, deep nesting.  Each input is copied into a
 * buffer of exactly its length with no NUL after it, so that a read past
 * the end shows up under AddressSanitizer.
 */
#include <config.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "event.h"

static struct report_event ev;

/* Parse s (its strlen bytes, in an exact-size buffer). */
static int
parse_n (const char *s, size_t n, const char **why)
{
  char *buf = malloc (n ? n : 1);
  assert_non_null (buf);
  memcpy (buf, s, n);
  int r = report_event_parse (buf, n, &ev, why);
  free (buf);
  return r;
}

static int
parse (const char *s)
{
  const char *why;
  int r = parse_n (s, strlen (s), &why);
  if (r == 0)
    assert_null (why);
  else
    assert_non_null (why);
  return r;
}

static double
number (const char *key)
{
  double v = NAN;
  assert_true (report_event_number (&ev, key, &v));
  return v;
}

static const char start_line[] =
  "{\"event\":\"start\",\"ts\":1700000000.123,\"source\":\"nbd+unix:///?socket=/run/s.sock\","
  "\"dest\":\"10.0.0.2:10810\",\"size\":1073741824,\"block\":65536,"
  "\"migration_id\":\"3f2a\",\"mode\":\"new\"}\n";

static void
test_stm_send_line (void **state)
{
  assert_int_equal (parse (start_line), 0);
  assert_string_equal (ev.name, "start");
  assert_true (ev.has_ts);
  assert_true (fabs (ev.ts - 1700000000.123) < 1e-6);
  assert_string_equal (report_event_string (&ev, "source"), "nbd+unix:///?socket=/run/s.sock");
  assert_string_equal (report_event_string (&ev, "mode"), "new");
  assert_true (number ("size") == 1073741824.0);
  assert_true (number ("block") == 65536.0);
  /* event and ts are not fields; the rest are, in order. */
  assert_int_equal (ev.nfields, 6);
  assert_null (report_event_field (&ev, "event"));
  assert_null (report_event_string (&ev, "size"));
  assert_false (report_event_number (&ev, "source", &(double){ 0 }));
  assert_null (report_event_field (&ev, "absent"));
}

static void
test_literals_and_whitespace (void **state)
{
  assert_int_equal (parse (" \t{ \"event\" : \"downtime\" , \"forced\" : true ,"
                           "\"x\":false,\"n\":null,\"neg\":-2.5e-1 }\r\n"), 0);
  assert_string_equal (ev.name, "downtime");
  assert_false (ev.has_ts);
  assert_true (report_event_bool (&ev, "forced", false));
  assert_false (report_event_bool (&ev, "x", true));
  assert_true (report_event_bool (&ev, "n", true));  /* null: the default */
  assert_int_equal (report_event_field (&ev, "n")->type, REPORT_NULL);
  assert_true (number ("neg") == -0.25);
}

static void
test_escapes (void **state)
{
  assert_int_equal (parse ("{\"event\":\"error\",\"message\":"
                           "\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\u20ac \\ud83d\\ude00\"}"), 0);
  assert_string_equal (report_event_string (&ev, "message"),
                       "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  /* A lone surrogate and NUL become U+FFFD: the value stays a C string
   * of valid UTF-8. */
  assert_int_equal (parse ("{\"event\":\"e\",\"a\":\"x\\ud800y\",\"b\":\"\\udc00\","
                           "\"c\":\"p\\u0000q\",\"d\":\"\\ud800\\u0041\"}"), 0);
  assert_string_equal (report_event_string (&ev, "a"), "x\xef\xbf\xbdy");
  assert_string_equal (report_event_string (&ev, "b"), "\xef\xbf\xbd");
  assert_string_equal (report_event_string (&ev, "c"), "p\xef\xbf\xbdq");
  assert_string_equal (report_event_string (&ev, "d"), "\xef\xbf\xbd" "A");
  /* Raw UTF-8 passes through. */
  assert_int_equal (parse ("{\"event\":\"e\",\"a\":\"\xc3\xa9\xe2\x82\xac\"}"), 0);
  assert_string_equal (report_event_string (&ev, "a"), "\xc3\xa9\xe2\x82\xac");
}

static void
test_nested_values_skipped (void **state)
{
  assert_int_equal (parse ("{\"event\":\"done\",\"disks\":[{\"name\":\"vda\",\"x\":[1,2,"
                           "{\"y\":\"}]\"}]},[],{}],\"passes\":3,\"o\":{\"k\":null}}"), 0);
  assert_string_equal (ev.name, "done");
  assert_null (report_event_field (&ev, "disks"));
  assert_null (report_event_field (&ev, "o"));
  assert_true (number ("passes") == 3);
  assert_int_equal (ev.nfields, 1);

  /* Nesting deeper than REPORT_NEST_MAX is refused, not recursed into. */
  char deep[256] = "{\"event\":\"e\",\"a\":";
  for (int i = 0; i < REPORT_NEST_MAX + 2; i++)
    strcat (deep, "[");
  for (int i = 0; i < REPORT_NEST_MAX + 2; i++)
    strcat (deep, "]");
  strcat (deep, "}");
  assert_int_equal (parse (deep), -1);
  char ok[256] = "{\"event\":\"e\",\"a\":";
  for (int i = 0; i < REPORT_NEST_MAX - 1; i++)
    strcat (ok, "[");
  for (int i = 0; i < REPORT_NEST_MAX - 1; i++)
    strcat (ok, "]");
  strcat (ok, "}");
  assert_int_equal (parse (ok), 0);
}

static void
test_garbage (void **state)
{
  static const char *const bad[] = {
    "", " ", "\n", "not json", "[1,2]", "{", "}", "{}", "null", "\"event\"",
    "{\"ts\":1}",                           /* no event */
    "{\"event\":1}",                        /* event not a string */
    "{\"event\":\"\"}",
    "{\"event\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
    "{\"event\":\"x\",}",
    "{\"event\":\"x\" \"a\":1}",
    "{\"event\":\"x\",\"a\"1}",
    "{\"event\":\"x\",\"a\":}",
    "{\"event\":\"x\"} {\"event\":\"y\"}",
    "{\"event\":\"x\"} trailing",
    "{\"event\":\"x\",\"a\":tru}",
    "{\"event\":\"x\",\"a\":nul}",
    "{\"event\":\"x\",\"a\":01}",
    "{\"event\":\"x\",\"a\":-}",
    "{\"event\":\"x\",\"a\":1.}",
    "{\"event\":\"x\",\"a\":.5}",
    "{\"event\":\"x\",\"a\":1e}",
    "{\"event\":\"x\",\"a\":+1}",
    "{\"event\":\"x\",\"a\":0x10}",
    "{\"event\":\"x\",\"a\":NaN}",
    "{\"event\":\"x\",\"a\":\"\x01\"}",      /* control character */
    "{\"event\":\"x\",\"a\":\"\\x\"}",       /* unknown escape */
    "{\"event\":\"x\",\"a\":\"\\u12\"}",
    "{\"event\":\"x\",\"a\":\"\\u12g4\"}",
    "{\"event\":\"x\",\"a\":\"\xff\"}",      /* not UTF-8 */
    "{\"event\":\"x\",\"a\":\"\xc3\"}",      /* a cut sequence */
    "{\"event\":\"x\",\"a\":\"\xed\xa0\x80\"}",  /* an encoded surrogate */
    "{\"event\":\"x\",\"a\":[1,}",
    "{\"event\":\"x\",\"a\":{\"k\"}}",
    "{'event':'x'}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (parse (bad[i]) != -1)
      fail_msg ("accepted: %s", bad[i]);
  }
  /* A NUL inside the line is not JSON either. */
  const char *why;
  assert_int_equal (parse_n ("{\"event\":\"x\"\0}", 14, &why), -1);
}

static void
test_every_truncation (void **state)
{
  static const char *const lines[] = {
    start_line,
    "{\"event\":\"error\",\"ts\":1.5,\"message\":\"a \\\"b\\\" \\u00e9\",\"ok\":true,"
    "\"n\":null,\"d\":[1,{\"x\":2}],\"v\":-1.5e+3}",
  };
  for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++) {
    size_t full = strlen (lines[k]);
    while (full > 0 && lines[k][full - 1] == '\n')
      full--;
    const char *why;
    assert_int_equal (parse_n (lines[k], full, &why), 0);
    for (size_t n = 0; n < full; n++)
      if (parse_n (lines[k], n, &why) != -1)
        fail_msg ("line %zu cut to %zu bytes was accepted", k, n);
  }
}

static void
test_huge_numbers (void **state)
{
  assert_int_equal (parse ("{\"event\":\"progress\",\"ts\":1e999,\"big\":1e999,"
                           "\"u64\":18446744073709551615,\"neg\":-1e999,\"tiny\":1e-400,"
                           "\"ok\":7}"), 0);
  /* Numbers that do not fit a double drop their field, not the line. */
  assert_false (ev.has_ts);
  assert_null (report_event_field (&ev, "big"));
  assert_null (report_event_field (&ev, "neg"));
  assert_true (number ("u64") == 18446744073709551615.0);
  assert_true (number ("tiny") == 0);
  assert_true (number ("ok") == 7);

  /* A thousand digits: valid JSON, no value to draw. */
  char line[1200] = "{\"event\":\"p\",\"n\":";
  size_t n = strlen (line);
  memset (line + n, '9', 1000);
  strcpy (line + n + 1000, ",\"ok\":1}");
  assert_int_equal (parse (line), 0);
  assert_null (report_event_field (&ev, "n"));
  assert_true (number ("ok") == 1);
}

static void
test_bounds (void **state)
{
  /* A key longer than REPORT_KEY_MAX drops its field. */
  char line[REPORT_LINE_MAX + 64];
  snprintf (line, sizeof line, "{\"event\":\"e\",\"%0*d\":1,\"k\":2}", REPORT_KEY_MAX, 0);
  assert_int_equal (parse (line), 0);
  assert_int_equal (ev.nfields, 1);
  assert_true (number ("k") == 2);

  /* A long string is cut at a character boundary, still UTF-8. */
  strcpy (line, "{\"event\":\"e\",\"s\":\"x");
  for (int i = 0; i < 300; i++)
    strcat (line, "\xc3\xa9");
  strcat (line, "\"}");
  assert_int_equal (parse (line), 0);
  const char *s = report_event_string (&ev, "s");
  size_t len = strlen (s);
  assert_true (len < REPORT_STRING_MAX);
  assert_true (len >= REPORT_STRING_MAX - 3);
  assert_true (len % 2 == 1);              /* "x" and whole "é"s */
  assert_int_equal ((unsigned char) s[len - 1], 0xa9);

  /* Past REPORT_EVENT_FIELDS fields, the first ones are kept. */
  strcpy (line, "{\"event\":\"e\"");
  for (int i = 0; i < REPORT_EVENT_FIELDS + 10; i++)
    snprintf (line + strlen (line), 32, ",\"f%d\":%d", i, i);
  strcat (line, "}");
  assert_int_equal (parse (line), 0);
  assert_int_equal (ev.nfields, REPORT_EVENT_FIELDS);
  assert_true (number ("f0") == 0);
  assert_null (report_event_field (&ev, "f40"));

  /* A line over REPORT_LINE_MAX is refused whatever it holds. */
  memset (line, ' ', REPORT_LINE_MAX + 1);
  memcpy (line, "{\"event\":\"e\"}", 13);
  const char *why;
  assert_int_equal (parse_n (line, REPORT_LINE_MAX + 1, &why), -1);
  assert_int_equal (parse_n (line, REPORT_LINE_MAX, &why), 0);

  /* The first of duplicate keys counts, event and ts included. */
  assert_int_equal (parse ("{\"event\":\"a\",\"ts\":1,\"k\":1,\"event\":\"b\","
                           "\"ts\":2,\"k\":2}"), 0);
  assert_string_equal (ev.name, "a");
  assert_true (ev.ts == 1);
  assert_true (number ("k") == 1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_stm_send_line),
    cmocka_unit_test (test_literals_and_whitespace),
    cmocka_unit_test (test_escapes),
    cmocka_unit_test (test_nested_values_skipped),
    cmocka_unit_test (test_garbage),
    cmocka_unit_test (test_every_truncation),
    cmocka_unit_test (test_huge_numbers),
    cmocka_unit_test (test_bounds),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
