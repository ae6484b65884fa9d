/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: executing control commands (see control_commands.h
 * and the control protocol in docs/protocol.md).
 *
 * Every command validates everything before it changes anything, so an
 * ERR reply leaves the bitmaps, the tracking, the throttle and the gate
 * as they were.  (A FREEZE that fails after closing the gate has reopened
 * it, and counts a thaw by timeout when it ran out of time.)
 */
#include <config.h>

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdkit-filter.h>

#include "bitmap.h"
#include "clock.h"
#include "control_commands.h"
#include "control_mirror.h"
#include "control_proto.h"
#include "migration_state.h"
#include "preconnect.h"
#include "time_units.h"
#include "write_gate.h"

static void
reply_printf (struct control_reply *reply, bool ok, const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));

static void
reply_printf (struct control_reply *reply, bool ok, const char *fmt, ...)
{
  va_list args;
  int n;

  va_start (args, fmt);
  n = vsnprintf (reply->line, sizeof reply->line - 1, fmt, args);
  va_end (args);
  assert (n >= 0);
  /* Replies are short by construction; a truncated one still ends in a
   * newline so the client's framing survives. */
  if ((size_t) n > sizeof reply->line - 2)
    n = (int) sizeof reply->line - 2;
  reply->line[n] = '\n';
  reply->line[n + 1] = '\0';
  reply->len = (size_t) n + 1;
  reply->ok = ok;
  reply->snapshot_follows = false;
  reply->deferred = false;
  reply->nfds = 0;
}

void
control_reply_err (struct control_reply *reply,
                   const char *errno_name, const char *why)
{
  reply_printf (reply, false, "ERR %s %s", errno_name, why);
}

static const char *
role_name (enum control_role role)
{
  switch (role) {
  case CONTROL_ROLE_OWNER: return "you";
  case CONTROL_ROLE_UNOWNED: return "none";
  case CONTROL_ROLE_OTHER: return "other";
  }
  abort ();
}

static void
do_status (struct migration_state *st, enum control_role role,
           struct control_reply *reply)
{
  reply_printf (reply, true,
                "OK size=%" PRIu64 " block=%" PRIu32 " generation=%" PRIu64
                " dirty_blocks=%" PRIu64 " dirty_bytes=%" PRIu64
                " unconfirmed_blocks=%" PRIu64 " unconfirmed_bytes=%" PRIu64
                " state=%s owner=%s throttle=%" PRIu64
                " inflight_writes=%" PRIu64 " writes=%" PRIu64
                " write_bytes=%" PRIu64 " freezes=%" PRIu64
                " thaws_by_timeout=%" PRIu64 " freeze_timeout_ms=%" PRIu64
                " migration=%s instance=%s preconnect=%s",
                st->size, st->block_size, st->generation,
                block_bitmap_count (&st->dirty),
                migration_bitmap_bytes (st, &st->dirty),
                block_bitmap_count (&st->unconfirmed),
                migration_bitmap_bytes (st, &st->unconfirmed),
                migration_state_name (st), role_name (role),
                throttle_rate (&st->throttle),
                write_gate_inflight (&st->gate),
                __atomic_load_n (&st->writes, __ATOMIC_RELAXED),
                __atomic_load_n (&st->write_bytes, __ATOMIC_RELAXED),
                __atomic_load_n (&st->freezes, __ATOMIC_RELAXED),
                __atomic_load_n (&st->thaws_by_timeout, __ATOMIC_RELAXED),
                /* So that a client knows how long FREEZE and FLIP may
                 * take before it gives up waiting for their reply. */
                st->freeze_timeout_ns / NS_PER_MS,
                st->tracking_for[0] != '\0' ? st->tracking_for : "none",
                st->instance,
                preconnect_state_name (st->preconnect.state));
  /* The mirror ring's fields follow, on the same line. */
  {
    char base[CONTROL_REPLY_MAX], mirror[CONTROL_MIRROR_STATUS_MAX];

    memcpy (base, reply->line, reply->len - 1);    /* without the newline */
    base[reply->len - 1] = '\0';
    control_mirror_status (st, mirror, sizeof mirror);
    reply_printf (reply, true, "%s%s", base, mirror);
  }
}

/* The byte extent of a run of blocks, the last one clipped to the size. */
static void
run_to_extent (const struct migration_state *st, uint64_t start, uint64_t count,
               uint64_t *offset, uint64_t *length)
{
  *offset = start * st->block_size;
  *length = count * st->block_size;
  if (*length > st->size - *offset)
    *length = st->size - *offset;
}

static void
do_snapshot (struct migration_state *st, struct control_reply *reply)
{
  uint64_t from = 0, start, count, extents = 0, bytes = 0;

  /* Move dirty into handed_out (each word swapped out atomically, so a
   * block written meanwhile is either moved now or stays dirty for the
   * next snapshot), then add exactly those blocks to unconfirmed.  Only
   * this thread reads unconfirmed, so nobody sees the blocks in between. */
  block_bitmap_clear_all (&st->handed_out);
  block_bitmap_move_into (&st->handed_out, &st->dirty);
  block_bitmap_or_into (&st->unconfirmed, &st->handed_out);
  st->generation++;

  /* Runs of set bits are maximal, so each is one coalesced extent. */
  while (block_bitmap_next_run (&st->handed_out, from, &start, &count)) {
    uint64_t offset, length;

    run_to_extent (st, start, count, &offset, &length);
    extents++;
    bytes += length;
    from = start + count;
  }

  nbdkit_debug ("migrate: snapshot generation %" PRIu64 ": %" PRIu64
                " extents, %" PRIu64 " bytes",
                st->generation, extents, bytes);
  reply_printf (reply, true,
                "OK generation=%" PRIu64 " extents=%" PRIu64 " bytes=%" PRIu64,
                st->generation, extents, bytes);
  reply->snapshot_follows = true;
}

static void
do_confirm (struct migration_state *st, const struct control_request *req,
            struct control_reply *reply)
{
  uint64_t end, first, count;

  if (req->offset > st->size || req->length > st->size - req->offset) {
    reply_printf (reply, false,
                  "ERR ERANGE CONFIRM range %" PRIu64 "+%" PRIu64
                  " ends beyond the image size %" PRIu64,
                  req->offset, req->length, st->size);
    return;
  }
  end = req->offset + req->length;
  if (req->offset % st->block_size != 0 ||
      (end % st->block_size != 0 && end != st->size)) {
    reply_printf (reply, false,
                  "ERR EINVAL CONFIRM range %" PRIu64 "+%" PRIu64
                  " is not aligned to the block size %" PRIu32
                  " (its end may also be the image size %" PRIu64 ")",
                  req->offset, req->length, st->block_size, st->size);
    return;
  }

  block_range_of_bytes (req->offset, req->length, st->block_size,
                        &first, &count);
  block_bitmap_clear_range (&st->unconfirmed, first, count);
  /* Confirmations for a destination nobody named: no RESUME may build on
   * them any more. */
  if (st->tracking_for[0] == '\0')
    snprintf (st->tracking_for, sizeof st->tracking_for, "%s", TRACKING_UNKNOWN);
  reply_printf (reply, true, "OK confirmed=%" PRIu64, req->length);
}

static void
do_resume (struct migration_state *st, const struct control_request *req,
           struct control_reply *reply)
{
  /* A RESUME that names its migration continues it only if the bitmaps
   * still describe that migration's destination: after another
   * migration's RESET and CONFIRMs, blocks it confirmed would count as
   * copied to this one's destination too.  (A RESUME naming nobody is
   * not checked: that is the operator's call; it leaves the tracking
   * unknown.) */
  if (req->migration_id[0] != '\0' && st->tracking_for[0] != '\0' &&
      strcmp (st->tracking_for, req->migration_id) != 0) {
    reply_printf (reply, false,
                  "ERR ESTALE the source's change tracking follows migration "
                  "%s, not %s, since it was last reset: resuming would skip "
                  "blocks confirmed to another destination; RESET instead "
                  "(nothing was changed)",
                  st->tracking_for, req->migration_id);
    return;
  }
  block_bitmap_move_into (&st->dirty, &st->unconfirmed);
  /* A RESUME naming nobody may be followed by CONFIRMs for any
   * destination: no named RESUME may build on them. */
  snprintf (st->tracking_for, sizeof st->tracking_for, "%s",
            req->migration_id[0] != '\0' ? req->migration_id : TRACKING_UNKNOWN);
  reply_printf (reply, true, "OK dirty_blocks=%" PRIu64,
                block_bitmap_count (&st->dirty));
}

static void
do_reset (struct migration_state *st, const struct control_request *req,
          struct control_reply *reply)
{
  /* Set dirty before clearing unconfirmed, so no block is ever in
   * neither. */
  block_bitmap_set_all (&st->dirty);
  block_bitmap_clear_all (&st->unconfirmed);
  /* A new migration may go to another destination. */
  preconnect_drop (&st->preconnect, "RESET");
  snprintf (st->tracking_for, sizeof st->tracking_for, "%s",
            req->migration_id[0] != '\0' ? req->migration_id : TRACKING_UNKNOWN);
  reply_printf (reply, true, "OK dirty_blocks=%" PRIu64,
                block_bitmap_count (&st->dirty));
}

/* A flush of the plugin run on a thread of its own, so that FREEZE can
 * stop waiting for it.  While it runs the gate is closed and the guest's
 * writes wait; the control thread must stay free to give up at
 * migrate-freeze-timeout and reopen the gate, since a plugin stuck in
 * flush would otherwise hold the guest (and block the owner-close thaw)
 * for as long as it liked.  A flush given up on cannot be cancelled, so
 * its thread runs on detached: everything it touches lives in this
 * struct, which the control thread and the flush thread each hold a
 * reference to and the last one to let go frees.  (The plugin context it
 * flushes is the filter's own: cleanup waits for running flushes, and
 * leaves the context open if one never returns.)
 */
struct bounded_flush {
  pthread_mutex_t lock;          /* guards refs, done, result, err */
  pthread_cond_t done_cond;      /* signalled when done becomes true */
  unsigned refs;
  bool done;
  int result;
  int err;
  nbdkit_next *plugin;
  unsigned *running;             /* st->flushes_running, atomic */
};

static void
bounded_flush_unref (struct bounded_flush *f)
{
  bool last;

  pthread_mutex_lock (&f->lock);
  assert (f->refs > 0);
  last = --f->refs == 0;
  pthread_mutex_unlock (&f->lock);
  if (last) {
    pthread_cond_destroy (&f->done_cond);
    pthread_mutex_destroy (&f->lock);
    free (f);
  }
}

static void *
bounded_flush_thread (void *arg)
{
  struct bounded_flush *f = arg;
  int err = 0;
  int r = f->plugin->flush (f->plugin, 0, &err);
  unsigned *running = f->running;

  pthread_mutex_lock (&f->lock);
  f->result = r;
  f->err = err;
  f->done = true;
  pthread_cond_signal (&f->done_cond);
  pthread_mutex_unlock (&f->lock);
  bounded_flush_unref (f);
  /* Last: cleanup waits for this before closing the plugin context. */
  __atomic_fetch_sub (running, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* A flush left running in the background returns into this filter's
 * code, perhaps after nbdkit has finished and unloaded the filter: keep
 * the filter's shared object mapped until the process exits. */
static void
keep_filter_loaded (void)
{
  Dl_info info;

  if (dladdr ((void *) keep_filter_loaded, &info) != 0 && info.dli_fname != NULL)
    (void) dlopen (info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* Flush the plugin, waiting at most timeout_ns.  Returns 0 when the flush
 * succeeded; -1 with *timed_out set when it did not finish in time (it
 * carries on in the background), or with *err set when it failed.  When
 * no thread can be started the flush runs here, unbounded, as it did
 * before: being frozen a little longer beats refusing to freeze. */
static int
flush_plugin_within (struct migration_state *st, uint64_t timeout_ns,
                     bool *timed_out, int *err)
{
  nbdkit_next *plugin = st->plugin;
  struct bounded_flush *f;
  pthread_condattr_t attr;
  pthread_t thread;
  struct timespec until;
  int r = 0;

  *timed_out = false;
  *err = 0;
  f = calloc (1, sizeof *f);
  if (f == NULL)
    return plugin->flush (plugin, 0, err);
  pthread_mutex_init (&f->lock, NULL);
  /* A monotonic clock, so that setting the wall clock moves no deadline. */
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&f->done_cond, &attr);
  pthread_condattr_destroy (&attr);
  f->plugin = plugin;
  f->running = &st->flushes_running;
  f->refs = 2;

  __atomic_fetch_add (&st->flushes_running, 1, __ATOMIC_RELAXED);
  if (pthread_create (&thread, NULL, bounded_flush_thread, f) != 0) {
    __atomic_fetch_sub (&st->flushes_running, 1, __ATOMIC_RELAXED);
    f->refs = 1;
    bounded_flush_unref (f);
    return plugin->flush (plugin, 0, err);
  }
  pthread_detach (thread);

  until = timespec_of_ns (deadline_after_ns (timeout_ns));

  pthread_mutex_lock (&f->lock);
  while (!f->done && r != ETIMEDOUT)
    r = pthread_cond_timedwait (&f->done_cond, &f->lock, &until);
  if (!f->done) {
    *timed_out = true;
    r = -1;
    keep_filter_loaded ();
  }
  else {
    *err = f->err;
    r = f->result;
  }
  pthread_mutex_unlock (&f->lock);
  bounded_flush_unref (f);
  return r == -1 ? -1 : 0;
}

/* The monotonic time at which the current (or last) freeze must end: the
 * flush inside the freeze, FLIP forward's connection and the control
 * thread's timeout all count from the gate closing. */
static uint64_t
freeze_deadline (const struct migration_state *st)
{
  return deadline_at (st->frozen_since_ns, st->freeze_timeout_ns);
}

/* The gate stops holding guest writes now (a thaw or a flip). */
static void
note_unfrozen (struct migration_state *st)
{
  st->frozen_until_ns = time_monotonic_ns ();
  /* Writes may wait for room in a full mirror ring again. */
  control_mirror_freezing (st, false);
}

/* FREEZE's flush before the gate closes (do_freeze).  -1 after replying
 * ERR: writes were never frozen. */
static int
preflush (struct migration_state *st, struct control_reply *reply)
{
  int err;

  if (st->plugin != NULL && st->plugin_can_flush) {
    bool timed_out;

    /* A flush given up on earlier still hangs in the plugin: another
     * would only pile up behind it, and a freeze could not be flushed. */
    if (__atomic_load_n (&st->flushes_running, __ATOMIC_ACQUIRE) > 0) {
      reply_printf (reply, false,
                    "ERR EBUSY a flush of the plugin given up on at an "
                    "earlier FREEZE has still not returned (the source's "
                    "storage may be stuck); writes were never frozen");
      return -1;
    }
    /* Bounded like the flush inside the freeze, so that a stuck plugin
     * cannot take the control socket with it. */
    if (flush_plugin_within (st, st->freeze_timeout_ns, &timed_out, &err) == -1) {
      if (timed_out)
        reply_printf (reply, false,
                      "ERR ETIMEDOUT flushing the plugin before closing the "
                      "gate took longer than migrate-freeze-timeout=%s (it "
                      "goes on in the background); writes were never frozen",
                      st->freeze_timeout_text);
      else
        reply_printf (reply, false,
                      "ERR EIO flushing the plugin before closing the gate "
                      "failed (%s); writes were never frozen", strerror (err));
      return -1;
    }
  }
  return 0;
}

static void
do_freeze (struct migration_state *st, struct control_reply *reply)
{
  uint64_t preflushed, started, drained, flushed;
  int err;

  switch (write_gate_mode (&st->gate)) {
  case WRITE_GATE_FENCED:
  case WRITE_GATE_FORWARDING:
    control_reply_err (reply, "EPERM",
                       "the source has flipped (a flip is final): "
                       "there is nothing left to freeze");
    return;
  case WRITE_GATE_CLOSED: {
    /* Answer the same fields as the FREEZE that closed the gate, so a
     * client parses one reply whichever it gets: drain_ms and drain_us
     * still run from the gate closing to this reply (what the guest has
     * waited so far), and this FREEZE flushed nothing. */
    uint64_t held_ns = time_monotonic_ns () - st->frozen_since_ns;

    reply_printf (reply, true, "OK frozen drain_ms=%" PRIu64
                  " flush_ms=0 preflush_ms=0 drain_us=%" PRIu64,
                  held_ns / NS_PER_MS, held_ns / NS_PER_US);
    return;
  }
  case WRITE_GATE_OPEN:
    break;
  }

  /* Flush the plugin once while writes still flow: the flush inside the
   * freeze below then only has what was written during this one to make
   * durable, so the guest waits for a short flush instead of one that
   * carries everything written since the last. */
  preflushed = time_monotonic_ns ();
  if (preflush (st, reply) == -1)
    return;

  started = time_monotonic_ns ();
  st->frozen_since_ns = started;
  /* A write waiting for room in a full mirror ring would hold the drain
   * for up to its wait: it falls back to its dirty bits instead. */
  control_mirror_freezing (st, true);
  if (write_gate_close_and_drain (&st->gate, st->freeze_timeout_ns) == -1) {
    write_gate_open (&st->gate);
    note_unfrozen (st);
    __atomic_fetch_add (&st->thaws_by_timeout, 1, __ATOMIC_RELAXED);
    nbdkit_debug ("migrate: FREEZE: writes in flight did not complete "
                  "within %s; thawed", st->freeze_timeout_text);
    reply_printf (reply, false,
                  "ERR ETIMEDOUT writes in flight did not complete within "
                  "migrate-freeze-timeout=%s; writes are thawed on the source",
                  st->freeze_timeout_text);
    return;
  }

  /* The drain guarantees every write the plugin acknowledged is visible to
   * readers; the flush also makes it durable on the source, as a flush
   * from any client would. */
  drained = time_monotonic_ns ();
  if (st->plugin != NULL && st->plugin_can_flush) {
    uint64_t left_ns = deadline_left_at (freeze_deadline (st), drained);
    bool timed_out;

    if (flush_plugin_within (st, left_ns, &timed_out, &err) == -1) {
      write_gate_open (&st->gate);
      note_unfrozen (st);
      if (timed_out) {
        __atomic_fetch_add (&st->thaws_by_timeout, 1, __ATOMIC_RELAXED);
        nbdkit_debug ("migrate: FREEZE: flushing the plugin outlasted "
                      "migrate-freeze-timeout=%s; thawed",
                      st->freeze_timeout_text);
        reply_printf (reply, false,
                      "ERR ETIMEDOUT flushing the plugin took longer than "
                      "the %" PRIu64 " ms left of migrate-freeze-timeout=%s; "
                      "the source is thawed",
                      left_ns / NS_PER_MS, st->freeze_timeout_text);
      }
      else
        reply_printf (reply, false,
                      "ERR EIO flushing the plugin failed (%s); "
                      "writes are thawed on the source", strerror (err));
      return;
    }
  }
  flushed = time_monotonic_ns ();

  __atomic_fetch_add (&st->freezes, 1, __ATOMIC_RELAXED);
  nbdkit_debug ("migrate: frozen: drained in %" PRIu64 " ms, flushed in %"
                PRIu64 " ms", (drained - started) / NS_PER_MS,
                (flushed - drained) / NS_PER_MS);
  reply_printf (reply, true, "OK frozen drain_ms=%" PRIu64 " flush_ms=%" PRIu64
                " preflush_ms=%" PRIu64 " drain_us=%" PRIu64,
                (flushed - started) / NS_PER_MS,
                (flushed - drained) / NS_PER_MS,
                (started - preflushed) / NS_PER_MS,
                (flushed - started) / NS_PER_US);
}

/* Microseconds the last freeze held guest writes: from the gate closing
 * until it reopened or flipped (0 if there was no freeze). */
static uint64_t
frozen_us (const struct migration_state *st)
{
  if (st->frozen_until_ns < st->frozen_since_ns)
    return 0;
  return (st->frozen_until_ns - st->frozen_since_ns) / NS_PER_US;
}

static void
do_thaw (struct migration_state *st, struct control_reply *reply)
{
  switch (write_gate_mode (&st->gate)) {
  case WRITE_GATE_FENCED:
    /* Requests held at the gate were already failed by the fence. */
    reply_printf (reply, true, "OK fenced frozen_us=%" PRIu64, frozen_us (st));
    return;
  case WRITE_GATE_FORWARDING:
    /* Held requests went to the destination at the flip. */
    reply_printf (reply, true, "OK forwarding frozen_us=%" PRIu64,
                  frozen_us (st));
    return;
  case WRITE_GATE_CLOSED:
    write_gate_open (&st->gate);
    note_unfrozen (st);
    nbdkit_debug ("migrate: thawed after %" PRIu64 " us", frozen_us (st));
    reply_printf (reply, true, "OK thawed frozen_us=%" PRIu64, frozen_us (st));
    return;
  case WRITE_GATE_OPEN:
    /* Nothing was held: never frozen, or the freeze already ended (by
     * migrate-freeze-timeout, say).  A sender must be able to tell this
     * from a thaw it caused, so the answer says so; frozen_us is the
     * last freeze's, 0 if there was none. */
    reply_printf (reply, true, "OK not-frozen frozen_us=%" PRIu64,
                  frozen_us (st));
    return;
  }
}

/* Both kinds of FLIP hand the guest over for good, so both demand the same
 * thing: the source frozen, and by the connection that asks.  One check
 * keeps that rule, and its refusal, the same for both.  Returns false after
 * replying EPERM when the precondition does not hold.
 */
static bool
flip_precondition_met (struct migration_state *st, enum write_gate_mode mode,
                       enum control_role role, struct control_reply *reply)
{
  uint64_t dirty, unconfirmed;
  char why[256];

  if (mode != WRITE_GATE_CLOSED || role != CONTROL_ROLE_OWNER) {
    control_reply_err (reply, "EPERM",
                       "FLIP needs the source frozen by this connection: "
                       "send FREEZE first");
    return false;
  }
  /* The flip is the one step that cannot be undone, so the filter checks
   * for itself that nothing would be left behind: every block handed out
   * and confirmed durable on the destination, and none written since.
   * With the gate closed and drained no worker sets bits meanwhile. */
  if (!control_mirror_flushed (st, why, sizeof why)) {
    reply_printf (reply, false, "ERR EBUSY FLIP refused: %s; the source "
                  "stays frozen and authoritative", why);
    return false;
  }
  dirty = block_bitmap_count (&st->dirty);
  unconfirmed = block_bitmap_count (&st->unconfirmed);
  if (dirty > 0 || unconfirmed > 0) {
    reply_printf (reply, false,
                  "ERR EBUSY FLIP refused: %" PRIu64 " blocks (%" PRIu64
                  " bytes) are dirty and %" PRIu64 " blocks (%" PRIu64
                  " bytes) are not confirmed durable on the destination; "
                  "the source stays frozen and authoritative",
                  dirty, migration_bitmap_bytes (st, &st->dirty),
                  unconfirmed, migration_bitmap_bytes (st, &st->unconfirmed));
    return false;
  }
  return true;
}

static void
do_flip_fence (struct migration_state *st, enum control_role role,
               struct control_reply *reply)
{
  enum write_gate_mode mode = write_gate_mode (&st->gate);

  if (mode == WRITE_GATE_FENCED) {
    reply_printf (reply, true, "OK fenced");
    return;
  }
  if (mode == WRITE_GATE_FORWARDING) {
    control_reply_err (reply, "EPERM",
                       "the source already forwards to the destination "
                       "(a flip is final)");
    return;
  }
  if (!flip_precondition_met (st, mode, role, reply))
    return;

  /* The guest moves to the destination: its writes must no longer be
   * slowed down for a migration that is over. */
  throttle_set_rate (&st->throttle, 0);
  /* Every record is durable (checked above): nothing is requeued. */
  control_mirror_end (st, "the source is fenced");
  write_gate_fence (&st->gate);
  note_unfrozen (st);
  preconnect_drop (&st->preconnect,
                   "the source is fenced, and a flip is final");
  nbdkit_debug ("migrate: fenced: every request now fails with EIO");
  reply_printf (reply, true, "OK fenced");
}

/* How long FLIP forward may spend connecting: the guest is frozen
 * meanwhile, and the freeze timeout cannot fire while the control thread
 * is busy here, so the connection gets what is left of it. */
static uint64_t
forward_connect_budget (const struct migration_state *st)
{
  return deadline_left_ns (freeze_deadline (st));
}

static void
do_flip_forward (struct migration_state *st, const struct control_request *req,
                 enum control_role role, struct control_reply *reply)
{
  enum write_gate_mode mode = write_gate_mode (&st->gate);
  char why[512];
  struct forward *f;
  bool preconnected;

  if (mode == WRITE_GATE_FORWARDING) {
    reply_printf (reply, true, "OK forwarding");
    return;
  }
  if (mode == WRITE_GATE_FENCED) {
    control_reply_err (reply, "EPERM",
                       "the source is fenced (a flip is final)");
    return;
  }
  if (!flip_precondition_met (st, mode, role, reply))
    return;

  /* The connection PRECONNECT made is already checked and complete:
   * taking it over costs nothing while the guest is frozen.  Without one
   * (or with one to another URI, or that the destination has closed
   * since), connect now, as if there had been no PRECONNECT. */
  f = preconnect_take (&st->preconnect, req->uri);
  preconnected = f != NULL;
  if (f == NULL)
    f = forward_connect (req->uri, st->size, forward_connect_budget (st),
                         "that remained of migrate-freeze-timeout", -1,
                         why, sizeof why);
  if (f == NULL) {
    /* Still frozen and still authoritative: the sender thaws. */
    nbdkit_error ("migrate: FLIP forward: cannot use the destination %s: %s; "
                  "the source stays frozen and authoritative",
                  req->uri, why);
    reply_printf (reply, false,
                  "ERR EHOSTUNREACH cannot use the destination %s: %s",
                  req->uri, why);
    return;
  }

  /* Publish the destination, then the mode: a worker that sees
   * WRITE_GATE_FORWARDING sees st->forward too. */
  st->forward = f;
  throttle_set_rate (&st->throttle, 0);
  control_mirror_end (st, "the source forwards to the destination");
  write_gate_forward (&st->gate);
  note_unfrozen (st);
  /* The guest runs again.  What else is prepared (to another URI, or no
   * longer usable) will never be used now; a pool connected just now is
   * widened, for speed only (a prepared one already was). */
  preconnect_drop (&st->preconnect,
                   "the source forwards to another connection");
  if (!preconnected)
    forward_add_handles (f, req->uri, FORWARD_EXTRA_TIMEOUT_NS, -1);
  nbdkit_debug ("migrate: forwarding every request to %s over %u "
                "connections (%s)", req->uri, forward_handles (f),
                preconnected ? "prepared by PRECONNECT" : "opened by the flip");
  reply_printf (reply, true, "OK forwarding handles=%u preconnected=%d",
                forward_handles (f), preconnected ? 1 : 0);
}

/* Reply to a PRECONNECT whose connection is READY. */
static void
reply_preconnected (struct migration_state *st, struct control_reply *reply)
{
  reply_printf (reply, true, "OK preconnected connect_us=%" PRIu64
                " handles=%u", st->preconnect.connect_ns / NS_PER_US,
                forward_handles (st->preconnect.forward));
}

static void
do_preconnect (struct migration_state *st, const struct control_request *req,
               enum control_role role, struct control_reply *reply)
{
  struct preconnect *pc = &st->preconnect;
  bool same = preconnect_same_uri (pc, req->uri);
  char why[512];

  /* Like the FLIPs it prepares for: only for the connection that runs
   * the migration, so that nobody else can choose where it connects. */
  if (role != CONTROL_ROLE_OWNER) {
    control_reply_err (reply, "EPERM",
                       "PRECONNECT belongs to the connection that owns the "
                       "migration: send RESET or RESUME first; nothing was "
                       "prepared");
    return;
  }
  switch (preconnect_on_request (pc->state, same,
                                 same && preconnect_usable (pc))) {
  case PRECONNECT_ANSWER_READY:
    reply_preconnected (st, reply);
    return;
  case PRECONNECT_REFUSE_BUSY:
    reply_printf (reply, false, "ERR EALREADY a PRECONNECT to %s is still "
                  "connecting; nothing was changed", pc->uri);
    return;
  case PRECONNECT_REPLACE:
    preconnect_drop (pc, same ? "the destination closed it"
                     : "PRECONNECT to another URI");
    break;
  case PRECONNECT_START:
    break;
  }
  if (preconnect_start (pc, req->uri, st->size, st->freeze_timeout_ns,
                        why, sizeof why) == -1) {
    reply_printf (reply, false, "ERR EAGAIN PRECONNECT to %s: %s; nothing "
                  "is prepared, the source keeps tracking", req->uri, why);
    return;
  }
  /* The answer waits for the connecting thread. */
  reply->line[0] = '\0';
  reply->len = 0;
  reply->ok = true;
  reply->snapshot_follows = false;
  reply->deferred = true;
}

void
control_preconnect_done (struct migration_state *st,
                         struct control_reply *reply)
{
  char uri[CONTROL_MAX_URI];
  char why[512];

  snprintf (uri, sizeof uri, "%s", st->preconnect.uri);
  if (preconnect_finish (&st->preconnect, why, sizeof why) == -1) {
    nbdkit_debug ("migrate: PRECONNECT to %s failed: %s", uri, why);
    reply_printf (reply, false, "ERR EHOSTUNREACH cannot prepare a "
                  "connection to the destination %s: %s; nothing is "
                  "prepared, the source keeps tracking", uri, why);
    return;
  }
  nbdkit_debug ("migrate: PRECONNECT: %u connections to %s ready in %"
                PRIu64 " us", forward_handles (st->preconnect.forward), uri,
                st->preconnect.connect_ns / NS_PER_US);
  reply_preconnected (st, reply);
}

/* A flip is final.  Commands that change the bitmaps, the migration the
 * tracking follows or the throttle, or prepare a connection for a flip,
 * mean nothing afterwards, and accepting
 * them would make STATUS say things that are no longer true (another
 * migration= than the one the source flipped for, a throttle that slows
 * nothing).  STATUS, THAW, FREEZE and the FLIPs answer for themselves.
 * Returns true after replying EPERM. */
static bool
refused_after_flip (struct migration_state *st, enum control_command command,
                    struct control_reply *reply)
{
  enum write_gate_mode mode = write_gate_mode (&st->gate);

  if (mode != WRITE_GATE_FENCED && mode != WRITE_GATE_FORWARDING)
    return false;
  switch (command) {
  case CONTROL_SNAPSHOT:
  case CONTROL_CONFIRM:
  case CONTROL_RESUME:
  case CONTROL_RESET:
  case CONTROL_THROTTLE:
  case CONTROL_PRECONNECT:
  case CONTROL_MIRROR_START:
    reply_printf (reply, false,
                  "ERR EPERM the source has flipped (state %s, for migration "
                  "%s) and a flip is final: nothing is tracked, throttled or "
                  "prepared any more; nothing was changed",
                  migration_state_name (st),
                  st->tracking_for[0] != '\0' ? st->tracking_for : "none");
    return true;
  default:
    return false;
  }
}

void
control_execute (struct migration_state *st,
                 const struct control_request *req,
                 enum control_role role, struct control_reply *reply)
{
  if (!migration_geometry_known (st)) {
    control_reply_err (reply, "EAGAIN",
                       "no NBD client has connected yet, "
                       "so the image size is not known");
    return;
  }
  if (req->command != CONTROL_STATUS && role == CONTROL_ROLE_OTHER) {
    control_reply_err (reply, "EBUSY",
                       "another control connection owns this migration; "
                       "only STATUS is open to others");
    return;
  }

  if (refused_after_flip (st, req->command, reply))
    return;

  switch (req->command) {
  case CONTROL_STATUS:
    do_status (st, role, reply);
    return;
  case CONTROL_SNAPSHOT:
    do_snapshot (st, reply);
    return;
  case CONTROL_CONFIRM:
    do_confirm (st, req, reply);
    return;
  case CONTROL_RESUME:
    do_resume (st, req, reply);
    return;
  case CONTROL_RESET:
    do_reset (st, req, reply);
    return;
  case CONTROL_FREEZE:
    do_freeze (st, reply);
    return;
  case CONTROL_THAW:
    do_thaw (st, reply);
    return;
  case CONTROL_FLIP_FENCE:
    do_flip_fence (st, role, reply);
    return;
  case CONTROL_FLIP_FORWARD:
    do_flip_forward (st, req, role, reply);
    return;
  case CONTROL_PRECONNECT:
    do_preconnect (st, req, role, reply);
    return;
  case CONTROL_MIRROR_START: {
    char line[CONTROL_REPLY_MAX - 2];
    bool ok = control_mirror_start (st, req, reply->fds, line, sizeof line);

    reply_printf (reply, ok, "%s", line);
    reply->nfds = ok ? 3 : 0;
    return;
  }
  case CONTROL_MIRROR_STOP: {
    char line[CONTROL_REPLY_MAX - 2];

    control_mirror_stop (st, line, sizeof line);
    reply_printf (reply, true, "%s", line);
    return;
  }
  case CONTROL_THROTTLE:
    throttle_set_rate (&st->throttle, req->bytes_per_second);
    nbdkit_debug ("migrate: throttle set to %" PRIu64 " bytes/s",
                  req->bytes_per_second);
    reply_printf (reply, true, "OK throttle=%" PRIu64, req->bytes_per_second);
    return;
  }
  control_reply_err (reply, "EINVAL", "unknown command");
}

void
snapshot_stream_begin (struct snapshot_stream *s)
{
  s->active = true;
  s->next_block = 0;
}

size_t
snapshot_stream_fill (const struct migration_state *st,
                      struct snapshot_stream *s, char *buf, size_t room)
{
  size_t used = 0;

  while (s->active && room - used >= SNAPSHOT_LINE_MAX) {
    uint64_t start, count, offset, length;
    int n;

    if (!block_bitmap_next_run (&st->handed_out, s->next_block,
                                &start, &count)) {
      memcpy (buf + used, ".\n", 2);
      used += 2;
      s->active = false;
      break;
    }
    run_to_extent (st, start, count, &offset, &length);
    n = snprintf (buf + used, room - used, "%" PRIu64 " %" PRIu64 "\n",
                  offset, length);
    assert (n > 0 && (size_t) n < room - used);
    used += (size_t) n;
    s->next_block = start + count;
  }
  return used;
}

bool
control_freeze_deadline (struct migration_state *st, uint64_t *deadline_ns)
{
  if (write_gate_mode (&st->gate) != WRITE_GATE_CLOSED)
    return false;
  *deadline_ns = freeze_deadline (st);
  return true;
}

void
control_thaw_on_timeout (struct migration_state *st)
{
  if (write_gate_mode (&st->gate) != WRITE_GATE_CLOSED)
    return;
  write_gate_open (&st->gate);
  note_unfrozen (st);
  __atomic_fetch_add (&st->thaws_by_timeout, 1, __ATOMIC_RELAXED);
  nbdkit_error ("migrate: writes stayed frozen longer than "
                "migrate-freeze-timeout=%s without a THAW or FLIP from the "
                "control connection on %s; thawed: guest writes continue "
                "on the source, which stays authoritative",
                st->freeze_timeout_text, st->control_path);
}

void
control_thaw_on_owner_close (struct migration_state *st)
{
  /* A sender that dies must not leave the guest throttled either. */
  if (throttle_rate (&st->throttle) != 0) {
    throttle_set_rate (&st->throttle, 0);
    nbdkit_debug ("migrate: the owning control connection closed: "
                  "throttle released");
  }
  /* Nobody is left to flip onto it. */
  preconnect_drop (&st->preconnect, "the owning control connection closed");
  /* Nobody is left to take the ring's records: they become dirty. */
  control_mirror_end (st, "the owning control connection closed");
  if (write_gate_mode (&st->gate) != WRITE_GATE_CLOSED)
    return;
  write_gate_open (&st->gate);
  note_unfrozen (st);
  nbdkit_error ("migrate: the control connection on %s that froze writes "
                "closed without a THAW or FLIP; thawed: guest writes "
                "continue on the source, which stays authoritative",
                st->control_path);
}
