/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the manual cutover's decisions (sender/ready_policy.c):
 * which decisions are held, how long a held migration waits, how
 * --max-passes counts held passes, what STATUS calls the phase, and how
 * CUTOVER and ABORT are answered in each phase.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ready_policy.h"

static void
test_action (void **state)
{
  /* Every cutover decision is held in manual mode until CUTOVER. */
  static const enum convergence_decision cuts[] = {
    CONVERGENCE_CUTOVER_CLEAN, CONVERGENCE_CUTOVER_CONVERGED,
    CONVERGENCE_CUTOVER_MAX_PASSES, CONVERGENCE_CUTOVER_FORCED,
  };
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    assert_true (ready_decision_cuts_over (cuts[i]));
    assert_int_equal (ready_action (CUTOVER_MANUAL, false, false, cuts[i]), READY_HOLD);
    assert_int_equal (ready_action (CUTOVER_MANUAL, false, true, cuts[i]), READY_HOLD);
    assert_int_equal (ready_action (CUTOVER_MANUAL, true, true, cuts[i]), READY_ACT);
    assert_int_equal (ready_action (CUTOVER_AUTO, false, true, cuts[i]), READY_ACT);
  }
  /* Copying on and giving up are never held; throttling neither, until
   * the migration has been ready: then, held, the guest is not slowed
   * while the operator decides; asked to cut over, it is again. */
  static const enum convergence_decision others[] = {
    CONVERGENCE_CONTINUE, CONVERGENCE_THROTTLE, CONVERGENCE_ABORT,
  };
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    assert_false (ready_decision_cuts_over (others[i]));
    assert_int_equal (ready_action (CUTOVER_MANUAL, false, false, others[i]), READY_ACT);
    assert_int_equal (ready_action (CUTOVER_MANUAL, true, true, others[i]), READY_ACT);
    assert_int_equal (ready_action (CUTOVER_AUTO, false, true, others[i]), READY_ACT);
    assert_int_equal (ready_action (CUTOVER_MANUAL, false, true, others[i]),
                      others[i] == CONVERGENCE_THROTTLE ? READY_HOLD : READY_ACT);
  }
}

static void
test_wait (void **state)
{
  struct convergence_input in = { .max_downtime_ns = 200 * NS_PER_MS,
                                  .dirty_bytes = 8 * READY_MIN_PASS_BYTES };
  struct convergence_result res = { .predicted_ns = 20 * NS_PER_MS };

  /* Well within the budget: wait for more to copy at once. */
  assert_int_equal (ready_wait_ns (&in, &res), READY_WAIT_NS);
  res.predicted_ns = 100 * NS_PER_MS;
  assert_int_equal (ready_wait_ns (&in, &res), READY_WAIT_NS);
  /* Over half of it (or unknown): the copy must keep up, no wait. */
  res.predicted_ns = 100 * NS_PER_MS + 1;
  assert_int_equal (ready_wait_ns (&in, &res), 0);
  res.predicted_ns = 300 * NS_PER_MS;
  assert_int_equal (ready_wait_ns (&in, &res), 0);
  res.predicted_ns = CONVERGENCE_INFINITE;
  assert_int_equal (ready_wait_ns (&in, &res), 0);
  /* Over half the budget with next to nothing dirty: the fixed costs and
   * the deferred hot blocks do it, which no pass shrinks: wait. */
  res.predicted_ns = 102 * NS_PER_MS;
  in.dirty_bytes = 65536;
  assert_int_equal (ready_wait_ns (&in, &res), READY_WAIT_NS);
  in.dirty_bytes = READY_MIN_PASS_BYTES;
  assert_int_equal (ready_wait_ns (&in, &res), 0);
}

static void
test_max_passes (void **state)
{
  assert_int_equal (ready_max_passes (30, 0), 30);
  assert_int_equal (ready_max_passes (30, 100), 130);
  assert_int_equal (ready_max_passes (UINT32_MAX - 1, 5), UINT32_MAX);
  /* Held passes do not bring a migration out of passes: after pass 5 of
   * 10 and 50 held passes, pass 55 is not the last. */
  assert_false (convergence_out_of_passes (55, ready_max_passes (10, 50)));
  assert_true (convergence_out_of_passes (59, ready_max_passes (10, 50)));
}

static struct ready_view
view (enum migration_phase phase, bool ready)
{
  return (struct ready_view) {
    .mode = CUTOVER_MANUAL, .phase = phase, .started = true, .ready = ready,
  };
}

static void
test_stage (void **state)
{
  struct ready_view v = view (PHASE_CONNECTING, false);

  v.started = false;
  assert_string_equal (ready_stage (&v), "connecting");
  v.started = true;
  assert_string_equal (ready_stage (&v), "reconnecting");
  v = view (PHASE_RECONNECTING, true);
  assert_string_equal (ready_stage (&v), "reconnecting");
  assert_false (ready_now (&v));
  v = view (PHASE_PASS, false);
  assert_string_equal (ready_stage (&v), "copying");
  assert_false (ready_now (&v));
  static const enum migration_phase copying[] = {
    PHASE_PREPARING, PHASE_PASS, PHASE_PASS_SYNC, PHASE_DECIDING, PHASE_READY,
  };
  for (size_t i = 0; i < sizeof copying / sizeof copying[0]; i++) {
    v = view (copying[i], true);
    assert_string_equal (ready_stage (&v), "ready");
    assert_true (ready_now (&v));
  }
  /* The final pass is the cutover's. */
  v = view (PHASE_PASS_SYNC, true);
  v.final_pass = true;
  assert_string_equal (ready_stage (&v), "cutover");
  assert_false (ready_now (&v));
  static const enum migration_phase cutover[] = {
    PHASE_FREEZING, PHASE_CHECKING, PHASE_COMMITTING, PHASE_FLIPPING,
  };
  for (size_t i = 0; i < sizeof cutover / sizeof cutover[0]; i++) {
    v = view (cutover[i], true);
    assert_string_equal (ready_stage (&v), "cutover");
    assert_false (ready_now (&v));
  }
  v = view (PHASE_FLIPPING, true);
  v.flipped = true;
  assert_string_equal (ready_stage (&v), "flipped");
  v = view (PHASE_RECORDING, true);
  assert_string_equal (ready_stage (&v), "flipped");
  v = view (PHASE_DONE, false);
  assert_string_equal (ready_stage (&v), "flipped");
  v = view (PHASE_FAILING, true);
  assert_string_equal (ready_stage (&v), "failing");
  assert_false (ready_now (&v));
  v = view (PHASE_FAILED, false);
  assert_string_equal (ready_stage (&v), "failed");
}

static void
test_cutover_answer (void **state)
{
  struct ready_view v = view (PHASE_READY, true);

  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_ACCEPT);
  v = view (PHASE_PASS, true);
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_ACCEPT);
  /* Not converged, or the receiver lost: ask again later. */
  v = view (PHASE_PASS, false);
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_NOT_READY);
  v = view (PHASE_RECONNECTING, true);
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_NOT_READY);
  v = view (PHASE_HELLO, false);
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_NOT_READY);
  /* Ready once, not for now (a burst of guest writes): taken, the cutover
   * comes at the first pass end that fits; but not while reconnecting. */
  v = view (PHASE_PASS, false);
  v.been_ready = true;
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_ACCEPT);
  v = view (PHASE_RECONNECTING, false);
  v.been_ready = true;
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_NOT_READY);
  /* Asked for already, or under way. */
  v = view (PHASE_PASS, true);
  v.requested = true;
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_IN_PROGRESS);
  v = view (PHASE_COMMITTING, false);
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_IN_PROGRESS);
  v = view (PHASE_PASS, true);
  v.final_pass = true;
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_IN_PROGRESS);
  /* Auto mode cuts over by itself: CUTOVER never starts one. */
  v = view (PHASE_READY, true);
  v.mode = CUTOVER_AUTO;
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_NOT_READY);
  v = view (PHASE_FREEZING, true);
  v.mode = CUTOVER_AUTO;
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_IN_PROGRESS);
  /* The ends. */
  v = view (PHASE_RECORDING, false);
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_FLIPPED);
  v = view (PHASE_FAILING, true);
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_ENDED);
  v = view (PHASE_FAILED, false);
  assert_int_equal (ready_cutover_answer (&v), READY_ANSWER_ENDED);
}

static void
test_abort_answer (void **state)
{
  /* Accepted in every phase before FLIP, frozen or not, and while the
   * failure path is under way. */
  static const enum migration_phase ok[] = {
    PHASE_CONNECTING, PHASE_HELLO, PHASE_PREPARING, PHASE_PASS, PHASE_PASS_SYNC,
    PHASE_DECIDING, PHASE_READY, PHASE_FREEZING, PHASE_CHECKING, PHASE_COMMITTING,
    PHASE_RECONNECTING, PHASE_FAILING,
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    struct ready_view v = view (ok[i], i % 2 == 0);
    assert_int_equal (ready_abort_answer (&v), READY_ANSWER_ACCEPT);
  }
  struct ready_view v = view (PHASE_FLIPPING, false);
  assert_int_equal (ready_abort_answer (&v), READY_ANSWER_FLIPPING);
  v.flipped = true;
  assert_int_equal (ready_abort_answer (&v), READY_ANSWER_FLIPPED);
  v = view (PHASE_RECORDING, false);
  assert_int_equal (ready_abort_answer (&v), READY_ANSWER_FLIPPED);
  v = view (PHASE_DONE, false);
  assert_int_equal (ready_abort_answer (&v), READY_ANSWER_FLIPPED);
  v = view (PHASE_FAILED, false);
  assert_int_equal (ready_abort_answer (&v), READY_ANSWER_ENDED);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_action),
    cmocka_unit_test (test_wait),
    cmocka_unit_test (test_max_passes),
    cmocka_unit_test (test_stage),
    cmocka_unit_test (test_cutover_answer),
    cmocka_unit_test (test_abort_answer),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
