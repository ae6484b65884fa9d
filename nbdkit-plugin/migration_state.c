/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the migration state (see migration_state.h). */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nbdkit-filter.h>

#include "bitmap.h"
#include "migration_state.h"

int
migration_draw_instance (struct migration_state *st)
{
  static const char hex[] = "0123456789abcdef";
  uint8_t bytes[CONTROL_MIGRATION_ID_LEN / 2];
  size_t i;

  if (getrandom (bytes, sizeof bytes, 0) != (ssize_t) sizeof bytes) {
    nbdkit_error ("migrate: cannot draw the filter's instance id from the "
                  "kernel's random source: %m");
    return -1;
  }
  for (i = 0; i < sizeof bytes; i++) {
    st->instance[2 * i] = hex[bytes[i] >> 4];
    st->instance[2 * i + 1] = hex[bytes[i] & 0xf];
  }
  st->instance[2 * sizeof bytes] = '\0';
  return 0;
}

bool
migration_geometry_known (struct migration_state *st)
{
  return __atomic_load_n (&st->size_known, __ATOMIC_ACQUIRE);
}

int
migration_set_geometry (struct migration_state *st, uint64_t size)
{
  int r = 0;

  if (migration_geometry_known (st)) {
    if (st->size == size)
      return 0;
    nbdkit_error ("migrate: the plugin now reports an image size of %" PRIu64
                  " bytes, but the filter tracks an image of %" PRIu64
                  " bytes (another export, or the image was resized); "
                  "refusing this connection",
                  size, st->size);
    return -1;
  }

  pthread_mutex_lock (&st->geometry_lock);
  if (st->size_known) {
    /* Another connection got here first. */
    pthread_mutex_unlock (&st->geometry_lock);
    return migration_set_geometry (st, size);
  }

  st->nblocks = block_count_for_size (size, st->block_size);
  if (block_bitmap_init (&st->dirty, st->nblocks) == -1 ||
      block_bitmap_init (&st->unconfirmed, st->nblocks) == -1 ||
      block_bitmap_init (&st->handed_out, st->nblocks) == -1) {
    nbdkit_error ("migrate: cannot allocate the block bitmaps for an image "
                  "of %" PRIu64 " bytes in blocks of %" PRIu32 " bytes: %m",
                  size, st->block_size);
    block_bitmap_free (&st->dirty);
    block_bitmap_free (&st->unconfirmed);
    block_bitmap_free (&st->handed_out);
    r = -1;
  }
  else {
    /* Nothing has been copied anywhere yet, so every block is dirty and the
     * first snapshot is the full pass. */
    block_bitmap_set_all (&st->dirty);
    st->size = size;
    __atomic_store_n (&st->size_known, true, __ATOMIC_RELEASE);
    nbdkit_debug ("migrate: tracking %" PRIu64 " bytes in %" PRIu64
                  " blocks of %" PRIu32 " bytes",
                  size, st->nblocks, st->block_size);
  }
  pthread_mutex_unlock (&st->geometry_lock);
  return r;
}

void
migration_mark_dirty (struct migration_state *st,
                      uint64_t offset, uint64_t count)
{
  uint64_t first, nblocks;

  /* Every connection learns or checks the size in .prepare, before it can
   * send a write, so the bitmaps exist here. */
  assert (migration_geometry_known (st));
  block_range_of_bytes (offset, count, st->block_size, &first, &nblocks);
  block_bitmap_set_range (&st->dirty, first, nblocks);
}

void
migration_note_mirrored (struct migration_state *st, uint64_t count)
{
  __atomic_fetch_add (&st->writes, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add (&st->write_bytes, count, __ATOMIC_RELAXED);
}

void
migration_note_write (struct migration_state *st,
                      uint64_t offset, uint64_t count)
{
  migration_note_mirrored (st, count);
  migration_mark_dirty (st, offset, count);
}

uint64_t
migration_bitmap_bytes (const struct migration_state *st,
                        const struct block_bitmap *bm)
{
  uint64_t blocks = block_bitmap_count (bm);
  uint64_t bytes = blocks * st->block_size;
  uint64_t tail = st->nblocks * (uint64_t) st->block_size - st->size;

  /* Only the last block can be partial. */
  if (tail > 0 && blocks > 0 && block_bitmap_test (bm, st->nblocks - 1))
    bytes -= tail;
  return bytes;
}

const char *
migration_state_name (struct migration_state *st)
{
  switch (write_gate_mode (&st->gate)) {
  case WRITE_GATE_OPEN: return "tracking";
  case WRITE_GATE_CLOSED: return "frozen";
  case WRITE_GATE_FENCED: return "fenced";
  case WRITE_GATE_FORWARDING: return "forwarding";
  }
  abort ();
}

void
migration_state_free (struct migration_state *st)
{
  block_bitmap_free (&st->dirty);
  block_bitmap_free (&st->unconfirmed);
  block_bitmap_free (&st->handed_out);
  free (st->control_path);
  st->control_path = NULL;
}
