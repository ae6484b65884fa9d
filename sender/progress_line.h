/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the progress bar's line, fitted to the terminal's width.
 *
 * Pure formatting, apart from progress_terminal_width: the caller passes
 * the width, so that what is dropped at which width can be tested.  The
 * fields, from the most to the least important: the pass (and whether it
 * is the final one), the percentage, the rate, the ETA, the dirty bytes
 * and the bar itself.  The bar shrinks first (down to BAR_MIN cells),
 * then goes; then the least important fields go one by one.  A line never
 * reaches the last column, so that no terminal wraps it: a wrapped line
 * is not erased by the next "\r", and each redraw would add lines.
 */
#ifndef STM_SENDER_PROGRESS_LINE_H
#define STM_SENDER_PROGRESS_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byte_counts.h"
#include "human_units.h"

/* Where a pass stands, for the bar and for progress events. */
struct progress_sample {
  uint32_t pass;
  bool final;
  uint64_t pass_bytes;       /* bytes this pass covers */
  uint64_t pass_done;        /* bytes of this pass sent so far */
  /* Cumulative for this process: for the events, not the line. */
  struct byte_counts counts;
  uint64_t dirty_bytes;      /* last known dirty bytes on the source */
  double rate;               /* bytes/s during this pass */
  /* For a group of named disks, each disk's figures as a JSON array
   * (in disks_buf), for the events; NULL otherwise. */
  const char *disks_json;
  char disks_buf[16 * (64 + 240) + 8];
};

#define PROGRESS_LINE_BAR_MAX 30
#define PROGRESS_LINE_BAR_MIN 10
/* Used when the width cannot be learned (not a terminal, no COLUMNS). */
#define PROGRESS_LINE_DEFAULT_WIDTH 80

/* Write the line for s into buf (len bytes, NUL-terminated), in at most
 * width - 1 columns (all ASCII).  Returns its length. */
size_t progress_format_line (char *buf, size_t len, const struct progress_sample *s,
                             unsigned width);

/* The width of the terminal on fd (TIOCGWINSZ), else $COLUMNS, else
 * PROGRESS_LINE_DEFAULT_WIDTH.  Asked at each redraw, so that a resized
 * terminal is followed without a SIGWINCH handler. */
unsigned progress_terminal_width (int fd);

#endif /* STM_SENDER_PROGRESS_LINE_H */
