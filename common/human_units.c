/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: quantities in words for people (see human_units.h). */
#include <config.h>

#include <math.h>
#include <stdio.h>

#include "human_units.h"

void
format_bytes (char *buf, size_t len, double bytes)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  size_t u = 0;

  if (!isfinite (bytes) || bytes < 0)
    bytes = 0;
  while (bytes >= 1024 && u < sizeof units / sizeof units[0] - 1) {
    bytes /= 1024;
    u++;
  }
  if (u == 0)
    snprintf (buf, len, "%.0f %s", bytes, units[u]);
  else
    snprintf (buf, len, "%.1f %s", bytes, units[u]);
}

int
hex_digit_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}
