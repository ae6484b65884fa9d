/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: parsers for sizes, durations, plain numbers and HOST:PORT (see
 * parse.h).
 *
 * Every parser is strict: the whole text must be consumed, there is no
 * leading whitespace or sign (strtoull would silently accept " -1" as a
 * huge number), and a value that does not fit gives ERANGE rather than a
 * wrapped or saturated result.  Digits are accumulated by hand for that
 * reason.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "parse.h"
#include "time_units.h"

static bool
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

/* Read one or more decimal digits at *p into *value and advance *p.
 * Returns -1 with EINVAL if there is no digit, ERANGE if the number does
 * not fit in 64 bits (in which case the remaining digits are still
 * skipped, so a caller can tell overflow from malformed text). */
static int
read_digits (const char **p, uint64_t *value)
{
  const char *s = *p;
  uint64_t v = 0;
  bool overflow = false;

  if (!is_digit (*s)) {
    errno = EINVAL;
    return -1;
  }
  for (; is_digit (*s); s++) {
    unsigned d = (unsigned) (*s - '0');

    if (v > (UINT64_MAX - d) / 10)
      overflow = true;
    else
      v = v * 10 + d;
  }
  *p = s;
  if (overflow) {
    errno = ERANGE;
    return -1;
  }
  *value = v;
  return 0;
}

int
parse_u64 (const char *text, uint64_t *value)
{
  const char *p = text;
  uint64_t v;

  if (read_digits (&p, &v) == -1)
    return -1;
  if (*p != '\0') {
    errno = EINVAL;
    return -1;
  }
  *value = v;
  return 0;
}

/* The power of two a size multiplier stands for, or 0 if c is none. */
static unsigned
size_prefix_shift (char c)
{
  switch (c) {
  case 'k': case 'K': return 10;
  case 'm': case 'M': return 20;
  case 'g': case 'G': return 30;
  case 't': case 'T': return 40;
  case 'p': case 'P': return 50;
  default: return 0;
  }
}

int
parse_size (const char *text, uint64_t *bytes)
{
  const char *p = text;
  unsigned shift;
  uint64_t v;
  int r;

  r = read_digits (&p, &v);
  /* Overflow of the digits alone is only ERANGE if the rest is a valid
   * suffix; "99999999999999999999x" is malformed first of all. */
  if (r == -1 && errno != ERANGE)
    return -1;

  /* Optional multiplier K, M, G, T, P (any case), binary multiples. */
  shift = size_prefix_shift (*p);
  if (shift > 0) {
    p++;
    /* "KiB" or "KB" mean the same: this tool deals only in binary units. */
    if (strncasecmp (p, "ib", 2) == 0)
      p += 2;
    else if (*p == 'b' || *p == 'B')
      p++;
  }
  else if (*p == 'b' || *p == 'B')
    p++;                        /* plain bytes: "4096b" */

  if (*p != '\0') {
    errno = EINVAL;
    return -1;
  }
  if (r == -1) {
    errno = ERANGE;
    return -1;
  }
  if (shift > 0 && v > (UINT64_MAX >> shift)) {
    errno = ERANGE;
    return -1;
  }
  *bytes = v << shift;
  return 0;
}

/* The duration units, longest names first so "ms" is not read as "m". */
static const struct duration_unit {
  const char *name;
  uint64_t ns;
} duration_units[] = {
  { "ns", UINT64_C (1) },
  { "us", NS_PER_US },
  { "ms", NS_PER_MS },
  { "s",  NS_PER_S },
  { "m",  60 * NS_PER_S },
  { "h",  3600 * NS_PER_S },
};

int
parse_duration (const char *text, uint64_t default_unit_ns, uint64_t *ns)
{
  const char *p = text;
  uint64_t whole, frac = 0, frac_scale = 1, unit = 0;
  unsigned __int128 total;
  bool overflow = false;
  size_t i;

  if (read_digits (&p, &whole) == -1) {
    if (errno != ERANGE)
      return -1;
    overflow = true;
  }

  /* An optional fraction: at least one digit after the point.  Digits past
   * the 18th weigh less than a nanosecond even in hours, so they are
   * checked and then ignored. */
  if (*p == '.') {
    p++;
    if (!is_digit (*p)) {
      errno = EINVAL;
      return -1;
    }
    for (; is_digit (*p); p++) {
      if (frac_scale <= UINT64_MAX / 10 / 10) {
        frac = frac * 10 + (uint64_t) (*p - '0');
        frac_scale *= 10;
      }
    }
  }

  if (*p == '\0')
    unit = default_unit_ns;
  else {
    for (i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
      if (strcasecmp (p, duration_units[i].name) == 0) {
        unit = duration_units[i].ns;
        break;
      }
    }
  }
  /* An unknown unit, or a bare number where the caller gave no default
   * unit (default_unit_ns 0), is malformed. */
  if (unit == 0) {
    errno = EINVAL;
    return -1;
  }
  if (overflow) {
    errno = ERANGE;
    return -1;
  }

  /* 128-bit arithmetic: whole * unit alone can exceed 64 bits, and the
   * fraction is truncated towards zero at the nanosecond. */
  total = (unsigned __int128) whole * unit
    + (unsigned __int128) frac * unit / frac_scale;
  if (total > UINT64_MAX) {
    errno = ERANGE;
    return -1;
  }
  *ns = (uint64_t) total;
  return 0;
}

int
parse_host_port (const char *text, char *host, size_t hostlen, uint16_t *port)
{
  const char *host_start, *host_end, *port_text;
  size_t len;
  uint64_t v;

  if (text[0] == '[') {
    /* "[v6addr]:PORT": the brackets keep the address's colons apart from
     * the port's. */
    host_start = text + 1;
    host_end = strchr (host_start, ']');
    if (host_end == NULL || host_end == host_start || host_end[1] != ':') {
      errno = EINVAL;
      return -1;
    }
    port_text = host_end + 2;
  }
  else {
    /* "HOST:PORT" or ":PORT".  More than one colon is an IPv6 address
     * without brackets, which is ambiguous. */
    host_start = text;
    host_end = strchr (text, ':');
    if (host_end == NULL || strchr (host_end + 1, ':') != NULL
        || memchr (text, '[', (size_t) (host_end - text)) != NULL
        || memchr (text, ']', (size_t) (host_end - text)) != NULL) {
      errno = EINVAL;
      return -1;
    }
    port_text = host_end + 1;
  }

  if (parse_u64 (port_text, &v) == -1)
    return -1;
  if (v > 65535) {
    errno = ERANGE;
    return -1;
  }

  len = (size_t) (host_end - host_start);
  if (len >= hostlen) {
    errno = ERANGE;
    return -1;
  }
  memcpy (host, host_start, len);
  host[len] = '\0';
  *port = (uint16_t) v;
  return 0;
}
