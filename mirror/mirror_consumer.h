/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the consumer's side of the mirror ring (stm-send, and the test
 * consumer under tests/).
 *
 * MIRROR START on the filter's control socket answers with three file
 * descriptors (SCM_RIGHTS): the ring area (read-only for the consumer),
 * the consumer page (read-write) and an eventfd the filter signals when
 * it commits a record while the consumer sleeps.  mirror_consumer_map
 * maps them; then the consumer takes records in order with
 * mirror_consumer_next, reports how far it has taken them
 * (mirror_consumer_taken) and, once the destination has them durable,
 * how far they are durable (mirror_consumer_durable), which frees their
 * space and releases mirror-sync writers and writers waiting for room.
 *
 * Functions return -1 with errno set and print nothing: the caller says
 * what failed.
 */
#ifndef STM_MIRROR_CONSUMER_H
#define STM_MIRROR_CONSUMER_H

#include <stdbool.h>
#include <stdint.h>

#include "mirror_ring.h"

struct mirror_consumer {
  struct mirror_ring ring;
  void *area;
  uint64_t area_size;
  struct mirror_consumer_page *page;
  int area_fd, page_fd, event_fd;
  uint64_t next_pos;             /* the next record to take */
  uint64_t taken_entries;
};

/* Take over the three descriptors (closed by mirror_consumer_unmap, or
 * here on failure) and map them. */
int mirror_consumer_map (struct mirror_consumer *c, int area_fd, int page_fd,
                         int event_fd);
void mirror_consumer_unmap (struct mirror_consumer *c);

/* The next committed record: 1 (e filled in), 0 if none is committed yet,
 * -1 (EPROTO) if the ring is corrupt.  The record stays valid until the
 * consumer reports it durable. */
int mirror_consumer_next (struct mirror_consumer *c, struct mirror_entry *e);

/* Everything before pos has been taken (sent); entries: how many. */
void mirror_consumer_taken (struct mirror_consumer *c, uint64_t pos,
                            uint64_t entries);

/* Everything before pos is durable on the destination: the ring may reuse
 * its space, and mirror-sync writers waiting for it, and writers waiting
 * for room in a full ring, are woken. */
void mirror_consumer_durable (struct mirror_consumer *c, uint64_t pos,
                              uint64_t entries);

/* Let writers use at most bytes of the ring between the durable position
 * and head (0: all of it), which bounds how far the destination lags:
 * a write that finds no room waits for it or falls back to dirty bits,
 * as with a full ring.  Waiting writers are woken, since a larger window
 * may have room for them. */
void mirror_consumer_set_window (struct mirror_consumer *c, uint64_t bytes);

/* The ring's clock, to sample before issuing a copy read through the
 * filter: the read's data goes in the mirror order at that position
 * (docs/architecture.md, "Mirroring"). */
uint64_t mirror_consumer_clock (const struct mirror_consumer *c);

/* Has the filter stopped the ring (MIRROR STOP, or a flip)? */
bool mirror_consumer_stopped (const struct mirror_consumer *c);

/* For an event loop (stm-send's libev loop), which watches the eventfd
 * (mirror_consumer_event_fd) rather than blocking:
 * mirror_consumer_arm says the consumer is about to sleep and looks at
 * the ring once more: it returns 1 if a record is there after all (or
 * the ring is stopped; then it does not sleep), 0 if the loop may wait
 * for the eventfd, -1 (EPROTO) if the ring is corrupt.  When the eventfd
 * is readable, mirror_consumer_woken empties it. */
int mirror_consumer_arm (struct mirror_consumer *c);
int mirror_consumer_event_fd (const struct mirror_consumer *c);
int mirror_consumer_woken (struct mirror_consumer *c);

/* Block at most timeout_ms (-1: forever) for a record to be committed.
 * Returns 1 if one may be there, 0 on timeout, -1 on error. */
int mirror_consumer_wait (struct mirror_consumer *c, int timeout_ms);

#endif /* STM_MIRROR_CONSUMER_H */
