/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the rules of the prepared connection (see
 * preconnect_policy.h).  Pure: no I/O, no globals.
 */
#include <config.h>

#include <stdbool.h>
#include <stdlib.h>

#include "preconnect_policy.h"

const char *
preconnect_state_name (enum preconnect_state state)
{
  switch (state) {
  case PRECONNECT_NONE: return "none";
  case PRECONNECT_CONNECTING: return "connecting";
  case PRECONNECT_READY: return "ready";
  }
  abort ();
}

bool
preconnect_transition_allowed (enum preconnect_state from,
                               enum preconnect_state to)
{
  switch (from) {
  case PRECONNECT_NONE:
    return to == PRECONNECT_CONNECTING;
  case PRECONNECT_CONNECTING:
    return to == PRECONNECT_READY || to == PRECONNECT_NONE;
  case PRECONNECT_READY:
    return to == PRECONNECT_NONE;
  }
  return false;
}

enum preconnect_action
preconnect_on_request (enum preconnect_state state, bool same_uri, bool usable)
{
  switch (state) {
  case PRECONNECT_NONE:
    return PRECONNECT_START;
  case PRECONNECT_CONNECTING:
    /* Its owner waits for its answer and sends nothing meanwhile; a
     * second attempt would only race the first. */
    return PRECONNECT_REFUSE_BUSY;
  case PRECONNECT_READY:
    /* A connection the destination has closed since is of no use: open
     * another, as for a new URI. */
    return same_uri && usable ? PRECONNECT_ANSWER_READY : PRECONNECT_REPLACE;
  }
  abort ();
}

bool
preconnect_flip_takes_prepared (enum preconnect_state state, bool same_uri,
                                bool usable)
{
  return state == PRECONNECT_READY && same_uri && usable;
}
