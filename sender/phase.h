/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the phases of a migration and the transitions between them,
 * written down as data.
 *
 *   CONNECTING --ready--> HELLO --resume/new--> PREPARING <------------+
 *        ^                  |                   | SNAPSHOT's reply     |
 *        |                  | flipped already   v                     |
 *   RECONNECTING <--lost--  |                  PASS <-------------+    |
 *        (from any live     |                   | all sent        |    |
 *         phase)            |                   v                 |    |
 *                           |                PASS_SYNC -durable-> DECIDING --held--> READY
 *                           |                   |             (STATUS; the  (manual; then
 *                           |   final pass durable          decision) |    PREPARING)
 *                           |                   v                 FREEZING
 *                           |                CHECKING           (FREEZE,
 *                           |             (STATUS: still frozen?) SNAPSHOT)
 *                           |                   v                     |
 *                           |                COMMITTING     final pass: PASS
 *                           |                   | COMMITTED
 *                           v                   v
 *                       RECORDING <--flip-- FLIPPING (CONFIRM, FLIP, THAW)
 *                           |
 *                           v
 *                          DONE       FAILING --> FAILED (from any live phase;
 *                                     FAILING while THAW and THROTTLE 0 are
 *                                     answered)
 *
 * With --verify, a durable final pass goes to VERIFYING (the whole of
 * every disk compared by hashes while frozen) and from there to CHECKING;
 * a difference fails the migration, which thaws.
 *
 * With --cutover manual a decision to cut over is held (ready.h) until
 * CUTOVER comes on the command socket: the next pass starts at once
 * (DECIDING -> PREPARING) or, with little to copy, after a short wait in
 * READY (DECIDING -> READY -> PREPARING); the guest is never frozen there.
 *
 * PREPARING, DECIDING, FREEZING, CHECKING, FLIPPING and FAILING are the
 * waits for the filter's replies on the control channel
 * (control_channel.h): a reply is acted on only in the phase that asked
 * for it, so one that comes after the migration moved on (the receiver
 * was lost meanwhile, say) is recognised as stale.
 *
 * A migration changes phase only through migration_set_phase, which
 * asserts that the transition is one of these; docs/architecture.md draws
 * the same picture.  Whether a flip has happened, and whether the source
 * is frozen, are not phases: they are facts about the source that the
 * cutover state records (a freeze spans FREEZING to FLIPPING; a migration
 * that finds its source already flipped goes from HELLO to RECORDING).
 */
#ifndef STM_SENDER_PHASE_H
#define STM_SENDER_PHASE_H

#include <stdbool.h>

enum migration_phase {
  PHASE_RECONNECTING,  /* lost the receiver: waiting to connect again */
  PHASE_CONNECTING,    /* waiting for the transport to be ready */
  PHASE_HELLO,         /* HELLO sent, waiting for HELLO_REPLY */
  PHASE_PREPARING,     /* RESET or RESUME, and SNAPSHOT, sent: waiting for
                          their replies to start a pass */
  PHASE_PASS,          /* reading and sending a pass */
  PHASE_PASS_SYNC,     /* pass sent, waiting for its DURABLE */
  PHASE_DECIDING,      /* pass durable, STATUS sent: waiting for it to
                          decide (convergence.c) */
  PHASE_FREEZING,      /* FREEZE and the final SNAPSHOT sent: waiting for
                          their replies */
  PHASE_CHECKING,      /* final pass durable, STATUS sent: is the freeze
                          still held? */
  PHASE_COMMITTING,    /* COMMIT sent, waiting for COMMITTED */
  PHASE_FLIPPING,      /* COMMITTED: CONFIRM, FLIP, THAW sent in turn */
  PHASE_RECORDING,     /* flipped and thawed; OUTCOME sent, waiting for the
                          receiver's RECORDED (final) */
  PHASE_DONE,          /* flipped, thawed and recorded final (or given up
                          recording it) */
  PHASE_FAILING,       /* given up: THAW and THROTTLE 0 sent, waiting for
                          their replies before the end */
  PHASE_FAILED,        /* ended without a flip (or not knowing whether one
                          happened) */
  PHASE_READY,         /* --cutover manual: converged and held ready,
                          waiting a moment before the next pass (ready.h) */
  PHASE_VERIFYING,     /* --verify: final pass durable, source and
                          destination compared by hashes (verify.h) */
  PHASE_COUNT
};

/* Is from -> to one of the transitions drawn above?  (Pure.) */
bool phase_transition_ok (enum migration_phase from, enum migration_phase to);

/* Has the migration ended (DONE or FAILED)? */
bool phase_is_final (enum migration_phase p);

/* "PASS_SYNC", for messages and assertions. */
const char *phase_name (enum migration_phase p);

/* Has the migration ended or is it ending (DONE, FAILING, FAILED)?
 * Nothing but the failure path's own replies is acted on then. */
bool phase_is_over (enum migration_phase p);

#endif /* STM_SENDER_PHASE_H */
