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
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convergence.h"
#include "cutover.h"
#include "commands.h"
#include "compare_pass.h"
#include "flip.h"
#include "forward_target.h"
#include "log.h"
#include "migration_id.h"
#include "pass.h"
#include "ready.h"
#include "report_sink.h"
#include "retry_policy.h"
#include "mirror_stream.h"
#include "run.h"
#include "setup.h"
#include "time_units.h"
#include "verify.h"


static int attach_receiver (struct migration *m, int fd);
static void pass_durable (struct migration *m, uint64_t sync_sent_ns);

/* ---- losing the receiver -------------------------------------------- */

/* THAW or THROTTLE 0 after a lost receiver answered: the source is no
 * longer held or slowed, or, if the filter refused, the migration fails
 * (the failure path closes the connection, which does both) with the
 * loss as its reason alone, since migration_fail says in what state the
 * source is left and naming this failure as well would report it twice. */
static void
lost_thawed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;

  if (--m->cut.thaws_awaited == 0)
    m->cut.thaw_in_flight = false;
  if (r->ok) {
    migration_disk_thawed (d);
    return;
  }
  snprintf (d->thaw_error, sizeof d->thaw_error, "%s", r->error);
  migration_fail (m, "%s", m->rc.first_reason);
}

static void
lost_unthrottled (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;

  if (!r->ok)
    migration_fail (d->m, "%s", d->m->rc.first_reason);
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
  struct stm_conn *conn = migration_drop_conn (m);
  if (conn != NULL)
    stm_conn_close (conn);
  if (m->phase == PHASE_FLIPPING) {
    if (!m->cut.receiver_lost_in_flip)
      snprintf (m->cut.lost_reason, sizeof m->cut.lost_reason, "%s", msg);
    m->cut.receiver_lost_in_flip = true;
    return;
  }
  if (m->cut.frozen && !m->cut.thaw_in_flight)
    cutover_thaw_all (m, lost_thawed);
  ev_timer_stop (m->loop, &m->overrun_timer);
  /* Convergence starts over after the reconnect. */
  if (m->policy.throttle != 0) {
    for (uint32_t i = 0; i < m->ndisks; i++)
      control_channel_throttle (m->disks[i].ctl, 0, lost_unthrottled, &m->disks[i],
                                m->ctl_epoch);
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
  /* Every disk's ledger holds the group's SYNCs (durability.c): disk 0's
   * says which ones end a pass. */
  const struct sync_ledger *ledger = &m->disks[0].ledger;
  if (seq > ledger->last_seq) {
    migration_fail (m, "the receiver at %s acknowledged SYNC %" PRIu64
                  " which was never sent", m->opts->dest, seq);
    return;
  }
  for (size_t i = 0; i < sync_ledger_count_up_to (ledger, seq); i++)
    if (ledger->pending[i].ends_pass) {
      pass_end = true;
      sent_ns = ledger->pending[i].sent_ns;
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
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  char filter[PATH_MAX + 64];

  if (!migration_reply_current (m, tag, PHASE_DECIDING))
    return;
  /* The requests went out together: the group's round trip is the
   * slowest disk's. */
  if (m->awaiting == m->ndisks || r->rtt_ns > m->meas.control_rtt_ns)
    m->meas.control_rtt_ns = r->rtt_ns;
  if (!r->ok) {
    migration_fail (m, "cannot read the status of %s after pass %" PRIu32 ": %s",
                    migration_disk_filter (d, filter, sizeof filter), m->cur.pass,
                    r->error);
    return;
  }
  d->st = *r->status;
  if (!migration_await_one (m))
    return;
  struct control_status sum;
  pass_group_status (m, &sum);
  m->meas.dirty_bytes = sum.dirty_bytes;
  /* convergence.c decides; cutover.c acts (throttle, freeze, give up). */
  cutover_after_pass (m, &sum);
}

static void
pass_durable (struct migration *m, uint64_t sync_sent_ns)
{
  uint64_t now = time_monotonic_ns ();
  uint64_t pass_ns = now - m->cur.pass_start_ns;
  m->meas.sync_rtt_ns = now - sync_sent_ns;
  if (m->meas.min_sync_rtt_ns == 0 || m->meas.sync_rtt_ns < m->meas.min_sync_rtt_ns)
    m->meas.min_sync_rtt_ns = m->meas.sync_rtt_ns;
  /* Mirroring, the pass shared the link with the guest's writes, which
   * the final pass will not: the copy rate is what both moved. */
  uint64_t moved = m->cur.pass_bytes + (migration_mirror_bytes (m) - m->cur.mirror_bytes_at_begin);
  if (m->cur.pass_bytes > 0) {
    m->meas.last_pass_bytes = m->cur.pass_bytes;
    m->meas.last_pass_ns = pass_ns;
  }
  if (moved > 0)
    convergence_rate_add (&m->meas.pass_rates, moved, pass_ns);
  m->cur.durable_ns = now;
  m->cur.durable_pass_ns = pass_ns;
  migration_set_phase (m, PHASE_DECIDING);
  migration_await_all (m);
  for (uint32_t i = 0; i < m->ndisks; i++)
    control_channel_status (m->disks[i].ctl, pass_status_replied, &m->disks[i],
                            m->ctl_epoch);
}

static void
on_ready (struct stm_conn *conn, void *opaque)
{
  struct migration *m = opaque;
  /* EXPORT is understood (forward_target.c).  The fixed part is disk 0's;
   * a group of named disks adds its table (feature DISKS). */
  /* Hashes too (compare_pass.h): the receiver keeps its outputs' data
   * to compare against only when told to (--compare) or forced. */
  struct wire_hello h = { .image_size = m->disks[0].size,
                          .block_size = m->disks[0].block,
                          .features = WIRE_FEATURE_EXPORT | WIRE_FEATURE_HASH |
                                      (m->opts->compare ? WIRE_FEATURE_KEEP : 0) |
                                      compress_hello_features (&m->comp) };
  uint8_t frame[WIRE_ENCODE_HELLO_MAX];
  memcpy (h.migration_id, m->migration_id, sizeof h.migration_id);
  if (m->named) {
    h.features |= WIRE_FEATURE_DISKS;
    h.ndisks = m->ndisks;
    for (uint32_t i = 0; i < m->ndisks; i++)
      h.disks[i] = (struct wire_hello_disk) {
        .size = m->disks[i].size, .block_size = m->disks[i].block,
        .name_len = strlen (m->disks[i].name), .name = m->disks[i].name,
      };
  }
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
            m->migration_id_hex, m->disks[0].control_path, m->opts->dest, answer);
  progress_clear (&m->progress);
  log_error ("%s", msg);
  progress_error (&m->progress, msg, "flipped");
  migration_set_phase (m, PHASE_FAILED);
  m->exit_code = STM_SEND_EXIT_UNKNOWN;
  migration_finish (m);
}

/* The start event: the one disk's source, or for a group of named disks
 * each disk's name, size and block (names need no escaping:
 * wire_disk_name_ok). */
static void
start_event (struct migration *m, const char *mode)
{
  char disks[MIGRATION_DISKS_JSON_MAX];

  progress_start (&m->progress, m->disks[0].source_uri, m->opts->dest, m->size,
                  m->block, m->migration_id_hex, mode,
                  migration_disks_json (m, DISKS_JSON_SIZE, disks, sizeof disks));
}

/* HELLO_REPLY once the source has flipped (in this process, or before it
 * started): only the receiver's record is left to complete. */
static void
on_hello_reply_flipped (struct migration *m, const struct wire_hello_reply *r)
{
  if (!m->started)
    start_event (m, "flipped");
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

/* RESET or RESUME answered by one disk's filter: once every disk's
 * tracking is ready for this migration, report the start (or the
 * resumption) and take the first pass's SNAPSHOTs. */
static void
hello_prepared (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  char filter[PATH_MAX + 64];

  if (!migration_reply_current (m, tag, PHASE_PREPARING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot prepare %s for a %s migration: %s",
                    migration_disk_filter (d, filter, sizeof filter), m->hello.mode,
                    r->error);
    return;
  }
  /* RESUME and RESET both made every unconfirmed block dirty, deferred hot
   * blocks included: none is deferred any more. */
  hot_blocks_forget_deferred (&d->hot);
  if (!migration_await_one (m))
    return;
  if (!m->started)
    start_event (m, m->hello.mode);
  else
    progress_resumed (&m->progress, m->opts->dest, m->hello.mode,
                      m->hello.durable_seq, m->hello.confirmed);
  m->started = true;
  reconnect_done (&m->rc);
  pass_next (m);
}

/* RESUME answered.  ESTALE: another migration reset the source's
 * tracking since this one's last run, and may have confirmed blocks to
 * its own destination: none of that counts here.  Send everything of
 * that disk again (RESET), compared first (compare_pass.h); the
 * receiver's data and durable position stay valid, the passes overwrite
 * it. */
static void
hello_resumed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;

  if (!migration_reply_current (m, tag, PHASE_PREPARING))
    return;
  if (!r->ok && r->err == ESTALE) {
    log_warning ("%s; so every block is sent again to %s (compared first, where "
                 "it answers hashes)", r->error, m->opts->dest);
    control_channel_reset (d->ctl, m->migration_id_hex, hello_prepared, d, tag);
    return;
  }
  hello_prepared (opaque, tag, r);
}

/* HELLO_REPLY new: the receiver has nothing of this migration; RESET
 * every disk's tracking. */
static void
hello_new (struct migration *m)
{
  m->hello.confirmed = 0;
  m->hello.mode = "new";
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    sync_ledger_drop_pending (&d->ledger);
    control_channel_reset (d->ctl, m->migration_id_hex, hello_prepared, d, m->ctl_epoch);
    /* RESET drops a connection prepared for the forward flip. */
    d->preconnect_uri[0] = '\0';
    if (m->opts->forward_uri != NULL)
      forward_target_prepare (d, m->opts->forward_uri);
    else if (d->flip_uri[0] != '\0')
      forward_target_prepare (d, d->flip_uri);
  }
}

/* HELLO_REPLY resume: the receiver holds what was durable up to
 * durable_seq; RESUME every disk's tracking. */
static void
hello_resume (struct migration *m, uint64_t durable_seq)
{
  m->hello.confirmed = 0;
  m->hello.mode = "resume";
  /* SYNCs sent on a lost connection that the receiver did make durable
   * (only their DURABLE reply was lost): confirm them now, before RESUME
   * turns every unconfirmed block dirty again, so they are not resent
   * (the filter answers the CONFIRMs first).  A durable position beyond
   * what this process sent belongs to an earlier sender, and covers none
   * of our SYNCs.  Every disk's ledger holds the same SYNCs. */
  if (durable_seq <= m->disks[0].ledger.last_seq) {
    for (uint32_t i = 0; i < m->ndisks; i++) {
      const struct sync_ledger *l = &m->disks[i].ledger;
      m->hello.confirmed += sync_ledger_bytes_of_first (
        l, sync_ledger_count_up_to (l, durable_seq));
    }
    migration_confirm_up_to (m, durable_seq);
  }
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    sync_ledger_drop_pending (&d->ledger);
    control_channel_resume (d->ctl, m->migration_id_hex, hello_resumed, d, m->ctl_epoch);
    if (m->opts->forward_uri != NULL)
      forward_target_prepare (d, m->opts->forward_uri);
    /* Our SYNC numbers continue after what the receiver holds, and never
     * go back (a number is never reused for other data). */
    sync_ledger_resume_from (&d->ledger, durable_seq);
  }
}

static void
on_hello_reply (struct migration *m, const struct wire_hello_reply *r)
{
  /* DATA_ZSTD only to a receiver that said it takes it. */
  compress_hello_reply (&m->comp, r->features);
  if (m->cut.flipped) {
    on_hello_reply_flipped (m, r);
    return;
  }
  if (r->mode == WIRE_MODE_FINAL) {
    migration_fail (m, "the receiver at %s records migration %s as final (the source "
                  "flipped to it), but the source at %s has not flipped: the two "
                  "disagree, and nothing was changed", m->opts->dest,
                  m->migration_id_hex, m->disks[0].control_path);
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
  if (compare_pass_on_hello (m, r, r->mode != WIRE_MODE_NEW) == -1)
    return;
  migration_await_all (m);
  if (r->mode == WIRE_MODE_NEW)
    hello_new (m);
  else
    hello_resume (m, r->durable_seq);
  /* Ring records sent and not made durable are still in the rings: send
   * them again, before any read of the next pass (mirror_stream.h). */
  for (uint32_t i = 0; i < m->ndisks; i++)
    mirror_stream_rewind (&m->disks[i]);
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
  case WIRE_HASHES:
    if (m->phase == PHASE_CONNECTING || m->phase == PHASE_HELLO ||
        m->phase == PHASE_RECONNECTING)
      break;
    compare_pass_on_hashes (m, msg);
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

/* The output queue fell below its low mark, or the compressor's jobs
 * came back (m->output_room): the producers may go on. */
static void
output_room (struct migration *m)
{
  if (migration_ended (m))
    return;
  m->cur.output_blocked = false;
  pass_pump (m);
}

static void
on_drain (struct stm_conn *conn, void *opaque)
{
  output_room (opaque);
}

static void
on_close (struct stm_conn *conn, const char *reason, void *opaque)
{
  struct migration *m = opaque;
  char where[64];
  migration_drop_conn (m);   /* freed by the transport after this returns */
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

/* Requests still waiting for a filter's reply, on every disk's channel. */
static size_t
control_pending_all (const struct migration *m)
{
  size_t n = 0;
  for (uint32_t i = 0; i < m->ndisks; i++)
    n += control_channel_pending (m->disks[i].ctl);
  return n;
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
      control_pending_all (m) == 0 &&
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
      send_stage_empty (&m->stage) &&
      m->phase != PHASE_CONNECTING && m->phase != PHASE_RECONNECTING) {
    uint8_t frame[WIRE_ENCODE_MAX];
    migration_send_quiet (m, frame, wire_encode_keepalive (frame));
  }
  if (m->phase != PHASE_PASS && m->phase != PHASE_PASS_SYNC)
    return;
  pass_look_at_dirty (m);
  /* Within the first pass, bound the mirror's lag as soon as a rate has
   * been seen (after it, each pass end does: cutover.c). */
  if (convergence_rate_estimate (&m->meas.pass_rates) == 0)
    pass_mirror_window (m, m->opts->max_downtime_ns);
  struct progress_sample s;
  migration_sample (m, &s, now);
  progress_update (&m->progress, &s, now, false);
  if (m->cur.output_blocked && m->conn &&
      stm_conn_output_pending (m->conn) + m->stage.bytes < MIGRATION_OUTPUT_LOW)
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

/* Every disk opened and checked (setup.c), then the receiver. */
static int
connect_everything (struct migration *m)
{
  const struct sender_options *o = m->opts;

  if (setup_disks (m) == -1)
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
  /* What the receiver's EXPORTs are bounded by: the HELLO's disks. */
  if (m->named) {
    struct wire_disks disks = { .count = m->ndisks };
    for (uint32_t i = 0; i < m->ndisks; i++)
      disks.size[i] = m->disks[i].size;
    stm_conn_set_disks (m->conn, &disks);
  }
  else
    stm_conn_set_image_size (m->conn, m->disks[0].size);
  stm_conn_set_water_marks (m->conn, MIGRATION_OUTPUT_LOW, MIGRATION_OUTPUT_HIGH);
  return 0;
}

/* The sources' readers, the timers and the signals, on the loop. */
static void
start_watchers (struct migration *m)
{
  for (uint32_t i = 0; i < m->ndisks; i++)
    source_reader_start (m->disks[i].reader, m->loop, &pass_reader_callbacks,
                         &m->disks[i]);
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
}

/* Everything a disk holds, at the end. */
static void
free_disk (struct migration_disk *d)
{
  source_reader_close (d->reader);
  flush_probe_close (d->flush_probe);
  /* Closing the control connection also releases ownership in the
   * filter (and thaws it if a freeze were somehow still held). */
  status_poller_close (d->poller);
  control_channel_free (d->ctl);
  control_client_close (d->control);
  sync_ledger_free (&d->ledger);
  extent_list_free (&d->extents);
  hot_blocks_free (&d->hot);
  mirror_stream_close (d);
  compare_pass_free (d);
  verify_free (d);
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
  m->ndisks = opts->ndisks;
  m->named = opts->named;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    d->m = m;
    d->index = i;
    d->name = opts->disks[i].name;
    d->source_uri = opts->disks[i].source_uri;
    d->control_path = opts->disks[i].control_path;
    sync_ledger_init (&d->ledger);
    d->hot = (struct hot_blocks) HOT_BLOCKS_INIT;
  }
  m->loop = ev_loop_new (EVFLAG_AUTO);
  progress_init (&m->progress, opts->json, opts->progress);
  m->receiver_lost = receiver_lost_msg;
  m->output_room = output_room;
  send_stage_init (&m->stage);
  /* Allow a burst of a tenth of a second of traffic, but at least one
   * chunk so a read is never held back forever. */
  uint64_t burst = opts->rate / 10;
  if (burst < SOURCE_READER_CHUNK)
    burst = SOURCE_READER_CHUNK;
  rate_limit_init (&m->rate, opts->rate, burst, m->meas.start_ns);

  if (m->loop == NULL || compress_init (&m->comp, opts->compress,
                                         opts->compress_level) == -1) {
    log_error (m->loop == NULL ? "cannot create the event loop"
               : "out of memory for the zstd compressor (--compress); no "
               "migration was started");
    if (m->loop != NULL)
      ev_loop_destroy (m->loop);
    compress_free (&m->comp);
    free (m);
    return 1;
  }
  /* zstd's thread (compress_worker.h), logged if it cannot start. */
  if (compress_start (m) == -1) {
    log_error ("no migration was started");
    compress_free (&m->comp);
    ev_loop_destroy (m->loop);
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
    start_watchers (m);

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
  struct stm_conn *conn = migration_drop_conn (m);
  if (conn != NULL)
    stm_conn_close (conn);
  for (uint32_t i = 0; i < m->ndisks; i++)
    free_disk (&m->disks[i]);
  if (m->creds)
    tls_creds_free (m->creds);
  compress_report (&m->comp);
  compress_free (&m->comp);
  ev_loop_destroy (m->loop);
  free (m);
  /* Last, once the source is released: drawing the page must not hold
   * it.  A report that cannot be written is reported and does not change
   * the exit status, which says what state the source is in. */
  report_sink_finish (report);
  return status;
}
