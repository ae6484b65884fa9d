/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the sender's phase transitions (sender/phase.c):
 * the paths a migration takes are legal, and nothing leaves an ended
 * migration or skips the commit on the way to the flip.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "phase.h"

/* Each consecutive pair of the path is a legal transition. */
static void
assert_path (const enum migration_phase *path, size_t n)
{
  for (size_t i = 0; i + 1 < n; i++)
    if (!phase_transition_ok (path[i], path[i + 1]))
      fail_msg ("%s -> %s refused", phase_name (path[i]), phase_name (path[i + 1]));
}

static void
test_paths (void **state)
{
  /* A migration with two passes and a cutover. */
  static const enum migration_phase ok[] = {
    PHASE_CONNECTING, PHASE_HELLO, PHASE_PREPARING, PHASE_PASS, PHASE_PASS_SYNC,
    PHASE_DECIDING, PHASE_PREPARING, PHASE_PASS, PHASE_PASS_SYNC, PHASE_DECIDING,
    PHASE_FREEZING, PHASE_PASS, PHASE_PASS_SYNC, PHASE_CHECKING, PHASE_COMMITTING,
    PHASE_FLIPPING, PHASE_RECORDING, PHASE_DONE,
  };
  /* A cutover called off: the final pass ends as an ordinary one. */
  static const enum migration_phase overrun[] = {
    PHASE_DECIDING, PHASE_FREEZING, PHASE_PASS, PHASE_PASS_SYNC, PHASE_DECIDING,
    PHASE_PREPARING,
  };
  /* Failing waits for THAW's reply, from any wait for the filter. */
  static const enum migration_phase failing[] = {
    PHASE_FREEZING, PHASE_FAILING, PHASE_FAILED,
  };
  /* The receiver lost during the final pass and after the flip. */
  static const enum migration_phase lost[] = {
    PHASE_CONNECTING, PHASE_HELLO, PHASE_PREPARING, PHASE_PASS, PHASE_RECONNECTING,
    PHASE_CONNECTING, PHASE_HELLO, PHASE_PREPARING, PHASE_PASS, PHASE_PASS_SYNC,
    PHASE_DECIDING, PHASE_FREEZING, PHASE_RECONNECTING, PHASE_CONNECTING,
    PHASE_HELLO, PHASE_PREPARING, PHASE_PASS, PHASE_PASS_SYNC, PHASE_CHECKING,
    PHASE_COMMITTING, PHASE_FLIPPING, PHASE_RECORDING, PHASE_RECONNECTING,
    PHASE_CONNECTING, PHASE_HELLO, PHASE_RECORDING, PHASE_DONE,
  };
  /* --cutover manual: held ready, waiting in READY between passes, then
   * CUTOVER; and the receiver lost or a signal while waiting. */
  static const enum migration_phase held[] = {
    PHASE_PASS_SYNC, PHASE_DECIDING, PHASE_READY, PHASE_PREPARING, PHASE_PASS,
    PHASE_PASS_SYNC, PHASE_DECIDING, PHASE_PREPARING, PHASE_PASS, PHASE_PASS_SYNC,
    PHASE_DECIDING, PHASE_FREEZING,
  };
  static const enum migration_phase held_lost[] = {
    PHASE_DECIDING, PHASE_READY, PHASE_RECONNECTING,
  };
  static const enum migration_phase held_failed[] = {
    PHASE_DECIDING, PHASE_READY, PHASE_FAILING, PHASE_FAILED,
  };
  /* A sender run again after its flip. */
  static const enum migration_phase again[] = {
    PHASE_CONNECTING, PHASE_HELLO, PHASE_DONE,
  };
  assert_path (ok, sizeof ok / sizeof ok[0]);
  assert_path (lost, sizeof lost / sizeof lost[0]);
  assert_path (again, sizeof again / sizeof again[0]);
  assert_path (overrun, sizeof overrun / sizeof overrun[0]);
  assert_path (failing, sizeof failing / sizeof failing[0]);
  assert_path (held, sizeof held / sizeof held[0]);
  assert_path (held_lost, sizeof held_lost / sizeof held_lost[0]);
  assert_path (held_failed, sizeof held_failed / sizeof held_failed[0]);
}

static void
test_refused (void **state)
{
  /* Nothing leaves an ended migration. */
  for (int p = 0; p < PHASE_COUNT; p++) {
    assert_false (phase_transition_ok (PHASE_DONE, p));
    assert_false (phase_transition_ok (PHASE_FAILED, p));
  }
  /* The flip is recorded only after a commit, never straight from a pass. */
  assert_false (phase_transition_ok (PHASE_PASS, PHASE_RECORDING));
  assert_false (phase_transition_ok (PHASE_PASS_SYNC, PHASE_RECORDING));
  assert_false (phase_transition_ok (PHASE_PASS, PHASE_COMMITTING));
  /* COMMIT only after the freeze is checked, FLIP only after COMMITTED. */
  assert_false (phase_transition_ok (PHASE_PASS_SYNC, PHASE_COMMITTING));
  assert_false (phase_transition_ok (PHASE_COMMITTING, PHASE_RECORDING));
  assert_false (phase_transition_ok (PHASE_CHECKING, PHASE_FLIPPING));
  /* --verify sits between the durable final pass and the freeze check;
   * it can fail (thaw) but never skip to the commit. */
  assert_true (phase_transition_ok (PHASE_PASS_SYNC, PHASE_VERIFYING));
  assert_true (phase_transition_ok (PHASE_VERIFYING, PHASE_CHECKING));
  assert_true (phase_transition_ok (PHASE_VERIFYING, PHASE_FAILING));
  assert_false (phase_transition_ok (PHASE_VERIFYING, PHASE_COMMITTING));
  assert_false (phase_transition_ok (PHASE_DECIDING, PHASE_VERIFYING));
  /* A pass starts only from a SNAPSHOT's reply. */
  assert_false (phase_transition_ok (PHASE_HELLO, PHASE_PASS));
  assert_false (phase_transition_ok (PHASE_DECIDING, PHASE_PASS));
  /* Failing ends failed, and nothing else. */
  for (int p = 0; p < PHASE_COUNT; p++)
    assert_int_equal (phase_transition_ok (PHASE_FAILING, p), p == PHASE_FAILED);
  assert_true (phase_is_over (PHASE_FAILING));
  assert_false (phase_is_over (PHASE_FLIPPING));
  /* A migration that never flipped cannot be done. */
  assert_false (phase_transition_ok (PHASE_PASS, PHASE_DONE));
  assert_false (phase_transition_ok (PHASE_PASS_SYNC, PHASE_DONE));
  /* After the flip there is no failing: the source is no longer served. */
  assert_false (phase_transition_ok (PHASE_RECORDING, PHASE_FAILED));
  assert_false (phase_transition_ok (PHASE_RECORDING, PHASE_PASS));
  assert_false (phase_transition_ok (PHASE_COUNT, PHASE_DONE));
  assert_true (phase_is_final (PHASE_DONE));
  assert_false (phase_is_final (PHASE_RECORDING));
  /* Held ready, the guest is never frozen: READY leads to a pass through
   * a SNAPSHOT, never straight to a freeze or a pass. */
  assert_false (phase_transition_ok (PHASE_READY, PHASE_FREEZING));
  assert_false (phase_transition_ok (PHASE_READY, PHASE_PASS));
  assert_false (phase_transition_ok (PHASE_READY, PHASE_DONE));
  assert_false (phase_transition_ok (PHASE_PASS_SYNC, PHASE_READY));
  assert_false (phase_is_over (PHASE_READY));
  assert_string_equal (phase_name (PHASE_READY), "READY");
  assert_string_equal (phase_name (PHASE_PASS_SYNC), "PASS_SYNC");
  assert_string_equal (phase_name (PHASE_COUNT), "unknown");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_paths),
    cmocka_unit_test (test_refused),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
