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

#include "clock.h"
#include "mirror_ring.h"
#include "mirror_wait.h"

enum mirror_wait_result
mirror_wait_until (struct mirror_ring *r, bool (*ready) (void *arg), void *arg,
                   const struct mirror_wait_policy *policy, uint64_t *waited_ns)
{
  uint64_t start = time_monotonic_ns ();
  uint64_t deadline = deadline_at (start, policy->timeout_ns);
  enum mirror_wait_result result;

  /* Counted as a waiter before the first look at the durable position,
   * so that a consumer moving it from now on wakes us. */
  mirror_ring_waiter_enter (r);
  for (;;) {
    /* Loaded before looking at the ring: a wake after this changes it,
     * and the futex then does not sleep. */
    uint32_t seen = __atomic_load_n (&r->cons->durable_wake, __ATOMIC_SEQ_CST);
    uint64_t left;
    struct timespec ts;

    if (ready (arg)) {
      result = MIRROR_WAIT_READY;
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
    left = deadline_left_ns (deadline);
    if (left == 0) {
      result = MIRROR_WAIT_TIMEOUT;
      break;
    }
    if (policy->slice_ns > 0 && left > policy->slice_ns)
      left = policy->slice_ns;
    ts = timespec_of_ns (left);
    /* Shared, not private: the consumer wakes us from its own process.
     * Whatever it returns (woken, timed out, the word changed, a signal)
     * the loop looks again. */
    syscall (SYS_futex, &r->cons->durable_wake, FUTEX_WAIT, seen, &ts,
             NULL, 0);
  }
  mirror_ring_waiter_leave (r);
  *waited_ns = time_monotonic_ns () - start;
  return result;
}

struct room {
  struct mirror_ring *r;
  uint64_t data_len;
  uint64_t *pos;
};

static bool
reserved (void *arg)
{
  struct room *room = arg;

  return mirror_ring_reserve (room->r, room->data_len, room->pos);
}

enum mirror_wait_result
mirror_wait_room (struct mirror_ring *r, uint64_t data_len,
                  const struct mirror_wait_policy *policy,
                  uint64_t *pos, uint64_t *waited_ns)
{
  struct room room = { .r = r, .data_len = data_len, .pos = pos };

  return mirror_wait_until (r, reserved, &room, policy, waited_ns);
}

void
mirror_wait_wake_all (struct mirror_ring *r)
{
  __atomic_fetch_add (&r->cons->durable_wake, 1, __ATOMIC_SEQ_CST);
  syscall (SYS_futex, &r->cons->durable_wake, FUTEX_WAKE, INT_MAX,
           NULL, NULL, 0);
}
