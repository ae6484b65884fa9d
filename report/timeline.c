/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: building the timeline from events (see timeline.h).
 *
 * Each event kind that the page shows has a small handler here; what the
 * renderer needs (seconds since the first event, short labels, the disk a
 * series belongs to) is worked out once, as the events arrive, so the
 * renderer only draws.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeline.h"
#include "units.h"

/* Slots at the end of the marker array kept for what the page is about
 * (the cutover and errors), so a storm of reconnections cannot push the
 * cutover out. */
#define RESERVED_MARKERS 16

struct report_timeline *
report_timeline_new (void)
{
  return calloc (1, sizeof (struct report_timeline));
}

void
report_timeline_free (struct report_timeline *tl)
{
  if (tl == NULL)
    return;
  for (size_t i = 0; i < tl->ndisks; i++)
    free (tl->disks[i]);
  free (tl);
}

static void
copy_string (char *dst, size_t len, const char *src)
{
  snprintf (dst, len, "%s", src ? src : "");
}

/* The index of the event's disk (its "disk" field, a string or a number;
 * "" without one), creating it on first sight.  -1 when there are too
 * many disks already. */
static int
disk_index (struct report_timeline *tl, const struct report_event *ev)
{
  const struct report_field *f = report_event_field (ev, "disk");
  char name[REPORT_STRING_MAX] = "";

  if (f != NULL && f->type == REPORT_STRING)
    copy_string (name, sizeof name, f->string);
  else if (f != NULL && f->type == REPORT_NUMBER)
    snprintf (name, sizeof name, "%.15g", f->number);
  for (size_t i = 0; i < tl->ndisks; i++)
    if (strcmp (tl->disks[i]->name, name) == 0)
      return (int) i;
  if (tl->ndisks == REPORT_MAX_DISKS)
    return -1;
  struct report_disk *d = calloc (1, sizeof *d);
  if (d == NULL)
    return -1;
  copy_string (d->name, sizeof d->name, name);
  d->stride = 1;
  tl->disks[tl->ndisks] = d;
  return (int) tl->ndisks++;
}

static void
add_sample (struct report_timeline *tl, const struct report_event *ev, double t)
{
  int i = disk_index (tl, ev);
  if (i < 0) {
    tl->dropped_disk_events++;
    return;
  }
  struct report_disk *d = tl->disks[i];
  struct report_sample s = { .t = t };

  report_event_number (ev, "rate", &s.rate);
  report_event_number (ev, "bytes_sent", &s.sent);
  s.has_dirty = report_event_number (ev, "dirty_bytes", &s.dirty);
  s.has_wire = report_event_number (ev, "wire_bytes", &s.wire);

  /* Keep one sample in stride (see timeline.h). */
  if (d->seen++ % d->stride != 0) {
    tl->thinned_samples++;
    return;
  }
  if (d->nsamples == REPORT_MAX_SAMPLES) {
    for (size_t k = 0; k < REPORT_MAX_SAMPLES / 2; k++)
      d->samples[k] = d->samples[2 * k];
    d->nsamples = REPORT_MAX_SAMPLES / 2;
    tl->thinned_samples += REPORT_MAX_SAMPLES / 2;
    d->stride *= 2;
    d->seen = 1;
  }
  d->samples[d->nsamples++] = s;
  if (s.has_wire)
    d->any_wire = true;
}

static bool
marker_kind_reserved (enum report_marker_kind kind)
{
  return kind == REPORT_MARK_FREEZE || kind == REPORT_MARK_COMMIT
    || kind == REPORT_MARK_FLIP || kind == REPORT_MARK_DOWNTIME
    || kind == REPORT_MARK_ERROR;
}

/* A new marker at t for ev's disk (or every disk), or NULL if there is no
 * room left for its kind. */
static struct report_marker *
add_marker (struct report_timeline *tl, const struct report_event *ev, double t,
            enum report_marker_kind kind)
{
  size_t limit = marker_kind_reserved (kind) ? REPORT_MAX_MARKERS
    : REPORT_MAX_MARKERS - RESERVED_MARKERS;
  if (tl->nmarkers >= limit) {
    tl->dropped_markers++;
    return NULL;
  }
  struct report_marker *m = &tl->markers[tl->nmarkers++];
  memset (m, 0, sizeof *m);
  m->t = t;
  m->kind = kind;
  m->disk = -1;
  if (report_event_field (ev, "disk") != NULL) {
    m->disk = disk_index (tl, ev);
    if (m->disk < 0) {
      tl->nmarkers--;
      tl->dropped_disk_events++;
      return NULL;
    }
  }
  return m;
}

static double
num (const struct report_event *ev, const char *key)
{
  double v = 0;
  report_event_number (ev, key, &v);
  return v;
}

static void
on_start (struct report_timeline *tl, const struct report_event *ev)
{
  tl->have_start = true;
  copy_string (tl->source, sizeof tl->source, report_event_string (ev, "source"));
  copy_string (tl->dest, sizeof tl->dest, report_event_string (ev, "dest"));
  copy_string (tl->migration_id, sizeof tl->migration_id,
               report_event_string (ev, "migration_id"));
  copy_string (tl->mode, sizeof tl->mode, report_event_string (ev, "mode"));
  tl->size = num (ev, "size");
  tl->block = num (ev, "block");
}

/* The last pass not yet ended, which a new pass or the end of the run
 * ends. */
static struct report_pass *
open_pass (struct report_timeline *tl)
{
  if (tl->npasses > 0 && !tl->passes[tl->npasses - 1].ended)
    return &tl->passes[tl->npasses - 1];
  return NULL;
}

static void
on_pass_begin (struct report_timeline *tl, const struct report_event *ev, double t)
{
  struct report_pass *prev = open_pass (tl);
  if (prev != NULL) {
    /* A pass that never reported its end (a called-off cutover finishes
     * its pass as an ordinary one) ends where the next one begins. */
    prev->ended = true;
    prev->t_end = t;
  }
  if (tl->npasses == REPORT_MAX_PASSES) {
    tl->dropped_passes++;
    return;
  }
  struct report_pass *p = &tl->passes[tl->npasses++];
  memset (p, 0, sizeof *p);
  p->number = (uint32_t) num (ev, "pass");
  p->final = report_event_bool (ev, "final", false);
  p->bytes = num (ev, "bytes");
  p->t_begin = p->t_end = t;
}

static void
on_pass_end (struct report_timeline *tl, const struct report_event *ev, double t)
{
  struct report_pass *p = open_pass (tl);
  if (p == NULL || p->number != (uint32_t) num (ev, "pass"))
    return;
  p->ended = true;
  p->t_end = t;
  copy_string (p->decision, sizeof p->decision, report_event_string (ev, "decision"));
}

static void
on_marker_event (struct report_timeline *tl, const struct report_event *ev, double t)
{
  const char *name = ev->name;
  char a[32], b[32];
  struct report_marker *m;

  if (strcmp (name, "throttle") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_THROTTLE)) == NULL)
      return;
    m->value = num (ev, "bytes_per_second");
    format_bytes (a, sizeof a, m->value);
    format_bytes (b, sizeof b, num (ev, "dirty_bytes"));
    if (m->value > 0) {
      snprintf (m->label, sizeof m->label, "throttle %s/s", a);
      snprintf (m->detail, sizeof m->detail,
                "guest writes throttled to %s/s (dirty %s)", a, b);
    }
    else {
      snprintf (m->label, sizeof m->label, "throttle off");
      snprintf (m->detail, sizeof m->detail, "guest write throttle released");
    }
  }
  else if (strcmp (name, "freeze") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_FREEZE)) == NULL)
      return;
    snprintf (m->label, sizeof m->label, "freeze");
    snprintf (m->detail, sizeof m->detail,
              "guest writes frozen (drained in %.0f ms)", num (ev, "drain_ms"));
  }
  else if (strcmp (name, "commit") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_COMMIT)) == NULL)
      return;
    snprintf (m->label, sizeof m->label, "commit");
    snprintf (m->detail, sizeof m->detail,
              "destination committed (sync %.0f)", num (ev, "seq"));
  }
  else if (strcmp (name, "flip") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_FLIP)) == NULL)
      return;
    const char *mode = report_event_string (ev, "mode");
    snprintf (m->label, sizeof m->label, "flip");
    snprintf (m->detail, sizeof m->detail, "source flipped (%s)", mode ? mode : "?");
  }
  else if (strcmp (name, "downtime") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_DOWNTIME)) == NULL)
      return;
    m->value = num (ev, "downtime_ms");
    bool forced = report_event_bool (ev, "forced", false);
    snprintf (m->label, sizeof m->label, "downtime %.1f ms%s", m->value,
              forced ? " (forced)" : "");
    snprintf (m->detail, sizeof m->detail,
              "guest writes held %.1f ms (predicted %.1f ms)%s", m->value,
              num (ev, "predicted_ms"),
              forced ? "; forced without converging" : "");
  }
  else if (strcmp (name, "cutover_overrun") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_OVERRUN)) == NULL)
      return;
    m->value = num (ev, "held_ms");
    format_bytes (a, sizeof a, num (ev, "sent_bytes"));
    format_bytes (b, sizeof b, num (ev, "pass_bytes"));
    snprintf (m->label, sizeof m->label, "cutover called off");
    snprintf (m->detail, sizeof m->detail,
              "cutover %.0f called off after holding guest writes %.1f ms "
              "(predicted %.1f ms, limit %.1f ms; %s of %s sent); the source "
              "was thawed", num (ev, "attempt"), m->value,
              num (ev, "predicted_ms"), num (ev, "max_downtime_ms"), a, b);
  }
  else if (strcmp (name, "reconnecting") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_RECONNECTING)) == NULL)
      return;
    const char *reason = report_event_string (ev, "reason");
    snprintf (m->label, sizeof m->label, "reconnecting #%.0f", num (ev, "attempt"));
    snprintf (m->detail, sizeof m->detail, "lost the receiver: %s",
              reason ? reason : "?");
  }
  else if (strcmp (name, "resumed") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_RESUMED)) == NULL)
      return;
    const char *mode = report_event_string (ev, "mode");
    snprintf (m->label, sizeof m->label, "resumed");
    snprintf (m->detail, sizeof m->detail, "reconnected (%s, durable sync %.0f)",
              mode ? mode : "?", num (ev, "durable_seq"));
  }
  else if (strcmp (name, "error") == 0) {
    if ((m = add_marker (tl, ev, t, REPORT_MARK_ERROR)) == NULL)
      return;
    const char *msg = report_event_string (ev, "message");
    snprintf (m->label, sizeof m->label, "error");
    copy_string (m->detail, sizeof m->detail, msg ? msg : "error");
  }
}

void
report_timeline_add (struct report_timeline *tl, const struct report_event *ev)
{
  double t = tl->t_end;

  tl->events++;
  if (ev->has_ts) {
    if (!tl->have_t0) {
      tl->have_t0 = true;
      tl->t0 = ev->ts;
    }
    /* A clock stepped backwards must not draw outside the chart. */
    t = ev->ts - tl->t0;
    if (!(t >= 0))
      t = 0;
    if (t > tl->t_end)
      tl->t_end = t;
  }

  const char *name = ev->name;
  if (strcmp (name, "start") == 0)
    on_start (tl, ev);
  else if (strcmp (name, "pass_begin") == 0)
    on_pass_begin (tl, ev, t);
  else if (strcmp (name, "pass_end") == 0)
    on_pass_end (tl, ev, t);
  else if (strcmp (name, "progress") == 0)
    add_sample (tl, ev, t);
  else if (strcmp (name, "done") == 0) {
    tl->outcome = REPORT_DONE;
    tl->summary = *ev;
  }
  else {
    if (strcmp (name, "error") == 0) {
      tl->outcome = REPORT_FAILED;
      tl->summary = *ev;
    }
    on_marker_event (tl, ev, t);
  }

  /* The run is over: a pass still open ends here. */
  if (tl->outcome != REPORT_RUNNING) {
    struct report_pass *p = open_pass (tl);
    if (p != NULL) {
      p->ended = true;
      p->t_end = t;
    }
  }
}

int
report_timeline_add_line (struct report_timeline *tl, const char *line,
                          size_t len, uint64_t lineno)
{
  struct report_event *ev = malloc (sizeof *ev);
  const char *why;

  if (ev == NULL) {
    why = "out of memory";
    goto bad;
  }
  if (report_event_parse (line, len, ev, &why) == -1)
    goto bad;
  report_timeline_add (tl, ev);
  free (ev);
  return 0;

 bad:
  free (ev);
  if (tl->bad_lines++ == 0)
    snprintf (tl->first_bad, sizeof tl->first_bad, "line %llu: %s",
              (unsigned long long) lineno, why);
  return -1;
}
