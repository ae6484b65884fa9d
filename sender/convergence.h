/* SPDX-License-Identifier: BSD-3-Clause */
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

#include <stdbool.h>
#include <stdint.h>

/* "Unknown" or "too long to matter": a prediction that never fits. */
#define CONVERGENCE_INFINITE UINT64_MAX

/* What one finished pass measured and what the limits are. */
struct convergence_input {
  uint32_t pass;             /* number of the pass just finished, from 1 */
  uint64_t pass_bytes;       /* bytes that pass covered */
  uint64_t pass_ns;          /* PASS_BEGIN to DURABLE, nanoseconds */
  uint64_t dirty_bytes;      /* dirty bytes reported by STATUS after it */
  uint64_t sync_rtt_ns;      /* measured SYNC -> DURABLE round trip, which
                                stands for the final pass's SYNC too */
  uint64_t commit_rtt_ns;    /* COMMIT after it, with nothing left to write
                                (the quickest SYNC round trip seen) */
  uint64_t max_downtime_ns;  /* --max-downtime */
  uint32_t max_passes;       /* --max-passes: the final pass counts */
  /* What the freeze itself costs before the final pass can start: the
   * drain of writes in flight and the plugin flush inside FREEZE (from the
   * last FREEZE, or a measured NBD flush round trip before the first). */
  uint64_t freeze_ns;
  /* One control-socket round trip; the cutover makes CUTOVER_CONTROL_TRIPS
   * of them while frozen (the STATUS that checks the freeze is still held
   * before COMMIT, FLIP, THAW): the final SNAPSHOT is pipelined with
   * FREEZE, the final CONFIRMs with that STATUS (control_channel.h). */
  uint64_t control_rtt_ns;
  /* What FLIP costs beyond its round trip: for a forward flip the filter
   * connects to the destination (TLS handshake, NBD negotiation) while
   * the guest is held. */
  uint64_t flip_ns;
  /* For the convergence policy: guest bytes written (write, zero, trim)
   * and requests that wrote them during the pass, from the filter's
   * write_bytes and writes counters; and the geometry. */
  uint64_t written_bytes;
  uint64_t write_requests;
  /* Hot blocks left out of the passes for the final one (hot_blocks.h):
   * they count in the prediction, not in whether the dirty set shrinks. */
  uint64_t deferred_bytes;
  /* Mirroring: ring records not yet sent, which the final pass must send
   * too: counted like deferred_bytes. */
  uint64_t mirror_bytes;
  uint64_t image_size;
  uint32_t block_size;
  /* The copy rate to predict with, bytes/s (convergence_rate_estimate);
   * 0 takes pass_bytes over pass_ns. */
  uint64_t rate;
  /* Mid-pass only: how much of pass_bytes has been sent so far. */
  uint64_t pass_done_bytes;
  /* Cutovers called off so far for overrunning --max-downtime. */
  uint32_t overruns;
};

#define CUTOVER_CONTROL_TRIPS 3

/* After this many cutovers called off for overrunning the budget, a
 * cutover that would fit by the prediction is not tried against the
 * budget again: it is forced (CUTOVER_FORCED, or ABORT under
 * --converge=abort), since the passes are not what ran out.  Without a
 * limit, a guest with nothing to copy would be frozen and thawed for ever
 * when the fixed costs of a cutover (the freeze, the syncs, the round
 * trips, a forward flip's connection) do not fit --max-downtime. */
#define CONVERGENCE_MAX_OVERRUNS 4

/* Whether the pass just finished (number pass, from 1) is the last
 * ordinary pass --max-passes allows.  The final pass counts as a pass
 * (the summary's "passes" counts it), so the cutover must begin after
 * pass max_passes - 1 at the latest for the summary to say at most
 * max_passes. */
bool convergence_out_of_passes (uint32_t pass, uint32_t max_passes);

enum convergence_decision {
  CONVERGENCE_CONTINUE,          /* run another pass */
  CONVERGENCE_CUTOVER_CLEAN,     /* nothing is dirty and the fixed costs of
                                    a cutover fit the downtime: cut over */
  CONVERGENCE_CUTOVER_CONVERGED, /* the prediction fits the downtime */
  CONVERGENCE_CUTOVER_MAX_PASSES,/* out of passes: cut over anyway */
  /* Not converging, --converge=force; or, from convergence_decide too,
   * CONVERGENCE_MAX_OVERRUNS cutovers predicted to fit were called off;
   * or nothing is dirty and the fixed costs of a cutover stay over the
   * budget (the policy, once the passes have stopped shrinking anything). */
  CONVERGENCE_CUTOVER_FORCED,
  /* Only from convergence_step, the policy: */
  CONVERGENCE_THROTTLE,          /* set the guest throttle, run another pass */
  CONVERGENCE_ABORT,             /* not converging, --converge=abort */
};

struct convergence_result {
  enum convergence_decision decision;
  uint64_t throughput;           /* bytes per second, saturating; 0 = unknown */
  uint64_t predicted_ns;         /* final pass; CONVERGENCE_INFINITE if unknown */
  uint64_t throttle;             /* CONVERGENCE_THROTTLE: bytes/s to set */
};

/* --converge: what to do when the dirty set stops shrinking. */
enum convergence_mode {
  CONVERGE_THROTTLE,             /* slow guest writes down, step by step */
  CONVERGE_FORCE,                /* cut over anyway */
  CONVERGE_ABORT,                /* give up, thawed */
  /* Mirroring (mirror_stream.h): guest writes go to the destination as
   * they happen, so the dirty set holds only what the ring could not
   * take.  Should it stop shrinking all the same, the guest is throttled
   * as in CONVERGE_THROTTLE, but never during a pass: the writes a pass
   * sees are mirrored, not dirtied, and say nothing about the next. */
  CONVERGE_MIRROR,               /* acknowledged once queued */
  CONVERGE_MIRROR_SYNC,          /* acknowledged once durable there */
};

/* Does mode mirror guest writes? */
bool convergence_mirrors (enum convergence_mode mode);

/* The mirror window of each of ndisks rings (mirror_consumer_set_window):
 * what the destination may lag behind the guest, so that sending it and
 * making it durable in the final pass takes at most a quarter of the
 * downtime budget at the measured copy rate (bytes/s): a cutover is
 * planned when the prediction is within half the budget, and the
 * freeze, the round trips and the flip take their share.  At least
 * CONVERGENCE_MIRROR_MIN_WINDOW (a guest must be able to write), at most
 * capacity; 0 (the whole ring) while the rate is unknown. */
#define CONVERGENCE_MIRROR_MIN_WINDOW (1024u * 1024)
#define CONVERGENCE_MIRROR_WINDOW_SHARE 4
uint64_t convergence_mirror_window (uint64_t rate, uint64_t max_downtime_ns,
                                    uint32_t ndisks, uint64_t capacity);

/* Passes without the dirty set shrinking before the policy acts. */
#define CONVERGENCE_STALL_PASSES 2
/* The dirty set "shrinks" when it drops below this fraction of the best so
 * far: a few percent of noise is not progress. */
#define CONVERGENCE_SHRINK_NUM 15
#define CONVERGENCE_SHRINK_DEN 16
/* The guest throttle aims at the blocks it dirties arriving at this
 * fraction (1/N) of the copy rate, so that each throttled pass leaves at
 * most about a quarter of itself to the next. */
#define CONVERGENCE_THROTTLE_SHARE 4
/* The throttle never goes below this (bytes/s): a guest that writes at
 * all still gets some writing done. */
#define CONVERGENCE_MIN_THROTTLE (64u * 1024)

/* What the policy remembers from pass to pass.  Start with
 * CONVERGENCE_POLICY_INIT. */
struct convergence_policy {
  enum convergence_mode mode;
  uint64_t best_dirty;           /* smallest dirty set seen since the last act */
  uint32_t stalled;              /* passes since it last shrank */
  uint64_t throttle;             /* current guest throttle, 0 = off */
  bool acted_midpass;            /* throttled during the current pass */
};

#define CONVERGENCE_POLICY_INIT(m) \
  { .mode = (m), .best_dirty = UINT64_MAX, .stalled = 0, .throttle = 0, \
    .acted_midpass = false }

/* Bytes per second for bytes moved in ns nanoseconds.  A zero duration is
 * taken as one nanosecond (the pass was too quick to measure); zero bytes
 * give 0, meaning unknown. */
uint64_t convergence_throughput (uint64_t bytes, uint64_t ns);

/* Predicted duration of a final pass in nanoseconds: dirty_bytes at
 * throughput bytes/s plus the SYNC round trip.  No dirty bytes costs only
 * the round trip; unknown throughput (0) with dirty bytes is infinite. */
uint64_t convergence_predict_ns (uint64_t dirty_bytes, uint64_t throughput,
                                 uint64_t sync_rtt_ns);

/* Predicted downtime in nanoseconds: the freeze, the control round trips
 * made while frozen and the flip's own cost, the final pass of dirty and
 * deferred bytes at throughput, its SYNC round trip, and the COMMIT round
 * trip.  The SYNC is not scaled with the final pass: the throughput of a
 * pass is measured up to its DURABLE, so it already pays for making its
 * bytes durable. */
uint64_t convergence_predict_downtime_ns (const struct convergence_input *in,
                                          uint64_t throughput);

/* The copy rate the prediction assumes.  A pass of a few hundred
 * kilobytes is mostly round trips, and its bytes per second say little
 * about how fast a final pass of several megabytes goes; so of the last
 * CONVERGENCE_RATE_PASSES passes, the one that moved the most bytes
 * stands for the rate.  And a pass under CONVERGENCE_RATE_MIN_BYTES
 * replaces nothing once a pass of that size has been recorded: a
 * migration held ready (--cutover manual) runs small passes for minutes,
 * which would otherwise push every measured pass out, and the rate they
 * give (round trips, not throughput) made the prediction of a cutover of
 * a few megabytes grow tenfold.  Start zeroed. */
#define CONVERGENCE_RATE_PASSES 4
#define CONVERGENCE_RATE_MIN_BYTES (4u * 1024 * 1024)
struct convergence_rate {
  uint64_t bytes[CONVERGENCE_RATE_PASSES];
  uint64_t ns[CONVERGENCE_RATE_PASSES];
  unsigned next;
};

/* Record a finished pass (bytes moved in ns). */
void convergence_rate_add (struct convergence_rate *r, uint64_t bytes, uint64_t ns);
/* Bytes per second of the biggest recorded pass; 0 if none moved data. */
uint64_t convergence_rate_estimate (const struct convergence_rate *r);

/* The decision after a pass, from the prediction and --max-passes alone
 * (never THROTTLE or ABORT).  A cutover is planned (CLEAN, CONVERGED)
 * only when the predicted downtime fits max_downtime_ns, even with
 * nothing dirty: the freeze, the round trips and the commit cost time
 * too.  Out of passes it is MAX_PASSES; after CONVERGENCE_MAX_OVERRUNS
 * call-offs a fitting cutover is FORCED (MAX_PASSES if also out of
 * passes). */
void convergence_decide (const struct convergence_input *in,
                         struct convergence_result *out);

/* The decision after a pass with the --converge policy applied: as
 * convergence_decide, except that
 * - a pass that fits the downtime but not half of it is followed by
 *   another while the dirty set still shrinks, or, once throttling, by a
 *   tighter throttle (aiming at half the budget while that is cheap keeps
 *   the real downtime well inside it);
 * - when the dirty set has not shrunk for CONVERGENCE_STALL_PASSES passes
 *   (the full pass counts: it starts from the whole image), or, once
 *   throttling, for one more pass, it answers THROTTLE with a rate,
 *   CUTOVER_FORCED or ABORT by the mode;
 * - with nothing dirty and a prediction still over the budget (the fixed
 *   costs of a cutover do not fit it), once the passes have stalled as
 *   above it answers CUTOVER_FORCED, or ABORT in abort mode: neither
 *   another pass nor a throttle can make those costs smaller;
 * - FORCED after overruns, and running out of passes, answer ABORT in
 *   abort mode. */
void convergence_step (const struct convergence_input *in,
                       struct convergence_policy *policy,
                       struct convergence_result *out);

/* How many bytes of dirty blocks each byte the guest writes makes, as a
 * fraction num/den.  Measured (dirty bytes over bytes written during the
 * pass) while the dirty set is under half the image; once it covers more,
 * new writes mostly land in blocks already dirty and the measurement says
 * too little, so then the bound for scattered writes is used: a block per
 * write, block_size over the average write size (at least 1). */
void convergence_amplification (const struct convergence_input *in,
                                uint64_t *num, uint64_t *den);

/* During a pass (in describes it so far: pass_bytes is what it copies,
 * pass_done_bytes how much of it is sent, dirty_bytes what the guest has
 * dirtied since it began, written_bytes and write_requests the guest's
 * writes since the last pass ended; throughput is the copy rate).  In
 * throttle mode, with no throttle on yet and one stalled pass already
 * behind: if the dirty set will have grown, by the end of the pass, to
 * the size this pass would have to get under to count as shrinking, the
 * pass is not shrinking it, the second in a row, and waiting for its end
 * only lets the guest dirty more.  "Will have grown" extrapolates the
 * dirty set so far in proportion to the pass once at least
 * 1/CONVERGENCE_MIDPASS_MIN_DONE_DEN of it is sent (a guest writing at random
 * dirties new blocks more slowly as more are dirty, so this errs towards
 * throttling, which one stalled pass already argues for).  Returns the
 * throttle to set now (and records it, so the end of this pass is not
 * judged again), or 0. */
#define CONVERGENCE_MIDPASS_MIN_DONE_DEN 32
uint64_t convergence_midpass_throttle (const struct convergence_input *in,
                                       uint64_t throughput,
                                       struct convergence_policy *policy);
/* Whether convergence_midpass_throttle could act during the coming pass,
 * so the caller knows to look at the dirty set often. */
bool convergence_midpass_possible (const struct convergence_policy *policy);

/* The next guest throttle (bytes/s of guest writes): low enough that the
 * blocks it dirties come in at 1/CONVERGENCE_THROTTLE_SHARE of the copy
 * throughput, with
 * amplification num/den dirty bytes per written byte, and at most half
 * the current throttle; never below CONVERGENCE_MIN_THROTTLE. */
uint64_t convergence_next_throttle (uint64_t throughput, uint64_t num,
                                    uint64_t den, uint64_t current);

const char *convergence_decision_name (enum convergence_decision d);

#endif /* STM_SENDER_CONVERGENCE_H */
