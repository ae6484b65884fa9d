/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: user messages on stderr (see log.h).
 *
 * Each message is written under the stdio lock of stderr, so messages from
 * different threads of one process never interleave mid-line.  errno is
 * saved and restored around the write so a format using %m reports the
 * caller's error, and so logging never changes the errno a caller is about
 * to return.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

/* Write "PROGRAM: LEVEL: message\n" (LEVEL omitted when NULL). */
static void
log_message (const char *level, const char *fmt, va_list args)
{
  int saved_errno = errno;

  flockfile (stderr);
  if (level != NULL)
    fprintf (stderr, "%s: %s: ", program_invocation_short_name, level);
  else
    fprintf (stderr, "%s: ", program_invocation_short_name);
  errno = saved_errno;
  vfprintf (stderr, fmt, args);
  fputc ('\n', stderr);
  funlockfile (stderr);
  errno = saved_errno;
}

void
log_error (const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  log_message ("error", fmt, args);
  va_end (args);
}

void
log_usage_error (const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  log_message ("error", fmt, args);
  va_end (args);
  fprintf (stderr, "Try '%s --help' for more information.\n",
           program_invocation_short_name);
  exit (LOG_EXIT_USAGE);
}

void
log_warning (const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  log_message ("warning", fmt, args);
  va_end (args);
}

void
log_info (const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  log_message (NULL, fmt, args);
  va_end (args);
}
