/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the sync ledger, what was sent and which SYNC covers it.
 *
 * The sender confirms a block to the filter only once the receiver has
 * said it is durable, and the receiver says so per SYNC: DURABLE n means
 * everything sent before SYNC n is on its disk.  The ledger keeps the
 * ranges sent since the last SYNC (unsynced), and for each SYNC (or the
 * COMMIT) sent and not yet answered, the ranges it covers.  When DURABLE n
 * comes, the caller confirms the ranges of every SYNC numbered n or less
 * and retires them; when the connection is lost, what was pending is
 * dropped (it goes back to the dirty set in the filter through RESUME).
 *
 * SYNC numbers only ever go up, across connections too: a number is never
 * reused for other data (sync_ledger_resume_from).
 *
 * Pure bookkeeping, no I/O: tests/unit/test_sync_ledger.c reaches it.
 */
#ifndef STM_SENDER_SYNC_LEDGER_H
#define STM_SENDER_SYNC_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "extents.h"

/* A SYNC (or the COMMIT) sent and not yet answered. */
struct pending_sync {
  uint64_t seq;
  uint64_t sent_ns;
  bool ends_pass;
  struct extent_list ranges;     /* what it covers, to CONFIRM once durable */
  /* Mirroring: the ring position (and record count) up to which records
   * were sent before it; durable with it. */
  uint64_t mirror_pos, mirror_entries;
};

struct sync_ledger {
  struct extent_list unsynced;   /* sent, not yet covered by a SYNC */
  uint64_t data_since_sync;      /* DATA bytes sent since the last SYNC */
  struct pending_sync *pending;  /* oldest first */
  size_t npending, cap;
  uint64_t last_seq;             /* the last seq used, 0 = none */
  uint64_t last_sync_ns;         /* when the last SYNC was cut */
  /* Mirroring: how far ring records have been sent, and the bytes of
   * record data since the last SYNC.  Records are never CONFIRMed (the
   * filter clears nothing for them): once durable, the consumer page's
   * durable position moves instead (mirror_consumer_durable). */
  uint64_t mirror_pos, mirror_entries;
  uint64_t mirror_since_sync;
  uint64_t mirror_cut_pos;       /* mirror_pos at the last SYNC */
  uint64_t mirror_first_unsynced_ns;  /* when the first record after it went */
};

void sync_ledger_init (struct sync_ledger *l);
void sync_ledger_free (struct sync_ledger *l);

/* [offset, offset+length) was queued to the receiver (as DATA when data
 * is set, else as ZERO).  -1 with errno ENOMEM. */
int sync_ledger_note_sent (struct sync_ledger *l, uint64_t offset,
                           uint64_t length, bool data);

/* Cut a SYNC over everything sent so far and return its seq (0 with errno
 * ENOMEM, the ledger unchanged).  CONFIRM needs block-aligned ranges (or
 * ones ending at the image size): the ranges end at extent ends, which
 * are aligned, except perhaps the last, where a pass stopped mid-extent;
 * that unaligned tail stays unsynced for the next SYNC, which covers it
 * too since it was sent before. */
uint64_t sync_ledger_cut (struct sync_ledger *l, uint64_t image_size, uint32_t block,
                          bool ends_pass, uint64_t now_ns);

/* Is a SYNC due within a pass?  After every_bytes of DATA, or after
 * interval_ns with at least min_bytes of DATA, so that progress becomes
 * durable (and confirmed) as it goes and a lost connection costs little. */
bool sync_ledger_due (const struct sync_ledger *l, uint64_t now_ns,
                      uint64_t every_bytes, uint64_t min_bytes, uint64_t interval_ns);

/* Ring records up to position pos (entries of them) were queued to the
 * receiver, data_bytes of write data since the last note: the next SYNC
 * covers them, and the data counts towards sync_ledger_due. */
void sync_ledger_note_mirror (struct sync_ledger *l, uint64_t pos,
                              uint64_t entries, uint64_t data_bytes,
                              uint64_t now_ns);
/* Is a SYNC due for the records sent since the last one?  Never when
 * there are none; else at once (mirror-sync), after every_bytes of their
 * data, or interval_ns after the first of them was sent. */
bool sync_ledger_mirror_due (const struct sync_ledger *l, uint64_t now_ns,
                             bool at_once, uint64_t every_bytes,
                             uint64_t interval_ns);
/* The ring position the first n pending SYNCs make durable: false if n is
 * 0. */
bool sync_ledger_mirror_durable (const struct sync_ledger *l, size_t n,
                                 uint64_t *pos, uint64_t *entries);
/* The connection was lost: records after pos are sent again (the ring
 * keeps them until they are durable), so sending resumes from there. */
void sync_ledger_rewind_mirror (struct sync_ledger *l, uint64_t pos,
                                uint64_t entries);

/* How many pending SYNCs are numbered seq or less (they are the first
 * ones: seqs only go up). */
size_t sync_ledger_count_up_to (const struct sync_ledger *l, uint64_t seq);

/* The bytes the first n pending SYNCs cover. */
uint64_t sync_ledger_bytes_of_first (const struct sync_ledger *l, size_t n);

/* Forget the first n pending SYNCs (confirmed, or abandoned). */
void sync_ledger_retire (struct sync_ledger *l, size_t n);

/* The connection is gone: no pending SYNC will be answered on it. */
void sync_ledger_drop_pending (struct sync_ledger *l);

/* The pass in progress is abandoned: what it sent and no SYNC covers is
 * forgotten (it is unconfirmed in the filter, so it goes again). */
void sync_ledger_forget_unsynced (struct sync_ledger *l);

/* The receiver's durable position (HELLO_REPLY) may be beyond anything
 * this process sent (an earlier sender's): the next seq comes after it. */
void sync_ledger_resume_from (struct sync_ledger *l, uint64_t durable_seq);

#endif /* STM_SENDER_SYNC_LEDGER_H */
