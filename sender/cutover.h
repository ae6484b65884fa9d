/* stm-send: acting on the convergence decisions, the cutover and the
 * failure path.
 *
 * After each durable pass, convergence.c decides and this file acts:
 * another pass, a guest write throttle (THROTTLE), hot blocks left for the
 * final pass, the cutover, or giving up.  Cutover: a flush of the source
 * and a fresh look at the dirty set, FREEZE, RESUME (if hot blocks were
 * deferred), SNAPSHOT, the final pass and its SYNC (called off, thawed,
 * if not durable in time), a STATUS to check the freeze is still held,
 * COMMIT and wait for COMMITTED (the destination is prepared), CONFIRM,
 * FLIP (fence, or forward to the URI given or announced, with our
 * credentials added), THAW, and OUTCOME flipped so that the receiver
 * records the destination final.  The downtime is the filter's own measure of
 * how long guest writes were held (THAW's frozen_us).  Any failure from
 * FREEZE up to a successful FLIP thaws the source, which stays
 * authoritative; every failure releases a throttle we set; the process
 * never exits with the source frozen.
 */
#ifndef STM_SENDER_CUTOVER_H
#define STM_SENDER_CUTOVER_H

#include "migration.h"
#include "wire.h"

/* A pass is durable and st is the filter's status after it: decide
 * (convergence.c) and act.  Returns true when another ordinary pass should
 * follow (after setting a throttle, perhaps); false when the cutover has
 * begun or the migration failed. */
bool cutover_after_pass (struct migration *m, const struct control_status *st,
                         uint64_t now, uint64_t pass_ns);

/* A SNAPSHOT for an ordinary pass is in m->extents: leave the hot blocks
 * out of it for the final pass (hot_blocks.h), within an eighth of the
 * downtime budget at the last measured throughput.  -1 after
 * cutover_fail. */
#define HOT_BLOCKS_BUDGET_DIVISOR 8
int cutover_defer_hot_blocks (struct migration *m);

/* During an ordinary pass, with the filter's status st from the periodic
 * tick or the mid-pass timer: set the guest throttle at once if the policy would set it at the
 * end of this pass anyway (convergence_midpass_throttle).  -1 after
 * cutover_fail. */
int cutover_during_pass (struct migration *m, const struct control_status *st);

/* Set up the cutover's watchers on m->loop (once, before the first pass). */
void cutover_init (struct migration *m);
/* A pass has begun: while the policy could throttle during it, look at the
 * dirty set every twentieth of a second (cutover_during_pass). */
void cutover_pass_begun (struct migration *m);
/* Freeze and start the final pass.  If sending it and making it durable
 * runs past what --max-downtime leaves for COMMIT, FLIP and THAW, the
 * cutover is called off: the source is thawed, the pass finishes as an
 * ordinary one, and convergence decides again against half the budget. */
void cutover_begin (struct migration *m);
/* The final pass has been sent (PASS_END queued): SYNC it. */
void cutover_final_pass_sent (struct migration *m);
/* The final pass is durable: COMMIT (true), or, past the deadline, call
 * the cutover off and return false, so that the caller ends the pass as
 * an ordinary one.  True also after a failure. */
bool cutover_final_pass_durable (struct migration *m);
/* COMMITTED arrived (the receiver holds the destination prepared):
 * confirm, check the freeze is still held, flip, thaw, then record the
 * outcome (cutover_send_outcome). */
void cutover_on_committed (struct migration *m, const struct wire_msg *msg);
/* The source has flipped for m->commit_seq: tell the receiver (OUTCOME
 * flipped) so that it records the destination final, and wait for its
 * RECORDED (PHASE_RECORDING).  Without a connection, the HELLO_REPLY of
 * the next one does it. */
void cutover_send_outcome (struct migration *m);
/* The source has flipped, and the receiver recorded the migration in
 * state recorded ("final"; "prepared" when it could not be told): end
 * with exit status 0. */
void cutover_complete (struct migration *m, const char *recorded);

/* Give up: report msg once with the source's state, thaw if frozen, tell
 * the receiver (OUTCOME thawed after a COMMIT, then ABORT), and end the
 * loop with exit status 1, or STM_SEND_EXIT_UNKNOWN when a FLIP's outcome
 * could not be learned.  After the source has flipped, a failure only
 * means the receiver's record could not be completed: it is reported and
 * the exit status is 0 (cutover_complete).  Does nothing if the migration
 * already ended. */
void cutover_fail (struct migration *m, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

#endif /* STM_SENDER_CUTOVER_H */
