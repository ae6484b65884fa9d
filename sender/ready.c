/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the manual cutover on a running migration: holding a
 * decision to cut over, the ready events, and the replies owed to the
 * command socket (see ready.h).
 *
 * Holding costs the guest nothing: the source is never frozen while
 * ready, the passes that keep the destination current are the same
 * ordinary passes as before it, and the guest is not throttled while
 * held (a throttle the --converge policy set to converge is released;
 * a guest whose writes outgrow the link is reported not ready, and the
 * policy throttles it only once CUTOVER is asked for: ready_policy.h).  The cutover that CUTOVER starts is the automatic
 * one, at the first pass end whose decision is a cutover, with the same
 * re-check before the freeze, the same deadline and the same call-off, so
 * it keeps to the same budget.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pass.h"
#include "ready.h"
#include "time_units.h"


/* PHASE_READY has waited long enough: copy what the guest wrote. */
static void
wait_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;

  if (m->phase == PHASE_READY)
    pass_next (m);
}

static void
fill_event (const struct migration *m, struct progress_ready *e)
{
  const struct ready *r = m->ready;
  struct ready_view v;
  uint64_t now = time_monotonic_ns ();

  ready_view (m, &v);
  *e = (struct progress_ready) {
    .ready = ready_now (&v),
    .forced = r->forced,
    .requested = r->requested,
    .phase = ready_stage (&v),
    .pass = r->pass,
    .dirty_bytes = m->meas.dirty_bytes,
    .predicted_us = r->decided && r->predicted_ns != CONVERGENCE_INFINITE
      ? r->predicted_ns / NS_PER_US : UINT64_MAX,
    .max_downtime_us = r->budget_ns / NS_PER_US,
    .ready_s = r->since_ns ? (double) (now - r->since_ns) / NS_PER_S : 0.,
    .command_socket = m->opts->command_socket,
  };
}

/* Every READY_EVENT_INTERVAL_S once ready: where it stands.  Not during
 * the cutover, whose own events say more. */
static void
event_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;
  struct progress_ready e;

  if (migration_ended (m))
    return;
  fill_event (m, &e);
  if (strcmp (e.phase, "cutover") == 0)
    return;
  progress_ready (&m->progress, &e, false);
}

int
ready_init (struct migration *m)
{
  struct ready *r = calloc (1, sizeof *r);

  if (r == NULL) {
    log_error ("cannot set up the cutover's state: out of memory");
    return -1;
  }
  ev_timer_init (&r->wait_timer, wait_timer_cb, 0., 0.);
  r->wait_timer.data = m;
  ev_timer_init (&r->event_timer, event_timer_cb, READY_EVENT_INTERVAL_S,
                 READY_EVENT_INTERVAL_S);
  r->event_timer.data = m;
  r->budget_ns = m->opts->max_downtime_ns;
  m->ready = r;
  return 0;
}

void
ready_free (struct migration *m)
{
  if (m->ready == NULL)
    return;
  ev_timer_stop (m->loop, &m->ready->wait_timer);
  ev_timer_stop (m->loop, &m->ready->event_timer);
  ev_timer_stop (m->loop, &m->ready->free_timer);
  free (m->ready);
  m->ready = NULL;
}

uint32_t
ready_passes_allowed (const struct migration *m)
{
  return ready_max_passes (m->opts->max_passes,
                           m->ready != NULL ? m->ready->uncounted : 0);
}

void
ready_view (const struct migration *m, struct ready_view *v)
{
  const struct ready *r = m->ready;

  *v = (struct ready_view) {
    .mode = m->opts->cutover,
    .phase = m->phase,
    .started = m->started,
    /* A decision made before the receiver was lost says nothing of what
     * the next connection leaves to copy. */
    .ready = r->ready && r->epoch == m->ctl_epoch,
    .been_ready = r->since_ns != 0,
    .requested = r->requested,
    .final_pass = m->cur.final_pass,
    .flipped = m->cut.flipped,
  };
}

/* The migration has just become ready, or stopped being ready. */
static void
announce (struct migration *m)
{
  struct ready *r = m->ready;
  struct progress_ready e;

  if (r->ready && r->since_ns == 0) {
    r->since_ns = time_monotonic_ns ();
    ev_timer_start (m->loop, &r->event_timer);
  }
  fill_event (m, &e);
  progress_ready (&m->progress, &e, true);
}

bool
ready_hold (struct migration *m)
{
  struct ready *r = m->ready;
  const struct convergence_input *in = &m->cut.decide_in;
  const struct convergence_result *res = &m->cut.decide_res;
  bool was_ready = r->ready && r->epoch == m->ctl_epoch;

  r->decided = true;
  r->epoch = m->ctl_epoch;
  r->pass = m->cur.pass;
  r->predicted_ns = res->predicted_ns;
  r->budget_ns = in->max_downtime_ns;
  r->ready = ready_decision_cuts_over (res->decision);
  r->forced = r->ready && (res->decision == CONVERGENCE_CUTOVER_FORCED ||
                           res->decision == CONVERGENCE_CUTOVER_MAX_PASSES);
  if (m->opts->cutover != CUTOVER_MANUAL)
    return false;
  if (r->ready != was_ready)
    announce (m);
  if (ready_action (m->opts->cutover, r->requested, r->since_ns != 0,
                    res->decision) == READY_ACT) {
    m->throttle_held_off = false;
    return false;
  }

  /* Held: the pass ends as one that keeps the destination current, and
   * the guest is not slowed while the operator decides (ready_policy.h):
   * a throttle set to converge is released. */
  m->throttle_held_off = true;
  if (m->policy.throttle != 0) {
    m->policy.throttle = 0;
    m->policy.best_dirty = UINT64_MAX;
    m->policy.stalled = 0;
    pass_throttle_all (m, 0);
    progress_throttle (&m->progress, 0, m->meas.dirty_bytes,
                       convergence_rate_estimate (&m->meas.pass_rates));
  }
  struct progress_sample s;
  uint64_t predicted_ms = res->predicted_ns == CONVERGENCE_INFINITE
    ? UINT64_MAX : res->predicted_ns / NS_PER_MS;
  migration_sample (m, &s, m->cur.durable_ns);
  progress_pass_end (&m->progress, &s, (double) m->cur.durable_pass_ns / NS_PER_S,
                     predicted_ms, r->ready ? "ready" : "held");
  r->uncounted++;
  uint64_t wait = ready_wait_ns (in, res);
  if (wait == 0) {
    pass_next (m);
    return true;
  }
  migration_set_phase (m, PHASE_READY);
  ev_timer_stop (m->loop, &r->wait_timer);
  ev_timer_set (&r->wait_timer, (double) wait / NS_PER_S, 0.);
  ev_timer_start (m->loop, &r->wait_timer);
  return true;
}

void
ready_request_cutover (struct migration *m, struct command_reply *reply)
{
  struct ready *r = m->ready;

  r->cutover_reply = reply;
  r->requested = true;
  progress_clear (&m->progress);
  log_info ("CUTOVER on %s: cutting over at the next pass end whose predicted "
            "downtime fits --max-downtime", m->opts->command_socket);
  /* Waiting for the next pass: it is due now, and its end decides. */
  if (m->phase == PHASE_READY) {
    ev_timer_stop (m->loop, &r->wait_timer);
    pass_next (m);
  }
}

void
ready_hold_abort_reply (struct migration *m, struct command_reply *reply)
{
  struct ready *r = m->ready;

  /* One reply owed per client at most: the server executes a client's
   * next command only after its reply. */
  if (r->abort_count == COMMAND_MAX_CLIENTS) {
    command_reply_err (reply, "EBUSY", "too many ABORTs waiting; the migration "
                       "is being aborted");
    return;
  }
  r->abort_replies[r->abort_count++] = reply;
}

void
ready_status_text (const struct migration *m, char *text, size_t size)
{
  const struct ready *r = m->ready;
  struct ready_view v;
  char predicted[32] = "unknown";

  ready_view (m, &v);
  if (r->decided && r->predicted_ns != CONVERGENCE_INFINITE)
    snprintf (predicted, sizeof predicted, "%" PRIu64,
              (r->predicted_ns + NS_PER_MS - 1) / NS_PER_MS);
  int n = snprintf (text, size, "phase=%s pass=%" PRIu32 " dirty_bytes=%" PRIu64
                    " predicted_downtime_ms=%s ready=%d cutover=%s cutover_requested=%d"
                    " forced=%d max_downtime_ms=%" PRIu64 " throttle=%" PRIu64
                    " ready_s=%.1f step=%s",
                    ready_stage (&v), m->cur.pass, m->meas.dirty_bytes, predicted,
                    ready_now (&v), v.mode == CUTOVER_MANUAL ? "manual" : "auto",
                    r->requested, ready_now (&v) && r->forced,
                    m->opts->max_downtime_ns / NS_PER_MS, m->policy.throttle,
                    r->since_ns ? (double) (time_monotonic_ns () - r->since_ns) / NS_PER_S : 0.,
                    phase_name (m->phase));
  if (n >= 0 && (size_t) n < size && m->cut.flipped && m->cut.downtime_ms > 0)
    snprintf (text + n, size - n, " downtime_ms=%" PRIu64, m->cut.downtime_ms);
}

void
ready_flipped (struct migration *m)
{
  struct ready *r = m->ready;

  r->requested = false;
  if (r->cutover_reply != NULL) {
    command_reply_ok (r->cutover_reply, "flipped downtime_ms=%" PRIu64, m->cut.downtime_ms);
    r->cutover_reply = NULL;
  }
}

/* Where to look when whether the source flipped is unknown. */
static const char *
filters_named (const struct migration *m)
{
  return m->ndisks == 1 ? m->disks[0].control_path
    : "every disk's control socket (the error above says which disks)";
}

void
ready_finish (struct migration *m)
{
  struct ready *r = m->ready;
  const char *msg = m->fail.msg[0] ? m->fail.msg : "the migration ended";

  ev_timer_stop (m->loop, &r->wait_timer);
  ev_timer_stop (m->loop, &r->event_timer);
  if (m->cut.flipped)
    ready_flipped (m);
  else if (r->cutover_reply != NULL && m->exit_code == STM_SEND_EXIT_UNKNOWN)
    command_reply_err (r->cutover_reply, "EIO", "cutover failed: %s; whether the "
                       "source flipped is unknown: see STATUS on %s", msg,
                       filters_named (m));
  else if (r->cutover_reply != NULL)
    command_reply_err (r->cutover_reply, "EIO", "cutover failed: %s; the source is "
                       "thawed and authoritative", msg);
  r->cutover_reply = NULL;
  r->requested = false;

  for (size_t i = 0; i < r->abort_count; i++) {
    if (m->cut.flipped)
      command_reply_err (r->abort_replies[i], "EALREADY",
                         "the source has flipped; too late to abort");
    else if (m->exit_code == STM_SEND_EXIT_UNKNOWN)
      command_reply_err (r->abort_replies[i], "EIO", "aborted, but whether the "
                         "source flipped is unknown: see STATUS on %s",
                         filters_named (m));
    else
      command_reply_ok (r->abort_replies[i], "aborted: the source is thawed and "
                        "authoritative");
  }
  r->abort_count = 0;
}
