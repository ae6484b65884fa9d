/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the report's timeline and renderer
 * (report/timeline.c, report/render.c, report/report_sink.c).
 *
 * Known small event lists are rendered into memory and the page is
 * checked for what a reader needs (the SVG, the pass bands, the
 * downtime, the outcome) and for what it must never hold (a URL other
 * than the SVG namespace, a script, unescaped text from the events).
 * The bounds are checked too: a long run's samples are thinned evenly,
 * a storm of events cannot push out the cutover, and marker labels in
 * one row do not overlap.
 */
#include <config.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "render.h"
#include "report_sink.h"
#include "timeline.h"
#include "units.h"

static const char *const migration[] = {
  "{\"event\":\"start\",\"ts\":1000.000,\"source\":\"nbd+unix:///?socket=/s.sock\","
  "\"dest\":\"dst-host:10810\",\"size\":134217728,\"block\":65536,"
  "\"migration_id\":\"abc123\",\"mode\":\"new\"}",
  "{\"event\":\"pass_begin\",\"ts\":1000.010,\"pass\":1,\"bytes\":134217728,\"final\":false}",
  "{\"event\":\"progress\",\"ts\":1001.000,\"pass\":1,\"pass_bytes\":134217728,"
  "\"pass_done\":60000000,\"bytes_sent\":60000000,\"dirty_bytes\":3000000,\"rate\":60000000}",
  "{\"event\":\"throttle\",\"ts\":1001.500,\"bytes_per_second\":4194304,"
  "\"dirty_bytes\":4000000,\"throughput\":60000000}",
  "{\"event\":\"progress\",\"ts\":1002.000,\"pass\":1,\"pass_bytes\":134217728,"
  "\"pass_done\":120000000,\"bytes_sent\":120000000,\"dirty_bytes\":5000000,\"rate\":61000000}",
  "{\"event\":\"pass_end\",\"ts\":1002.200,\"pass\":1,\"bytes\":134217728,\"seconds\":2.19,"
  "\"rate\":61000000,\"dirty_bytes\":5000000}",
  "{\"event\":\"pass_begin\",\"ts\":1002.201,\"pass\":2,\"bytes\":5000000,\"final\":false}",
  "{\"event\":\"pass_end\",\"ts\":1002.300,\"pass\":2,\"bytes\":5000000,\"seconds\":0.1,"
  "\"rate\":50000000,\"dirty_bytes\":300000,\"predicted_ms\":9,\"decision\":\"converged\"}",
  "{\"event\":\"pass_begin\",\"ts\":1002.301,\"pass\":3,\"bytes\":300000,\"final\":true}",
  "{\"event\":\"freeze\",\"ts\":1002.302,\"drain_ms\":0}",
  "{\"event\":\"commit\",\"ts\":1002.310,\"seq\":9}",
  "{\"event\":\"flip\",\"ts\":1002.312,\"mode\":\"fence\"}",
  "{\"event\":\"downtime\",\"ts\":1002.313,\"downtime_ms\":11.5,\"predicted_ms\":9,"
  "\"forced\":false,\"freeze_ms\":0.4,\"preflush_ms\":0}",
  "{\"event\":\"done\",\"ts\":1002.320,\"bytes_sent\":139517728,\"passes\":3,"
  "\"downtime_ms\":11,\"seconds\":2.32,\"destination\":\"final\"}",
};
#define NLINES(a) (sizeof a / sizeof a[0])

static struct report_timeline *
timeline_of (const char *const *lines, size_t n)
{
  struct report_timeline *tl = report_timeline_new ();
  assert_non_null (tl);
  for (size_t i = 0; i < n; i++)
    report_timeline_add_line (tl, lines[i], strlen (lines[i]), i + 1);
  return tl;
}

/* The page of tl, NUL-terminated; the caller frees it. */
static char *
render (const struct report_timeline *tl)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&buf, &len);
  assert_non_null (fp);
  assert_int_equal (report_render (tl, fp), 0);
  assert_int_equal (fclose (fp), 0);
  assert_int_equal (strlen (buf), len);
  return buf;
}

static char *
render_lines (const char *const *lines, size_t n)
{
  struct report_timeline *tl = timeline_of (lines, n);
  char *page = render (tl);
  report_timeline_free (tl);
  return page;
}

static size_t
count (const char *hay, const char *needle)
{
  size_t n = 0;
  for (const char *p = hay; (p = strstr (p, needle)) != NULL; p++)
    n++;
  return n;
}

/* Nothing in the page is fetched from anywhere: the only URL is the SVG
 * namespace name, in an xmlns attribute. */
static void
assert_self_contained (const char *page)
{
  for (const char *p = page; (p = strstr (p, "http")) != NULL; p++) {
    if (strncmp (p, "http://", 7) != 0 && strncmp (p, "https://", 8) != 0)
      continue;
    if (strncmp (p - 7, "xmlns=\"http://www.w3.org/2000/svg\"", 34) != 0)
      fail_msg ("a URL outside an xmlns attribute: %.60s", p);
  }
  assert_null (strstr (page, "<script"));
  assert_null (strstr (page, "<link"));
  assert_null (strstr (page, "<img"));
  assert_null (strstr (page, "url("));
  assert_null (strstr (page, "@import"));
}

static void
test_known_migration (void **state)
{
  struct report_timeline *tl = timeline_of (migration, NLINES (migration));
  assert_int_equal (tl->bad_lines, 0);
  assert_int_equal (tl->events, NLINES (migration));
  assert_int_equal (tl->npasses, 3);
  assert_true (tl->passes[2].final);
  assert_true (tl->passes[2].ended);   /* ended by done */
  assert_string_equal (tl->passes[1].decision, "converged");
  assert_int_equal (tl->ndisks, 1);
  assert_int_equal (tl->disks[0]->nsamples, 2);
  assert_true (fabs (tl->disks[0]->samples[1].t - 2.0) < 1e-9);
  assert_int_equal (tl->nmarkers, 5);   /* throttle, freeze, commit, flip, downtime */
  assert_int_equal (tl->outcome, REPORT_DONE);

  char *page = render (tl);
  assert_true (strncmp (page, "<!DOCTYPE html>\n", 16) == 0);
  assert_int_equal (count (page, "<svg"), 1);
  assert_int_equal (count (page, "</svg>"), 1);
  assert_int_equal (count (page, "</html>"), 1);
  /* The title: source to destination, and the migration id. */
  assert_non_null (strstr (page, "<h1>stm migration: nbd+unix:///?socket=/s.sock "
                           "\xe2\x86\x92 dst-host:10810</h1>"));
  assert_non_null (strstr (page, "migration id abc123"));
  /* Three pass bands, the last one final, with their labels. */
  assert_int_equal (count (page, "<rect class=\"band "), 3);
  assert_int_equal (count (page, "<rect class=\"band final\""), 1);
  assert_non_null (strstr (page, ">pass 1</text>"));
  /* The cutover is one marker, labelled with the downtime. */
  assert_non_null (strstr (page, ">cutover: downtime 11.5 ms</text>"));
  assert_non_null (strstr (page, ">throttle 4.0 MiB/s</text>"));
  /* The three series, and the throttle strip. */
  assert_int_equal (count (page, "<polyline"), 3);
  assert_non_null (strstr (page, "stroke=\"" REPORT_COLOUR_RATE "\""));
  assert_non_null (strstr (page, "height=\"6\" fill=\"" REPORT_COLOUR_THROTTLE "\""));
  /* Axes with their units. */
  assert_non_null (strstr (page, ">throughput (MiB/s)</text>"));
  assert_non_null (strstr (page, ">dirty (MiB)</text>"));
  assert_non_null (strstr (page, ">sent (MiB)</text>"));
  assert_non_null (strstr (page, "time since the first event (s)"));
  /* The outcome and the summary's figures. */
  assert_non_null (strstr (page, "Migrated: the source flipped to the destination, which is final"));
  assert_non_null (strstr (page, ">11.0 ms</div><div class=\"k\">downtime"));
  assert_non_null (strstr (page, ">133.1 MiB</div><div class=\"k\">sent"));
  assert_null (strstr (page, "wire bytes"));   /* no wire_bytes in the events */
  assert_null (strstr (page, "on the wire"));
  assert_null (strstr (page, "<h2>Disk"));     /* one disk: no per-disk heading */
  assert_self_contained (page);
  free (page);
  report_timeline_free (tl);
}

static void
test_failure (void **state)
{
  static const char *const lines[] = {
    "{\"event\":\"start\",\"ts\":5,\"source\":\"s\",\"dest\":\"d\",\"size\":1048576,"
    "\"block\":65536,\"migration_id\":\"m\",\"mode\":\"new\"}",
    "{\"event\":\"pass_begin\",\"ts\":5.1,\"pass\":1,\"bytes\":1048576,\"final\":false}",
    "{\"event\":\"reconnecting\",\"ts\":6,\"dest\":\"d\",\"attempt\":1,\"reason\":\"reset\","
    "\"retry_in_ms\":500,\"deadline\":10,\"source_state\":\"thawed\"}",
    "{\"event\":\"cutover_overrun\",\"ts\":6.5,\"attempt\":1,\"held_ms\":210,\"predicted_ms\":50,"
    "\"max_downtime_ms\":200,\"sent_bytes\":1000,\"pass_bytes\":2000}",
    "{\"event\":\"error\",\"ts\":7,\"message\":\"the receiver refused: nospace\","
    "\"source_state\":\"thawed\"}",
  };
  struct report_timeline *tl = timeline_of (lines, NLINES (lines));
  assert_int_equal (tl->outcome, REPORT_FAILED);
  assert_true (tl->passes[0].ended);
  char *page = render (tl);
  assert_non_null (strstr (page, "Failed: the receiver refused: nospace \xe2\x80\x94 the source is thawed"));
  assert_non_null (strstr (page, ">thawed</div><div class=\"k\">source state"));
  assert_non_null (strstr (page, ">reconnecting #1</text>"));
  assert_non_null (strstr (page, ">cutover called off</text>"));
  assert_non_null (strstr (page, ">error</text>"));
  assert_null (strstr (page, "Migrated"));
  /* No progress events: the chart says so rather than drawing nothing. */
  assert_non_null (strstr (page, "no progress events"));
  assert_self_contained (page);
  free (page);
  report_timeline_free (tl);
}

static void
test_cut_short_and_garbage (void **state)
{
  static const char *const lines[] = {
    "PLAY [migrate] ****",
    "{\"event\":\"start\",\"ts\":5,\"source\":\"s\",\"dest\":\"d\",\"size\":1,\"block\":1,"
    "\"migration_id\":\"m\",\"mode\":\"new\"}",
    "{\"event\":\"progress\",\"ts\":6,\"pass\":1,\"bytes_sent\":1,\"dirty_bytes\":0,\"rate\":1}",
    "{\"event\":\"progress\",\"ts\":7,\"pass\":1,\"bytes_sent\":2,\"dirty_byt",
  };
  struct report_timeline *tl = timeline_of (lines, NLINES (lines));
  assert_int_equal (tl->bad_lines, 2);
  assert_string_equal (tl->first_bad, "line 1: not a JSON object");
  assert_int_equal (tl->outcome, REPORT_RUNNING);
  char *page = render (tl);
  assert_non_null (strstr (page, "No outcome"));
  assert_non_null (strstr (page, "2 input lines that were not stm events were skipped "
                           "(first: line 1: not a JSON object)"));
  free (page);
  report_timeline_free (tl);
}

/* Text from the events is escaped: a hostile source name or message
 * cannot add markup, let alone a script, to the page. */
static void
test_escaping (void **state)
{
  static const char *const lines[] = {
    "{\"event\":\"start\",\"ts\":1,\"source\":\"<script>alert(1)</script>\","
    "\"dest\":\"a&b\\\"c'd\",\"size\":1,\"block\":1,\"migration_id\":\"<i>\",\"mode\":\"new\"}",
    "{\"event\":\"error\",\"ts\":2,\"message\":\"<img src=x onerror=alert(1)> https://evil\","
    "\"source_state\":\"<b>\"}",
  };
  char *page = render_lines (lines, NLINES (lines));
  assert_null (strstr (page, "<script"));
  assert_null (strstr (page, "<img"));
  assert_null (strstr (page, "<i>"));
  assert_null (strstr (page, "<b>"));
  assert_non_null (strstr (page, "&lt;script&gt;alert(1)&lt;/script&gt; \xe2\x86\x92 a&amp;b&quot;c&#39;d"));
  /* The only "https://" is the one inside the error's text, escaped;
   * nothing loads it. */
  /* In the outcome, the details and the events table. */
  assert_int_equal (count (page, "https://evil"), 3);
  free (page);
}

/* Events with a disk field: one chart per disk, each with its own
 * series; events without one on every chart; wire_bytes drawn. */
static void
test_disks_and_wire (void **state)
{
  static const char *const lines[] = {
    "{\"event\":\"start\",\"ts\":0,\"source\":\"s\",\"dest\":\"d\",\"size\":1,\"block\":1,"
    "\"migration_id\":\"m\",\"mode\":\"new\"}",
    "{\"event\":\"progress\",\"ts\":1,\"disk\":\"vda\",\"bytes_sent\":10,\"wire_bytes\":12,"
    "\"dirty_bytes\":1,\"rate\":10}",
    "{\"event\":\"progress\",\"ts\":1,\"disk\":\"vdb\",\"bytes_sent\":20,\"dirty_bytes\":2,\"rate\":20}",
    "{\"event\":\"progress\",\"ts\":2,\"disk\":\"vda\",\"bytes_sent\":30,\"wire_bytes\":33,"
    "\"dirty_bytes\":1,\"rate\":20}",
    "{\"event\":\"throttle\",\"ts\":2,\"disk\":\"vdb\",\"bytes_per_second\":100,"
    "\"dirty_bytes\":1,\"throughput\":1}",
    "{\"event\":\"freeze\",\"ts\":3,\"drain_ms\":0}",
    "{\"event\":\"downtime\",\"ts\":3.01,\"downtime_ms\":10,\"predicted_ms\":9,\"forced\":false}",
    "{\"event\":\"done\",\"ts\":3.02,\"bytes_sent\":50,\"passes\":1,\"downtime_ms\":10,"
    "\"seconds\":3,\"destination\":\"final\",\"wire_bytes\":60,\"bytes_zeroed\":4096,"
    "\"disks\":[{\"disk\":\"vda\"}]}",
  };
  struct report_timeline *tl = timeline_of (lines, NLINES (lines));
  assert_int_equal (tl->ndisks, 2);
  assert_true (tl->disks[0]->any_wire);
  assert_false (tl->disks[1]->any_wire);
  char *page = render (tl);
  assert_int_equal (count (page, "<svg"), 2);
  assert_non_null (strstr (page, "<h2>Disk vda</h2>"));
  assert_non_null (strstr (page, "<h2>Disk vdb</h2>"));
  assert_non_null (strstr (page, "wire bytes"));
  assert_int_equal (count (page, "stroke=\"" REPORT_COLOUR_WIRE "\""), 1);
  /* The cutover names no disk: on both charts.  The throttle only on vdb's. */
  assert_int_equal (count (page, ">cutover: downtime 10.0 ms</text>"), 2);
  assert_int_equal (count (page, ">throttle 100 B/s</text>"), 1);
  /* The summary's wire bytes are a key figure, and in the details. */
  assert_non_null (strstr (page, ">60 B</div><div class=\"k\">on the wire"));
  assert_non_null (strstr (page, ">4.0 KiB</div><div class=\"k\">zeroed"));
  assert_non_null (strstr (page, "<th>wire_bytes</th><td>60 B (60 bytes)</td>"));
  assert_self_contained (page);
  free (page);
  report_timeline_free (tl);
}

/* A long run: samples thinned evenly, within the bound. */
static void
test_thinning (void **state)
{
  struct report_timeline *tl = report_timeline_new ();
  char line[256];
  const int n = 5 * REPORT_MAX_SAMPLES + 123;
  for (int i = 0; i < n; i++) {
    int len = snprintf (line, sizeof line, "{\"event\":\"progress\",\"ts\":%d,\"pass\":1,"
                        "\"bytes_sent\":%d,\"dirty_bytes\":5,\"rate\":7}", 1000 + i, i);
    assert_int_equal (report_timeline_add_line (tl, line, (size_t) len, (uint64_t) i + 1), 0);
  }
  const struct report_disk *d = tl->disks[0];
  assert_true (d->nsamples <= REPORT_MAX_SAMPLES);
  assert_true (d->nsamples >= REPORT_MAX_SAMPLES / 2);
  assert_int_equal (tl->thinned_samples + d->nsamples, n);
  assert_true (d->samples[0].t == 0);
  /* Evenly spread: every gap is the stride at most, and the kept samples
   * reach to near the end. */
  double max_gap = 0;
  for (size_t i = 1; i < d->nsamples; i++) {
    double gap = d->samples[i].t - d->samples[i - 1].t;
    assert_true (gap > 0);
    if (gap > max_gap)
      max_gap = gap;
  }
  assert_true (max_gap <= (double) d->stride);
  assert_true (d->samples[d->nsamples - 1].t >= n - 1 - (double) d->stride);
  char *page = render (tl);
  assert_non_null (strstr (page, "progress samples were left out, evenly"));
  free (page);
  report_timeline_free (tl);
}

/* Thousands of reconnections do not push the cutover out of the page. */
static void
test_marker_bound_keeps_cutover (void **state)
{
  struct report_timeline *tl = report_timeline_new ();
  char line[256];
  for (int i = 0; i < 3 * REPORT_MAX_MARKERS; i++) {
    int len = snprintf (line, sizeof line, "{\"event\":\"reconnecting\",\"ts\":%d,"
                        "\"attempt\":%d,\"reason\":\"refused\"}", i, i + 1);
    report_timeline_add_line (tl, line, (size_t) len, 1);
  }
  static const char *const cutover[] = {
    "{\"event\":\"freeze\",\"ts\":5000,\"drain_ms\":0}",
    "{\"event\":\"commit\",\"ts\":5000.01,\"seq\":1}",
    "{\"event\":\"flip\",\"ts\":5000.02,\"mode\":\"fence\"}",
    "{\"event\":\"downtime\",\"ts\":5000.03,\"downtime_ms\":30,\"predicted_ms\":20,\"forced\":false}",
  };
  for (size_t i = 0; i < NLINES (cutover); i++)
    report_timeline_add_line (tl, cutover[i], strlen (cutover[i]), 1);
  assert_true (tl->nmarkers <= REPORT_MAX_MARKERS);
  assert_true (tl->dropped_markers > 0);
  assert_int_equal (tl->markers[tl->nmarkers - 1].kind, REPORT_MARK_DOWNTIME);
  char *page = render (tl);
  assert_non_null (strstr (page, "cutover: downtime 30.0 ms"));
  assert_non_null (strstr (page, "Not shown:"));
  /* No start event: the title says so rather than inventing names. */
  assert_non_null (strstr (page, "<h1>stm migration: source and destination unknown "
                           "(no start event)</h1>"));
  free (page);
  report_timeline_free (tl);
}

/* Marker labels in one row never overlap: every label is read back from
 * the page and its extent estimated as the renderer does. */
static void
test_labels_do_not_overlap (void **state)
{
  struct report_timeline *tl = report_timeline_new ();
  char line[256];
  /* Markers every 0.3 s over 20 s: far too many for the rows, so some
   * are shortened or left to the table; none may overlap. */
  for (int i = 0; i < 60; i++) {
    int len = snprintf (line, sizeof line, "{\"event\":\"%s\",\"ts\":%.1f,"
                        "\"bytes_per_second\":%d,\"attempt\":%d,\"mode\":\"resume\"}",
                        i % 3 == 0 ? "throttle" : i % 3 == 1 ? "reconnecting" : "resumed",
                        100 + i * 0.3, 1000 * (i + 1), i);
    report_timeline_add_line (tl, line, (size_t) len, 1);
  }
  char *page = render (tl);
  struct { double y, left, right; } labels[200];
  size_t n = 0;
  for (const char *p = page; (p = strstr (p, "<text class=\"mark\" x=\"")) != NULL; p++) {
    double x, y;
    char colour[16], anchor[8];
    assert_int_equal (sscanf (p, "<text class=\"mark\" x=\"%lf\" y=\"%lf\" fill=\"%15[^\"]\" "
                              "text-anchor=\"%7[^\"]\">", &x, &y, colour, anchor), 4);
    const char *text = strchr (p, '>') + 1;
    size_t chars = 0;
    for (const char *t = text; *t != '<'; t++)
      if (((unsigned char) *t & 0xc0) != 0x80)
        chars++;
    double w = chars * 7.2;
    assert_true (n < 200);
    labels[n].y = y;
    labels[n].left = strcmp (anchor, "end") == 0 ? x - w : x;
    labels[n].right = strcmp (anchor, "end") == 0 ? x : x + w;
    n++;
  }
  assert_true (n >= 8);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (labels[i].y == labels[j].y
          && labels[i].left < labels[j].right && labels[j].left < labels[i].right)
        fail_msg ("labels %zu and %zu overlap in the row at y=%.0f", i, j, labels[i].y);
  free (page);
  report_timeline_free (tl);
}

/* stm-send's sink: the page written to its file, and a file that cannot
 * be written reported as a failure. */
static void
test_sink (void **state)
{
  char dir[] = "/tmp/stm-report-test.XXXXXX";
  assert_non_null (mkdtemp (dir));
  char path[256];
  snprintf (path, sizeof path, "%s/r.html", dir);

  struct report_sink *s = report_sink_new (path);
  assert_non_null (s);
  for (size_t i = 0; i < NLINES (migration); i++)
    report_sink_line (s, migration[i], strlen (migration[i]));
  assert_int_equal (report_sink_finish (s), 0);
  FILE *fp = fopen (path, "r");
  assert_non_null (fp);
  char head[64] = "";
  assert_non_null (fgets (head, sizeof head, fp));
  fclose (fp);
  assert_string_equal (head, "<!DOCTYPE html>\n");
  unlink (path);

  snprintf (path, sizeof path, "%s/no-such-dir/r.html", dir);
  s = report_sink_new (path);
  assert_non_null (s);
  assert_int_equal (report_sink_finish (s), -1);
  assert_int_equal (report_sink_finish (NULL), 0);
  rmdir (dir);

  /* A stream that fails to write: the renderer says so (with the flush
   * that a file gets before it is closed). */
  fp = fopen ("/dev/full", "w");
  if (fp != NULL) {
    struct report_timeline *tl = timeline_of (migration, NLINES (migration));
    int r = report_render (tl, fp);
    int f = fflush (fp);
    assert_true (r == -1 || f == EOF);
    fclose (fp);
    report_timeline_free (tl);
  }
}

/* The numbers as the page writes them, and the axes' steps. */
static void
test_units (void **state)
{
  char b[32];
  format_bytes (b, sizeof b, 0);
  assert_string_equal (b, "0 B");
  format_bytes (b, sizeof b, 1023);
  assert_string_equal (b, "1023 B");
  format_bytes (b, sizeof b, 1536);
  assert_string_equal (b, "1.5 KiB");
  format_bytes (b, sizeof b, 10737418240.0);
  assert_string_equal (b, "10.0 GiB");
  report_format_duration (b, sizeof b, 0.85);
  assert_string_equal (b, "850 ms");
  report_format_duration (b, sizeof b, 12.34);
  assert_string_equal (b, "12.3 s");
  report_format_duration (b, sizeof b, 119.7);
  assert_string_equal (b, "2 min 0 s");
  report_format_duration (b, sizeof b, 7325);
  assert_string_equal (b, "2 h 2 min");
  assert_string_equal (report_unit_for (1023).name, "B");
  assert_string_equal (report_unit_for (1024).name, "KiB");
  assert_true (report_unit_for (3 * 1048576.0).scale == 1048576.0);
  assert_true (report_nice_step (95, 4) == 50);
  assert_true (fabs (report_nice_step (3.3, 10) - 0.5) < 1e-12);
  assert_true (report_nice_step (0, 4) == 1);
  assert_true (report_nice_step (NAN, 4) == 1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_known_migration),
    cmocka_unit_test (test_failure),
    cmocka_unit_test (test_cut_short_and_garbage),
    cmocka_unit_test (test_escaping),
    cmocka_unit_test (test_disks_and_wire),
    cmocka_unit_test (test_thinning),
    cmocka_unit_test (test_marker_bound_keeps_cutover),
    cmocka_unit_test (test_labels_do_not_overlap),
    cmocka_unit_test (test_sink),
    cmocka_unit_test (test_units),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
