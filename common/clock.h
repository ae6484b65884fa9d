/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the clocks, and deadlines on the monotonic one.
 *
 * Every timeout in stm is kept as a deadline: a time on CLOCK_MONOTONIC in
 * nanoseconds, so that setting the wall clock neither stretches nor cuts
 * short a freeze, a connect or a retry.  A deadline is made once, from the
 * time now plus a timeout, and then asked how much time is left.  The
 * arithmetic saturates instead of wrapping, so an enormous timeout means
 * "a very long time", never "already passed".
 *
 * The functions ending in _at take the time now as an argument and are
 * pure, for the unit tests and for callers that have just read the clock;
 * the others read it themselves.  Nothing here writes a message: the
 * nbdkit filter links this file, and it must log through nbdkit alone.
 */
#ifndef STM_COMMON_CLOCK_H
#define STM_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds since the Unix epoch with sub-millisecond precision, for event
 * timestamps; and the monotonic clock in nanoseconds, for durations, rates
 * and deadlines. */
double time_unix_now (void);
uint64_t time_monotonic_ns (void);

/* The deadline timeout_ns after now_ns (UINT64_MAX if that would wrap). */
uint64_t deadline_at (uint64_t now_ns, uint64_t timeout_ns);
/* The deadline timeout_ns from now. */
uint64_t deadline_after_ns (uint64_t timeout_ns);

/* Nanoseconds left until deadline_ns at now_ns; 0 once it has passed. */
uint64_t deadline_left_at (uint64_t deadline_ns, uint64_t now_ns);
/* Nanoseconds left until deadline_ns from now; 0 once it has passed. */
uint64_t deadline_left_ns (uint64_t deadline_ns);

/* A poll(2) timeout for ns nanoseconds: rounded up to a whole millisecond
 * (rounding down would wake early and spin on a deadline that has not
 * quite passed), at most INT_MAX. */
int poll_timeout_ms (uint64_t ns);

/* ns nanoseconds as a struct timespec: a duration for nanosleep, or a
 * deadline on CLOCK_MONOTONIC for pthread_cond_clockwait and
 * pthread_cond_timedwait (with a condattr set to CLOCK_MONOTONIC). */
struct timespec timespec_of_ns (uint64_t ns);

#endif /* STM_COMMON_CLOCK_H */
