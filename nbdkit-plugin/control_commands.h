/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: what each control command does to the migration
 * state, and the reply it produces.
 *
 * The control server parses a request line, works out who is asking
 * (the owner, anyone while nobody owns the migration, or someone else
 * while another connection owns it) and calls control_execute, which
 * changes the state and writes the first line of the reply.  A SNAPSHOT
 * reply continues with one line per extent; those are produced a
 * bufferful at a time by snapshot_stream_fill, so a huge image never
 * needs its whole extent list in memory.
 *
 * Everything here runs on the control thread.
 */
#ifndef STM_CONTROL_COMMANDS_H
#define STM_CONTROL_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control_proto.h"
#include "migration_state.h"

/* Longest first line of a reply, newline included. */
#define CONTROL_REPLY_MAX 2048

/* Room snapshot_stream_fill needs for one extent line ("offset length\n"
 * with two 20-digit numbers) or the final ".\n". */
#define SNAPSHOT_LINE_MAX 48

enum control_role {
  CONTROL_ROLE_OWNER,            /* this connection owns the migration */
  CONTROL_ROLE_UNOWNED,          /* nobody owns it yet */
  CONTROL_ROLE_OTHER,            /* another connection owns it */
};

struct control_reply {
  char line[CONTROL_REPLY_MAX];  /* first line, ending in "\n" */
  size_t len;
  bool ok;                       /* OK (true) or ERR (false) */
  bool snapshot_follows;         /* extent lines follow: start a stream */
  /* No reply yet (line is empty): PRECONNECT is connecting, and
   * control_preconnect_done gives the reply when it has finished. */
  bool deferred;
  /* Descriptors to pass with the reply (SCM_RIGHTS): MIRROR START's
   * ring.  The server sends them with the reply's first byte and closes
   * them. */
  int fds[3];
  unsigned nfds;
};

/* Execute one parsed request.  The caller makes the connection the owner
 * when the reply is OK and the command is not STATUS.  A deferred reply
 * (PRECONNECT) comes from control_preconnect_done later. */
void control_execute (struct migration_state *st,
                      const struct control_request *req,
                      enum control_role role, struct control_reply *reply);

/* Fill reply with "ERR <name> <why>\n". */
void control_reply_err (struct control_reply *reply,
                        const char *errno_name, const char *why);

/* The extent lines of the latest SNAPSHOT, then ".". */
struct snapshot_stream {
  bool active;
  uint64_t next_block;           /* where the walk of handed_out resumes */
};

void snapshot_stream_begin (struct snapshot_stream *s);

/* Append as many whole lines as fit in buf[0..room) and return the number
 * of bytes written; the stream becomes inactive after writing ".". */
size_t snapshot_stream_fill (const struct migration_state *st,
                             struct snapshot_stream *s,
                             char *buf, size_t room);

/* The monotonic time at which the current freeze must end, if writes are
 * frozen; false otherwise. */
bool control_freeze_deadline (struct migration_state *st, uint64_t *deadline_ns);

/* The connection PRECONNECT prepares has finished connecting (its
 * preconnect_wait_fd is readable): fill in the reply the PRECONNECT
 * deferred. */
void control_preconnect_done (struct migration_state *st,
                              struct control_reply *reply);

/* Thaw because the freeze outlasted migrate-freeze-timeout, or because the
 * connection that owned it closed.  Each logs why.  No-ops unless frozen,
 * except that the owner's close also turns the throttle off and closes
 * the connection PRECONNECT prepared. */
void control_thaw_on_timeout (struct migration_state *st);
void control_thaw_on_owner_close (struct migration_state *st);

#endif /* STM_CONTROL_COMMANDS_H */
