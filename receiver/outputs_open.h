/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: opening the outputs at startup and adopting what their state
 * file records.
 *
 * Every output is opened and locked (image_writer.h) before any state file
 * is read, so no other stm-recv changes them while they are judged.  The
 * record of the migration the outputs hold is the one state file beside
 * the primary output (outputs_primary: the one output, or the named one
 * whose name sorts first).  Each output is judged against the record's
 * disk of its name (state_judge_disk), and the group by state_judge_group.
 * A state file beside any other output of a group belongs to something
 * else (a one-disk migration into it, or another group whose first disk it
 * was): it is refused, or with --force removed, since a receiver that is
 * later pointed at that output alone must not trust a record of data the
 * group has overwritten.  So is a record whose disk names are not the
 * outputs' names.  Refusals end the start (exit 1) unless --force, when
 * the receiver starts holding nothing and the first migration to connect
 * overwrites the outputs.
 */
#ifndef STM_RECEIVER_OUTPUTS_OPEN_H
#define STM_RECEIVER_OUTPUTS_OPEN_H

#include <stdbool.h>

struct receiver;

/* Open rx->images and rx->state and fill rx->record and rx->outputs_text.
 * -1 after reporting; the outputs this created are removed again. */
int outputs_open (struct receiver *rx);

/* Close the images and the state file (NULLs allowed).  discard: remove
 * outputs that this start created and that are still empty. */
void outputs_close (struct receiver *rx, bool discard);

#endif /* STM_RECEIVER_OUTPUTS_OPEN_H */
