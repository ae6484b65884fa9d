/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the guest write throttle (THROTTLE BYTES_PER_S).
 *
 * When a migration cannot converge because the guest dirties blocks faster
 * than the sender copies them, the sender asks the filter to slow guest
 * writes down.  This is a token bucket kept as a "theoretical arrival
 * time": each write pushes the time at which the bucket is empty forward
 * by bytes / rate, and a write that would overdraw the bucket sleeps for
 * the difference.  Up to THROTTLE_BURST_NS worth of writing passes
 * without delay after a quiet spell.
 *
 * Off (rate 0) costs the write path one relaxed atomic load.  The lock only
 * guards the bucket's arithmetic; the sleep happens outside it, so a
 * sleeping writer holds up nobody else's bookkeeping.
 */
#ifndef STM_THROTTLE_H
#define STM_THROTTLE_H

#include <pthread.h>
#include <stdint.h>

#include "time_units.h"

#define THROTTLE_BURST_NS (100 * NS_PER_MS)   /* 100 ms of writing */

struct throttle {
  uint64_t bytes_per_second;     /* 0 = off; atomic */
  pthread_mutex_t bucket_lock;   /* guards empty_at_ns */
  uint64_t empty_at_ns;          /* monotonic time at which the bucket has
                                    paid for every write admitted so far */
};

#define THROTTLE_INIT {                                               \
    .bytes_per_second = 0,                                            \
    .bucket_lock = PTHREAD_MUTEX_INITIALIZER,                         \
    .empty_at_ns = 0,                                                 \
  }

/* Set the rate (0 = off).  Any thread. */
void throttle_set_rate (struct throttle *t, uint64_t bytes_per_second);
uint64_t throttle_rate (struct throttle *t);

/* Pure arithmetic, for tests: admit a write of 'bytes' at time now_ns with
 * the bucket empty at *empty_at_ns; update *empty_at_ns and return how long
 * the write must wait, in nanoseconds. */
uint64_t throttle_admit (uint64_t *empty_at_ns, uint64_t now_ns,
                         uint64_t bytes, uint64_t bytes_per_second);

/* Called by a worker thread before a guest write of 'bytes'.  Sleeps as
 * long as the rate requires (not at all when off).  The sleep ends early
 * if nbdkit shuts down, the client disconnects or the rate changes (within
 * 100 ms: turning the throttle off releases writes already asleep); the
 * write then goes ahead, as delaying it is all the throttle is for. */
void throttle_wait (struct throttle *t, uint64_t bytes);

#endif /* STM_THROTTLE_H */
