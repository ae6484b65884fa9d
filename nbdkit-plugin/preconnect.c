/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the connection prepared by PRECONNECT (see
 * preconnect.h).
 *
 * The thread runs forward_connect for the first handle (which checks the
 * export's size and that it is writable, as FLIP forward does), then
 * forward_add_handles for the others, so that FLIP forward has nothing
 * left to open.  Both watch the cancel pipe, so a drop (RESET, another
 * URI, the owner leaving, unload) joins the thread at once instead of
 * waiting for a destination that does not answer.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "clock.h"
#include "forward.h"
#include "preconnect.h"
#include "preconnect_policy.h"

/* The one place the state changes. */
static void
set_state (struct preconnect *pc, enum preconnect_state to)
{
  assert (preconnect_transition_allowed (pc->state, to));
  nbdkit_debug ("migrate: prepared connection: %s -> %s",
                preconnect_state_name (pc->state), preconnect_state_name (to));
  pc->state = to;
}

static void
close_pipe (int p[2])
{
  for (int i = 0; i < 2; i++) {
    if (p[i] >= 0)
      close (p[i]);
    p[i] = -1;
  }
}

static void *
connect_thread (void *arg)
{
  struct preconnect *pc = arg;
  uint64_t started = time_monotonic_ns ();
  const char byte = 0;
  struct forward *f;

  f = forward_connect (pc->uri, pc->size, pc->timeout_ns,
                       "of migrate-freeze-timeout, which bounds PRECONNECT "
                       "too", pc->cancel_pipe[0],
                       pc->result_why, sizeof pc->result_why);
  if (f != NULL)
    forward_add_handles (f, pc->uri, FORWARD_EXTRA_TIMEOUT_NS,
                         pc->cancel_pipe[0]);
  pc->result = f;
  pc->result_ns = time_monotonic_ns () - started;
  /* The pipe has room: this is the only byte ever written to it. */
  if (write (pc->done_pipe[1], &byte, 1) != 1)
    nbdkit_error ("migrate: PRECONNECT to %s: cannot tell the control "
                  "thread that the connection attempt finished: %m; the "
                  "attempt is collected when the connection is dropped",
                  pc->uri);
  return NULL;
}

int
preconnect_start (struct preconnect *pc, const char *uri, uint64_t size,
                  uint64_t timeout_ns, char *why, size_t whylen)
{
  int err;

  assert (pc->state == PRECONNECT_NONE);
  snprintf (pc->uri, sizeof pc->uri, "%s", uri);
  pc->size = size;
  pc->timeout_ns = timeout_ns;
  pc->result = NULL;
  pc->result_ns = 0;
  pc->result_why[0] = '\0';
  if (pipe2 (pc->done_pipe, O_CLOEXEC | O_NONBLOCK) == -1 ||
      pipe2 (pc->cancel_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    snprintf (why, whylen, "cannot create a pipe for the connecting "
              "thread: %s", strerror (errno));
    close_pipe (pc->done_pipe);
    close_pipe (pc->cancel_pipe);
    return -1;
  }
  /* The thread inherits the control thread's mask, which blocks every
   * signal: signals stay nbdkit's main thread's. */
  err = pthread_create (&pc->thread, NULL, connect_thread, pc);
  if (err != 0) {
    snprintf (why, whylen, "cannot start the connecting thread: %s",
              strerror (err));
    close_pipe (pc->done_pipe);
    close_pipe (pc->cancel_pipe);
    return -1;
  }
  set_state (pc, PRECONNECT_CONNECTING);
  return 0;
}

int
preconnect_wait_fd (const struct preconnect *pc)
{
  return pc->state == PRECONNECT_CONNECTING ? pc->done_pipe[0] : -1;
}

bool
preconnect_finished (const struct preconnect *pc)
{
  struct pollfd pfd = { .fd = preconnect_wait_fd (pc), .events = POLLIN };

  if (pfd.fd < 0)
    return false;
  return poll (&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* Join the connecting thread and release its pipes; its result is then
 * pc->result and friends. */
static void
join_thread (struct preconnect *pc)
{
  pthread_join (pc->thread, NULL);
  close_pipe (pc->done_pipe);
  close_pipe (pc->cancel_pipe);
}

int
preconnect_finish (struct preconnect *pc, char *why, size_t whylen)
{
  assert (pc->state == PRECONNECT_CONNECTING);
  join_thread (pc);
  if (pc->result == NULL) {
    snprintf (why, whylen, "%s", pc->result_why);
    set_state (pc, PRECONNECT_NONE);
    return -1;
  }
  pc->forward = pc->result;
  pc->connect_ns = pc->result_ns;
  pc->result = NULL;
  set_state (pc, PRECONNECT_READY);
  return 0;
}

bool
preconnect_same_uri (const struct preconnect *pc, const char *uri)
{
  return pc->state != PRECONNECT_NONE && strcmp (pc->uri, uri) == 0;
}

bool
preconnect_usable (struct preconnect *pc)
{
  return pc->state == PRECONNECT_READY && forward_usable (pc->forward);
}

struct forward *
preconnect_take (struct preconnect *pc, const char *uri)
{
  struct forward *f;
  bool same = preconnect_same_uri (pc, uri);

  if (!preconnect_flip_takes_prepared (pc->state, same,
                                       same && preconnect_usable (pc)))
    return NULL;
  f = pc->forward;
  pc->forward = NULL;
  set_state (pc, PRECONNECT_NONE);
  return f;
}

void
preconnect_drop (struct preconnect *pc, const char *why)
{
  const char byte = 0;

  switch (pc->state) {
  case PRECONNECT_NONE:
    return;
  case PRECONNECT_CONNECTING:
    /* The thread polls the cancel pipe between the steps of its
     * handshakes, so the join below returns within one of them. */
    if (write (pc->cancel_pipe[1], &byte, 1) != 1)
      nbdkit_debug ("migrate: PRECONNECT to %s: cannot call the attempt "
                    "off (%m); waiting for it to end by itself", pc->uri);
    join_thread (pc);
    forward_close (pc->result);
    pc->result = NULL;
    break;
  case PRECONNECT_READY:
    forward_close (pc->forward);
    pc->forward = NULL;
    break;
  }
  nbdkit_debug ("migrate: the connection prepared for %s is closed: %s",
                pc->uri, why);
  set_state (pc, PRECONNECT_NONE);
}
