/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: making way for a listening Unix socket.
 *
 * The filter's control socket and stm-send's command socket are both
 * created at a path the user names, where a process that died may have
 * left its socket.  Such a stale socket (nobody accepts on it) is
 * removed; a socket somebody listens on, or anything that is not a
 * socket, is left alone and refused, so that one process never takes
 * over another's socket or deletes a user's file.
 *
 * It writes no message: the caller, which knows which option named the
 * path and what state things are in, reports the sentence it is given.
 */
#ifndef STM_COMMON_UNIX_SOCKET_H
#define STM_COMMON_UNIX_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/un.h>

/* Make way for a socket at addr->sun_path: 0 when nothing is there (or a
 * stale socket was removed: *removed says so); -1 with why filled ("is in
 * use: another process is listening on it", "cannot inspect the path:
 * ...") otherwise.  Never blocks: the probe connection is non-blocking,
 * and a full backlog counts as somebody listening. */
int unix_socket_clear_stale (const struct sockaddr_un *addr, bool *removed,
                             char *why, size_t whylen);

#endif /* STM_COMMON_UNIX_SOCKET_H */
