/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: binary units, durations and axis steps (see units.h). */
#include <config.h>

#include <math.h>
#include <stdio.h>

#include "units.h"

static const char *const unit_names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
#define NUNITS (sizeof unit_names / sizeof unit_names[0])


void
report_format_duration (char *buf, size_t len, double s)
{
  if (!isfinite (s) || s < 0)
    s = 0;
  if (s < 1)
    snprintf (buf, len, "%.0f ms", s * 1000);
  else if (s < 60)
    snprintf (buf, len, "%.1f s", s);
  else if (s < 3600) {
    /* Whole seconds first, so that 119.7 s reads "2 min 0 s", not
     * "1 min 60 s". */
    double whole = round (s);
    snprintf (buf, len, "%.0f min %.0f s", floor (whole / 60), fmod (whole, 60));
  }
  else {
    double minutes = floor (s / 60);
    snprintf (buf, len, "%.0f h %.0f min", floor (minutes / 60), fmod (minutes, 60));
  }
}

struct report_unit
report_unit_for (double max)
{
  struct report_unit u = { unit_names[0], 1 };
  size_t i = 0;
  /* Switch unit at 1024 of the smaller one, so an axis reads "0 to 900
   * MiB" rather than "0 to 0.9 GiB". */
  while (isfinite (max) && max >= 1024 && i < NUNITS - 1) {
    max /= 1024;
    u.scale *= 1024;
    i++;
  }
  u.name = unit_names[i];
  return u;
}

double
report_nice_step (double max, int target)
{
  if (!isfinite (max) || max <= 0 || target < 1)
    return 1;
  double raw = max / target;
  double p = pow (10, floor (log10 (raw)));
  double m = raw / p;
  double step = m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10;
  return step * p;
}
