/* stm: unit tests of the sender's pure arithmetic: the convergence decision
 * (sender/convergence.c) and the --rate token bucket (sender/rate_limit.c).
 *
 * Cases: a pass that converges, a dirty rate above the throughput (never
 * converges, so the max-passes cap decides), zero dirty bytes, zero-length
 * measurements, and values near 2^64 that must saturate rather than wrap.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "convergence.h"
#include "rate_limit.h"

#define MiB (UINT64_C(1024) * 1024)
#define MS (UINT64_C(1000000))
#define S (UINT64_C(1000000000))

static void
test_throughput (void **state)
{
  (void) state;
  assert_int_equal (convergence_throughput (100 * MiB, 1 * S), 100 * MiB);
  assert_int_equal (convergence_throughput (100 * MiB, 2 * S), 50 * MiB);
  /* No bytes: unknown. */
  assert_int_equal (convergence_throughput (0, 5 * S), 0);
  /* Zero duration is one nanosecond, not a division by zero. */
  assert_int_equal (convergence_throughput (1, 0), S);
  /* Very slow is still non-zero. */
  assert_int_equal (convergence_throughput (1, 10 * S), 1);
  /* Overflow: saturates. */
  assert_int_equal (convergence_throughput (UINT64_MAX, 1), UINT64_MAX);
}

static void
test_predict (void **state)
{
  (void) state;
  /* 10 MiB at 100 MiB/s = 100 ms, plus 5 ms round trip. */
  assert_int_equal (convergence_predict_ns (10 * MiB, 100 * MiB, 5 * MS), 105 * MS);
  /* Nothing dirty: only the round trip. */
  assert_int_equal (convergence_predict_ns (0, 100 * MiB, 5 * MS), 5 * MS);
  assert_int_equal (convergence_predict_ns (0, 0, 7), 7);
  /* Unknown throughput with dirty data: infinite. */
  assert_int_equal (convergence_predict_ns (1, 0, 0), CONVERGENCE_INFINITE);
  /* Rounded up, never down. */
  assert_int_equal (convergence_predict_ns (1, 3, 0), 333333334);
  /* Huge values saturate instead of wrapping. */
  assert_int_equal (convergence_predict_ns (UINT64_MAX, 1, 0), UINT64_MAX);
  assert_int_equal (convergence_predict_ns (1, S, UINT64_MAX), UINT64_MAX);
  assert_int_equal (convergence_predict_ns (UINT64_MAX / 2, UINT64_MAX, UINT64_MAX - 1),
                    UINT64_MAX);
}

static struct convergence_input
input (uint32_t pass, uint64_t bytes, uint64_t ns, uint64_t dirty)
{
  struct convergence_input in = {
    .pass = pass, .pass_bytes = bytes, .pass_ns = ns, .dirty_bytes = dirty,
    .sync_rtt_ns = 2 * MS, .max_downtime_ns = 200 * MS, .max_passes = 30,
  };
  return in;
}

static void
test_converging (void **state)
{
  (void) state;
  struct convergence_result r;
  /* 1 GiB in 10 s (~102 MiB/s); 50 MiB dirty needs ~490 ms: continue. */
  struct convergence_input in = input (1, 1024 * MiB, 10 * S, 50 * MiB);
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_true (r.predicted_ns > 200 * MS);
  /* The next pass: 50 MiB in 0.5 s, 5 MiB dirty: ~50 ms, cut over. */
  in = input (2, 50 * MiB, 500 * MS, 5 * MiB);
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);
  assert_int_equal (r.throughput, 100 * MiB);
  assert_int_equal (r.predicted_ns, 52 * MS);
  /* Exactly at the limit still fits. */
  in = input (2, 100 * MiB, 1 * S, 20761804);   /* 198 ms + 2 ms */
  convergence_decide (&in, &r);
  assert_true (r.predicted_ns <= 200 * MS);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);
  /* One byte more does not. */
  in.dirty_bytes++;
  convergence_decide (&in, &r);
  assert_true (r.predicted_ns > 200 * MS);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
}

static void
test_dirty_rate_above_throughput (void **state)
{
  (void) state;
  struct convergence_result r;
  /* The guest dirties faster than we copy: each pass leaves more dirty
   * than it sent.  Continue until the cap, then cut over anyway. */
  uint64_t dirty = 100 * MiB;
  for (uint32_t pass = 1; pass <= 30; pass++) {
    struct convergence_input in = input (pass, dirty, dirty * S / (50 * MiB), dirty * 2);
    convergence_decide (&in, &r);
    if (pass < 30)
      assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
    else
      assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
    assert_true (r.predicted_ns > 200 * MS);
    dirty = dirty * 2 > 1024 * 1024 * MiB ? dirty : dirty * 2;
  }
}

static void
test_max_passes (void **state)
{
  (void) state;
  struct convergence_result r;
  struct convergence_input in = input (3, 10 * MiB, 10 * S, 10 * MiB);
  in.max_passes = 3;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
  /* Past the cap too (a resumed count). */
  in.pass = 4;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
  /* A converged pass at the cap says converged, not max-passes. */
  in.pass = 3;
  in.dirty_bytes = 1;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);
  /* --max-passes 1: cut over right after the full pass. */
  in = input (1, 1024 * MiB, 100 * S, 1024 * MiB);
  in.max_passes = 1;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
}

static void
test_zero_dirty (void **state)
{
  (void) state;
  struct convergence_result r;
  struct convergence_input in = input (1, 1024 * MiB, 10 * S, 0);
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CLEAN);
  assert_int_equal (r.predicted_ns, 2 * MS);
  /* Even with a round trip over the limit: there is nothing to send. */
  in.sync_rtt_ns = 10 * S;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CLEAN);
}

static void
test_zero_duration_and_empty_pass (void **state)
{
  (void) state;
  struct convergence_result r;
  /* A pass too quick to measure: throughput is huge, predicted is the
   * round trip plus a nanosecond or so. */
  struct convergence_input in = input (1, 4096, 0, 4096);
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);
  assert_true (r.predicted_ns >= 2 * MS && r.predicted_ns <= 2 * MS + 1);
  /* An empty pass measures nothing: dirty data cannot be predicted, so
   * another pass is needed (unless at the cap). */
  in = input (1, 0, 0, 4096);
  convergence_decide (&in, &r);
  assert_int_equal (r.throughput, 0);
  assert_int_equal (r.predicted_ns, CONVERGENCE_INFINITE);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  in.pass = 30;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
}

static void
test_overflow (void **state)
{
  (void) state;
  struct convergence_result r;
  struct convergence_input in = input (1, UINT64_MAX, UINT64_MAX, UINT64_MAX);
  in.sync_rtt_ns = UINT64_MAX;
  in.max_downtime_ns = UINT64_MAX;
  convergence_decide (&in, &r);
  /* Saturated predictions never count as fitting, even a limit of "max". */
  assert_int_equal (r.predicted_ns, UINT64_MAX);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_int_equal (convergence_throughput (UINT64_MAX, UINT64_MAX), S);
}

static void
test_rate_limit (void **state)
{
  (void) state;
  struct rate_limit rl;
  uint64_t t = 1000 * S;

  /* Unlimited never waits. */
  rate_limit_init (&rl, 0, 0, t);
  rate_limit_take (&rl, UINT64_MAX, t);
  assert_int_equal (rate_limit_wait_ns (&rl, t), 0);

  /* 1 MiB/s with a 1 MiB burst: the first MiB goes at once, the second
   * must wait one second. */
  rate_limit_init (&rl, MiB, MiB, t);
  assert_int_equal (rate_limit_wait_ns (&rl, t), 0);
  rate_limit_take (&rl, MiB, t);
  assert_int_equal (rate_limit_wait_ns (&rl, t), 0);
  rate_limit_take (&rl, MiB, t);
  assert_int_equal (rate_limit_wait_ns (&rl, t), S);
  /* Half a second later, half the debt is paid. */
  assert_int_equal (rate_limit_wait_ns (&rl, t + S / 2), S / 2);
  assert_int_equal (rate_limit_wait_ns (&rl, t + S), 0);
  /* A long idle time refills only up to the burst. */
  rate_limit_take (&rl, 0, t + 100 * S);
  rate_limit_take (&rl, 2 * MiB, t + 100 * S);
  assert_int_equal (rate_limit_wait_ns (&rl, t + 100 * S), S);

  /* Sustained: 100 takes of 64 KiB at 1 MiB/s need about 100/16 s. */
  rate_limit_init (&rl, MiB, 64 * 1024, t);
  uint64_t now = t;
  for (int i = 0; i < 100; i++) {
    now += rate_limit_wait_ns (&rl, now);
    rate_limit_take (&rl, 64 * 1024, now);
  }
  assert_true (now - t >= 6 * S && now - t <= 7 * S);

  /* Time going backwards and huge takes neither crash nor wrap. */
  rate_limit_init (&rl, UINT64_MAX, UINT64_MAX, t);
  rate_limit_take (&rl, UINT64_MAX, t);
  rate_limit_take (&rl, UINT64_MAX, t - S);
  assert_true (rate_limit_wait_ns (&rl, t) <= 2 * S);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_throughput),
    cmocka_unit_test (test_predict),
    cmocka_unit_test (test_converging),
    cmocka_unit_test (test_dirty_rate_above_throughput),
    cmocka_unit_test (test_max_passes),
    cmocka_unit_test (test_zero_dirty),
    cmocka_unit_test (test_zero_duration_and_empty_pass),
    cmocka_unit_test (test_overflow),
    cmocka_unit_test (test_rate_limit),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
