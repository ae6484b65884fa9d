/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the manual cutover's state on a running migration
 * (--cutover manual; the decisions are ready_policy.h's).
 *
 * After a pass, cutover.c asks ready_hold whether to carry out a decision
 * to cut over or to hold it: held, the migration is ready; it copies on
 * (at once, or after READY_WAIT_NS in PHASE_READY), emits ready events,
 * and decides again at each pass end, until CUTOVER on the command socket
 * (commands.c, which calls ready_request_cutover).  From then on a pass
 * end whose decision is a cutover is carried out as in auto mode, and the
 * CUTOVER's reply is completed when the source has flipped
 * (ready_flipped) or when the migration ends without a flip
 * (ready_finish).  ABORT's replies are completed by ready_finish too,
 * once the failure path has thawed the source.
 *
 * This file calls pass.c (the next pass) and migration.c; cutover.c,
 * commands.c and run.c call it.
 */
#ifndef STM_SENDER_READY_H
#define STM_SENDER_READY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "command_server.h"
#include "migration.h"
#include "ready_policy.h"

struct ready {
  struct command_server *server; /* --command-socket's, or NULL */
  bool ready;                    /* the last pass end's decision was a cutover */
  bool forced;                   /* ... a forced one (or out of passes) */
  bool requested;                /* CUTOVER asked for and not done */
  bool decided;                  /* a pass end has been decided on */
  uint64_t epoch;                /* m->ctl_epoch then: a lost receiver since
                                    makes the decision stale */
  uint64_t since_ns;             /* when it first became ready; 0: never */
  uint32_t pass;                 /* the pass last decided on */
  uint64_t predicted_ns;         /* and the downtime predicted then */
  uint64_t budget_ns;            /* and the budget it was held against */
  uint32_t uncounted;            /* passes run while held (ready_max_passes) */
  struct command_reply *cutover_reply;
  struct command_reply *abort_replies[COMMAND_MAX_CLIENTS];
  size_t abort_count;
  ev_timer wait_timer;           /* PHASE_READY: the next pass */
  ev_timer event_timer;          /* the periodic ready events */
  ev_timer free_timer;           /* frees the server after the end */
};

/* Allocate m->ready and set up its timers (once, before the loop runs).
 * -1 after log_error. */
int ready_init (struct migration *m);
/* Free it (after the loop has ended; the server must be freed first). */
void ready_free (struct migration *m);

/* After a pass, convergence has decided (m->cut.decide_in, decide_res):
 * record it for STATUS and the events, and with --cutover manual hold a
 * decision to cut over until CUTOVER is asked for.  True when held (the
 * next pass is under way or waited for); false when the caller carries
 * the decision out. */
bool ready_hold (struct migration *m);

/* --max-passes as the pass-end decisions apply it: the passes run while
 * held do not count. */
uint32_t ready_passes_allowed (const struct migration *m);

/* Where the migration stands, for the answers (ready_policy.h). */
void ready_view (const struct migration *m, struct ready_view *v);

/* CUTOVER accepted (ready_cutover_answer): cut over at the next pass end
 * whose decision is a cutover, at once if waiting in PHASE_READY; reply
 * is completed when the source has flipped or the migration has failed. */
void ready_request_cutover (struct migration *m, struct command_reply *reply);
/* ABORT accepted: reply is completed when the migration has ended (the
 * caller fails it). */
void ready_hold_abort_reply (struct migration *m, struct command_reply *reply);

/* The STATUS reply's text (key=value pairs). */
void ready_status_text (const struct migration *m, char *text, size_t size);

/* The source has flipped and THAW has answered (m->cut.downtime_ms is
 * set): complete a CUTOVER's reply. */
void ready_flipped (struct migration *m);
/* The migration has ended (migration_finish): stop the timers and
 * complete every reply still owed, with what the end says of the source. */
void ready_finish (struct migration *m);

#endif /* STM_SENDER_READY_H */
