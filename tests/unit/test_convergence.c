/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the sender's pure arithmetic: the convergence decision
 * (sender/convergence.c) and the --rate token bucket (sender/rate_limit.c).
 *
 * Cases: a pass that converges, a dirty rate above the throughput (never
 * converges, so the max-passes cap decides), zero dirty bytes, zero-length
 * measurements, and values near 2^64 that must saturate rather than wrap;
 * the freeze and control round trips in the predicted downtime; and the
 * --converge policy: when it throttles and how hard, tightening, the
 * floor, force, abort, and aiming at half the downtime budget.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "convergence.h"
#include "rate_limit.h"
#include "time_units.h"

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
   * than it sent.  Continue until the cap, then cut over anyway: after
   * pass 29 of 30, since the final pass is the 30th. */
  uint64_t dirty = 100 * MiB;
  for (uint32_t pass = 1; pass <= 29; pass++) {
    struct convergence_input in = input (pass, dirty, dirty * S / (50 * MiB), dirty * 2);
    convergence_decide (&in, &r);
    if (pass < 29)
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
  /* The final pass counts towards --max-passes: with 3, the cutover
   * begins after pass 2, so that the summary says 3 passes, not 4. */
  in.pass = 2;
  in.dirty_bytes = 10 * MiB;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
  in.pass = 1;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_false (convergence_out_of_passes (1, 3));
  assert_true (convergence_out_of_passes (2, 3));
  assert_true (convergence_out_of_passes (3, 3));
  assert_true (convergence_out_of_passes (UINT32_MAX, 2));
  assert_false (convergence_out_of_passes (0, UINT32_MAX));
  /* --max-passes 1 (refused by stm-send, which needs the full pass and
   * the final one): cut over right after the full pass. */
  in = input (1, 1024 * MiB, 100 * S, 1024 * MiB);
  in.max_passes = 1;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
}

/* Cutovers called off for overrunning the budget: a clean or converged
 * decision stands until the passes or CONVERGENCE_MAX_OVERRUNS attempts
 * run out, then it is forced (aborted under --converge=abort), so an idle
 * guest is not frozen and thawed for ever.  Out of attempts with passes
 * left is "forced", not "max-passes". */
static void
test_overruns (void **state)
{
  (void) state;
  struct convergence_result r;
  struct convergence_input in = input (2, 10 * MiB, 1 * S, 0);
  in.overruns = 1;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CLEAN);
  in.dirty_bytes = 1;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);

  in.overruns = CONVERGENCE_MAX_OVERRUNS;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_FORCED);
  in.dirty_bytes = 0;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_FORCED);
  /* Out of attempts and of passes at once: max-passes. */
  in.pass = 29;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
  in.pass = 2;

  /* Out of passes after one overrun. */
  in.overruns = 1;
  in.max_passes = 2;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);

  /* Without overruns, a clean pass is clean at any pass number. */
  in.overruns = 0;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CLEAN);

  /* The policy turns it into a forced cutover, or an abort. */
  struct convergence_policy abort_policy = CONVERGENCE_POLICY_INIT (CONVERGE_ABORT);
  struct convergence_policy throttle_policy = CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  in.overruns = CONVERGENCE_MAX_OVERRUNS;
  in.max_passes = 30;
  convergence_step (&in, &abort_policy, &r);
  assert_int_equal (r.decision, CONVERGENCE_ABORT);
  convergence_step (&in, &throttle_policy, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_FORCED);
  struct convergence_policy force_policy = CONVERGENCE_POLICY_INIT (CONVERGE_FORCE);
  convergence_step (&in, &force_policy, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_FORCED);
  assert_string_equal (convergence_decision_name (r.decision), "forced");
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
  /* Nothing to send, but a round trip over the limit: the cutover would
   * overrun, so none is planned; another pass measures the costs again
   * (until the passes run out). */
  in.sync_rtt_ns = 10 * S;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_true (r.predicted_ns > in.max_downtime_ns);
  in.pass = 29;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
}

/* Nothing dirty and the fixed costs of a cutover (here a freeze of 300
 * ms) over the budget: the pure decision plans no cutover, and the policy
 * forces one (or aborts) once empty passes have shown the costs stay,
 * never throttling, which cannot help. */
static void
test_clean_over_budget (void **state)
{
  (void) state;
  static const enum convergence_mode modes[] = {
    CONVERGE_THROTTLE, CONVERGE_FORCE, CONVERGE_ABORT
  };
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    struct convergence_policy policy = CONVERGENCE_POLICY_INIT (modes[i]);
    struct convergence_result r;
    struct convergence_input in = input (1, 1024 * MiB, 10 * S, 0);
    in.freeze_ns = 300 * MS;
    convergence_step (&in, &policy, &r);
    assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
    in = input (2, 0, 0, 0);
    in.freeze_ns = 300 * MS;
    convergence_step (&in, &policy, &r);
    assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
    in.pass = 3;
    convergence_step (&in, &policy, &r);
    assert_int_equal (r.decision, modes[i] == CONVERGE_ABORT ? CONVERGENCE_ABORT
                      : CONVERGENCE_CUTOVER_FORCED);
    assert_int_equal (policy.throttle, 0);
  }
  /* A freeze that fits: clean at once. */
  struct convergence_policy policy = CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  struct convergence_result r;
  struct convergence_input in = input (1, 1024 * MiB, 10 * S, 0);
  in.freeze_ns = 100 * MS;
  convergence_step (&in, &policy, &r);
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

/* One pass of pass_bytes in reads of chunk bytes through rl, as the
 * sender does it (pay for the next read, issue it, take what it sent),
 * beginning at start after rate_limit_restart; returns when the last
 * read was issued. */
static uint64_t
rate_limited_pass (struct rate_limit *rl, uint64_t pass_bytes, uint64_t chunk,
                   uint64_t start)
{
  uint64_t now = start;
  rate_limit_restart (rl, now);
  for (uint64_t done = 0; done < pass_bytes; done += chunk) {
    uint64_t len = pass_bytes - done < chunk ? pass_bytes - done : chunk;
    now += rate_limit_wait_for_ns (rl, len, now);
    rate_limit_take (rl, len, now);
  }
  return now;
}

/* --rate 3M over a 16 MiB pass in 1 MiB reads, burst 1 MiB: the pass's
 * average stays within 3% of the cap, on the first pass (the bucket
 * starts full) and on a pass after an idle gap (the bucket refilled).
 * Waiting only for the debt of the last read used to let the last read
 * of each pass go unpaid and the saved-up burst go first: 16 MiB in
 * 14/3 s, 3.43 MiB/s. */
static void
test_rate_limit_pass_average (void **state)
{
  (void) state;
  struct rate_limit rl;
  const uint64_t rate = 3 * MiB, t = 1000 * S;
  rate_limit_init (&rl, rate, MiB, t);

  uint64_t end = rate_limited_pass (&rl, 16 * MiB, MiB, t);
  double avg = (double) (16 * MiB) * S / (double) (end - t);
  assert_true (avg <= rate * 1.03);
  assert_true (avg >= rate * 0.97);

  /* Ten idle seconds (the SYNC, the decision): no head start. */
  uint64_t start = end + 10 * S;
  end = rate_limited_pass (&rl, 16 * MiB, MiB, start);
  avg = (double) (16 * MiB) * S / (double) (end - start);
  assert_true (avg <= rate * 1.03);

  /* Reads smaller than the burst. */
  start = end + S;
  end = rate_limited_pass (&rl, 8 * MiB, 64 * 1024, start);
  avg = (double) (8 * MiB) * S / (double) (end - start);
  assert_true (avg <= rate * 1.03 && avg >= rate * 0.97);

  /* A read bigger than the burst waits for a full bucket, not for ever;
   * the rest is a debt paid before the next read. */
  rate_limit_init (&rl, MiB, MiB / 2, t);
  rate_limit_restart (&rl, t);
  assert_int_equal (rate_limit_wait_for_ns (&rl, 2 * MiB, t), S / 2);
  rate_limit_take (&rl, 2 * MiB, t + S / 2);
  assert_int_equal (rate_limit_wait_for_ns (&rl, 0, t + S / 2), 3 * S / 2);

  /* Unlimited never waits, restart or not. */
  rate_limit_init (&rl, 0, 0, t);
  rate_limit_restart (&rl, t);
  assert_int_equal (rate_limit_wait_for_ns (&rl, UINT64_MAX, t), 0);
}

/* The freeze (drain and flush) and the control round trips made while
 * frozen count towards the downtime. */
static void
test_predict_downtime (void **state)
{
  (void) state;
  struct convergence_result r;
  /* 5 MiB at 100 MiB/s = 50 ms + 2 ms sync. */
  struct convergence_input in = input (2, 100 * MiB, 1 * S, 5 * MiB);
  in.freeze_ns = 40 * MS;
  in.control_rtt_ns = 1 * MS;
  convergence_decide (&in, &r);
  assert_int_equal (r.predicted_ns, (50 + 2 + 40 + CUTOVER_CONTROL_TRIPS) * MS);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);
  /* A slow flush alone pushes it over the limit. */
  in.freeze_ns = 150 * MS;
  convergence_decide (&in, &r);
  assert_int_equal (r.predicted_ns, (50 + 2 + 150 + CUTOVER_CONTROL_TRIPS) * MS);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  /* The commit costs its round trip, however big the final pass: the
   * pass throughput is measured up to DURABLE, so it already pays for
   * making the bytes durable. */
  in.freeze_ns = 0;
  in.control_rtt_ns = 0;
  in.pass_bytes = 1 * MiB;
  in.pass_ns = 10 * MS;                 /* 100 MiB/s */
  in.sync_rtt_ns = 10 * MS;
  in.dirty_bytes = 4 * MiB;
  assert_int_equal (convergence_predict_downtime_ns (&in, 100 * MiB), (40 + 10) * MS);
  in.dirty_bytes = MiB / 2;
  assert_int_equal (convergence_predict_downtime_ns (&in, 100 * MiB), (5 + 10) * MS);
  /* A forward flip's connection to the destination counts too, and so
   * does COMMIT's round trip after the final SYNC. */
  in.flip_ns = 30 * MS;
  assert_int_equal (convergence_predict_downtime_ns (&in, 100 * MiB), (5 + 10 + 30) * MS);
  in.commit_rtt_ns = 1 * MS;
  assert_int_equal (convergence_predict_downtime_ns (&in, 100 * MiB), (5 + 10 + 30 + 1) * MS);
  in.flip_ns = 0;
  in.commit_rtt_ns = 0;
  in.pass_bytes = 100 * MiB;
  in.pass_ns = 1 * S;
  in.sync_rtt_ns = 2 * MS;
  in.dirty_bytes = 5 * MiB;
  in.freeze_ns = 150 * MS;
  in.control_rtt_ns = 1 * MS;
  /* Unknown stays unknown; saturates rather than wraps. */
  assert_int_equal (convergence_predict_downtime_ns (&in, 0), CONVERGENCE_INFINITE);
  in.freeze_ns = UINT64_MAX - 1;
  assert_int_equal (convergence_predict_downtime_ns (&in, 100 * MiB), UINT64_MAX);
  in.freeze_ns = 0;
  in.control_rtt_ns = UINT64_MAX;
  assert_int_equal (convergence_predict_downtime_ns (&in, 100 * MiB), UINT64_MAX);
}

/* The rate stands for the biggest of the last few passes, not the last
 * one: a tiny pass is mostly round trips. */
static void
test_rate_estimate (void **state)
{
  struct convergence_rate r = { 0 }, small = { 0 };
  assert_int_equal (convergence_rate_estimate (&r), 0);
  convergence_rate_add (&r, 100 * MiB, 1 * S);          /* 100 MiB/s */
  assert_int_equal (convergence_rate_estimate (&r), 100 * MiB);
  convergence_rate_add (&r, 1 * MiB, 50 * MS);          /* 20 MiB/s, tiny */
  convergence_rate_add (&r, 0, 3 * MS);                 /* empty: ignored */
  assert_int_equal (convergence_rate_estimate (&r), 100 * MiB);
  /* Held ready for minutes: passes far too small to measure a rate
   * replace nothing once a big one is known. */
  for (int i = 0; i < 1000; i++)
    convergence_rate_add (&r, 64 * 1024, 3 * MS);
  assert_int_equal (convergence_rate_estimate (&r), 100 * MiB);
  convergence_rate_add (&r, 4 * MiB, 80 * MS);          /* 50 MiB/s */
  convergence_rate_add (&r, 8 * MiB, 160 * MS);         /* 50 MiB/s */
  convergence_rate_add (&r, 5 * MiB, 100 * MS);
  assert_int_equal (convergence_rate_estimate (&r), 100 * MiB);
  /* Four passes of a measurable size later the big one has gone: the
   * biggest left counts. */
  convergence_rate_add (&r, 6 * MiB, 120 * MS);
  assert_int_equal (convergence_rate_estimate (&r), 50 * MiB);
  /* Before any pass of that size, small passes are all there is: the
   * biggest of them counts. */
  convergence_rate_add (&small, 1 * MiB, 50 * MS);      /* 20 MiB/s */
  convergence_rate_add (&small, 2 * MiB, 40 * MS);      /* 50 MiB/s */
  assert_int_equal (convergence_rate_estimate (&small), 50 * MiB);

  /* convergence_decide predicts with the rate given, not the pass's. */
  struct convergence_input in = input (9, 1 * MiB, 50 * MS, 10 * MiB);
  struct convergence_result res;
  in.rate = 100 * MiB;
  convergence_decide (&in, &res);
  assert_int_equal (res.throughput, 100 * MiB);
  assert_int_equal (res.predicted_ns, 100 * MS + in.sync_rtt_ns);
  in.rate = 0;
  convergence_decide (&in, &res);
  assert_int_equal (res.throughput, 20 * MiB);
}

static void
test_next_throttle (void **state)
{
  (void) state;
  /* One dirty byte per written byte: a quarter of the throughput. */
  assert_int_equal (convergence_next_throttle (100 * MiB, 1, 1, 0), 25 * MiB);
  /* 16 dirty bytes per written byte (4 KiB writes, 64 KiB blocks). */
  assert_int_equal (convergence_next_throttle (64 * MiB, 16, 1, 0), 1 * MiB);
  /* Nothing known: a quarter of the throughput. */
  assert_int_equal (convergence_next_throttle (8 * MiB, 0, 0, 0), 2 * MiB);
  /* Tightening: never more than half the current throttle. */
  assert_int_equal (convergence_next_throttle (100 * MiB, 1, 1, 8 * MiB), 4 * MiB);
  /* The floor. */
  assert_int_equal (convergence_next_throttle (1000, 1, 1, 0),
                    CONVERGENCE_MIN_THROTTLE);
  assert_int_equal (convergence_next_throttle (0, 0, 0, 0), CONVERGENCE_MIN_THROTTLE);
  /* Huge values do not wrap. */
  assert_true (convergence_next_throttle (UINT64_MAX, 1, UINT64_MAX, 0) > 0);
}

static void
test_amplification (void **state)
{
  (void) state;
  uint64_t num, den;
  struct convergence_input in = input (2, 64 * MiB, 1 * S, 8 * MiB);
  in.image_size = 1024 * MiB;
  in.block_size = 64 * 1024;
  in.written_bytes = 1 * MiB;
  in.write_requests = 256;          /* 4 KiB each */
  /* Under half the image dirty: measured, 8 dirty bytes per written. */
  convergence_amplification (&in, &num, &den);
  assert_int_equal (num, 8 * MiB);
  assert_int_equal (den, 1 * MiB);
  /* Saturated: the bound for scattered 4 KiB writes in 64 KiB blocks. */
  in.dirty_bytes = 1000 * MiB;
  convergence_amplification (&in, &num, &den);
  assert_int_equal (num, 64 * 1024);
  assert_int_equal (den, 4096);
  /* Writes as large as a block, or nothing written: one for one. */
  in.write_requests = 1;
  convergence_amplification (&in, &num, &den);
  assert_int_equal (num, 1);
  assert_int_equal (den, 1);
  in.written_bytes = 0;
  in.write_requests = 0;
  convergence_amplification (&in, &num, &den);
  assert_int_equal (num, 1);
  assert_int_equal (den, 1);
}

/* A guest that keeps 64 MiB dirty however often we copy: scattered 4 KiB
 * writes over a 100 MiB image in 64 KiB blocks. */
static struct convergence_input
stalled_input (uint32_t pass, uint64_t dirty)
{
  struct convergence_input in = input (pass, 64 * MiB, 2 * S, dirty);
  in.written_bytes = 4 * MiB;
  in.write_requests = 1024;
  in.image_size = 100 * MiB;
  in.block_size = 64 * 1024;
  return in;
}

static void
test_policy_throttle (void **state)
{
  (void) state;
  struct convergence_policy p = CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  struct convergence_result r;
  struct convergence_input in;

  /* The full pass started from 64 MiB and left as much: one stalled pass;
   * pass 2 leaves a little less but under 1/16 less: noise, two. */
  in = stalled_input (1, 64 * MiB);
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  in = stalled_input (2, 63 * MiB);
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_THROTTLE);
  /* 32 MiB/s throughput, half of it, over 16 dirty bytes per written
   * byte (63 MiB is not under half the 100 MiB image: the bound). */
  assert_int_equal (r.throttle, MiB / 2);
  assert_int_equal (p.throttle, r.throttle);

  /* Still not shrinking after one throttled pass: tighten to half. */
  in = stalled_input (3, 63 * MiB);
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_THROTTLE);
  assert_int_equal (r.throttle, MiB / 4);

  /* Shrinking: leave it be. */
  in = stalled_input (4, 20 * MiB);
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_int_equal (p.throttle, MiB / 4);

  /* Fits the budget but not half of it, and still shrinking: once more. */
  in = stalled_input (5, 4 * MiB);      /* 125 + 2 ms */
  in.pass_bytes = 20 * MiB;
  in.pass_ns = 625 * MS;
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_true (r.predicted_ns <= 200 * MS && r.predicted_ns > 100 * MS);
  /* Not shrinking any more: a tighter throttle, aiming at half. */
  in.pass_bytes = 4 * MiB;
  in.pass_ns = 125 * MS;
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_THROTTLE);
  assert_int_equal (r.throttle, MiB / 8);
  /* Without a throttle to tighten: cut over at what fits. */
  struct convergence_policy q = CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  q.best_dirty = 4 * MiB;
  convergence_step (&in, &q, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);
  /* Deferred hot blocks count in the prediction. */
  in.deferred_bytes = 4 * MiB;
  q = (struct convergence_policy) CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  convergence_step (&in, &q, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_true (r.predicted_ns > 200 * MS);
  in.dirty_bytes = 0;
  convergence_decide (&in, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);
  /* Within half the budget: cut over at once. */
  in = stalled_input (6, MiB / 2);
  in.pass_bytes = MiB / 2;
  in.pass_ns = 10 * MS;
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);

  /* At the floor, no further THROTTLE: the passes run out instead. */
  p = (struct convergence_policy) CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  p.throttle = CONVERGENCE_MIN_THROTTLE;
  p.best_dirty = 64 * MiB;
  in = stalled_input (7, 64 * MiB);
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  in = stalled_input (30, 64 * MiB);
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_MAX_PASSES);
}

static void
test_policy_midpass (void **state)
{
  (void) state;
  struct convergence_policy p = CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  struct convergence_result r;
  struct convergence_input in;

  /* During the full pass: nothing stalled yet, never. */
  in = stalled_input (1, 64 * MiB);
  assert_int_equal (convergence_midpass_throttle (&in, 32 * MiB, &p), 0);
  convergence_step (&in, &p, &r);
  assert_int_equal (p.stalled, 1);
  /* During pass 2 (64 MiB to copy): 40 MiB dirty so far could still end
   * under the bar; 61 MiB cannot. */
  in = stalled_input (2, 40 * MiB);
  assert_int_equal (convergence_midpass_throttle (&in, 32 * MiB, &p), 0);
  in.dirty_bytes = 61 * MiB;
  assert_int_equal (convergence_midpass_throttle (&in, 32 * MiB, &p), MiB / 2);
  assert_int_equal (p.throttle, MiB / 2);
  /* Once only. */
  assert_int_equal (convergence_midpass_throttle (&in, 32 * MiB, &p), 0);
  /* The end of that pass is not judged: no tightening. */
  in = stalled_input (2, 64 * MiB);
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_int_equal (p.throttle, MiB / 2);
  assert_int_equal (p.stalled, 0);
  /* The next pass is: not shrinking, tighten. */
  in = stalled_input (3, 64 * MiB);
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_THROTTLE);
  assert_int_equal (r.throttle, MiB / 4);

  /* Other modes never throttle mid-pass. */
  struct convergence_policy f = CONVERGENCE_POLICY_INIT (CONVERGE_FORCE);
  f.stalled = 1;
  in = stalled_input (2, 64 * MiB);
  assert_int_equal (convergence_midpass_throttle (&in, 32 * MiB, &f), 0);
}

/* Early in a pass, the dirty set so far is extrapolated over the pass. */
static void
test_policy_midpass_extrapolated (void **state)
{
  (void) state;
  struct convergence_policy p = CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  struct convergence_result r;
  struct convergence_input in;

  assert_false (convergence_midpass_possible (&p));
  in = stalled_input (1, 64 * MiB);
  convergence_step (&in, &p, &r);
  assert_true (convergence_midpass_possible (&p));
  /* Pass 2 copies 64 MiB; the bar is 60 MiB.  10 MiB dirty after 1 MiB
   * sent: too early to extrapolate (under a thirty-second). */
  assert_int_equal (CONVERGENCE_MIDPASS_MIN_DONE_DEN, 32);
  in = stalled_input (2, 10 * MiB);
  in.pass_done_bytes = 1 * MiB;
  assert_int_equal (convergence_midpass_throttle (&in, 32 * MiB, &p), 0);
  /* After 8 MiB: on course for 80 MiB, over the bar.  The guest wrote
   * 4 MiB for those 10 MiB dirty: a quarter of 32 MiB/s over 10/4. */
  in.pass_done_bytes = 8 * MiB;
  assert_int_equal (convergence_midpass_throttle (&in, 32 * MiB, &p), 8 * MiB * 4 / 10);
  assert_false (convergence_midpass_possible (&p));

  /* On course for 40 MiB: shrinking, no throttle. */
  struct convergence_policy q = CONVERGENCE_POLICY_INIT (CONVERGE_THROTTLE);
  in = stalled_input (1, 64 * MiB);
  convergence_step (&in, &q, &r);
  in = stalled_input (2, 20 * MiB);
  in.pass_done_bytes = 32 * MiB;
  assert_int_equal (convergence_midpass_throttle (&in, 32 * MiB, &q), 0);
  assert_true (convergence_midpass_possible (&q));
}

static void
test_policy_force_and_abort (void **state)
{
  (void) state;
  struct convergence_result r;
  struct convergence_input in;

  struct convergence_policy f = CONVERGENCE_POLICY_INIT (CONVERGE_FORCE);
  in = stalled_input (1, 64 * MiB);
  convergence_step (&in, &f, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  in = stalled_input (2, 70 * MiB);
  convergence_step (&in, &f, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_FORCED);
  assert_int_equal (f.throttle, 0);

  struct convergence_policy a = CONVERGENCE_POLICY_INIT (CONVERGE_ABORT);
  in = stalled_input (1, 64 * MiB);
  convergence_step (&in, &a, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  in = stalled_input (2, 64 * MiB);
  convergence_step (&in, &a, &r);
  assert_int_equal (r.decision, CONVERGENCE_ABORT);

  /* Abort mode never cuts over at --max-passes without converging... */
  a = (struct convergence_policy) CONVERGENCE_POLICY_INIT (CONVERGE_ABORT);
  in = stalled_input (1, 40 * MiB);
  in.max_passes = 1;
  convergence_step (&in, &a, &r);
  assert_int_equal (r.decision, CONVERGENCE_ABORT);
  /* ...but does when converged, and shrinking passes never abort. */
  in.dirty_bytes = 1;
  convergence_step (&in, &a, &r);
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_CONVERGED);
  a = (struct convergence_policy) CONVERGENCE_POLICY_INIT (CONVERGE_ABORT);
  uint64_t dirty = 512 * MiB;
  for (uint32_t pass = 1; pass <= 5; pass++, dirty /= 2) {   /* down to 32 MiB */
    in = stalled_input (pass, dirty);
    in.pass_bytes = dirty * 2;
    convergence_step (&in, &a, &r);
    assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  }
}

/* The mirror window: a quarter of the budget at the rate, shared by the
 * disks, within [1 MiB, capacity]; the whole ring while the rate is
 * unknown. */
static void
test_mirror_window (void **state)
{
  const uint64_t cap = 64 * MiB;

  (void) state;
  assert_int_equal (convergence_mirror_window (0, 200 * NS_PER_MS, 1, cap), 0);
  /* 400 MB/s, 200 ms: 20 MB for one disk, 10 MB each for two. */
  assert_int_equal (convergence_mirror_window (400000000, 200 * NS_PER_MS, 1, cap),
                    20000000);
  assert_int_equal (convergence_mirror_window (400000000, 200 * NS_PER_MS, 2, cap),
                    10000000);
  /* Never under 1 MiB, never over the ring. */
  assert_int_equal (convergence_mirror_window (1000, 200 * NS_PER_MS, 1, cap), MiB);
  assert_int_equal (convergence_mirror_window (UINT64_MAX, 10 * NS_PER_S, 1, cap), cap);
}

/* Mirroring: a backlog that comes down counts as shrinking, and nothing
 * dirty is never a reason to throttle the guest. */
static void
test_policy_mirror (void **state)
{
  struct convergence_policy p = CONVERGENCE_POLICY_INIT (CONVERGE_MIRROR);
  struct convergence_result r;
  struct convergence_input in = {
    .pass = 2, .pass_bytes = 1024 * MiB, .pass_ns = NS_PER_S, .dirty_bytes = 0,
    .mirror_bytes = 256 * MiB, .max_downtime_ns = 200 * NS_PER_MS,
    .max_passes = 30, .rate = 100000000, .image_size = 1u << 30,
    .block_size = 65536,
  };

  (void) state;
  assert_false (convergence_midpass_possible (&p));
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  in.pass++;
  in.mirror_bytes /= 4;          /* the window took effect */
  convergence_step (&in, &p, &r);
  assert_int_equal (r.decision, CONVERGENCE_CONTINUE);
  assert_int_equal (p.stalled, 0);
  /* Stuck above the budget with nothing dirty: a cutover, not a throttle. */
  for (int i = 0; i < CONVERGENCE_STALL_PASSES; i++) {
    in.pass++;
    convergence_step (&in, &p, &r);
  }
  assert_int_equal (r.decision, CONVERGENCE_CUTOVER_FORCED);
  assert_int_equal (p.throttle, 0);
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
    cmocka_unit_test (test_overruns),
    cmocka_unit_test (test_zero_dirty),
    cmocka_unit_test (test_clean_over_budget),
    cmocka_unit_test (test_zero_duration_and_empty_pass),
    cmocka_unit_test (test_overflow),
    cmocka_unit_test (test_rate_limit),
    cmocka_unit_test (test_rate_limit_pass_average),
    cmocka_unit_test (test_predict_downtime),
    cmocka_unit_test (test_rate_estimate),
    cmocka_unit_test (test_next_throttle),
    cmocka_unit_test (test_amplification),
    cmocka_unit_test (test_policy_throttle),
    cmocka_unit_test (test_policy_midpass),
    cmocka_unit_test (test_policy_midpass_extrapolated),
    cmocka_unit_test (test_policy_force_and_abort),
    cmocka_unit_test (test_mirror_window),
    cmocka_unit_test (test_policy_mirror),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
