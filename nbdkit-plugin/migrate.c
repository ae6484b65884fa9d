/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: registration with nbdkit, the filter's parameters,
 * its life cycle, and the data path.
 *
 * The data path is kept as thin as possible.  Writes (after the throttle,
 * when THROTTLE is on), zeroes and trims pass the write gate, go to the
 * plugin, and on completion (success or failure: the data may have changed
 * partly) mark their blocks dirty before leaving the gate, so a FREEZE that
 * has drained the gate sees every dirty bit.  Flushes pass the gate too.  Reads,
 * extents and cache requests pass straight through, failing only once the
 * source is fenced.  After FLIP forward every request goes to the
 * destination instead (forward.c).  Every can_* callback is left to
 * nbdkit's pass-through, which asks the plugin: the filter changes no
 * capability.  It declares no thread model of its own, so the plugin's
 * applies, but it refuses to start over one that serializes all requests
 * or connections (migrate_get_ready).
 *
 * The filter's one instance lives here: the migration state and the
 * control server.
 *
 * Every file of the filter reports through nbdkit alone, so that nbdkit's
 * --log, -f and -v decide where each message goes, as they do for the
 * plugin's (the CLIs' common/log.c is not linked in).  nbdkit 1.32 has no
 * warning level for filters, so the rule is: nbdkit_error for what an
 * operator must see even when the filter carries on (a freeze it thawed
 * by itself, a destination failing forwarded requests, a plugin that may
 * hand the sender stale data); nbdkit_debug for what only explains (each
 * control command, timings, connections).  A failure a control client
 * learns from its ERR reply is left to that client to report, except a
 * failed FLIP forward, which leaves the guest frozen until the client
 * acts.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdkit-filter.h>

#include "bitmap.h"
#include "bits.h"
#include "clock.h"
#include "control_server.h"
#include "forward.h"
#include "migration_state.h"
#include "mirror.h"
#include "parse.h"
#include "preconnect.h"
#include "throttle.h"
#include "time_units.h"
#include "write_gate.h"
#include "write_overlap.h"

static struct migration_state migration = MIGRATION_STATE_INIT;
static struct control_server control = CONTROL_SERVER_INIT;
static int final_thread_model = NBDKIT_THREAD_MODEL_PARALLEL;

/* How long cleanup waits for a flush a FREEZE gave up on. */
#define CLEANUP_FLUSH_WAIT_MS 5000

/* --- parameters ---------------------------------------------------- */

static int
config_block (const char *value)
{
  uint64_t bytes;

  if (parse_size (value, &bytes) == -1) {
    nbdkit_error ("migrate-block=%s: not a size (write it like 64K or 1M)",
                  value);
    return -1;
  }
  if (bytes < MIGRATE_MIN_BLOCK || bytes > MIGRATE_MAX_BLOCK ||
      !is_power_of_two (bytes)) {
    nbdkit_error ("migrate-block=%s: the block size must be a power of two "
                  "from 4K to 64M", value);
    return -1;
  }
  migration.block_size = (uint32_t) bytes;
  return 0;
}

static int
config_freeze_timeout (const char *value)
{
  uint64_t ns;
  int n;

  if (parse_duration (value, NS_PER_S, &ns) == -1) {
    nbdkit_error ("migrate-freeze-timeout=%s: not a duration "
                  "(write it like 30s, 500ms or 2m; a bare number is seconds)",
                  value);
    return -1;
  }
  if (ns == 0) {
    nbdkit_error ("migrate-freeze-timeout=%s: the timeout must be longer "
                  "than zero", value);
    return -1;
  }
  /* No guest should be held for longer than a day, and a bound keeps the
   * milliseconds STATUS reports and every deadline made from it far from
   * any limit. */
  if (ns > MIGRATE_MAX_FREEZE_TIMEOUT_NS) {
    nbdkit_error ("migrate-freeze-timeout=%s: longer than the limit of 24h "
                  "(a freeze holds every guest write for that long)", value);
    return -1;
  }
  migration.freeze_timeout_ns = ns;

  /* Messages quote the timeout as the user wrote it, if it is short. */
  n = snprintf (migration.freeze_timeout_text,
                sizeof migration.freeze_timeout_text, "%s", value);
  if (n < 0 || (size_t) n >= sizeof migration.freeze_timeout_text)
    snprintf (migration.freeze_timeout_text,
              sizeof migration.freeze_timeout_text, "%" PRIu64 "ms",
              ns / NS_PER_MS);
  return 0;
}

static int
migrate_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                const char *key, const char *value)
{
  if (strcmp (key, "migrate-control") == 0) {
    free (migration.control_path);
    migration.control_path = nbdkit_absolute_path (value);
    return migration.control_path == NULL ? -1 : 0;
  }
  if (strcmp (key, "migrate-block") == 0)
    return config_block (value);
  if (strcmp (key, "migrate-freeze-timeout") == 0)
    return config_freeze_timeout (value);
  return next (nxdata, key, value);
}

static int
migrate_config_complete (nbdkit_next_config_complete *next,
                         nbdkit_backend *nxdata)
{
  if (migration.control_path == NULL) {
    nbdkit_error ("the migrate filter needs migrate-control=PATH, the Unix "
                  "socket on which it takes its control commands");
    return -1;
  }
  return next (nxdata);
}

#define migrate_config_help \
  "migrate-control=PATH            (required) Control socket (mode 0600).\n" \
  "migrate-block=SIZE              Block size of the dirty bitmap\n" \
  "                                (power of two, 4K..64M, default 64K).\n" \
  "migrate-freeze-timeout=DURATION Longest a FREEZE may hold writes\n" \
  "                                (default 30s)."

/* --- life cycle ---------------------------------------------------- */

/* Create the control socket before nbdkit forks, so it exists by the time
 * nbdkit's own socket does; the thread that serves it starts after.
 * Nothing depends on which process created it: stm-send identifies the
 * filter by the instance id STATUS reports, not by the socket's peer. */
static int
migrate_get_ready (int thread_model)
{
  /* A guest write waiting at a closed gate holds nbdkit's request lock
   * under these models, so the sender's reads of the final pass would
   * wait for the thaw: no cutover could ever complete.  Under
   * serialize_connections the sender could not even connect. */
  if (thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS ||
      thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS) {
    nbdkit_error ("the migrate filter needs a plugin (and filters) that "
                  "serve several connections at once (thread model "
                  "serialize_requests or parallel), but this one allows "
                  "only %s: a guest write held by FREEZE would block the "
                  "sender's reads until the freeze timed out",
                  thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS
                  ? "serialize_connections" : "serialize_all_requests");
    return -1;
  }
  final_thread_model = thread_model;
  return control_server_listen (&control, &migration);
}

/* Open a plugin context of the filter's own, to learn the image size
 * before any client connects and to flush the plugin at FREEZE.  Its
 * requests come from the control thread, concurrently with the clients',
 * which only a plugin that allows parallel requests permits.  If it cannot
 * be done, the first client's connection supplies the size. */
static void
open_plugin_context (nbdkit_backend *backend)
{
  nbdkit_next *next;
  int64_t size;

  if (final_thread_model != NBDKIT_THREAD_MODEL_PARALLEL) {
    nbdkit_debug ("migrate: the plugin does not allow parallel requests, so "
                  "the filter opens no context of its own: the image size "
                  "comes from the first client, and FREEZE does not flush");
    return;
  }

  next = nbdkit_next_context_open (backend, 0, "", 1);
  if (next == NULL)
    next = nbdkit_next_context_open (backend, 1, "", 1);
  if (next == NULL) {
    nbdkit_debug ("migrate: could not open a plugin context of the filter's "
                  "own; the image size comes from the first client");
    return;
  }
  if (next->prepare (next) == -1) {
    nbdkit_next_context_close (next);
    nbdkit_debug ("migrate: could not prepare a plugin context of the "
                  "filter's own; the image size comes from the first client");
    return;
  }

  size = next->get_size (next);
  if (size < 0 || migration_set_geometry (&migration, (uint64_t) size) == -1) {
    next->finalize (next);
    nbdkit_next_context_close (next);
    return;
  }
  /* stm-send reads through a connection of its own and must see what the
   * guest's connection wrote: NBD promises that only with multi-conn.  A
   * plugin that keeps per-connection caches would hand out stale data,
   * and the destination would silently differ from the source.  nbdkit
   * 1.32 gives filters no warning level, and nbdkit_debug is seen only
   * with -v, so this goes out as an error: an operator about to migrate
   * must see it.  The filter still starts, as many plugins without the
   * flag do share one view of the data. */
  if (next->can_multi_conn (next) != 1)
    nbdkit_error ("migrate: the plugin does not advertise multi-conn, so "
                  "a write on one connection is not promised to be seen by "
                  "reads on another; stm-send reads on a connection of its "
                  "own, so migrate only if this plugin shares one view of "
                  "the data between connections (the filter serves anyway)");
  migration.plugin = next;
  migration.plugin_can_flush = next->can_flush (next) == 1;
}

static int
migrate_after_fork (nbdkit_backend *backend)
{
  /* Drawn in the process that serves, before anyone can ask STATUS. */
  if (migration_draw_instance (&migration) == -1)
    return -1;
  open_plugin_context (backend);
  return control_server_start (&control);
}

static void
migrate_cleanup (nbdkit_backend *backend)
{
  control_server_stop (&control);
  /* Nobody is left to take the ring's records. */
  mirror_release (mirror_slot_remove (&migration.mirror));
  /* No client is left to use the destination's connections. */
  forward_close (migration.forward);
  migration.forward = NULL;
  preconnect_drop (&migration.preconnect, "nbdkit is shutting down");
  if (migration.plugin != NULL) {
    /* A flush a FREEZE gave up on may still run on the context; closing
     * it under that thread would be a use after free.  Wait a little,
     * then leave it open rather than risk it.  (The filter's own code stays
     * mapped for such a thread; the plugin's may not, so a flush that
     * returns after nbdkit has unloaded the plugin can still crash a
     * process that is exiting anyway.) */
    for (int i = 0; i < CLEANUP_FLUSH_WAIT_MS / 10 &&
           __atomic_load_n (&migration.flushes_running, __ATOMIC_ACQUIRE) > 0; i++) {
      struct timespec ts = timespec_of_ns (10 * NS_PER_MS);
      nanosleep (&ts, NULL);
    }
    if (__atomic_load_n (&migration.flushes_running, __ATOMIC_ACQUIRE) > 0)
      nbdkit_error ("migrate: a flush of the plugin has not returned; its "
                    "context is left open at exit");
    else {
      migration.plugin->finalize (migration.plugin);
      nbdkit_next_context_close (migration.plugin);
    }
    migration.plugin = NULL;
  }
}

static void
migrate_unload (void)
{
  control_server_unlisten (&control);
  migration_state_free (&migration);
}

/* Every connection learns the size if nobody has yet, and checks that its
 * export is the image the bitmaps describe. */
static int
migrate_prepare (nbdkit_next *next, void *handle, int readonly)
{
  int64_t size = next->get_size (next);

  if (size < 0)
    return -1;
  return migration_set_geometry (&migration, (uint64_t) size);
}

/* --- data path ----------------------------------------------------- */

static bool
fenced (void)
{
  return write_gate_mode (&migration.gate) == WRITE_GATE_FENCED;
}

/* After FLIP forward every request goes to the destination. */
static bool
forwarding (void)
{
  return write_gate_mode (&migration.gate) == WRITE_GATE_FORWARDING;
}

/* For tests only: -D migrate.first_freeze_read_delay_ms=N makes every
 * read wait N ms while the source is frozen for the first time, so that a
 * cutover takes longer than predicted and the sender's --max-downtime
 * guard can be seen at work.  nbdkit sets it; 0 (the default) is off. */
NBDKIT_DLL_PUBLIC int migrate_debug_first_freeze_read_delay_ms = 0;

static void
delay_read_for_tests (void)
{
  int ms = migrate_debug_first_freeze_read_delay_ms;
  if (ms <= 0 || write_gate_mode (&migration.gate) != WRITE_GATE_CLOSED ||
      __atomic_load_n (&migration.freezes, __ATOMIC_RELAXED) != 1)
    return;
  struct timespec ts = timespec_of_ns ((uint64_t) ms * NS_PER_MS);
  nanosleep (&ts, NULL);
}

/* For tests only: -D migrate.read_delay_ms=N holds every read's data for
 * N ms after the plugin has returned it, so that a write completing
 * meanwhile races it for certain (test-mirror-order.sh).  0 is off. */
NBDKIT_DLL_PUBLIC int migrate_debug_read_delay_ms = 0;

static int
migrate_pread (nbdkit_next *next, void *handle,
               void *buf, uint32_t count, uint64_t offset, uint32_t flags,
               int *err)
{
  int r;

  if (fenced ()) {
    *err = EIO;
    return -1;
  }
  delay_read_for_tests ();
  if (forwarding ())
    return forward_pread (migration.forward, buf, count, offset, err);
  r = next->pread (next, buf, count, offset, flags, err);
  if (migrate_debug_read_delay_ms > 0) {
    struct timespec ts =
      timespec_of_ns ((uint64_t) migrate_debug_read_delay_ms * NS_PER_MS);
    nanosleep (&ts, NULL);
  }
  return r;
}

/* A write-like request is about to reach the plugin.  Whether it is
 * mirrored is decided now, once: with no ring in force (the usual case)
 * it takes no reference, counts nothing and shares no cache line with
 * other writers, and its blocks go by their dirty bits.  With a ring, it
 * holds a reference until it has completed, and counts itself into its
 * units' overlap counters (write_overlap.h).  A request that started
 * before a ring was installed is covered by its dirty bits, so the copy
 * read they cause comes after it, and it needs no overlap tracking.
 * Overlaps are told apart in units of 4 KiB, whatever migrate-block is:
 * two guest writes to different parts of one large block do not race. */
#define OVERLAP_UNIT 4096

static struct mirror *
write_started (uint64_t offset, uint32_t count)
{
  struct mirror *m = mirror_slot_acquire (&migration.mirror);
  uint64_t first, n;

  if (m != NULL) {
    block_range_of_bytes (offset, count, OVERLAP_UNIT, &first, &n);
    write_overlap_enter (&migration.overlap, first, n);
  }
  return m;
}

/* A write-like request has completed on the plugin, r being its result
 * (-1 also for a trim, which is never mirrored); m is what write_started
 * returned, and the caller is still inside the write gate.  Its blocks
 * must be covered until the destination has them durable: by a record in
 * the mirror ring when there is one and the request succeeded and fits,
 * by dirty bits otherwise (a failed request may have changed part of the
 * range, which only a copy read can tell).  Then, if it was the last of a
 * group of mirrored writes to the same blocks in flight at once, the
 * order in which the plugin applied them is unknown: its blocks are
 * copied again. */
static void
write_completed (struct mirror *m, enum mirror_record_type type, const void *buf,
                 uint32_t count, uint64_t offset, int r)
{
  uint64_t first, n;

  if (m != NULL && r == 0 && mirror_request (m, type, buf, count, offset))
    migration_note_mirrored (&migration, count);
  else
    migration_note_write (&migration, offset, count);
  if (m == NULL)
    return;
  mirror_release (m);

  block_range_of_bytes (offset, count, OVERLAP_UNIT, &first, &n);
  if (write_overlap_leave (&migration.overlap, first, n)) {
    migration_mark_dirty (&migration, offset, count);
    __atomic_fetch_add (&migration.overlaps, 1, __ATOMIC_RELAXED);
  }
}

static int
migrate_pwrite (nbdkit_next *next, void *handle,
                const void *buf, uint32_t count, uint64_t offset,
                uint32_t flags, int *err)
{
  int r;

  throttle_wait (&migration.throttle, count);
  r = write_gate_enter (&migration.gate, err);
  if (r == -1)
    return -1;
  if (r == WRITE_GATE_FORWARD)
    return forward_pwrite (migration.forward, buf, count, offset, flags, err);
  struct mirror *m = write_started (offset, count);
  r = next->pwrite (next, buf, count, offset, flags, err);
  write_completed (m, MIRROR_WRITE, buf, count, offset, r);
  write_gate_leave (&migration.gate);
  return r;
}

/* Zero and trim take the same road through the write gate and differ only
 * in the request made at its end, so one function serves both: the rule
 * "mark the blocks dirty before leaving the gate" then lives in one place.
 */
enum data_free_request { REQUEST_ZERO, REQUEST_TRIM };

static int
gated_zero_or_trim (nbdkit_next *next, enum data_free_request request,
                    uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  int r;

  r = write_gate_enter (&migration.gate, err);
  if (r == -1)
    return -1;
  if (r == WRITE_GATE_FORWARD)
    return request == REQUEST_TRIM
      ? forward_trim (migration.forward, count, offset, flags, err)
      : forward_zero (migration.forward, count, offset, flags, err);
  struct mirror *m = write_started (offset, count);
  r = request == REQUEST_TRIM
    ? next->trim (next, count, offset, flags, err)
    : next->zero (next, count, offset, flags, err);
  /* What a trimmed range reads as is the plugin's choice: only a copy
   * read can tell, so a trim always goes by its dirty bits. */
  write_completed (m, MIRROR_ZERO, NULL, count, offset,
                   request == REQUEST_TRIM ? -1 : r);
  write_gate_leave (&migration.gate);
  return r;
}

static int
migrate_zero (nbdkit_next *next, void *handle,
              uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return gated_zero_or_trim (next, REQUEST_ZERO, count, offset, flags, err);
}

static int
migrate_trim (nbdkit_next *next, void *handle,
              uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return gated_zero_or_trim (next, REQUEST_TRIM, count, offset, flags, err);
}

static int
migrate_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  int r;

  r = write_gate_enter (&migration.gate, err);
  if (r == -1)
    return -1;
  if (r == WRITE_GATE_FORWARD)
    return forward_flush (migration.forward, err);
  r = next->flush (next, flags, err);
  write_gate_leave (&migration.gate);
  return r;
}

static int
migrate_extents (nbdkit_next *next, void *handle,
                 uint32_t count, uint64_t offset, uint32_t flags,
                 struct nbdkit_extents *extents, int *err)
{
  if (fenced ()) {
    *err = EIO;
    return -1;
  }
  if (forwarding ())
    return forward_extents (migration.forward, count, offset, extents, err);
  return next->extents (next, count, offset, flags, extents, err);
}

static int
migrate_cache (nbdkit_next *next, void *handle,
               uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  if (fenced ()) {
    *err = EIO;
    return -1;
  }
  if (forwarding ())
    return forward_cache (migration.forward, count, offset, err);
  return next->cache (next, count, offset, flags, err);
}

static struct nbdkit_filter filter = {
  .name              = "migrate",
  .longname          = "stm live migration filter",
  .description       = "Tracks the blocks clients write and obeys a control "
                       "socket, so stm-send can migrate the disk live.",
  .unload            = migrate_unload,
  .config            = migrate_config,
  .config_complete   = migrate_config_complete,
  .config_help       = migrate_config_help,
  .get_ready         = migrate_get_ready,
  .after_fork        = migrate_after_fork,
  .cleanup           = migrate_cleanup,
  .prepare           = migrate_prepare,
  .pread             = migrate_pread,
  .pwrite            = migrate_pwrite,
  .zero              = migrate_zero,
  .trim              = migrate_trim,
  .flush             = migrate_flush,
  .extents           = migrate_extents,
  .cache             = migrate_cache,
};

NBDKIT_REGISTER_FILTER (filter)
