/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: the HTML page and its SVG timeline (see render.h).
 *
 * Layout of one disk's chart, top to bottom: rows of marker labels,
 * a row of pass labels, then three panels sharing the time axis
 * (throughput, dirty bytes on the source, bytes sent), with the pass
 * bands and the marker lines running through all three.  Three panels
 * rather than one chart with several y axes, because the quantities have
 * different units and a storage engineer reads each against its own
 * scale at a glance.
 *
 * Labels must not overlap: markers closer than a few pixels are drawn as
 * one (a cutover's freeze, commit, flip and downtime are milliseconds
 * apart and become one "cutover" marker), and each label goes into the
 * first row where it fits; a label that fits nowhere is shortened to its
 * number in the events table below, or left to the table alone.
 */
#include <config.h>

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "render.h"
#include "units.h"

/* Geometry, in CSS pixels. */
#define SVG_W 1160
#define MARGIN_L 80
#define MARGIN_R 28
#define PLOT_W (SVG_W - MARGIN_L - MARGIN_R)
#define LANES 4
#define LANE_H 15
#define PASS_ROW_H 16
#define PANEL_H 140
#define PANEL_GAP 26
#define AXIS_H 40
#define NPANELS 3
#define CHAR_W 7.2          /* width of an 11px bold sans-serif character, generously */
#define CLUSTER_PX 12       /* markers closer than this are drawn as one */

static void
put_escaped (FILE *fp, const char *s)
{
  for (; *s; s++) {
    switch (*s) {
    case '&': fputs ("&amp;", fp); break;
    case '<': fputs ("&lt;", fp); break;
    case '>': fputs ("&gt;", fp); break;
    case '"': fputs ("&quot;", fp); break;
    case '\'': fputs ("&#39;", fp); break;
    default: fputc (*s, fp);
    }
  }
}

/* A fixed-size text under construction (labels). */
static void
append (char *buf, size_t len, const char *s)
{
  size_t n = strlen (buf);
  if (n < len)
    snprintf (buf + n, len - n, "%s", s);
}

static const char *
marker_colour (enum report_marker_kind k)
{
  switch (k) {
  case REPORT_MARK_THROTTLE: return REPORT_COLOUR_THROTTLE;
  case REPORT_MARK_FREEZE:
  case REPORT_MARK_COMMIT:
  case REPORT_MARK_FLIP: return REPORT_COLOUR_CUTOVER;
  case REPORT_MARK_DOWNTIME: return REPORT_COLOUR_DOWNTIME;
  case REPORT_MARK_OVERRUN: return REPORT_COLOUR_OVERRUN;
  case REPORT_MARK_RECONNECTING:
  case REPORT_MARK_RESUMED: return REPORT_COLOUR_RECONNECT;
  case REPORT_MARK_ERROR: return REPORT_COLOUR_ERROR;
  }
  return REPORT_COLOUR_CUTOVER;
}

/* Which marker of a cluster gives it its colour: the one that matters
 * most to the reader. */
static int
marker_priority (enum report_marker_kind k)
{
  switch (k) {
  case REPORT_MARK_ERROR: return 6;
  case REPORT_MARK_DOWNTIME: return 5;
  case REPORT_MARK_OVERRUN: return 4;
  case REPORT_MARK_RECONNECTING:
  case REPORT_MARK_RESUMED: return 3;
  case REPORT_MARK_FLIP:
  case REPORT_MARK_COMMIT:
  case REPORT_MARK_FREEZE: return 2;
  case REPORT_MARK_THROTTLE: return 1;
  }
  return 0;
}

/* The time axis: seconds since the first event to pixels. */
struct xscale {
  double t_max;
};

static double
x_of (const struct xscale *xs, double t)
{
  if (!(t >= 0))
    t = 0;
  if (t > xs->t_max)
    t = xs->t_max;
  return MARGIN_L + t / xs->t_max * PLOT_W;
}

/* One panel's vertical axis. */
struct panel {
  const char *title;
  const char *axis;        /* short, for the y axis */
  const char *colour;
  double top;              /* pixel y of the panel's top */
  struct report_unit unit;
  double y_max;            /* in the unit */
  double step;             /* tick step, in the unit */
  bool per_second;
};

static double
y_of (const struct panel *p, double value)
{
  double v = value / p->unit.scale;
  if (!(v >= 0))
    v = 0;
  if (v > p->y_max)
    v = p->y_max;
  return p->top + PANEL_H - v / p->y_max * PANEL_H;
}

static void
panel_scale (struct panel *p, double max)
{
  p->unit = report_unit_for (max);
  double m = max / p->unit.scale;
  p->step = report_nice_step (m, 4);
  p->y_max = ceil (m / p->step) * p->step;
  if (!(p->y_max > 0))
    p->y_max = p->step;
}

/* Decimal places for tick labels of a given step. */
static int
decimals_for (double step)
{
  int d = 0;
  while (d < 3 && step < 1 - 1e-9) {
    step *= 10;
    d++;
  }
  return d;
}

static void
draw_panel_frame (FILE *fp, const struct panel *p, const struct xscale *xs,
                  double x_step, bool last)
{
  double bottom = p->top + PANEL_H;
  int dec = decimals_for (p->step);

  /* Horizontal grid and the y ticks. */
  for (double v = 0; v <= p->y_max + p->step / 2; v += p->step) {
    double y = y_of (p, v * p->unit.scale);
    fprintf (fp, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n",
             MARGIN_L, y, MARGIN_L + PLOT_W, y);
    fprintf (fp, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
             MARGIN_L - 6, y + 4, dec, v);
  }
  /* Vertical grid at the time ticks. */
  for (double t = 0; t <= xs->t_max + x_step / 1000; t += x_step) {
    double x = x_of (xs, t);
    fprintf (fp, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
             x, p->top, x, bottom);
    if (last)
      fprintf (fp, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n",
               x, bottom + 15, decimals_for (x_step), t);
  }
  fprintf (fp, "<rect class=\"frame\" x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\"/>\n",
           MARGIN_L, p->top, PLOT_W, PANEL_H);
  /* The y axis title, with its unit, turned along the axis. */
  double cy = p->top + PANEL_H / 2.0;
  fprintf (fp, "<text class=\"axis\" transform=\"translate(%d %.1f) rotate(-90)\" "
           "text-anchor=\"middle\">%s (%s%s)</text>\n",
           16, cy, p->axis, p->unit.name, p->per_second ? "/s" : "");
}

/* Sample s's value for series which (0 throughput, 1 dirty bytes, 2 bytes
 * sent, 3 wire bytes); false when the sample does not carry it. */
static bool
sample_value (const struct report_sample *s, int which, double *v)
{
  switch (which) {
  case 0: *v = s->rate; return true;
  case 1: *v = s->dirty; return s->has_dirty;
  case 2: *v = s->sent; return true;
  default: *v = s->wire; return s->has_wire;
  }
}

/* A polyline of one series over a disk's samples; dots too when there
 * are few, so that a short run still shows its points. */
static void
draw_series (FILE *fp, const struct report_disk *d, const struct panel *p,
             const struct xscale *xs, const char *colour, int which, bool dashed)
{
  size_t n = 0;
  for (size_t i = 0; i < d->nsamples; i++) {
    const struct report_sample *s = &d->samples[i];
    if ((which == 1 && !s->has_dirty) || (which == 3 && !s->has_wire))
      continue;
    n++;
  }
  if (n == 0)
    return;
  fprintf (fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" "
           "stroke-linejoin=\"round\"%s points=\"", colour,
           dashed ? " stroke-dasharray=\"6 4\"" : "");
  for (size_t i = 0; i < d->nsamples; i++) {
    const struct report_sample *s = &d->samples[i];
    double v;
    if (!sample_value (s, which, &v))
      continue;
    fprintf (fp, "%.1f,%.1f ", x_of (xs, s->t), y_of (p, v));
  }
  fputs ("\"/>\n", fp);
  if (n <= 60) {
    for (size_t i = 0; i < d->nsamples; i++) {
      const struct report_sample *s = &d->samples[i];
      double v;
      if (!sample_value (s, which, &v))
        continue;
      fprintf (fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
               x_of (xs, s->t), y_of (p, v), colour);
    }
  }
}

/* Markers drawn as one, with one label. */
struct cluster {
  double x0, x1;                /* first and last marker's x */
  enum report_marker_kind kind; /* the one giving the colour */
  bool has_downtime, has_freeze;
  double freeze_x;
  char label[160];
  size_t first_index;           /* 1-based row in the events table */
};

static bool
marker_on_disk (const struct report_marker *m, int disk)
{
  return m->disk < 0 || m->disk == disk;
}

/* The label of a cluster of markers from first to last (indexes into the
 * timeline's markers, on this disk). */
static void
cluster_label (const struct report_timeline *tl, int disk, size_t first, size_t last,
               struct cluster *c)
{
  size_t counts[REPORT_MARK_ERROR + 1] = { 0 };
  const struct report_marker *lastof[REPORT_MARK_ERROR + 1] = { NULL };

  for (size_t i = first; i <= last; i++) {
    const struct report_marker *m = &tl->markers[i];
    if (!marker_on_disk (m, disk))
      continue;
    counts[m->kind]++;
    lastof[m->kind] = m;
  }
  c->label[0] = '\0';
  /* A completed cutover reads as one event: its steps are in the table. */
  if (counts[REPORT_MARK_DOWNTIME] > 0) {
    append (c->label, sizeof c->label, "cutover: ");
    append (c->label, sizeof c->label, lastof[REPORT_MARK_DOWNTIME]->label);
    counts[REPORT_MARK_DOWNTIME] = counts[REPORT_MARK_FREEZE] = 0;
    counts[REPORT_MARK_COMMIT] = counts[REPORT_MARK_FLIP] = 0;
  }
  if (counts[REPORT_MARK_OVERRUN] > 0)
    counts[REPORT_MARK_FREEZE] = 0;
  static const enum report_marker_kind order[] = {
    REPORT_MARK_ERROR, REPORT_MARK_OVERRUN, REPORT_MARK_FREEZE, REPORT_MARK_COMMIT,
    REPORT_MARK_FLIP, REPORT_MARK_RECONNECTING, REPORT_MARK_RESUMED,
    REPORT_MARK_THROTTLE,
  };
  for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
    enum report_marker_kind kind = order[k];
    if (counts[kind] == 0)
      continue;
    if (c->label[0] != '\0')
      append (c->label, sizeof c->label, " \xc2\xb7 ");
    append (c->label, sizeof c->label, lastof[kind]->label);
    if (counts[kind] > 1) {
      char times[32];
      snprintf (times, sizeof times, " \xc3\x97%zu", counts[kind]);
      append (c->label, sizeof c->label, times);
    }
  }
}

/* UTF-8 characters in s, for the width estimate. */
static size_t
text_chars (const char *s)
{
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char) *s & 0xc0) != 0x80)
      n++;
  return n;
}

/* Place a label of text at marker x into the first lane where it does not
 * overlap another; lane_right holds each lane's occupied extent.  Returns
 * the lane, or -1.  *anchor_end says the text runs leftwards from x. */
static int
place_label (double lane_left[LANES], double lane_right[LANES], double x,
             const char *text, bool *anchor_end, double *tx)
{
  double w = text_chars (text) * CHAR_W + 4;
  double left = x + 4, right = x + 4 + w;
  *anchor_end = false;
  if (right > SVG_W - 2) {
    *anchor_end = true;
    left = x - 4 - w;
    right = x - 4;
  }
  for (int k = 0; k < LANES; k++) {
    if (left > lane_right[k] + 6 || right < lane_left[k] - 6) {
      if (lane_right[k] < right)
        lane_right[k] = right;
      if (lane_left[k] > left)
        lane_left[k] = left;
      *tx = *anchor_end ? x - 4 : x + 4;
      return k;
    }
  }
  return -1;
}

/* The x of the freeze that the cutover ending with marker last began
 * with: the latest freeze before it on this disk, unless a called-off
 * cutover or an earlier downtime comes between; else last's own x. */
static double
freeze_before (const struct report_timeline *tl, int disk, size_t last,
               const struct xscale *xs)
{
  for (size_t i = last + 1; i-- > 0; ) {
    const struct report_marker *m = &tl->markers[i];
    if (!marker_on_disk (m, disk))
      continue;
    if (m->kind == REPORT_MARK_FREEZE)
      return x_of (xs, m->t);
    if (i != last && (m->kind == REPORT_MARK_OVERRUN || m->kind == REPORT_MARK_DOWNTIME))
      break;
  }
  return x_of (xs, tl->markers[last].t);
}

static void
draw_markers (FILE *fp, const struct report_timeline *tl, int disk,
              const struct xscale *xs, double lanes_top, double plot_top,
              double plot_bottom)
{
  double lane_left[LANES], lane_right[LANES];

  for (int k = 0; k < LANES; k++) {
    lane_left[k] = SVG_W * 2;
    lane_right[k] = -SVG_W;
  }
  for (size_t i = 0; i < tl->nmarkers; ) {
    const struct report_marker *m = &tl->markers[i];
    if (!marker_on_disk (m, disk)) {
      i++;
      continue;
    }
    struct cluster c;
    memset (&c, 0, sizeof c);
    c.x0 = c.x1 = x_of (xs, m->t);
    c.kind = m->kind;
    c.first_index = i + 1;
    size_t first = i, last = i;
    for (size_t j = i; j < tl->nmarkers; j++) {
      const struct report_marker *n = &tl->markers[j];
      if (!marker_on_disk (n, disk))
        continue;
      double x = x_of (xs, n->t);
      if (x - c.x0 > CLUSTER_PX)
        break;
      last = j;
      c.x1 = x;
      if (marker_priority (n->kind) > marker_priority (c.kind))
        c.kind = n->kind;
      if (n->kind == REPORT_MARK_DOWNTIME)
        c.has_downtime = true;
      if (n->kind == REPORT_MARK_FREEZE && !c.has_freeze) {
        c.has_freeze = true;
        c.freeze_x = x;
      }
    }
    i = last + 1;
    cluster_label (tl, disk, first, last, &c);

    const char *colour = marker_colour (c.kind);
    double x = c.x1;
    if (c.has_downtime) {
      /* The time the guest was held, from the freeze that began it (in
       * this cluster or before, when the final pass took a while), made
       * visible however short. */
      double x0 = c.has_freeze ? c.freeze_x : freeze_before (tl, disk, last, xs);
      double w = c.x1 - x0;
      if (w < 8) {
        x0 = c.x1 - 8;
        w = 8;
      }
      fprintf (fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
               "fill=\"%s\" fill-opacity=\"0.22\"/>\n",
               x0, plot_top, w, plot_bottom - plot_top, colour);
    }
    bool dashed = c.kind == REPORT_MARK_RECONNECTING || c.kind == REPORT_MARK_THROTTLE;
    fprintf (fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
             "stroke-width=\"%s\"%s/>\n", x, lanes_top, x, plot_bottom, colour,
             c.has_downtime || c.kind == REPORT_MARK_ERROR ? "3" : "1.5",
             dashed ? " stroke-dasharray=\"4 3\"" : "");

    bool anchor_end;
    double tx;
    int lane = place_label (lane_left, lane_right, x, c.label, &anchor_end, &tx);
    if (lane < 0) {
      /* Too crowded: the marker's number in the events table instead. */
      snprintf (c.label, sizeof c.label, "#%zu", c.first_index);
      lane = place_label (lane_left, lane_right, x, c.label, &anchor_end, &tx);
    }
    if (lane >= 0) {
      fprintf (fp, "<text class=\"mark\" x=\"%.1f\" y=\"%.1f\" fill=\"%s\" "
               "text-anchor=\"%s\">", tx, lanes_top + (lane + 1) * LANE_H - 3,
               colour, anchor_end ? "end" : "start");
      put_escaped (fp, c.label);
      fputs ("</text>\n", fp);
    }
  }
}

/* The passes: their bands (labels false), or their labels, drawn last
 * so that no marker line crosses them. */
static void
draw_passes (FILE *fp, const struct report_timeline *tl, const struct xscale *xs,
             double row_top, double plot_top, double plot_bottom, bool labels)
{
  double label_right = -1;

  for (size_t i = 0; i < tl->npasses; i++) {
    const struct report_pass *p = &tl->passes[i];
    double t_end = p->ended ? p->t_end : tl->t_end;
    double x0 = x_of (xs, p->t_begin), x1 = x_of (xs, t_end);
    double w = x1 - x0 < 1 ? 1 : x1 - x0;
    const char *cls = p->final ? "band final" : (i % 2 ? "band odd" : "band even");
    if (!labels) {
      fprintf (fp, "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
               cls, x0, plot_top, w, plot_bottom - plot_top);
      continue;
    }
    /* The pass number over its band, in the longest form that fits; a
     * pass too short for any is still in the passes table. */
    char text[32];
    snprintf (text, sizeof text, "pass %u%s", p->number, p->final ? " (final)" : "");
    if (text_chars (text) * CHAR_W + 4 > w)
      snprintf (text, sizeof text, "%u%s", p->number, p->final ? "F" : "");
    double tw = text_chars (text) * CHAR_W;
    double cx = (x0 + x1) / 2;
    if (tw + 2 <= w + 2 && cx - tw / 2 > label_right + 4) {
      fprintf (fp, "<text class=\"pass%s\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
               p->final ? " final" : "", cx, row_top + PASS_ROW_H - 4, text);
      label_right = cx + tw / 2;
    }
  }
}

/* Periods with guest writes throttled: a strip along the top of the
 * throughput panel, from each throttle until the next change. */
static void
draw_throttle_strip (FILE *fp, const struct report_timeline *tl, int disk,
                     const struct xscale *xs, double top)
{
  for (size_t i = 0; i < tl->nmarkers; i++) {
    const struct report_marker *m = &tl->markers[i];
    if (m->kind != REPORT_MARK_THROTTLE || !marker_on_disk (m, disk) || m->value <= 0)
      continue;
    double t_end = tl->t_end;
    for (size_t j = i + 1; j < tl->nmarkers; j++) {
      const struct report_marker *n = &tl->markers[j];
      if (marker_on_disk (n, disk)
          && (n->kind == REPORT_MARK_THROTTLE || n->kind == REPORT_MARK_FLIP
              || n->kind == REPORT_MARK_ERROR)) {
        t_end = n->t;
        break;
      }
    }
    double x0 = x_of (xs, m->t), x1 = x_of (xs, t_end);
    fprintf (fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"6\" fill=\"%s\"/>\n",
             x0, top + 1, x1 - x0 < 2 ? 2 : x1 - x0, REPORT_COLOUR_THROTTLE);
  }
}

static void
draw_chart (FILE *fp, const struct report_timeline *tl, int disk,
            const struct report_disk *d)
{
  /* At least 10 ms, so that the ticks of a run with one event still
   * read as distinct times (at most three decimals). */
  struct xscale xs = { tl->t_end > 0.01 ? tl->t_end : 0.01 };
  double x_step = report_nice_step (xs.t_max, 10);
  double lanes_top = 6;
  double pass_row = lanes_top + LANES * LANE_H;
  double plot_top = pass_row + PASS_ROW_H;
  struct panel panels[NPANELS] = {
    { .title = "throughput", .axis = "throughput", .colour = REPORT_COLOUR_RATE, .per_second = true },
    { .title = "dirty on the source", .axis = "dirty", .colour = REPORT_COLOUR_DIRTY },
    { .title = "sent (cumulative)", .axis = "sent", .colour = REPORT_COLOUR_SENT },
  };
  double max[NPANELS] = { 0, 0, 0 };
  for (size_t i = 0; d != NULL && i < d->nsamples; i++) {
    const struct report_sample *s = &d->samples[i];
    if (s->rate > max[0]) max[0] = s->rate;
    if (s->has_dirty && s->dirty > max[1]) max[1] = s->dirty;
    if (s->sent > max[2]) max[2] = s->sent;
    if (s->has_wire && s->wire > max[2]) max[2] = s->wire;
  }
  for (int k = 0; k < NPANELS; k++) {
    panels[k].top = plot_top + k * (PANEL_H + PANEL_GAP);
    panel_scale (&panels[k], max[k]);
  }
  double plot_bottom = panels[NPANELS - 1].top + PANEL_H;
  double height = plot_bottom + AXIS_H;

  fprintf (fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" "
           "viewBox=\"0 0 %d %.0f\" role=\"img\" aria-label=\"migration timeline\">\n",
           SVG_W, height, SVG_W, height);
  draw_passes (fp, tl, &xs, pass_row, plot_top, plot_bottom, false);
  for (int k = 0; k < NPANELS; k++) {
    draw_panel_frame (fp, &panels[k], &xs, x_step, k == NPANELS - 1);
    fprintf (fp, "<text class=\"ptitle\" x=\"%d\" y=\"%.1f\" fill=\"%s\">%s</text>\n",
             MARGIN_L + 6, panels[k].top + 20, panels[k].colour, panels[k].title);
  }
  draw_throttle_strip (fp, tl, disk, &xs, panels[0].top);
  if (d != NULL) {
    draw_series (fp, d, &panels[0], &xs, REPORT_COLOUR_RATE, 0, false);
    draw_series (fp, d, &panels[1], &xs, REPORT_COLOUR_DIRTY, 1, false);
    draw_series (fp, d, &panels[2], &xs, REPORT_COLOUR_SENT, 2, false);
    if (d->any_wire)
      draw_series (fp, d, &panels[2], &xs, REPORT_COLOUR_WIRE, 3, true);
  }
  if (d == NULL || d->nsamples == 0)
    fprintf (fp, "<text class=\"axis\" x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">"
             "no progress events</text>\n",
             MARGIN_L + PLOT_W / 2, panels[0].top + PANEL_H / 2.0);
  draw_markers (fp, tl, disk, &xs, lanes_top, plot_top, plot_bottom);
  draw_passes (fp, tl, &xs, pass_row, plot_top, plot_bottom, true);
  fprintf (fp, "<text class=\"axis\" x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">"
           "time since the first event (s)</text>\n",
           MARGIN_L + PLOT_W / 2, plot_bottom + 34);
  fputs ("</svg>\n", fp);
}

static const char style[] =
  "body{font:14px/1.4 system-ui,'DejaVu Sans',Arial,sans-serif;margin:20px 28px;"
  "color:#1a1a1a;background:#fff}\n"
  "h1{font-size:21px;margin:0 0 4px;word-break:break-all}\n"
  "h2{font-size:16px;margin:22px 0 6px}\n"
  ".sub{color:#555;margin:0 0 10px;word-break:break-all}\n"
  ".outcome{display:inline-block;padding:3px 10px;border-radius:4px;font-weight:600;"
  "margin:6px 0 10px}\n"
  ".ok{background:#e3f4ea;color:#0b5a2f}.bad{background:#fbe3e4;color:#8a1020}"
  ".cut{background:#fff3cd;color:#6b4e00}\n"
  "table{border-collapse:collapse;margin:4px 0}\n"
  "td,th{padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:left;"
  "vertical-align:top}\n"
  "th{background:#f4f5f7;font-weight:600}\n"
  "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
  ".legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:6px 0;font-size:13px}\n"
  ".legend span{display:inline-flex;align-items:center;gap:6px}\n"
  ".sw{display:inline-block;width:22px;height:10px;border-radius:2px}\n"
  ".ln{display:inline-block;width:22px;height:0;border-top:3px solid}\n"
  ".note{color:#6b4e00;font-size:13px}\n"
  ".cards{display:flex;flex-wrap:wrap;gap:10px;margin:4px 0 6px}\n"
  ".card{border:1px solid #dde1e6;border-radius:6px;padding:6px 14px;min-width:110px}\n"
  ".card .v{font-size:20px;font-weight:600}.card .k{color:#555;font-size:12px}\n"
  "svg{display:block;margin:4px 0 8px}\n"
  "svg text{font-family:system-ui,'DejaVu Sans',Arial,sans-serif}\n"
  "svg .grid{stroke:#dde1e6;stroke-width:1}\n"
  "svg .frame{fill:none;stroke:#9aa3ad;stroke-width:1}\n"
  "svg .tick{font-size:11px;fill:#444}\n"
  "svg .axis{font-size:12px;fill:#333}\n"
  "svg .ptitle{font-size:12px;font-weight:600}\n"
  "svg .mark{font-size:11px;font-weight:600}\n"
  /* A white halo keeps labels readable where a marker line crosses. */
  "svg .mark,svg .pass{paint-order:stroke;stroke:#fff;stroke-width:3px;"
  "stroke-linejoin:round}\n"
  "svg .pass{font-size:11px;fill:#445}\n"
  "svg .pass.final{fill:#a34400;font-weight:600}\n"
  "svg .band.even{fill:#eef2f7}svg .band.odd{fill:#f8f9fb}"
  "svg .band.final{fill:#fde7d9}\n";

static void
legend (FILE *fp, bool wire)
{
  fputs ("<div class=\"legend\">", fp);
  fprintf (fp, "<span><i class=\"ln\" style=\"border-color:%s\"></i>throughput</span>",
           REPORT_COLOUR_RATE);
  fprintf (fp, "<span><i class=\"ln\" style=\"border-color:%s\"></i>dirty bytes</span>",
           REPORT_COLOUR_DIRTY);
  fprintf (fp, "<span><i class=\"ln\" style=\"border-color:%s\"></i>bytes sent</span>",
           REPORT_COLOUR_SENT);
  if (wire)
    fprintf (fp, "<span><i class=\"ln\" style=\"border-color:%s;border-top-style:dashed\">"
             "</i>wire bytes (TLS included)</span>", REPORT_COLOUR_WIRE);
  fputs ("<span><i class=\"sw\" style=\"background:#eef2f7;border:1px solid #ccd\"></i>"
         "pass</span>", fp);
  fputs ("<span><i class=\"sw\" style=\"background:#fde7d9;border:1px solid #e8c0a8\"></i>"
         "final pass</span>", fp);
  static const struct { const char *colour, *what; } marks[] = {
    { REPORT_COLOUR_DOWNTIME, "cutover and downtime" },
    { REPORT_COLOUR_CUTOVER, "freeze / commit / flip" },
    { REPORT_COLOUR_THROTTLE, "guest writes throttled" },
    { REPORT_COLOUR_OVERRUN, "cutover called off" },
    { REPORT_COLOUR_RECONNECT, "reconnect / resume" },
    { REPORT_COLOUR_ERROR, "error" },
  };
  for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
    fprintf (fp, "<span><i class=\"sw\" style=\"background:%s\"></i>%s</span>",
             marks[i].colour, marks[i].what);
  fputs ("</div>\n", fp);
}

static void
row_text (FILE *fp, const char *key, const char *value)
{
  fputs ("<tr><th>", fp);
  put_escaped (fp, key);
  fputs ("</th><td>", fp);
  put_escaped (fp, value);
  fputs ("</td></tr>\n", fp);
}

static void
row_bytes (FILE *fp, const char *key, double bytes)
{
  char b[32], text[96];
  format_bytes (b, sizeof b, bytes);
  snprintf (text, sizeof text, "%s (%.0f bytes)", b, bytes);
  row_text (fp, key, text);
}

static bool
key_is_bytes (const char *key)
{
  size_t n = strlen (key);
  return strncmp (key, "bytes_", 6) == 0
    || (n > 6 && strcmp (key + n - 6, "_bytes") == 0);
}

static void
format_utc (char *buf, size_t len, double unix_time)
{
  time_t t = (time_t) unix_time;
  struct tm tm;
  if (!isfinite (unix_time) || gmtime_r (&t, &tm) == NULL
      || strftime (buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
    snprintf (buf, len, "?");
}

/* The outcome, in one coloured line. */
static void
outcome (FILE *fp, const struct report_timeline *tl)
{
  const struct report_event *ev = &tl->summary;

  if (tl->outcome == REPORT_DONE) {
    const char *dst = report_event_string (ev, "destination");
    fprintf (fp, "<div class=\"outcome ok\">Migrated: the source flipped to the "
             "destination%s", dst ? ", which is " : "");
    if (dst)
      put_escaped (fp, dst);
    fputs ("</div>\n", fp);
  }
  else if (tl->outcome == REPORT_FAILED) {
    const char *msg = report_event_string (ev, "message");
    const char *state = report_event_string (ev, "source_state");
    fputs ("<div class=\"outcome bad\">Failed: ", fp);
    put_escaped (fp, msg ? msg : "(no message)");
    if (state) {
      fputs (" \xe2\x80\x94 the source is ", fp);
      put_escaped (fp, state);
    }
    fputs ("</div>\n", fp);
  }
  else
    fputs ("<div class=\"outcome cut\">No outcome: the events end before a "
           "<code>done</code> or <code>error</code> event (stm-send was killed, "
           "or the log is cut short)</div>\n", fp);
}

static void
card (FILE *fp, const char *name, const char *value)
{
  fputs ("<div class=\"card\"><div class=\"v\">", fp);
  put_escaped (fp, value);
  fputs ("</div><div class=\"k\">", fp);
  put_escaped (fp, name);
  fputs ("</div></div>", fp);
}

/* The figures a reader looks for first, in large type above the chart:
 * from done after success; otherwise what the events tell so far. */
static void
key_figures (FILE *fp, const struct report_timeline *tl)
{
  const struct report_event *ev = &tl->summary;
  char text[64], a[32];
  double v, secs = tl->t_end, sent = 0;

  fputs ("<div class=\"cards\">", fp);
  if (tl->outcome == REPORT_DONE) {
    if (report_event_number (ev, "bytes_sent", &sent)) {
      format_bytes (a, sizeof a, sent);
      card (fp, "sent", a);
    }
    /* Zeroed ranges cost the link a few bytes each, whatever their
     * length; the wire carried headers and TLS besides what was sent
     * (stm-send(1), BYTE COUNTS).  Older summaries have neither. */
    if (report_event_number (ev, "bytes_zeroed", &v)) {
      format_bytes (a, sizeof a, v);
      card (fp, "zeroed", a);
    }
    if (report_event_number (ev, "wire_bytes", &v)) {
      format_bytes (a, sizeof a, v);
      card (fp, "on the wire", a);
    }
    if (report_event_number (ev, "passes", &v)) {
      snprintf (text, sizeof text, "%.0f", v);
      card (fp, "passes", text);
    }
    if (report_event_number (ev, "downtime_ms", &v)) {
      snprintf (text, sizeof text, "%.1f ms", v);
      card (fp, "downtime", text);
    }
    if (report_event_number (ev, "seconds", &secs)) {
      report_format_duration (text, sizeof text, secs);
      card (fp, "duration", text);
    }
    if (secs > 0 && sent > 0) {
      format_bytes (a, sizeof a, sent / secs);
      snprintf (text, sizeof text, "%s/s", a);
      card (fp, "average throughput", text);
    }
    const char *dst = report_event_string (ev, "destination");
    if (dst)
      card (fp, "destination state", dst);
  }
  else {
    for (size_t i = 0; i < tl->ndisks; i++)
      if (tl->disks[i]->nsamples > 0)
        sent += tl->disks[i]->samples[tl->disks[i]->nsamples - 1].sent;
    format_bytes (a, sizeof a, sent);
    card (fp, "sent before the end", a);
    snprintf (text, sizeof text, "%zu", tl->npasses);
    card (fp, "passes begun", text);
    report_format_duration (text, sizeof text, secs);
    card (fp, "duration", text);
    const char *state = report_event_string (ev, "source_state");
    if (tl->outcome == REPORT_FAILED && state)
      card (fp, "source state", state);
  }
  fputs ("</div>\n", fp);
}

/* Everything about the run in one table: the start's identity, then the
 * summary's fields; fields this version does not know are shown as they
 * are, so newer summaries lose nothing. */
static void
details (FILE *fp, const struct report_timeline *tl)
{
  const struct report_event *ev = &tl->summary;
  char text[512], a[32];

  fputs ("<h2>Details</h2>\n<table>\n", fp);
  if (tl->have_start) {
    row_text (fp, "source", tl->source);
    row_text (fp, "destination", tl->dest);
    row_text (fp, "migration id", tl->migration_id);
    row_text (fp, "start mode", tl->mode);
    row_bytes (fp, "disk size", tl->size);
    row_bytes (fp, "block size", tl->block);
  }
  if (tl->have_t0) {
    format_utc (text, sizeof text, tl->t0);
    row_text (fp, "started", text);
  }
  for (size_t i = 0; tl->outcome != REPORT_RUNNING && i < ev->nfields; i++) {
    const struct report_field *f = &ev->fields[i];
    if (strcmp (f->key, "message") == 0)
      row_text (fp, "error", f->string);
    else if (strcmp (f->key, "destination") == 0)
      row_text (fp, "destination state", f->string);
    else if (strcmp (f->key, "source_state") == 0)
      row_text (fp, "source state", f->string);
    else if (f->type == REPORT_NUMBER && key_is_bytes (f->key))
      row_bytes (fp, f->key, f->number);
    else if (strcmp (f->key, "downtime_ms") == 0 && f->type == REPORT_NUMBER) {
      snprintf (text, sizeof text, "%.1f ms", f->number);
      row_text (fp, "downtime", text);
    }
    else if (strcmp (f->key, "seconds") == 0 && f->type == REPORT_NUMBER) {
      report_format_duration (a, sizeof a, f->number);
      snprintf (text, sizeof text, "%s (%.3f s)", a, f->number);
      row_text (fp, "duration", text);
    }
    else if (f->type == REPORT_NUMBER) {
      snprintf (text, sizeof text, "%.15g", f->number);
      row_text (fp, f->key, text);
    }
    else if (f->type == REPORT_BOOL)
      row_text (fp, f->key, f->boolean ? "true" : "false");
    else if (f->type == REPORT_STRING)
      row_text (fp, f->key, f->string);
  }
  fputs ("</table>\n", fp);
}

static void
passes_table (FILE *fp, const struct report_timeline *tl)
{
  char b[32], d[32];
  if (tl->npasses == 0)
    return;
  fputs ("<h2>Passes</h2>\n<table>\n<tr><th>pass</th><th>start (s)</th>"
         "<th>duration</th><th>bytes</th><th>decision</th></tr>\n", fp);
  for (size_t i = 0; i < tl->npasses; i++) {
    const struct report_pass *p = &tl->passes[i];
    format_bytes (b, sizeof b, p->bytes);
    double end = p->ended ? p->t_end : tl->t_end;
    report_format_duration (d, sizeof d, end - p->t_begin);
    fprintf (fp, "<tr><td class=\"num\">%u%s</td><td class=\"num\">%.3f</td>"
             "<td class=\"num\">%s%s</td><td class=\"num\">%s</td><td>",
             p->number, p->final ? " (final)" : "", p->t_begin, d,
             p->ended ? "" : " (not ended)", b);
    put_escaped (fp, p->decision);
    fputs ("</td></tr>\n", fp);
  }
  fputs ("</table>\n", fp);
}

static void
events_table (FILE *fp, const struct report_timeline *tl)
{
  if (tl->nmarkers == 0)
    return;
  bool disks = tl->ndisks > 1;
  fprintf (fp, "<h2>Events</h2>\n<table>\n<tr><th>#</th><th>time (s)</th>%s"
           "<th>event</th></tr>\n", disks ? "<th>disk</th>" : "");
  for (size_t i = 0; i < tl->nmarkers; i++) {
    const struct report_marker *m = &tl->markers[i];
    fprintf (fp, "<tr><td class=\"num\">%zu</td><td class=\"num\">%.3f</td>",
             i + 1, m->t);
    if (disks) {
      fputs ("<td>", fp);
      put_escaped (fp, m->disk < 0 ? "all" : tl->disks[m->disk]->name);
      fputs ("</td>", fp);
    }
    fprintf (fp, "<td><span style=\"color:%s;font-weight:600\">",
             marker_colour (m->kind));
    put_escaped (fp, m->label);
    fputs ("</span>: ", fp);
    put_escaped (fp, m->detail);
    fputs ("</td></tr>\n", fp);
  }
  fputs ("</table>\n", fp);
}

static void
notes (FILE *fp, const struct report_timeline *tl)
{
  if (tl->bad_lines) {
    fprintf (fp, "<p class=\"note\">%llu input line%s that %s not stm events %s "
             "skipped (first: ", (unsigned long long) tl->bad_lines,
             tl->bad_lines == 1 ? "" : "s", tl->bad_lines == 1 ? "was" : "were",
             tl->bad_lines == 1 ? "was" : "were");
    put_escaped (fp, tl->first_bad);
    fputs (").</p>\n", fp);
  }
  if (tl->thinned_samples)
    fprintf (fp, "<p class=\"note\">The run was long: %llu progress samples were "
             "left out, evenly, to keep the page small.</p>\n",
             (unsigned long long) tl->thinned_samples);
  if (tl->dropped_markers || tl->dropped_passes || tl->dropped_disk_events)
    fprintf (fp, "<p class=\"note\">Not shown: %llu events, %llu passes and %llu "
             "events of disks past the first %d (the page keeps a bounded "
             "number).</p>\n", (unsigned long long) tl->dropped_markers,
             (unsigned long long) tl->dropped_passes,
             (unsigned long long) tl->dropped_disk_events, REPORT_MAX_DISKS);
}

int
report_render (const struct report_timeline *tl, FILE *fp)
{
  const char *src = tl->source;
  const char *dst = tl->dest;

  fputs ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<title>stm migration ", fp);
  put_escaped (fp, tl->migration_id[0] ? tl->migration_id : "report");
  fprintf (fp, "</title>\n<style>\n%s</style>\n</head>\n<body>\n", style);

  fputs ("<h1>stm migration: ", fp);
  if (tl->have_start) {
    put_escaped (fp, src);
    fputs (" \xe2\x86\x92 ", fp);
    put_escaped (fp, dst);
  }
  else
    /* stm-send says where it migrates in its start event, which a run
     * that could not reach the source or the receiver never made. */
    fputs ("source and destination unknown (no start event)", fp);
  fputs ("</h1>\n<p class=\"sub\">migration id ", fp);
  put_escaped (fp, tl->migration_id[0] ? tl->migration_id : "unknown");
  if (tl->have_t0) {
    char when[64], dur[32];
    format_utc (when, sizeof when, tl->t0);
    report_format_duration (dur, sizeof dur, tl->t_end);
    fprintf (fp, " \xc2\xb7 started %s \xc2\xb7 %s of events", when, dur);
  }
  fputs ("</p>\n", fp);

  outcome (fp, tl);
  key_figures (fp, tl);

  bool wire = false;
  for (size_t i = 0; i < tl->ndisks; i++)
    wire = wire || tl->disks[i]->any_wire;
  fputs ("<h2>Timeline</h2>\n", fp);
  legend (fp, wire);
  if (tl->ndisks == 0)
    draw_chart (fp, tl, -1, NULL);
  for (size_t i = 0; i < tl->ndisks; i++) {
    /* One disk (the only form today) needs no heading; several get one
     * chart each, with the events that name no disk on every chart. */
    if (tl->ndisks > 1 || tl->disks[i]->name[0] != '\0') {
      fputs ("<h2>Disk ", fp);
      put_escaped (fp, tl->disks[i]->name[0] ? tl->disks[i]->name : "(unnamed)");
      fputs ("</h2>\n", fp);
    }
    draw_chart (fp, tl, (int) i, tl->disks[i]);
  }
  notes (fp, tl);
  details (fp, tl);
  passes_table (fp, tl);
  events_table (fp, tl);
  fputs ("<p class=\"sub\">Made by stm " PACKAGE_VERSION " from stm-send's JSON events.</p>\n"
         "</body>\n</html>\n", fp);
  return ferror (fp) ? -1 : 0;
}
