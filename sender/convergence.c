/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the convergence arithmetic (see convergence.h).
 *
 * Products are computed with unsigned __int128 and clamped to 64 bits, so
 * an exabyte image measured over a nanosecond still gives a sane answer.
 */
#include <config.h>

#include <stdbool.h>

#include "convergence.h"
#include "time_units.h"


static uint64_t
saturate (unsigned __int128 v)
{
  return v > UINT64_MAX ? UINT64_MAX : (uint64_t) v;
}

static uint64_t
add_saturating (uint64_t a, uint64_t b)
{
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t
convergence_throughput (uint64_t bytes, uint64_t ns)
{
  if (bytes == 0)
    return 0;
  if (ns == 0)
    ns = 1;
  uint64_t t = saturate ((unsigned __int128) bytes * NS_PER_S / ns);
  /* Non-zero bytes always mean some throughput, however slow. */
  return t == 0 ? 1 : t;
}

uint64_t
convergence_predict_ns (uint64_t dirty_bytes, uint64_t throughput,
                        uint64_t sync_rtt_ns)
{
  if (dirty_bytes == 0)
    return sync_rtt_ns;
  if (throughput == 0)
    return CONVERGENCE_INFINITE;
  /* Round the transfer time up: predicting a little long is the safe side. */
  unsigned __int128 num = (unsigned __int128) dirty_bytes * NS_PER_S;
  uint64_t transfer = saturate ((num + throughput - 1) / throughput);
  return add_saturating (transfer, sync_rtt_ns);
}

uint64_t
convergence_predict_downtime_ns (const struct convergence_input *in,
                                 uint64_t throughput)
{
  uint64_t bytes = add_saturating (add_saturating (in->dirty_bytes,
                                                   in->deferred_bytes),
                                   in->mirror_bytes);
  uint64_t t = convergence_predict_ns (bytes, throughput, in->sync_rtt_ns);
  uint64_t trips = saturate ((unsigned __int128) in->control_rtt_ns *
                             CUTOVER_CONTROL_TRIPS);
  if (t == CONVERGENCE_INFINITE)
    return t;
  return add_saturating (add_saturating (add_saturating (t, in->freeze_ns), trips),
                         add_saturating (in->flip_ns, in->commit_rtt_ns));
}

void
convergence_rate_add (struct convergence_rate *r, uint64_t bytes, uint64_t ns)
{
  if (bytes == 0)
    return;
  if (bytes < CONVERGENCE_RATE_MIN_BYTES) {
    for (unsigned i = 0; i < CONVERGENCE_RATE_PASSES; i++)
      if (r->bytes[i] >= CONVERGENCE_RATE_MIN_BYTES)
        return;
  }
  r->bytes[r->next] = bytes;
  r->ns[r->next] = ns;
  r->next = (r->next + 1) % CONVERGENCE_RATE_PASSES;
}

uint64_t
convergence_rate_estimate (const struct convergence_rate *r)
{
  unsigned best = 0;
  for (unsigned i = 1; i < CONVERGENCE_RATE_PASSES; i++)
    if (r->bytes[i] > r->bytes[best])
      best = i;
  return convergence_throughput (r->bytes[best], r->ns[best]);
}

bool
convergence_out_of_passes (uint32_t pass, uint32_t max_passes)
{
  /* The final pass will be pass + 1. */
  return pass >= max_passes || max_passes - pass <= 1;
}

void
convergence_decide (const struct convergence_input *in,
                    struct convergence_result *out)
{
  out->throughput = in->rate ? in->rate
    : convergence_throughput (in->pass_bytes, in->pass_ns);
  out->predicted_ns = convergence_predict_downtime_ns (in, out->throughput);
  out->throttle = 0;

  bool clean = in->dirty_bytes == 0 && in->deferred_bytes == 0 &&
    in->mirror_bytes == 0;
  bool fits = out->predicted_ns != CONVERGENCE_INFINITE &&
    out->predicted_ns <= in->max_downtime_ns;
  bool last = convergence_out_of_passes (in->pass, in->max_passes);

  /* Nothing dirty is not enough to plan a cutover: if the freeze, the
   * round trips and the commit alone do not fit, the cutover would
   * overrun (and be called off) however little is left to copy. */
  if (fits)
    out->decision = clean ? CONVERGENCE_CUTOVER_CLEAN : CONVERGENCE_CUTOVER_CONVERGED;
  else if (last)
    out->decision = CONVERGENCE_CUTOVER_MAX_PASSES;
  else
    out->decision = CONVERGENCE_CONTINUE;

  /* Cutovers that fit by the prediction were called off again and again:
   * the prediction misses what a cutover costs here.  Out of attempts,
   * stop aiming at the budget: that is a forced cutover, not one for
   * want of passes (unless the passes ran out too). */
  if (fits && in->overruns > 0 &&
      (in->overruns >= CONVERGENCE_MAX_OVERRUNS || last))
    out->decision = last ? CONVERGENCE_CUTOVER_MAX_PASSES : CONVERGENCE_CUTOVER_FORCED;
}

void
convergence_amplification (const struct convergence_input *in,
                           uint64_t *num, uint64_t *den)
{
  if (in->written_bytes > 0 && in->dirty_bytes > 0 &&
      in->dirty_bytes < in->image_size / 2) {
    *num = in->dirty_bytes;
    *den = in->written_bytes;
    return;
  }
  uint64_t avg = in->write_requests ? in->written_bytes / in->write_requests : 0;
  if (avg == 0 || avg >= in->block_size) {
    *num = *den = 1;
    return;
  }
  *num = in->block_size;
  *den = avg;
}

uint64_t
convergence_next_throttle (uint64_t throughput, uint64_t num, uint64_t den,
                           uint64_t current)
{
  uint64_t target = throughput / CONVERGENCE_THROTTLE_SHARE;
  uint64_t rate;

  if (num == 0 || den == 0)
    rate = target;
  else
    rate = saturate ((unsigned __int128) target * den / num);
  if (current != 0 && rate > current / 2)
    rate = current / 2;
  if (rate < CONVERGENCE_MIN_THROTTLE)
    rate = CONVERGENCE_MIN_THROTTLE;
  return rate;
}

/* The dirty bytes a pass must get under to count as shrinking. */
static uint64_t
shrink_bar (const struct convergence_input *in, const struct convergence_policy *policy)
{
  uint64_t from = policy->best_dirty < in->pass_bytes ? policy->best_dirty
                                                       : in->pass_bytes;
  return saturate ((unsigned __int128) from * CONVERGENCE_SHRINK_NUM
                   / CONVERGENCE_SHRINK_DEN);
}

bool
convergence_mirrors (enum convergence_mode mode)
{
  return mode == CONVERGE_MIRROR || mode == CONVERGE_MIRROR_SYNC;
}

uint64_t
convergence_mirror_window (uint64_t rate, uint64_t max_downtime_ns,
                           uint32_t ndisks, uint64_t capacity)
{
  if (rate == 0 || ndisks == 0)
    return 0;
  uint64_t w = saturate ((unsigned __int128) rate * max_downtime_ns
                         / CONVERGENCE_MIRROR_WINDOW_SHARE / NS_PER_S / ndisks);
  if (w < CONVERGENCE_MIRROR_MIN_WINDOW)
    w = CONVERGENCE_MIRROR_MIN_WINDOW;
  return w > capacity ? capacity : w;
}

/* Does the policy throttle the guest when the dirty set stops shrinking? */
static bool
throttles (const struct convergence_policy *policy)
{
  return policy->mode == CONVERGE_THROTTLE || convergence_mirrors (policy->mode);
}

bool
convergence_midpass_possible (const struct convergence_policy *policy)
{
  return policy->mode == CONVERGE_THROTTLE && policy->throttle == 0 &&
    !policy->acted_midpass && policy->stalled + 1 >= CONVERGENCE_STALL_PASSES;
}

/* The dirty set expected at the end of the pass, from what it is now. */
static uint64_t
extrapolated_dirty (const struct convergence_input *in)
{
  if (in->pass_done_bytes == 0 || in->pass_done_bytes >= in->pass_bytes ||
      in->pass_done_bytes < in->pass_bytes / CONVERGENCE_MIDPASS_MIN_DONE_DEN)
    return in->dirty_bytes;
  return saturate ((unsigned __int128) in->dirty_bytes * in->pass_bytes
                   / in->pass_done_bytes);
}

uint64_t
convergence_midpass_throttle (const struct convergence_input *in,
                              uint64_t throughput,
                              struct convergence_policy *policy)
{
  if (!convergence_midpass_possible (policy) ||
      in->pass_bytes == 0 || throughput == 0 ||
      extrapolated_dirty (in) < shrink_bar (in, policy))
    return 0;
  uint64_t num, den;
  convergence_amplification (in, &num, &den);
  policy->throttle = convergence_next_throttle (throughput, num, den, 0);
  policy->acted_midpass = true;
  return policy->throttle;
}

void
convergence_step (const struct convergence_input *in,
                  struct convergence_policy *policy,
                  struct convergence_result *out)
{
  convergence_decide (in, out);

  /* Throttled during this pass: what it left was dirtied mostly before
   * the throttle, so judge the throttle by the next pass, from here. */
  if (policy->acted_midpass) {
    policy->acted_midpass = false;
    policy->best_dirty = in->dirty_bytes;
    policy->stalled = 0;
    if (out->decision == CONVERGENCE_CUTOVER_CONVERGED &&
        out->predicted_ns > in->max_downtime_ns / 2 &&
        !convergence_out_of_passes (in->pass, in->max_passes))
      out->decision = CONVERGENCE_CONTINUE;
    else if ((out->decision == CONVERGENCE_CUTOVER_FORCED ||
              out->decision == CONVERGENCE_CUTOVER_MAX_PASSES) &&
             policy->mode == CONVERGE_ABORT)
      out->decision = CONVERGENCE_ABORT;
    return;
  }

  /* Is the dirty set still shrinking?  Against the smallest seen since
   * the policy last acted, and against what this pass started from (the
   * whole image for the full pass). */
  /* Mirroring, what the destination lags behind counts too: the window
   * brings it down after the first pass. */
  uint64_t measure = add_saturating (in->dirty_bytes, in->mirror_bytes);
  bool shrinking = measure < shrink_bar (in, policy);
  if (shrinking) {
    policy->best_dirty = measure;
    policy->stalled = 0;
  }
  else
    policy->stalled++;

  if (out->decision == CONVERGENCE_CUTOVER_CONVERGED &&
      out->predicted_ns > in->max_downtime_ns / 2 &&
      !convergence_out_of_passes (in->pass, in->max_passes)) {
    if (shrinking) {
      out->decision = CONVERGENCE_CONTINUE;
      return;
    }
    if (throttles (policy) && policy->throttle != 0) {
      uint64_t num, den;
      convergence_amplification (in, &num, &den);
      uint64_t t = convergence_next_throttle (out->throughput, num, den,
                                              policy->throttle);
      if (t != policy->throttle) {
        out->decision = CONVERGENCE_THROTTLE;
        out->throttle = policy->throttle = t;
        policy->best_dirty = in->dirty_bytes;
        policy->stalled = 0;
      }
    }
    return;
  }
  if (out->decision != CONVERGENCE_CONTINUE &&
      out->decision != CONVERGENCE_CUTOVER_MAX_PASSES &&
      out->decision != CONVERGENCE_CUTOVER_FORCED)
    return;

  if (out->decision != CONVERGENCE_CONTINUE) {
    /* Out of passes or of attempts: abort mode never cuts over without
     * converging. */
    if (policy->mode == CONVERGE_ABORT)
      out->decision = CONVERGENCE_ABORT;
    return;
  }

  /* Once a throttle is on, one pass is enough to judge it. */
  uint32_t patience = policy->throttle ? 1 : CONVERGENCE_STALL_PASSES;
  if (policy->stalled < patience)
    return;

  /* Nothing dirty, and still the prediction does not fit: what is over
   * the budget is the fixed cost of a cutover, which the stalled passes
   * measured again without it coming down, and which a throttle cannot
   * reduce either. */
  if (in->dirty_bytes == 0 && in->deferred_bytes == 0) {
    out->decision = policy->mode == CONVERGE_ABORT ? CONVERGENCE_ABORT
      : CONVERGENCE_CUTOVER_FORCED;
    return;
  }

  switch (policy->mode) {
  case CONVERGE_FORCE:
    out->decision = CONVERGENCE_CUTOVER_FORCED;
    return;
  case CONVERGE_ABORT:
    out->decision = CONVERGENCE_ABORT;
    return;
  case CONVERGE_THROTTLE:
  case CONVERGE_MIRROR:
  case CONVERGE_MIRROR_SYNC: {
    uint64_t num, den;
    convergence_amplification (in, &num, &den);
    out->throttle = convergence_next_throttle (out->throughput, num, den,
                                               policy->throttle);
    if (out->throttle == policy->throttle)
      return;          /* already at the floor: nothing more to do */
    out->decision = CONVERGENCE_THROTTLE;
    policy->throttle = out->throttle;
    /* Judge the new throttle against what is dirty now. */
    policy->best_dirty = in->dirty_bytes;
    policy->stalled = 0;
    return;
  }
  }
}

const char *
convergence_decision_name (enum convergence_decision d)
{
  switch (d) {
  case CONVERGENCE_CONTINUE: return "continue";
  case CONVERGENCE_CUTOVER_CLEAN: return "clean";
  case CONVERGENCE_CUTOVER_CONVERGED: return "converged";
  case CONVERGENCE_CUTOVER_MAX_PASSES: return "max-passes";
  case CONVERGENCE_THROTTLE: return "throttle";
  case CONVERGENCE_CUTOVER_FORCED: return "forced";
  case CONVERGENCE_ABORT: return "abort";
  }
  return "unknown";
}
