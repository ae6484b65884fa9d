/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: what the receiver remembers about the migration it holds.
 *
 * One stm-recv assembles one output, or one group of named outputs migrated
 * together (outputs.h), so it remembers one migration: its id, each
 * disk's name, image size and block size, the last SYNC sequence it made
 * durable (one sequence for the group), and the state of the destination
 * (one state for the group: a group commit is all or nothing) (docs/stm-recv.pod, "DESTINATION STATES"):
 *
 *   incomplete  data is arriving (or a sender may resume); the source is
 *               authoritative.
 *   prepared    COMMIT made the image complete and durable, but whether
 *               the source flipped to it has not been recorded: the
 *               source's STATUS says which copy is authoritative.
 *   final       the sender reported that the source flipped to this
 *               destination: it is authoritative.
 *   superseded  the sender reported that the source thawed after the
 *               commit (its flip failed): the source is authoritative and
 *               this copy is stale, though a sender may resume it.
 *
 * The commit is two-phase so that stm-recv never calls a destination
 * complete before the source has flipped to it.  On HELLO this record
 * decides the answer: RESUME when the same migration comes back with the
 * same size and something of it was made durable (PREPARED or FINAL when
 * it is in those states), MISMATCH when the same id announces another
 * size, OTHER when the output holds another migration (refused unless
 * --force), NEW otherwise.
 *
 * This is pure logic with no I/O so unit tests reach it directly.  The
 * session keeps the record in the state file beside the output
 * (state_file.h), storing it before it acknowledges anything, so a
 * restarted stm-recv loads the same record.
 */
#ifndef STM_RECEIVER_MIGRATION_RECORD_H
#define STM_RECEIVER_MIGRATION_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outputs.h"
#include "wire.h"

/* Room for a migration id printed as hex, with its NUL. */
#define MIGRATION_ID_TEXT_LEN (2 * WIRE_MIGRATION_ID_LEN + 1)

/* One disk of the migration: the name of its output ("" for the one
 * unnamed output), its image size and block size. */
struct record_disk {
  char name[WIRE_MAX_DISK_NAME + 1];
  uint64_t size;
  uint32_t block_size;
};

struct migration_record {
  bool known;                                   /* false: holds nothing yet */
  uint8_t id[WIRE_MIGRATION_ID_LEN];
  /* Disk 0's size and block size: what a one-disk record holds, kept equal
   * to disks[0] by migration_record_begin and state_parse. */
  uint64_t image_size;
  uint32_t block_size;
  uint32_t ndisks;                              /* 1.., when known */
  struct record_disk disks[WIRE_MAX_DISKS];
  uint64_t durable_seq;                         /* last DURABLE/COMMIT seq, 0 = none */
  enum wire_dest_state state;                   /* incomplete, prepared, final,
                                                 * superseded */
};

enum migration_decision {
  MIGRATION_NEW,        /* start from nothing: answer HELLO_REPLY new */
  MIGRATION_RESUME,     /* continue: answer HELLO_REPLY resume, durable_seq */
  MIGRATION_MISMATCH,   /* same id, different disks or sizes: answer ERROR
                         * mismatch */
  MIGRATION_OTHER,      /* the output holds another migration: ERROR
                         * mismatch, or NEW with --force */
};

void migration_record_init (struct migration_record *r);

/* What to answer to this HELLO, whose disk i goes to output map[i] of o
 * (outputs_match_hello).  Does not change the record.  A record
 * of this migration with nothing durable (no DURABLE or COMMITTED was ever
 * answered) decides NEW: a sender may only rely on what it was told is
 * durable, and with nothing told, starting afresh (the sender then RESETs
 * its filter) is the answer that cannot be wrong.  A record of this
 * migration whose disks (by output name) or sizes differ decides
 * MISMATCH. */
enum migration_decision migration_record_decide (const struct migration_record *r,
                                                 const struct wire_hello *hello,
                                                 const struct outputs *o,
                                                 const unsigned map[WIRE_MAX_DISKS]);

/* The HELLO was accepted with this decision (NEW or RESUME): from now on
 * the record describes the hello's migration.  NEW forgets the old
 * durable position and commit, and records the disks in the HELLO's
 * order under their outputs' names; RESUME takes the block sizes. */
void migration_record_begin (struct migration_record *r,
                             const struct wire_hello *hello,
                             const struct outputs *o,
                             const unsigned map[WIRE_MAX_DISKS],
                             enum migration_decision decision);

/* The index in r->disks of the disk named name, or -1. */
int migration_record_find (const struct migration_record *r, const char *name);

/* The whole judgement of a HELLO, pure: whether another sender is active
 * (busy), whether the HELLO is well formed, whether its disks are the
 * outputs, then (unless it only compares, which needs no record)
 * migration_record_decide, with --force (force) turning MISMATCH and
 * OTHER into a forced NEW. */
enum hello_verdict {
  HELLO_REFUSE_BUSY,       /* another sender is active */
  HELLO_REFUSE_FEATURES,   /* feature bits this receiver does not know */
  HELLO_REFUSE_GEOMETRY,   /* a block or image size the protocol refuses */
  HELLO_REFUSE_DISKS,      /* its disks are not this receiver's outputs */
  HELLO_REFUSE_MISMATCH,   /* this migration, announced at another size */
  HELLO_REFUSE_OTHER,      /* the output holds another migration */
  HELLO_ACCEPT_NEW,        /* start from nothing */
  HELLO_ACCEPT_FORCED,     /* start from nothing over what is held (--force) */
  HELLO_ACCEPT_RESUME,     /* continue (reply mode: migration_record_hello_mode) */
  HELLO_ACCEPT_COMPARE,    /* a compare-only session (WIRE_FEATURE_COMPARE_ONLY):
                            * records nothing, whatever the outputs hold */
  HELLO_ACCEPT_TAKEOVER,   /* start a new migration over an incomplete or
                            * superseded one of the same disks, keeping its
                            * data for a sender that compares (no --force
                            * needed) */
};
/* map receives the HELLO's disk-to-output map when the disks match, and
 * why the words of HELLO_REFUSE_DISKS. */
enum hello_verdict migration_record_judge_hello (const struct migration_record *r,
                                                 const struct wire_hello *hello,
                                                 const struct outputs *o,
                                                 unsigned map[WIRE_MAX_DISKS],
                                                 char why[OUTPUTS_WHY_MAX],
                                                 bool busy, bool force);

/* The wire error code and the words of a refused HELLO (a HELLO_REFUSE_*
 * verdict), for the sender and the log: outputs names the outputs in
 * words, busy_peer the active sender (for HELLO_REFUSE_BUSY), id the
 * HELLO's migration id as text, disks_why the words of
 * HELLO_REFUSE_DISKS.  Pure, like the judgement. */
uint32_t migration_record_refusal (const struct migration_record *r,
                                   enum hello_verdict verdict,
                                   const struct wire_hello *hello,
                                   const char *outputs, const char *busy_peer,
                                   const char *id, const char *disks_why,
                                   char *buf, size_t len);

/* A block size the protocol carries: a power of two from WIRE_MIN_BLOCK
 * to WIRE_MAX_BLOCK. */
bool migration_record_block_size_ok (uint32_t b);

/* The HELLO_REPLY mode for a RESUME decision: RESUME, PREPARED or FINAL
 * (a superseded copy is resumed like an incomplete one). */
enum wire_hello_mode migration_record_hello_mode (const struct migration_record *r);

/* A HELLO_REPLY mode in words: "new", "resume", "prepared", "final". */
const char *migration_record_mode_name (enum wire_hello_mode mode);

/* The image was changed (DATA or ZERO): it is incomplete again. */
void migration_record_written (struct migration_record *r);

/* Everything before SYNC seq is durable (DURABLE seq was answered). */
void migration_record_durable (struct migration_record *r, uint64_t seq);

/* COMMIT seq: everything is durable and the image complete, so it is
 * prepared.  -1 with *why set (and the record unchanged) if the record is
 * final: the source has flipped already, and a COMMIT now means the
 * sender is confused. */
int migration_record_committed (struct migration_record *r, uint64_t seq,
                                const char **why);

/* OUTCOME for the commit at seq: flipped makes a prepared record final,
 * thawed makes it superseded; both may be repeated (a sender that lost
 * RECORDED sends it again).  A thawed outcome for an incomplete record
 * changes nothing (the COMMIT it speaks of never arrived).  -1 with *why
 * set, the record unchanged, when the outcome contradicts the record: a
 * flip to a destination that is not prepared, a thaw of one that is
 * final, or a seq that is not the commit's. */
int migration_record_outcome (struct migration_record *r, uint64_t seq,
                              enum wire_outcome outcome, const char **why);

/* Which copy is authoritative in a state, in words, for the messages that
 * name the state (docs/stm-recv.pod, "DESTINATION STATES"). */
const char *migration_record_state_meaning (enum wire_dest_state state);

/* The id as 32 lowercase hex digits. */
void migration_id_format (const uint8_t id[WIRE_MIGRATION_ID_LEN],
                          char out[MIGRATION_ID_TEXT_LEN]);

/* The migration a record holds, in words, for messages: "migration ID,
 * STATE, durable up to sync N". */
void migration_record_describe (const struct migration_record *r, char *buf,
                                size_t len);

#endif /* STM_RECEIVER_MIGRATION_RECORD_H */
