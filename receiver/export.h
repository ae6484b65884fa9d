/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: serving the committed image over NBD (--export HOST:PORT).
 *
 * stm-recv can serve its output through an nbdkit (file plugin) with the
 * receiver's own TLS credentials, and announce its URI in COMMITTED; the
 * source's migrate filter then forwards the guest's I/O there (FLIP
 * forward).  The URI carries no credentials ("nbds://HOST:PORT/"): they
 * would name files on this host, and the sender adds its own
 * (docs/protocol.md).
 *
 * Starting nbdkit takes tens of milliseconds, too long for the commit,
 * which happens while the source is frozen.  So the export is started
 * early (the receiver starts it when a sender's HELLO is accepted) with a
 * gate in front of the image: nbdkit's error filter, which refuses every
 * data request (read, write, zero, trim, extents, cache) with EPERM while
 * a trigger file exists.  The gate file is created before nbdkit is, so
 * no request is ever served from an image that is not committed; opening
 * the gate at COMMIT is one unlink().  A client that connects early gets
 * through the NBD handshake (it learns the size) and then an error for
 * every request: refused, not held, so that no write queued before the
 * commit can land on the image after the guest moved there.
 *
 * nbdkit runs in the foreground as a child with --exit-with-parent, so it
 * never outlives stm-recv.  Nothing here blocks the loop, except
 * export_free at the end of the process: readiness (nbdkit's pidfile) is
 * polled by a timer, and exits are reaped by an ev_child watcher, which
 * also keeps the loop running while an nbdkit does.
 */
#ifndef STM_RECEIVER_EXPORT_H
#define STM_RECEIVER_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "receiver_options.h"

/* How long nbdkit may take to accept connections. */
#define EXPORT_START_TIMEOUT_S 10

struct export;

enum export_state {
  EXPORT_STOPPED,    /* no nbdkit: not started yet, failed to start, or exited */
  EXPORT_STARTING,   /* nbdkit started, not ready yet; the gate is closed */
  EXPORT_CLOSED,     /* ready, and every data request is refused */
  EXPORT_OPEN,       /* serving the image */
};

/* What the export tells its owner, always from the loop, never from
 * inside a call the owner made. */
struct export_hooks {
  /* STARTING -> CLOSED: nbdkit listens. */
  void (*ready) (void *opaque);
  /* STARTING -> STOPPED: nbdkit exited at start or did not become ready
   * in time (reported). */
  void (*failed) (void *opaque);
  /* CLOSED or OPEN -> STOPPED: nbdkit ended by itself (status is
   * waitpid's); was_open says whether it was serving the image. */
  void (*exited) (void *opaque, int status, bool was_open);
};

/* An export of opts->outputs on opts->export_host:opts->export_port, with
 * its gate closed and no nbdkit yet: one output is served as the default
 * export, several (a group) as one NBD export per disk, named by the disk,
 * all behind the one gate.  NULL after log_error. */
struct export *export_new (struct ev_loop *loop, const struct receiver_options *opts,
                           const struct export_hooks *hooks, void *opaque);

/* Start nbdkit, gate closed, unless one runs or is starting (then
 * nothing changes).  Returns at once: the ready or failed hook follows.
 * If an nbdkit told to go (export_relaunch) has not exited yet, the new
 * one starts once it has (it needs the port).  -1 after log_error, when
 * nbdkit could not even be started. */
int export_launch (struct export *e);

/* Open the gate: from now on nbdkit serves the image.  Only when CLOSED
 * (or already OPEN); -1 otherwise, or if the gate file cannot be
 * removed (reported). */
int export_open (struct export *e);

/* Close the gate: every data request from now on is refused.  Requests
 * already past the gate finish.  -1 if the gate file cannot be created
 * (reported): then nbdkit is stopped, since it could still serve. */
int export_close (struct export *e);

/* Close the gate and replace nbdkit with a fresh one, gated: every
 * client connected so far is disconnected, and what they had in flight
 * is over once the old nbdkit is reaped.  Returns at once. */
void export_relaunch (struct export *e);

enum export_state export_state (const struct export *e);

/* The address clients use ("nbds://HOST:PORT/"). */
const char *export_uri (const struct export *e);

/* The URI of output's disk (its index in opts->outputs): the address for
 * one output, the address and the disk's name for a group
 * ("nbds://HOST:PORT/NAME").  -1 if it does not fit in len. */
int export_disk_uri (const struct export *e, unsigned output, char *uri, size_t len);

/* Stop nbdkit (SIGTERM, then SIGKILL after a second; this waits),
 * remove the gate and free.  For the end of the process, or a receiver
 * that is finishing. */
void export_free (struct export *e);

/* Format the URI clients use for host:port ("nbds://HOST:PORT/", or
 * "nbd://" without TLS; an IPv6 host in brackets).  Pure, for tests. */
int export_format_uri (const char *host, uint16_t port, int tls,
                       char *uri, size_t urilen);

#endif /* STM_RECEIVER_EXPORT_H */
