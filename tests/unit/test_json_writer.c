/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the JSON line writer (common/json_writer.c).
 *
 * Every line produced is checked by a small strict validator of the flat
 * objects the writer makes (RFC 8259 grammar for strings, numbers and
 * literals; UTF-8 checked byte by byte), and string values are decoded
 * back and compared with what was written, so escaping is tested for
 * meaning and not only for form.
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
#include <unistd.h>
#include <cmocka.h>

#include "json_writer.h"

/* ---- A minimal strict validator for one-line flat JSON objects ---- */

struct cursor {
  const char *p;
};

/* Append code point cp to out as UTF-8. */
static size_t
put_utf8 (char *out, uint32_t cp)
{
  if (cp < 0x80) {
    out[0] = (char) cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char) (0xc0 | (cp >> 6));
    out[1] = (char) (0x80 | (cp & 0x3f));
    return 2;
  }
  out[0] = (char) (0xe0 | (cp >> 12));
  out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
  out[2] = (char) (0x80 | (cp & 0x3f));
  return 3;
}

/* Parse a JSON string at c->p; store its decoded bytes (NUL-terminated) in
 * out if out is not NULL.  Returns false on any deviation from RFC 8259
 * (surrogate pairs are not needed: the writer never emits them). */
static bool
parse_string (struct cursor *c, char *out, size_t outlen)
{
  const unsigned char *s = (const unsigned char *) c->p;
  size_t n = 0;
  char tmp[4];

  if (*s++ != '"')
    return false;
  for (;;) {
    size_t k = 0, i;

    if (*s == '"')
      break;
    if (*s < 0x20)              /* includes the NUL at the end of text */
      return false;
    if (*s == '\\') {
      s++;
      switch (*s) {
      case '"': tmp[k++] = '"'; break;
      case '\\': tmp[k++] = '\\'; break;
      case '/': tmp[k++] = '/'; break;
      case 'b': tmp[k++] = '\b'; break;
      case 'f': tmp[k++] = '\f'; break;
      case 'n': tmp[k++] = '\n'; break;
      case 'r': tmp[k++] = '\r'; break;
      case 't': tmp[k++] = '\t'; break;
      case 'u': {
        char hex[5];
        char *end;
        unsigned long cp;

        for (i = 0; i < 4; i++)
          if (!strchr ("0123456789abcdefABCDEF", s[1 + i]) || s[1 + i] == 0)
            return false;
        memcpy (hex, s + 1, 4);
        hex[4] = 0;
        cp = strtoul (hex, &end, 16);
        if (cp >= 0xd800 && cp <= 0xdfff)
          return false;
        k = put_utf8 (tmp, (uint32_t) cp);
        s += 4;
        break;
      }
      default:
        return false;
      }
      s++;
    }
    else if (*s < 0x80)
      tmp[k++] = (char) *s++;
    else {
      /* Raw UTF-8 must be well formed. */
      size_t len = *s >= 0xf0 ? 4 : *s >= 0xe0 ? 3 : *s >= 0xc2 ? 2 : 0;

      if (len == 0 || *s > 0xf4)
        return false;
      for (i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
          return false;
      if (len == 3 && s[0] == 0xe0 && s[1] < 0xa0)
        return false;           /* overlong */
      if (len == 3 && s[0] == 0xed && s[1] >= 0xa0)
        return false;           /* surrogate */
      if (len == 4 && s[0] == 0xf0 && s[1] < 0x90)
        return false;
      if (len == 4 && s[0] == 0xf4 && s[1] >= 0x90)
        return false;
      memcpy (tmp, s, len);
      k = len;
      s += len;
    }
    if (out != NULL) {
      if (n + k >= outlen)
        return false;
      memcpy (out + n, tmp, k);
    }
    n += k;
  }
  if (out != NULL)
    out[n] = '\0';
  c->p = (const char *) s + 1;
  return true;
}

/* The number grammar of RFC 8259 section 6. */
static bool
parse_number (struct cursor *c)
{
  const char *s = c->p;

  if (*s == '-')
    s++;
  if (*s == '0')
    s++;
  else if (*s >= '1' && *s <= '9')
    while (*s >= '0' && *s <= '9') s++;
  else
    return false;
  if (*s == '.') {
    s++;
    if (!(*s >= '0' && *s <= '9'))
      return false;
    while (*s >= '0' && *s <= '9') s++;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-')
      s++;
    if (!(*s >= '0' && *s <= '9'))
      return false;
    while (*s >= '0' && *s <= '9') s++;
  }
  c->p = s;
  return true;
}

/* Validate text as one flat object followed by exactly one "\n".  If key
 * is not NULL, copy the raw text of that key's value into value. */
static bool
json_valid (const char *text, const char *key, char *value, size_t valuelen)
{
  struct cursor c = { text };
  char k[JSON_LINE_MAX];

  if (*c.p++ != '{')
    return false;
  if (*c.p != '}') {
    for (;;) {
      const char *v;

      if (!parse_string (&c, k, sizeof k) || *c.p++ != ':')
        return false;
      v = c.p;
      if (*c.p == '"') {
        if (!parse_string (&c, NULL, 0))
          return false;
      }
      else if (strncmp (c.p, "true", 4) == 0)
        c.p += 4;
      else if (strncmp (c.p, "false", 5) == 0)
        c.p += 5;
      else if (strncmp (c.p, "null", 4) == 0)
        c.p += 4;
      else if (!parse_number (&c))
        return false;
      if (key != NULL && strcmp (k, key) == 0) {
        size_t n = (size_t) (c.p - v);

        if (n >= valuelen)
          return false;
        memcpy (value, v, n);
        value[n] = '\0';
      }
      if (*c.p == ',') {
        c.p++;
        continue;
      }
      break;
    }
  }
  return strcmp (c.p, "}\n") == 0;
}

/* The decoded string value of key in a valid line. */
static void
get_string (const char *text, const char *key, char *out, size_t outlen)
{
  char raw[JSON_LINE_MAX];
  struct cursor c;

  raw[0] = '\0';
  assert_true (json_valid (text, key, raw, sizeof raw));
  c.p = raw;
  assert_true (parse_string (&c, out, outlen));
}

static void
get_raw (const char *text, const char *key, char *out, size_t outlen)
{
  out[0] = '\0';
  assert_true (json_valid (text, key, out, outlen));
  assert_true (out[0] != '\0');
}

/* ---- The tests ---- */

static void
test_validator_rejects (void **state)
{
  /* The validator must be able to say no, or the other tests prove
   * nothing. */
  assert_true (json_valid ("{\"a\":1}\n", NULL, NULL, 0));
  assert_true (json_valid ("{}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":1}", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":1,}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":01}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":nan}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":inf}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":\"x\ny\"}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":\"\\x\"}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":\"\xff\"}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":\"\xc0\x80\"}\n", NULL, NULL, 0));
  assert_false (json_valid ("{\"a\":1\n", NULL, NULL, 0));
}

static void
test_basic_line (void **state)
{
  struct json_line j;
  const char *text;
  char v[256];

  json_line_begin (&j, "progress", 1700000000.123456);
  json_line_add_u64 (&j, "pass", 3);
  json_line_add_u64 (&j, "bytes_sent", UINT64_MAX);
  json_line_add_i64 (&j, "delta", INT64_MIN);
  json_line_add_double (&j, "rate", 123.5);
  json_line_add_bool (&j, "final", true);
  json_line_add_bool (&j, "fenced", false);
  json_line_add_string (&j, "state", "tracking");
  text = json_line_end (&j);

  assert_string_equal (text,
                       "{\"event\":\"progress\",\"ts\":1700000000.123,"
                       "\"pass\":3,\"bytes_sent\":18446744073709551615,"
                       "\"delta\":-9223372036854775808,\"rate\":123.5,"
                       "\"final\":true,\"fenced\":false,\"state\":\"tracking\"}\n");
  assert_true (json_valid (text, NULL, NULL, 0));
  assert_false (j.truncated);
  assert_int_equal (j.len, strlen (text));

  /* Ending twice gives the same text. */
  assert_ptr_equal (json_line_end (&j), text);
  assert_int_equal (j.len, strlen (text));

  get_raw (text, "ts", v, sizeof v);
  assert_string_equal (v, "1700000000.123");
}

static void
test_timestamp (void **state)
{
  struct json_line j;
  char v[64];

  json_line_begin (&j, "start", 0.0);
  get_raw (json_line_end (&j), "ts", v, sizeof v);
  assert_string_equal (v, "0.000");

  json_line_begin (&j, "start", 1763759279.9996);   /* rounds up */
  get_raw (json_line_end (&j), "ts", v, sizeof v);
  assert_string_equal (v, "1763759280.000");

  json_line_begin (&j, "start", NAN);
  get_raw (json_line_end (&j), "ts", v, sizeof v);
  assert_string_equal (v, "null");
}

static void
roundtrip_string (const char *value)
{
  struct json_line j;
  const char *text;
  char out[JSON_LINE_MAX];

  json_line_begin (&j, "error", 1.0);
  json_line_add_string (&j, "message", value);
  text = json_line_end (&j);
  if (!json_valid (text, NULL, NULL, 0))
    fail_msg ("invalid JSON for a string value: %s", text);
  get_string (text, "message", out, sizeof out);
  assert_string_equal (out, value);
}

static void
test_escaping (void **state)
{
  struct json_line j;
  const char *text;
  char all_controls[32];
  char out[256];
  int i;

  roundtrip_string ("");
  roundtrip_string ("plain");
  roundtrip_string ("quote \" backslash \\ slash /");
  roundtrip_string ("tab\tnewline\ncr\rbs\bff\f");
  roundtrip_string ("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  /* é € 😀 */
  roundtrip_string ("del \x7f is not a control character in JSON");

  for (i = 1; i < 32; i++)
    all_controls[i - 1] = (char) i;
  all_controls[31] = '\0';
  roundtrip_string (all_controls);

  /* The exact forms: short escapes where JSON has them, \u00XX else. */
  json_line_begin (&j, "e", 0);
  json_line_add_string (&j, "s", "a\"b\\c\nd\x01" "e\x1f");
  text = json_line_end (&j);
  assert_non_null (strstr (text, "\"s\":\"a\\\"b\\\\c\\nd\\u0001e\\u001f\""));

  /* Keys are escaped too. */
  json_line_begin (&j, "e", 0);
  json_line_add_u64 (&j, "we\"ird\nkey", 1);
  text = json_line_end (&j);
  assert_true (json_valid (text, "we\"ird\nkey", out, sizeof out));
  assert_string_equal (out, "1");

  /* So is the event name. */
  json_line_begin (&j, "ev\"il", 0);
  text = json_line_end (&j);
  get_string (text, "event", out, sizeof out);
  assert_string_equal (out, "ev\"il");
}

static void
test_invalid_utf8 (void **state)
{
  static const char *const bad[] = {
    "\xff", "\xc0\x80", "\xc3", "\xe2\x82", "\xed\xa0\x80",
    "\xf4\x90\x80\x80", "\x80", "a\xc3(b",
  };
  struct json_line j;
  const char *text;
  char out[64];
  size_t i;

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_line_begin (&j, "error", 0);
    json_line_add_string (&j, "message", bad[i]);
    text = json_line_end (&j);
    if (!json_valid (text, NULL, NULL, 0))
      fail_msg ("invalid UTF-8 case %zu gave invalid JSON: %s", i, text);
    /* Replaced, not passed through. */
    get_string (text, "message", out, sizeof out);
    assert_non_null (strstr (out, "\xef\xbf\xbd"));
  }
  json_line_begin (&j, "error", 0);
  json_line_add_string (&j, "message", "a\xc3(b");
  get_string (json_line_end (&j), "message", out, sizeof out);
  assert_string_equal (out, "a\xef\xbf\xbd(b");
}

static void
test_doubles (void **state)
{
  static const double values[] = {
    0.0, 1.0, -1.5, 0.1, 1.0 / 3.0, 123456789.123456789, 1e300, -2.5e-300,
    5e-324, 1.7976931348623157e308, 100.0, 1e21,
  };
  struct json_line j;
  char v[128];
  size_t i;

  for (i = 0; i < sizeof values / sizeof values[0]; i++) {
    json_line_begin (&j, "progress", 0);
    json_line_add_double (&j, "rate", values[i]);
    get_raw (json_line_end (&j), "rate", v, sizeof v);
    /* Valid number text (checked by get_raw) that reads back exactly. */
    if (strtod (v, NULL) != values[i])
      fail_msg ("%.17g printed as %s", values[i], v);
  }

  json_line_begin (&j, "progress", 0);
  json_line_add_double (&j, "rate", 0.1);
  get_raw (json_line_end (&j), "rate", v, sizeof v);
  assert_string_equal (v, "0.1");       /* shortest form when it suffices */

  json_line_begin (&j, "progress", 0);
  json_line_add_double (&j, "a", NAN);
  json_line_add_double (&j, "b", INFINITY);
  json_line_add_double (&j, "c", -INFINITY);
  assert_string_equal (json_line_end (&j),
                       "{\"event\":\"progress\",\"ts\":0.000,"
                       "\"a\":null,\"b\":null,\"c\":null}\n");
}

static void
test_truncation (void **state)
{
  struct json_line j;
  char big[JSON_LINE_MAX];
  char escapes[JSON_LINE_MAX / 2];
  const char *text;
  char v[64];
  size_t fill;
  int i;

  /* One string too long for the line: dropped whole, marked, closed. */
  memset (big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  json_line_begin (&j, "error", 5.0);
  json_line_add_u64 (&j, "before", 1);
  json_line_add_string (&j, "message", big);
  json_line_add_u64 (&j, "after", 2);           /* dropped too */
  text = json_line_end (&j);
  assert_true (j.truncated);
  assert_true (json_valid (text, NULL, NULL, 0));
  assert_string_equal (text,
                       "{\"event\":\"error\",\"ts\":5.000,\"before\":1,"
                       "\"truncated\":true}\n");
  assert_int_equal (j.len, strlen (text));

  /* Strings whose escaping makes them six times longer, added until the
   * line is full, at every fill level: always valid, always under the
   * maximum, and the fields kept are whole. */
  memset (escapes, '\x01', sizeof escapes - 1);
  escapes[sizeof escapes - 1] = '\0';
  for (fill = 0; fill < 700; fill += 7) {
    json_line_begin (&j, "error", 5.0);
    for (i = 0; i < 1000; i++) {
      escapes[fill] = '\0';
      json_line_add_string (&j, "m", escapes);
      escapes[fill] = '\x01';
      json_line_add_u64 (&j, "n", (uint64_t) i);
    }
    text = json_line_end (&j);
    assert_true (j.truncated);
    assert_true (j.len < JSON_LINE_MAX);
    assert_int_equal (strlen (text), j.len);
    if (!json_valid (text, "truncated", v, sizeof v))
      fail_msg ("truncated line at fill %zu is not valid JSON: %s", fill, text);
    assert_string_equal (v, "true");
  }

  /* Even the event name not fitting leaves a valid object. */
  json_line_begin (&j, big, 5.0);
  text = json_line_end (&j);
  assert_true (j.truncated);
  assert_string_equal (text, "{\"truncated\":true}\n");

  /* A line that fits exactly is not marked. */
  json_line_begin (&j, "x", 0);
  json_line_add_string (&j, "m", "short");
  json_line_end (&j);
  assert_false (j.truncated);
}

static void
test_emit (void **state)
{
  struct json_line j;
  char buf[256];
  FILE *fp;
  size_t n;

  fp = tmpfile ();
  assert_non_null (fp);
  json_line_begin (&j, "done", 2.0);
  json_line_add_u64 (&j, "passes", 4);
  assert_int_equal (json_line_emit (&j, fp), 0);
  json_line_begin (&j, "done", 3.0);
  assert_int_equal (json_line_emit (&j, fp), 0);
  rewind (fp);
  n = fread (buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  assert_string_equal (buf,
                       "{\"event\":\"done\",\"ts\":2.000,\"passes\":4}\n"
                       "{\"event\":\"done\",\"ts\":3.000}\n");
  fclose (fp);

  /* A write error is reported. */
  fp = fopen ("/dev/full", "w");
  if (fp != NULL) {
    json_line_begin (&j, "done", 2.0);
    assert_int_equal (json_line_emit (&j, fp), -1);
    fclose (fp);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_validator_rejects),
    cmocka_unit_test (test_basic_line),
    cmocka_unit_test (test_timestamp),
    cmocka_unit_test (test_escaping),
    cmocka_unit_test (test_invalid_utf8),
    cmocka_unit_test (test_doubles),
    cmocka_unit_test (test_truncation),
    cmocka_unit_test (test_emit),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
