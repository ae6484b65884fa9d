/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the connection to the destination prepared by
 * PRECONNECT, for a later FLIP forward to take over.
 *
 * Opening the forward pool (TCP, TLS handshake, NBD negotiation, the
 * checks of the export) takes milliseconds, up to about 100 ms with X.509;
 * made inside FLIP forward it all counts as downtime.  PRECONNECT makes it
 * beforehand, on a thread of its own so that neither the control thread
 * nor any guest request waits for it, and keeps the pool idle until FLIP
 * forward to the same URI takes it (forward.h): it carries no guest
 * request before then.
 *
 * The control thread alone calls these functions and alone changes the
 * state, through one function that checks each transition
 * (preconnect_policy.h).  The connecting thread only fills in the result
 * and then says it has finished on a pipe the control thread polls.
 */
#ifndef STM_PRECONNECT_H
#define STM_PRECONNECT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control_proto.h"
#include "forward.h"
#include "preconnect_policy.h"

struct preconnect {
  enum preconnect_state state;
  char uri[CONTROL_MAX_URI];     /* CONNECTING, READY: the destination */
  struct forward *forward;       /* READY: the idle pool */
  uint64_t connect_ns;           /* READY: how long opening it took */

  /* CONNECTING only. */
  pthread_t thread;
  int done_pipe[2];              /* the thread writes a byte when finished */
  int cancel_pipe[2];            /* the control thread writes to call it off */
  uint64_t size;                 /* the size the export must have */
  uint64_t timeout_ns;           /* how long the first handle may take */
  /* Written by the thread, read by the control thread after joining it. */
  struct forward *result;
  uint64_t result_ns;
  char result_why[512];
};

#define PRECONNECT_INIT {                                             \
    .state = PRECONNECT_NONE,                                         \
    .done_pipe = { -1, -1 }, .cancel_pipe = { -1, -1 },               \
  }

/* NONE -> CONNECTING: start opening a pool to uri on a thread, the first
 * handle within timeout_ns, for an export of size bytes.  Returns -1 with
 * a sentence in why when no thread could be started (then still NONE). */
int preconnect_start (struct preconnect *pc, const char *uri, uint64_t size,
                      uint64_t timeout_ns, char *why, size_t whylen);

/* While CONNECTING: the descriptor that becomes readable when the thread
 * has finished; -1 otherwise. */
int preconnect_wait_fd (const struct preconnect *pc);

/* CONNECTING, and the thread has finished?  (Looks at preconnect_wait_fd
 * without waiting: a drop and a new PRECONNECT may have come between the
 * caller's poll and now.) */
bool preconnect_finished (const struct preconnect *pc);

/* CONNECTING -> READY or NONE, once preconnect_finished (it joins the
 * thread, which has then finished).  Returns 0 when READY, -1
 * with a sentence in why when the connection failed. */
int preconnect_finish (struct preconnect *pc, char *why, size_t whylen);

/* Is the prepared connection (READY) to uri, and still usable? */
bool preconnect_same_uri (const struct preconnect *pc, const char *uri);
bool preconnect_usable (struct preconnect *pc);

/* READY -> NONE: hand the pool over to FLIP forward uri, if it may take
 * it (preconnect_flip_takes_prepared); NULL, changing nothing, if not. */
struct forward *preconnect_take (struct preconnect *pc, const char *uri);

/* Any -> NONE: close whatever is prepared, calling off and joining a
 * thread still connecting (within a poll round: it watches for that).
 * why says, for the debug log, what made it go. */
void preconnect_drop (struct preconnect *pc, const char *why);

#endif /* STM_PRECONNECT_H */
