/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: events and lines (see compare_report.h).
 *
 * As for a migration's output (progress.c): with --json the events are
 * all there is on stdout and the person-facing lines are left out; errors
 * are logged on stderr either way.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compare_report.h"
#include "human_units.h"
#include "json_writer.h"
#include "log.h"

void
compare_report_init (struct compare_report *r, bool json, bool bar)
{
  memset (r, 0, sizeof *r);
  r->json = json;
  r->bar = bar;
}

void
compare_report_clear (struct compare_report *r)
{
  if (!r->bar_shown)
    return;
  fputs (isatty (STDERR_FILENO) ? "\r\033[K" : "\n", stderr);
  fflush (stderr);
  r->bar_shown = false;
}

/* The "disk" field: the name, or 0 for the unnamed disk. */
static void
add_disk (struct json_line *j, const char *disk)
{
  if (disk != NULL)
    json_line_add_string (j, "disk", disk);
  else
    json_line_add_u64 (j, "disk", 0);
}

/* The start event's disks: names need no escaping (wire_disk_name_ok). */
static const char *
disks_json (const struct compare_report_disk *disks, uint32_t ndisks,
            char *buf, size_t len)
{
  size_t used = 0;

  used += snprintf (buf + used, len - used, "[");
  for (uint32_t i = 0; i < ndisks && used < len; i++)
    used += snprintf (buf + used, len - used,
                      "%s{\"name\":\"%s\",\"size\":%" PRIu64 ",\"unit\":%" PRIu32 "}",
                      i > 0 ? "," : "", disks[i].name, disks[i].size, disks[i].unit);
  if (used < len)
    snprintf (buf + used, len - used, "]");
  return buf;
}

void
compare_report_start (struct compare_report *r, const char *dest,
                      const struct compare_report_disk *disks, uint32_t ndisks,
                      bool named, bool writes_tracked)
{
  uint64_t size = 0;
  char sz[32];

  for (uint32_t i = 0; i < ndisks; i++)
    size += disks[i].size;
  if (r->json) {
    struct json_line j;
    char buf[4096];
    json_line_begin (&j, "start", time_unix_now ());
    json_line_add_string (&j, "mode", "compare-only");
    json_line_add_string (&j, "source", disks[0].source);
    json_line_add_string (&j, "dest", dest);
    json_line_add_u64 (&j, "size", size);
    json_line_add_u64 (&j, "unit", disks[0].unit);
    json_line_add_bool (&j, "writes_tracked", writes_tracked);
    if (named)
      json_line_add_raw (&j, "disks", disks_json (disks, ndisks, buf, sizeof buf));
    json_line_emit (&j, stdout);
    return;
  }
  format_bytes (sz, sizeof sz, (double) size);
  const char *how = writes_tracked
    ? "blocks the guest writes meanwhile are left out"
    : "no --control: the source is assumed idle";
  if (named)
    log_info ("comparing a group of %" PRIu32 " disks (%s) with %s: no data is sent, "
              "nothing is frozen or changed; %s", ndisks, sz, dest, how);
  else
    log_info ("comparing %s (%s) with %s: no data is sent, nothing is frozen or "
              "changed; %s", disks[0].source, sz, dest, how);
}

void
compare_report_progress (struct compare_report *r,
                         const struct compare_report_progress *p)
{
  if (r->json) {
    struct json_line j;
    json_line_begin (&j, "progress", time_unix_now ());
    add_disk (&j, p->disk);
    json_line_add_u64 (&j, "bytes_compared", p->bytes_compared);
    json_line_add_u64 (&j, "size", p->size);
    json_line_add_double (&j, "rate", p->rate);
    json_line_emit (&j, stdout);
  }
  if (!r->bar)
    return;
  char done[32], total[32], rate[32];
  format_bytes (done, sizeof done, (double) p->bytes_compared);
  format_bytes (total, sizeof total, (double) p->size);
  format_bytes (rate, sizeof rate, p->rate);
  fprintf (stderr, "\r\033[Kcomparing%s%s: %3.0f%% %s of %s, %s/s",
           p->disk ? " " : "", p->disk ? p->disk : "",
           p->size ? 100. * (double) p->bytes_compared / (double) p->size : 100.,
           done, total, rate);
  fflush (stderr);
  r->bar_shown = true;
}

void
compare_report_difference (struct compare_report *r, const char *disk,
                           uint64_t offset, uint64_t length)
{
  if (r->shown == COMPARE_REPORT_MAX_RANGES) {
    r->omitted++;
    r->omitted_bytes += length;
    return;
  }
  r->shown++;
  compare_report_clear (r);
  if (r->json) {
    struct json_line j;
    json_line_begin (&j, "difference", time_unix_now ());
    add_disk (&j, disk);
    json_line_add_u64 (&j, "offset", offset);
    json_line_add_u64 (&j, "length", length);
    json_line_emit (&j, stdout);
    return;
  }
  if (disk != NULL)
    log_info ("differs: disk %s offset %" PRIu64 " length %" PRIu64, disk, offset, length);
  else
    log_info ("differs: offset %" PRIu64 " length %" PRIu64, offset, length);
}

void
compare_report_differences_end (struct compare_report *r)
{
  if (r->omitted == 0)
    return;
  if (r->json) {
    struct json_line j;
    json_line_begin (&j, "differences_omitted", time_unix_now ());
    json_line_add_u64 (&j, "ranges", r->omitted);
    json_line_add_u64 (&j, "bytes", r->omitted_bytes);
    json_line_emit (&j, stdout);
    return;
  }
  log_info ("... and %" PRIu64 " more differing ranges (%" PRIu64 " bytes), not "
            "listed", r->omitted, r->omitted_bytes);
}

void
compare_report_error (struct compare_report *r, const char *message)
{
  compare_report_clear (r);
  log_error ("%s", message);
  if (!r->json)
    return;
  struct json_line j;
  json_line_begin (&j, "error", time_unix_now ());
  json_line_add_string (&j, "message", message);
  json_line_emit (&j, stdout);
}

/* The human summary's note on the guest's writes. */
static void
writes_note (const struct compare_summary *s, char *buf, size_t len)
{
  char b[32];

  if (!s->writes_tracked) {
    snprintf (buf, len, "; no --control: the source was assumed idle");
    return;
  }
  format_bytes (b, sizeof b, (double) s->bytes_changed_during);
  snprintf (buf, len, "; the blocks the guest wrote during the comparison were "
            "left out (%s of them differed)", b);
}

void
compare_report_done (struct compare_report *r, const struct compare_summary *s)
{
  compare_report_clear (r);
  if (r->json) {
    struct json_line j;
    json_line_begin (&j, "done", time_unix_now ());
    json_line_add_string (&j, "result", compare_result_name (s->result));
    json_line_add_u64 (&j, "bytes_compared", s->bytes_compared);
    json_line_add_u64 (&j, "bytes_differing", s->bytes_differing);
    json_line_add_u64 (&j, "ranges", s->ranges);
    json_line_add_u64 (&j, "bytes_changed_during", s->bytes_changed_during);
    json_line_add_bool (&j, "writes_tracked", s->writes_tracked);
    json_line_add_u64 (&j, "wire_bytes", s->wire_bytes);
    json_line_add_u64 (&j, "wire_bytes_received", s->wire_bytes_received);
    json_line_add_double (&j, "seconds", s->seconds);
    json_line_emit (&j, stdout);
    return;
  }
  char cmp[32], diff[32], note[160], wire[32];
  format_bytes (cmp, sizeof cmp, (double) s->bytes_compared);
  format_bytes (wire, sizeof wire, (double) (s->wire_bytes + s->wire_bytes_received));
  format_bytes (diff, sizeof diff, (double) s->bytes_differing);
  writes_note (s, note, sizeof note);
  switch (s->result) {
  case COMPARE_IDENTICAL:
    log_info ("identical: %s compared in %.1f s (%s on the wire)%s", cmp, s->seconds,
              wire, note);
    return;
  case COMPARE_DIFFERENT:
    log_info ("different: %" PRIu64 " range%s, %s of %s differ (%.1f s, %s on the "
              "wire)%s", s->ranges, s->ranges == 1 ? "" : "s", diff, cmp, s->seconds,
              wire, note);
    return;
  case COMPARE_INEXACT:
    log_error ("undecided: %s compared; every difference lies in blocks the "
               "guest wrote during the comparison, but the guest wrote too many "
               "separate ranges for the filter to list exactly, so some may lie "
               "where it did not write; compare again while the guest is quieter",
               cmp);
    return;
  }
}
