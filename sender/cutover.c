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
 * Every control request here goes through the disks' channels (d->ctl,
 * control_channel.h) and nothing waits for a reply: each step issues its
 * requests to every disk at once and names the handler that takes the
 * next step from the replies, in the phase that asked (a reply in
 * another phase is stale); the handler counts the replies
 * (migration_await_one) and the last one goes on, so a group of disks
 * costs the slowest filter's round trip, not the sum.  A failure of any
 * disk before the commit fails the group, and the failure path thaws
 * every disk (failure.c).  After COMMITTED, flip.c.
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
#include "mirror_stream.h"
#include "forward_target.h"
#include "pass.h"
#include "ready.h"
#include "log.h"
#include "time_units.h"
#include "verify.h"
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
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  uint64_t held_us;
  char filter[PATH_MAX + 64];

  if (--m->cut.thaws_awaited == 0)
    m->cut.thaw_in_flight = false;
  if (!r->ok) {
    snprintf (d->thaw_error, sizeof d->thaw_error, "%s", r->error);
    migration_fail (m, "the cutover overran --max-downtime and thawing the source "
                    "through %s failed: %s",
                    migration_disk_filter (d, filter, sizeof filter), r->error);
    return;
  }
  migration_disk_thawed (d);
  if (migration_ended (m))
    return;
  /* The longest any disk held its guest writes. */
  if (control_reply_get_u64 (r->line, "frozen_us", &held_us) == 0 &&
      (!m->cut.overrun_held_known || held_us > m->cut.overrun.held_us)) {
    m->cut.overrun.held_us = held_us;
    m->cut.overrun_held_known = true;
  }
  if (!m->cut.thaw_in_flight)
    progress_cutover_overrun (&m->progress, &m->cut.overrun);
}

/* THAW every disk that may be frozen, each answered to done (whose
 * opaque is the disk); m->cut.thaw_in_flight until the last has. */
void
cutover_thaw_all (struct migration *m, control_channel_cb *done)
{
  m->cut.thaws_awaited = 0;
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (m->disks[i].frozen)
      m->cut.thaws_awaited++;
  m->cut.thaw_in_flight = m->cut.thaws_awaited > 0;
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (m->disks[i].frozen)
      control_channel_thaw (m->disks[i].ctl, done, &m->disks[i], m->ctl_epoch);
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
  m->cut.overrun_held_known = false;
  cutover_thaw_all (m, overrun_thawed);
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
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  uint64_t drain_us;
  char filter[PATH_MAX + 64];

  /* An ERR reply changes nothing; a broken connection leaves it unknown,
   * and the failure path closes it, which thaws. */
  if (!r->ok && !r->broken)
    migration_disk_thawed (d);
  if (!migration_reply_current (m, tag, PHASE_FREEZING))
    return;
  migration_disk_filter (d, filter, sizeof filter);
  if (r->ok && control_reply_get_u64 (r->line, "drain_us", &drain_us) == -1) {
    migration_fail (m, "cannot freeze the source through %s: FREEZE: the filter's "
                    "reply has no valid drain_us: \"%s\"", filter, r->line);
    return;
  }
  if (!r->ok) {
    migration_fail (m, "cannot freeze the source through %s: %s", filter, r->error);
    return;
  }
  /* The group's freeze costs what its slowest disk's did: they drain in
   * parallel. */
  if (drain_us * 1000 > m->meas.freeze_cost_ns)
    m->meas.freeze_cost_ns = drain_us * 1000;
  uint64_t preflush_ms = 0;
  control_reply_get_u64 (r->line, "preflush_ms", &preflush_ms);
  if (preflush_ms > m->meas.preflush_ms)
    m->meas.preflush_ms = preflush_ms;
}

static void
deferred_resumed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  char filter[PATH_MAX + 64];

  if (!migration_reply_current (m, tag, PHASE_FREEZING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot return the deferred hot blocks to the dirty set "
                    "through %s: %s", migration_disk_filter (d, filter, sizeof filter),
                    r->error);
    return;
  }
  hot_blocks_forget_deferred (&d->hot);
}

static void
final_snapshot_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  struct extent_list taken;
  char filter[PATH_MAX + 64];

  /* FREEZE's and RESUME's handlers ran first: a failure there ended the
   * FREEZING phase. */
  if (!migration_reply_current (m, tag, PHASE_FREEZING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot take the final snapshot from %s: %s",
                    migration_disk_filter (d, filter, sizeof filter), r->error);
    return;
  }
  taken = *r->extents;
  *r->extents = d->extents;
  d->extents = taken;
  /* Every disk is frozen and has handed out its last blocks when the
   * last SNAPSHOT answers (each filter answered FREEZE before it). */
  if (!migration_await_one (m))
    return;
  progress_freeze (&m->progress, m->meas.freeze_cost_ns / NS_PER_MS);
  arm_overrun_timer (m);
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
  m->meas.freeze_cost_ns = 0;
  m->meas.preflush_ms = 0;
  migration_await_all (m);
  /* FREEZE, RESUME and SNAPSHOT go out together on each disk's channel,
   * and to every disk at once: each filter answers in order, each handler
   * sees the ones before it, and the guest is held for one round trip
   * (the slowest disk's) per request.  If a FREEZE fails, the SNAPSHOTs
   * only moved dirty sets to unconfirmed, which the failure leaves to the
   * next migration's RESUME or RESET.
   *
   * The deferred hot blocks are unconfirmed and nothing else is (every
   * earlier pass is confirmed): RESUME makes them dirty again, so the
   * final snapshot hands them out with the rest. */
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    d->frozen = true;
    control_channel_freeze (d->ctl, freeze_replied, d, m->ctl_epoch);
    if (hot_blocks_deferred_bytes (&d->hot) > 0)
      control_channel_resume (d->ctl, m->migration_id_hex, deferred_resumed, d,
                              m->ctl_epoch);
    control_channel_snapshot (d->ctl, final_snapshot_replied, d, m->ctl_epoch);
  }
}

/* Is the freeze this process holds still held?  The filter thaws by
 * itself when migrate-freeze-timeout passes, and a COMMIT after that would
 * have the receiver prepare a copy the source has already written past.
 * If it is, COMMIT. */
static void
freeze_checked (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  char filter[PATH_MAX + 64];

  if (!migration_reply_current (m, tag, PHASE_CHECKING))
    return;
  migration_disk_filter (d, filter, sizeof filter);
  if (!r->ok) {
    migration_fail (m, "cannot check with %s that the source is still frozen before "
                    "the commit: %s; nothing was committed", filter, r->error);
    return;
  }
  const struct control_status *st = r->status;
  if (strcmp (st->state, "frozen") != 0 || strcmp (st->owner, "you") != 0) {
    if (strcmp (st->state, "tracking") == 0)
      migration_disk_thawed (d);
    migration_fail (m, "the freeze ended before the commit: %s reports state %s "
                    "(did migrate-freeze-timeout, %" PRIu64 " ms, pass during "
                    "the final pass?), so nothing was committed and the destination "
                    "stays incomplete", filter, st->state, st->freeze_timeout_ms);
    return;
  }
  /* COMMIT only once every disk is known to be still frozen. */
  if (!migration_await_one (m))
    return;
  uint64_t seq = migration_send_sync (m, false, true);
  if (seq == 0)
    return;
  m->cut.commit_seq = seq;
  migration_set_phase (m, PHASE_COMMITTING);
  progress_commit (&m->progress, seq);
}

/* The final pass is durable (and, with --verify, identical): is the
 * freeze still held?  freeze_checked COMMITs if it is. */
static void
check_freeze (struct migration *m)
{
  migration_set_phase (m, PHASE_CHECKING);
  migration_await_all (m);
  for (uint32_t i = 0; i < m->ndisks; i++)
    control_channel_status (m->disks[i].ctl, freeze_checked, &m->disks[i], m->ctl_epoch);
}

bool
cutover_final_pass_durable (struct migration *m)
{
  if (time_monotonic_ns () > m->cut.cutover_deadline_ns) {
    cutover_overrun (m);
    return false;
  }
  ev_timer_stop (m->loop, &m->overrun_timer);
  if (m->opts->verify)
    verify_begin (m, check_freeze);
  else
    check_freeze (m);
  return true;
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
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  struct convergence_input *in = &m->cut.decide_in;
  struct convergence_result *res = &m->cut.decide_res;
  char filter[PATH_MAX + 64];

  if (!migration_reply_current (m, tag, PHASE_DECIDING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot read the status of %s before the freeze: %s",
                    migration_disk_filter (d, filter, sizeof filter), r->error);
    return;
  }
  d->st = *r->status;
  if (!migration_await_one (m))
    return;
  struct control_status sum;
  pass_group_status (m, &sum);
  uint64_t before_ns = res->predicted_ns;
  if (m->meas.freeze_cost_ns == 0)
    in->freeze_ns = m->meas.probe_flush_ns;
  in->dirty_bytes = sum.dirty_bytes;
  m->meas.dirty_bytes = sum.dirty_bytes;
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

/* Every disk's flush before the freeze is done: the filters flush in
 * parallel at FREEZE, so the group's flush costs the slowest disk's.
 * Look at every disk's dirty set again. */
static void
recheck_after_flushes (struct migration *m)
{
  m->meas.probe_flush_ns = m->cut.flush_longest_ns;
  migration_await_all (m);
  for (uint32_t i = 0; i < m->ndisks; i++)
    control_channel_status (m->disks[i].ctl, recheck_replied, &m->disks[i], m->ctl_epoch);
}

/* One disk's flush before the freeze is done (recheck_before_freeze). */
static void
flushed_before_freeze (void *opaque, uint64_t ns, const char *why)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;

  /* A flush of an earlier look, which the migration has left. */
  if (migration_ended (m) || m->phase != PHASE_DECIDING ||
      d->flush_round != m->cut.flush_round)
    return;
  if (ns == UINT64_MAX) {
    progress_clear (&m->progress);
    log_warning ("flushing the source %s before the freeze failed (%s): the "
                 "downtime prediction leaves its flush out", d->source_uri, why);
    /* Closed after this callback has returned, by the next look. */
    d->flush_probe_failed = true;
    ns = 0;
  }
  if (ns > m->cut.flush_longest_ns)
    m->cut.flush_longest_ns = ns;
  assert (m->cut.flushes_pending > 0);
  if (--m->cut.flushes_pending == 0)
    recheck_after_flushes (m);
}

/* About to freeze: flush every source first, as FREEZE will (timing it
 * when no FREEZE has been measured yet), then look at the dirty set
 * again, since the guest kept writing meanwhile: true when that has been
 * set going, and the STATUS handlers decide once more and act.  The
 * flush also leaves FREEZE's own pre-flush little to do, so the dirty set
 * grows little before the gate closes.  Each flush runs on its disk's
 * flush probe connection, on the loop (flush_probe.h): it may take a
 * while on a busy disk, and nothing else must wait for it. */
static bool
recheck_before_freeze (struct migration *m)
{
  char err[256];
  bool any = false;

  m->cut.flush_round++;
  m->cut.flush_longest_ns = 0;
  m->cut.flushes_pending = 0;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    if (d->flush_probe != NULL && d->flush_probe_failed) {
      flush_probe_close (d->flush_probe);
      d->flush_probe = NULL;
    }
    /* A probe still busy with a flush of an earlier look is left out. */
    if (d->flush_probe == NULL || flush_probe_busy (d->flush_probe))
      continue;
    switch (flush_probe_start (d->flush_probe, m->loop, flushed_before_freeze, d,
                               err, sizeof err)) {
    case 0:
      d->flush_round = m->cut.flush_round;
      m->cut.flushes_pending++;
      any = true;
      break;
    case 1:                     /* the source cannot flush: it costs 0 */
      any = true;
      break;
    default:
      progress_clear (&m->progress);
      log_warning ("flushing the source %s before the freeze failed (%s): the "
                   "downtime prediction leaves its flush out", d->source_uri, err);
      flush_probe_close (d->flush_probe);
      d->flush_probe = NULL;
      break;
    }
  }
  if (!any)
    return false;
  if (m->cut.flushes_pending == 0)
    recheck_after_flushes (m);
  return true;
}

/* The group's mirror records not yet sent (mirror_stream_backlog), and
 * the bytes queued to the receiver, when mirroring. */
static uint64_t
mirror_backlog (const struct migration *m)
{
  uint64_t bytes = 0;
  if (!convergence_mirrors (m->opts->converge))
    return 0;
  for (uint32_t i = 0; i < m->ndisks; i++)
    bytes += mirror_stream_backlog (&m->disks[i]);
  /* And what is queued to the receiver already: the final SYNC waits
   * behind it. */
  if (m->conn != NULL)
    bytes += stm_conn_output_pending (m->conn) + m->stage.bytes;
  return bytes;
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
    .deferred_bytes = migration_deferred_bytes (m),
    /* And the mirror records not yet sent. */
    .mirror_bytes = mirror_backlog (m),
    /* Mirroring, the pass-end SYNCs wait behind the records the guest
     * keeps writing (counted above, as queued bytes); frozen, the final
     * one does not: the quickest round trip stands for it. */
    .sync_rtt_ns = convergence_mirrors (m->opts->converge) && m->meas.min_sync_rtt_ns
      ? m->meas.min_sync_rtt_ns : m->meas.sync_rtt_ns,
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
  /* Mirroring: keep what the destination lags behind within what the
   * final pass can carry (mirror_stream.h). */
  pass_mirror_window (m, m->cut.decide_in.max_downtime_ns);
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
    pass_throttle_all (m, res->throttle);
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

