/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the command socket (--command-socket PATH) on a running
 * migration: the server's lifetime and what STATUS, CUTOVER and ABORT do
 * (commands.c).  The protocol is command_server.h's; the answers are
 * ready_policy.h's; the replies owed are kept in ready.h's state.
 */
#ifndef STM_SENDER_COMMANDS_H
#define STM_SENDER_COMMANDS_H

#include "migration.h"

/* Serve --command-socket, if given, on m->loop (once, after ready_init
 * and before the loop runs).  -1 after log_error naming the path; nothing
 * has been started then. */
int commands_open (struct migration *m);

/* The migration has ended (m->finished, from migration_finish): complete
 * the replies owed, and close the server once the loop is out of its
 * callbacks (the replies go out first). */
void commands_finished (struct migration *m);

/* Close the server if it is still open (after the loop has ended). */
void commands_close (struct migration *m);

#endif /* STM_SENDER_COMMANDS_H */
