/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: numbers as a storage engineer reads them: durations, and
 * the "nice" tick steps of a chart's axes (1, 2 or 5 times a power of ten
 * of the unit shown).  Byte counts in words come from common/
 * (human_units.h), as everywhere else.
 *
 * Pure functions, shared by the timeline's labels and the renderer.
 */
#ifndef STM_REPORT_UNITS_H
#define STM_REPORT_UNITS_H

#include <stddef.h>

#include "human_units.h"

/* "850 ms", "12.3 s", "4 min 10 s", "2 h 5 min". */
void report_format_duration (char *buf, size_t len, double seconds);

/* The binary unit to show values up to max in: its name ("MiB") and its
 * size in bytes (1048576).  Values of 0 use bytes. */
struct report_unit {
  const char *name;
  double scale;
};
struct report_unit report_unit_for (double max);

/* A tick step for an axis from 0 to max (in the unit shown) with about
 * target ticks: 1, 2 or 5 times a power of ten.  max <= 0 gives 1. */
double report_nice_step (double max, int target);

#endif /* STM_REPORT_UNITS_H */
