/* stm-send: the cutover and the failure path.
 *
 * Cutover: FREEZE the source (t0 just before), SNAPSHOT, the final pass,
 * COMMIT and wait for COMMITTED, CONFIRM, FLIP (fence or forward), THAW
 * (t1 after its reply; the downtime is t1 - t0).  Any failure from FREEZE
 * up to a successful FLIP thaws the source, which stays authoritative; the
 * process never exits with the source frozen.
 */
#ifndef STM_SENDER_CUTOVER_H
#define STM_SENDER_CUTOVER_H

#include "migration.h"
#include "wire.h"

/* Freeze and start the final pass. */
void cutover_begin (struct migration *m);
/* The final pass has been sent (PASS_END queued): send COMMIT. */
void cutover_final_pass_sent (struct migration *m);
/* COMMITTED arrived: confirm, flip, thaw, finish. */
void cutover_on_committed (struct migration *m, const struct wire_msg *msg);

/* Give up: report msg once with the source's state, thaw if frozen, tell
 * the receiver ABORT, and end the loop with exit status 1.  Does nothing if
 * the migration already ended. */
void cutover_fail (struct migration *m, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

#endif /* STM_SENDER_CUTOVER_H */
