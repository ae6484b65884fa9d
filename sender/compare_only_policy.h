/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: its decisions, as pure functions of what is
 * known (compare_run.h runs the comparison): the phases a run goes
 * through and which steps between them are allowed, whether a source's
 * filter may be compared live, whether the receiver agreed to compare,
 * how long the next read is, and what the comparison found.  No I/O.
 */
#ifndef STM_SENDER_COMPARE_ONLY_POLICY_H
#define STM_SENDER_COMPARE_ONLY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* A comparison: connect, HELLO, read and compare every disk in order,
 * (with a filter) ask it once more what the guest wrote meanwhile, then
 * done.  Any phase before DONE may fail. */
enum compare_phase {
  COMPARE_CONNECTING,       /* the TCP and TLS connection to the receiver */
  COMPARE_HELLO,            /* HELLO sent, its answer (and the first
                             * SNAPSHOTs) awaited */
  COMPARE_READING,          /* reading, asking for hashes, comparing */
  COMPARE_FINAL_SNAPSHOT,   /* every disk read; the last SNAPSHOTs awaited */
  COMPARE_DONE,             /* the result is reported */
  COMPARE_FAILED,           /* the comparison could not be made */
};

const char *compare_phase_name (enum compare_phase p);
/* Pure: may a run go from phase from to phase to? */
bool compare_phase_allowed (enum compare_phase from, enum compare_phase to);

/* Pure: why a filter whose STATUS says state and owner cannot be
 * compared live (a sentence to follow "<filter> "), or NULL if it can:
 * tracking, and owned by no control connection.  A frozen filter is
 * cutting over; an owned one is being migrated by a running stm-send,
 * whose snapshots a comparison's would take from it; a flipped one no
 * longer serves the guest. */
const char *compare_source_refusal (const char *state, const char *owner);

/* Pure: did the receiver agree to compare only (HELLO_REPLY's features
 * echo WIRE_FEATURE_COMPARE_ONLY and WIRE_FEATURE_HASH)? */
bool compare_reply_agrees (uint32_t features);

/* Pure: the length of the read at next of a disk of size bytes (next <
 * size): a chunk of the source reader, less at the end. */
uint32_t compare_read_length (uint64_t next, uint64_t size);

enum compare_result {
  COMPARE_IDENTICAL,        /* no difference outside the written ranges */
  COMPARE_DIFFERENT,        /* some range differs outside them */
  COMPARE_INEXACT,          /* differences lie only in the written ranges,
                             * but those were listed with gaps bridged, so
                             * some may lie where the guest did not write */
};

/* Pure: the result of a finished comparison.  written_inexact: a
 * SNAPSHOT's extent list had its gaps bridged (too many extents), so the
 * written ranges may hold some the guest did not write. */
enum compare_result compare_result_of (uint64_t bytes_differing,
                                       uint64_t bytes_changed_during,
                                       bool written_inexact);
/* "identical", "different", "inexact". */
const char *compare_result_name (enum compare_result r);
/* The exit status: 0 identical, 1 otherwise. */
int compare_result_exit_code (enum compare_result r);

#endif /* STM_SENDER_COMPARE_ONLY_POLICY_H */
