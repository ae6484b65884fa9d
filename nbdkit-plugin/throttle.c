/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the guest write throttle (see throttle.h). */
#include <config.h>

#include <pthread.h>
#include <stdint.h>

#include <nbdkit-filter.h>

#include "clock.h"
#include "throttle.h"
#include "time_units.h"

void
throttle_set_rate (struct throttle *t, uint64_t bytes_per_second)
{
  pthread_mutex_lock (&t->bucket_lock);
  /* A new rate starts from a full bucket rather than paying off debt that
   * was run up at the old rate. */
  t->empty_at_ns = 0;
  __atomic_store_n (&t->bytes_per_second, bytes_per_second, __ATOMIC_RELAXED);
  pthread_mutex_unlock (&t->bucket_lock);
}

uint64_t
throttle_rate (struct throttle *t)
{
  return __atomic_load_n (&t->bytes_per_second, __ATOMIC_RELAXED);
}

uint64_t
throttle_admit (uint64_t *empty_at_ns, uint64_t now_ns,
                uint64_t bytes, uint64_t bytes_per_second)
{
  uint64_t cost_ns, floor_ns;

  if (bytes_per_second == 0)
    return 0;

  /* bytes * 1e9 overflows only for writes beyond 18 GB; nbdkit requests
   * are at most 4 GiB, but saturate rather than wrap all the same. */
  if (bytes > UINT64_MAX / NS_PER_S)
    cost_ns = UINT64_MAX / 2;
  else
    cost_ns = bytes * NS_PER_S / bytes_per_second;

  /* After a quiet spell the bucket holds at most one burst. */
  floor_ns = now_ns > THROTTLE_BURST_NS ? now_ns - THROTTLE_BURST_NS : 0;
  if (*empty_at_ns < floor_ns)
    *empty_at_ns = floor_ns;

  if (*empty_at_ns > UINT64_MAX / 2 - cost_ns)
    *empty_at_ns = UINT64_MAX / 2;
  else
    *empty_at_ns += cost_ns;

  return *empty_at_ns > now_ns ? *empty_at_ns - now_ns : 0;
}

/* The longest one sleep lasts before the waiting write looks at the rate
 * again.  A write owed minutes at a tight rate must not outlive the reason
 * for its delay: when the owner's control connection closes, the source
 * flips or THROTTLE 0 arrives, the rate drops to 0, and the guest's
 * writes already asleep should go ahead within this much time rather than
 * when their original delay runs out. */
#define THROTTLE_SLICE_NS (100 * NS_PER_MS)

/* Sleep until deadline_ns (monotonic) in slices of THROTTLE_SLICE_NS,
 * returning early when the rate no longer is 'rate' (turned off, or
 * replaced by a new rate, which starts from a full bucket and so owes the
 * sleepers of the old one nothing) or when nbdkit_nanosleep ends early
 * because nbdkit shuts down or the client disconnects. */
static void
throttle_sleep_until (struct throttle *t, uint64_t rate, uint64_t deadline_ns)
{
  for (;;) {
    uint64_t slice = deadline_left_ns (deadline_ns);

    if (slice == 0)
      return;
    if (__atomic_load_n (&t->bytes_per_second, __ATOMIC_RELAXED) != rate)
      return;
    if (slice > THROTTLE_SLICE_NS)
      slice = THROTTLE_SLICE_NS;
    if (nbdkit_nanosleep (0, (unsigned) slice) == -1)
      return;
  }
}

void
throttle_wait (struct throttle *t, uint64_t bytes)
{
  uint64_t rate, delay_ns, now;

  rate = __atomic_load_n (&t->bytes_per_second, __ATOMIC_RELAXED);
  if (rate == 0)
    return;

  pthread_mutex_lock (&t->bucket_lock);
  now = time_monotonic_ns ();
  delay_ns = throttle_admit (&t->empty_at_ns, now, bytes, rate);
  pthread_mutex_unlock (&t->bucket_lock);

  if (delay_ns > 0)
    throttle_sleep_until (t, rate, deadline_at (now, delay_ns));
}
