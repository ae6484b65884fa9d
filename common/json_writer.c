/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: one-line JSON objects for --json (see json_writer.h).
 *
 * Fields are appended to a fixed buffer.  Each field is written whole or
 * not at all: if one does not fit, the buffer is rolled back to the end of
 * the previous field, the line is marked truncated and later fields are
 * dropped, so a truncated line is still one valid, closed object.  Room for
 * the closing ',"truncated":true}' and the newline is reserved from the
 * start, so closing can never fail.
 *
 * Strings are escaped per RFC 8259: quote, backslash and control
 * characters are escaped (the latter as \u00XX unless they have a short
 * form), and bytes that are not valid UTF-8 become U+FFFD, so the output is
 * valid JSON whatever bytes a file name or error message contains.
 */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"

#define TRUNCATED_FIELD ",\"truncated\":true"
#define CLOSING "}\n"

/* Fields may fill the buffer up to this length; the rest is for the
 * truncation marker, the closing brace, the newline and the NUL. */
#define FIELDS_LIMIT \
  (JSON_LINE_MAX - (sizeof TRUNCATED_FIELD - 1) - (sizeof CLOSING - 1) - 1)

/* Append n bytes if they fit under limit. */
static bool
put_bytes (struct json_line *j, size_t limit, const char *s, size_t n)
{
  if (n > limit - j->len)
    return false;
  memcpy (j->buf + j->len, s, n);
  j->len += n;
  return true;
}

static bool
put_str (struct json_line *j, size_t limit, const char *s)
{
  return put_bytes (j, limit, s, strlen (s));
}

/* The length of the valid UTF-8 sequence starting at s (1 to 4), or 0 if
 * the bytes there are not one: a stray continuation byte, a truncated
 * sequence, an overlong form, a surrogate or a code point past U+10FFFF. */
static size_t
utf8_sequence_length (const unsigned char *s)
{
  size_t n, i;
  uint32_t cp;

  if (s[0] < 0x80)
    return 1;
  else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    n = 2;
    cp = s[0] & 0x1f;
  }
  else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    n = 3;
    cp = s[0] & 0x0f;
  }
  else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    n = 4;
    cp = s[0] & 0x07;
  }
  else
    return 0;

  /* A NUL ends the string and fails this test, so no read goes past it. */
  for (i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
      || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return n;
}

/* Append s as a JSON string, quotes included. */
static bool
put_string (struct json_line *j, size_t limit, const char *str)
{
  const unsigned char *s = (const unsigned char *) str;

  if (!put_bytes (j, limit, "\"", 1))
    return false;
  while (*s != '\0') {
    const char *esc = NULL;
    char ucode[8];
    size_t n;

    switch (*s) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    default:
      if (*s < 0x20) {
        snprintf (ucode, sizeof ucode, "\\u%04x", *s);
        esc = ucode;
      }
    }
    if (esc != NULL) {
      if (!put_str (j, limit, esc))
        return false;
      s++;
      continue;
    }

    n = utf8_sequence_length (s);
    if (n == 0) {
      /* One invalid byte becomes one replacement character. */
      if (!put_str (j, limit, "\\ufffd"))
        return false;
      s++;
    }
    else {
      if (!put_bytes (j, limit, (const char *) s, n))
        return false;
      s += n;
    }
  }
  return put_bytes (j, limit, "\"", 1);
}

/* Append ,"key":value where value is already JSON text, or escape value as
 * a string when quote is true.  All or nothing: on overflow the line is
 * rolled back to the previous field and marked truncated. */
static void
add_field (struct json_line *j, const char *key, const char *value, bool quote)
{
  size_t saved = j->len;
  bool ok;

  assert (j->len > 0 && j->buf[0] == '{');
  if (j->truncated)
    return;

  ok = (j->buf[j->len - 1] == '{' || put_bytes (j, FIELDS_LIMIT, ",", 1))
    && put_string (j, FIELDS_LIMIT, key)
    && put_bytes (j, FIELDS_LIMIT, ":", 1)
    && (quote ? put_string (j, FIELDS_LIMIT, value)
        : put_str (j, FIELDS_LIMIT, value));
  if (!ok) {
    j->len = saved;
    j->truncated = true;
  }
}

/* Format a finite double so that it reads back as the same value, in the
 * shortest of the two usual precisions; NaN and infinities have no JSON
 * form and become null. */
static void
format_double (char *out, size_t outlen, double value)
{
  char *p;

  if (!isfinite (value)) {
    snprintf (out, outlen, "null");
    return;
  }
  snprintf (out, outlen, "%.15g", value);
  if (strtod (out, NULL) != value)
    snprintf (out, outlen, "%.17g", value);
  /* A locale with a decimal comma would make invalid JSON. */
  p = strchr (out, ',');
  if (p != NULL)
    *p = '.';
}

void
json_line_begin (struct json_line *j, const char *event, double unix_time)
{
  char ts[64];
  char *p;

  j->len = 0;
  j->truncated = false;
  j->buf[j->len++] = '{';
  add_field (j, "event", event, true);
  /* Milliseconds are as much as an event's time means. */
  if (isfinite (unix_time)) {
    snprintf (ts, sizeof ts, "%.3f", unix_time);
    p = strchr (ts, ',');
    if (p != NULL)
      *p = '.';
  }
  else
    snprintf (ts, sizeof ts, "null");
  add_field (j, "ts", ts, false);
}

void
json_line_add_string (struct json_line *j, const char *key, const char *value)
{
  add_field (j, key, value, true);
}

void
json_line_add_u64 (struct json_line *j, const char *key, uint64_t value)
{
  char text[32];

  snprintf (text, sizeof text, "%" PRIu64, value);
  add_field (j, key, text, false);
}

void
json_line_add_i64 (struct json_line *j, const char *key, int64_t value)
{
  char text[32];

  snprintf (text, sizeof text, "%" PRId64, value);
  add_field (j, key, text, false);
}

void
json_line_add_double (struct json_line *j, const char *key, double value)
{
  char text[64];

  format_double (text, sizeof text, value);
  add_field (j, key, text, false);
}

void
json_line_add_bool (struct json_line *j, const char *key, bool value)
{
  add_field (j, key, value ? "true" : "false", false);
}

void
json_line_add_raw (struct json_line *j, const char *key, const char *json)
{
  add_field (j, key, json, false);
}

const char *
json_line_end (struct json_line *j)
{
  assert (j->len > 0 && j->buf[0] == '{');
  /* Ending twice returns the same text: an open line never ends in a
   * newline, since newlines inside strings are escaped. */
  if (j->buf[j->len - 1] == '\n')
    return j->buf;

  /* The reserve makes these fit whatever the fields did. */
  if (j->truncated) {
    if (j->buf[j->len - 1] == '{')
      put_str (j, JSON_LINE_MAX - 1, TRUNCATED_FIELD + 1);
    else
      put_str (j, JSON_LINE_MAX - 1, TRUNCATED_FIELD);
  }
  put_str (j, JSON_LINE_MAX - 1, CLOSING);
  assert (j->len < JSON_LINE_MAX);
  j->buf[j->len] = '\0';
  return j->buf;
}

int
json_line_emit (struct json_line *j, FILE *fp)
{
  json_line_end (j);
  /* One fwrite of the whole line, so lines never interleave. */
  if (fwrite (j->buf, 1, j->len, fp) != j->len)
    return -1;
  if (fflush (fp) == EOF)
    return -1;
  return 0;
}
