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
  case PHASE_COMMITTING: snprintf (buf, len, "while committing"); break;
  case PHASE_RECORDING:
    snprintf (buf, len, "after the flip, while the receiver records it");
    break;
  case PHASE_DONE: snprintf (buf, len, "after the flip"); break;
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
  return phase_is_final (m->phase);
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

int
migration_confirm_up_to (struct migration *m, uint64_t seq)
{
  size_t n = sync_ledger_count_up_to (&m->ledger, seq), done = 0;
  int r = 0;
  while (done < n) {
    const struct pending_sync *s = &m->ledger.pending[done];
    done++;
    if (control_confirm_ranges (m->control, s->ranges.items, s->ranges.len) == -1) {
      char where[64];
      migration_fail (m, "cannot confirm durable data to the filter at %s %s: %s",
                    m->opts->control_path, migration_where (m, where, sizeof where),
                    control_client_error (m->control));
      r = -1;
      break;
    }
  }
  sync_ledger_retire (&m->ledger, done);
  return r;
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
  if (m->phase == PHASE_DONE || m->phase == PHASE_FAILED)
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

void
migration_fail (struct migration *m, const char *fmt, ...)
{
  char msg[1024], state[1024];
  va_list ap;

  if (m->phase == PHASE_DONE || m->phase == PHASE_FAILED)
    return;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);

  if (m->cut.flipped) {
    flipped_but_unrecorded (m, msg);
    return;
  }
  migration_set_phase (m, PHASE_FAILED);
  m->exit_code = 1;

  const char *short_state = "thawed";
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
    control_client_close (m->control);
    m->control = NULL;
    m->cut.frozen = false;
  }
  else if (m->cut.frozen) {
    if (m->control && !control_client_is_broken (m->control) &&
        control_thaw (m->control) == 0)
      m->cut.frozen = false;
    else {
      snprintf (state, sizeof state,
                "THAW through the filter at %s failed (%s); the filter thaws the "
                "source by itself when this control connection closes, which "
                "happens now, and the source remains authoritative",
                m->opts->control_path,
                m->control ? control_client_error (m->control) : "no connection");
      short_state = "thawing";
      control_client_close (m->control);
      m->control = NULL;
    }
  }

  /* A throttle we set must not outlive the migration.  If the control
   * connection is gone, the filter released it when the connection
   * closed. */
  if (m->policy.throttle != 0) {
    if (m->control && !control_client_is_broken (m->control) &&
        control_throttle (m->control, 0) == -1) {
      size_t n = strlen (state);
      snprintf (state + n, sizeof state - n,
                "; releasing the guest write throttle failed (%s), which the "
                "filter does by itself when this control connection closes, "
                "which happens now", control_client_error (m->control));
      control_client_close (m->control);
      m->control = NULL;
    }
    else {
      size_t n = strlen (state);
      snprintf (state + n, sizeof state - n, "; the guest write throttle is released");
    }
    m->policy.throttle = 0;
  }

  progress_clear (&m->progress);
  log_error ("%s; %s", msg, state);
  progress_error (&m->progress, msg, short_state);

  /* Tell the receiver we give up, so it does not wait for more: first,
   * if it may hold a prepared commit and the source is known to be
   * thawed, that its copy is superseded. */
  if (m->conn) {
    uint8_t frame[WIRE_ENCODE_TEXT_MAX];
    if (m->cut.commit_seq != 0 && !m->cut.flip_in_flight)
      stm_conn_send (m->conn, frame,
                     wire_encode_outcome (frame, m->cut.commit_seq, WIRE_OUTCOME_THAWED),
                     NULL, 0);
    stm_conn_send (m->conn, frame, wire_encode_abort (frame, WIRE_ERR_ABORTED, msg),
                   NULL, 0);
  }
  migration_finish (m);
}


