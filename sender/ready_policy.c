/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the decisions of the manual cutover (see ready_policy.h). */
#include <config.h>

#include "ready_policy.h"

bool
ready_decision_cuts_over (enum convergence_decision d)
{
  switch (d) {
  case CONVERGENCE_CUTOVER_CLEAN:
  case CONVERGENCE_CUTOVER_CONVERGED:
  case CONVERGENCE_CUTOVER_MAX_PASSES:
  case CONVERGENCE_CUTOVER_FORCED:
    return true;
  case CONVERGENCE_CONTINUE:
  case CONVERGENCE_THROTTLE:
  case CONVERGENCE_ABORT:
    return false;
  }
  return false;
}

enum ready_action
ready_action (enum cutover_mode mode, bool requested, bool been_ready,
              enum convergence_decision d)
{
  if (mode != CUTOVER_MANUAL || requested)
    return READY_ACT;
  if (ready_decision_cuts_over (d) || (been_ready && d == CONVERGENCE_THROTTLE))
    return READY_HOLD;
  return READY_ACT;
}

uint64_t
ready_wait_ns (const struct convergence_input *in, const struct convergence_result *res)
{
  if (res->predicted_ns == CONVERGENCE_INFINITE)
    return 0;
  if (res->predicted_ns > in->max_downtime_ns / 2 &&
      in->dirty_bytes >= READY_MIN_PASS_BYTES)
    return 0;
  return READY_WAIT_NS;
}

uint32_t
ready_max_passes (uint32_t max_passes, uint32_t uncounted)
{
  return max_passes > UINT32_MAX - uncounted ? UINT32_MAX : max_passes + uncounted;
}

/* The phases in which passes are copied, outside the cutover. */
static bool
copying (const struct ready_view *v)
{
  switch (v->phase) {
  case PHASE_PREPARING:
  case PHASE_DECIDING:
  case PHASE_READY:
    return true;
  case PHASE_PASS:
  case PHASE_PASS_SYNC:
    return !v->final_pass;
  default:
    return false;
  }
}

/* Between FREEZE and the flip. */
static bool
in_cutover (const struct ready_view *v)
{
  switch (v->phase) {
  case PHASE_FREEZING:
  case PHASE_VERIFYING:
  case PHASE_CHECKING:
  case PHASE_COMMITTING:
  case PHASE_FLIPPING:
    return true;
  case PHASE_PASS:
  case PHASE_PASS_SYNC:
    return v->final_pass;
  default:
    return false;
  }
}

static bool
flipped (const struct ready_view *v)
{
  return v->flipped || v->phase == PHASE_RECORDING || v->phase == PHASE_DONE;
}

const char *
ready_stage (const struct ready_view *v)
{
  if (v->phase == PHASE_FAILING)
    return "failing";
  if (v->phase == PHASE_FAILED)
    return "failed";
  if (flipped (v))
    return "flipped";
  if (copying (v))
    return v->ready ? "ready" : "copying";
  if (in_cutover (v))
    return "cutover";
  /* RECONNECTING, or CONNECTING and HELLO before the first answer or
   * after a lost receiver. */
  return v->started || v->phase == PHASE_RECONNECTING ? "reconnecting" : "connecting";
}

bool
ready_now (const struct ready_view *v)
{
  return v->ready && copying (v) && !flipped (v);
}

enum ready_answer
ready_cutover_answer (const struct ready_view *v)
{
  if (flipped (v))
    return READY_ANSWER_FLIPPED;
  if (v->phase == PHASE_FAILING || v->phase == PHASE_FAILED)
    return READY_ANSWER_ENDED;
  if (v->requested || in_cutover (v))
    return READY_ANSWER_IN_PROGRESS;
  if (v->mode == CUTOVER_AUTO)
    return READY_ANSWER_NOT_READY;
  /* Once it has been ready, a guest's burst that made it not ready for
   * now does not turn CUTOVER away: the cutover comes at the first pass
   * end that fits, the policy throttling as in auto mode if need be. */
  if (!ready_now (v) && !(v->been_ready && copying (v)))
    return READY_ANSWER_NOT_READY;
  return READY_ANSWER_ACCEPT;
}

enum ready_answer
ready_abort_answer (const struct ready_view *v)
{
  if (flipped (v))
    return READY_ANSWER_FLIPPED;
  /* FLIP is not interrupted: whether it happened would be unknown. */
  if (v->phase == PHASE_FLIPPING)
    return READY_ANSWER_FLIPPING;
  if (v->phase == PHASE_FAILED)
    return READY_ANSWER_ENDED;
  return READY_ANSWER_ACCEPT;
}
