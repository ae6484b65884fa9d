/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the text of the state file kept beside the output, and the
 * judgement of an output against it at startup.
 *
 * The state file (OUTPUT.stm-state, see state_file.h for where and how it
 * is written) is what lets a restarted stm-recv recognise the migration its
 * output holds.  It is a short, versioned text file that a person can read
 * (docs/protocol.md, "The receiver's state file"):
 *
 *   stm-recv-state 2
 *   migration_id 0123456789abcdef0123456789abcdef
 *   image_size 1073741824
 *   block_size 65536
 *   durable_seq 12
 *   state incomplete
 *
 * That is version 2, for the one unnamed output.  A record of named outputs
 * (a group of disks, outputs.h; one named output too) is version 3, one
 * "disk NAME SIZE BLOCK" line per disk in place of image_size and
 * block_size:
 *
 *   stm-recv-state 3
 *   migration_id 0123456789abcdef0123456789abcdef
 *   disks 2
 *   disk data 1048576 4096
 *   disk root 8589934592 65536
 *   durable_seq 12
 *   state incomplete
 *
 * One file records the whole group, so recording it (one rename) is
 * atomic for all its disks: a group commit is all or nothing.
 *
 * (state is one of incomplete, prepared, final and superseded; see
 * migration_record.h.  Version 1 had "complete yes|no" instead, which
 * could not tell a prepared commit from a final one; it is refused as
 * invalid, and --force starts such an output over.)
 *
 * The first line names the format and its version; then every key exactly
 * once, in this order, each line ending with a newline.  Anything else
 * (a missing or repeated key, a number out of range, trailing text, a
 * newer version) makes the whole file invalid: a file this small is
 * either exactly what stm-recv wrote or it is not to be trusted.
 *
 * This is pure logic with no I/O so the unit tests reach it directly
 * (tests/unit/test_state_file.c).
 */
#ifndef STM_RECEIVER_STATE_FORMAT_H
#define STM_RECEIVER_STATE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration_record.h"

#define STATE_FORMAT_NAME "stm-recv-state"
#define STATE_FORMAT_VERSION 2           /* one unnamed output */
#define STATE_FORMAT_VERSION_GROUP 3     /* named outputs */
/* A state file is never longer than this (the formatted text is about 150
 * bytes, and at most about 1,900 with 16 disks of 64-character names); a
 * longer one is refused without reading it all. */
#define STATE_TEXT_MAX 4096
/* Room for a reason why a state file is invalid. */
#define STATE_WHY_MAX 160

/* Write the record (which must be known) as the state file's text into
 * buf, with a terminating NUL.  Returns the length of the text, which is
 * always less than STATE_TEXT_MAX; buf must have STATE_TEXT_MAX bytes. */
size_t state_format (const struct migration_record *r, char buf[STATE_TEXT_MAX]);

/* Parse len bytes of state file text.  On success fills *r (known, with
 * every field from the file) and returns 0.  Otherwise returns -1, leaves
 * *r alone and puts a reason into why ("line 3: image_size is not a
 * decimal number"). */
int state_parse (const char *text, size_t len, struct migration_record *r,
                 char why[STATE_WHY_MAX]);

/* What stm-recv found when it opened the output. */
enum state_found {
  STATE_ABSENT,          /* no state file */
  STATE_VALID,           /* a state file that parsed */
  STATE_INVALID,         /* a state file that did not parse */
};

/* What stm-recv makes of an output and its state file at startup. */
enum state_verdict {
  VERDICT_RESUMABLE,     /* the output holds the recorded migration */
  VERDICT_EMPTY,         /* nothing recorded and nothing to lose */
  VERDICT_STALE,         /* a record whose data is gone (the output is empty) */
  VERDICT_REFUSE_FOREIGN,  /* a non-empty file with no state file */
  VERDICT_REFUSE_INVALID,  /* the state file is not valid */
  VERDICT_REFUSE_SIZE,     /* the output's size does not match its state file */
};

/* Judge an output (a block device, or a regular file) of output_size
 * bytes (the file's size or the device's capacity) against what was found
 * beside it; r is the parsed record when found is STATE_VALID, and the
 * output is its disk 0 (state_judge_disk: its disk k).  Only
 * VERDICT_RESUMABLE keeps the record; EMPTY and STALE start with none; the
 * refusals are for the caller to enforce or, with --force, to override
 * (starting with no record). */
enum state_verdict state_judge (enum state_found found,
                                const struct migration_record *r,
                                bool is_block_device, uint64_t output_size);
enum state_verdict state_judge_disk (enum state_found found,
                                     const struct migration_record *r,
                                     uint32_t k, bool is_block_device,
                                     uint64_t output_size);

/* Judge a group: the verdict of the outputs together, from each one's
 * (verdicts[i] for output i): a refusal if any refuses; else STALE if any
 * is stale (a record whose data is partly gone is gone: the group starts
 * again); else RESUMABLE if any (then all) is; else EMPTY. */
enum state_verdict state_judge_group (const enum state_verdict *verdicts,
                                      unsigned n);

/* Is this verdict a refusal (one of the VERDICT_REFUSE_*)? */
bool state_verdict_refuses (enum state_verdict v);

#endif /* STM_RECEIVER_STATE_FORMAT_H */
