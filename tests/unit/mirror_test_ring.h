/* SPDX-License-Identifier: BSD-3-Clause */
/* stm unit tests: a mirror ring in ordinary memory, with a consumer made
 * by hand over it, for the tests of the ring (test_mirror_ring.c) and of
 * the writers' wait for room (test_mirror_wait.c).  The functions under
 * test use the consumer's ring view and page, never its descriptors. */
#ifndef STM_TEST_MIRROR_TEST_RING_H
#define STM_TEST_MIRROR_TEST_RING_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mirror_consumer.h"
#include "mirror_ring.h"

struct test_ring {
  struct mirror_ring r;
  void *area;
  struct mirror_consumer_page page;
  struct mirror_consumer c;
};

/* A formatted ring of capacity bytes (for a 1 MiB image of 4 KiB
 * blocks), not mirror-sync, whose writers wait at most full_wait_ns for
 * room. */
static inline struct test_ring *
new_test_ring (uint64_t capacity, uint64_t full_wait_ns)
{
  struct test_ring *t = calloc (1, sizeof *t);

  assert_non_null (t);
  t->area = aligned_alloc (4096, mirror_ring_area_size (capacity));
  assert_non_null (t->area);
  memset (t->area, 0, mirror_ring_area_size (capacity));
  mirror_ring_format (&t->r, t->area, capacity, &t->page, 1 << 20, 4096,
                      false, 0, full_wait_ns);
  t->c.ring = t->r;
  t->c.page = &t->page;
  t->c.area_fd = t->c.page_fd = t->c.event_fd = -1;
  return t;
}

static inline void
free_test_ring (struct test_ring *t)
{
  free (t->area);
  free (t);
}

#endif /* STM_TEST_MIRROR_TEST_RING_H */
