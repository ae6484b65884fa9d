/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: a writer's bounded wait for room in a full mirror ring (see
 * mirror_wait.h). */
#include <config.h>

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#include "mirror_ring.h"
#include "mirror_wait.h"

#define NS_PER_S UINT64_C (1000000000)

static uint64_t
monotonic_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * NS_PER_S + (uint64_t) ts.tv_nsec;
}

enum mirror_wait_result
mirror_wait_room (struct mirror_ring *r, uint64_t data_len,
                  const struct mirror_wait_policy *policy,
                  uint64_t *pos, uint64_t *waited_ns)
{
  uint64_t start = monotonic_ns ();
  /* Saturating: an enormous bound means a very long time, not none. */
  uint64_t deadline = start + policy->timeout_ns < start
    ? UINT64_MAX : start + policy->timeout_ns;
  enum mirror_wait_result result;

  /* Counted as a waiter before the first look at the durable position,
   * so that a consumer moving it from now on wakes us. */
  mirror_ring_waiter_enter (r);
  for (;;) {
    /* Loaded before looking at the ring: a wake after this changes it,
     * and the futex then does not sleep. */
    uint32_t seen = __atomic_load_n (&r->cons->durable_wake, __ATOMIC_SEQ_CST);
    uint64_t now, left;
    struct timespec ts;

    if (mirror_ring_reserve (r, data_len, pos)) {
      result = MIRROR_WAIT_ROOM;
      break;
    }
    if (mirror_ring_is_stopped (r)) {
      result = MIRROR_WAIT_STOPPED;
      break;
    }
    if (policy->give_up != NULL && policy->give_up (policy->opaque)) {
      result = MIRROR_WAIT_GAVE_UP;
      break;
    }
    now = monotonic_ns ();
    left = deadline > now ? deadline - now : 0;
    if (left == 0) {
      result = MIRROR_WAIT_TIMEOUT;
      break;
    }
    if (policy->slice_ns > 0 && left > policy->slice_ns)
      left = policy->slice_ns;
    ts.tv_sec = (time_t) (left / NS_PER_S);
    ts.tv_nsec = (long) (left % NS_PER_S);
    /* Shared, not private: the consumer wakes us from its own process.
     * Whatever it returns (woken, timed out, the word changed, a signal)
     * the loop looks again. */
    syscall (SYS_futex, &r->cons->durable_wake, FUTEX_WAIT, seen, &ts,
             NULL, 0);
  }
  mirror_ring_waiter_leave (r);
  *waited_ns = monotonic_ns () - start;
  return result;
}

void
mirror_wait_wake_all (struct mirror_ring *r)
{
  __atomic_fetch_add (&r->cons->durable_wake, 1, __ATOMIC_SEQ_CST);
  syscall (SYS_futex, &r->cons->durable_wake, FUTEX_WAKE, INT_MAX,
           NULL, NULL, 0);
}
