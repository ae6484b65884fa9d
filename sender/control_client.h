/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: a blocking client for the migrate filter's control socket,
 * for the start-up checks made before the event loop runs (run.c); its
 * socket is then handed to the asynchronous control channel
 * (control_channel.h), which makes every request while the loop runs.
 * It also holds the pure STATUS parser and the freeze timeout rule both
 * use.
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

#include <stdbool.h>
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
  char owner[16];            /* who owns the migration: you, other, none */
  uint64_t write_bytes;      /* guest bytes written so far (informative) */
  uint64_t writes;           /* guest write requests so far (informative) */
  uint64_t throttle;         /* guest write throttle, bytes/s, 0 = off */
  uint64_t freeze_timeout_ms; /* the filter's migrate-freeze-timeout */
  char migration[40];         /* whose destination the tracking follows
                                 (STATUS migration=): 32 hex digits, or
                                 "none" or "unknown" */
  char instance[40];          /* the filter's instance id, 32 hex digits */
};

/* What FREEZE and FLIP may take beyond the filter's freeze timeout before
 * the client stops waiting for their reply. */
#define CONTROL_CLIENT_FREEZE_MARGIN_MS 10000

/* Connect to the Unix socket at path; replies must arrive within
 * timeout_ms.  Returns NULL with *errbuf filled on failure. */
struct control_client *control_client_connect (const char *path,
                                               unsigned timeout_ms,
                                               char *errbuf, size_t errlen);
void control_client_close (struct control_client *c);
/* The reason for the last failure, as a sentence. */
const char *control_client_error (const struct control_client *c);
/* Did the last failure come from the connection itself (closed, timed
 * out) rather than an ERR reply?  Then no later command can work. */
int control_client_is_broken (const struct control_client *c);
/* FREEZE and FLIP may legitimately run for up to the filter's
 * migrate-freeze-timeout (draining, flushing, connecting to the
 * destination) and FREEZE for twice that (its flush before the gate
 * closes is bounded by it too), which the user may set longer than the
 * reply timeout given to control_client_connect.  Wait for their replies
 * up to 2 * freeze_timeout_ms + CONTROL_CLIENT_FREEZE_MARGIN_MS, never
 * less than that reply timeout. */
void control_client_set_freeze_timeout (struct control_client *c,
                                        uint64_t freeze_timeout_ms);
int control_status (struct control_client *c, struct control_status *st);
/* MIRROR START: a ring of ring_bytes, whose writers wait at most
 * timeout_ms for room when it is full (and, when sync, for the
 * destination to have their write durable: mirror-sync); its three
 * descriptors (area, consumer page, eventfd) in fds, which the caller
 * then owns. */
#define CONTROL_CLIENT_MAX_FDS 3
int control_client_mirror_start (struct control_client *c, uint64_t ring_bytes,
                                 bool sync, uint64_t timeout_ms, int fds[3]);
/* Parse a STATUS reply line (pure; the asynchronous status poller uses it
 * too).  -1 with why set, for an ERR reply or one without a field the
 * sender needs. */
int control_status_parse (const char *line, struct control_status *st,
                          char *why, size_t len);
/* A SNAPSHOT's extent list is bounded (control_channel.c): at most
 * CONTROL_SNAPSHOT_MAX_EXTENTS extents (2 MiB of list at most, with its
 * growth): a snapshot of more, scattered over a large image, has its
 * shortest clean gaps bridged (from CONTROL_SNAPSHOT_MIN_BRIDGE bytes,
 * doubling), so the pass sends some clean blocks again rather than the
 * sender's memory growing with the image. */
#define CONTROL_SNAPSHOT_MAX_EXTENTS (64u * 1024)
#define CONTROL_SNAPSHOT_MIN_BRIDGE (64u * 1024)
/* The errno an ERR reply names (EBUSY, ENOTSUP, EAGAIN, EPERM, ESTALE),
 * EPROTO for any other name.  Pure; the control channel uses it too. */
int control_errno_of (const char *ename, size_t elen);
/* Hand the connection over (control_channel.h): the socket, with the
 * client keeping no claim on it (control_client_close then only frees).
 * -1 if the connection is broken or holds unread bytes. */
int control_client_release_fd (struct control_client *c);
/* The reply timeout for FREEZE and FLIP, as set_freeze_timeout left it. */
unsigned control_client_slow_timeout_ms (const struct control_client *c);

#endif /* STM_SENDER_CONTROL_CLIENT_H */
