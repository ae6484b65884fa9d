/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: acting on the convergence decisions, the cutover and the
 * failure path.
 *
 * After each durable pass, convergence.c decides and this file acts:
 * another pass, a guest write throttle (THROTTLE), the cutover, or giving
 * up.  Cutover: a flush of the source
 * and a fresh look at the dirty set, FREEZE, RESUME (if hot blocks were
 * deferred), SNAPSHOT, the final pass and its SYNC (called off, thawed,
 * if not durable in time), a STATUS to check the freeze is still held,
 * COMMIT and wait for COMMITTED (the destination is prepared); then
 * flip.c: CONFIRM, FLIP (fence, or forward to the URI given or announced,
 * with our credentials added), THAW, and OUTCOME flipped so that the
 * receiver records the destination final.  For a group of disks every
 * step asks every disk's filter at once.  The downtime is the filter's own measure of
 * how long guest writes were held (THAW's frozen_us).  Any failure from
 * FREEZE up to a successful FLIP thaws the source, which stays
 * authoritative (migration_fail, migration.h); every failure releases a
 * throttle we set; the process never exits with the source frozen.
 */
#ifndef STM_SENDER_CUTOVER_H
#define STM_SENDER_CUTOVER_H

#include "migration.h"
#include "wire.h"

/* A pass is durable and st is the filter's status after it (the pass's
 * times in m->cur.durable_ns, durable_pass_ns): decide (convergence.c)
 * and act: another pass (pass_next, after a THROTTLE perhaps), the
 * cutover, or giving up.  Before a freeze, the flush probe's flush and a
 * second STATUS on the control channel come first, and the decision is
 * made again when it answers (PHASE_DECIDING throughout). */
void cutover_after_pass (struct migration *m, const struct control_status *st);

/* Set up the cutover's watchers on m->loop (once, before the first pass). */
void cutover_init (struct migration *m);
/* FREEZE, RESUME (hot blocks) and SNAPSHOT, pipelined (PHASE_FREEZING);
 * the final pass starts when SNAPSHOT answers.  If sending it and making it durable
 * runs past what --max-downtime leaves for COMMIT, FLIP and THAW, the
 * cutover is called off: the source is thawed, the pass finishes as an
 * ordinary one, and convergence decides again against half the budget. */
void cutover_begin (struct migration *m);
/* The final pass is durable: STATUS to check the freeze is still held,
 * then COMMIT when it answers (PHASE_CHECKING; true), or, past the
 * deadline, call the cutover off and return false, so that the caller
 * ends the pass as an ordinary one. */
bool cutover_final_pass_durable (struct migration *m);
/* THAW every disk that may be frozen (d->frozen), each reply to done with
 * the disk as opaque; m->cut.thaw_in_flight and m->cut.thaws_awaited
 * until the last has answered. */
void cutover_thaw_all (struct migration *m, control_channel_cb *done);
#endif /* STM_SENDER_CUTOVER_H */
