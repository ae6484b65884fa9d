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
 * The data path costs, with no ring: one atomic increment, one load and
 * one decrement.  With one: the reference, a compare-and-swap on the
 * ring's head, one copy of the data, a release store, and a system call
 * only when the consumer sleeps.
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
};

struct mirror;

/* Where worker threads find the current ring. */
struct mirror_slot {
  struct mirror *current;        /* atomic; NULL: not mirroring */
  unsigned users;                /* threads between load and reference */
};

#define MIRROR_SLOT_INIT { .current = NULL, .users = 0 }

/* Create a ring of capacity data bytes for an image of image_size bytes
 * tracked in blocks of block_size, whose unsynced records go back into
 * dirty when it is released.  Returns NULL after writing why. */
struct mirror *mirror_create (uint64_t capacity, uint64_t image_size,
                              uint32_t block_size, struct block_bitmap *dirty,
                              struct mirror_counters *counters,
                              bool sync, uint64_t sync_timeout_ns,
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

/* A reference to the current ring, or NULL.  Worker threads. */
struct mirror *mirror_slot_acquire (struct mirror_slot *slot);

/* Drop a reference; the last one requeues what is not durable and frees
 * the ring.  Returns the records requeued then (0 if not the last). */
uint64_t mirror_release (struct mirror *m);

/* Hand one completed request to the consumer.  Returns true if it is in
 * the ring (and, in mirror-sync, durable on the destination), false if
 * the caller must mark it dirty instead: the ring was full or stopped, or
 * a mirror-sync wait timed out. */
bool mirror_request (struct mirror *m, enum mirror_record_type type,
                     const void *buf, uint32_t count, uint64_t offset);

/* For STATUS and FREEZE: the ring's size and mode, and what is in it. */
struct mirror_queue {
  uint64_t capacity;
  bool sync;
  uint64_t queued_entries, queued_bytes;     /* not taken by the consumer */
  uint64_t unsynced_entries, unsynced_bytes; /* not durable */
  uint64_t head;
};
void mirror_queue_state (const struct mirror *m, struct mirror_queue *q);

#endif /* STM_MIRROR_H */
