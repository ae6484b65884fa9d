/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the control commands of the mirror ring (MIRROR
 * START, MIRROR STOP), what STATUS and FREEZE say about it, and its end
 * when the owner goes or the source flips.
 *
 * control_commands.c calls these and turns their text into replies; they
 * call nothing of control_commands.c.  Control thread only.
 */
#ifndef STM_CONTROL_MIRROR_H
#define STM_CONTROL_MIRROR_H

#include <stdbool.h>
#include <stddef.h>

#include "control_proto.h"
#include "migration_state.h"

/* MIRROR START: make a ring and publish it.  Returns true with the OK
 * line's text in line and three descriptors for the consumer in fds;
 * false with "ERR <name> <why>" in line and nothing changed. */
bool control_mirror_start (struct migration_state *st,
                           const struct control_request *req,
                           int fds[3], char *line, size_t size);

/* MIRROR STOP: take the ring away (its records not yet durable become
 * dirty blocks).  Always succeeds; the OK line's text in line. */
void control_mirror_stop (struct migration_state *st, char *line, size_t size);

/* End mirroring because of why (the owner closed, the source flipped),
 * logging it if a ring was in force. */
void control_mirror_end (struct migration_state *st, const char *why);

/* The STATUS fields about mirroring, " key=value" each, into buf, which
 * CONTROL_MIRROR_STATUS_MAX bytes hold whatever the values. */
#define CONTROL_MIRROR_STATUS_MAX 1024
void control_mirror_status (struct migration_state *st,
                            char *buf, size_t size);

/* FREEZE is about to close the gate (freezing true), or the gate has
 * opened again (false: a thaw, a failed freeze, a flip).  In between, a
 * write that finds the ring full does not wait for room (and one waiting
 * stops at once): it falls back to its dirty bits, which the final pass
 * sends, instead of lengthening the drain. */
void control_mirror_freezing (struct migration_state *st, bool freezing);

/* May the source flip as far as mirroring goes?  False, with the reason
 * in why, while a ring holds records the destination has not made
 * durable. */
bool control_mirror_flushed (struct migration_state *st,
                             char *why, size_t size);

#endif /* STM_CONTROL_MIRROR_H */
