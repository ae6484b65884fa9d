/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: reconnecting to the receiver (see reconnect.h).
 *
 * One attempt is: resolve the destination, then a non-blocking connect to
 * each address in turn, watched by an ev_io, bounded by a timer.  A
 * connected socket goes to the connected callback, and from there the TLS
 * handshake and HELLO run as for the first connection; if those fail for
 * a transient reason, reconnect_lost is called again and the next attempt
 * is scheduled under the same deadline.  Only a HELLO_REPLY ends the
 * outage (reconnect_done).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "reconnect.h"
#include "retry_policy.h"
#include "tcp.h"
#include "log.h"
#include "time_units.h"
#include "clock.h"


static void timer_cb (struct ev_loop *loop, ev_timer *w, int revents);
static void connect_cb (struct ev_loop *loop, ev_io *w, int revents);

void
reconnect_init (struct reconnect *r, struct ev_loop *loop, const char *host,
                uint16_t port, const char *dest, uint64_t retry_timeout_ns,
                uint64_t connect_timeout_ms,
                const struct reconnect_callbacks *cb, void *opaque)
{
  memset (r, 0, sizeof *r);
  r->loop = loop;
  r->host = host;
  r->port = port;
  r->dest = dest;
  r->retry_timeout_ns = retry_timeout_ns;
  r->connect_timeout_ms = connect_timeout_ms;
  r->cb = cb;
  r->opaque = opaque;
  r->fd = -1;
  ev_timer_init (&r->timer, timer_cb, 0., 0.);
  r->timer.data = r;
  ev_io_init (&r->io, connect_cb, 0, EV_WRITE);
  r->io.data = r;
}

/* Close the connect in progress (if any) and stop its watchers. */
static void
close_attempt (struct reconnect *r)
{
  ev_io_stop (r->loop, &r->io);
  ev_timer_stop (r->loop, &r->timer);
  r->awaiting_hello = false;
  if (r->fd >= 0) {
    close (r->fd);
    r->fd = -1;
  }
  if (r->addrs) {
    freeaddrinfo (r->addrs);
    r->addrs = r->next_addr = NULL;
  }
}

void
reconnect_stop (struct reconnect *r)
{
  close_attempt (r);
}

void
reconnect_done (struct reconnect *r)
{
  close_attempt (r);
  if (r->active)
    r->reconnects++;
  r->active = false;
  r->attempt = 0;
}

static void
give_up (struct reconnect *r)
{
  char why[1400];

  snprintf (why, sizeof why, "%s; the receiver at %s could not be reached again "
            "within --retry-timeout (%.0f s, %u attempts; the last: %s)",
            r->first_reason, r->dest, (double) r->retry_timeout_ns / NS_PER_S,
            r->attempt, r->last_reason);
  r->active = false;
  r->cb->gave_up (r->opaque, why);
}

/* Wait before the next attempt, or give up if the deadline has passed. */
static void
schedule (struct reconnect *r)
{
  uint64_t now = time_monotonic_ns ();

  close_attempt (r);
  if (now >= r->deadline_ns) {
    give_up (r);
    return;
  }
  r->attempt++;
  uint64_t wait_ms = retry_backoff_ms (r->attempt);
  uint64_t left_ms = deadline_left_at (r->deadline_ns, now) / NS_PER_MS;
  if (wait_ms > left_ms)
    wait_ms = left_ms;
  r->cb->waiting (r->opaque, r->attempt,
                  r->attempt == 1 ? r->first_reason : r->last_reason,
                  wait_ms, r->deadline_unix);
  ev_timer_set (&r->timer, wait_ms / 1000.0, 0.);
  ev_timer_start (r->loop, &r->timer);
}

static void attempt_failed (struct reconnect *r, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

static void
attempt_failed (struct reconnect *r, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (r->last_reason, sizeof r->last_reason, fmt, ap);
  va_end (ap);
  schedule (r);
}

/* Start a non-blocking connect to the next address; when none is left the
 * attempt has failed with err. */
static void
try_next_address (struct reconnect *r, int err)
{
  while (r->next_addr != NULL) {
    struct addrinfo *ai = r->next_addr;
    r->next_addr = ai->ai_next;
    int fd = tcp_connect_start (ai);
    if (fd >= 0) {
      uint64_t now = time_monotonic_ns ();
      double secs = r->connect_timeout_ms / 1000.0;
      double left = (double) deadline_left_at (r->deadline_ns, now) / NS_PER_S;
      if (left < secs)
        secs = left > 0.1 ? left : 0.1;
      r->fd = fd;
      ev_io_set (&r->io, fd, EV_WRITE);
      ev_io_start (r->loop, &r->io);
      ev_timer_stop (r->loop, &r->timer);
      ev_timer_set (&r->timer, secs, 0.);
      ev_timer_start (r->loop, &r->timer);
      return;
    }
    err = errno;
  }
  attempt_failed (r, "cannot connect to %s: %s", r->dest, strerror (err));
}

static void
start_attempt (struct reconnect *r)
{
  /* A name that does not resolve now may resolve later (the network is
   * what we are waiting for), so this is retried like the rest. */
  int e = tcp_resolve (r->host, r->port, &r->addrs);
  if (e != 0) {
    r->addrs = NULL;
    attempt_failed (r, "cannot resolve %s: %s", r->host,
                    tcp_resolve_strerror (e));
    return;
  }
  r->next_addr = r->addrs;
  try_next_address (r, EHOSTUNREACH);
}

/* The backoff wait ended (no socket yet), a connect timed out, or a new
 * connection did not answer HELLO in time. */
static void
timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct reconnect *r = w->data;

  if (r->awaiting_hello) {
    char reason[256];
    r->awaiting_hello = false;
    snprintf (reason, sizeof reason, "the receiver at %s did not answer HELLO "
              "within %.0f s", r->dest, RECONNECT_HELLO_TIMEOUT_S);
    r->cb->hello_timed_out (r->opaque, reason);
    return;
  }
  if (r->fd < 0) {
    start_attempt (r);
    return;
  }
  ev_io_stop (loop, &r->io);
  close (r->fd);
  r->fd = -1;
  if (r->next_addr != NULL)
    try_next_address (r, ETIMEDOUT);
  else
    attempt_failed (r, "cannot connect to %s: timed out", r->dest);
}

static void
connect_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct reconnect *r = w->data;
  int err = tcp_connect_finish (r->fd);

  ev_io_stop (loop, &r->io);
  if (err != 0) {
    close (r->fd);
    r->fd = -1;
    ev_timer_stop (loop, &r->timer);
    try_next_address (r, err);
    return;
  }

  int fd = r->fd;
  r->fd = -1;
  close_attempt (r);
  /* From here the caller owns the socket; the handshake and HELLO follow,
   * and their failures come back through reconnect_lost. */
  if (r->cb->connected (r->opaque, fd) == -1)
    return;
  /* Bound the handshake and HELLO, so that a receiver that accepts but
   * never answers cannot keep us past the retry timeout for long. */
  uint64_t now = time_monotonic_ns ();
  double secs = RECONNECT_HELLO_TIMEOUT_S;
  double left = (double) deadline_left_at (r->deadline_ns, now) / NS_PER_S;
  if (left < secs)
    secs = left > 1. ? left : 1.;
  r->awaiting_hello = true;
  ev_timer_set (&r->timer, secs, 0.);
  ev_timer_start (r->loop, &r->timer);
}

void
reconnect_lost (struct reconnect *r, const char *reason)
{
  if (!r->active) {
    r->active = true;
    r->attempt = 0;
    r->deadline_ns = deadline_after_ns (r->retry_timeout_ns);
    r->deadline_unix = time_unix_now () + (double) r->retry_timeout_ns / NS_PER_S;
    snprintf (r->first_reason, sizeof r->first_reason, "%s", reason);
  }
  snprintf (r->last_reason, sizeof r->last_reason, "%s", reason);
  schedule (r);
}
