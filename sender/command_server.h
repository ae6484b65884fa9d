/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the operator's command socket (--command-socket PATH), a
 * line server on the sender's libev loop through which a migration run
 * with --cutover manual is told to cut over or to give up.
 *
 * The protocol is the filter's control-socket protocol in miniature, so
 * that the same tools (socat, a few lines of Python) drive both: one
 * request line, a reply line starting "OK" or "ERR <ERRNO-NAME> <message>".
 * Commands are case-insensitive and take no arguments:
 *
 *   STATUS   -> OK <key=value ...>     (the text comes from the status
 *                                       callback: phase=, pass=,
 *                                       dirty_bytes=, predicted_downtime_ms=,
 *                                       ready=0|1, ...)
 *   CUTOVER  -> OK flipped downtime_ms=N                  when the flip is done
 *            -> ERR EAGAIN not ready: <why>               not converged yet
 *            -> ERR EALREADY cutover already in progress
 *            -> ERR EIO cutover failed: <why>; the source is thawed and
 *                   authoritative
 *   ABORT    -> OK aborted: the source is thawed and authoritative
 *            -> ERR EALREADY the source has flipped; too late to abort
 *
 * The server's own errors, answered without closing other clients:
 *
 *   ERR EINVAL unknown command | empty command | <CMD> takes no arguments |
 *              command contains a control character | ... NUL byte
 *   ERR E2BIG command line longer than 256 bytes; ignored
 *   ERR EMFILE too many command connections (at most 4 at once); closing
 *              this one                       (then the connection closes)
 *
 * Replies to CUTOVER and ABORT may be deferred: the callback receives a
 * reply handle and completes it, at once or later, with command_reply_ok
 * or command_reply_err.  A connection's next command is executed only
 * after its pending reply has been sent, so replies come in request order.
 * A client that goes away before its reply does not cancel the command:
 * the handle is still completed by the caller, and the reply is dropped.
 *
 * The socket is created with mode 0600.  A stale socket left by a process
 * that died (nobody accepts on it) is replaced; a live one, or anything
 * that is not a socket, makes command_server_new fail.  The file is removed
 * by command_server_free, if it is still the one this server created.
 */
#ifndef STM_SENDER_COMMAND_SERVER_H
#define STM_SENDER_COMMAND_SERVER_H

#include <stddef.h>

#include <ev.h>

/* At most this many clients at once: the operator, a playbook, a monitor. */
#define COMMAND_MAX_CLIENTS 4
/* A request line, its newline included. */
#define COMMAND_MAX_LINE 256
/* A reply line, its "OK "/"ERR " and newline included; longer text is
 * cut short. */
#define COMMAND_MAX_REPLY 1024

enum command {
  COMMAND_STATUS,
  COMMAND_CUTOVER,
  COMMAND_ABORT,
};

/* Parse one request line (with or without its "\n" or "\r\n").  Returns 0
 * and sets *cmd, or -1 with *errno_name ("EINVAL", "E2BIG") and *why set
 * to static text for an ERR reply.  Pure: no I/O. */
int command_parse (const char *line, size_t len, enum command *cmd,
                   const char **errno_name, const char **why);

/* The wire name of a command ("CUTOVER"). */
const char *command_name (enum command cmd);

/* A reply still owed to a client, for CUTOVER and ABORT. */
struct command_reply;

struct command_callbacks {
  /* Write the text that follows "OK " in the STATUS reply, as
   * space-separated key=value pairs, NUL-terminated, into text (size
   * bytes).  Must not block. */
  void (*status) (void *opaque, char *text, size_t size);
  /* CUTOVER and ABORT: start the work, and complete reply exactly once,
   * now or from a later callback on the same loop. */
  void (*cutover) (void *opaque, struct command_reply *reply);
  void (*abort) (void *opaque, struct command_reply *reply);
};

struct command_server;

/* Create the socket at path, listening on loop.  Returns NULL after
 * log_error naming path (nothing is left at path then, except what was
 * there before). */
struct command_server *command_server_new (struct ev_loop *loop,
                                           const char *path,
                                           const struct command_callbacks *cb,
                                           void *opaque);

/* Stop listening, send the replies already completed (as much as the
 * sockets take without blocking: ABORT's reply, completed just before
 * stm-send exits, reaches its client), close every client (replies still
 * owed are dropped, their handles stay valid until completed), remove the
 * socket file.  Not from inside one of the server's callbacks. */
void command_server_free (struct command_server *srv);

/* How many clients are connected. */
size_t command_server_clients (const struct command_server *srv);

/* Complete a deferred reply: "OK <text>" or "ERR <errno_name> <text>".
 * The handle is freed; it must not be used again.  Safe after the client
 * has gone and after command_server_free (the reply is then dropped). */
void command_reply_ok (struct command_reply *reply, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));
void command_reply_err (struct command_reply *reply, const char *errno_name,
                        const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));

#endif /* STM_SENDER_COMMAND_SERVER_H */
