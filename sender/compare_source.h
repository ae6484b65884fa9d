/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: opening one disk's source before the loop
 * runs.
 *
 * The source through libnbd (source_reader.h), and with --control (or
 * control= of --disk) its filter: a blocking STATUS on control_client.h,
 * the checks that the filter can be compared live (compare_source_refusal:
 * tracking, and owned by nobody, so no running migration loses its
 * snapshots) and that it serves the same image, then the socket is handed
 * to an asynchronous control channel for the SNAPSHOTs made while the
 * loop runs.  STATUS takes no ownership: a refused source is left
 * exactly as it was.  Ownership comes with the first SNAPSHOT and goes
 * when the channel is closed, which also leaves the filter as any
 * migration's owner would find it: SNAPSHOT only moves dirty blocks to
 * "unconfirmed", and a later migration's RESET or RESUME makes them
 * dirty again.
 */
#ifndef STM_SENDER_COMPARE_SOURCE_H
#define STM_SENDER_COMPARE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "control_channel.h"
#include "source_reader.h"

/* How long the filter has to answer a request. */
#define COMPARE_CONTROL_TIMEOUT_MS 60000

struct compare_source {
  const char *name;              /* --disk name=, NULL for --source */
  const char *uri;               /* the source's NBD URI */
  const char *control_path;      /* the filter's control socket, or NULL */
  struct source_reader *reader;
  struct control_channel *ctl;   /* NULL without a control path */
  uint64_t size;
  uint32_t block;                /* the filter's, or COMPARE_DEFAULT_BLOCK */
};

/* The block size announced for a source without a filter. */
#define COMPARE_DEFAULT_BLOCK 65536u

/* Open s (name, uri and control_path set): blocking, before the loop
 * runs.  -1 with a sentence in err that names the source or filter at
 * fault (and says the filter was left as it was, when it was reached). */
int compare_source_open (struct compare_source *s, struct ev_loop *loop,
                         char *err, size_t errlen);
/* Close the reader and the channel (the filter drops the ownership). */
void compare_source_close (struct compare_source *s);

#endif /* STM_SENDER_COMPARE_SOURCE_H */
