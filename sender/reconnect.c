/* stm-send: reconnecting to the receiver (see reconnect.h).
 *
 * One attempt is: resolve --dest, then a non-blocking connect to each
 * address in turn, watched by an ev_io, bounded by a timer.  A connected
 * socket goes to migration_attach_receiver, and from there the TLS
 * handshake and HELLO run as for the first connection; if those fail for a
 * transient reason, reconnect_lost is called again and the next attempt is
 * scheduled under the same deadline.  Only a HELLO_REPLY ends the outage
 * (reconnect_done).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cutover.h"
#include "log.h"
#include "migration.h"
#include "reconnect.h"
#include "retry_policy.h"
#include "tcp.h"

#define NS_PER_S 1000000000u
#define NS_PER_MS 1000000u

static void timer_cb (struct ev_loop *loop, ev_timer *w, int revents);
static void connect_cb (struct ev_loop *loop, ev_io *w, int revents);

void
reconnect_init (struct migration *m)
{
  struct reconnect_state *rc = &m->rc;
  memset (rc, 0, sizeof *rc);
  rc->fd = -1;
  ev_timer_init (&rc->timer, timer_cb, 0., 0.);
  rc->timer.data = m;
  ev_io_init (&rc->io, connect_cb, 0, EV_WRITE);
  rc->io.data = m;
}

/* Close the connect in progress (if any) and stop its watchers. */
static void
close_attempt (struct migration *m)
{
  struct reconnect_state *rc = &m->rc;
  ev_io_stop (m->loop, &rc->io);
  ev_timer_stop (m->loop, &rc->timer);
  rc->awaiting_hello = false;
  if (rc->fd >= 0) {
    close (rc->fd);
    rc->fd = -1;
  }
  if (rc->addrs) {
    freeaddrinfo (rc->addrs);
    rc->addrs = rc->next_addr = NULL;
  }
}

void
reconnect_stop (struct migration *m)
{
  close_attempt (m);
}

void
reconnect_done (struct migration *m)
{
  struct reconnect_state *rc = &m->rc;
  close_attempt (m);
  if (rc->active)
    rc->reconnects++;
  rc->active = false;
  rc->attempt = 0;
}

/* Forget the pass in progress.  Nothing of it needs remembering here: what
 * it sent and never saw durable is still unconfirmed in the filter, and
 * RESUME (or RESET) on the next connection makes it dirty again.  Reads
 * still in flight are for that pass; they are delivered in order before any
 * later read, so the next stale_reads deliveries are dropped. */
static void
abandon_pass (struct migration *m)
{
  m->stale_reads = m->reader ? source_reader_in_flight (m->reader) : 0;
  m->final_pass = false;
  m->all_issued = true;
  m->pass_ended = true;
  m->output_blocked = false;
  if (m->rate_blocked) {
    ev_timer_stop (m->loop, &m->rate_timer);
    m->rate_blocked = false;
  }
  sync_ledger_forget_unsynced (&m->ledger);
}

static void
give_up (struct migration *m)
{
  struct reconnect_state *rc = &m->rc;
  cutover_fail (m, "%s; the receiver at %s could not be reached again within "
                "--retry-timeout (%.0f s, %u attempts; the last: %s)",
                rc->first_reason, m->opts->dest,
                (double) m->opts->retry_timeout_ns / NS_PER_S, rc->attempt,
                rc->last_reason);
}

/* Wait before the next attempt, or give up if the deadline has passed. */
static void
schedule (struct migration *m)
{
  struct reconnect_state *rc = &m->rc;
  uint64_t now = time_monotonic_ns ();

  close_attempt (m);
  if (now >= rc->deadline_ns) {
    give_up (m);
    return;
  }
  rc->attempt++;
  uint64_t wait_ms = retry_backoff_ms (rc->attempt);
  uint64_t left_ms = (rc->deadline_ns - now) / NS_PER_MS;
  if (wait_ms > left_ms)
    wait_ms = left_ms;
  progress_reconnecting (&m->progress, m->opts->dest, rc->attempt,
                         rc->attempt == 1 ? rc->first_reason : rc->last_reason,
                         wait_ms, rc->deadline_unix, "tracking");
  ev_timer_set (&rc->timer, wait_ms / 1000.0, 0.);
  ev_timer_start (m->loop, &rc->timer);
}

static void attempt_failed (struct migration *m, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

static void
attempt_failed (struct migration *m, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (m->rc.last_reason, sizeof m->rc.last_reason, fmt, ap);
  va_end (ap);
  schedule (m);
}

/* Start a non-blocking connect to the next address; when none is left the
 * attempt has failed with err. */
static void
try_next_address (struct migration *m, int err)
{
  struct reconnect_state *rc = &m->rc;

  while (rc->next_addr != NULL) {
    struct addrinfo *ai = rc->next_addr;
    rc->next_addr = ai->ai_next;
    int fd = tcp_connect_start (ai);
    if (fd >= 0) {
      uint64_t now = time_monotonic_ns ();
      double secs = MIGRATION_CONNECT_TIMEOUT_MS / 1000.0;
      double left = rc->deadline_ns > now
        ? (double) (rc->deadline_ns - now) / NS_PER_S : 0.;
      if (left < secs)
        secs = left > 0.1 ? left : 0.1;
      rc->fd = fd;
      ev_io_set (&rc->io, fd, EV_WRITE);
      ev_io_start (m->loop, &rc->io);
      ev_timer_stop (m->loop, &rc->timer);
      ev_timer_set (&rc->timer, secs, 0.);
      ev_timer_start (m->loop, &rc->timer);
      return;
    }
    err = errno;
  }
  attempt_failed (m, "cannot connect to %s: %s", m->opts->dest, strerror (err));
}

static void
start_attempt (struct migration *m)
{
  struct reconnect_state *rc = &m->rc;

  /* A name that does not resolve now may resolve later (the network is
   * what we are waiting for), so this is retried like the rest. */
  int r = tcp_resolve (m->opts->dest_host, m->opts->dest_port, &rc->addrs);
  if (r != 0) {
    rc->addrs = NULL;
    attempt_failed (m, "cannot resolve %s: %s", m->opts->dest_host,
                    tcp_resolve_strerror (r));
    return;
  }
  rc->next_addr = rc->addrs;
  try_next_address (m, EHOSTUNREACH);
}

/* The backoff wait ended (no socket yet), or a connect timed out. */
static void
timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;
  struct reconnect_state *rc = &m->rc;

  if (rc->awaiting_hello) {
    char where[64];
    rc->awaiting_hello = false;
    reconnect_lost (m, true, "the receiver at %s did not answer HELLO within %.0f s "
                    "(%s)", m->opts->dest, RECONNECT_HELLO_TIMEOUT_S,
                    migration_where (m, where, sizeof where));
    return;
  }
  if (rc->fd < 0) {
    start_attempt (m);
    return;
  }
  ev_io_stop (loop, &rc->io);
  close (rc->fd);
  rc->fd = -1;
  if (rc->next_addr != NULL)
    try_next_address (m, ETIMEDOUT);
  else
    attempt_failed (m, "cannot connect to %s: timed out", m->opts->dest);
}

static void
connect_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct migration *m = w->data;
  struct reconnect_state *rc = &m->rc;
  int err = tcp_connect_finish (rc->fd);

  ev_io_stop (loop, &rc->io);
  if (err != 0) {
    close (rc->fd);
    rc->fd = -1;
    ev_timer_stop (loop, &rc->timer);
    try_next_address (m, err);
    return;
  }

  int fd = rc->fd;
  rc->fd = -1;
  close_attempt (m);
  /* From here the transport owns the socket; the handshake and HELLO
   * follow, and their failures come back through reconnect_lost. */
  if (migration_attach_receiver (m, fd) == -1) {
    cutover_fail (m, "%s; cannot set up a new connection to the receiver at %s",
                  rc->first_reason, m->opts->dest);
    return;
  }
  /* Bound the handshake and HELLO, so that a receiver that accepts but
   * never answers cannot keep us past --retry-timeout for long. */
  uint64_t now = time_monotonic_ns ();
  double secs = RECONNECT_HELLO_TIMEOUT_S;
  double left = rc->deadline_ns > now ? (double) (rc->deadline_ns - now) / NS_PER_S : 0.;
  if (left < secs)
    secs = left > 1. ? left : 1.;
  rc->awaiting_hello = true;
  ev_timer_set (&rc->timer, secs, 0.);
  ev_timer_start (m->loop, &rc->timer);
}

void
reconnect_lost (struct migration *m, bool transient, const char *fmt, ...)
{
  struct reconnect_state *rc = &m->rc;
  char msg[512];
  va_list ap;

  if (m->phase == PHASE_DONE || m->phase == PHASE_FAILED)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);

  if (!transient || m->opts->retry_timeout_ns == 0) {
    if (rc->active)
      cutover_fail (m, "%s (while reconnecting after: %s)", msg, rc->first_reason);
    else
      cutover_fail (m, "%s", msg);
    return;
  }
  /* Already waiting for the next attempt: nothing more to do. */
  if (m->phase == PHASE_RECONNECTING)
    return;

  if (m->conn) {
    struct stm_conn *conn = m->conn;
    m->conn = NULL;
    stm_conn_close (conn);
  }
  if (!rc->active) {
    rc->active = true;
    rc->attempt = 0;
    rc->deadline_ns = time_monotonic_ns () + m->opts->retry_timeout_ns;
    rc->deadline_unix = time_unix_now () + (double) m->opts->retry_timeout_ns / NS_PER_S;
    snprintf (rc->first_reason, sizeof rc->first_reason, "%s", msg);
  }
  snprintf (rc->last_reason, sizeof rc->last_reason, "%s", msg);

  /* Never hold the guest while waiting for the network.  If THAW fails we
   * give up with the original reason alone: cutover_fail thaws (or closes
   * the control connection, which thaws) and says in what state the source
   * is left, so naming the failure here as well would report it twice. */
  if (m->frozen) {
    if (control_thaw (m->control) == -1) {
      cutover_fail (m, "%s", msg);
      return;
    }
    m->frozen = false;
    ev_timer_stop (m->loop, &m->overrun_timer);
  }
  /* Nor slow its writes while nothing is being copied: convergence starts
   * over after the reconnect. */
  if (m->policy.throttle != 0) {
    /* As for THAW above: cutover_fail releases it and reports a failure. */
    if (control_throttle (m->control, 0) == -1) {
      cutover_fail (m, "%s", msg);
      return;
    }
    m->policy.throttle = 0;
    m->policy.best_dirty = UINT64_MAX;
    m->policy.stalled = 0;
  }
  abandon_pass (m);
  m->phase = PHASE_RECONNECTING;
  schedule (m);
}
