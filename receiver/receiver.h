/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the state of one receiver process and its life cycle.
 *
 * One stm-recv assembles one output, or one group of named outputs
 * (outputs.h).  struct receiver ties together what every connection
 * shares: the options, the TLS credentials, the event printer, the output
 * images, the record of the migration they hold and the one state file
 * that keeps that record on disk (beside the primary output), the listener, and which
 * session (if any) is the active sender.  main.c creates it, runs the
 * loop and turns the outcome into the exit status.  Sessions see only
 * struct session_env (session.h) and report through its hooks, which
 * receiver.c implements: the receiver's policy lives there.
 */
#ifndef STM_RECEIVER_RECEIVER_H
#define STM_RECEIVER_RECEIVER_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "events.h"
#include "migration_record.h"
#include "receiver_options.h"
#include "session.h"

struct image_writer;
struct export;
struct listener;
struct session;
struct state_file;
struct tls_creds;

/* Room for the outputs in words. */
#define RECEIVER_OUTPUTS_TEXT_MAX 1024

struct receiver {
  struct session_env env;           /* what every session shares (session.h) */
  struct ev_loop *loop;
  const struct receiver_options *opts;
  struct events events;
  struct tls_creds *creds;
  /* One per output, in the order of opts->outputs. */
  struct image_writer *images[WIRE_MAX_DISKS];
  unsigned nimages;
  /* The output, or the group, in words for messages: the path of the one
   * output, or "the disks NAME (PATH), ...". */
  char outputs_text[RECEIVER_OUTPUTS_TEXT_MAX];
  struct migration_record record;   /* the migration the outputs hold */
  struct state_file *state;         /* where record is kept on disk */
  struct listener *listener;
  struct session *active;           /* the session past HELLO, or NULL */
  /* Connections whose memory and socket are still held: the sessions,
   * and connections still delivering a last reply after their session
   * ended (stm_conn_count_in). */
  unsigned live_connections;
  struct export *export;            /* --export, or NULL (export.h) */
  /* The session whose COMMIT waits for the export to be ready, and
   * since when (time_monotonic_ns). */
  struct session *commit_waiting;
  uint64_t commit_waiting_since_ns;

  bool finishing;                   /* no more connections; exit when drained */
  int exit_status;                  /* valid once finishing */

  ev_signal sigint_watcher;
  ev_signal sigterm_watcher;
  ev_timer finish_timer;            /* bounds the wait for the last flush */
};

/* Load the credentials, open the output and judge it against its state
 * file (refusing an output that is not this receiver's to write, unless
 * --force), start listening and watch for SIGINT/SIGTERM.  -1 after the
 * failure was reported (exit status 1). */
int receiver_init (struct receiver *rx, struct ev_loop *loop,
                   const struct receiver_options *opts);

/* Run the loop until the receiver finishes or is interrupted; returns the
 * exit status. */
int receiver_run (struct receiver *rx);

/* Release everything (after receiver_run, or after a failed init). */
void receiver_cleanup (struct receiver *rx);

#endif /* STM_RECEIVER_RECEIVER_H */
