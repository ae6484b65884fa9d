/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the decisions of the manual cutover (--cutover manual), as
 * pure functions with no I/O and no clock, so that they are unit-tested
 * alone (tests/unit/test_ready_policy.c); ready.c and commands.c act on
 * them.
 *
 * "Ready" is what an automatic cutover would do now: the convergence
 * decision after a pass says cut over (clean, converged; or forced, or out
 * of passes, as in auto mode).  With --cutover manual that decision is
 * held instead, until CUTOVER comes on the command socket: the passes go
 * on, so that the destination stays within the downtime budget, and each
 * pass end decides again.  A pass end whose decision is not a cutover any
 * more (the guest wrote a burst) makes the migration not ready; the
 * --converge policy acts on it as in auto mode.
 */
#ifndef STM_SENDER_READY_POLICY_H
#define STM_SENDER_READY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "convergence.h"
#include "phase.h"
#include "sender_options.h"
#include "time_units.h"

/* Held ready with the prediction within half the budget, the next pass
 * waits this long: the guest's writes meanwhile are copied together,
 * rather than one tiny pass (SNAPSHOT, SYNC, the receiver's fdatasync)
 * after another. */
#define READY_WAIT_NS (200 * NS_PER_MS)
/* A ready event every this many seconds while held. */
#define READY_EVENT_INTERVAL_S 1.0

/* Is d a decision to cut over now (clean, converged, forced, out of
 * passes)? */
bool ready_decision_cuts_over (enum convergence_decision d);

enum ready_action {
  READY_ACT,           /* carry the decision out, as auto mode does */
  READY_HOLD,          /* manual, a cutover decision, no CUTOVER asked for:
                          stay ready and copy on */
};

/* What to do with decision d after a pass: hold it only in manual mode,
 * only until CUTOVER has been asked for (requested), and only when it is
 * a cutover, or a throttle once the migration has been ready (been_ready):
 * waiting for the operator must not slow the guest.  Held for minutes,
 * passes of what the guest wrote in a fraction of a second each look as
 * if the dirty set had stopped shrinking, and the --converge policy would
 * throttle a guest that the link keeps up with; and a guest that does
 * outgrow the link is only reported not ready.  Once CUTOVER is asked
 * for, the policy acts as in auto mode, throttle included, until the
 * cutover fits.  Before the first ready the policy acts as in auto mode
 * too, or a guest faster than the link would never be ready. */
enum ready_action ready_action (enum cutover_mode mode, bool requested,
                                bool been_ready, enum convergence_decision d);

/* How long a held migration waits before its next pass: 0 when the
 * prediction (res) is unknown, or over half the budget in->max_downtime_ns
 * with at least READY_MIN_PASS_BYTES dirty, since the copy must keep up
 * with the guest; READY_WAIT_NS otherwise.  A pass of less would be mostly
 * round trips and could not bring the prediction down: what keeps it over
 * half the budget then is the cutover's fixed costs and the hot blocks
 * left for the final pass, and back-to-back passes of nothing (measured:
 * 134 a second for minutes) would only burn the CPU. */
#define READY_MIN_PASS_BYTES (1024u * 1024)
uint64_t ready_wait_ns (const struct convergence_input *in,
                        const struct convergence_result *res);

/* --max-passes counts the passes up to being ready: the passes run while
 * held (uncounted) keep the destination current and do not count, or a
 * migration held for minutes would run out of passes and every cutover
 * after would be forced past the budget.  Saturating. */
uint32_t ready_max_passes (uint32_t max_passes, uint32_t uncounted);

/* What the command socket's answers and STATUS are made from. */
struct ready_view {
  enum cutover_mode mode;
  enum migration_phase phase;
  bool started;        /* the receiver answered HELLO once */
  bool ready;          /* the last pass end's decision was a cutover */
  bool been_ready;     /* it has been ready in this migration */
  bool requested;      /* CUTOVER asked for, not yet done */
  bool final_pass;     /* the cutover's final pass is running */
  bool flipped;        /* the source has flipped for this migration */
};

/* STATUS's phase=: connecting, copying, ready, reconnecting, cutover,
 * flipped, failing, failed. */
const char *ready_stage (const struct ready_view *v);

/* Would a cutover start now?  Ready, and copying (not reconnecting, not
 * already in the cutover, not ended). */
bool ready_now (const struct ready_view *v);

enum ready_answer {
  READY_ANSWER_ACCEPT,        /* do it; the reply comes when it is done */
  READY_ANSWER_NOT_READY,     /* CUTOVER: ERR EAGAIN not ready: ... */
  READY_ANSWER_IN_PROGRESS,   /* CUTOVER: ERR EALREADY cutover already in progress */
  READY_ANSWER_FLIPPING,      /* ABORT: ERR EALREADY, FLIP is being made */
  READY_ANSWER_FLIPPED,       /* ERR EALREADY the source has flipped */
  READY_ANSWER_ENDED,         /* failed already: CUTOVER ERR EIO, ABORT
                                 ERR EALREADY */
};

/* The answer to CUTOVER.  In auto mode CUTOVER never starts anything
 * (stm-send cuts over by itself once ready): not ready, or in progress. */
enum ready_answer ready_cutover_answer (const struct ready_view *v);
/* The answer to ABORT: accepted at any time before FLIP is made (the
 * failure path thaws a frozen source); in FAILING too, where the reply
 * waits for the end like the failure's own. */
enum ready_answer ready_abort_answer (const struct ready_view *v);

#endif /* STM_SENDER_READY_POLICY_H */
