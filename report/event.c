/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: the parser of one flat JSON event line (see event.h).
 *
 * A small recursive-descent parser over [p, end) that follows RFC 8259
 * strictly, so that a line cut short or corrupted is rejected rather than
 * half-read: the report must never draw numbers that were not in the log.
 * The input is not NUL-terminated (it may be a window into a larger
 * buffer), so every read checks the end.
 */
#include <config.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "human_units.h"

struct cursor {
  const char *p;
  const char *end;
  const char *why;
};

static bool
fail (struct cursor *c, const char *why)
{
  if (c->why == NULL)
    c->why = why;
  return false;
}

static void
skip_ws (struct cursor *c)
{
  while (c->p < c->end
         && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static bool
eat (struct cursor *c, char ch)
{
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return true;
  }
  return false;
}


static bool
read_hex4 (struct cursor *c, uint32_t *out)
{
  uint32_t v = 0;
  if (c->end - c->p < 4)
    return fail (c, "a \\u escape is cut short");
  for (int i = 0; i < 4; i++) {
    int h = hex_digit_value (c->p[i]);
    if (h < 0)
      return fail (c, "a \\u escape is not four hex digits");
    v = v << 4 | (uint32_t) h;
  }
  c->p += 4;
  *out = v;
  return true;
}

/* The output of a string being decoded: bytes beyond the room are counted
 * as cut, and the cut is moved back to a character boundary at the end. */
struct sink {
  char *buf;
  size_t room;           /* bytes available, the NUL excluded; 0 = discard */
  size_t len;
  bool cut;
};

static void
sink_put (struct sink *s, const char *bytes, size_t n)
{
  if (s->buf == NULL)
    return;
  /* A character is stored whole or not at all, so a cut string is
   * still valid UTF-8. */
  if (s->cut || n > s->room - s->len) {
    s->cut = true;
    return;
  }
  memcpy (s->buf + s->len, bytes, n);
  s->len += n;
}

static void
sink_put_cp (struct sink *s, uint32_t cp)
{
  char u[4];
  size_t n;
  /* NUL would end the C string early: it becomes U+FFFD, like invalid
   * input does in the writer. */
  if (cp == 0)
    cp = 0xfffd;
  if (cp < 0x80) {
    u[0] = (char) cp;
    n = 1;
  }
  else if (cp < 0x800) {
    u[0] = (char) (0xc0 | cp >> 6);
    u[1] = (char) (0x80 | (cp & 0x3f));
    n = 2;
  }
  else if (cp < 0x10000) {
    u[0] = (char) (0xe0 | cp >> 12);
    u[1] = (char) (0x80 | (cp >> 6 & 0x3f));
    u[2] = (char) (0x80 | (cp & 0x3f));
    n = 3;
  }
  else {
    u[0] = (char) (0xf0 | cp >> 18);
    u[1] = (char) (0x80 | (cp >> 12 & 0x3f));
    u[2] = (char) (0x80 | (cp >> 6 & 0x3f));
    u[3] = (char) (0x80 | (cp & 0x3f));
    n = 4;
  }
  sink_put (s, u, n);
}

/* The length of the valid UTF-8 sequence at p (before end), or 0. */
static size_t
utf8_length (const unsigned char *p, const unsigned char *end)
{
  size_t n;
  uint32_t cp;
  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf) {
    n = 2;
    cp = p[0] & 0x1f;
  }
  else if (p[0] >= 0xe0 && p[0] <= 0xef) {
    n = 3;
    cp = p[0] & 0x0f;
  }
  else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
    n = 4;
    cp = p[0] & 0x07;
  }
  else
    return 0;
  if ((size_t) (end - p) < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
      || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return n;
}

/* A JSON string at c->p, decoded into out (outlen bytes with the NUL;
 * out NULL to skip it).  *cut says whether it was longer than out. */
static bool
parse_string (struct cursor *c, char *out, size_t outlen, bool *cut)
{
  struct sink s = { out, out ? outlen - 1 : 0, 0, false };

  if (!eat (c, '"'))
    return fail (c, "a string was expected");
  for (;;) {
    if (c->p >= c->end)
      return fail (c, "a string is not closed");
    unsigned char ch = (unsigned char) *c->p;
    if (ch == '"') {
      c->p++;
      break;
    }
    if (ch < 0x20)
      return fail (c, "a control character inside a string");
    if (ch != '\\') {
      size_t n = utf8_length ((const unsigned char *) c->p,
                              (const unsigned char *) c->end);
      if (n == 0)
        return fail (c, "a string is not valid UTF-8");
      sink_put (&s, c->p, n);
      c->p += n;
      continue;
    }
    c->p++;
    if (c->p >= c->end)
      return fail (c, "an escape is cut short");
    char e = *c->p++;
    uint32_t cp;
    switch (e) {
    case '"': sink_put (&s, "\"", 1); break;
    case '\\': sink_put (&s, "\\", 1); break;
    case '/': sink_put (&s, "/", 1); break;
    case 'b': sink_put (&s, "\b", 1); break;
    case 'f': sink_put (&s, "\f", 1); break;
    case 'n': sink_put (&s, "\n", 1); break;
    case 'r': sink_put (&s, "\r", 1); break;
    case 't': sink_put (&s, "\t", 1); break;
    case 'u':
      if (!read_hex4 (c, &cp))
        return false;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        /* A high surrogate is only a character with a low one after it;
         * alone it is kept as U+FFFD, as lenient writers produce it. */
        uint32_t lo;
        if (c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
          c->p += 2;
          if (!read_hex4 (c, &lo))
            return false;
          if (lo >= 0xdc00 && lo <= 0xdfff)
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          else {
            sink_put_cp (&s, 0xfffd);
            cp = (lo >= 0xd800 && lo <= 0xdfff) ? 0xfffd : lo;
          }
        }
        else
          cp = 0xfffd;
      }
      else if (cp >= 0xdc00 && cp <= 0xdfff)
        cp = 0xfffd;
      sink_put_cp (&s, cp);
      break;
    default:
      return fail (c, "an unknown escape in a string");
    }
  }
  if (out != NULL)
    out[s.len] = '\0';
  if (cut != NULL)
    *cut = s.cut;
  return true;
}

/* A JSON number: the grammar is checked here, the value read by strtod.
 * *ok is false when it does not fit a double (it overflows). */
static bool
parse_number (struct cursor *c, double *value, bool *ok)
{
  const char *start = c->p;
  char buf[512];

  eat (c, '-');
  if (eat (c, '0'))
    ;
  else if (c->p < c->end && *c->p >= '1' && *c->p <= '9')
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
      c->p++;
  else
    return fail (c, "a value is not valid JSON");
  if (eat (c, '.')) {
    if (!(c->p < c->end && *c->p >= '0' && *c->p <= '9'))
      return fail (c, "a number has no digit after its point");
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
      c->p++;
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (!eat (c, '+'))
      eat (c, '-');
    if (!(c->p < c->end && *c->p >= '0' && *c->p <= '9'))
      return fail (c, "a number has no digit in its exponent");
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
      c->p++;
  }
  size_t n = (size_t) (c->p - start);
  *ok = false;
  /* Any number that has no place in an event (hundreds of digits) is
   * valid JSON but not a value to draw: its field is dropped. */
  if (n >= sizeof buf)
    return true;
  memcpy (buf, start, n);
  buf[n] = '\0';
  double v = strtod (buf, NULL);
  if (isfinite (v)) {
    *value = v;
    *ok = true;
  }
  return true;
}

static bool
eat_word (struct cursor *c, const char *w)
{
  size_t n = strlen (w);
  if ((size_t) (c->end - c->p) >= n && memcmp (c->p, w, n) == 0) {
    c->p += n;
    return true;
  }
  return false;
}

/* Skip any value, nested ones included, to a bounded depth. */
static bool
skip_value (struct cursor *c, int depth)
{
  double d;
  bool ok;

  if (depth > REPORT_NEST_MAX)
    return fail (c, "values are nested too deeply");
  skip_ws (c);
  if (c->p >= c->end)
    return fail (c, "a value is missing");
  switch (*c->p) {
  case '"':
    return parse_string (c, NULL, 0, NULL);
  case '{':
  case '[': {
    char close = *c->p == '{' ? '}' : ']';
    bool object = close == '}';
    c->p++;
    skip_ws (c);
    if (eat (c, close))
      return true;
    for (;;) {
      if (object) {
        skip_ws (c);
        if (!parse_string (c, NULL, 0, NULL))
          return false;
        skip_ws (c);
        if (!eat (c, ':'))
          return fail (c, "a key is not followed by ':'");
      }
      if (!skip_value (c, depth + 1))
        return false;
      skip_ws (c);
      if (eat (c, close))
        return true;
      if (!eat (c, ','))
        return fail (c, "a nested value is not closed");
    }
  }
  case 't': if (eat_word (c, "true")) return true; break;
  case 'f': if (eat_word (c, "false")) return true; break;
  case 'n': if (eat_word (c, "null")) return true; break;
  default:
    return parse_number (c, &d, &ok);
  }
  return fail (c, "a value is not valid JSON");
}

/* One "key": value member of the top-level object into ev. */
static bool
parse_member (struct cursor *c, struct report_event *ev, bool *have_event)
{
  char key[REPORT_KEY_MAX];
  bool key_cut;
  struct report_field f;

  if (!parse_string (c, key, sizeof key, &key_cut))
    return false;
  skip_ws (c);
  if (!eat (c, ':'))
    return fail (c, "a key is not followed by ':'");
  skip_ws (c);
  if (c->p >= c->end)
    return fail (c, "a value is missing");

  memset (&f, 0, sizeof f);
  bool keep = !key_cut;
  char ch = *c->p;
  if (ch == '"') {
    bool cut;
    f.type = REPORT_STRING;
    if (!parse_string (c, f.string, sizeof f.string, &cut))
      return false;
  }
  else if (ch == '{' || ch == '[') {
    if (!skip_value (c, 1))
      return false;
    keep = false;
  }
  else if (eat_word (c, "true")) {
    f.type = REPORT_BOOL;
    f.boolean = true;
  }
  else if (eat_word (c, "false"))
    f.type = REPORT_BOOL;
  else if (eat_word (c, "null"))
    f.type = REPORT_NULL;
  else {
    bool fits;
    f.type = REPORT_NUMBER;
    if (!parse_number (c, &f.number, &fits))
      return false;
    keep = keep && fits;
  }
  if (!keep)
    return true;

  if (strcmp (key, "event") == 0) {
    if (*have_event)
      return true;
    if (f.type != REPORT_STRING || f.string[0] == '\0'
        || strlen (f.string) >= sizeof ev->name)
      return fail (c, "\"event\" is not a short string");
    strcpy (ev->name, f.string);
    *have_event = true;
    return true;
  }
  if (strcmp (key, "ts") == 0 && f.type == REPORT_NUMBER && !ev->has_ts) {
    ev->has_ts = true;
    ev->ts = f.number;
    return true;
  }
  if (ev->nfields < REPORT_EVENT_FIELDS) {
    memcpy (f.key, key, sizeof f.key);
    ev->fields[ev->nfields++] = f;
  }
  return true;
}

int
report_event_parse (const char *line, size_t len, struct report_event *ev,
                    const char **why)
{
  struct cursor c = { line, line + len, NULL };
  bool have_event = false;

  ev->name[0] = '\0';
  ev->has_ts = false;
  ev->ts = 0;
  ev->nfields = 0;
  *why = NULL;

  if (len > REPORT_LINE_MAX) {
    *why = "the line is too long";
    return -1;
  }
  skip_ws (&c);
  if (!eat (&c, '{')) {
    *why = "not a JSON object";
    return -1;
  }
  skip_ws (&c);
  if (!eat (&c, '}')) {
    for (;;) {
      skip_ws (&c);
      if (!parse_member (&c, ev, &have_event))
        goto bad;
      skip_ws (&c);
      if (eat (&c, '}'))
        break;
      if (!eat (&c, ',')) {
        fail (&c, c.p >= c.end ? "the object is not closed"
              : "members are not separated by ','");
        goto bad;
      }
    }
  }
  skip_ws (&c);
  if (c.p != c.end) {
    *why = "text follows the object";
    return -1;
  }
  if (!have_event) {
    *why = "no \"event\" string";
    return -1;
  }
  return 0;

 bad:
  *why = c.why ? c.why : "not valid JSON";
  return -1;
}

const struct report_field *
report_event_field (const struct report_event *ev, const char *key)
{
  for (size_t i = 0; i < ev->nfields; i++)
    if (strcmp (ev->fields[i].key, key) == 0)
      return &ev->fields[i];
  return NULL;
}

bool
report_event_number (const struct report_event *ev, const char *key, double *out)
{
  const struct report_field *f = report_event_field (ev, key);
  if (f == NULL || f->type != REPORT_NUMBER)
    return false;
  *out = f->number;
  return true;
}

const char *
report_event_string (const struct report_event *ev, const char *key)
{
  const struct report_field *f = report_event_field (ev, key);
  return f != NULL && f->type == REPORT_STRING ? f->string : NULL;
}

bool
report_event_bool (const struct report_event *ev, const char *key, bool dflt)
{
  const struct report_field *f = report_event_field (ev, key);
  return f != NULL && f->type == REPORT_BOOL ? f->boolean : dflt;
}
