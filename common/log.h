/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: messages for the user, on stderr, prefixed with the program name
 * (glibc's program_invocation_short_name, so there is no state to set).
 *
 * The rule in this project: an error is reported once, where it is
 * detected, with the object it concerns; callers return -1 and add
 * context only when they know something the detector did not.
 *
 * This is for the CLIs only.  The nbdkit filter reports through
 * nbdkit_error and nbdkit_debug, which follow nbdkit's --log, -f and -v
 * (a filter writing to stderr itself is lost once nbdkit has daemonized,
 * and bypasses --log=syslog), and it does not link log.c.
 */
#ifndef STM_COMMON_LOG_H
#define STM_COMMON_LOG_H

#include <stdarg.h>
#include <stdint.h>

/* The clocks used to be declared here, and the CLIs' files still find
 * time_unix_now and time_monotonic_ns through this header; new code
 * includes clock.h, which is where they live. */
#include "clock.h"

void log_error (const char *fmt, ...) __attribute__((format (printf, 1, 2)));
void log_warning (const char *fmt, ...) __attribute__((format (printf, 1, 2)));
void log_info (const char *fmt, ...) __attribute__((format (printf, 1, 2)));

/* A usage error: "PROGRAM: error: message", then "Try 'PROGRAM --help'
 * for more information.", and exit status 2.  Both CLIs go through here
 * so that their usage hints have one shape. */
#define LOG_EXIT_USAGE 2
void log_usage_error (const char *fmt, ...)
  __attribute__((format (printf, 1, 2), noreturn));

#endif /* STM_COMMON_LOG_H */
