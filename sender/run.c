/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: running one migration: set-up, the connection to the
 * receiver and what it says, the timers and the signals, and what the
 * migration does when it loses the receiver.
 *
 * Everything runs on one libev loop: the receiver connection (proto/
 * tls_transport.h), the source reads (pass.c), a rate timer, a one-second
 * tick for progress and keepalives, the reconnect object (reconnect.h) and
 * the signal watchers.  The receiver's messages are dispatched here:
 * HELLO_REPLY starts (or resumes) the passes, DURABLE confirms and ends a
 * pass (then cutover.c decides), COMMITTED and RECORDED drive the cutover
 * to its end.  This is the top of the sender: it calls cutover.c, pass.c,
 * reconnect.c and migration.c, and none of them calls it.
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
#include <unistd.h>

#include "convergence.h"
#include "cutover.h"
#include "commands.h"
#include "forward_target.h"
#include "log.h"
#include "migration_id.h"
#include "pass.h"
#include "ready.h"
#include "report_sink.h"
#include "retry_policy.h"
#include "run.h"
#include "time_units.h"


static int attach_receiver (struct migration *m, int fd);
static void pass_durable (struct migration *m, uint64_t sync_sent_ns);

/* A failure before the migration started: nothing was frozen or reset
 * (or the source had already flipped for this migration). */
static void setup_error (struct migration *m, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));
/* The source is in a state no migration can start from (state as STATUS
 * names it): say so, and report that state as the source's. */
static void refuse_source_state (struct migration *m, const char *state,
                                 const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));

/* ---- losing the receiver -------------------------------------------- */

/* THAW or THROTTLE 0 after a lost receiver answered: the source is no
 * longer held or slowed, or, if the filter refused, the migration fails
 * (the failure path closes the connection, which does both) with the
 * loss as its reason alone, since migration_fail says in what state the
 * source is left and naming this failure as well would report it twice. */
static void
lost_thawed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  m->cut.thaw_in_flight = false;
  if (r->ok) {
    m->cut.frozen = false;
    return;
  }
  snprintf (m->fail.thaw_error, sizeof m->fail.thaw_error, "%s", r->error);
  migration_fail (m, "%s", m->rc.first_reason);
}

static void
lost_unthrottled (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (!r->ok)
    migration_fail (m, "%s", m->rc.first_reason);
}

/* The receiver connection is gone (already closed, m->conn NULL) or must
 * be given up (it is closed here).  When the loss is transient and
 * retrying is allowed, the guest is never held or slowed while we wait:
 * thaw if frozen, release a throttle (their replies come to lost_thawed
 * and lost_unthrottled, before any request of the next connection's),
 * abandon the pass in progress, and let the reconnect object try again;
 * otherwise fail.  While FLIP is being made, the loss waits for its
 * outcome (cutover.c takes it up): the flip is not to be interrupted. */
static void
receiver_lost_msg (struct migration *m, bool transient, const char *msg)
{
  if (migration_ended (m))
    return;
  if (!transient || m->opts->retry_timeout_ns == 0) {
    if (m->rc.active)
      migration_fail (m, "%s (while reconnecting after: %s)", msg, m->rc.first_reason);
    else
      migration_fail (m, "%s", msg);
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
  if (m->phase == PHASE_FLIPPING) {
    if (!m->cut.receiver_lost_in_flip)
      snprintf (m->cut.lost_reason, sizeof m->cut.lost_reason, "%s", msg);
    m->cut.receiver_lost_in_flip = true;
    return;
  }
  if (m->cut.frozen && !m->cut.thaw_in_flight) {
    m->cut.thaw_in_flight = true;
    control_channel_thaw (m->ctl, lost_thawed, m, m->ctl_epoch);
  }
  ev_timer_stop (m->loop, &m->overrun_timer);
  /* Convergence starts over after the reconnect. */
  if (m->policy.throttle != 0) {
    control_channel_throttle (m->ctl, 0, lost_unthrottled, m, m->ctl_epoch);
    m->policy.throttle = 0;
    m->policy.best_dirty = UINT64_MAX;
    m->policy.stalled = 0;
  }
  pass_abandon (m);
  migration_set_phase (m, PHASE_RECONNECTING);
  /* This also names the loss (first_reason) for the replies above. */
  reconnect_lost (&m->rc, msg);
}

static void receiver_lost (struct migration *m, bool transient, const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));

static void
receiver_lost (struct migration *m, bool transient, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  receiver_lost_msg (m, transient, msg);
}

static int
reconnected (void *opaque, int fd)
{
  struct migration *m = opaque;

  if (attach_receiver (m, fd) == -1) {
    migration_fail (m, "%s; cannot set up a new connection to the receiver at %s",
                    m->rc.first_reason, m->opts->dest);
    return -1;
  }
  return 0;
}

static void
reconnect_waiting (void *opaque, unsigned attempt, const char *reason,
                   uint64_t retry_in_ms, double deadline)
{
  struct migration *m = opaque;

  progress_reconnecting (&m->progress, m->opts->dest, attempt, reason,
                         retry_in_ms, deadline, "tracking");
}

static void
reconnect_gave_up (void *opaque, const char *why)
{
  struct migration *m = opaque;

  migration_fail (m, "%s", why);
}

static void
reconnect_hello_timed_out (void *opaque, const char *reason)
{
  struct migration *m = opaque;
  char where[64];

  receiver_lost (m, true, "%s (%s)", reason, migration_where (m, where, sizeof where));
}

static const struct reconnect_callbacks reconnect_callbacks = {
  .connected = reconnected,
  .waiting = reconnect_waiting,
  .gave_up = reconnect_gave_up,
  .hello_timed_out = reconnect_hello_timed_out,
};

/* ---- the receiver connection --------------------------------------- */

static void
on_durable (struct migration *m, uint64_t seq)
{
  bool pass_end = false;
  uint64_t sent_ns = 0;
  if (seq > m->ledger.last_seq) {
    migration_fail (m, "the receiver at %s acknowledged SYNC %" PRIu64
                  " which was never sent", m->opts->dest, seq);
    return;
  }
  for (size_t i = 0; i < sync_ledger_count_up_to (&m->ledger, seq); i++)
    if (m->ledger.pending[i].ends_pass) {
      pass_end = true;
      sent_ns = m->ledger.pending[i].sent_ns;
    }
  migration_confirm_up_to (m, seq);
  if (pass_end && m->phase == PHASE_PASS_SYNC) {
    /* The final pass goes on to COMMIT, unless the cutover is called off
     * (too late), which leaves an ordinary pass end. */
    if (m->cur.final_pass && cutover_final_pass_durable (m))
      return;
    pass_durable (m, sent_ns);
  }
}

/* STATUS after a durable pass answered (after the pass's CONFIRMs,
 * which went out before it): decide and act (cutover.c). */
static void
pass_status_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (!migration_reply_current (m, tag, PHASE_DECIDING))
    return;
  m->meas.control_rtt_ns = r->rtt_ns;
  if (!r->ok) {
    migration_fail (m, "cannot read the status of the filter at %s after pass %"
                    PRIu32 ": %s", m->opts->control_path, m->cur.pass, r->error);
    return;
  }
  m->meas.dirty_bytes = r->status->dirty_bytes;
  /* convergence.c decides; cutover.c acts (throttle, freeze, give up). */
  cutover_after_pass (m, r->status);
}

static void
pass_durable (struct migration *m, uint64_t sync_sent_ns)
{
  uint64_t now = time_monotonic_ns ();
  uint64_t pass_ns = now - m->cur.pass_start_ns;
  m->meas.sync_rtt_ns = now - sync_sent_ns;
  if (m->meas.min_sync_rtt_ns == 0 || m->meas.sync_rtt_ns < m->meas.min_sync_rtt_ns)
    m->meas.min_sync_rtt_ns = m->meas.sync_rtt_ns;
  if (m->cur.pass_bytes > 0) {
    m->meas.last_pass_bytes = m->cur.pass_bytes;
    m->meas.last_pass_ns = pass_ns;
    convergence_rate_add (&m->meas.pass_rates, m->cur.pass_bytes, pass_ns);
  }
  m->cur.durable_ns = now;
  m->cur.durable_pass_ns = pass_ns;
  migration_set_phase (m, PHASE_DECIDING);
  control_channel_status (m->ctl, pass_status_replied, m, m->ctl_epoch);
}

static void
on_ready (struct stm_conn *conn, void *opaque)
{
  struct migration *m = opaque;
  /* EXPORT is understood (forward_target.c). */
  struct wire_hello h = { .image_size = m->size, .block_size = m->block,
                          .features = WIRE_FEATURE_EXPORT };
  uint8_t frame[WIRE_ENCODE_MAX];
  memcpy (h.migration_id, m->migration_id, sizeof h.migration_id);
  m->meas.handshake_ns = time_monotonic_ns () - m->meas.attach_ns;
  migration_set_phase (m, PHASE_HELLO);
  migration_send_msg (m, frame, wire_encode_hello (frame, &h));
}

/* The source has flipped for this migration, but the receiver does not
 * hold it prepared or final: nothing here can repair that, and the source
 * does not serve the guest any more, so exit 1 (which says the source is
 * serving) would be a lie. */
static void
flipped_but_receiver_lost (struct migration *m, const char *answer)
{
  char msg[1024];
  snprintf (msg, sizeof msg, "the source has flipped for migration %s (STATUS on "
            "%s), but the receiver at %s answered HELLO with %s: it does not hold "
            "this migration prepared or final (was its output replaced, or "
            "stm-recv started with --force?); the source no longer serves the "
            "guest, and the destination's copy cannot be vouched for",
            m->migration_id_hex, m->opts->control_path, m->opts->dest, answer);
  progress_clear (&m->progress);
  log_error ("%s", msg);
  progress_error (&m->progress, msg, "flipped");
  migration_set_phase (m, PHASE_FAILED);
  m->exit_code = STM_SEND_EXIT_UNKNOWN;
  migration_finish (m);
}

/* HELLO_REPLY once the source has flipped (in this process, or before it
 * started): only the receiver's record is left to complete. */
static void
on_hello_reply_flipped (struct migration *m, const struct wire_hello_reply *r)
{
  if (!m->started)
    progress_start (&m->progress, m->opts->source_uri, m->opts->dest, m->size,
                    m->block, m->migration_id_hex, "flipped");
  m->started = true;
  reconnect_done (&m->rc);
  switch (r->mode) {
  case WIRE_MODE_FINAL:
    if (m->cut.flipped_at_start)
      log_info ("migration %s had already completed: the source has flipped to %s, "
                "which records it as final", m->migration_id_hex, m->opts->dest);
    migration_complete (m, "final");
    return;
  case WIRE_MODE_PREPARED:
    /* A process that flipped knows its COMMIT; one that found the source
     * flipped takes the commit the receiver holds, which is the one the
     * flip was for: the filter flips only with every block confirmed
     * durable there. */
    if (m->cut.flipped_at_start) {
      m->cut.commit_seq = r->durable_seq;
      log_info ("migration %s had already flipped; recording it as final on %s",
                m->migration_id_hex, m->opts->dest);
    }
    cutover_send_outcome (m);
    return;
  default:
    flipped_but_receiver_lost (m, r->mode == WIRE_MODE_NEW ? "new" : "resume");
    return;
  }
}

/* RESET or RESUME answered: the filter's tracking is ready for this
 * migration; report the start (or the resumption) and take the first
 * pass's SNAPSHOT. */
static void
hello_prepared (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (!migration_reply_current (m, tag, PHASE_PREPARING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot prepare the filter at %s for a %s migration: %s",
                    m->opts->control_path, m->hello.mode, r->error);
    return;
  }
  if (!m->started)
    progress_start (&m->progress, m->opts->source_uri, m->opts->dest, m->size,
                    m->block, m->migration_id_hex, m->hello.mode);
  else
    progress_resumed (&m->progress, m->opts->dest, m->hello.mode,
                      m->hello.durable_seq, m->hello.confirmed);
  m->started = true;
  /* RESUME and RESET both made every unconfirmed block dirty, deferred hot
   * blocks included: none is deferred any more. */
  hot_blocks_forget_deferred (&m->hot);
  reconnect_done (&m->rc);
  pass_next (m);
}

/* RESUME answered.  ESTALE: another migration reset the source's
 * tracking since this one's last run, and may have confirmed blocks to
 * its own destination: none of that counts here.  Copy everything again
 * (RESET); the receiver's data and durable position stay valid, the
 * passes overwrite it. */
static void
hello_resumed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (!migration_reply_current (m, tag, PHASE_PREPARING))
    return;
  if (!r->ok && r->err == ESTALE) {
    log_warning ("%s; so every block is copied again to %s", r->error, m->opts->dest);
    control_channel_reset (m->ctl, m->migration_id_hex, hello_prepared, m, tag);
    return;
  }
  hello_prepared (opaque, tag, r);
}

static void
on_hello_reply (struct migration *m, const struct wire_hello_reply *r)
{
  if (m->cut.flipped) {
    on_hello_reply_flipped (m, r);
    return;
  }
  if (r->mode == WIRE_MODE_FINAL) {
    migration_fail (m, "the receiver at %s records migration %s as final (the source "
                  "flipped to it), but the source at %s has not flipped: the two "
                  "disagree, and nothing was changed", m->opts->dest,
                  m->migration_id_hex, m->opts->control_path);
    return;
  }
  if (r->mode != WIRE_MODE_NEW && r->mode != WIRE_MODE_RESUME &&
      r->mode != WIRE_MODE_PREPARED) {
    migration_fail (m, "the receiver at %s answered HELLO with an unknown mode %" PRIu32,
                  m->opts->dest, r->mode);
    return;
  }
  if (r->mode == WIRE_MODE_PREPARED) {
    /* The receiver holds a commit of this migration, but the source is
     * tracking (never flipped, or thawed since): that copy is superseded,
     * and the receiver must record so before anything else, so it never
     * claims a prepared copy the guest has written past.  Then resume. */
    uint8_t frame[WIRE_ENCODE_MAX];
    migration_send_msg (m, frame, wire_encode_outcome (frame, r->durable_seq, WIRE_OUTCOME_THAWED));
  }
  migration_set_phase (m, PHASE_PREPARING);
  m->hello.durable_seq = r->durable_seq;
  m->hello.confirmed = 0;
  if (r->mode == WIRE_MODE_NEW) {
    m->hello.mode = "new";
    sync_ledger_drop_pending (&m->ledger);
    control_channel_reset (m->ctl, m->migration_id_hex, hello_prepared, m, m->ctl_epoch);
    /* RESET drops a connection prepared for the forward flip. */
    m->cut.preconnect_uri[0] = '\0';
    if (m->opts->forward_uri != NULL)
      forward_target_prepare (m, m->opts->forward_uri);
    return;
  }
  m->hello.mode = "resume";
  /* SYNCs sent on a lost connection that the receiver did make durable
   * (only their DURABLE reply was lost): confirm them now, before RESUME
   * turns every unconfirmed block dirty again, so they are not resent
   * (the filter answers the CONFIRMs first).  A durable position beyond
   * what this process sent belongs to an earlier sender, and covers none
   * of our SYNCs. */
  if (r->durable_seq <= m->ledger.last_seq) {
    m->hello.confirmed = sync_ledger_bytes_of_first (
      &m->ledger, sync_ledger_count_up_to (&m->ledger, r->durable_seq));
    migration_confirm_up_to (m, r->durable_seq);
  }
  sync_ledger_drop_pending (&m->ledger);
  control_channel_resume (m->ctl, m->migration_id_hex, hello_resumed, m, m->ctl_epoch);
  if (m->opts->forward_uri != NULL)
    forward_target_prepare (m, m->opts->forward_uri);
  /* Our SYNC numbers continue after what the receiver holds, and never
   * go back (a number is never reused for other data). */
  sync_ledger_resume_from (&m->ledger, r->durable_seq);
}

static void
on_message (struct stm_conn *conn, const struct wire_msg *msg, void *opaque)
{
  struct migration *m = opaque;
  char where[64];
  if (migration_ended (m))
    return;
  m->meas.last_activity_ns = time_monotonic_ns ();
  switch (msg->type) {
  case WIRE_HELLO_REPLY:
    if (m->phase != PHASE_HELLO)
      break;
    on_hello_reply (m, &msg->u.hello_reply);
    return;
  case WIRE_DURABLE:
    /* Only SYNCs of this connection are answered, and none goes out
     * before HELLO_REPLY. */
    if (m->phase == PHASE_CONNECTING || m->phase == PHASE_HELLO ||
        m->phase == PHASE_RECONNECTING)
      break;
    on_durable (m, msg->u.sync.seq);
    return;
  case WIRE_COMMITTED:
    if (m->phase != PHASE_COMMITTING)
      break;
    cutover_on_committed (m, msg);
    return;
  case WIRE_RECORDED:
    /* Also the answer to OUTCOME thawed, which needs none. */
    if (m->phase != PHASE_RECORDING)
      return;
    if (msg->u.outcome.value != WIRE_STATE_FINAL) {
      migration_fail (m, "the receiver at %s recorded the flipped migration as %s, "
                    "not final", m->opts->dest,
                    wire_dest_state_name (msg->u.outcome.value));
      return;
    }
    migration_complete (m, "final");
    return;
  case WIRE_ERROR:
  case WIRE_ABORT:
    /* Only "busy" is worth another attempt; see retry_policy.h.  No
     * space is said first: it is what the operator has to fix. */
    receiver_lost (m, msg->type == WIRE_ERROR &&
                    retry_wire_error_transient (msg->u.error.code),
                    "%sthe receiver at %s %s %s: %.*s (%s)",
                    msg->u.error.code == WIRE_ERR_NOSPACE
                    ? "the destination is out of space: " : "",
                    m->opts->dest,
                    msg->type == WIRE_ERROR ? "reported an error" : "aborted the migration",
                    migration_where (m, where, sizeof where),
                    (int) msg->u.error.text_len, msg->u.error.text,
                    wire_error_code_name (msg->u.error.code));
    return;
  case WIRE_EXPORT:
    /* It follows HELLO_REPLY, at any time after it. */
    if (m->phase == PHASE_CONNECTING || m->phase == PHASE_HELLO ||
        m->phase == PHASE_RECONNECTING)
      break;
    forward_target_on_export (m, msg);
    return;
  case WIRE_KEEPALIVE:
    return;
  default:
    break;
  }
  migration_fail (m, "the receiver at %s sent an unexpected %s message %s",
                m->opts->dest, wire_type_name (msg->type),
                migration_where (m, where, sizeof where));
}

static void
on_drain (struct stm_conn *conn, void *opaque)
{
  struct migration *m = opaque;
  if (migration_ended (m))
    return;
  m->cur.output_blocked = false;
  pass_pump (m);
}

static void
on_close (struct stm_conn *conn, const char *reason, void *opaque)
{
  struct migration *m = opaque;
  char where[64];
  m->conn = NULL;       /* freed by the transport after this returns */
  /* Before the migration has started, a refused connection means a
   * configuration to fix (only "busy" is retried, above); after, the
   * network or the receiver may come back. */
  receiver_lost (m, (m->started || m->rc.active) && retry_close_transient (reason),
                  "the receiver at %s closed the connection %s: %s",
                  m->opts->dest, migration_where (m, where, sizeof where), reason);
}

static const struct stm_conn_callbacks conn_callbacks = {
  .on_ready = on_ready,
  .on_message = on_message,
  .on_drain = on_drain,
  .on_close = on_close,
};

/* ---- timers and signals -------------------------------------------- */

static void
rate_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;
  m->cur.rate_blocked = false;
  m->meas.last_activity_ns = time_monotonic_ns ();
  pass_pump (m);
}

/* Every second: progress, and a nudge to the pump in case a drain
 * notification was missed. */
static void
tick_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;
  uint64_t now = time_monotonic_ns ();
  if (migration_ended (m))
    return;
  /* A --rate wait is our own doing, not a stall; a hung receiver is
   * given up like a lost one, and connected to again. */
  /* Nor is waiting for the filter: its requests have their own
   * timeouts (control_channel.h). */
  if (!m->cur.rate_blocked && m->phase != PHASE_RECONNECTING &&
      control_channel_pending (m->ctl) == 0 &&
      now - m->meas.last_activity_ns > (uint64_t) MIGRATION_STALL_TIMEOUT_S * NS_PER_S) {
    char where[64];
    /* As in on_close: before the migration has started, a receiver that
     * never answers is a configuration to fix, not a network to wait out. */
    receiver_lost (m, m->started || m->rc.active,
                    "the receiver at %s made no progress for %d seconds %s",
                    m->opts->dest, MIGRATION_STALL_TIMEOUT_S,
                    migration_where (m, where, sizeof where));
    return;
  }
  /* With nothing queued (waiting for DURABLE, a slow source, a --rate
   * wait), tell the receiver we are alive: it closes a sender that stays
   * silent for a minute. */
  if (m->conn && stm_conn_output_pending (m->conn) == 0 &&
      m->phase != PHASE_CONNECTING && m->phase != PHASE_RECONNECTING) {
    uint8_t frame[WIRE_ENCODE_MAX];
    (void) stm_conn_send (m->conn, frame, wire_encode_keepalive (frame), NULL, 0);
  }
  if (m->phase != PHASE_PASS && m->phase != PHASE_PASS_SYNC)
    return;
  pass_look_at_dirty (m);
  struct progress_sample s;
  migration_sample (m, &s, now);
  progress_update (&m->progress, &s, now, false);
  if (m->cur.output_blocked && m->conn &&
      stm_conn_output_pending (m->conn) < MIGRATION_OUTPUT_LOW)
    m->cur.output_blocked = false;
  pass_pump (m);
}

static void
signal_cb (struct ev_loop *loop, ev_signal *w, int revents)
{
  struct migration *m = w->data;
  const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";

  /* FLIP is not interrupted: whether it happened would be unknown.  The
   * signal is taken up once its outcome is known (cutover.c). */
  if (m->phase == PHASE_FLIPPING) {
    m->cut.interrupted_by = name;
    return;
  }
  migration_fail (m, "interrupted by %s", name);
}

static void
setup_error (struct migration *m, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (m->cut.flipped) {
    /* Run again after its flip: the source has flipped for this very
     * migration, so the exit status is 0 whatever failed here. */
    log_warning ("%s; the source at %s had already flipped for migration %s, so "
                 "the destination is authoritative, but whether the receiver "
                 "recorded it final could not be checked: run stm-send again "
                 "once the receiver is reachable", msg, m->opts->control_path,
                 m->migration_id_hex);
    m->exit_code = 0;
    progress_done (&m->progress, 0, 0, 0, 0., "unknown");
    return;
  }
  log_error ("%s; the source is unchanged and remains authoritative", msg);
  progress_error (&m->progress, msg, "thawed");
}

static void
refuse_source_state (struct migration *m, const char *state, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  log_error ("%s", msg);
  progress_error (&m->progress, msg, state);
}

/* From here on the loop runs: the start-up connection, which the filter
 * knows as the migration's owner, becomes the asynchronous channel. */
static int
hand_over_control (struct migration *m)
{
  int cfd = control_client_release_fd (m->control);
  if (cfd == -1 ||
      (m->ctl = control_channel_new (m->loop, cfd, MIGRATION_CONTROL_TIMEOUT_MS,
                                     control_client_slow_timeout_ms (m->control))) == NULL) {
    if (cfd >= 0)
      close (cfd);
    setup_error (m, "cannot hand the control connection to %s over to the event "
                 "loop: %s", m->opts->control_path, cfd == -1 ? "it is out of step"
                 : "out of memory");
    return -1;
  }
  control_client_close (m->control);
  m->control = NULL;
  return 0;
}

static int
connect_everything (struct migration *m)
{
  const struct sender_options *o = m->opts;
  char err[512];

  /* The source first: the filter learns the image size when the first NBD
   * client connects, and answers EAGAIN until then. */
  m->reader = source_reader_open (o->source_uri, err, sizeof err);
  if (m->reader == NULL) {
    setup_error (m, "cannot connect to the source %s: %s", o->source_uri, err);
    return -1;
  }
  /* A second connection only to time flushes for the downtime prediction;
   * without it the prediction leaves the flush out until the first FREEZE
   * measured one. */
  m->flush_probe = flush_probe_open (o->source_uri, err, sizeof err);
  if (m->flush_probe == NULL)
    log_warning ("cannot open a second connection to the source %s to time "
                 "flushes (%s): the downtime prediction will not include "
                 "the flush", o->source_uri, err);

  m->control = control_client_connect (o->control_path, MIGRATION_CONTROL_TIMEOUT_MS,
                                       err, sizeof err);
  if (m->control == NULL) {
    setup_error (m, "cannot connect to the filter's control socket %s: %s",
                 o->control_path, err);
    return -1;
  }
  /* A second connection, for looking at the dirty set during a pass
   * without blocking the loop; without it, the passes run unwatched and
   * are judged at their ends only. */
  m->poller = status_poller_open (m->loop, o->control_path, pass_on_status, m,
                                  err, sizeof err);
  if (m->poller == NULL)
    log_warning ("cannot open a second connection to the filter's control "
                 "socket %s (%s): the dirty set is looked at only at the end "
                 "of each pass", o->control_path, err);
  struct control_status st;
  if (control_status (m->control, &st) == -1) {
    setup_error (m, "cannot read the status of the filter at %s: %s", o->control_path,
                 control_client_error (m->control));
    return -1;
  }
  if (st.size != source_reader_size (m->reader)) {
    setup_error (m, "the filter at %s reports an image of %" PRIu64 " bytes but the "
                 "source %s has %" PRIu64 " bytes: is this the right control socket?",
                 o->control_path, st.size, o->source_uri, source_reader_size (m->reader));
    return -1;
  }
  if (st.block < WIRE_MIN_BLOCK || st.block > WIRE_MAX_BLOCK) {
    setup_error (m, "the filter at %s uses a block size of %" PRIu32 " bytes, outside "
                 "what the wire protocol carries", o->control_path, st.block);
    return -1;
  }
  m->size = st.size;
  struct migration_id_inputs id_in = {
    .filter_instance = st.instance, .image_size = m->size, .dest = o->dest,
  };
  if (migration_id_derive (&id_in, m->migration_id) == -1) {
    setup_error (m, "cannot derive the migration id from the filter at %s "
                 "(instance id \"%s\")", o->control_path, st.instance);
    return -1;
  }
  migration_id_hex (m->migration_id, m->migration_id_hex);

  if (strcmp (st.state, "fenced") == 0 || strcmp (st.state, "forwarding") == 0) {
    if (strcmp (st.migration, m->migration_id_hex) != 0) {
      m->exit_code = STM_SEND_EXIT_UNKNOWN;
      refuse_source_state (m, st.state, "the filter at %s has already flipped (state "
                           "%s) for migration %s, not this one (%s): the source was "
                           "migrated elsewhere and this nbdkit process no longer "
                           "serves it", o->control_path, st.state, st.migration,
                           m->migration_id_hex);
      return -1;
    }
    /* A stm-send of this migration flipped it and did not live to record
     * it on the receiver: connect only to do that. */
    m->cut.flipped = true;
    m->cut.flipped_at_start = true;
  }
  /* Frozen by somebody else (another stm-send, or by hand): the commands
   * of a migration belong to the freeze's owner, so nothing could start;
   * and the source is not ours to thaw. */
  if (strcmp (st.state, "frozen") == 0) {
    refuse_source_state (m, st.state, "the filter at %s is frozen by another control "
                         "connection (another stm-send, or a client by hand): its "
                         "guest writes are held until that connection thaws it or "
                         "closes; nothing was changed", o->control_path);
    return -1;
  }
  m->block = st.block;
  m->meas.dirty_bytes = st.dirty_bytes;
  /* FREEZE and FLIP run within the filter's freeze timeout, which may be
   * longer than MIGRATION_CONTROL_TIMEOUT_MS: do not give up on a reply
   * the filter is still entitled to be working on. */
  control_client_set_freeze_timeout (m->control, st.freeze_timeout_ms);

  if (hand_over_control (m) == -1)
    return -1;

  /* These report their own errors, naming the file or host:port. */
  m->creds = tls_creds_load (&o->tls, false);
  if (m->creds == NULL) {
    setup_error (m, "no migration to %s was started", o->dest);
    return -1;
  }
  int fd = tcp_connect (o->dest_host, o->dest_port, MIGRATION_CONNECT_TIMEOUT_MS);
  if (fd == -1) {
    setup_error (m, "no migration to %s was started", o->dest);
    return -1;
  }
  if (attach_receiver (m, fd) == -1) {
    setup_error (m, "no migration to %s was started", o->dest);
    return -1;
  }
  return 0;
}

static int
attach_receiver (struct migration *m, int fd)
{
  /* The first connection is made in CONNECTING already; a new one after
   * a lost receiver comes from RECONNECTING. */
  if (m->phase != PHASE_CONNECTING)
    migration_set_phase (m, PHASE_CONNECTING);
  m->meas.last_activity_ns = time_monotonic_ns ();
  m->meas.attach_ns = m->meas.last_activity_ns;
  m->conn = stm_conn_new (m->loop, fd, m->creds, false, m->opts->dest,
                          &conn_callbacks, m);
  if (m->conn == NULL)
    return -1;
  stm_conn_set_image_size (m->conn, m->size);
  stm_conn_set_water_marks (m->conn, MIGRATION_OUTPUT_LOW, MIGRATION_OUTPUT_HIGH);
  return 0;
}

int
migration_run (const struct sender_options *opts)
{
  struct migration *m = calloc (1, sizeof *m);
  if (m == NULL) {
    log_error ("out of memory");
    return 1;
  }
  m->opts = opts;
  m->exit_code = 1;
  m->phase = PHASE_CONNECTING;       /* where every migration starts */
  m->meas.start_ns = time_monotonic_ns ();
  m->policy = (struct convergence_policy) CONVERGENCE_POLICY_INIT (opts->converge);
  m->meas.last_activity_ns = m->meas.start_ns;
  sync_ledger_init (&m->ledger);
  m->loop = ev_loop_new (EVFLAG_AUTO);
  progress_init (&m->progress, opts->json, opts->progress);
  m->receiver_lost = receiver_lost_msg;
  /* Allow a burst of a tenth of a second of traffic, but at least one
   * chunk so a read is never held back forever. */
  uint64_t burst = opts->rate / 10;
  if (burst < SOURCE_READER_CHUNK)
    burst = SOURCE_READER_CHUNK;
  rate_limit_init (&m->rate, opts->rate, burst, m->meas.start_ns);

  if (m->loop == NULL) {
    log_error ("cannot create the event loop");
    free (m);
    return 1;
  }
  reconnect_init (&m->rc, m->loop, opts->dest_host, opts->dest_port, opts->dest,
                  opts->retry_timeout_ns, MIGRATION_CONNECT_TIMEOUT_MS,
                  &reconnect_callbacks, m);
  /* --report: the page is drawn from the same events --json prints. */
  struct report_sink *report = NULL;
  if (opts->report_path != NULL
      && (report = report_sink_new (opts->report_path)) != NULL)
    progress_set_tee (&m->progress, report_sink_line, report);

  /* The command socket first: a path another stm-send serves is refused
   * before anything is touched. */
  m->finished = commands_finished;
  if (ready_init (m) == -1 || commands_open (m) == -1)
    setup_error (m, "no migration to %s was started", opts->dest);
  else if (connect_everything (m) == 0) {
    source_reader_start (m->reader, m->loop, &pass_reader_callbacks, m);
    ev_timer_init (&m->rate_timer, rate_timer_cb, 0., 0.);
    m->rate_timer.data = m;
    ev_timer_init (&m->tick_timer, tick_cb, 1., 1.);
    m->tick_timer.data = m;
    pass_init (m);
    cutover_init (m);
    ev_timer_start (m->loop, &m->tick_timer);
    ev_signal_init (&m->sigint_watcher, signal_cb, SIGINT);
    m->sigint_watcher.data = m;
    ev_signal_start (m->loop, &m->sigint_watcher);
    ev_signal_init (&m->sigterm_watcher, signal_cb, SIGTERM);
    m->sigterm_watcher.data = m;
    ev_signal_start (m->loop, &m->sigterm_watcher);

    /* Runs until migration_finish has stopped our watchers and the
     * transport has flushed and closed. */
    ev_run (m->loop, 0);

    if (!migration_ended (m)) {
      /* Cannot happen: every path ends in success or migration_fail.
       * The failure path's THAW needs the loop to be answered. */
      migration_fail (m, "internal error: the event loop ended early");
      ev_run (m->loop, 0);
    }
  }

  int status = m->exit_code;
  /* Never leave the terminal line open. */
  progress_clear (&m->progress);
  commands_close (m);
  ready_free (m);
  reconnect_stop (&m->rc);
  if (m->conn)
    stm_conn_close (m->conn);
  source_reader_close (m->reader);
  flush_probe_close (m->flush_probe);
  /* Closing the control connection also releases ownership in the filter
   * (and thaws it if a freeze were somehow still held). */
  status_poller_close (m->poller);
  control_channel_free (m->ctl);
  control_client_close (m->control);
  if (m->creds)
    tls_creds_free (m->creds);
  sync_ledger_free (&m->ledger);
  extent_list_free (&m->cur.extents);
  hot_blocks_free (&m->hot);
  ev_loop_destroy (m->loop);
  free (m);
  /* Last, once the source is released: drawing the page must not hold
   * it.  A report that cannot be written is reported and does not change
   * the exit status, which says what state the source is in. */
  report_sink_finish (report);
  return status;
}
