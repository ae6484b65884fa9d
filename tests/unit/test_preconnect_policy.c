/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the migrate filter's rules for the connection
 * PRECONNECT prepares (nbdkit-plugin/preconnect_policy.c): which state
 * changes are legal, what a PRECONNECT does in each state, and when FLIP
 * forward may take the prepared connection over.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "preconnect_policy.h"

static const enum preconnect_state all_states[] = {
  PRECONNECT_NONE, PRECONNECT_CONNECTING, PRECONNECT_READY,
};
#define NSTATES (sizeof all_states / sizeof all_states[0])

static void
test_transitions (void **state)
{
  /* Exactly these four moves; nothing stays put through set_state, and
   * nothing becomes READY without connecting first. */
  bool expected[NSTATES][NSTATES] = {
    [PRECONNECT_NONE][PRECONNECT_CONNECTING] = true,
    [PRECONNECT_CONNECTING][PRECONNECT_READY] = true,
    [PRECONNECT_CONNECTING][PRECONNECT_NONE] = true,
    [PRECONNECT_READY][PRECONNECT_NONE] = true,
  };

  for (size_t i = 0; i < NSTATES; i++)
    for (size_t j = 0; j < NSTATES; j++)
      if (preconnect_transition_allowed (all_states[i], all_states[j])
          != expected[i][j])
        fail_msg ("%s -> %s: expected %s",
                  preconnect_state_name (all_states[i]),
                  preconnect_state_name (all_states[j]),
                  expected[i][j] ? "allowed" : "refused");
}

static void
test_names (void **state)
{
  assert_string_equal (preconnect_state_name (PRECONNECT_NONE), "none");
  assert_string_equal (preconnect_state_name (PRECONNECT_CONNECTING), "connecting");
  assert_string_equal (preconnect_state_name (PRECONNECT_READY), "ready");
}

static void
test_on_request (void **state)
{
  /* Nothing prepared: connect, whatever the URI. */
  assert_int_equal (preconnect_on_request (PRECONNECT_NONE, false, false),
                    PRECONNECT_START);
  /* The same URI, ready and usable: answer at once, connect nothing. */
  assert_int_equal (preconnect_on_request (PRECONNECT_READY, true, true),
                    PRECONNECT_ANSWER_READY);
  /* The same URI but the destination closed it: a new connection. */
  assert_int_equal (preconnect_on_request (PRECONNECT_READY, true, false),
                    PRECONNECT_REPLACE);
  /* Another URI: the old one goes, a new one is made. */
  assert_int_equal (preconnect_on_request (PRECONNECT_READY, false, true),
                    PRECONNECT_REPLACE);
  assert_int_equal (preconnect_on_request (PRECONNECT_READY, false, false),
                    PRECONNECT_REPLACE);
  /* One attempt at a time. */
  assert_int_equal (preconnect_on_request (PRECONNECT_CONNECTING, true, false),
                    PRECONNECT_REFUSE_BUSY);
  assert_int_equal (preconnect_on_request (PRECONNECT_CONNECTING, false, false),
                    PRECONNECT_REFUSE_BUSY);
}

static void
test_flip_takes_prepared (void **state)
{
  /* Only a ready, usable connection to the flip's URI. */
  for (size_t i = 0; i < NSTATES; i++)
    for (int same = 0; same <= 1; same++)
      for (int usable = 0; usable <= 1; usable++) {
        bool want = all_states[i] == PRECONNECT_READY && same && usable;

        if (preconnect_flip_takes_prepared (all_states[i], same, usable) != want)
          fail_msg ("state %s, same_uri %d, usable %d: expected %s",
                    preconnect_state_name (all_states[i]), same, usable,
                    want ? "taken" : "connect afresh");
      }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_transitions),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_on_request),
    cmocka_unit_test (test_flip_takes_prepared),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
