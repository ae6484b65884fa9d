/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the phases of a migration and the transitions between them,
 * written down as data.
 *
 *   CONNECTING --ready--> HELLO --resume/new--> PASS <--------------+
 *        ^                  |                   | all sent          |
 *        |                  | flipped already   v                   |
 *   RECONNECTING <--lost--  |                PASS_SYNC --durable----+
 *        (from any live     |                   | final pass durable
 *         phase)            v                   v
 *                       RECORDING <--flip-- COMMITTING
 *                           |
 *                           v
 *                          DONE            FAILED (from any live phase)
 *
 * A migration changes phase only through migration_set_phase, which
 * asserts that the transition is one of these; docs/architecture.md draws
 * the same picture.  Whether a flip has happened, and whether the source
 * is frozen, are not phases: they are facts about the source that the
 * cutover state records (a freeze spans PASS, PASS_SYNC and COMMITTING;
 * a migration that finds its source already flipped goes from HELLO to
 * RECORDING).
 */
#ifndef STM_SENDER_PHASE_H
#define STM_SENDER_PHASE_H

#include <stdbool.h>

enum migration_phase {
  PHASE_RECONNECTING,  /* lost the receiver: waiting to connect again */
  PHASE_CONNECTING,    /* waiting for the transport to be ready */
  PHASE_HELLO,         /* HELLO sent, waiting for HELLO_REPLY */
  PHASE_PASS,          /* reading and sending a pass */
  PHASE_PASS_SYNC,     /* pass sent, waiting for its DURABLE */
  PHASE_COMMITTING,    /* final pass durable, COMMIT sent, waiting for COMMITTED */
  PHASE_RECORDING,     /* flipped and thawed; OUTCOME sent, waiting for the
                          receiver's RECORDED (final) */
  PHASE_DONE,          /* flipped, thawed and recorded final (or given up
                          recording it) */
  PHASE_FAILED,        /* ended without a flip (or not knowing whether one
                          happened) */
  PHASE_COUNT
};

/* Is from -> to one of the transitions drawn above?  (Pure.) */
bool phase_transition_ok (enum migration_phase from, enum migration_phase to);

/* Has the migration ended (DONE or FAILED)? */
bool phase_is_final (enum migration_phase p);

/* "PASS_SYNC", for messages and assertions. */
const char *phase_name (enum migration_phase p);

#endif /* STM_SENDER_PHASE_H */
