/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the state every part of a migration shares, and what they all
 * use on it: phase changes (phase.h), messages to the receiver, SYNC and
 * CONFIRM (through the sync ledger), the failure path and both ends.
 *
 * The failure path belongs to the migration, not to the cutover: any part
 * may fail (a source read, the control socket, the receiver), and
 * migration_fail is the one way out without a flip.  It reports the
 * failure once with the state the source is left in, thaws a source
 * frozen by this process (or closes the control connection, on which the
 * filter thaws by itself), releases a throttle it set, tells the receiver
 * (OUTCOME thawed after a COMMIT, then ABORT) and ends the loop.  After
 * the flip there is no failing any more: the source has moved to the
 * destination, and what may still go wrong is only the receiver's record
 * (migration_complete).
 *
 * This file calls nothing above it (pass.c, cutover.c, run.c): a lost
 * receiver is reported through m->receiver_lost, which run.c sets.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convergence.h"
#include "log.h"
#include "migration.h"
#include "time_units.h"


const char *
migration_where (const struct migration *m, char *buf, size_t len)
{
  switch (m->phase) {
  case PHASE_RECONNECTING: snprintf (buf, len, "while reconnecting"); break;
  case PHASE_CONNECTING: snprintf (buf, len, "while connecting"); break;
  case PHASE_HELLO: snprintf (buf, len, "during the handshake"); break;
  case PHASE_PASS:
  case PHASE_PASS_SYNC:
    if (m->cur.final_pass)
      snprintf (buf, len, "during the final pass (%" PRIu32 ")", m->cur.pass);
    else
      snprintf (buf, len, "during pass %" PRIu32, m->cur.pass);
    break;
  case PHASE_PREPARING:
    snprintf (buf, len, "before pass %" PRIu32, m->cur.pass + 1);
    break;
  case PHASE_DECIDING:
    snprintf (buf, len, "at the end of pass %" PRIu32, m->cur.pass);
    break;
  case PHASE_READY:
    snprintf (buf, len, "while ready to cut over, after pass %" PRIu32, m->cur.pass);
    break;
  case PHASE_FREEZING: snprintf (buf, len, "while freezing the source"); break;
  case PHASE_CHECKING:
    snprintf (buf, len, "at the end of the final pass (%" PRIu32 ")", m->cur.pass);
    break;
  case PHASE_COMMITTING: snprintf (buf, len, "while committing"); break;
  case PHASE_FLIPPING: snprintf (buf, len, "while flipping the source"); break;
  case PHASE_RECORDING:
    snprintf (buf, len, "after the flip, while the receiver records it");
    break;
  case PHASE_DONE: snprintf (buf, len, "after the flip"); break;
  case PHASE_FAILING:
  case PHASE_FAILED: snprintf (buf, len, "after a failure"); break;
  case PHASE_COUNT: assert (!"PHASE_COUNT is not a phase"); break;
  }
  return buf;
}

void
migration_set_phase (struct migration *m, enum migration_phase to)
{
  if (!phase_transition_ok (m->phase, to)) {
    log_error ("internal error: stm-send went from phase %s to %s, which "
               "phase.h does not allow", phase_name (m->phase), phase_name (to));
    assert (!"illegal phase transition");
  }
  m->phase = to;
}

bool
migration_ended (const struct migration *m)
{
  return phase_is_over (m->phase);
}

bool
migration_reply_current (const struct migration *m, uint64_t tag,
                         enum migration_phase want)
{
  return tag == m->ctl_epoch && m->phase == want;
}

static double
pass_rate (const struct migration *m, uint64_t now)
{
  uint64_t ns = now - m->cur.pass_start_ns;
  return ns ? (double) m->cur.pass_done * NS_PER_S / ns : 0;
}

void
migration_sample (const struct migration *m, struct progress_sample *s, uint64_t now)
{
  s->pass = m->cur.pass;
  s->final = m->cur.final_pass;
  s->pass_bytes = m->cur.pass_bytes;
  s->pass_done = m->cur.pass_done;
  s->bytes_sent = m->meas.bytes_sent;
  s->dirty_bytes = m->meas.dirty_bytes;
  s->rate = pass_rate (m, now);
}

int
migration_send (struct migration *m, const uint8_t *frame, size_t len,
                const void *payload, size_t payload_len)
{
  char where[64], reason[256];
  if (m->conn == NULL ||
      stm_conn_send (m->conn, frame, len, payload, payload_len) == -1) {
    snprintf (reason, sizeof reason, "cannot send to the receiver at %s %s",
              m->opts->dest, migration_where (m, where, sizeof where));
    m->receiver_lost (m, true, reason);
    return -1;
  }
  return 0;
}

int
migration_send_msg (struct migration *m, const uint8_t *frame, size_t len)
{
  if (m->conn == NULL && m->phase == PHASE_RECONNECTING)
    return -1;          /* already waiting to connect again */
  return migration_send (m, frame, len, NULL, 0);
}

/* ---- SYNC bookkeeping ---------------------------------------------- */

uint64_t
migration_send_sync (struct migration *m, bool ends_pass, bool commit)
{
  uint64_t seq = sync_ledger_cut (&m->ledger, m->size, m->block, ends_pass,
                                  time_monotonic_ns ());
  if (seq == 0) {
    migration_fail (m, "out of memory");
    return 0;
  }
  uint8_t frame[WIRE_ENCODE_MAX];
  size_t len = commit ? wire_encode_commit (frame, seq) : wire_encode_sync (frame, seq);
  if (migration_send_msg (m, frame, len) == -1)
    return 0;
  return seq;
}

static void
confirm_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  char where[64];

  /* A refused CONFIRM fails the migration whenever it comes: the filter
   * would hand those blocks out again, and a flip needs them confirmed. */
  if (!r->ok)
    migration_fail (m, "cannot confirm durable data to the filter at %s %s: %s",
                    m->opts->control_path, migration_where (m, where, sizeof where),
                    r->error);
}

void
migration_confirm_up_to (struct migration *m, uint64_t seq)
{
  size_t n = sync_ledger_count_up_to (&m->ledger, seq);

  /* The ranges are copied into the requests: the ledger lets them go. */
  for (size_t i = 0; i < n; i++) {
    const struct pending_sync *s = &m->ledger.pending[i];
    if (s->ranges.len > 0)
      control_channel_confirm (m->ctl, s->ranges.items, s->ranges.len,
                               confirm_replied, m, m->ctl_epoch);
  }
  sync_ledger_retire (&m->ledger, n);
}

/* ---- the end ------------------------------------------------------- */




static void
exit_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  /* The receiver did not take our last messages in time: stop waiting. */
  ev_break (loop, EVBREAK_ALL);
}

void
migration_finish (struct migration *m)
{
  /* Give the transport a few seconds to flush ABORT or the last bytes; the
   * timer does not by itself keep the loop running. */
  if (m->finished != NULL)
    m->finished (m);
  ev_timer_init (&m->exit_timer, exit_timer_cb, 5., 0.);
  ev_timer_start (m->loop, &m->exit_timer);
  ev_unref (m->loop);

  ev_timer_stop (m->loop, &m->rate_timer);
  ev_timer_stop (m->loop, &m->tick_timer);
  ev_timer_stop (m->loop, &m->overrun_timer);
  ev_timer_stop (m->loop, &m->midpass_timer);
  ev_signal_stop (m->loop, &m->sigint_watcher);
  ev_signal_stop (m->loop, &m->sigterm_watcher);
  reconnect_stop (&m->rc);
  /* A STATUS still in flight would keep the loop alive for nothing. */
  status_poller_close (m->poller);
  /* Nothing the migration still asks the filter matters now; closing the
   * owning connection is also what releases it in the filter. */
  if (m->ctl != NULL)
    control_channel_disconnect (m->ctl);
  m->poller = NULL;
  if (m->reader)
    source_reader_stop (m->reader);
  if (m->conn) {
    struct stm_conn *conn = m->conn;
    m->conn = NULL;
    stm_conn_close_after_flush (conn);
  }
}

/* ---- the failure path and the end after a flip --------------------- */

void
migration_complete (struct migration *m, const char *recorded)
{
  if (migration_ended (m))
    return;
  assert (m->cut.flipped);
  migration_set_phase (m, PHASE_DONE);
  m->exit_code = 0;
  progress_done (&m->progress, m->meas.bytes_sent, m->cur.pass, m->cut.downtime_ms,
                 (double) (time_monotonic_ns () - m->meas.start_ns) / NS_PER_S,
                 recorded);
  migration_finish (m);
}

/* A failure after the flip: the source has flipped and the destination is
 * authoritative, so stm-send succeeds; what failed is only the receiver's
 * record, which a later run completes. */
static void
flipped_but_unrecorded (struct migration *m, const char *msg)
{
  progress_clear (&m->progress);
  log_warning ("%s; the source has flipped to %s, which is authoritative now, but "
               "the receiver did not confirm that it recorded the migration as "
               "final (its state file may still say prepared): run stm-send again "
               "with the same arguments to record it", msg, m->opts->dest);
  migration_complete (m, "prepared");
}

/* The failure path's requests have been answered (or have failed):
 * report the failure with the state the source is left in, tell the
 * receiver, and end. */
static void
failure_end (struct migration *m)
{
  struct failure_state *f = &m->fail;
  char state[1024];
  const char *short_state = "thawed";
  bool close_now = false;

  snprintf (state, sizeof state, m->cut.freeze_ns != 0
            ? "the source is thawed and remains authoritative"
            : "the source was never frozen and remains authoritative");
  if (m->cut.flip_in_flight) {
    /* FLIP went out and its reply never came, and a new connection could
     * not read the source's state (flip_outcome_from_status): the filter
     * may have flipped (it is final) or may have thawed when the
     * connection broke.  Claim neither, and do not exit 1, which would
     * say the source is serving. */
    snprintf (state, sizeof state,
              "the control connection broke while FLIP was in flight, so whether "
              "the source was flipped is unknown: check STATUS on %s (state=tracking: "
              "the source is thawed and authoritative; fenced or forwarding: the "
              "flip happened and the destination is authoritative)",
              m->opts->control_path);
    short_state = "unknown";
    m->exit_code = STM_SEND_EXIT_UNKNOWN;
    close_now = true;
    m->cut.frozen = false;
  }
  else if (m->cut.frozen) {
    snprintf (state, sizeof state,
              "THAW through the filter at %s failed (%s); the filter thaws the "
              "source by itself when this control connection closes, which "
              "happens now, and the source remains authoritative",
              m->opts->control_path, f->thaw_error[0] ? f->thaw_error
              : control_channel_broken_by (m->ctl));
    short_state = "thawing";
    close_now = true;
  }
  /* A throttle we set must not outlive the migration.  If the control
   * connection is gone, the filter released it when the connection
   * closed. */
  if (f->throttle_asked) {
    size_t n = strlen (state);
    if (f->throttle_failed) {
      snprintf (state + n, sizeof state - n,
                "; releasing the guest write throttle failed (%s), which the "
                "filter does by itself when this control connection closes, "
                "which happens now", f->throttle_error);
      close_now = true;
    }
    else
      snprintf (state + n, sizeof state - n, "; the guest write throttle is released");
  }
  if (close_now)
    control_channel_disconnect (m->ctl);

  migration_set_phase (m, PHASE_FAILED);
  progress_clear (&m->progress);
  log_error ("%s; %s", f->msg, state);
  progress_error (&m->progress, f->msg, short_state);

  /* Tell the receiver we give up, so it does not wait for more: first,
   * if it may hold a prepared commit and the source is known to be
   * thawed, that its copy is superseded. */
  if (m->conn) {
    uint8_t frame[WIRE_ENCODE_TEXT_MAX];
    if (m->cut.commit_seq != 0 && !m->cut.flip_in_flight)
      stm_conn_send (m->conn, frame,
                     wire_encode_outcome (frame, m->cut.commit_seq, WIRE_OUTCOME_THAWED),
                     NULL, 0);
    stm_conn_send (m->conn, frame, wire_encode_abort (frame, WIRE_ERR_ABORTED, f->msg),
                   NULL, 0);
  }
  migration_finish (m);
}

static void
failure_thawed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (r->ok)
    m->cut.frozen = false;
  else
    snprintf (m->fail.thaw_error, sizeof m->fail.thaw_error, "%s", r->error);
}

static void
failure_unthrottled (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (!r->ok && !r->broken) {
    m->fail.throttle_failed = true;
    snprintf (m->fail.throttle_error, sizeof m->fail.throttle_error, "%s", r->error);
  }
}

static void
failure_answered (void *opaque, uint64_t tag, const struct control_reply *r)
{
  failure_end (opaque);
}

void
migration_fail (struct migration *m, const char *fmt, ...)
{
  va_list ap;

  if (migration_ended (m))
    return;

  va_start (ap, fmt);
  vsnprintf (m->fail.msg, sizeof m->fail.msg, fmt, ap);
  va_end (ap);

  if (m->cut.flipped) {
    flipped_but_unrecorded (m, m->fail.msg);
    return;
  }
  migration_set_phase (m, PHASE_FAILING);
  m->exit_code = 1;
  ev_timer_stop (m->loop, &m->overrun_timer);
  ev_timer_stop (m->loop, &m->midpass_timer);

  /* The source must not stay frozen or throttled: ask, and end only once
   * the filter has answered (or the channel's timeout has broken it, and
   * closing it thaws).  A call-off's THAW already in flight counts. */
  if (!m->cut.flip_in_flight && !control_channel_is_broken (m->ctl)) {
    if (m->cut.frozen && !m->cut.thaw_in_flight)
      control_channel_thaw (m->ctl, failure_thawed, m, m->ctl_epoch);
    if (m->policy.throttle != 0) {
      m->fail.throttle_asked = true;
      control_channel_throttle (m->ctl, 0, failure_unthrottled, m, m->ctl_epoch);
    }
  }
  else if (m->policy.throttle != 0)
    m->fail.throttle_asked = true;  /* released by the connection's close */
  m->policy.throttle = 0;
  if (control_channel_pending (m->ctl) > 0)
    control_channel_barrier (m->ctl, failure_answered, m, m->ctl_epoch);
  else
    failure_end (m);
}
