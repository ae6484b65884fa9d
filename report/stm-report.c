/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-report: the command line that draws a migration's page from
 * stm-send's JSON events: stm-report < events.jsonl > report.html.
 *
 * The same timeline and renderer as stm-send --report, so both give the
 * same page.  Lines that are not stm events (an Ansible log's other
 * output, a line cut short) are skipped and counted; lines longer than
 * REPORT_LINE_MAX are read in pieces and skipped, so memory stays bounded
 * whatever the input.  Exit status: 0 with the page written; 1 when the
 * input held no event (the page is still written: it says so) or the
 * page could not be written; 2 on a usage error.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "render.h"
#include "timeline.h"

#define EXIT_USAGE 2

static void
usage (FILE *fp)
{
  fprintf (fp,
"Usage: stm-report < EVENTS.jsonl > REPORT.html\n"
"\n"
"Draw the page of one migration (an SVG timeline of throughput, dirty and\n"
"sent bytes over the passes, the cutover and its downtime, and a summary)\n"
"from the JSON events that stm-send --json printed.  The page is\n"
"self-contained: no script, font or style is fetched from anywhere.\n"
"\n"
"  --help, --version\n"
"\n"
"Exit status: 0 with the page written; 1 when the input held no stm event\n"
"or the page could not be written; 2 on usage errors.\n");
}

static const struct option long_options[] = {
  { "help", no_argument, NULL, 'h' },
  { "version", no_argument, NULL, 'V' },
  { NULL, 0, NULL, 0 },
};

/* Is line[0..len) only white space (an empty line is no error)? */
static bool
blank (const char *line, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\n')
      return false;
  return true;
}

int
main (int argc, char *argv[])
{
  int c;
  while ((c = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
    case 'h': usage (stdout); exit (EXIT_SUCCESS);
    case 'V': printf ("stm-report %s\n", PACKAGE_VERSION); exit (EXIT_SUCCESS);
    default: exit (EXIT_USAGE);   /* getopt_long has said what was wrong */
    }
  }
  if (optind < argc) {
    log_error ("unexpected argument \"%s\": the events are read from standard "
               "input (see stm-report --help)", argv[optind]);
    exit (EXIT_USAGE);
  }

  struct report_timeline *tl = report_timeline_new ();
  /* One more byte than the longest line taken, and one for the NUL, so
   * that a longer line is seen as such. */
  static char buf[REPORT_LINE_MAX + 2];
  if (tl == NULL) {
    log_error ("out of memory");
    return 1;
  }

  uint64_t lineno = 0;
  bool too_long = false;      /* inside a line longer than buf */
  while (fgets (buf, sizeof buf, stdin) != NULL) {
    size_t len = strlen (buf);
    bool complete = len > 0 && buf[len - 1] == '\n';
    if (too_long) {
      /* The rest of a line already counted as too long. */
      too_long = !complete;
      continue;
    }
    lineno++;
    if (!complete && !feof (stdin)) {
      too_long = true;
      tl->bad_lines++;
      if (tl->bad_lines == 1)
        snprintf (tl->first_bad, sizeof tl->first_bad,
                  "line %llu: the line is too long", (unsigned long long) lineno);
      continue;
    }
    if (blank (buf, len))
      continue;
    report_timeline_add_line (tl, buf, len, lineno);
  }
  if (ferror (stdin)) {
    log_error ("reading the events from standard input: %s", strerror (errno));
    report_timeline_free (tl);
    return 1;
  }

  int status = 0;
  if (tl->events == 0) {
    log_error ("no stm-send event in the input (%llu line%s)%s%s: expected the "
               "JSON lines of stm-send --json", (unsigned long long) lineno,
               lineno == 1 ? "" : "s", tl->bad_lines ? "; first: " : "",
               tl->bad_lines ? tl->first_bad : "");
    status = 1;
  }
  else if (tl->bad_lines)
    log_warning ("skipped %llu line%s that %s not stm-send events (first: %s)",
                 (unsigned long long) tl->bad_lines, tl->bad_lines == 1 ? "" : "s",
                 tl->bad_lines == 1 ? "is" : "are", tl->first_bad);

  if (report_render (tl, stdout) == -1 || fflush (stdout) == EOF) {
    log_error ("writing the page to standard output: %s", strerror (errno));
    status = 1;
  }
  report_timeline_free (tl);
  return status;
}
