/* stm-send: getting the receiver back after the connection to it is lost.
 *
 * When the connection ends for a reason that may go away (see
 * retry_policy.h), the migration does not fail: the source is thawed first
 * if it was frozen (the guest is never held while we wait), the pass in
 * progress is abandoned (what it sent but did not see durable stays
 * unconfirmed in the filter), and reconnect.c connects again with
 * exponential backoff, without blocking the loop, until --retry-timeout
 * has passed since the connection was lost.  A new connection sends HELLO
 * with the same migration id; migration.c handles the reply (RESUME or
 * NEW) and starts a new pass of what is not durable plus what was dirtied.
 */
#ifndef STM_SENDER_RECONNECT_H
#define STM_SENDER_RECONNECT_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

struct migration;
struct addrinfo;

struct reconnect_state {
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
 * what is left of --retry-timeout, if less), or it is given up and the
 * next attempt follows. */
#define RECONNECT_HELLO_TIMEOUT_S 30.

void reconnect_init (struct migration *m);
/* The receiver connection is gone (already closed, m->conn NULL) or must
 * be given up (it is closed here).  message says what happened, with the
 * receiver's address and where the migration was.  When transient and
 * retrying is allowed, thaw if frozen and schedule an attempt; otherwise
 * fail the migration with message. */
void reconnect_lost (struct migration *m, bool transient, const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));
/* HELLO was answered: the outage (if any) is over. */
void reconnect_done (struct migration *m);
/* Stop every watcher and close a connect in progress. */
void reconnect_stop (struct migration *m);

#endif /* STM_SENDER_RECONNECT_H */
