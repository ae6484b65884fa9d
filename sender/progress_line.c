/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the progress bar's line (see progress_line.h). */
#include <config.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "progress_line.h"

/* The optional fields, least important last. */
enum { F_PCT, F_RATE, F_ETA, F_DIRTY, F_COUNT };

/* Assemble the line from the fields kept and a bar of bar cells (0: no
 * bar), cut at len - 1 bytes.  Returns the length it would have uncut. */
static size_t
assemble (char *buf, size_t len, const char *head, const char *fields[F_COUNT],
          const bool keep[F_COUNT], unsigned bar, double pct)
{
  size_t n = 0;
  int r = snprintf (buf, len, "%s", head);
  n = r > 0 ? (size_t) r : 0;
  if (bar > 0) {
    unsigned filled = (unsigned) (pct * bar / 100);
    if (n + 1 < len)
      buf[n] = ' ';
    n++;
    if (n + 1 < len)
      buf[n] = '[';
    n++;
    for (unsigned i = 0; i < bar; i++, n++)
      if (n + 1 < len)
        buf[n] = i < filled ? '#' : '-';
    if (n + 1 < len)
      buf[n] = ']';
    n++;
    buf[n < len ? n : len - 1] = '\0';
  }
  for (int f = 0; f < F_COUNT; f++) {
    if (!keep[f])
      continue;
    r = snprintf (n < len ? buf + n : NULL, n < len ? len - n : 0, " %s", fields[f]);
    n += r > 0 ? (size_t) r : 0;
  }
  return n;
}

size_t
progress_format_line (char *buf, size_t len, const struct progress_sample *s,
                      unsigned width)
{
  char head[48], pct_s[16], rate[32], rate_s[40], eta[32], dirty[32], dirty_s[48];
  double pct = s->pass_bytes ? 100.0 * s->pass_done / s->pass_bytes : 100.0;
  if (pct > 100.0)
    pct = 100.0;
  /* The last column stays empty (see progress_line.h). */
  size_t room = width > 1 ? width - 1 : 0;

  if (len == 0)
    return 0;
  snprintf (head, sizeof head, "pass %u%s", s->pass, s->final ? " (final)" : "");
  snprintf (pct_s, sizeof pct_s, "%5.1f%%", pct);
  format_bytes (rate, sizeof rate, s->rate);
  snprintf (rate_s, sizeof rate_s, "%s/s", rate);
  if (s->rate > 0 && s->pass_bytes >= s->pass_done) {
    unsigned secs = (unsigned) ((s->pass_bytes - s->pass_done) / s->rate + 0.999);
    snprintf (eta, sizeof eta, "ETA %u:%02u:%02u", secs / 3600, secs / 60 % 60,
              secs % 60);
  }
  else
    snprintf (eta, sizeof eta, "ETA --:--:--");
  format_bytes (dirty, sizeof dirty, (double) s->dirty_bytes);
  snprintf (dirty_s, sizeof dirty_s, "dirty %s", dirty);

  const char *fields[F_COUNT] = { pct_s, rate_s, eta, dirty_s };
  bool keep[F_COUNT] = { true, true, true, true };
  char scratch[256];

  /* With every field: the widest bar that fits, if at least BAR_MIN. */
  size_t without_bar = assemble (scratch, sizeof scratch, head, fields, keep, 0, pct);
  if (without_bar + 3 + PROGRESS_LINE_BAR_MIN <= room) {
    size_t bar = room - without_bar - 3;
    if (bar > PROGRESS_LINE_BAR_MAX)
      bar = PROGRESS_LINE_BAR_MAX;
    assemble (buf, len, head, fields, keep, (unsigned) bar, pct);
    return strlen (buf);
  }
  /* No bar; then drop fields from the least important until it fits. */
  for (int f = F_COUNT - 1; f >= 0 && without_bar > room; f--) {
    keep[f] = false;
    without_bar = assemble (scratch, sizeof scratch, head, fields, keep, 0, pct);
  }
  assemble (buf, len, head, fields, keep, 0, pct);
  /* A terminal narrower than "pass N (final)": cut it. */
  size_t n = strlen (buf);
  if (n > room) {
    n = room;
    buf[n] = '\0';
  }
  return n;
}

unsigned
progress_terminal_width (int fd)
{
  struct winsize ws;
  if (ioctl (fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  const char *columns = getenv ("COLUMNS");
  if (columns != NULL) {
    char *end;
    long v = strtol (columns, &end, 10);
    if (*columns != '\0' && *end == '\0' && v > 0 && v < 100000)
      return (unsigned) v;
  }
  return PROGRESS_LINE_DEFAULT_WIDTH;
}
