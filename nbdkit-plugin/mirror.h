/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the producer's side of the mirror ring (MIRROR
 * START): every completed guest write and zero handed to the
 * consumer (stm-send) through shared memory.
 *
 * A struct mirror owns one ring (mirror/mirror_ring.h): its two memfds,
 * their mappings and the eventfd that wakes a sleeping consumer.  Worker
 * threads find the current ring through a struct mirror_slot and hold a
 * reference while they use it, so MIRROR STOP (or the owner's close, or a
 * flip) can take the ring away while writes are in flight: the last
 * reference to go turns every record the consumer has not made durable
 * back into dirty blocks, then frees the ring.  So a mirrored write is
 * always covered, until the destination has it durable, by a record in
 * the ring or by a dirty bit (docs/architecture.md, "Mirroring").
 *
 * A write that finds the ring full waits for room, for at most the wait
 * MIRROR START gave (mirror/mirror_wait.h), before it falls back to its
 * dirty bits; a FREEZE closing the gate ends such waits at once
 * (mirror_slot_set_freezing), so that they do not lengthen the drain.
 *
 * The data path costs, with no ring: one plain load.  With one: the
 * reference, a compare-and-swap on the ring's head, one copy of the
 * data, a release store, and a system call only when the consumer
 * sleeps (or the ring is full and the write waits for room).
 */
#ifndef STM_MIRROR_H
#define STM_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "bitmap.h"
#include "mirror_ring.h"

/* Counters for STATUS, relaxed atomics. */
struct mirror_counters {
  uint64_t records;              /* records committed */
  uint64_t data_bytes;           /* bytes of write data copied in */
  uint64_t fallbacks;            /* requests marked dirty instead */
  uint64_t sync_timeouts;        /* mirror-sync waits that timed out */
  uint64_t requeued;             /* records turned back into dirty blocks */
  uint64_t full_waits;           /* writes that waited (or wait) for room */
  uint64_t full_wait_ns;         /* the time they spent waiting, once done */
  uint64_t full_timeouts;        /* waits that ended without room */
};

struct mirror;

/* Where worker threads find the current ring. */
struct mirror_slot {
  struct mirror *current;        /* atomic; NULL: not mirroring */
  unsigned users;                /* threads between load and reference */
  /* 1 from FREEZE closing the gate until it opens again: a write waiting
   * for room gives up at once (atomic). */
  unsigned freezing;
};

#define MIRROR_SLOT_INIT { .current = NULL, .users = 0, .freezing = 0 }

/* Create a ring of capacity data bytes for an image of image_size bytes
 * tracked in blocks of block_size, whose unsynced records go back into
 * dirty when it is released.  full_wait_ns: how long a write that finds
 * the ring full waits for room before it falls back to dirty bits (0:
 * not at all).  Returns NULL after writing why. */
struct mirror *mirror_create (uint64_t capacity, uint64_t image_size,
                              uint32_t block_size, struct block_bitmap *dirty,
                              struct mirror_counters *counters,
                              bool sync, uint64_t sync_timeout_ns,
                              uint64_t full_wait_ns,
                              char *why, size_t why_size);

/* Duplicates of the ring's three descriptors (area, consumer page,
 * eventfd) for the consumer, in fds[0..2].  -1 (errno) if dup fails. */
int mirror_dup_fds (const struct mirror *m, int fds[3]);

/* Publish m as the current ring; the slot takes over the caller's
 * reference.  Returns false, changing nothing, if a ring is already in
 * force (one ring per filter at a time). */
bool mirror_slot_install (struct mirror_slot *slot, struct mirror *m);

/* Take the current ring away: no new writer finds it, it is marked
 * stopped and mirror-sync writers stop waiting.  Returns it (the slot's
 * reference, for the caller to release) or NULL if there was none. */
struct mirror *mirror_slot_remove (struct mirror_slot *slot);

/* FREEZE is closing the gate (freezing true) or the gate has opened
 * again (false).  While it is closing or closed no write waits for room
 * in a full ring: one waiting now gives up at once and falls back to its
 * dirty bits, which the final pass sends, rather than hold the drain for
 * up to the wait.  Holds for a ring installed meanwhile too. */
void mirror_slot_set_freezing (struct mirror_slot *slot, bool freezing);

/* A reference to the current ring, or NULL.  Worker threads. */
struct mirror *mirror_slot_acquire (struct mirror_slot *slot);

/* Drop a reference; the last one requeues what is not durable and frees
 * the ring.  Returns the records requeued then (0 if not the last). */
uint64_t mirror_release (struct mirror *m);

/* Hand one completed request to the consumer.  Returns true if it is in
 * the ring (and, in mirror-sync, durable on the destination), false if
 * the caller must mark it dirty instead: the ring was stopped, or full
 * (after the wait for room, if MIRROR START allowed one), or a
 * mirror-sync wait timed out. */
bool mirror_request (struct mirror *m, enum mirror_record_type type,
                     const void *buf, uint32_t count, uint64_t offset);

/* For STATUS and FREEZE: the ring's size and mode, and what is in it. */
struct mirror_queue {
  uint64_t capacity;
  uint64_t window;               /* what writers may use (the consumer's) */
  bool sync;
  uint64_t queued_entries, queued_bytes;     /* not taken by the consumer */
  uint64_t unsynced_entries, unsynced_bytes; /* not durable */
  uint64_t head;
};
void mirror_queue_state (const struct mirror *m, struct mirror_queue *q);

#endif /* STM_MIRROR_H */
