/* stm-send: the cutover and the failure path (see cutover.h).
 *
 * The order is what keeps the source safe: nothing is flipped until the
 * receiver has said COMMITTED, which it only says once the final pass is
 * durable; and every way out between FREEZE and a successful FLIP goes
 * through cutover_fail, which thaws.  If the control connection itself is
 * broken we cannot send THAW, but the filter thaws by itself when the
 * owning connection closes, so we close it at once.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cutover.h"
#include "log.h"

#define NS_PER_S 1000000000u
#define NS_PER_MS 1000000u

void
cutover_begin (struct migration *m)
{
  uint64_t drain_ms = 0, generation;

  /* From here until a successful FLIP, a failure must thaw.  Mark the
   * source frozen before asking: if the connection breaks mid-FREEZE we
   * do not know, and the failure path handles both cases. */
  m->freeze_ns = time_monotonic_ns ();
  m->frozen = true;
  if (control_freeze (m->control, &drain_ms) == -1) {
    if (!control_client_is_broken (m->control))
      m->frozen = false;        /* an ERR reply changes nothing */
    cutover_fail (m, "cannot freeze the source through the filter at %s: %s",
                  m->opts->control_path, control_client_error (m->control));
    return;
  }
  progress_freeze (&m->progress, drain_ms);

  if (control_snapshot (m->control, &m->extents, &generation) == -1) {
    cutover_fail (m, "cannot take the final snapshot from the filter at %s: %s",
                  m->opts->control_path, control_client_error (m->control));
    return;
  }
  migration_begin_pass (m, true);
}

void
cutover_final_pass_sent (struct migration *m)
{
  uint64_t seq = migration_send_sync (m, false, true);
  if (seq == 0)
    return;
  m->phase = PHASE_COMMITTING;
  progress_commit (&m->progress, seq);
}

void
cutover_on_committed (struct migration *m, const struct wire_msg *msg)
{
  const struct sender_options *o = m->opts;

  /* COMMITTED means everything sent is durable. */
  if (migration_confirm_up_to (m, UINT64_MAX) == -1)
    return;

  if (o->flip == FLIP_FENCE) {
    if (control_flip_fence (m->control) == -1) {
      cutover_fail (m, "cannot flip the source (fence) through the filter at %s: %s",
                    o->control_path, control_client_error (m->control));
      return;
    }
  }
  else {
    char uri[WIRE_MAX_TEXT + 1];
    if (o->forward_uri)
      snprintf (uri, sizeof uri, "%s", o->forward_uri);
    else
      snprintf (uri, sizeof uri, "%.*s", (int) msg->u.committed.text_len,
                msg->u.committed.text);
    if (uri[0] == '\0') {
      cutover_fail (m, "cannot flip the source (forward): no NBD URI was given with "
                    "--flip forward=URI and the receiver at %s serves none", o->dest);
      return;
    }
    if (control_flip_forward (m->control, uri) == -1) {
      cutover_fail (m, "cannot flip the source (forward to %s) through the "
                    "filter at %s: %s",
                    uri, o->control_path, control_client_error (m->control));
      return;
    }
  }
  m->flipped = true;
  progress_flip (&m->progress, o->flip == FLIP_FENCE ? "fence" : "forward");

  /* The flip is final and the destination is authoritative now; THAW only
   * releases held requests to the flip's target. */
  if (control_thaw (m->control) == -1) {
    progress_clear (&m->progress);
    log_warning ("the source was flipped, but THAW through the filter at %s failed: "
                 "%s; the filter releases held requests when this control "
                 "connection closes", o->control_path, control_client_error (m->control));
  }
  m->frozen = false;
  uint64_t now = time_monotonic_ns ();
  m->downtime_ms = (now - m->freeze_ns) / NS_PER_MS;
  m->phase = PHASE_DONE;
  m->exit_code = 0;
  progress_done (&m->progress, m->bytes_sent, m->pass, m->downtime_ms,
                 (double) (now - m->start_ns) / NS_PER_S);
  migration_finish (m);
}

void
cutover_fail (struct migration *m, const char *fmt, ...)
{
  char msg[1024], state[1024];
  va_list ap;

  if (m->phase == PHASE_DONE || m->phase == PHASE_FAILED)
    return;
  m->phase = PHASE_FAILED;
  m->exit_code = 1;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);

  const char *short_state = "thawed";
  snprintf (state, sizeof state, "the source is thawed and remains authoritative");
  if (m->frozen) {
    if (m->control && !control_client_is_broken (m->control) &&
        control_thaw (m->control) == 0)
      m->frozen = false;
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

  progress_clear (&m->progress);
  log_error ("%s; %s", msg, state);
  progress_error (&m->progress, msg, short_state);

  /* Tell the receiver we give up, so it does not wait for more. */
  if (m->conn) {
    uint8_t frame[WIRE_ENCODE_TEXT_MAX];
    stm_conn_send (m->conn, frame, wire_encode_abort (frame, WIRE_ERR_ABORTED, msg),
                   NULL, 0);
  }
  migration_finish (m);
}
