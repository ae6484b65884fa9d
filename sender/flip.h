/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: after the group commit (COMMITTED), CONFIRM and FLIP every
 * disk, fence a disk whose flip failed once another may have flipped,
 * THAW, and record the outcome on the receiver (flip.c).
 */
#ifndef STM_SENDER_FLIP_H
#define STM_SENDER_FLIP_H

#include "cutover.h"
#include "migration.h"
#include "wire.h"

/* COMMITTED arrived (the receiver holds every disk prepared): CONFIRM,
 * then FLIP every disk once each filter has answered its CONFIRMs, then
 * THAW once every FLIP is, then record the outcome
 * (cutover_send_outcome), each step from the previous one's reply
 * handlers (PHASE_FLIPPING).  If no disk flipped the failure path thaws
 * them all; if some did, the others are fenced, and a disk that can be
 * neither flipped nor fenced ends the migration with
 * STM_SEND_EXIT_UNKNOWN, every disk's state reported. */
void cutover_on_committed (struct migration *m, const struct wire_msg *msg);
/* The source has flipped for m->commit_seq: tell the receiver (OUTCOME
 * flipped) so that it records the destination final, and wait for its
 * RECORDED (PHASE_RECORDING).  Without a connection, the HELLO_REPLY of
 * the next one does it. */
void cutover_send_outcome (struct migration *m);

#endif /* STM_SENDER_FLIP_H */
