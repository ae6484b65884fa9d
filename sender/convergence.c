/* stm-send: the convergence arithmetic (see convergence.h).
 *
 * Products are computed with unsigned __int128 and clamped to 64 bits, so
 * an exabyte image measured over a nanosecond still gives a sane answer.
 */
#include <config.h>

#include "convergence.h"

#define NS_PER_S 1000000000u

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

void
convergence_decide (const struct convergence_input *in,
                    struct convergence_result *out)
{
  out->throughput = convergence_throughput (in->pass_bytes, in->pass_ns);
  out->predicted_ns = convergence_predict_ns (in->dirty_bytes, out->throughput,
                                              in->sync_rtt_ns);

  if (in->dirty_bytes == 0)
    out->decision = CONVERGENCE_CUTOVER_CLEAN;
  else if (out->predicted_ns != CONVERGENCE_INFINITE &&
           out->predicted_ns <= in->max_downtime_ns)
    out->decision = CONVERGENCE_CUTOVER_CONVERGED;
  else if (in->pass >= in->max_passes)
    out->decision = CONVERGENCE_CUTOVER_MAX_PASSES;
  else
    out->decision = CONVERGENCE_CONTINUE;
}

const char *
convergence_decision_name (enum convergence_decision d)
{
  switch (d) {
  case CONVERGENCE_CONTINUE: return "continue";
  case CONVERGENCE_CUTOVER_CLEAN: return "clean";
  case CONVERGENCE_CUTOVER_CONVERGED: return "converged";
  case CONVERGENCE_CUTOVER_MAX_PASSES: return "max-passes";
  }
  return "unknown";
}
