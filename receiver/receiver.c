/* stm-recv: setting up, running and winding down one receiver process.
 *
 * See receiver.h.  Winding down has two paths.  A --once run that
 * committed (or whose sender aborted) calls receiver_finish: the listener
 * stops, other connections are closed, and the loop ends by itself once the
 * last connection has flushed its final reply, because the signal watchers
 * and the safety timer do not keep the loop alive.  SIGINT/SIGTERM break
 * the loop at once: nothing is flushed halfway, and the message says
 * whether the output is complete.
 */
#include <config.h>

#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "image_writer.h"
#include "listener.h"
#include "log.h"
#include "receiver.h"
#include "tls_transport.h"

/* How long a finishing receiver waits for its last reply to be flushed to
 * a sender that stopped reading. */
#define FINISH_FLUSH_TIMEOUT_S 10.0

static void
on_signal (struct ev_loop *loop, ev_signal *w, int revents)
{
  struct receiver *rx = w->data;
  const char *name = w->signum == SIGINT ? "SIGINT" : "SIGTERM";
  const char *output = image_writer_path (rx->image);
  char id[MIGRATION_ID_TEXT_LEN];

  migration_id_format (rx->record.id, id);
  if (!rx->record.known)
    events_error (&rx->events, NULL, 0,
                  "interrupted by %s: the output %s is incomplete "
                  "(no migration was received)", name, output);
  else if (rx->record.committed)
    events_error (&rx->events, NULL, 0,
                  "interrupted by %s: the output %s is complete "
                  "(migration %s committed)", name, output, id);
  else
    events_error (&rx->events, NULL, 0,
                  "interrupted by %s: the output %s is incomplete "
                  "(migration %s not committed; durable up to sync %" PRIu64 ")",
                  name, output, id, rx->record.durable_seq);

  rx->finishing = true;
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

  /* Credentials first, as loading them changes nothing; then the output
   * (which may create the file); both before anything listens, so that a
   * sender never reaches a receiver that cannot work. */
  rx->creds = tls_creds_load (&opts->tls, true);
  if (rx->creds == NULL)
    return -1;
  rx->image = image_writer_open (opts->output);
  if (rx->image == NULL)
    return -1;

  watch_signal (rx, &rx->sigint_watcher, SIGINT);
  watch_signal (rx, &rx->sigterm_watcher, SIGTERM);

  rx->listener = listener_new (rx);
  if (rx->listener == NULL)
    return -1;
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
receiver_finish (struct receiver *rx, int exit_status)
{
  if (rx->finishing)
    return;
  rx->finishing = true;
  rx->exit_status = exit_status;
  listener_stop (rx->listener);
  ev_timer_start (rx->loop, &rx->finish_timer);
  ev_unref (rx->loop);
}

void
receiver_cleanup (struct receiver *rx)
{
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
  image_writer_close (rx->image);
  rx->image = NULL;
}
