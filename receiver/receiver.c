/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: setting up, running and winding down one receiver process,
 * and its policy: what the receiver does when a session reports something
 * (the session hooks, below): which session is the active sender, when to
 * serve the image (--export), and when to stop (--once).  Sessions only
 * report; every such decision is made here.
 *
 * See receiver.h.  Winding down has two paths.  A --once run whose
 * migration became final (or whose sender aborted) calls receiver_finish:
 * the listener stops, other connections are closed, and the loop ends by
 * itself once the last connection has flushed its final reply, because
 * the signal watchers and the safety timer do not keep the loop alive.
 * SIGINT/SIGTERM break the loop at once: nothing is flushed halfway, and
 * the message says what state the output is in.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "export.h"
#include "image_writer.h"
#include "listener.h"
#include "log.h"
#include "outputs_open.h"
#include "receiver.h"
#include "session.h"
#include "state_file.h"
#include "tls_transport.h"

/* How long a finishing receiver waits for its last reply to be flushed to
 * a sender that stopped reading. */
#define FINISH_FLUSH_TIMEOUT_S 10.0


static void
on_signal (struct ev_loop *loop, ev_signal *w, int revents)
{
  struct receiver *rx = w->data;
  const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";
  const char *output = rx->outputs_text;
  const char *the = outputs_named (&rx->opts->outputs) ? "" : "the output ";
  char id[MIGRATION_ID_TEXT_LEN];

  migration_id_format (rx->record.id, id);
  rx->finishing = true;
  /* Serving a final image until told to stop is the end of a successful
   * --export run, and the documented way to end it: not an error. */
  if (rx->export != NULL && export_state (rx->export) == EXPORT_OPEN &&
      rx->record.state == WIRE_STATE_FINAL) {
    events_stopped (&rx->events, name, output, id);
    rx->exit_status = 0;
    ev_break (loop, EVBREAK_ALL);
    return;
  }
  if (!rx->record.known)
    events_error (&rx->events, NULL, 0,
                  "interrupted by %s: %s%s is incomplete "
                  "(no migration was received)", name, the, output);
  else
    events_error (&rx->events, NULL, 0,
                  "interrupted by %s: %s%s holds migration %s, %s "
                  "(durable up to sync %" PRIu64 "): %s", name, the, output, id,
                  wire_dest_state_name (rx->record.state), rx->record.durable_seq,
                  migration_record_state_meaning (rx->record.state));
  rx->exit_status = 1;
  ev_break (loop, EVBREAK_ALL);
}

static void
on_finish_timeout (struct ev_loop *loop, ev_timer *w, int revents)
{
  /* The timer was unreferenced when started and libev has just stopped
   * it: restore the loop's count before leaving. */
  ev_ref (loop);
  log_warning ("the last reply was not delivered within %.0f seconds; exiting anyway",
               FINISH_FLUSH_TIMEOUT_S);
  ev_break (loop, EVBREAK_ALL);
}

/* Watch a signal without letting the watcher keep the loop running. */
static void
watch_signal (struct receiver *rx, ev_signal *w, int signum)
{
  ev_signal_init (w, on_signal, signum);
  w->data = rx;
  ev_signal_start (rx->loop, w);
  ev_unref (rx->loop);
}

static void
unwatch_signal (struct receiver *rx, ev_signal *w)
{
  if (ev_is_active (w)) {
    ev_ref (rx->loop);
    ev_signal_stop (rx->loop, w);
  }
}

/* ---- the policy: what the sessions report, and what follows ---- */

/* The export (--export): started early, opened at the commit.
 *
 * The export's nbdkit is started when a sender's HELLO is accepted, long
 * before any freeze, with its gate closed (export.h): it refuses every
 * request.  The gate opens only when a COMMIT is recorded prepared, just
 * before COMMITTED announces the URI, and closes again whenever the image
 * stops being a committed copy (superseded; a new migration; the first
 * change to a committed image).  So a forward flip waits for an unlink,
 * not for nbdkit to start, and nothing is ever served from a copy that is
 * not prepared or final. */

/* The URI announced in COMMITTED: the export's (of the sender's first
 * disk, for a group), once its gate is open; "" when there is none to
 * offer. */
static void
export_answer (struct receiver *rx, struct session *s, char *uri, size_t uri_len)
{
  if (export_open (rx->export) == -1 ||
      export_disk_uri (rx->export, session_first_disk_output (s), uri, uri_len) == -1)
    uri[0] = '\0';
}

/* Tell the active sender where each disk is served (EXPORT), once the
 * export's nbdkit listens, so that it can prepare the source's forward
 * connections before the freeze.  Only a sender that names its disks
 * reads EXPORT (session_send_export). */
static void
announce_exports (struct receiver *rx)
{
  char uri[WIRE_MAX_TEXT + 1];
  unsigned i;

  if (rx->active == NULL || rx->export == NULL)
    return;
  switch (export_state (rx->export)) {
  case EXPORT_CLOSED:
  case EXPORT_OPEN:
    break;
  case EXPORT_STOPPED:
  case EXPORT_STARTING:
    return;
  }
  for (i = 0; i < rx->nimages; i++)
    if (export_disk_uri (rx->export, i, uri, sizeof uri) == 0)
      session_send_export (rx->active, i, uri);
}

/* nbdkit listens (with its gate closed).  A COMMIT that arrived while it
 * was starting is answered now. */
static void
on_export_ready (void *opaque)
{
  struct receiver *rx = opaque;
  char uri[WIRE_MAX_TEXT + 1];
  struct session *s = rx->commit_waiting;

  announce_exports (rx);
  if (s == NULL)
    return;
  rx->commit_waiting = NULL;
  export_answer (rx, s, uri, sizeof uri);
  log_info ("COMMITTED waited %.0f ms for the export of %s to be ready",
            (time_monotonic_ns () - rx->commit_waiting_since_ns) / 1e6,
            rx->outputs_text);
  session_send_committed (s, uri);
}

/* nbdkit could not start (reported): a waiting COMMIT is answered with no
 * URI, so a sender that wanted one fails its flip and thaws the source,
 * which stays authoritative.  A later HELLO tries again. */
static void
on_export_failed (void *opaque)
{
  struct receiver *rx = opaque;
  struct session *s = rx->commit_waiting;

  if (s == NULL)
    return;
  rx->commit_waiting = NULL;
  session_send_committed (s, "");
}

/* The export's nbdkit ended by itself.  If it was serving a committed
 * image, a source may be forwarding the guest's I/O to it: stm-recv ends
 * too, and says so.  Before the commit nothing was lost yet: a commit
 * announces no URI, and the next HELLO starts another nbdkit. */
static void
on_export_exit (void *opaque, int status, bool was_open)
{
  struct receiver *rx = opaque;
  int code = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);

  if (!was_open) {
    log_warning ("the nbdkit exporting %s exited (status %d) before any "
                 "commit (it served nothing); a commit now announces no "
                 "URI, and the next sender to connect starts another",
                 rx->outputs_text, code);
    return;
  }
  log_error ("the nbdkit exporting %s exited (status %d); stm-recv ends too",
             rx->outputs_text, code);
  rx->finishing = true;
  rx->exit_status = 1;
  ev_break (rx->loop, EVBREAK_ALL);
}

static const struct export_hooks receiver_export_hooks = {
  .ready = on_export_ready,
  .failed = on_export_failed,
  .exited = on_export_exit,
};

/* Stop accepting, close every connection still open and let the loop end
 * once the last reply (RECORDED) is flushed.  The first status given is
 * the one the process exits with. */
static void
receiver_finish (struct receiver *rx, int exit_status)
{
  if (rx->finishing)
    return;
  rx->finishing = true;
  rx->exit_status = exit_status;
  listener_stop (rx->listener);
  /* An export that did not become the guest's disk has nothing left to
   * serve, and its nbdkit would keep the loop running. */
  export_free (rx->export);
  rx->export = NULL;
  ev_timer_start (rx->loop, &rx->finish_timer);
  ev_unref (rx->loop);
}

/* HELLO was accepted.  With --export, make sure nbdkit runs (gated)
 * before this sender can freeze the source; unless the migration is
 * already final, when this sender has nothing left to commit. */
static void
session_activated (void *opaque, struct session *s)
{
  struct receiver *rx = opaque;

  assert (rx->active == NULL);
  rx->active = s;
  /* A compare-only session is the active one (a migration arriving
   * meanwhile is refused busy), but it changes nothing to serve. */
  if (session_compare_only (s))
    return;
  if (rx->export != NULL && rx->record.state != WIRE_STATE_FINAL) {
    (void) export_launch (rx->export);
    /* Ready already (an earlier sender started it): say so now;
     * otherwise the ready hook does.  Not for a prepared record: this
     * sender settles it first, and either the source had flipped (no flip
     * is left to prepare) or the copy is superseded and its nbdkit
     * replaced, whose ready hook announces the new one.  A source that
     * connected ahead to the nbdkit about to go would hold it up. */
    if (rx->record.state != WIRE_STATE_PREPARED)
      announce_exports (rx);
  }
}

/* The destination's state changed.  Prepared: with --export, open the
 * export and announce it, or, if nbdkit is still starting, answer once it
 * is ready; if it cannot start (reported), the URI stays empty, and a
 * sender that wanted it fails its flip and thaws the source, which stays
 * authoritative.  Superseded: the source kept the guest, so nobody may use
 * this copy as the disk: the gate closes and nbdkit is replaced, which
 * disconnects whoever was connected.  Incomplete: the image is about to
 * change, so the gate closes first. */
static enum session_reply
session_recorded (void *opaque, struct session *s, enum wire_dest_state state,
                  char *uri, size_t uri_len)
{
  struct receiver *rx = opaque;

  if (rx->export == NULL)
    return SESSION_REPLY_NOW;
  switch (state) {
  case WIRE_STATE_PREPARED:
    switch (export_state (rx->export)) {
    case EXPORT_STARTING:
      rx->commit_waiting = s;
      rx->commit_waiting_since_ns = time_monotonic_ns ();
      log_info ("the export of %s is not ready yet: COMMITTED waits for it",
                rx->outputs_text);
      return SESSION_REPLY_LATER;
    case EXPORT_STOPPED:
      log_warning ("no NBD server for %s (its nbdkit is not running, see "
                   "above): COMMITTED announces none",
                   rx->outputs_text);
      uri[0] = '\0';
      return SESSION_REPLY_NOW;
    case EXPORT_CLOSED:
    case EXPORT_OPEN:
      export_answer (rx, s, uri, uri_len);
      return SESSION_REPLY_NOW;
    }
    return SESSION_REPLY_NOW;
  case WIRE_STATE_SUPERSEDED:
    log_info ("closing the export of %s and restarting its nbdkit: the "
              "source stays authoritative", rx->outputs_text);
    export_relaunch (rx->export);
    return SESSION_REPLY_NOW;
  case WIRE_STATE_INCOMPLETE:
    (void) export_close (rx->export);
    return SESSION_REPLY_NOW;
  case WIRE_STATE_FINAL:
    /* What follows a final migration is decided when its session ends. */
    return SESSION_REPLY_NOW;
  }
  return SESSION_REPLY_NOW;
}

static void
session_ended (void *opaque, struct session *s, bool was_active,
               enum session_end_cause cause)
{
  struct receiver *rx = opaque;
  const char *output = rx->outputs_text;

  listener_forget (rx->listener, s);
  if (rx->commit_waiting == s)
    rx->commit_waiting = NULL;
  if (!was_active)
    return;
  rx->active = NULL;
  if (rx->finishing)
    return;
  /* A comparison says nothing of the migration: a --once run goes on
   * waiting for one, and nothing was kept or lost. */
  if (session_compare_only (s))
    return;

  if (cause == SESSION_FINAL) {
    if (rx->export != NULL && export_state (rx->export) == EXPORT_OPEN) {
      /* The image is the guest's disk now: no later sender may write to
       * it.  The export's child watcher keeps the loop, and stm-recv,
       * running until nbdkit ends or a signal stops both. */
      listener_stop (rx->listener);
      rx->finishing = true;
      rx->exit_status = 0;
    }
    else if (rx->opts->once)
      receiver_finish (rx, 0);
    return;
  }
  /* A --once run has nothing more to wait for once its sender gave up on
   * purpose; after anything else a restarted sender may still come. */
  if (cause == SESSION_ABORTED && rx->opts->once) {
    receiver_finish (rx, 1);
    return;
  }
  if (rx->record.state == WIRE_STATE_PREPARED)
    log_info ("%s is prepared (complete and durable up to sync %" PRIu64 "), "
              "but the sender left before reporting whether the source "
              "flipped to it: the source's STATUS says which copy is "
              "authoritative; waiting for the sender to come back and "
              "report it", output, rx->record.durable_seq);
  else if (rx->record.state != WIRE_STATE_FINAL)
    log_info ("%s keeps the data received so far (durable up to sync %" PRIu64
              "); waiting for a sender to resume", output, rx->record.durable_seq);
}

static const struct session_hooks receiver_session_hooks = {
  .activated = session_activated,
  .recorded = session_recorded,
  .ended = session_ended,
};

/* ---- set-up, run, wind down ---- */

int
receiver_init (struct receiver *rx, struct ev_loop *loop,
               const struct receiver_options *opts)
{
  memset (rx, 0, sizeof *rx);
  rx->loop = loop;
  rx->opts = opts;
  rx->exit_status = 1;
  events_init (&rx->events, opts->json, stdout);
  migration_record_init (&rx->record);
  ev_timer_init (&rx->finish_timer, on_finish_timeout, FINISH_FLUSH_TIMEOUT_S, 0.);
  rx->finish_timer.data = rx;
  rx->env = (struct session_env) {
    .loop = loop, .opts = opts, .events = &rx->events, .record = &rx->record,
    .active = &rx->active, .live_connections = &rx->live_connections,
    .hooks = &receiver_session_hooks, .opaque = rx,
  };

  /* Credentials first, as loading them changes nothing; then the
   * address, so that an address in use (the commonest failed start)
   * fails before the output is created; then the output.  Connections
   * are accepted, and the address announced, only once all of it is
   * ready: a sender that connects meanwhile waits in the backlog, or is
   * closed unserved if the start fails. */
  rx->creds = tls_creds_load (&opts->tls, true);
  if (rx->creds == NULL)
    return -1;
  rx->env.creds = rx->creds;
  rx->listener = listener_new (&rx->env);
  if (rx->listener == NULL)
    return -1;
  if (outputs_open (rx) == -1)
    return -1;
  rx->env.images = rx->images;
  rx->env.nimages = rx->nimages;
  rx->env.outputs_text = rx->outputs_text;
  rx->env.state = rx->state;

  /* The export is set up now (its private directory, its gate closed),
   * so that a mistake in it fails the start; its nbdkit starts at the
   * first HELLO. */
  if (opts->export_port != 0) {
    rx->export = export_new (loop, opts, &receiver_export_hooks, rx);
    if (rx->export == NULL) {
      outputs_close (rx, true);
      return -1;
    }
  }

  watch_signal (rx, &rx->sigint_watcher, SIGINT);
  watch_signal (rx, &rx->sigterm_watcher, SIGTERM);

  listener_start (rx->listener);
  return 0;
}

int
receiver_run (struct receiver *rx)
{
  ev_run (rx->loop, 0);
  if (!rx->finishing) {
    /* The listener keeps the loop alive until receiver_finish, so this
     * is a bug, not a user error. */
    log_error ("internal error: the event loop ended while still listening");
    return 1;
  }
  return rx->exit_status;
}

void
receiver_cleanup (struct receiver *rx)
{
  /* The export reads the output: stop it before the output is closed. */
  export_free (rx->export);
  rx->export = NULL;
  /* Connections refer to the credentials: close them first. */
  listener_free (rx->listener);
  rx->listener = NULL;
  if (ev_is_active (&rx->finish_timer)) {
    ev_ref (rx->loop);
    ev_timer_stop (rx->loop, &rx->finish_timer);
  }
  unwatch_signal (rx, &rx->sigint_watcher);
  unwatch_signal (rx, &rx->sigterm_watcher);
  if (rx->creds)
    tls_creds_free (rx->creds);
  rx->creds = NULL;
  outputs_close (rx, false);
}
