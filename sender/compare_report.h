/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: what a comparison tells its user: --json
 * events on stdout (start, progress, difference, error, done), or lines
 * on stderr and, with --progress, a progress line.
 *
 * Each differing range is one "difference" event (or a "differs:" line),
 * up to COMPARE_REPORT_MAX_RANGES; the ones after that are only counted,
 * and said in one more line ("... and N more"; the event
 * "differences_omitted"), so a disk that differs everywhere in a
 * scattered way cannot flood the terminal or a log.  The summary counts
 * every range.  Events are built with common/json_writer.h; this file
 * decides nothing about the comparison.
 */
#ifndef STM_SENDER_COMPARE_REPORT_H
#define STM_SENDER_COMPARE_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "compare_only_policy.h"

#define COMPARE_REPORT_MAX_RANGES 1000

struct compare_report {
  bool json;                     /* --json: events on stdout */
  bool bar;                      /* --progress: a line on stderr */
  bool bar_shown;                /* the line is on the terminal */
  uint64_t shown;                /* difference ranges reported one by one */
  uint64_t omitted, omitted_bytes; /* those past the bound */
};

/* One disk, as the start event lists it.  name is NULL for the one
 * unnamed disk of --source. */
struct compare_report_disk {
  const char *name;
  const char *source;
  uint64_t size;
  uint32_t unit;
};

/* Where the comparison stands, for the progress event and line. */
struct compare_report_progress {
  const char *disk;              /* the disk being read (NULL: unnamed) */
  uint64_t bytes_compared;       /* of every disk, so far */
  uint64_t size;                 /* of every disk */
  double rate;                   /* bytes compared per second */
};

/* What the comparison found, for the done event and line. */
struct compare_summary {
  enum compare_result result;
  uint64_t bytes_compared;
  uint64_t bytes_differing;
  uint64_t ranges;
  uint64_t bytes_changed_during;
  bool writes_tracked;           /* --control: the guest's writes were left out */
  uint64_t wire_bytes;           /* written to the receiver's socket (TLS
                                    included): HELLO, HASH_KEY, HASH_REQs */
  uint64_t wire_bytes_received;  /* read from it: mostly HASHES */
  double seconds;
};

void compare_report_init (struct compare_report *r, bool json, bool bar);
void compare_report_start (struct compare_report *r, const char *dest,
                           const struct compare_report_disk *disks, uint32_t ndisks,
                           bool named, bool writes_tracked);
void compare_report_progress (struct compare_report *r,
                              const struct compare_report_progress *p);
/* One differing range of a disk (name NULL: the unnamed disk). */
void compare_report_difference (struct compare_report *r, const char *disk,
                                uint64_t offset, uint64_t length);
/* After the last difference: say how many were not listed. */
void compare_report_differences_end (struct compare_report *r);
/* The comparison could not be made: message says why (it is logged
 * here, once). */
void compare_report_error (struct compare_report *r, const char *message);
void compare_report_done (struct compare_report *r, const struct compare_summary *s);
/* Take the progress line off the terminal (before other output). */
void compare_report_clear (struct compare_report *r);

#endif /* STM_SENDER_COMPARE_REPORT_H */
