/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the clocks and deadline arithmetic (see clock.h).
 *
 * The clocks were in log.c; they moved here so that the nbdkit filter,
 * which needs the monotonic clock but must not write to stderr behind
 * nbdkit's back, can link them without linking the CLIs' logging.
 */
#include <config.h>

#include <limits.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "time_units.h"

double
time_unix_now (void)
{
  struct timespec ts;

  /* CLOCK_REALTIME cannot fail with a valid pointer. */
  clock_gettime (CLOCK_REALTIME, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / (double) NS_PER_S;
}

uint64_t
time_monotonic_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * NS_PER_S + (uint64_t) ts.tv_nsec;
}

uint64_t
deadline_at (uint64_t now_ns, uint64_t timeout_ns)
{
  return timeout_ns > UINT64_MAX - now_ns ? UINT64_MAX : now_ns + timeout_ns;
}

uint64_t
deadline_after_ns (uint64_t timeout_ns)
{
  return deadline_at (time_monotonic_ns (), timeout_ns);
}

uint64_t
deadline_left_at (uint64_t deadline_ns, uint64_t now_ns)
{
  return deadline_ns > now_ns ? deadline_ns - now_ns : 0;
}

uint64_t
deadline_left_ns (uint64_t deadline_ns)
{
  return deadline_left_at (deadline_ns, time_monotonic_ns ());
}

int
poll_timeout_ms (uint64_t ns)
{
  /* ns / NS_PER_MS plus one for a remainder, so that no sum can wrap. */
  uint64_t ms = ns / NS_PER_MS + (ns % NS_PER_MS != 0);

  return ms > INT_MAX ? INT_MAX : (int) ms;
}

struct timespec
timespec_of_ns (uint64_t ns)
{
  struct timespec ts = {
    .tv_sec = (time_t) (ns / NS_PER_S),
    .tv_nsec = (long) (ns % NS_PER_S),
  };
  return ts;
}
