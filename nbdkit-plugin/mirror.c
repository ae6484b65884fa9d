/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the producer's side of the mirror ring (see
 * mirror.h).
 *
 * The ring area is a memfd mapped read-write here and sealed against
 * growing, shrinking and any later writable mapping (F_SEAL_FUTURE_WRITE),
 * so the consumer can map it only read-only and cannot corrupt the
 * records the filter relies on to requeue what was not made durable.  The
 * consumer page is a second memfd, writable by both.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "bitmap.h"
#include "clock.h"
#include "mirror.h"
#include "mirror_ring.h"
#include "mirror_wait.h"
#include "time_units.h"

/* How often a writer waiting for the destination (mirror-sync) or for
 * room in a full ring checks whether nbdkit is shutting down. */
#define SYNC_WAIT_SLICE_NS (100 * NS_PER_MS)

struct mirror {
  struct mirror_ring ring;
  void *area;
  uint64_t area_size;
  struct mirror_consumer_page *page;
  int area_fd, page_fd, event_fd;
  unsigned refs;                 /* atomic */
  bool sync;
  uint64_t sync_timeout_ns;
  uint64_t full_wait_ns;
  struct mirror_slot *slot;      /* where it is installed (its freezing) */
  uint32_t block_size;
  struct block_bitmap *dirty;
  struct mirror_counters *counters;
};

static void
mirror_free (struct mirror *m)
{
  if (m->area != NULL)
    munmap (m->area, m->area_size);
  if (m->page != NULL)
    munmap (m->page, sizeof *m->page);
  if (m->area_fd >= 0)
    close (m->area_fd);
  if (m->page_fd >= 0)
    close (m->page_fd);
  if (m->event_fd >= 0)
    close (m->event_fd);
  free (m);
}

/* A memfd of size bytes, mapped shared read-write at *map. */
static int
shared_memory (const char *name, uint64_t size, void **map,
               char *why, size_t why_size)
{
  int fd = memfd_create (name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

  if (fd == -1) {
    snprintf (why, why_size, "memfd_create %s: %s", name, strerror (errno));
    return -1;
  }
  if (ftruncate (fd, (off_t) size) == -1) {
    snprintf (why, why_size, "sizing %s to %" PRIu64 " bytes: %s",
              name, size, strerror (errno));
    close (fd);
    return -1;
  }
  *map = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (*map == MAP_FAILED) {
    *map = NULL;
    snprintf (why, why_size, "mapping %s (%" PRIu64 " bytes): %s",
              name, size, strerror (errno));
    close (fd);
    return -1;
  }
  return fd;
}

struct mirror *
mirror_create (uint64_t capacity, uint64_t image_size, uint32_t block_size,
               struct block_bitmap *dirty, struct mirror_counters *counters,
               bool sync, uint64_t sync_timeout_ns, uint64_t full_wait_ns,
               char *why, size_t why_size)
{
  struct mirror *m = calloc (1, sizeof *m);
  void *page;

  if (m == NULL) {
    snprintf (why, why_size, "out of memory");
    return NULL;
  }
  m->area_fd = m->page_fd = m->event_fd = -1;
  m->refs = 1;
  m->sync = sync;
  m->sync_timeout_ns = sync_timeout_ns;
  m->full_wait_ns = full_wait_ns;
  m->block_size = block_size;
  m->dirty = dirty;
  m->counters = counters;
  m->area_size = mirror_ring_area_size (capacity);

  m->area_fd = shared_memory ("stm-mirror-ring", m->area_size, &m->area,
                              why, why_size);
  if (m->area_fd == -1)
    goto fail;
  /* The pages of a fresh memfd read as zeroes: the ring is formatted on
   * zeroed memory, as mirror_ring_format requires. */
  m->page_fd = shared_memory ("stm-mirror-consumer", sizeof *m->page, &page,
                              why, why_size);
  if (m->page_fd == -1)
    goto fail;
  m->page = page;
  mirror_ring_format (&m->ring, m->area, capacity, m->page, image_size,
                      block_size, sync, sync_timeout_ns, full_wait_ns);
  if (fcntl (m->area_fd, F_ADD_SEALS,
             F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)
      == -1) {
    snprintf (why, why_size, "sealing the ring against writes by its "
              "consumer: %s", strerror (errno));
    goto fail;
  }
  m->event_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m->event_fd == -1) {
    snprintf (why, why_size, "eventfd: %s", strerror (errno));
    goto fail;
  }
  return m;

 fail:
  mirror_free (m);
  return NULL;
}

int
mirror_dup_fds (const struct mirror *m, int fds[3])
{
  const int mine[3] = { m->area_fd, m->page_fd, m->event_fd };

  for (int i = 0; i < 3; i++) {
    fds[i] = fcntl (mine[i], F_DUPFD_CLOEXEC, 3);
    if (fds[i] == -1) {
      int saved = errno;

      while (i-- > 0)
        close (fds[i]);
      errno = saved;
      return -1;
    }
  }
  return 0;
}

bool
mirror_slot_install (struct mirror_slot *slot, struct mirror *m)
{
  struct mirror *none = NULL;

  /* Before it is published: a writer finds m only through the slot. */
  m->slot = slot;
  return __atomic_compare_exchange_n (&slot->current, &none, m, false,
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

struct mirror *
mirror_slot_acquire (struct mirror_slot *slot)
{
  struct mirror *m;

  /* No ring (the usual case): a plain load of a line nobody writes, so
   * that writers share nothing.  A ring installed just after is missed,
   * which is safe: the request goes by its dirty bits. */
  if (__atomic_load_n (&slot->current, __ATOMIC_ACQUIRE) == NULL)
    return NULL;
  /* Announce ourselves before loading the pointer, so that
   * mirror_slot_remove, which clears the pointer and then waits for
   * users to reach zero, cannot free a ring we are about to reference. */
  __atomic_fetch_add (&slot->users, 1, __ATOMIC_SEQ_CST);
  m = __atomic_load_n (&slot->current, __ATOMIC_SEQ_CST);
  if (m != NULL)
    __atomic_fetch_add (&m->refs, 1, __ATOMIC_RELAXED);
  __atomic_fetch_sub (&slot->users, 1, __ATOMIC_RELEASE);
  return m;
}

/* Wake whoever waits on the ring: a consumer asleep on the eventfd, and
 * writers waiting for the durable position (mirror-sync) or for room. */
static void
wake_all (struct mirror *m)
{
  uint64_t one = 1;

  mirror_wait_wake_all (&m->ring);
  if (write (m->event_fd, &one, sizeof one) == -1 && errno != EAGAIN)
    nbdkit_debug ("migrate: mirror: waking the consumer: %m");
}

struct mirror *
mirror_slot_remove (struct mirror_slot *slot)
{
  struct mirror *m = __atomic_exchange_n (&slot->current, NULL,
                                          __ATOMIC_SEQ_CST);

  if (m == NULL)
    return NULL;
  /* A writer between its load of the pointer and its reference takes a
   * few instructions: wait for that, not for any write. */
  while (__atomic_load_n (&slot->users, __ATOMIC_ACQUIRE) > 0)
    sched_yield ();
  __atomic_store_n (&m->ring.hdr->stopped, 1, __ATOMIC_RELEASE);
  wake_all (m);
  return m;
}

void
mirror_slot_set_freezing (struct mirror_slot *slot, bool freezing)
{
  struct mirror *m;

  __atomic_store_n (&slot->freezing, freezing ? 1 : 0, __ATOMIC_SEQ_CST);
  if (!freezing)
    return;
  /* After the store: a writer that loaded durable_wake before it sees
   * the word change, one that loads it after sees the flag. */
  m = mirror_slot_acquire (slot);
  if (m != NULL)
    mirror_wait_wake_all (&m->ring);
  mirror_release (m);
}

struct requeue {
  struct mirror *m;
  uint64_t records;
};

static void
requeue_record (void *opaque, const struct mirror_entry *e)
{
  struct requeue *rq = opaque;
  uint64_t first, count;

  block_range_of_bytes (e->offset, e->length, rq->m->block_size,
                        &first, &count);
  block_bitmap_set_range (rq->m->dirty, first, count);
  rq->records++;
}

uint64_t
mirror_release (struct mirror *m)
{
  struct requeue rq = { .m = m };

  if (m == NULL ||
      __atomic_sub_fetch (&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return 0;
  /* Every writer has gone, so every record reserved is committed: what
   * the consumer never made durable goes back into the dirty set, to be
   * copied by a later pass. */
  mirror_ring_walk_from (&m->ring, mirror_ring_durable (&m->ring),
                         requeue_record, &rq);
  __atomic_fetch_add (&m->counters->requeued, rq.records, __ATOMIC_RELAXED);
  if (rq.records > 0)
    nbdkit_debug ("migrate: mirror ring released: %" PRIu64 " records not "
                  "durable on the destination are dirty again", rq.records);
  mirror_free (m);
  return rq.records;
}

/* Has nbdkit begun shutting down?  A waiting writer must not hold it
 * up. */
static bool
nbdkit_quitting (void *opaque)
{
  return nbdkit_nanosleep (0, 0) == -1;
}

struct durable_wait {
  const struct mirror *m;
  uint64_t end;
};

static bool
durable_reached (void *arg)
{
  const struct durable_wait *w = arg;

  return mirror_ring_durable (&w->m->ring) >= w->end;
}

/* Wait until the record ending at end is durable on the destination, for
 * at most the ring's sync timeout. */
static bool
wait_durable (struct mirror *m, uint64_t end)
{
  const struct mirror_wait_policy policy = {
    .timeout_ns = m->sync_timeout_ns,
    .slice_ns = SYNC_WAIT_SLICE_NS,
    .give_up = nbdkit_quitting,
  };
  struct durable_wait w = { .m = m, .end = end };
  uint64_t waited_ns;
  enum mirror_wait_result r = mirror_wait_until (&m->ring, durable_reached, &w,
                                                 &policy, &waited_ns);

  if (r == MIRROR_WAIT_TIMEOUT)
    __atomic_fetch_add (&m->counters->sync_timeouts, 1, __ATOMIC_RELAXED);
  return r == MIRROR_WAIT_READY;
}

/* Should a writer waiting for room stop?  When FREEZE closes the gate
 * (the write would otherwise lengthen the drain), or nbdkit is shutting
 * down. */
static bool
give_up_waiting (void *opaque)
{
  const struct mirror *m = opaque;

  return __atomic_load_n (&m->slot->freezing, __ATOMIC_SEQ_CST) ||
    nbdkit_quitting (NULL);
}

/* The ring has no room for a record of data_len bytes: wait for the
 * consumer to make some, as MIRROR START allowed.  Returns true with the
 * record reserved at *pos. */
static bool
wait_for_room (struct mirror *m, uint64_t data_len, uint64_t *pos)
{
  const struct mirror_wait_policy policy = {
    .timeout_ns = m->full_wait_ns,
    .slice_ns = SYNC_WAIT_SLICE_NS,
    .give_up = give_up_waiting,
    .opaque = m,
  };
  enum mirror_wait_result r;
  uint64_t waited_ns;

  /* Waiting is pointless for a record larger than the ring and a ring
   * that is stopped, and not allowed while FREEZE closes the gate. */
  if (m->full_wait_ns == 0 || !mirror_ring_can_hold (&m->ring, data_len) ||
      mirror_ring_is_stopped (&m->ring) ||
      __atomic_load_n (&m->slot->freezing, __ATOMIC_RELAXED))
    return false;
  /* Counted now, so that STATUS shows writes waiting. */
  __atomic_fetch_add (&m->counters->full_waits, 1, __ATOMIC_RELAXED);
  r = mirror_wait_room (&m->ring, data_len, &policy, pos, &waited_ns);
  __atomic_fetch_add (&m->counters->full_wait_ns, waited_ns, __ATOMIC_RELAXED);
  if (r != MIRROR_WAIT_READY)
    __atomic_fetch_add (&m->counters->full_timeouts, 1, __ATOMIC_RELAXED);
  return r == MIRROR_WAIT_READY;
}

bool
mirror_request (struct mirror *m, enum mirror_record_type type,
                const void *buf, uint32_t count, uint64_t offset)
{
  uint64_t data_len = type == MIRROR_WRITE ? count : 0;
  uint64_t pos;

  if (!mirror_ring_reserve (&m->ring, data_len, &pos) &&
      !wait_for_room (m, data_len, &pos)) {
    __atomic_fetch_add (&m->counters->fallbacks, 1, __ATOMIC_RELAXED);
    return false;
  }
  /* The one copy of the data on the guest's write path. */
  if (data_len > 0)
    mirror_ring_copy_in (&m->ring, pos, 0, buf, data_len);
  mirror_ring_commit (&m->ring, pos, type, offset, count, data_len);
  __atomic_fetch_add (&m->counters->records, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add (&m->counters->data_bytes, data_len, __ATOMIC_RELAXED);

  /* Pairs with the consumer's store of sleeping and its second look at
   * the ring: either it sees this record, or we see it asleep. */
  __atomic_thread_fence (__ATOMIC_SEQ_CST);
  if (__atomic_load_n (&m->page->sleeping, __ATOMIC_RELAXED) &&
      __atomic_exchange_n (&m->page->sleeping, 0, __ATOMIC_ACQ_REL)) {
    uint64_t one = 1;

    if (write (m->event_fd, &one, sizeof one) == -1 && errno != EAGAIN)
      nbdkit_debug ("migrate: mirror: waking the consumer: %m");
  }

  if (m->sync &&
      !wait_durable (m, pos + mirror_record_size (data_len))) {
    __atomic_fetch_add (&m->counters->fallbacks, 1, __ATOMIC_RELAXED);
    return false;
  }
  return true;
}

void
mirror_queue_state (const struct mirror *m, struct mirror_queue *q)
{
  uint64_t head = mirror_ring_head (&m->ring);
  uint64_t entries = __atomic_load_n (&m->ring.hdr->entries, __ATOMIC_RELAXED);
  uint64_t consumed = __atomic_load_n (&m->page->consumed, __ATOMIC_ACQUIRE);
  uint64_t durable = mirror_ring_durable (&m->ring);
  uint64_t consumed_entries = m->page->consumed_entries;
  uint64_t durable_entries = m->page->durable_entries;

  /* The consumer writes these: clamp them to what can be true. */
  if (consumed > head)
    consumed = head;
  if (consumed_entries > entries)
    consumed_entries = entries;
  if (durable_entries > entries)
    durable_entries = entries;
  q->capacity = m->ring.capacity;
  q->window = mirror_ring_window (&m->ring);
  q->sync = m->sync;
  q->head = head;
  q->queued_bytes = head - consumed;
  q->queued_entries = entries - consumed_entries;
  q->unsynced_bytes = head - durable;
  q->unsynced_entries = entries - durable_entries;
}
