/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: the picture of one migration as data, built event by event
 * from stm-send's JSON events (event.h) and drawn by render.h.
 *
 * It keeps only what the page shows: the run's identity (start), the
 * progress samples per disk, the passes, the markers (throttle, freeze,
 * commit, flip, downtime, called-off cutovers, reconnections, errors)
 * and the outcome (done or error).  Memory is bounded whatever the run's
 * length, because stm-send keeps one of these for hours:
 *
 *  - samples: at most REPORT_MAX_SAMPLES per disk.  When a disk's array
 *    is full, every other sample is dropped and from then on only every
 *    2nd (then 4th, ...) new sample is kept, so the kept samples stay
 *    evenly spread over the whole run at a resolution that halves as the
 *    run doubles (a day at one event a second is still about 20 s per
 *    point, far finer than the chart's pixels);
 *  - markers and passes: the first REPORT_MAX_MARKERS and
 *    REPORT_MAX_PASSES are kept (the cutover is always kept: it is the
 *    reason for the page); the rest are counted and the page says so.
 *
 * Pure: no I/O.  Allocation only in report_timeline_new.
 */
#ifndef STM_REPORT_TIMELINE_H
#define STM_REPORT_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define REPORT_MAX_SAMPLES 2048
#define REPORT_MAX_DISKS 16
#define REPORT_MAX_MARKERS 512
#define REPORT_MAX_PASSES 512

struct report_sample {
  double t;              /* seconds since the run's first event */
  double rate;           /* bytes/s */
  double dirty;          /* bytes */
  double sent;           /* bytes, cumulative */
  double wire;           /* bytes, cumulative (when has_wire) */
  bool has_wire;
  bool has_dirty;
};

struct report_disk {
  char name[REPORT_STRING_MAX];   /* "" for events without a disk field */
  struct report_sample samples[REPORT_MAX_SAMPLES];
  size_t nsamples;
  uint64_t stride;       /* keep one new sample in stride */
  uint64_t seen;         /* samples offered since the last thinning */
  bool any_wire;
};

enum report_marker_kind {
  REPORT_MARK_THROTTLE,
  REPORT_MARK_FREEZE,
  REPORT_MARK_COMMIT,
  REPORT_MARK_FLIP,
  REPORT_MARK_DOWNTIME,
  REPORT_MARK_OVERRUN,
  REPORT_MARK_RECONNECTING,
  REPORT_MARK_RESUMED,
  REPORT_MARK_ERROR,
};

struct report_marker {
  double t;
  enum report_marker_kind kind;
  int disk;              /* index into disks, or -1 for every disk */
  double value;          /* throttle: bytes/s; downtime: ms; overrun: held ms */
  char label[96];        /* short, for the chart */
  char detail[REPORT_STRING_MAX];  /* longer, for the table */
};

struct report_pass {
  uint32_t number;
  bool final;
  bool ended;
  double t_begin, t_end;
  double bytes;
  char decision[24];
};

enum report_outcome {
  REPORT_RUNNING,        /* neither done nor error: cut short */
  REPORT_DONE,
  REPORT_FAILED,
};

struct report_timeline {
  /* From start (empty when there was none). */
  bool have_start;
  char source[REPORT_STRING_MAX];
  char dest[REPORT_STRING_MAX];
  char migration_id[REPORT_STRING_MAX];
  char mode[REPORT_KEY_MAX];
  double size, block;

  bool have_t0;
  double t0;             /* Unix time of the first event */
  double t_end;          /* seconds since t0 of the last event */

  struct report_disk *disks[REPORT_MAX_DISKS];
  size_t ndisks;

  struct report_pass passes[REPORT_MAX_PASSES];
  size_t npasses;
  struct report_marker markers[REPORT_MAX_MARKERS];
  size_t nmarkers;

  enum report_outcome outcome;
  struct report_event summary;     /* the done or error event */

  /* What could not be kept, for a note on the page. */
  uint64_t events;                 /* events taken */
  uint64_t bad_lines;              /* lines that were not events */
  char first_bad[160];             /* "line N: why" of the first */
  uint64_t dropped_markers, dropped_passes, dropped_disk_events;
  uint64_t thinned_samples;
};

/* A new empty timeline, or NULL when out of memory. */
struct report_timeline *report_timeline_new (void);
void report_timeline_free (struct report_timeline *tl);

/* Take one event.  Events are expected in the order stm-send printed
 * them; unknown events are counted and otherwise ignored. */
void report_timeline_add (struct report_timeline *tl, const struct report_event *ev);

/* Parse line[0..len) (report_event_parse) and take it; a line that is not
 * an event is counted, and the first one's number (lineno) and reason
 * kept.  Returns 0, or -1 if the line was not an event. */
int report_timeline_add_line (struct report_timeline *tl, const char *line,
                              size_t len, uint64_t lineno);

#endif /* STM_REPORT_TIMELINE_H */
