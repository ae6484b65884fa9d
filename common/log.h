/* stm: messages for the user, on stderr, prefixed with the program name
 * (glibc's program_invocation_short_name, so there is no state to set).
 *
 * The rule in this project: an error is reported once, where it is
 * detected, with the object it concerns; callers return -1 and add
 * context only when they know something the detector did not.
 */
#ifndef STM_COMMON_LOG_H
#define STM_COMMON_LOG_H

#include <stdarg.h>
#include <stdint.h>

void log_error (const char *fmt, ...) __attribute__((format (printf, 1, 2)));
void log_warning (const char *fmt, ...) __attribute__((format (printf, 1, 2)));
void log_info (const char *fmt, ...) __attribute__((format (printf, 1, 2)));

/* A usage error: "PROGRAM: error: message", then "Try 'PROGRAM --help'
 * for more information.", and exit status 2.  Both CLIs go through here
 * so that their usage hints have one shape. */
#define LOG_EXIT_USAGE 2
void log_usage_error (const char *fmt, ...)
  __attribute__((format (printf, 1, 2), noreturn));

/* Seconds since the Unix epoch with sub-millisecond precision, and a
 * monotonic clock in nanoseconds, for events and rate arithmetic. */
double time_unix_now (void);
uint64_t time_monotonic_ns (void);

#endif /* STM_COMMON_LOG_H */
