/* stm migrate filter: the guest write throttle (see throttle.h). */
#include <config.h>

#include <pthread.h>
#include <stdint.h>

#include <nbdkit-filter.h>

#include "log.h"
#include "throttle.h"

#define NS_PER_SECOND 1000000000ULL

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
  if (bytes > UINT64_MAX / NS_PER_SECOND)
    cost_ns = UINT64_MAX / 2;
  else
    cost_ns = bytes * NS_PER_SECOND / bytes_per_second;

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

void
throttle_wait (struct throttle *t, uint64_t bytes)
{
  uint64_t rate, delay_ns;

  rate = __atomic_load_n (&t->bytes_per_second, __ATOMIC_RELAXED);
  if (rate == 0)
    return;

  pthread_mutex_lock (&t->bucket_lock);
  delay_ns = throttle_admit (&t->empty_at_ns, time_monotonic_ns (), bytes,
                             rate);
  pthread_mutex_unlock (&t->bucket_lock);

  if (delay_ns > 0) {
    uint64_t seconds = delay_ns / NS_PER_SECOND;

    /* nbdkit_nanosleep refuses absurd lengths; an hour is already far
     * longer than any client waits for one write. */
    if (seconds > 3600)
      seconds = 3600;
    nbdkit_nanosleep ((unsigned) seconds,
                      (unsigned) (delay_ns % NS_PER_SECOND));
  }
}
