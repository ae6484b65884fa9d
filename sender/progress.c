/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: --json events and the progress bar (see progress.h). */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "json_writer.h"
#include "log.h"
#include "progress.h"
#include "progress_line.h"
#include "time_units.h"


void
progress_init (struct progress *p, bool json, bool bar)
{
  memset (p, 0, sizeof *p);
  p->json = json;
  p->bar = bar;
}

void
progress_clear (struct progress *p)
{
  if (p->bar_shown) {
    /* On a terminal the line is erased; anywhere else (--progress into a
     * log file) it is ended, so the next message starts on a line of its
     * own either way. */
    fputs (isatty (STDERR_FILENO) ? "\r\033[K" : "\n", stderr);
    fflush (stderr);
    p->bar_shown = false;
  }
}

void
progress_set_tee (struct progress *p, progress_tee_fn *tee, void *opaque)
{
  p->tee = tee;
  p->tee_opaque = opaque;
}

/* Are JSON events made at all: printed (--json) or teed (--report)?
 * What is shown to a person (log lines, the bar) depends on p->json
 * alone, so --report changes nothing on the terminal. */
static bool
events_on (const struct progress *p)
{
  return p->json || p->tee != NULL;
}

static void
emit (struct progress *p, struct json_line *j)
{
  const char *line = json_line_end (j);
  if (p->tee != NULL)
    p->tee (p->tee_opaque, line, strlen (line));
  if (p->json)
    json_line_emit (j, stdout);
}

void
progress_start (struct progress *p, const char *source, const char *dest,
                uint64_t size, uint32_t block, const char *migration_id,
                const char *mode, const char *disks_json)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "start", time_unix_now ());
  json_line_add_string (&j, "source", source);
  json_line_add_string (&j, "dest", dest);
  json_line_add_u64 (&j, "size", size);
  json_line_add_u64 (&j, "block", block);
  json_line_add_string (&j, "migration_id", migration_id);
  json_line_add_string (&j, "mode", mode);
  if (disks_json != NULL)
    json_line_add_raw (&j, "disks", disks_json);
  emit (p, &j);
}

void
progress_pass_begin (struct progress *p, uint32_t pass, uint64_t bytes, bool final)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "pass_begin", time_unix_now ());
  json_line_add_u64 (&j, "pass", pass);
  json_line_add_u64 (&j, "bytes", bytes);
  json_line_add_bool (&j, "final", final);
  emit (p, &j);
}

static void
draw_bar (struct progress *p, const struct progress_sample *s)
{
  char line[256];
  progress_format_line (line, sizeof line, s, progress_terminal_width (STDERR_FILENO));
  fprintf (stderr, "\r\033[K%s", line);
  fflush (stderr);
  p->bar_shown = true;
}

void
progress_update (struct progress *p, const struct progress_sample *s,
                 uint64_t now_ns, bool force)
{
  if (p->bar)
    draw_bar (p, s);
  if (!events_on (p))
    return;
  if (!force && now_ns - p->last_json_ns < NS_PER_S)
    return;
  p->last_json_ns = now_ns;
  struct json_line j;
  json_line_begin (&j, "progress", time_unix_now ());
  json_line_add_u64 (&j, "pass", s->pass);
  json_line_add_u64 (&j, "pass_bytes", s->pass_bytes);
  json_line_add_u64 (&j, "pass_done", s->pass_done);
  byte_counts_json (&j, &s->counts, true);
  json_line_add_u64 (&j, "dirty_bytes", s->dirty_bytes);
  json_line_add_double (&j, "rate", s->rate);
  if (s->disks_json != NULL)
    json_line_add_raw (&j, "disks", s->disks_json);
  emit (p, &j);
}

void
progress_pass_end (struct progress *p, const struct progress_sample *s,
                   double seconds, uint64_t predicted_ms, const char *decision)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "pass_end", time_unix_now ());
  json_line_add_u64 (&j, "pass", s->pass);
  json_line_add_u64 (&j, "bytes", s->pass_bytes);
  byte_counts_json (&j, &s->counts, true);
  json_line_add_double (&j, "seconds", seconds);
  json_line_add_double (&j, "rate", s->rate);
  json_line_add_u64 (&j, "dirty_bytes", s->dirty_bytes);
  if (decision) {
    json_line_add_u64 (&j, "predicted_ms", predicted_ms);
    json_line_add_string (&j, "decision", decision);
  }
  if (s->disks_json != NULL)
    json_line_add_raw (&j, "disks", s->disks_json);
  emit (p, &j);
}

void
progress_freeze (struct progress *p, uint64_t drain_ms)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "freeze", time_unix_now ());
  json_line_add_u64 (&j, "drain_ms", drain_ms);
  emit (p, &j);
}

void
progress_commit (struct progress *p, uint64_t seq)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "commit", time_unix_now ());
  json_line_add_u64 (&j, "seq", seq);
  emit (p, &j);
}

void
progress_difference (struct progress *p, const char *disk, uint64_t offset,
                     uint64_t length)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "difference", time_unix_now ());
  if (disk != NULL)
    json_line_add_string (&j, "disk", disk);
  json_line_add_u64 (&j, "offset", offset);
  json_line_add_u64 (&j, "length", length);
  emit (p, &j);
}

void
progress_verified (struct progress *p, uint64_t bytes_compared,
                   uint64_t bytes_differing, uint64_t ranges, double seconds)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "verify", time_unix_now ());
  json_line_add_string (&j, "result", ranges == 0 ? "identical" : "different");
  json_line_add_u64 (&j, "bytes_compared", bytes_compared);
  json_line_add_u64 (&j, "bytes_differing", bytes_differing);
  json_line_add_u64 (&j, "ranges", ranges);
  json_line_add_double (&j, "seconds", seconds);
  emit (p, &j);
}

void
progress_flip (struct progress *p, const char *mode, bool preconnected,
               const char *disks_json)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "flip", time_unix_now ());
  if (disks_json != NULL)
    json_line_add_raw (&j, "disks", disks_json);
  json_line_add_string (&j, "mode", mode);
  json_line_add_bool (&j, "preconnected", preconnected);
  emit (p, &j);
}

void
progress_done (struct progress *p, const struct byte_counts *counts, uint32_t passes,
               uint64_t downtime_ms, double seconds, const char *destination,
               const char *disks_json, const struct progress_mirror *mirror)
{
  progress_clear (p);
  if (events_on (p)) {
    struct json_line j;
    json_line_begin (&j, "done", time_unix_now ());
    byte_counts_json (&j, counts, true);
    json_line_add_u64 (&j, "passes", passes);
    json_line_add_u64 (&j, "downtime_ms", downtime_ms);
    json_line_add_double (&j, "seconds", seconds);
    json_line_add_string (&j, "destination", destination);
    if (mirror != NULL) {
      json_line_add_string (&j, "mirror", mirror->mode);
      json_line_add_u64 (&j, "mirror_records", mirror->records);
      json_line_add_u64 (&j, "mirror_bytes", mirror->data_bytes);
      json_line_add_u64 (&j, "mirror_zero_bytes", mirror->zero_bytes);
    }
    if (disks_json != NULL)
      json_line_add_raw (&j, "disks", disks_json);
    emit (p, &j);
    if (p->json)
      return;
  }
  if (passes == 0) {
    /* A run that found the source already flipped copied nothing. */
    log_info ("nothing was copied: the source had already flipped; the "
              "destination is %s", destination);
    return;
  }
  /* The rate is the link's: what it carried over the whole run. */
  char moved[160], rate[32];
  byte_counts_format (moved, sizeof moved, counts);
  format_bytes (rate, sizeof rate, seconds > 0 ? counts->wire / seconds : 0);
  log_info ("migrated in %u passes in %.2f s: %s (%s/s on the wire), downtime %"
            PRIu64 " ms; the destination is %s", passes, seconds, moved, rate,
            downtime_ms, destination);
}

void
progress_error (struct progress *p, const char *message, const char *source_state)
{
  progress_clear (p);
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "error", time_unix_now ());
  json_line_add_string (&j, "message", message);
  json_line_add_string (&j, "source_state", source_state);
  emit (p, &j);
}

void
progress_reconnecting (struct progress *p, const char *dest, unsigned attempt,
                       const char *reason, uint64_t retry_in_ms, double deadline,
                       const char *source_state)
{
  progress_clear (p);
  if (events_on (p)) {
    struct json_line j;
    json_line_begin (&j, "reconnecting", time_unix_now ());
    json_line_add_string (&j, "dest", dest);
    json_line_add_u64 (&j, "attempt", attempt);
    json_line_add_string (&j, "reason", reason);
    json_line_add_u64 (&j, "retry_in_ms", retry_in_ms);
    json_line_add_double (&j, "deadline", deadline);
    json_line_add_string (&j, "source_state", source_state);
    emit (p, &j);
  }
  double left = deadline - time_unix_now ();
  if (attempt <= 1)
    log_warning ("lost the receiver at %s: %s; reconnecting in %.1f s, giving up "
                 "in %.0f s; the source is %s and keeps serving",
                 dest, reason, retry_in_ms / 1000.0, left > 0 ? left : 0,
                 source_state);
  else
    log_warning ("reconnecting to %s (attempt %u) in %.1f s, giving up in %.0f s: %s",
                 dest, attempt, retry_in_ms / 1000.0, left > 0 ? left : 0, reason);
}

void
progress_resumed (struct progress *p, const char *dest, const char *mode,
                  uint64_t durable_seq, uint64_t confirmed_bytes)
{
  progress_clear (p);
  if (events_on (p)) {
    struct json_line j;
    json_line_begin (&j, "resumed", time_unix_now ());
    json_line_add_string (&j, "dest", dest);
    json_line_add_string (&j, "mode", mode);
    json_line_add_u64 (&j, "durable_seq", durable_seq);
    json_line_add_u64 (&j, "confirmed_bytes", confirmed_bytes);
    emit (p, &j);
  }
  if (strcmp (mode, "resume") == 0)
    log_info ("reconnected to the receiver at %s: resuming from durable sync %"
              PRIu64, dest, durable_seq);
  else
    log_info ("reconnected to the receiver at %s, which holds nothing of this "
              "migration: copying everything again", dest);
}

void
progress_throttle (struct progress *p, uint64_t bytes_per_second,
                   uint64_t dirty_bytes, uint64_t throughput)
{
  progress_clear (p);
  if (events_on (p)) {
    struct json_line j;
    json_line_begin (&j, "throttle", time_unix_now ());
    json_line_add_u64 (&j, "bytes_per_second", bytes_per_second);
    json_line_add_u64 (&j, "dirty_bytes", dirty_bytes);
    json_line_add_u64 (&j, "throughput", throughput);
    emit (p, &j);
    if (p->json)
      return;
  }
  char rate[32], dirty[32], copy[32];
  format_bytes (rate, sizeof rate, (double) bytes_per_second);
  format_bytes (dirty, sizeof dirty, (double) dirty_bytes);
  format_bytes (copy, sizeof copy, (double) throughput);
  if (bytes_per_second == 0)
    log_info ("guest write throttle released");
  else
    log_info ("the dirty set (%s) is not shrinking at %s/s: throttling guest "
              "writes to %s/s", dirty, copy, rate);
}

void
progress_downtime (struct progress *p, uint64_t downtime_us,
                   uint64_t predicted_us, bool forced,
                   uint64_t freeze_us, uint64_t preflush_ms)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "downtime", time_unix_now ());
  json_line_add_double (&j, "downtime_ms", downtime_us / 1000.0);
  json_line_add_double (&j, "predicted_ms", predicted_us / 1000.0);
  json_line_add_bool (&j, "forced", forced);
  json_line_add_double (&j, "freeze_ms", freeze_us / 1000.0);
  json_line_add_u64 (&j, "preflush_ms", preflush_ms);
  emit (p, &j);
}

void
progress_cutover_overrun (struct progress *p, const struct progress_overrun *ov)
{
  if (events_on (p)) {
    struct json_line j;
    json_line_begin (&j, "cutover_overrun", time_unix_now ());
    json_line_add_u64 (&j, "attempt", ov->attempt);
    json_line_add_double (&j, "held_ms", ov->held_us / 1000.0);
    json_line_add_double (&j, "final_pass_budget_ms", ov->final_pass_budget_us / 1000.0);
    json_line_add_double (&j, "reserved_ms", ov->reserved_us / 1000.0);
    json_line_add_double (&j, "predicted_ms", ov->predicted_us / 1000.0);
    json_line_add_double (&j, "max_downtime_ms", ov->max_downtime_us / 1000.0);
    json_line_add_u64 (&j, "sent_bytes", ov->sent_bytes);
    json_line_add_u64 (&j, "pass_bytes", ov->pass_bytes);
    emit (p, &j);
    if (p->json)
      return;
  }
  char sent[32], total[32];
  format_bytes (sent, sizeof sent, (double) ov->sent_bytes);
  format_bytes (total, sizeof total, (double) ov->pass_bytes);
  progress_clear (p);
  log_warning ("the final pass was not sent and durable within %.1f ms of the "
               "freeze (--max-downtime %.1f ms less %.1f ms kept for COMMIT, "
               "CONFIRM, FLIP and THAW; predicted %.1f ms; %s of %s sent): the "
               "cutover is called off after holding guest writes %.1f ms, the "
               "source is thawed and authoritative, and another pass follows",
               ov->final_pass_budget_us / 1000.0, ov->max_downtime_us / 1000.0,
               ov->reserved_us / 1000.0, ov->predicted_us / 1000.0, sent, total,
               ov->held_us / 1000.0);
}

void
progress_hot_blocks (struct progress *p, uint32_t pass, uint64_t skipped,
                     uint64_t deferred)
{
  if (!events_on (p))
    return;
  struct json_line j;
  json_line_begin (&j, "hot_blocks", time_unix_now ());
  json_line_add_u64 (&j, "pass", pass);
  json_line_add_u64 (&j, "skipped_bytes", skipped);
  json_line_add_u64 (&j, "deferred_bytes", deferred);
  emit (p, &j);
}

void
progress_ready (struct progress *p, const struct progress_ready *r, bool announce)
{
  double predicted_ms = r->predicted_us == UINT64_MAX ? -1 : r->predicted_us / 1000.;

  if (events_on (p)) {
    struct json_line j;
    json_line_begin (&j, "ready", time_unix_now ());
    json_line_add_bool (&j, "ready", r->ready);
    json_line_add_string (&j, "phase", r->phase);
    json_line_add_u64 (&j, "pass", r->pass);
    json_line_add_u64 (&j, "dirty_bytes", r->dirty_bytes);
    if (predicted_ms >= 0)
      json_line_add_double (&j, "predicted_downtime_ms", predicted_ms);
    json_line_add_double (&j, "max_downtime_ms", r->max_downtime_us / 1000.);
    json_line_add_bool (&j, "forced", r->forced);
    json_line_add_bool (&j, "cutover_requested", r->requested);
    json_line_add_double (&j, "ready_s", r->ready_s);
    emit (p, &j);
    if (p->json)
      return;
  }
  if (!announce)
    return;
  progress_clear (p);
  char dirty[32];
  format_bytes (dirty, sizeof dirty, (double) r->dirty_bytes);
  if (r->ready)
    log_info ("ready to cut over after pass %" PRIu32 ": %s dirty, predicted "
              "downtime %.1f ms (--max-downtime %.1f ms%s); the guest runs on "
              "and the copy is kept current until CUTOVER or ABORT on %s",
              r->pass, dirty, predicted_ms, r->max_downtime_us / 1000.,
              r->forced ? ", which a cutover now would not keep to" : "",
              r->command_socket);
  else
    log_info ("not ready to cut over any more after pass %" PRIu32 ": %s dirty, "
              "predicted downtime %.1f ms over --max-downtime %.1f ms; copying on",
              r->pass, dirty, predicted_ms, r->max_downtime_us / 1000.);
}
