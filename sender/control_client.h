/* stm-send: a blocking client for the migrate filter's control socket.
 *
 * One request line, one reply, with a receive timeout so a stuck filter
 * cannot hang the sender.  Replies are parsed with proto/control_proto.h.
 * Nothing here logs: a failed call returns -1 with errno set and leaves a
 * sentence in control_client_error() ("FREEZE failed: EBUSY another
 * connection owns the migration"), and the caller, which knows what the
 * source's state is, reports it once.
 */
#ifndef STM_SENDER_CONTROL_CLIENT_H
#define STM_SENDER_CONTROL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "extents.h"

struct control_client;

struct control_status {
  uint64_t size;
  uint32_t block;
  uint64_t generation;
  uint64_t dirty_bytes;
  uint64_t unconfirmed_bytes;
  char state[32];            /* tracking, frozen, fenced, forwarding */
  uint64_t write_bytes;      /* guest bytes written so far (informative) */
  uint64_t writes;           /* guest write requests so far (informative) */
  uint64_t throttle;         /* guest write throttle, bytes/s, 0 = off */
};

/* Connect to the Unix socket at path; replies must arrive within
 * timeout_ms.  Returns NULL with *errbuf filled on failure. */
struct control_client *control_client_connect (const char *path,
                                               unsigned timeout_ms,
                                               char *errbuf, size_t errlen);
void control_client_close (struct control_client *c);
const char *control_client_path (const struct control_client *c);
/* The reason for the last failure, as a sentence. */
const char *control_client_error (const struct control_client *c);
/* Did the last failure come from the connection itself (closed, timed
 * out) rather than an ERR reply?  Then no later command can work. */
int control_client_is_broken (const struct control_client *c);
/* The socket, for its peer credentials (which nbdkit process serves it). */
int control_client_fd (const struct control_client *c);

int control_status (struct control_client *c, struct control_status *st);
/* SNAPSHOT: the extents are appended to out (cleared first). */
int control_snapshot (struct control_client *c, struct extent_list *out,
                      uint64_t *generation);
int control_confirm (struct control_client *c, uint64_t offset, uint64_t length);
int control_reset (struct control_client *c);
int control_resume (struct control_client *c);
int control_freeze (struct control_client *c, uint64_t *drain_ms);
int control_thaw (struct control_client *c);
int control_flip_fence (struct control_client *c);
int control_flip_forward (struct control_client *c, const char *uri);
int control_throttle (struct control_client *c, uint64_t bytes_per_second);

/* A key=value number from the last OK reply's first line (FREEZE's
 * drain_us, THAW's frozen_us, ...); -1 if it is absent. */
int control_last_reply_u64 (const struct control_client *c, const char *key,
                            uint64_t *value);

#endif /* STM_SENDER_CONTROL_CLIENT_H */
