/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the rules of the prepared connection (PRECONNECT),
 * as pure functions with no I/O, so that cmocka tests can check them.
 *
 * A prepared connection is NONE (there is none), CONNECTING (a thread is
 * opening it) or READY (open, checked against the image, carrying
 * nothing).  These functions say which moves between those states are
 * allowed, what a PRECONNECT request does in each, and whether a FLIP
 * forward may take the prepared connection over.
 */
#ifndef STM_PRECONNECT_POLICY_H
#define STM_PRECONNECT_POLICY_H

#include <stdbool.h>

enum preconnect_state {
  PRECONNECT_NONE,
  PRECONNECT_CONNECTING,
  PRECONNECT_READY,
};

/* The name STATUS reports (preconnect=...). */
const char *preconnect_state_name (enum preconnect_state state);

/* May the prepared connection go from one state to the other?  NONE ->
 * CONNECTING (a PRECONNECT starts), CONNECTING -> READY (it connected),
 * CONNECTING -> NONE (it failed or was called off), READY -> NONE (it was
 * dropped or FLIP took it). */
bool preconnect_transition_allowed (enum preconnect_state from,
                                    enum preconnect_state to);

enum preconnect_action {
  PRECONNECT_START,              /* nothing prepared: connect */
  PRECONNECT_ANSWER_READY,       /* the same URI is ready: say so at once */
  PRECONNECT_REPLACE,            /* drop what is prepared, then connect */
  PRECONNECT_REFUSE_BUSY,        /* a connection is being opened already */
};

/* What PRECONNECT uri does, given the state, whether uri is the prepared
 * connection's, and whether a READY connection is still usable. */
enum preconnect_action preconnect_on_request (enum preconnect_state state,
                                              bool same_uri, bool usable);

/* May FLIP forward uri take the prepared connection over, instead of
 * connecting afresh?  Only a READY one to the same URI that is still
 * usable. */
bool preconnect_flip_takes_prepared (enum preconnect_state state,
                                     bool same_uri, bool usable);

#endif /* STM_PRECONNECT_POLICY_H */
