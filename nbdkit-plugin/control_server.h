/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the control socket server.
 *
 * One thread serves every control connection with a poll loop: it accepts
 * connections (at most CONTROL_MAX_CONNECTIONS at once), splits their input
 * into request lines (at most CONTROL_MAX_LINE bytes), hands each parsed
 * request to control_execute, writes the replies back without ever
 * blocking on a slow reader, tracks which connection owns the migration,
 * and thaws a freeze that outlives migrate-freeze-timeout or its owner.
 *
 * Life cycle, following nbdkit's: the socket is created in .get_ready
 * (before nbdkit forks, so it exists as soon as nbdkit's own socket does),
 * the thread starts in .after_fork and stops in .cleanup, and the socket
 * file is removed at .unload.
 */
#ifndef STM_CONTROL_SERVER_H
#define STM_CONTROL_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "control_commands.h"
#include "control_proto.h"
#include "migration_state.h"

#define CONTROL_MAX_CONNECTIONS 16
#define CONTROL_OUTPUT_BUFFER 16384

struct control_connection {
  int fd;                        /* -1: slot free */
  unsigned id;                   /* for log messages */
  char in[CONTROL_MAX_LINE];     /* unprocessed input */
  size_t in_len;
  bool discarding;               /* dropping the rest of an over-long line */
  bool input_closed;             /* the peer shut down its sending side */
  char out[CONTROL_OUTPUT_BUFFER];
  size_t out_start, out_end;     /* pending output is out[start..end) */
  struct snapshot_stream stream; /* extent lines still to produce */
  /* A PRECONNECT of this connection waits for its connection: nothing
   * more is read or executed until its reply is queued. */
  bool awaiting_preconnect;
  /* Descriptors to send with the reply that starts at out[pass_at]
   * (MIRROR START's ring); nothing more is executed until they are sent. */
  int pass_fds[3];
  unsigned npass;
  size_t pass_at;
};

struct control_server {
  struct migration_state *state;
  int listen_fd;                 /* -1 until listening */
  bool socket_created;           /* we own the socket file */
  int wake_pipe[2];              /* written to stop the thread */
  pthread_t thread;
  bool thread_running;
  unsigned next_id;
  struct control_connection *owner;   /* NULL: nobody owns the migration */
  struct control_connection conns[CONTROL_MAX_CONNECTIONS];
};

#define CONTROL_SERVER_INIT {                                         \
    .listen_fd = -1, .wake_pipe = { -1, -1 },                         \
  }

/* Create and listen on the socket st->control_path, mode 0600.  An
 * existing stale socket (nobody listening) is replaced; anything else at
 * that path is an error.  Returns -1 after nbdkit_error. */
int control_server_listen (struct control_server *srv,
                           struct migration_state *st);

/* Start and stop the control thread. */
int control_server_start (struct control_server *srv);
void control_server_stop (struct control_server *srv);

/* Close the listening socket and remove the socket file. */
void control_server_unlisten (struct control_server *srv);

#endif /* STM_CONTROL_SERVER_H */
