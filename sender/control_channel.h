/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the owning control connection to the migrate filter, as an
 * asynchronous channel on the sender's libev loop.
 *
 * The filter ties the ownership of a migration (and of a freeze) to one
 * control connection, so the connection that runs the start-up checks
 * must be the one that freezes, flips and thaws.  Start-up (STATUS before
 * the loop runs) stays blocking, on control_client.h, and the same socket
 * is then handed to this channel (control_channel_new), which owns it for
 * the rest of the migration: nothing made while the loop runs blocks it.
 *
 * A request is queued and written without blocking; its reply is read by
 * an ev_io watcher and matched in order, since the filter answers in
 * order.  Each request names a callback, run once, always from the loop
 * (never inside the call that issued it): with the reply, an ERR, or the
 * failure of the connection.  The request at the head of the queue has a
 * timeout (FREEZE and FLIP the longer one of control_client.h's freeze
 * rule); a timeout, a closed peer or a reply that makes no sense breaks
 * the channel, and every request still pending, and any issued after,
 * fails with that cause.  Requests may be issued back to back (pipelined):
 * a callback that needs an earlier request to have succeeded checks what
 * that request's callback recorded.  Nothing here logs; the callbacks,
 * which know the source's state, report.
 */
#ifndef STM_SENDER_CONTROL_CHANNEL_H
#define STM_SENDER_CONTROL_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "control_client.h"
#include "extents.h"

struct control_channel;

struct control_reply {
  int ok;                       /* 1: OK; 0: failed, see err and error */
  int err;                      /* EBUSY, ESTALE, ... for an ERR reply;
                                   EPROTO, ETIMEDOUT, EPIPE ... otherwise */
  bool broken;                  /* the connection failed (not an ERR reply) */
  const char *error;            /* a sentence, when !ok */
  const char *line;             /* the first reply line ("" if none) */
  uint64_t rtt_ns;              /* from sending the request to its reply */
  /* STATUS, when ok: the parsed reply. */
  const struct control_status *status;
  /* SNAPSHOT, when ok: the extents (the callback may take them with
   * extent_list swapping; the channel frees what is left) and the
   * generation. */
  struct extent_list *extents;
  uint64_t generation;
};

/* tag is handed back unchanged: the sender uses it to recognise a reply
 * to a request made before the migration moved on (a stale reply). */
typedef void control_channel_cb (void *opaque, uint64_t tag,
                                 const struct control_reply *r);

/* Take over fd, a connected control socket with no request in flight
 * (made non-blocking here).  Replies must come within timeout_ms, those
 * to FREEZE and FLIP within slow_timeout_ms.  NULL on out of memory (the
 * fd is not closed then). */
struct control_channel *control_channel_new (struct ev_loop *loop, int fd,
                                             unsigned timeout_ms,
                                             unsigned slow_timeout_ms);
/* Close the socket now (the filter drops the ownership, thaws a freeze
 * and releases a throttle) and break the channel: pending requests fail,
 * from the loop, with "closed by stm-send". */
void control_channel_disconnect (struct control_channel *ch);
/* Connect afresh to path, after the channel broke (a new connection, with
 * no ownership).  -1 with err filled. */
int control_channel_reconnect (struct control_channel *ch, const char *path,
                               char *err, size_t errlen);
/* Free; callbacks of requests still pending are not run.  NULL is fine. */
void control_channel_free (struct control_channel *ch);

bool control_channel_is_broken (const struct control_channel *ch);
/* Why it broke, as a sentence ("" if it did not). */
const char *control_channel_broken_by (const struct control_channel *ch);
/* Requests issued whose callbacks have not run yet. */
size_t control_channel_pending (const struct control_channel *ch);

/* The requests.  Each returns nothing: the outcome, failure included,
 * comes to cb. */
void control_channel_status (struct control_channel *ch, control_channel_cb *cb,
                             void *opaque, uint64_t tag);
void control_channel_snapshot (struct control_channel *ch, control_channel_cb *cb,
                               void *opaque, uint64_t tag);
void control_channel_freeze (struct control_channel *ch, control_channel_cb *cb,
                             void *opaque, uint64_t tag);
void control_channel_thaw (struct control_channel *ch, control_channel_cb *cb,
                           void *opaque, uint64_t tag);
void control_channel_throttle (struct control_channel *ch, uint64_t bytes_per_second,
                               control_channel_cb *cb, void *opaque, uint64_t tag);
/* RESET and RESUME naming the migration (NULL for none). */
void control_channel_reset (struct control_channel *ch, const char *migration_id_hex,
                            control_channel_cb *cb, void *opaque, uint64_t tag);
void control_channel_resume (struct control_channel *ch, const char *migration_id_hex,
                             control_channel_cb *cb, void *opaque, uint64_t tag);
void control_channel_flip_fence (struct control_channel *ch, control_channel_cb *cb,
                                 void *opaque, uint64_t tag);
/* The URI must be shorter than CONTROL_MAX_URI and free of spaces: one
 * that is not fails the request (EINVAL). */
void control_channel_flip_forward (struct control_channel *ch, const char *uri,
                                   control_channel_cb *cb, void *opaque, uint64_t tag);
/* PRECONNECT URI: the filter opens the connection FLIP forward URI would
 * open, now, so that the flip has nothing slow left to do (the same
 * rules for the URI; as slow as FLIP). */
void control_channel_preconnect (struct control_channel *ch, const char *uri,
                                 control_channel_cb *cb, void *opaque, uint64_t tag);
/* CONFIRM each of the n ranges, all written at once; cb runs once, after
 * the last reply, with the first ERR if there was one (every reply is
 * read, so the channel stays in step).  n == 0 is a barrier. */
void control_channel_confirm (struct control_channel *ch, const struct extent *ranges,
                              size_t n, control_channel_cb *cb, void *opaque,
                              uint64_t tag);
/* No request: cb runs (ok) once every request issued before has had its
 * callback, which lets a step wait for several replies at once. */
void control_channel_barrier (struct control_channel *ch, control_channel_cb *cb,
                              void *opaque, uint64_t tag);

#endif /* STM_SENDER_CONTROL_CHANNEL_H */
