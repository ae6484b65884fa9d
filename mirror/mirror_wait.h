/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: a writer's bounded waits on the mirror ring: for room when it
 * finds the ring full (MIRROR START ... wait MS), and, in mirror-sync,
 * for its record to be durable on the destination.
 *
 * Without it a write that finds no room falls back to its dirty bits at
 * once, so a guest that writes faster than the link drains overflows the
 * ring again and again and the migration needs more passes.  Waiting a
 * little for room paces the guest by the link instead, as DRBD's
 * protocol A blocks a writer whose send buffer is full; the bound keeps
 * a stalled or dead consumer from holding the guest up for longer.
 *
 * The writer waits on the consumer page's durable_wake futex (shared: the
 * consumer wakes it from its own process), counted in the header's
 * full_waiters so that a consumer with no waiter makes no system call,
 * and tries the lock-free reservation again after each wake.  The caller
 * decides what else ends a wait (a FREEZE closing the gate, nbdkit
 * shutting down) through give_up, checked before every sleep; whoever
 * makes give_up true also bumps durable_wake and wakes the futex, so
 * a writer asleep sees it at once.  A ring stopped ends the wait too
 * (the filter wakes everyone when it stops a ring).
 *
 * This file makes system calls (futex, clock_gettime) and prints nothing.
 */
#ifndef STM_MIRROR_WAIT_H
#define STM_MIRROR_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "mirror_ring.h"

/* How a wait for room ended. */
enum mirror_wait_result {
  MIRROR_WAIT_READY,             /* what was waited for happened */
  MIRROR_WAIT_TIMEOUT,           /* the bound passed without room */
  MIRROR_WAIT_STOPPED,           /* the ring was stopped */
  MIRROR_WAIT_GAVE_UP,           /* give_up said so */
};

struct mirror_wait_policy {
  uint64_t timeout_ns;           /* the bound on the whole wait */
  uint64_t slice_ns;             /* longest single sleep (0: no limit) */
  /* Checked before every sleep (may be NULL): true ends the wait. */
  bool (*give_up) (void *opaque);
  void *opaque;
};

/* Wait until ready (arg) is true, looking again each time the consumer
 * moves the durable position (durable_wake), for at most the policy's
 * bound; a stopped ring and give_up end the wait too.  *waited_ns is the
 * time spent in here, whatever the result. */
enum mirror_wait_result mirror_wait_until (struct mirror_ring *r,
                                           bool (*ready) (void *arg), void *arg,
                                           const struct mirror_wait_policy *policy,
                                           uint64_t *waited_ns);

/* Reserve room for a record of data_len bytes in r, waiting for the
 * consumer to make room durable as policy allows (mirror_wait_until).
 * On MIRROR_WAIT_READY the record is reserved at *pos, as by
 * mirror_ring_reserve.  The caller has
 * checked that such a record fits the ring at all (mirror_ring_can_hold):
 * otherwise this waits out the bound for nothing. */
enum mirror_wait_result mirror_wait_room (struct mirror_ring *r,
                                          uint64_t data_len,
                                          const struct mirror_wait_policy *policy,
                                          uint64_t *pos, uint64_t *waited_ns);

/* Bump durable_wake and wake every writer waiting on it: for whoever
 * stops a ring or makes a give_up true. */
void mirror_wait_wake_all (struct mirror_ring *r);

#endif /* STM_MIRROR_WAIT_H */
