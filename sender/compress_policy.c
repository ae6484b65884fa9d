/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: whether to compress DATA, from measurements.  See
 * compress_policy.h.
 */
#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compress_policy.h"
#include "zstd_frame.h"

/* Weight of a new window in the running estimates. */
#define NEW_WEIGHT 0.5
/* The output queue at its high mark for this share of a window: the link
 * held the copy back. */
#define SATURATED 0.5
/* Windows to wait after a try that did not pay, at first and at most. */
#define FIRST_BACKOFF 4
#define MAX_BACKOFF 64

void
compress_policy_init (struct compress_policy *p)
{
  memset (p, 0, sizeof *p);
  p->backoff = FIRST_BACKOFF;
}

static double
blend (double old, double now)
{
  return old > 0 ? old * (1 - NEW_WEIGHT) + now * NEW_WEIGHT : now;
}

void
compress_policy_predict (const struct compress_policy *p, double *off, double *on)
{
  *off = *on = 0;
  if (p->other_spb <= 0 || p->zstd_spb <= 0 || p->ratio <= 0)
    return;
  *off = 1 / p->other_spb;
  if (p->threaded)
    *on = 1 / (p->other_spb > p->zstd_spb ? p->other_spb : p->zstd_spb);
  else
    *on = 1 / (p->other_spb + p->zstd_spb);
  /* An unknown link rate is a link that never held the copy back: only
   * the CPU limits then, and compression only costs. */
  if (p->link_bps > 0) {
    if (*off > p->link_bps)
      *off = p->link_bps;
    if (*on > p->link_bps / p->ratio)
      *on = p->link_bps / p->ratio;
  }
}

/* Fold the window's measurements into the estimates. */
static void
estimate (struct compress_policy *p, const struct compress_window *w, double secs)
{
  double out_rate = (double) w->out_bytes / secs;
  /* The loop's own work: its CPU time but for the zstd calls it made
   * itself (the worker's are not in it). */
  uint64_t on_loop = w->tried_ns > w->worker_ns ? w->tried_ns - w->worker_ns : 0;
  double cpu = w->cpu_ns > on_loop ? (double) (w->cpu_ns - on_loop) : 1.0;

  p->other_spb = blend (p->other_spb, cpu / 1e9 / (double) w->in_bytes);
  if (w->tried_in > 0) {
    p->ratio = blend (p->ratio, (double) w->tried_out / (double) w->tried_in);
    /* A call too quick for the clock still costs something. */
    p->zstd_spb = blend (p->zstd_spb, (w->tried_ns > 0 ? (double) w->tried_ns : 1.0)
                         / 1e9 / (double) w->tried_in);
  }
  if ((double) w->full_ns >= SATURATED * (double) w->wall_ns)
    p->link_bps = blend (p->link_bps, out_rate);
  else if (p->link_bps > 0 && out_rate > p->link_bps)
    /* The link carried more than it was thought to. */
    p->link_bps = out_rate;
}

/* Compression did not pay: off, and wait longer before the next try. */
static void
give_up (struct compress_policy *p, unsigned hold)
{
  p->on = false;
  p->hold = hold;
  p->windows_on = 0;
  p->rate_on = 0;
}

bool
compress_policy_update (struct compress_policy *p, const struct compress_window *w)
{
  double secs, rate, off, on;
  bool saturated;

  if (w->in_bytes < COMPRESS_WINDOW_MIN_BYTES || w->wall_ns == 0)
    return p->on;
  secs = (double) w->wall_ns / 1e9;
  rate = (double) w->in_bytes / secs;
  saturated = (double) w->full_ns >= SATURATED * (double) w->wall_ns;
  estimate (p, w, secs);
  compress_policy_predict (p, &off, &on);

  if (!p->on) {
    if (saturated)
      p->rate_off = rate;
    if (p->hold > 0) {
      p->hold--;
      return false;
    }
    /* Only while the link holds the copy back, and only for a clear gain. */
    if (saturated && off > 0 && on > COMPRESS_GAIN * off) {
      p->on = true;
      p->windows_on = 0;
      p->rate_on = 0;
    }
    return p->on;
  }

  /* On.  The first window after turning on still carries what was queued
   * before; judge the achieved rate from the second. */
  p->windows_on++;
  if (p->windows_on >= 2)
    p->rate_on = blend (p->rate_on, rate);
  if (off > 0 && on < COMPRESS_STAY * off) {
    /* The data, or the link, changed: no gain any more. */
    give_up (p, 2);
    return false;
  }
  if (p->windows_on >= 3 && p->rate_off > 0 && p->rate_on < COMPRESS_KEEP * p->rate_off) {
    give_up (p, p->backoff);
    p->backoff = p->backoff * 2 > MAX_BACKOFF ? MAX_BACKOFF : p->backoff * 2;
    return false;
  }
  if (p->windows_on >= 3)
    p->backoff = FIRST_BACKOFF;
  return true;
}

int
compress_parse (const char *arg, enum compress_mode *mode, int *level)
{
  *level = ZSTD_FRAME_DEFAULT_LEVEL;
  if (strcmp (arg, "auto") == 0)
    *mode = COMPRESS_AUTO;
  else if (strcmp (arg, "off") == 0)
    *mode = COMPRESS_OFF;
  else if (strcmp (arg, "zstd") == 0)
    *mode = COMPRESS_ZSTD;
  else if (strncmp (arg, "zstd:", 5) == 0) {
    const char *l = arg + 5;
    bool negative = l[0] == '-';
    int v = 0;

    /* zstd's fast levels are negative; 0 would mean its default (3). */
    l += negative;
    if (l[0] == '\0' || strlen (l) > 2)
      return -1;
    for (; *l != '\0'; l++) {
      if (*l < '0' || *l > '9')
        return -1;
      v = v * 10 + (*l - '0');
    }
    v = negative ? -v : v;
    if (v == 0 || v < ZSTD_FRAME_MIN_LEVEL || v > ZSTD_FRAME_MAX_LEVEL)
      return -1;
    *mode = COMPRESS_ZSTD;
    *level = v;
  }
  else
    return -1;
  return 0;
}
