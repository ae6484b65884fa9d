/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: one pass over the dirty blocks (see pass.c). */
#ifndef STM_SENDER_PASS_H
#define STM_SENDER_PASS_H

#include <stdbool.h>

#include "migration.h"
#include "source_reader.h"

/* Share an eighth of the downtime budget with the hot blocks left for
 * the final pass (hot_blocks.h). */
#define HOT_BLOCKS_BUDGET_DIVISOR 8

/* What the source reader reports to (source_reader_start). */
extern const struct source_reader_callbacks pass_reader_callbacks;

/* Set up the pass's watchers on m->loop (once, before the first pass). */
void pass_init (struct migration *m);

/* Start a pass over m->extents (already filled): PASS_BEGIN, then read
 * and send.  final: the cutover's pass, with the source frozen. */
void pass_begin (struct migration *m, bool final);

/* Start the next ordinary pass: SNAPSHOT on the control channel
 * (PHASE_PREPARING); when it answers, hot blocks left out, then read.
 * Requests issued before it (a THROTTLE, RESUME) are answered first. */
void pass_next (struct migration *m);

/* The reply handler of a THROTTLE set by the convergence policy (here or
 * in cutover.c): a refusal fails the migration. */
void pass_throttle_replied (void *opaque, uint64_t tag,
                            const struct control_reply *r);

/* Set the guest write throttle to rate bytes/s for the group: each disk's
 * filter gets an equal share (pass_throttle_replied answers). */
void pass_throttle_all (struct migration *m, uint64_t rate);
/* The group's status: the disks' last STATUS (d->st) added up (dirty,
 * written, sizes), the rest as disk 0's. */
void pass_group_status (const struct migration *m, struct control_status *sum);

/* Mirroring: bound each ring's window (mirror_stream_set_window) to what
 * the final pass can carry in a quarter of max_downtime_ns at the measured
 * copy rate; within the first pass, once it has run
 * MIRROR_WINDOW_FIRST_NS, at the rate it and the rings have moved so
 * far.  Nothing while the rate is unknown, or without mirroring. */
#define MIRROR_WINDOW_FIRST_NS (500 * NS_PER_MS)
void pass_mirror_window (struct migration *m, uint64_t max_downtime_ns);

/* Issue reads while there is room in every window; at the end of the
 * pass, PASS_END and its SYNC. */
void pass_pump (struct migration *m);

/* Outside the final pass, ask the filter how much is dirty now, without
 * waiting (status_poller.h): the reply, to pass_on_status, updates the
 * progress report and lets the convergence policy look at it (a throttle
 * may be due before the pass ends).  A failed STATUS is not fatal here:
 * the next will do. */
void pass_look_at_dirty (struct migration *m);
/* The status poller's callback (status_poller_open's cb, with m). */
void pass_on_status (void *opaque, const struct control_status *st, uint64_t rtt_ns);

/* The receiver is lost: forget the pass in progress.  Nothing of it needs
 * remembering: what it sent and never saw durable is still unconfirmed in
 * the filter, and RESUME (or RESET) on the next connection makes it dirty
 * again.  Reads still in flight are for that pass; they are delivered in
 * order before any later read, so the next stale_reads deliveries are
 * dropped. */
void pass_abandon (struct migration *m);
/* It also moves m->ctl_epoch on: control replies to requests made before
 * are stale. */

#endif /* STM_SENDER_PASS_H */
