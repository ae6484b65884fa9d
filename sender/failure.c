/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the failure path, the one way a migration ends without a flip.
 *
 * Any part may fail (a source read, the control socket, the receiver, the
 * convergence policy giving up), and every one of them calls
 * migration_fail.  It records the failure, asks the filter to thaw a
 * source this process froze and to release a guest write throttle it set
 * (PHASE_FAILING until the filter has answered, within the control
 * channel's timeout; if the channel is broken, closing it is what makes
 * the filter thaw and release), then reports the failure once with the
 * state the source is left in, tells the receiver (OUTCOME thawed after a
 * COMMIT, so that its prepared copy is superseded, then ABORT) and ends
 * the loop with exit status 1, or STM_SEND_EXIT_UNKNOWN when a FLIP's
 * outcome could not be learned.
 *
 * After the flip there is no failing any more: the source has moved to
 * the destination, and what may still go wrong is only the receiver's
 * record, so the migration completes with a warning
 * (flipped_but_unrecorded).
 *
 * This file sits just above migration.c, whose primitives it uses (phase
 * changes, migration_finish, migration_complete), and below everything
 * that may fail.
 */
#include <config.h>

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "migration.h"
#include "wire.h"

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
