/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: getting the receiver back after the connection to it is lost.
 *
 * A reconnect object connects again, with exponential backoff, without
 * blocking the loop, until its retry timeout has passed since the
 * connection was lost.  It knows nothing of the migration: it reports
 * through callbacks.  connected hands over a connected socket (the TLS
 * handshake and HELLO then run as for the first connection); waiting
 * says how long until the next attempt, for the progress report; gave_up
 * says the retry timeout has passed.  A failure of the new connection
 * before HELLO was answered is reported to reconnect_lost again, and the
 * next attempt follows under the same deadline; only reconnect_done (a
 * HELLO_REPLY) ends the outage.
 *
 * What the migration does when the receiver is lost (thaw the source,
 * release a throttle, abandon the pass in progress) is the migration's
 * business, not this object's: see receiver_lost in run.c.
 */
#ifndef STM_SENDER_RECONNECT_H
#define STM_SENDER_RECONNECT_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

struct addrinfo;

struct reconnect_callbacks {
  /* A new connection: fd is connected and now the caller's.  Returns -1
   * if it could not be used (reported by the caller; the fd is closed by
   * then), which ends the outage with gave_up. */
  int (*connected) (void *opaque, int fd);
  /* The next attempt starts in retry_in_ms; attempt counts from 1 in this
   * outage; reason says why the connection was lost (first attempt) or why
   * the last attempt failed; deadline is the Unix time retrying stops. */
  void (*waiting) (void *opaque, unsigned attempt, const char *reason,
                   uint64_t retry_in_ms, double deadline);
  /* The retry timeout passed: why, in a sentence naming the first
   * reason, the attempts and the last failure. */
  void (*gave_up) (void *opaque, const char *why);
  /* A new connection did not answer HELLO in time: the caller closes it
   * and calls reconnect_lost with reason, which carries on. */
  void (*hello_timed_out) (void *opaque, const char *reason);
};

struct reconnect {
  struct ev_loop *loop;
  const char *host;          /* --dest, resolved at each attempt */
  uint16_t port;
  const char *dest;          /* HOST:PORT as given, for messages */
  uint64_t retry_timeout_ns;
  uint64_t connect_timeout_ms;
  const struct reconnect_callbacks *cb;
  void *opaque;

  bool active;               /* lost, and not yet answered HELLO again */
  unsigned attempt;          /* connection attempts in this outage */
  uint64_t deadline_ns;      /* monotonic: no attempt starts after this */
  double deadline_unix;      /* the same, for events */
  char first_reason[512];    /* how the connection was lost */
  char last_reason[512];     /* why the last attempt failed */
  ev_timer timer;            /* the backoff wait, then the connect timeout */
  ev_io io;                  /* a non-blocking connect in progress */
  int fd;                    /* its socket, or -1 */
  struct addrinfo *addrs, *next_addr;
  unsigned reconnects;       /* outages survived, for messages */
  bool awaiting_hello;       /* connected: the timer bounds the handshake
                              * and HELLO */
};

/* A new connection must complete TLS and answer HELLO within this (or
 * what is left of the retry timeout, if less), or it is given up and the
 * next attempt follows. */
#define RECONNECT_HELLO_TIMEOUT_S 30.

void reconnect_init (struct reconnect *r, struct ev_loop *loop, const char *host,
                     uint16_t port, const char *dest, uint64_t retry_timeout_ns,
                     uint64_t connect_timeout_ms,
                     const struct reconnect_callbacks *cb, void *opaque);
/* The connection was lost for reason (a sentence): start an outage, or go
 * on with the one under way, and schedule the next attempt (or give up
 * if its deadline has passed).  The caller has closed the connection. */
void reconnect_lost (struct reconnect *r, const char *reason);
/* HELLO was answered: the outage (if any) is over. */
void reconnect_done (struct reconnect *r);
/* Stop every watcher and close a connect in progress. */
void reconnect_stop (struct reconnect *r);

#endif /* STM_SENDER_RECONNECT_H */
