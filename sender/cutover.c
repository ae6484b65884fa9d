/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: after a durable pass, the convergence decision carried out,
 * and the cutover (see cutover.h).
 *
 * The order is what keeps the source safe: nothing is flipped until the
 * receiver has said COMMITTED, which it only says once the final pass is
 * durable; and every way out between FREEZE and a successful FLIP goes
 * through migration_fail, which thaws.  If the control connection itself
 * is broken we cannot send THAW, but the filter thaws by itself when the
 * owning connection closes, so we close it at once.
 *
 * Every control request here goes through the channel (m->ctl,
 * control_channel.h) and nothing waits for a reply: each step issues its
 * requests and names the handler that takes the next step from the
 * reply, in the phase that asked (a reply in another phase is stale).
 * For a migration of several disks, each step's issue becomes a loop
 * over the disks' channels and its handler counts the replies.
 *
 * The commit is two-phase, so that no side ever claims more than is true.
 * COMMITTED means the destination is prepared (complete and durable), not
 * that it is the guest's disk: only after FLIP succeeds does OUTCOME
 * flipped make it final, and a flip that fails sends OUTCOME thawed, so
 * the receiver records its copy as superseded.  Once the source has
 * flipped, stm-send exits 0 whatever follows (the exit status says what
 * the source is); a receiver that could not be told is reported, and a
 * stm-send run again with the same arguments records it.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "control_proto.h"
#include "cutover.h"
#include "forward_target.h"
#include "pass.h"
#include "ready.h"
#include "log.h"
#include "time_units.h"
#include "clock.h"


/* The downtime budget the decisions aim at: --max-downtime, halved after
 * each cutover that overran it (up to an eighth), so that the next attempt
 * waits for a smaller final pass instead of overrunning again. */
static uint64_t
downtime_target_ns (const struct migration *m)
{
  uint32_t halvings = m->cut.cutover_overruns < 3 ? m->cut.cutover_overruns : 3;
  return m->opts->max_downtime_ns >> halvings;
}

/* What the flip costs while the guest is held, beyond its control round
 * trip: a forward flip has the filter connect to the destination's NBD
 * server, a TLS handshake and the NBD negotiation, which we take as twice
 * our own handshake with the receiver (the filter's connections are
 * opened in parallel). */
static uint64_t
flip_cost_ns (const struct migration *m)
{
  return m->opts->flip == FLIP_FORWARD ? 2 * m->meas.handshake_ns : 0;
}

/* Call the cutover off: thaw the source, so the guest is held no longer,
 * and carry on with the final pass as an ordinary one.  What it has sent
 * and what it still sends is confirmed by its SYNC as in any pass, and the
 * guest's writes since the freeze are dirty again in the filter, so
 * nothing is lost; convergence then decides once more, against a smaller
 * budget. */
/* THAW for a call-off answered.  The source's state is updated even
 * after a failure meanwhile, whose own end waits for this reply. */
static void
overrun_thawed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  uint64_t held_us;

  m->cut.thaw_in_flight = false;
  if (!r->ok) {
    snprintf (m->fail.thaw_error, sizeof m->fail.thaw_error, "%s", r->error);
    migration_fail (m, "the cutover overran --max-downtime and thawing the source "
                    "through the filter at %s failed: %s", m->opts->control_path,
                    r->error);
    return;
  }
  m->cut.frozen = false;
  if (migration_ended (m))
    return;
  if (control_reply_get_u64 (r->line, "frozen_us", &held_us) == 0)
    m->cut.overrun.held_us = held_us;
  progress_cutover_overrun (&m->progress, &m->cut.overrun);
}

/* Call the cutover off: thaw the source, so the guest is held no longer,
 * and carry on with the final pass as an ordinary one.  What it has sent
 * and what it still sends is confirmed by its SYNC as in any pass, and the
 * guest's writes since the freeze are dirty again in the filter, so
 * nothing is lost; convergence then decides once more, against a smaller
 * budget.  The pass goes on at once; THAW's reply comes to
 * overrun_thawed, before any later request's. */
static void
cutover_overrun (struct migration *m)
{
  const struct sender_options *o = m->opts;
  uint64_t now = time_monotonic_ns ();

  ev_timer_stop (m->loop, &m->overrun_timer);
  m->cur.final_pass = false;
  m->cut.cutover_overruns++;
  /* The final pass was judged against the deadline, which is the budget
   * less what is kept back for the steps after it: report that figure,
   * or a hold shorter than --max-downtime looks like no overrun at all.
   * The hold is THAW's frozen_us when it answers; until then ours. */
  m->cut.overrun = (struct progress_overrun) {
    .attempt = m->cut.cutover_overruns,
    .held_us = (now - m->cut.gate_closed_ns) / 1000,
    .predicted_us = m->cut.predicted_ns == CONVERGENCE_INFINITE ? 0 : m->cut.predicted_ns / 1000,
    .final_pass_budget_us = (m->cut.cutover_deadline_ns - m->cut.gate_closed_ns) / 1000,
    .reserved_us = m->cut.cutover_reserved_ns / 1000,
    .max_downtime_us = o->max_downtime_ns / 1000,
    .sent_bytes = m->cur.pass_done,
    .pass_bytes = m->cur.pass_bytes,
  };
  m->cut.thaw_in_flight = true;
  control_channel_thaw (m->ctl, overrun_thawed, m, m->ctl_epoch);
}

static void
overrun_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;
  /* Only while the final pass is being sent or made durable: once COMMIT
   * is queued the receiver may declare the destination complete, and the
   * cutover can no longer be called off.  Called off while waiting for the
   * final SYNC, the pass ends as an ordinary one when DURABLE comes. */
  if (!m->cut.frozen || !m->cur.final_pass ||
      (m->phase != PHASE_PASS && m->phase != PHASE_PASS_SYNC))
    return;
  /* libev times a relative timer from its cached "now", which can lag
   * the clock: go by the clock, and wait out what is left. */
  uint64_t now = time_monotonic_ns ();
  if (now < m->cut.cutover_deadline_ns) {
    ev_timer_set (w, (double) deadline_left_at (m->cut.cutover_deadline_ns, now) / NS_PER_S, 0.);
    ev_timer_start (loop, w);
    return;
  }
  cutover_overrun (m);
}

void
cutover_init (struct migration *m)
{
  ev_timer_init (&m->overrun_timer, overrun_timer_cb, 0., 0.);
  m->overrun_timer.data = m;
}

/* Arm the overrun timer for the freeze that just began.  The guest has
 * been held since the gate closed (FREEZE's reply less what the freeze
 * took); what must follow the final pass and its SYNC while it is held is
 * COMMIT (with nothing left to write: the quickest SYNC round trip
 * seen), CUTOVER_CONTROL_TRIPS control round trips (the STATUS that
 * checks the freeze is still held, with the final CONFIRMs pipelined
 * before it; FLIP; THAW) and the flip's own cost, so the final pass must
 * be sent and durable by the budget less those.  A forced cutover goes through whatever it costs, and so does
 * one whose final pass is the last --max-passes allows: no pass could
 * follow a call-off. */
static void
arm_overrun_timer (struct migration *m)
{
  uint64_t now = time_monotonic_ns ();
  m->cut.gate_closed_ns = now - (m->meas.freeze_cost_ns < now - m->cut.freeze_ns
                             ? m->meas.freeze_cost_ns : now - m->cut.freeze_ns);
  ev_timer_stop (m->loop, &m->overrun_timer);
  if (m->cut.forced || convergence_out_of_passes (m->cur.pass, ready_passes_allowed (m))) {
    m->cut.cutover_deadline_ns = UINT64_MAX;
    return;
  }
  uint64_t after = m->meas.min_sync_rtt_ns + CUTOVER_CONTROL_TRIPS * m->meas.control_rtt_ns +
    flip_cost_ns (m);
  m->cut.cutover_reserved_ns = after;
  uint64_t budget = m->opts->max_downtime_ns > after
    ? m->opts->max_downtime_ns - after : 0;
  m->cut.cutover_deadline_ns = deadline_at (m->cut.gate_closed_ns, budget);
  double in = (double) deadline_left_at (m->cut.cutover_deadline_ns, now) / NS_PER_S;
  /* The flush probe before FREEZE blocked: bring libev's clock up to
   * date, or the timer would count from before it. */
  ev_now_update (m->loop);
  ev_timer_set (&m->overrun_timer, in, 0.);
  ev_timer_start (m->loop, &m->overrun_timer);
}

static void
freeze_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  uint64_t drain_us;

  /* An ERR reply changes nothing; a broken connection leaves it unknown,
   * and the failure path closes it, which thaws. */
  if (!r->ok && !r->broken)
    m->cut.frozen = false;
  if (!migration_reply_current (m, tag, PHASE_FREEZING))
    return;
  if (r->ok && control_reply_get_u64 (r->line, "drain_us", &drain_us) == -1) {
    migration_fail (m, "cannot freeze the source through the filter at %s: FREEZE: "
                    "the filter's reply has no valid drain_us: \"%s\"",
                    m->opts->control_path, r->line);
    return;
  }
  if (!r->ok) {
    migration_fail (m, "cannot freeze the source through the filter at %s: %s",
                    m->opts->control_path, r->error);
    return;
  }
  progress_freeze (&m->progress, drain_us / 1000);
  /* What this freeze cost the guest so far (gate closed to reply), for a
   * later prediction. */
  m->meas.freeze_cost_ns = drain_us * 1000;
  m->meas.preflush_ms = 0;
  control_reply_get_u64 (r->line, "preflush_ms", &m->meas.preflush_ms);
  arm_overrun_timer (m);
}

static void
deferred_resumed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (!migration_reply_current (m, tag, PHASE_FREEZING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot return the deferred hot blocks to the dirty set "
                    "through the filter at %s: %s", m->opts->control_path, r->error);
    return;
  }
  hot_blocks_forget_deferred (&m->hot);
}

static void
final_snapshot_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  struct extent_list taken;

  /* FREEZE's and RESUME's handlers ran first: a failure there ended the
   * FREEZING phase. */
  if (!migration_reply_current (m, tag, PHASE_FREEZING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot take the final snapshot from the filter at %s: %s",
                    m->opts->control_path, r->error);
    return;
  }
  taken = *r->extents;
  *r->extents = m->cur.extents;
  m->cur.extents = taken;
  pass_begin (m, true);
}

void
cutover_begin (struct migration *m)
{
  /* From here until a successful FLIP, a failure must thaw.  Mark the
   * source frozen before asking: if the connection breaks mid-FREEZE we
   * do not know, and the failure path handles both cases. */
  migration_set_phase (m, PHASE_FREEZING);
  m->cut.freeze_ns = time_monotonic_ns ();
  m->cut.frozen = true;
  /* FREEZE, RESUME and SNAPSHOT go out together: the filter answers in
   * order, each handler sees the ones before it, and the guest is held
   * for one round trip fewer per request.  If FREEZE fails, the SNAPSHOT
   * after it only moved the dirty set to unconfirmed, which the failure
   * leaves to the next migration's RESUME or RESET.
   *
   * The deferred hot blocks are unconfirmed and nothing else is (every
   * earlier pass is confirmed): RESUME makes them dirty again, so the
   * final snapshot hands them out with the rest. */
  control_channel_freeze (m->ctl, freeze_replied, m, m->ctl_epoch);
  if (hot_blocks_deferred_bytes (&m->hot) > 0)
    control_channel_resume (m->ctl, m->migration_id_hex, deferred_resumed, m,
                            m->ctl_epoch);
  control_channel_snapshot (m->ctl, final_snapshot_replied, m, m->ctl_epoch);
}

/* Is the freeze this process holds still held?  The filter thaws by
 * itself when migrate-freeze-timeout passes, and a COMMIT after that would
 * have the receiver prepare a copy the source has already written past.
 * If it is, COMMIT. */
static void
freeze_checked (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  const struct sender_options *o = m->opts;

  if (!migration_reply_current (m, tag, PHASE_CHECKING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot check with the filter at %s that the source is still "
                    "frozen before the commit: %s; nothing was committed",
                    o->control_path, r->error);
    return;
  }
  const struct control_status *st = r->status;
  if (strcmp (st->state, "frozen") != 0 || strcmp (st->owner, "you") != 0) {
    if (strcmp (st->state, "tracking") == 0)
      m->cut.frozen = false;
    migration_fail (m, "the freeze ended before the commit: the filter at %s reports "
                    "state %s (did migrate-freeze-timeout, %" PRIu64 " ms, pass during "
                    "the final pass?), so nothing was committed and the destination "
                    "stays incomplete", o->control_path, st->state,
                    st->freeze_timeout_ms);
    return;
  }
  uint64_t seq = migration_send_sync (m, false, true);
  if (seq == 0)
    return;
  m->cut.commit_seq = seq;
  migration_set_phase (m, PHASE_COMMITTING);
  progress_commit (&m->progress, seq);
}

bool
cutover_final_pass_durable (struct migration *m)
{
  if (time_monotonic_ns () > m->cut.cutover_deadline_ns) {
    cutover_overrun (m);
    return false;
  }
  ev_timer_stop (m->loop, &m->overrun_timer);
  migration_set_phase (m, PHASE_CHECKING);
  control_channel_status (m->ctl, freeze_checked, m, m->ctl_epoch);
  return true;
}

static void flip_succeeded (struct migration *m);

/* For tests of the two-phase commit only: with STM_SEND_TEST_CRASH_AT set
 * to "committed" (COMMITTED received, FLIP not sent) or "flipped" (FLIP
 * answered, nothing sent after it), the process kills itself there, as a
 * crash or kill -9 at that moment would.  Documented in stm-send(1),
 * ENVIRONMENT; nothing else reads it. */
static void
test_crash_point (const char *where)
{
  const char *at = getenv ("STM_SEND_TEST_CRASH_AT");

  if (at != NULL && strcmp (at, where) == 0) {
    fprintf (stderr, "stm-send: STM_SEND_TEST_CRASH_AT=%s: killing myself\n", where);
    raise (SIGKILL);
  }
}

static void
flip_outcome_read (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  const struct sender_options *o = m->opts;
  char err[512];

  if (migration_ended (m))
    return;
  if (r->ok) {
    const struct control_status *st = r->status;
    if ((strcmp (st->state, "fenced") == 0 || strcmp (st->state, "forwarding") == 0) &&
        strcmp (st->migration, m->migration_id_hex) == 0) {
      progress_clear (&m->progress);
      log_warning ("the control connection to %s broke with FLIP (%s) in flight "
                   "(%s), but a new connection finds the source %s for this "
                   "migration: the flip happened", o->control_path, m->cut.flip_how,
                   m->cut.flip_why, st->state);
      flip_succeeded (m);
      return;
    }
    if (strcmp (st->state, "tracking") == 0) {
      m->cut.flip_in_flight = false;
      m->cut.frozen = false;
      migration_fail (m, "the control connection to %s broke with FLIP (%s) in "
                      "flight (%s); a new connection finds the source tracking "
                      "again, so it was not flipped", o->control_path,
                      m->cut.flip_how, m->cut.flip_why);
      return;
    }
    snprintf (err, sizeof err, "a new connection finds the source in state %s "
              "for migration %s", st->state, st->migration);
  }
  else
    snprintf (err, sizeof err, "%s", r->error);
  /* Still unknown: the failure path says so, and claims neither. */
  control_channel_disconnect (m->ctl);
  migration_fail (m, "the control connection to %s broke with FLIP (%s) in flight "
                  "(%s), and the source's state could not be read again (%s)",
                  o->control_path, m->cut.flip_how, m->cut.flip_why, err);
}

/* FLIP's reply never came: the control connection broke with FLIP in
 * flight.  The filter either flipped (a flip is final) or, when the
 * connection closed, thawed by itself; a new connection's STATUS tells
 * which, so that neither is claimed without knowing. */
static void
flip_outcome_from_status (struct migration *m)
{
  const struct sender_options *o = m->opts;
  char err[256];

  control_channel_disconnect (m->ctl);
  if (control_channel_reconnect (m->ctl, o->control_path, err, sizeof err) == -1) {
    migration_fail (m, "the control connection to %s broke with FLIP (%s) in flight "
                    "(%s), and the source's state could not be read again (%s)",
                    o->control_path, m->cut.flip_how, m->cut.flip_why, err);
    return;
  }
  control_channel_status (m->ctl, flip_outcome_read, m, m->ctl_epoch);
}

/* After an ERR to FLIP: if the freeze ended before the flip
 * (migrate-freeze-timeout passed during the final pass and the filter
 * thawed by itself), say that rather than just "EPERM". */
static void
flip_refusal_explained (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  const struct sender_options *o = m->opts;

  if (migration_ended (m))
    return;
  if (r->ok && strcmp (r->status->state, "tracking") == 0) {
    m->cut.frozen = false;
    migration_fail (m, "the freeze ended before the flip: the filter at %s thawed the "
                    "source by itself (did migrate-freeze-timeout pass during the "
                    "commit?), so the source was not flipped (%s)",
                    o->control_path, m->cut.flip_why);
    return;
  }
  migration_fail (m, "cannot flip the source (%s) through the filter at %s: %s",
                  m->cut.flip_how, o->control_path, m->cut.flip_why);
}

static void
flip_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (migration_ended (m))
    return;
  if (r->ok) {
    uint64_t pre;
    m->cut.flip_preconnected =
      control_reply_get_u64 (r->line, "preconnected", &pre) == 0 && pre == 1;
    flip_succeeded (m);
    return;
  }
  snprintf (m->cut.flip_why, sizeof m->cut.flip_why, "%s", r->error);
  if (r->broken) {
    flip_outcome_from_status (m);
    return;
  }
  /* An ERR reply changed nothing. */
  m->cut.flip_in_flight = false;
  control_channel_status (m->ctl, flip_refusal_explained, m, m->ctl_epoch);
}

/* Why a cutover is forced (or, under --converge=abort, why the migration
 * gives up), for the warning or the error: the decision alone does not
 * say whether the dirty set stopped shrinking, the cutover's fixed costs
 * do not fit the budget, or cutovers kept overrunning it. */
static void
forced_reason (const struct migration *m, const struct convergence_input *in,
               const struct convergence_result *res, const char *dirty,
               const char *rate, char *buf, size_t len)
{
  const struct sender_options *o = m->opts;
  bool clean = in->dirty_bytes == 0 && in->deferred_bytes == 0;
  bool fits = res->predicted_ns != CONVERGENCE_INFINITE &&
    res->predicted_ns <= in->max_downtime_ns;
  double budget_ms = (double) in->max_downtime_ns / NS_PER_MS;
  double predicted_ms = (double) res->predicted_ns / NS_PER_MS;

  if (fits && m->cut.cutover_overruns > 0)
    snprintf (buf, len, "%" PRIu32 " cutovers predicted to fit were called off for "
              "overrunning --max-downtime (%" PRIu64 " ms), so the fixed costs of "
              "a cutover here do not fit it (%s dirty)", m->cut.cutover_overruns,
              o->max_downtime_ns / NS_PER_MS, dirty);
  else if (clean && !fits)
    snprintf (buf, len, "nothing is dirty, but the fixed costs of a cutover "
              "(freeze, round trips, commit: predicted %.1f ms) do not fit the "
              "budget of %.1f ms", predicted_ms, budget_ms);
  else if (res->decision == CONVERGENCE_CUTOVER_MAX_PASSES ||
           (res->decision == CONVERGENCE_ABORT &&
            convergence_out_of_passes (m->cur.pass, ready_passes_allowed (m))))
    snprintf (buf, len, "--max-passes %" PRIu32 " leaves only the final pass, "
              "and %s dirty does not fit the budget of %.1f ms at %s/s",
              o->max_passes, dirty, budget_ms, rate);
  else
    snprintf (buf, len, "the migration does not converge: %s are dirty and the "
              "dirty set has stopped shrinking at %s/s", dirty, rate);
}

static void act_on_decision (struct migration *m);

/* The STATUS after the flush before the freeze: decide once more on what
 * is dirty now (recheck_before_freeze), then act. */
static void
recheck_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  struct convergence_input *in = &m->cut.decide_in;
  struct convergence_result *res = &m->cut.decide_res;

  if (!migration_reply_current (m, tag, PHASE_DECIDING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot read the status of the filter at %s before the "
                    "freeze: %s", m->opts->control_path, r->error);
    return;
  }
  uint64_t before_ns = res->predicted_ns;
  if (m->meas.freeze_cost_ns == 0)
    in->freeze_ns = m->meas.probe_flush_ns;
  in->dirty_bytes = r->status->dirty_bytes;
  m->meas.dirty_bytes = r->status->dirty_bytes;
  convergence_decide (in, res);
  /* Out of passes: the cutover happens now whatever the re-check found
   * (convergence_decide says max-passes when it no longer fits), or
   * --max-passes would be overrun.  Otherwise, not fitting any more, or
   * fitting only in the upper half of the budget after getting worse:
   * copy what the guest wrote meanwhile first. */
  if (!convergence_out_of_passes (m->cur.pass, ready_passes_allowed (m)) &&
      ((res->decision != CONVERGENCE_CUTOVER_CONVERGED &&
        res->decision != CONVERGENCE_CUTOVER_CLEAN) ||
       (res->predicted_ns > in->max_downtime_ns / 2 && res->predicted_ns > before_ns)))
    res->decision = CONVERGENCE_CONTINUE;
  act_on_decision (m);
}

/* The flush before the freeze is done (recheck_before_freeze): note its
 * cost, and look at the dirty set again. */
static void
flushed_before_freeze (void *opaque, uint64_t ns, const char *why)
{
  struct migration *m = opaque;

  if (migration_ended (m) || m->phase != PHASE_DECIDING)
    return;
  if (ns == UINT64_MAX) {
    progress_clear (&m->progress);
    log_warning ("flushing the source %s before the freeze failed (%s): the "
                 "downtime prediction leaves the flush out", m->opts->source_uri, why);
    /* Closed after this callback has returned, by the next look. */
    m->flush_probe_failed = true;
    ns = 0;
  }
  m->meas.probe_flush_ns = ns;
  control_channel_status (m->ctl, recheck_replied, m, m->ctl_epoch);
}

/* About to freeze: flush the source first, as FREEZE will (timing it
 * when no FREEZE has been measured yet), then look at the dirty set
 * again, since the guest kept writing meanwhile: true when that has been
 * set going, and the STATUS handler decides once more and acts.  The
 * flush also leaves FREEZE's own pre-flush little to do, so the dirty set
 * grows little before the gate closes.  The flush runs on the flush
 * probe's own connection, on the loop (flush_probe.h): it may take a
 * while on a busy disk, and nothing else must wait for it. */
static bool
recheck_before_freeze (struct migration *m)
{
  char err[256];

  if (m->flush_probe != NULL && m->flush_probe_failed) {
    flush_probe_close (m->flush_probe);
    m->flush_probe = NULL;
  }
  if (m->flush_probe == NULL)
    return false;
  switch (flush_probe_start (m->flush_probe, m->loop, flushed_before_freeze, m,
                             err, sizeof err)) {
  case 0:
    return true;
  case 1:                       /* the source cannot flush: it costs 0 */
    m->meas.probe_flush_ns = 0;
    control_channel_status (m->ctl, recheck_replied, m, m->ctl_epoch);
    return true;
  default:
    progress_clear (&m->progress);
    log_warning ("flushing the source %s before the freeze failed (%s): the "
                 "downtime prediction leaves the flush out", m->opts->source_uri, err);
    flush_probe_close (m->flush_probe);
    m->flush_probe = NULL;
    return false;
  }
}

void
cutover_after_pass (struct migration *m, const struct control_status *st)
{
  uint64_t written = st->write_bytes >= m->meas.last_write_bytes
    ? st->write_bytes - m->meas.last_write_bytes : 0;
  uint64_t requests = st->writes >= m->meas.last_writes ? st->writes - m->meas.last_writes : 0;
  m->meas.last_write_bytes = st->write_bytes;
  m->meas.last_writes = st->writes;

  m->cut.decide_in = (struct convergence_input) {
    .pass = m->cur.pass,
    .pass_bytes = m->meas.last_pass_bytes,
    .pass_ns = m->meas.last_pass_ns,
    .dirty_bytes = st->dirty_bytes,
    /* The final pass carries the deferred hot blocks too. */
    .deferred_bytes = hot_blocks_deferred_bytes (&m->hot),
    .sync_rtt_ns = m->meas.sync_rtt_ns,
    .commit_rtt_ns = m->meas.min_sync_rtt_ns,
    .max_downtime_ns = downtime_target_ns (m),
    /* Passes run while held ready (--cutover manual) do not count. */
    .max_passes = ready_passes_allowed (m),
    /* The last FREEZE's cost; before one, the last timed flush. */
    .freeze_ns = m->meas.freeze_cost_ns ? m->meas.freeze_cost_ns : m->meas.probe_flush_ns,
    .control_rtt_ns = m->meas.control_rtt_ns,
    .flip_ns = flip_cost_ns (m),
    .written_bytes = written,
    .write_requests = requests,
    .image_size = m->size,
    .block_size = m->block,
    .rate = convergence_rate_estimate (&m->meas.pass_rates),
    .overruns = m->cut.cutover_overruns,
  };
  /* A forced cutover that a lost receiver cut short does not make the
   * next one forced. */
  m->cut.forced = false;
  convergence_step (&m->cut.decide_in, &m->policy, &m->cut.decide_res);
  /* --cutover manual: a cutover waits for CUTOVER on the command socket. */
  if (ready_hold (m))
    return;

  if ((m->cut.decide_res.decision == CONVERGENCE_CUTOVER_CONVERGED ||
       m->cut.decide_res.decision == CONVERGENCE_CUTOVER_CLEAN) &&
      recheck_before_freeze (m))
    return;
  act_on_decision (m);
}

/* Carry out m->cut.decide_res: another pass (perhaps after a THROTTLE,
 * whose reply comes before the next SNAPSHOT's), the cutover, or giving
 * up. */
static void
act_on_decision (struct migration *m)
{
  const struct convergence_input *in = &m->cut.decide_in;
  const struct convergence_result *res = &m->cut.decide_res;
  uint64_t predicted_ms = res->predicted_ns == CONVERGENCE_INFINITE
    ? UINT64_MAX : res->predicted_ns / NS_PER_MS;
  m->cut.predicted_ns = res->predicted_ns;
  struct progress_sample s;
  migration_sample (m, &s, m->cur.durable_ns);
  progress_pass_end (&m->progress, &s, (double) m->cur.durable_pass_ns / NS_PER_S,
                     predicted_ms, convergence_decision_name (res->decision));

  char dirty[32], rate[32], why[256];
  format_bytes (dirty, sizeof dirty, (double) in->dirty_bytes);
  format_bytes (rate, sizeof rate, (double) res->throughput);
  switch (res->decision) {
  case CONVERGENCE_CONTINUE:
    pass_next (m);
    return;
  case CONVERGENCE_THROTTLE:
    control_channel_throttle (m->ctl, res->throttle, pass_throttle_replied, m,
                              m->ctl_epoch);
    progress_throttle (&m->progress, res->throttle, in->dirty_bytes, res->throughput);
    pass_next (m);
    return;
  case CONVERGENCE_ABORT:
    forced_reason (m, in, res, dirty, rate, why, sizeof why);
    migration_fail (m, "giving up after pass %" PRIu32 ": %s (--converge=abort)",
                    m->cur.pass, why);
    return;
  case CONVERGENCE_CUTOVER_FORCED:
  case CONVERGENCE_CUTOVER_MAX_PASSES: {
    m->cut.forced = true;
    progress_clear (&m->progress);
    char predicted[48] = "unknown";
    if (predicted_ms != UINT64_MAX)
      snprintf (predicted, sizeof predicted, "%.1f ms",
                (double) res->predicted_ns / NS_PER_MS);
    forced_reason (m, in, res, dirty, rate, why, sizeof why);
    log_warning ("forcing the cutover after pass %" PRIu32 ": %s; predicted "
                 "downtime %s, not limited by --max-downtime",
                 m->cur.pass, why, predicted);
    cutover_begin (m);
    return;
  }
  case CONVERGENCE_CUTOVER_CLEAN:
  case CONVERGENCE_CUTOVER_CONVERGED:
    cutover_begin (m);
    return;
  }
}

/* Every CONFIRM before this has been answered, and none refused (a
 * refusal failed the migration): FLIP.  Until its reply is read, a broken
 * control connection leaves it unknown whether the flip happened
 * (flip_outcome_from_status). */
static void
confirmed_then_flip (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;

  if (!migration_reply_current (m, tag, PHASE_FLIPPING))
    return;
  test_crash_point ("committed");
  m->cut.flip_in_flight = true;
  if (m->opts->flip == FLIP_FENCE)
    control_channel_flip_fence (m->ctl, flip_replied, m, m->ctl_epoch);
  else
    control_channel_flip_forward (m->ctl, m->cut.flip_uri, flip_replied, m,
                                  m->ctl_epoch);
}

void
cutover_on_committed (struct migration *m, const struct wire_msg *msg)
{
  const struct sender_options *o = m->opts;

  migration_set_phase (m, PHASE_FLIPPING);
  m->cut.flip_how = o->flip == FLIP_FENCE ? "fence" : "forward";
  if (o->flip == FLIP_FORWARD) {
    char *uri = m->cut.flip_uri;
    if (o->forward_uri)
      snprintf (uri, sizeof m->cut.flip_uri, "%s", o->forward_uri);
    else if (forward_target_uri (m, msg->u.committed.text, msg->u.committed.text_len,
                                 uri, sizeof m->cut.flip_uri) == -1)
      return;
    if (uri[0] == '\0') {
      migration_fail (m, "cannot flip the source (forward): no NBD URI was given with "
                      "--flip forward=URI and the receiver at %s serves none", o->dest);
      return;
    }
  }
  /* COMMITTED means everything sent is durable: CONFIRM it all, and FLIP
   * once the filter has taken every CONFIRM. */
  migration_confirm_up_to (m, UINT64_MAX);
  control_channel_barrier (m->ctl, confirmed_then_flip, m, m->ctl_epoch);
}

/* THAW after the flip answered: report the downtime and record the
 * outcome on the receiver (cutover_send_outcome). */
static void
flip_thawed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration *m = opaque;
  const struct sender_options *o = m->opts;

  if (migration_ended (m))
    return;
  if (!r->ok) {
    progress_clear (&m->progress);
    log_warning ("the source was flipped, but THAW through the filter at %s failed: "
                 "%s; the filter releases held requests when this control "
                 "connection closes", o->control_path, r->error);
  }
  m->cut.frozen = false;
  m->policy.throttle = 0;        /* the flip released it in the filter */
  uint64_t now = time_monotonic_ns ();
  /* The downtime as the guest sees it: the filter measures from the gate
   * closing (after FREEZE's pre-flush) to the gate letting writes through
   * again (thaw, or the flip forward).  Without that figure (THAW failed),
   * our own from before FREEZE to now, which is longer. */
  uint64_t frozen_us;
  if (!r->ok || control_reply_get_u64 (r->line, "frozen_us", &frozen_us) != 0)
    frozen_us = (now - m->cut.freeze_ns) / 1000;
  m->cut.downtime_ms = (frozen_us + 999) / 1000;
  if (m->cut.predicted_ns == CONVERGENCE_INFINITE)
    m->cut.predicted_ns = 0;       /* unknown: reported as 0 */
  progress_downtime (&m->progress, frozen_us, m->cut.predicted_ns / 1000, m->cut.forced,
                     m->meas.freeze_cost_ns / 1000, m->meas.preflush_ms);
  if (m->cut.forced || frozen_us * 1000 > o->max_downtime_ns) {
    progress_clear (&m->progress);
    log_warning ("%s cutover held guest writes for %.1f ms (--max-downtime %.1f ms, "
                 "predicted %.1f ms)", m->cut.forced ? "the forced" : "the",
                 frozen_us / 1000.0, o->max_downtime_ns / 1e6, m->cut.predicted_ns / 1e6);
  }
  ready_flipped (m);
  cutover_send_outcome (m);
  /* Interrupted while the flip was made: the source has flipped, so this
   * ends the migration with the record left to a later run (exit 0). */
  if (m->cut.interrupted_by != NULL) {
    migration_fail (m, "interrupted by %s", m->cut.interrupted_by);
    return;
  }
  /* The receiver was lost while the flip was made: connect again to
   * record it (the HELLO_REPLY, prepared, sends OUTCOME). */
  if (m->cut.receiver_lost_in_flip) {
    m->cut.receiver_lost_in_flip = false;
    m->receiver_lost (m, true, m->cut.lost_reason);
  }
}

/* The flip happened: the destination is the guest's disk now.  Release
 * what the gate holds (THAW, answered to flip_thawed). */
static void
flip_succeeded (struct migration *m)
{
  const struct sender_options *o = m->opts;

  m->cut.flip_in_flight = false;
  m->cut.flipped = true;
  test_crash_point ("flipped");
  progress_flip (&m->progress, o->flip == FLIP_FENCE ? "fence" : "forward",
                 o->flip == FLIP_FORWARD && m->cut.flip_preconnected);
  /* The flip is final and the destination is authoritative now; THAW only
   * releases held requests to the flip's target. */
  control_channel_thaw (m->ctl, flip_thawed, m, m->ctl_epoch);
}

void
cutover_send_outcome (struct migration *m)
{
  uint8_t frame[WIRE_ENCODE_MAX];

  assert (m->cut.flipped && m->cut.commit_seq != 0);
  migration_set_phase (m, PHASE_RECORDING);
  /* Without a connection, the next HELLO_REPLY (prepared) sends it. */
  if (m->conn != NULL)
    stm_conn_send (m->conn, frame,
                   wire_encode_outcome (frame, m->cut.commit_seq, WIRE_OUTCOME_FLIPPED),
                   NULL, 0);
}

