/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the state of the migration, the filter's one
 * instance.
 *
 * It holds the configuration, the image geometry, the three block bitmaps,
 * the write gate, the throttle and the counters STATUS reports.  Worker
 * threads set dirty bits, pass the gate and bump counters, all with
 * atomics (besides the throttle's own lock and, once, the geometry's);
 * everything else (snapshots, confirmations, freezing) happens on the
 * control thread, so the bitmaps other than dirty need no lock at all.
 *
 * The geometry (image size, number of blocks, the bitmaps) is learned once,
 * from a plugin context the filter opens itself right after nbdkit has
 * forked or, failing that, from the first NBD client's connection.
 * geometry_lock serialises that one-time set-up; size_known publishes it to
 * other threads.
 */
#ifndef STM_MIGRATION_STATE_H
#define STM_MIGRATION_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <nbdkit-filter.h>

#include "bitmap.h"
#include "control_proto.h"
#include "forward.h"
#include "mirror.h"
#include "preconnect.h"
#include "throttle.h"
#include "time_units.h"
#include "write_gate.h"
#include "write_overlap.h"

#define MIGRATE_DEFAULT_BLOCK (64 * 1024)
#define MIGRATE_MIN_BLOCK (4 * 1024)
#define MIGRATE_MAX_BLOCK (64 * 1024 * 1024)
#define MIGRATE_DEFAULT_FREEZE_TIMEOUT_NS (30 * NS_PER_S)
#define MIGRATE_MAX_FREEZE_TIMEOUT_NS (24 * 3600 * NS_PER_S)
#define TRACKING_UNKNOWN "unknown"

struct migration_state {
  /* Configuration, fixed once nbdkit has finished .config_complete. */
  char *control_path;            /* absolute path of the control socket */
  uint32_t block_size;           /* bytes per bitmap bit */
  uint64_t freeze_timeout_ns;    /* longest a freeze may hold writes */
  char freeze_timeout_text[32];  /* as the user wrote it, for messages */
  /* Who this filter is: 32 random hex digits drawn once when the filter
   * starts serving (.after_fork), reported by STATUS as instance=.  A
   * sender derives its migration id from it, so a sender restarted
   * against the same nbdkit process finds its migration again, while a
   * restarted nbdkit (whose bitmaps start over with every block dirty)
   * is a new migration.  It names the filter, not the process: a
   * daemonized nbdkit's control socket is created before the fork, so
   * the socket's peer credentials name a parent that has exited. */
  char instance[CONTROL_MIGRATION_ID_LEN + 1];

  /* The image geometry, written once under geometry_lock and then
   * published by a release store of size_known. */
  pthread_mutex_t geometry_lock;
  bool size_known;               /* atomic */
  uint64_t size;                 /* image size in bytes */
  uint64_t nblocks;              /* bits in each bitmap */

  /* dirty: written since the blocks were last handed out; set by worker
   * threads, drained by the control thread.  unconfirmed: handed to a
   * sender and not yet confirmed durable on the destination.  handed_out:
   * the blocks the latest SNAPSHOT moved, which its reply streams out.
   * unconfirmed and handed_out are touched by the control thread only. */
  struct block_bitmap dirty;
  struct block_bitmap unconfirmed;
  struct block_bitmap handed_out;

  /* Control thread only. */
  uint64_t generation;           /* number of SNAPSHOTs taken */
  /* Whose destination unconfirmed and dirty describe.  A block confirmed
   * durable on one destination is not copied to another, so a RESUME
   * naming one migration must not inherit the confirmations of another:
   * tracking_for is the migration id given to the last RESET or RESUME
   * (32 hex digits), "" while nothing was reset or confirmed since nbdkit
   * started (every block is dirty then), and TRACKING_UNKNOWN after a
   * RESET or CONFIRM that named no migration.  Once the source has
   * flipped it never changes again (every command that would change it
   * is refused), so it also names the migration the source flipped for:
   * a sender restarted after its flip can tell the flip was its own. */
  char tracking_for[CONTROL_MIGRATION_ID_LEN + 1];
  uint64_t frozen_since_ns;      /* monotonic time the gate closed */
  uint64_t frozen_until_ns;      /* monotonic time it reopened or flipped */

  /* A plugin context of the filter's own, opened after the fork, used to
   * learn the size before any client connects and to flush the plugin at
   * FREEZE.  NULL when it could not be opened (then the size comes from the
   * first client and FREEZE relies on the drain alone).  Control thread
   * only, once the control thread runs. */
  nbdkit_next *plugin;
  bool plugin_can_flush;
  /* Flushes of that context still running in the background (a FREEZE
   * gave up waiting for them); atomic.  Cleanup waits for them before it
   * closes the context. */
  unsigned flushes_running;

  struct write_gate gate;
  struct throttle throttle;

  /* The destination's NBD server after FLIP forward (forward.h).  Written
   * by the control thread before the gate's mode becomes
   * WRITE_GATE_FORWARDING, whose sequentially consistent store publishes
   * it to the worker threads; never changed again until cleanup. */
  struct forward *forward;

  /* The connection PRECONNECT prepared for FLIP forward to take over;
   * control thread only (preconnect.h).  It carries no guest request:
   * only st->forward does, once the flip has published it. */
  struct preconnect preconnect;

  /* The mirror ring, while MIRROR START is in force (mirror.h): worker
   * threads hand it every completed write-like request.  Installed and
   * removed by the control thread only. */
  struct mirror_slot mirror;
  struct mirror_counters mirror_counters;
  /* Write-like requests in flight per block (write_overlap.h), kept
   * whether or not a ring exists, so that a ring started while writes
   * are in flight still learns of their overlaps. */
  struct write_overlap overlap;
  uint64_t overlaps;             /* groups of overlapping writes requeued */

  /* Counters for STATUS; relaxed atomics. */
  uint64_t writes;               /* write, zero and trim requests completed */
  uint64_t write_bytes;          /* bytes they covered */
  uint64_t freezes;              /* successful FREEZEs */
  uint64_t thaws_by_timeout;     /* freezes ended by migrate-freeze-timeout */
};

#define MIGRATION_STATE_INIT {                                        \
    .block_size = MIGRATE_DEFAULT_BLOCK,                              \
    .freeze_timeout_ns = MIGRATE_DEFAULT_FREEZE_TIMEOUT_NS,           \
    .freeze_timeout_text = "30s",                                     \
    .geometry_lock = PTHREAD_MUTEX_INITIALIZER,                       \
    .gate = WRITE_GATE_INIT,                                          \
    .throttle = THROTTLE_INIT,                                        \
    .preconnect = PRECONNECT_INIT,                                    \
    .mirror = MIRROR_SLOT_INIT,                                       \
  }

/* Record the image size: allocate the bitmaps with every block dirty.  The
 * first call does the work; later calls check that the size is the same.
 * Returns -1 (after nbdkit_error) if allocation fails or the size differs
 * from the one already known. */
int migration_set_geometry (struct migration_state *st, uint64_t size);

/* Draw the filter's instance id (st->instance) from the kernel's random
 * source.  -1 after nbdkit_error. */
int migration_draw_instance (struct migration_state *st);

/* Has the size been learned?  (Acquire: the bitmaps are then usable.) */
bool migration_geometry_known (struct migration_state *st);

/* A write-like request on [offset, offset+count) completed, successfully
 * or not: mark its blocks dirty and count it.  Lock free. */
void migration_note_write (struct migration_state *st,
                           uint64_t offset, uint64_t count);

/* The same request was handed to the mirror ring instead: count it, and
 * leave the dirty bitmap alone.  Lock free. */
void migration_note_mirrored (struct migration_state *st, uint64_t count);

/* Mark the blocks of [offset, offset+count) dirty without counting a
 * request (the last of a group of overlapping writes). */
void migration_mark_dirty (struct migration_state *st,
                           uint64_t offset, uint64_t count);

/* Bytes of image covered by the set bits of bm (the last block may be
 * partial). */
uint64_t migration_bitmap_bytes (const struct migration_state *st,
                                 const struct block_bitmap *bm);

/* The STATUS name of the current state: tracking, frozen, fenced or
 * forwarding. */
const char *migration_state_name (struct migration_state *st);

/* Free the bitmaps and the configuration strings (at unload). */
void migration_state_free (struct migration_state *st);

#endif /* STM_MIGRATION_STATE_H */
