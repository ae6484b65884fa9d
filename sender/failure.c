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
#include <limits.h>
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

/* Which disks a failure leaves frozen, for the message: "; disk b: THAW
 * failed (...)" for each, and whether any connection must be closed to
 * thaw it.  True if some disk is in that state. */
static bool
describe_frozen (struct migration *m, char *state, size_t len)
{
  bool any = false;

  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    char filter[PATH_MAX + 64];
    if (!d->frozen)
      continue;
    size_t n = strlen (state);
    snprintf (state + n, len - n, "%sTHAW through %s failed (%s); the filter thaws "
              "the source by itself when this control connection closes, which "
              "happens now", any ? "; " : "",
              migration_disk_filter (d, filter, sizeof filter),
              d->thaw_error[0] ? d->thaw_error
              : m->fail.thaw_error[0] ? m->fail.thaw_error
              : control_channel_broken_by (d->ctl));
    control_channel_disconnect (d->ctl);
    any = true;
  }
  if (any) {
    size_t n = strlen (state);
    if (m->ndisks > 1)
      snprintf (state + n, len - n, "; every other disk's source is thawed; the "
                "sources of every disk remain authoritative, and none was flipped");
    else
      snprintf (state + n, len - n, ", and the source remains authoritative");
  }
  return any;
}

/* The failure path's requests have been answered (or have failed):
 * report the failure with the state the source is left in, tell the
 * receiver, and end. */
static void
failure_end (struct migration *m)
{
  struct failure_state *f = &m->fail;
  char state[2048];
  const char *short_state = "thawed";
  bool close_now = false;
  bool group = m->ndisks > 1;

  snprintf (state, sizeof state, m->cut.freeze_ns != 0
            ? (group ? "every disk's source is thawed and remains authoritative, "
               "and none was flipped"
               : "the source is thawed and remains authoritative")
            : (group ? "no disk's source was frozen, and every one remains "
               "authoritative"
               : "the source was never frozen and remains authoritative"));
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
              m->disks[0].control_path);
    short_state = "unknown";
    m->exit_code = STM_SEND_EXIT_UNKNOWN;
    close_now = true;
    m->cut.frozen = false;
  }
  else if (m->cut.frozen) {
    state[0] = '\0';
    describe_frozen (m, state, sizeof state);
    short_state = "thawing";
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
    for (uint32_t i = 0; i < m->ndisks; i++)
      control_channel_disconnect (m->disks[i].ctl);

  migration_set_phase (m, PHASE_FAILED);
  progress_clear (&m->progress);
  log_error ("%s; %s", f->msg, state);
  progress_error (&m->progress, f->msg, short_state);

  /* Tell the receiver we give up, so it does not wait for more: first,
   * if it may hold a prepared commit and the source is known to be
   * thawed, that its copy is superseded. */
  if (m->conn) {
    uint8_t frame[WIRE_ENCODE_TEXT_MAX];
    /* What still waits in the ordered stage (data behind a compression
     * job) is of no use to a receiver told to abort, and would hold
     * these back until the close drops them: drop it first. */
    send_stage_clear (&m->stage);
    if (m->cut.commit_seq != 0 && !m->cut.flip_in_flight)
      migration_send_quiet (m, frame, wire_encode_outcome (frame, m->cut.commit_seq,
                                                          WIRE_OUTCOME_THAWED));
    migration_send_quiet (m, frame, wire_encode_abort (frame, WIRE_ERR_ABORTED, f->msg));
  }
  migration_finish (m);
}

static void
failure_thawed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;

  if (r->ok)
    migration_disk_thawed (d);
  else
    snprintf (d->thaw_error, sizeof d->thaw_error, "%s", r->error);
}

static void
failure_unthrottled (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;

  if (!r->ok && !r->broken) {
    m->fail.throttle_failed = true;
    snprintf (m->fail.throttle_error, sizeof m->fail.throttle_error, "%s", r->error);
  }
}

/* Every disk's THAW and THROTTLE 0 have been answered (each channel's
 * barrier comes after them): end once the last has. */
static void
failure_answered (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;

  if (m->fail.awaiting > 0 && --m->fail.awaiting == 0)
    failure_end (m);
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

  /* No disk may stay frozen or throttled: ask every filter, and end only
   * once each has answered (or the channel's timeout has broken it, and
   * closing it thaws).  A call-off's THAW already in flight counts. */
  bool throttled = m->policy.throttle != 0;
  m->policy.throttle = 0;
  m->fail.awaiting = 0;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    if (!m->cut.flip_in_flight && !control_channel_is_broken (d->ctl)) {
      if (d->frozen && !m->cut.thaw_in_flight)
        control_channel_thaw (d->ctl, failure_thawed, d, m->ctl_epoch);
      if (throttled) {
        m->fail.throttle_asked = true;
        control_channel_throttle (d->ctl, 0, failure_unthrottled, d, m->ctl_epoch);
      }
    }
    else if (throttled)
      m->fail.throttle_asked = true;  /* released by the connection's close */
  }
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (control_channel_pending (m->disks[i].ctl) > 0)
      m->fail.awaiting++;
  if (m->fail.awaiting == 0) {
    failure_end (m);
    return;
  }
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (control_channel_pending (m->disks[i].ctl) > 0)
      control_channel_barrier (m->disks[i].ctl, failure_answered, &m->disks[i],
                               m->ctl_epoch);
}
