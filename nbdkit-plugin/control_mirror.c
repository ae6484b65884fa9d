/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the mirror ring's control commands (see
 * control_mirror.h and "MIRROR START" in docs/protocol.md). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "control_mirror.h"
#include "control_proto.h"
#include "migration_state.h"
#include "mirror.h"
#include "mirror_ring.h"
#include "time_units.h"

/* The longest a mirror-sync write may wait for the destination, and a
 * write for room in a full ring: as long as a freeze may hold it. */
#define MAX_SYNC_TIMEOUT_MS (MIGRATE_MAX_FREEZE_TIMEOUT_NS / NS_PER_MS)

bool
control_mirror_start (struct migration_state *st,
                      const struct control_request *req,
                      int fds[3], char *line, size_t size)
{
  struct mirror *m;
  char why[256];

  if (!mirror_ring_capacity_ok (req->ring_bytes)) {
    snprintf (line, size, "ERR EINVAL MIRROR START size %" PRIu64 " must be "
              "a power of two from 1048576 (1M) to 4294967296 (4G); "
              "nothing was changed", req->ring_bytes);
    return false;
  }
  if (req->mirror_sync && req->sync_timeout_ms > MAX_SYNC_TIMEOUT_MS) {
    snprintf (line, size, "ERR EINVAL MIRROR START sync timeout %" PRIu64
              " ms is longer than the limit of 24h; nothing was changed",
              req->sync_timeout_ms);
    return false;
  }
  if (req->full_wait_ms > MAX_SYNC_TIMEOUT_MS) {
    snprintf (line, size, "ERR EINVAL MIRROR START wait %" PRIu64
              " ms is longer than the limit of 24h; nothing was changed",
              req->full_wait_ms);
    return false;
  }
  m = mirror_create (req->ring_bytes, st->size, st->block_size, &st->dirty,
                     &st->mirror_counters, req->mirror_sync,
                     req->sync_timeout_ms * NS_PER_MS,
                     req->full_wait_ms * NS_PER_MS, why, sizeof why);
  if (m == NULL) {
    snprintf (line, size, "ERR ENOMEM cannot make a mirror ring of %" PRIu64
              " bytes: %s; nothing was changed", req->ring_bytes, why);
    return false;
  }
  if (mirror_dup_fds (m, fds) == -1) {
    snprintf (line, size, "ERR EMFILE cannot duplicate the mirror ring's "
              "descriptors for the consumer: %s; nothing was changed",
              strerror (errno));
    mirror_release (m);
    return false;
  }
  if (!mirror_slot_install (&st->mirror, m)) {
    snprintf (line, size, "ERR EALREADY a mirror ring is already in force: "
              "MIRROR STOP first; nothing was changed");
    for (int i = 0; i < 3; i++)
      close (fds[i]);
    mirror_release (m);
    return false;
  }
  nbdkit_debug ("migrate: mirroring every guest write through a ring of %"
                PRIu64 " bytes (%s); a write that finds it full waits %"
                PRIu64 " ms for room", req->ring_bytes,
                req->mirror_sync ? "mirror-sync" : "mirror", req->full_wait_ms);
  snprintf (line, size, "OK mirror mode=%s ring_bytes=%" PRIu64
            " area_bytes=%" PRIu64 " sync_timeout_ms=%" PRIu64
            " full_wait_ms=%" PRIu64 " fds=3",
            req->mirror_sync ? "mirror-sync" : "mirror", req->ring_bytes,
            mirror_ring_area_size (req->ring_bytes),
            req->mirror_sync ? req->sync_timeout_ms : 0, req->full_wait_ms);
  return true;
}

/* Take the ring away and drop the slot's reference; the records not
 * durable become dirty now, or when the last writer using the ring
 * lets it go (before it leaves the write gate, so a FREEZE sees them).
 * Returns whether there was a ring, and the records requeued now. */
static bool
take_ring_away (struct migration_state *st, uint64_t *requeued,
                uint64_t *unsynced_bytes)
{
  struct mirror *m = mirror_slot_remove (&st->mirror);
  struct mirror_queue q;

  if (m == NULL)
    return false;
  mirror_queue_state (m, &q);
  *unsynced_bytes = q.unsynced_bytes;
  *requeued = mirror_release (m);
  return true;
}

void
control_mirror_stop (struct migration_state *st, char *line, size_t size)
{
  uint64_t requeued = 0, unsynced = 0;

  if (!take_ring_away (st, &requeued, &unsynced)) {
    snprintf (line, size, "OK not-mirroring");
    return;
  }
  snprintf (line, size, "OK mirror-stopped unsynced_bytes=%" PRIu64
            " requeued_entries=%" PRIu64, unsynced, requeued);
}

void
control_mirror_end (struct migration_state *st, const char *why)
{
  uint64_t requeued = 0, unsynced = 0;

  if (take_ring_away (st, &requeued, &unsynced))
    nbdkit_debug ("migrate: mirroring ended (%s): %" PRIu64 " bytes of "
                  "records not durable on the destination, %" PRIu64
                  " records dirty again", why, unsynced, requeued);
}

void
control_mirror_status (struct migration_state *st, char *buf, size_t size)
{
  struct mirror *m = mirror_slot_acquire (&st->mirror);
  struct mirror_queue q = { 0 };
  const struct mirror_counters *c = &st->mirror_counters;

  if (m != NULL)
    mirror_queue_state (m, &q);
  snprintf (buf, size,
            " mirror=%s mirror_ring_bytes=%" PRIu64 " mirror_window_bytes=%" PRIu64
            " mirror_queued_entries=%" PRIu64 " mirror_queued_bytes=%" PRIu64
            " mirror_unsynced_entries=%" PRIu64 " mirror_unsynced_bytes=%" PRIu64
            " mirror_clock=%" PRIu64 " mirror_entries=%" PRIu64
            " mirror_bytes=%" PRIu64 " mirror_fallbacks=%" PRIu64
            " mirror_sync_timeouts=%" PRIu64 " mirror_requeued=%" PRIu64
            " mirror_full_waits=%" PRIu64 " mirror_full_wait_ms=%" PRIu64
            " mirror_full_timeouts=%" PRIu64 " write_overlaps=%" PRIu64,
            m == NULL ? "off" : q.sync ? "mirror-sync" : "mirror",
            q.capacity, q.window, q.queued_entries, q.queued_bytes,
            q.unsynced_entries, q.unsynced_bytes, q.head,
            __atomic_load_n (&c->records, __ATOMIC_RELAXED),
            __atomic_load_n (&c->data_bytes, __ATOMIC_RELAXED),
            __atomic_load_n (&c->fallbacks, __ATOMIC_RELAXED),
            __atomic_load_n (&c->sync_timeouts, __ATOMIC_RELAXED),
            __atomic_load_n (&c->requeued, __ATOMIC_RELAXED),
            __atomic_load_n (&c->full_waits, __ATOMIC_RELAXED),
            __atomic_load_n (&c->full_wait_ns, __ATOMIC_RELAXED) / NS_PER_MS,
            __atomic_load_n (&c->full_timeouts, __ATOMIC_RELAXED),
            __atomic_load_n (&st->overlaps, __ATOMIC_RELAXED));
  mirror_release (m);
}

void
control_mirror_freezing (struct migration_state *st, bool freezing)
{
  mirror_slot_set_freezing (&st->mirror, freezing);
}

bool
control_mirror_flushed (struct migration_state *st, char *why, size_t size)
{
  struct mirror *m = mirror_slot_acquire (&st->mirror);
  struct mirror_queue q;
  bool flushed = true;

  if (m == NULL)
    return true;
  mirror_queue_state (m, &q);
  if (q.unsynced_bytes > 0) {
    snprintf (why, size, "%" PRIu64 " mirrored records (%" PRIu64 " bytes "
              "of ring) are not durable on the destination",
              q.unsynced_entries, q.unsynced_bytes);
    flushed = false;
  }
  mirror_release (m);
  return flushed;
}
