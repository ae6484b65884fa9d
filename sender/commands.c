/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: what the command socket's commands do on a running migration
 * (see commands.h, and stm-send(1), "COMMAND SOCKET PROTOCOL").
 *
 * STATUS is answered at once.  CUTOVER, when ready, is handed to ready.c,
 * whose reply comes when the source has flipped (or the migration has
 * failed); otherwise it is refused at once.  ABORT goes through the one
 * failure path, migration_fail, as SIGTERM does: the source is thawed if
 * frozen and unthrottled, the receiver is told, and stm-send exits 1;
 * the reply is sent once the filter has answered, from ready_finish.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "log.h"
#include "ready.h"
#include "time_units.h"


static void
on_status (void *opaque, char *text, size_t size)
{
  struct migration *m = opaque;

  ready_status_text (m, text, size);
}

/* Why CUTOVER is refused as not ready, for its ERR EAGAIN reply. */
static void
not_ready_why (const struct migration *m, const struct ready_view *v,
               char *buf, size_t len)
{
  const struct ready *r = m->ready;
  const char *stage = ready_stage (v);

  if (v->mode == CUTOVER_AUTO)
    snprintf (buf, len, "stm-send runs with --cutover auto and cuts over by itself "
              "once the copy fits --max-downtime (phase=%s)", stage);
  else if (strcmp (stage, "copying") != 0 && strcmp (stage, "ready") != 0)
    snprintf (buf, len, "phase=%s: the receiver at %s is %s", stage, m->opts->dest,
              m->started ? "being connected to again; the copy resumes once it "
              "answers" : "being connected to");
  else if (!r->decided)
    snprintf (buf, len, "phase=%s pass=%" PRIu32 " dirty_bytes=%" PRIu64
              ": no pass has ended yet", stage, m->cur.pass, m->meas.dirty_bytes);
  else if (r->predicted_ns == CONVERGENCE_INFINITE)
    snprintf (buf, len, "phase=%s pass=%" PRIu32 " dirty_bytes=%" PRIu64
              " predicted_downtime_ms=unknown", stage, r->pass, m->meas.dirty_bytes);
  else
    snprintf (buf, len, "phase=%s pass=%" PRIu32 " dirty_bytes=%" PRIu64
              " predicted_downtime_ms=%" PRIu64 " over the budget of %" PRIu64 " ms",
              stage, r->pass, m->meas.dirty_bytes,
              (r->predicted_ns + NS_PER_MS - 1) / NS_PER_MS, r->budget_ns / NS_PER_MS);
}

static void
on_cutover (void *opaque, struct command_reply *reply)
{
  struct migration *m = opaque;
  struct ready_view v;
  char why[256];

  ready_view (m, &v);
  switch (ready_cutover_answer (&v)) {
  case READY_ANSWER_ACCEPT:
    ready_request_cutover (m, reply);
    return;
  case READY_ANSWER_NOT_READY:
    not_ready_why (m, &v, why, sizeof why);
    command_reply_err (reply, "EAGAIN", "not ready: %s", why);
    return;
  case READY_ANSWER_IN_PROGRESS:
    command_reply_err (reply, "EALREADY", "cutover already in progress");
    return;
  case READY_ANSWER_FLIPPED:
  case READY_ANSWER_FLIPPING:
    command_reply_err (reply, "EALREADY", "the source has flipped");
    return;
  case READY_ANSWER_ENDED:
    command_reply_err (reply, "EIO", "cutover failed: %s; the migration has ended "
                       "without a flip", m->fail.msg);
    return;
  }
}

static void
on_abort (void *opaque, struct command_reply *reply)
{
  struct migration *m = opaque;
  struct ready_view v;

  ready_view (m, &v);
  switch (ready_abort_answer (&v)) {
  case READY_ANSWER_ACCEPT:
    /* The reply waits for the failure path's end, which may come at once
     * (nothing to thaw): keep it before failing. */
    ready_hold_abort_reply (m, reply);
    migration_fail (m, "aborted by the operator (ABORT on %s)", m->opts->command_socket);
    return;
  case READY_ANSWER_FLIPPING:
    command_reply_err (reply, "EALREADY", "the source is being flipped; too late "
                       "to abort");
    return;
  case READY_ANSWER_FLIPPED:
    command_reply_err (reply, "EALREADY", "the source has flipped; too late to abort");
    return;
  default:
    command_reply_err (reply, "EALREADY", "the migration has already ended without "
                       "a flip (%s); the source is authoritative", m->fail.msg);
    return;
  }
}

static const struct command_callbacks callbacks = {
  .status = on_status,
  .cutover = on_cutover,
  .abort = on_abort,
};

int
commands_open (struct migration *m)
{
  if (m->opts->command_socket == NULL)
    return 0;
  m->ready->server = command_server_new (m->loop, m->opts->command_socket,
                                         &callbacks, m);
  return m->ready->server == NULL ? -1 : 0;
}

/* Out of every callback of the server's: close it. */
static void
free_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;

  commands_close (m);
}

void
commands_finished (struct migration *m)
{
  struct ready *r = m->ready;

  ready_finish (m);
  if (r->server == NULL || ev_is_active (&r->free_timer))
    return;
  /* migration_finish may run inside a command's callback (ABORT with
   * nothing to thaw), where the server must not be freed: the next loop
   * iteration does it, sending the replies just completed. */
  ev_timer_init (&r->free_timer, free_timer_cb, 0., 0.);
  r->free_timer.data = m;
  ev_timer_start (m->loop, &r->free_timer);
}

void
commands_close (struct migration *m)
{
  if (m->ready == NULL || m->ready->server == NULL)
    return;
  ev_timer_stop (m->loop, &m->ready->free_timer);
  command_server_free (m->ready->server);
  m->ready->server = NULL;
}
