/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: keeping and writing a running stm-send's report (see
 * report_sink.h).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "render.h"
#include "report_sink.h"
#include "timeline.h"

struct report_sink {
  char *path;
  struct report_timeline *tl;
  uint64_t lines;
};

struct report_sink *
report_sink_new (const char *path)
{
  struct report_sink *s = calloc (1, sizeof *s);
  if (s != NULL) {
    s->path = strdup (path);
    s->tl = report_timeline_new ();
  }
  if (s == NULL || s->path == NULL || s->tl == NULL) {
    log_error ("out of memory for the report %s: it will not be written", path);
    if (s != NULL) {
      free (s->path);
      report_timeline_free (s->tl);
      free (s);
    }
    return NULL;
  }
  return s;
}

void
report_sink_line (void *opaque, const char *line, size_t len)
{
  struct report_sink *s = opaque;
  report_timeline_add_line (s->tl, line, len, ++s->lines);
}

static int
write_page (struct report_sink *s)
{
  size_t n = strlen (s->path) + 32;
  char *tmp = malloc (n);
  FILE *fp;
  int err;

  if (tmp == NULL) {
    log_error ("cannot write the report %s: out of memory", s->path);
    return -1;
  }
  snprintf (tmp, n, "%s.tmp%ld", s->path, (long) getpid ());
  fp = fopen (tmp, "w");
  if (fp == NULL) {
    log_error ("cannot write the report %s: creating %s: %s", s->path, tmp,
               strerror (errno));
    free (tmp);
    return -1;
  }
  if (report_render (s->tl, fp) == -1 || fflush (fp) == EOF) {
    err = errno;
    fclose (fp);
    goto fail;
  }
  if (fclose (fp) == EOF) {
    err = errno;
    goto fail;
  }
  if (rename (tmp, s->path) == -1) {
    err = errno;
    goto fail;
  }
  free (tmp);
  return 0;

 fail:
  log_error ("cannot write the report %s: %s", s->path, strerror (err));
  unlink (tmp);
  free (tmp);
  return -1;
}

int
report_sink_finish (struct report_sink *s)
{
  if (s == NULL)
    return 0;
  int r = write_page (s);
  free (s->path);
  report_timeline_free (s->tl);
  free (s);
  return r;
}
