/* stm-send: the convergence arithmetic that decides when to cut over.
 *
 * Pure functions with no I/O and no clock: the migration loop measures each
 * pass (bytes, nanoseconds from PASS_BEGIN to DURABLE), the SYNC round trip
 * and the dirty bytes the filter reports afterwards, and asks here whether
 * the final pass would fit in the allowed downtime.  Every product is
 * computed in 128 bits and saturates, so huge images or zero-length
 * measurements never overflow or divide by zero.
 */
#ifndef STM_SENDER_CONVERGENCE_H
#define STM_SENDER_CONVERGENCE_H

#include <stdint.h>

/* "Unknown" or "too long to matter": a prediction that never fits. */
#define CONVERGENCE_INFINITE UINT64_MAX

/* What one finished pass measured and what the limits are. */
struct convergence_input {
  uint32_t pass;             /* number of the pass just finished, from 1 */
  uint64_t pass_bytes;       /* bytes that pass covered */
  uint64_t pass_ns;          /* PASS_BEGIN to DURABLE, nanoseconds */
  uint64_t dirty_bytes;      /* dirty bytes reported by STATUS after it */
  uint64_t sync_rtt_ns;      /* measured SYNC -> DURABLE round trip */
  uint64_t max_downtime_ns;  /* --max-downtime */
  uint32_t max_passes;       /* --max-passes */
};

enum convergence_decision {
  CONVERGENCE_CONTINUE,          /* run another pass */
  CONVERGENCE_CUTOVER_CLEAN,     /* nothing is dirty: cut over now */
  CONVERGENCE_CUTOVER_CONVERGED, /* the prediction fits the downtime */
  CONVERGENCE_CUTOVER_MAX_PASSES,/* out of passes: cut over anyway */
};

struct convergence_result {
  enum convergence_decision decision;
  uint64_t throughput;           /* bytes per second, saturating; 0 = unknown */
  uint64_t predicted_ns;         /* final pass; CONVERGENCE_INFINITE if unknown */
};

/* Bytes per second for bytes moved in ns nanoseconds.  A zero duration is
 * taken as one nanosecond (the pass was too quick to measure); zero bytes
 * give 0, meaning unknown. */
uint64_t convergence_throughput (uint64_t bytes, uint64_t ns);

/* Predicted duration of a final pass in nanoseconds: dirty_bytes at
 * throughput bytes/s plus the SYNC round trip.  No dirty bytes costs only
 * the round trip; unknown throughput (0) with dirty bytes is infinite. */
uint64_t convergence_predict_ns (uint64_t dirty_bytes, uint64_t throughput,
                                 uint64_t sync_rtt_ns);

/* The decision after a pass. */
void convergence_decide (const struct convergence_input *in,
                         struct convergence_result *out);

const char *convergence_decision_name (enum convergence_decision d);

#endif /* STM_SENDER_CONVERGENCE_H */
