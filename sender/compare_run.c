/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: one comparison, from connecting to the
 * summary (see compare_run.h).
 *
 * Everything runs on one libev loop, as a migration does (run.c), but
 * nothing of a migration is involved: no pass, no SYNC, no freeze or
 * flip, and the receiver is told (WIRE_FEATURE_COMPARE_ONLY) to record
 * and change nothing.  The HELLO carries a random migration id, so it can
 * never be taken for a migration the receiver holds.  Then, disk after
 * disk, the whole disk is read (zero ranges too: a hole of the source must
 * be compared against the destination like any other range) with every
 * read slot in flight; each read is followed by a HASH_REQ for the same
 * range, held back until its HASHES are in (hash_window.h and the
 * reader's can_deliver, as a comparing pass does: compare_pass.h), and
 * compared unit by unit against the source's own hashes of the data.  The
 * differing units go into the disk's difference map (compare_diff.h).
 *
 * A source behind the migrate filter (--control) may be live: a SNAPSHOT
 * before the first read sets aside what was dirty before; SNAPSHOTs
 * every second and one after the last read collect what the guest wrote
 * meanwhile, and differences there are counted apart, as changed during
 * the comparison.  Several looks rather than one at the end keep each
 * extent list short: a list too long to keep whole has gaps bridged
 * (control_client.h), and a comparison that depended on a bridged gap
 * says it is undecided rather than call the pair identical.
 *
 * The decisions are pure functions in compare_only_policy.c; the output
 * is compare_report.c's.  This file calls them and compare_source.c, and
 * none of them calls it.
 */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "block_hash.h"
#include "compare_diff.h"
#include "compare_only_policy.h"
#include "compare_policy.h"
#include "compare_report.h"
#include "compare_run.h"
#include "compare_source.h"
#include "control_proto.h"
#include "hash_window.h"
#include "log.h"
#include "rate_limit.h"
#include "stm_conn.h"
#include "tcp.h"
#include "time_units.h"

#define COMPARE_CONNECT_TIMEOUT_MS 10000
/* A receiver that answers nothing for this long is given up. */
#define COMPARE_STALL_TIMEOUT_S 120

/* What a SNAPSHOT is for (its tag). */
enum snapshot_kind {
  SNAPSHOT_FIRST,                /* sets aside what was dirty before */
  SNAPSHOT_DURING,               /* what the guest wrote so far */
  SNAPSHOT_LAST,                 /* what it wrote up to the end */
};

struct compare_run;

struct compare_disk {
  struct compare_run *run;
  uint32_t index;
  struct compare_source src;
  uint32_t unit;                 /* the hash unit */
  uint64_t next;                 /* where the next read starts */
  uint64_t done;                 /* compared up to here, in order */
  unsigned snapshots;            /* SNAPSHOTs on their way */
  struct hash_window win;
  uint8_t src_hashes[HASH_WINDOW_MAX_HASHES * WIRE_HASH_LEN];
  struct compare_diff diff;
};

struct compare_run {
  const struct sender_options *opts;
  struct ev_loop *loop;
  struct tls_creds *creds;
  struct stm_conn *conn;
  enum compare_phase phase;      /* changed by set_phase only */
  uint32_t ndisks;
  uint32_t cur;                  /* the disk being read */
  struct compare_disk disks[WIRE_MAX_DISKS];
  uint8_t migration_id[WIRE_MIGRATION_ID_LEN];
  uint8_t key[WIRE_HASH_KEY_LEN];
  bool hello_answered;
  unsigned first_snapshots;      /* not answered yet */
  unsigned last_snapshots;       /* not answered yet */
  bool live;                     /* the disks have filters: writes tracked */
  bool written_inexact;          /* a SNAPSHOT's list had gaps bridged */
  struct compare_report report;
  struct rate_limit rate;
  bool rate_blocked;
  ev_timer rate_timer, tick;
  ev_signal sigint, sigterm;
  uint64_t start_ns, last_activity_ns;
  uint64_t size, compared;       /* bytes of every disk, bytes compared */
  int exit_code;
};

static bool
ended (const struct compare_run *r)
{
  return r->phase == COMPARE_DONE || r->phase == COMPARE_FAILED;
}

static void
set_phase (struct compare_run *r, enum compare_phase to)
{
  assert (compare_phase_allowed (r->phase, to));
  r->phase = to;
}

/* Stop everything; the loop ends, and compare_run frees. */
static void
finish (struct compare_run *r)
{
  ev_timer_stop (r->loop, &r->tick);
  ev_timer_stop (r->loop, &r->rate_timer);
  ev_signal_stop (r->loop, &r->sigint);
  ev_signal_stop (r->loop, &r->sigterm);
  for (uint32_t i = 0; i < r->ndisks; i++)
    if (r->disks[i].src.reader != NULL)
      source_reader_stop (r->disks[i].src.reader);
  if (r->conn != NULL) {
    stm_conn_close (r->conn);
    r->conn = NULL;
  }
  ev_break (r->loop, EVBREAK_ALL);
}

static void fail (struct compare_run *r, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

/* The comparison cannot be made: say why, once, and end with status 1. */
static void
fail (struct compare_run *r, const char *fmt, ...)
{
  char msg[1024], full[1200];
  va_list ap;

  if (ended (r))
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  snprintf (full, sizeof full, "%s; the comparison was not made, and nothing was "
            "written to the source or the destination", msg);
  compare_report_error (&r->report, full);
  set_phase (r, COMPARE_FAILED);
  r->exit_code = 1;
  finish (r);
}

/* ---- the result ---------------------------------------------------- */

static void
conclude (struct compare_run *r)
{
  struct compare_summary s = {
    .bytes_compared = r->compared, .writes_tracked = r->live,
    .seconds = (double) (time_monotonic_ns () - r->start_ns) / (double) NS_PER_S,
  };

  /* Reading or taking the last SNAPSHOTs: the connection is still up. */
  if (r->conn != NULL) {
    s.wire_bytes = stm_conn_wire_bytes (r->conn);
    s.wire_bytes_received = stm_conn_wire_bytes_received (r->conn);
  }

  for (uint32_t i = 0; i < r->ndisks; i++) {
    struct compare_disk *d = &r->disks[i];
    struct compare_diff_totals t;
    uint64_t cursor = 0, offset, length;

    compare_diff_totals (&d->diff, &t);
    s.bytes_differing += t.bytes_differing;
    s.ranges += t.ranges;
    s.bytes_changed_during += t.bytes_changed_during;
    while (compare_diff_next (&d->diff, &cursor, &offset, &length))
      compare_report_difference (&r->report, d->src.name, offset, length);
  }
  compare_report_differences_end (&r->report);
  s.result = compare_result_of (s.bytes_differing, s.bytes_changed_during,
                                r->written_inexact);
  set_phase (r, COMPARE_DONE);
  r->exit_code = compare_result_exit_code (s.result);
  compare_report_done (&r->report, &s);
  finish (r);
}

/* ---- the filters' SNAPSHOTs ---------------------------------------- */

static void maybe_start (struct compare_run *r);

/* The blocks a SNAPSHOT lists were written during the comparison. */
static void
note_written (struct compare_disk *d, const struct control_reply *reply)
{
  uint64_t announced = 0;

  for (size_t i = 0; i < reply->extents->len; i++)
    compare_diff_written (&d->diff, reply->extents->items[i].offset,
                          reply->extents->items[i].length);
  /* The list covers more than the filter announced: gaps were bridged. */
  if (control_reply_get_u64 (reply->line, "bytes", &announced) == -1 ||
      extent_list_total_bytes (reply->extents) > announced)
    d->run->written_inexact = true;
}

static void
snapshot_replied (void *opaque, uint64_t tag, const struct control_reply *reply)
{
  struct compare_disk *d = opaque;
  struct compare_run *r = d->run;

  d->snapshots--;
  if (ended (r))
    return;
  if (!reply->ok) {
    fail (r, "SNAPSHOT of the filter at %s failed: %s", d->src.control_path,
          reply->error);
    return;
  }
  if (tag == SNAPSHOT_FIRST) {
    /* What was dirty before the comparison is not looked at: its blocks
     * are now unconfirmed, which a migration's RESET or RESUME turns back
     * into dirty ones. */
    r->first_snapshots--;
    maybe_start (r);
    return;
  }
  note_written (d, reply);
  if (tag == SNAPSHOT_LAST && --r->last_snapshots == 0)
    conclude (r);
}

static void
snapshot (struct compare_disk *d, enum snapshot_kind kind)
{
  d->snapshots++;
  control_channel_snapshot (d->src.ctl, snapshot_replied, d, kind);
}

/* Every disk is read: the last look at the guest's writes, or the end. */
static void
all_read (struct compare_run *r)
{
  if (!r->live) {
    conclude (r);
    return;
  }
  set_phase (r, COMPARE_FINAL_SNAPSHOT);
  for (uint32_t i = 0; i < r->ndisks; i++) {
    r->last_snapshots++;
    snapshot (&r->disks[i], SNAPSHOT_LAST);
  }
}

/* ---- reading and comparing ----------------------------------------- */

/* May a read of len bytes go now under --rate?  If not, the rate timer
 * calls pump again when it may. */
static bool
rate_allows (struct compare_run *r, uint32_t len)
{
  if (r->opts->rate == 0)
    return true;
  if (r->rate_blocked)
    return false;
  uint64_t wait = rate_limit_wait_for_ns (&r->rate, len, time_monotonic_ns ());
  if (wait == 0)
    return true;
  r->rate_blocked = true;
  ev_timer_set (&r->rate_timer, (double) wait / (double) NS_PER_S, 0.);
  ev_timer_start (r->loop, &r->rate_timer);
  return false;
}

/* Read the next chunk of d and ask for its hashes.  -1 after failing. */
static int
issue (struct compare_disk *d, uint32_t len)
{
  struct compare_run *r = d->run;
  uint8_t frame[WIRE_ENCODE_MAX];
  char err[256];

  if (source_reader_issue (d->src.reader, d->next, len, err, sizeof err) == -1) {
    fail (r, "cannot read the source %s at offset %" PRIu64 ": %s", d->src.uri,
          d->next, err);
    return -1;
  }
  /* A connection that is failing says so through on_close. */
  if (stm_conn_send (r->conn, frame, wire_encode_hash_req (frame, d->index, d->next,
                                                           len, d->unit),
                     NULL, 0) == -1)
    return -1;
  hash_window_push (&d->win, d->next, len, d->unit);
  if (r->opts->rate != 0)
    rate_limit_take (&r->rate, len, time_monotonic_ns ());
  d->next += len;
  return 0;
}

/* Keep every read slot of the disk being read busy. */
static void
pump (struct compare_run *r)
{
  if (r->phase != COMPARE_READING || r->cur >= r->ndisks)
    return;
  struct compare_disk *d = &r->disks[r->cur];
  while (d->next < d->src.size && source_reader_can_issue (d->src.reader) &&
         hash_window_can_push (&d->win) && !stm_conn_output_full (r->conn)) {
    uint32_t len = compare_read_length (d->next, d->src.size);
    if (!rate_allows (r, len) || issue (d, len) == -1)
      return;
  }
}

/* The read [offset, offset+length) of d is in (buf), and so are the
 * receiver's hashes of it: compare them unit by unit. */
static void
compare_read (struct compare_disk *d, uint64_t offset, uint32_t length,
              const uint8_t *buf)
{
  struct compare_run *r = d->run;
  char err[256];

  assert (offset == d->done);
  const struct hash_request *req = hash_window_take (&d->win, offset, length);
  if (req == NULL) {
    fail (r, "internal error: the read of %s at offset %" PRIu64 " has no hash "
          "request", d->src.uri, offset);
    return;
  }
  if (block_hash_units (r->key, offset, buf, length, req->unit, d->src_hashes,
                        err, sizeof err) == -1) {
    fail (r, "%s of the source %s at offset %" PRIu64, err, d->src.uri, offset);
    return;
  }
  for (uint64_t from = offset, end; from < offset + length; from = end) {
    bool differs;
    end = compare_run_end (req, d->src_hashes, from, offset + length, &differs);
    if (differs)
      compare_diff_mark (&d->diff, from, end - from);
  }
  d->done += length;
  r->compared += length;
  r->last_activity_ns = time_monotonic_ns ();
  if (d->done < d->src.size)
    return;
  if (++r->cur < r->ndisks)
    pump (r);
  else
    all_read (r);
}

static void
on_read (void *opaque, uint64_t offset, uint32_t length, const void *buf, int err,
         uint64_t clock)
{
  struct compare_disk *d = opaque;

  if (ended (d->run))
    return;
  if (err) {
    fail (d->run, "cannot read the source %s at offset %" PRIu64 " (%" PRIu32
          " bytes): %s", d->src.uri, offset, length, strerror (err));
    return;
  }
  compare_read (d, offset, length, buf);
}

static void
on_slots_free (void *opaque)
{
  struct compare_disk *d = opaque;

  if (!ended (d->run))
    pump (d->run);
}

static void
on_source_failure (void *opaque, const char *reason)
{
  struct compare_disk *d = opaque;

  fail (d->run, "the connection to the source %s failed: %s", d->src.uri, reason);
}

/* A read waits for the receiver's hashes of its range. */
static bool
can_deliver (void *opaque, uint64_t offset, uint32_t length)
{
  struct compare_disk *d = opaque;

  return !hash_window_waiting (&d->win, offset, length);
}

static const struct source_reader_callbacks reader_callbacks = {
  .on_read = on_read,
  .on_slots_free = on_slots_free,
  .on_failure = on_source_failure,
  .can_deliver = can_deliver,
};

/* ---- the receiver -------------------------------------------------- */

/* The HELLO is answered and the filters' first SNAPSHOTs are: read. */
static void
maybe_start (struct compare_run *r)
{
  if (r->phase != COMPARE_HELLO || !r->hello_answered || r->first_snapshots > 0)
    return;
  struct compare_report_disk disks[WIRE_MAX_DISKS];
  for (uint32_t i = 0; i < r->ndisks; i++)
    disks[i] = (struct compare_report_disk) {
      .name = r->disks[i].src.name, .source = r->disks[i].src.uri,
      .size = r->disks[i].src.size, .unit = r->disks[i].unit,
    };
  compare_report_start (&r->report, r->opts->dest, disks, r->ndisks, r->opts->named,
                        r->live);
  set_phase (r, COMPARE_READING);
  r->last_activity_ns = time_monotonic_ns ();
  pump (r);
}

static void
on_ready (struct stm_conn *conn, void *opaque)
{
  struct compare_run *r = opaque;
  const struct compare_source *s0 = &r->disks[0].src;
  struct wire_hello h = { .image_size = s0->size, .block_size = s0->block,
                          .features = WIRE_FEATURE_HASH | WIRE_FEATURE_COMPARE_ONLY };
  uint8_t frame[WIRE_ENCODE_HELLO_MAX];

  memcpy (h.migration_id, r->migration_id, sizeof h.migration_id);
  if (r->opts->named) {
    h.features |= WIRE_FEATURE_DISKS;
    h.ndisks = r->ndisks;
    for (uint32_t i = 0; i < r->ndisks; i++) {
      const struct compare_source *s = &r->disks[i].src;
      h.disks[i] = (struct wire_hello_disk) {
        .size = s->size, .block_size = s->block,
        .name_len = strlen (s->name), .name = s->name,
      };
    }
  }
  set_phase (r, COMPARE_HELLO);
  (void) stm_conn_send (conn, frame, wire_encode_hello (frame, &h), NULL, 0);
}

static void
on_hello_reply (struct compare_run *r, const struct wire_hello_reply *reply)
{
  uint8_t frame[WIRE_ENCODE_MAX];
  char err[256];

  if (!compare_reply_agrees (reply->features)) {
    fail (r, "the receiver at %s cannot compare (an older stm-recv?): its answer "
          "to HELLO does not take up comparing only (features 0x%" PRIx32 ")",
          r->opts->dest, reply->features);
    return;
  }
  if (block_hash_new_key (r->key, err, sizeof err) == -1) {
    fail (r, "%s for the comparison with %s", err, r->opts->dest);
    return;
  }
  if (stm_conn_send (r->conn, frame, wire_encode_hash_key (frame, r->key), NULL, 0) == -1)
    return;
  r->hello_answered = true;
  maybe_start (r);
}

static void
on_hashes (struct compare_run *r, const struct wire_msg *msg)
{
  const char *why = "HASHES for a disk that is not being read";

  if (msg->disk != r->cur || r->cur >= r->ndisks ||
      hash_window_answer (&r->disks[r->cur].win, msg->u.hash.offset,
                          msg->u.hash.length, msg->u.hash.unit,
                          msg->u.hash.hashes, &why) == -1) {
    fail (r, "the receiver at %s broke the protocol: %s (disk %" PRIu32 ", offset %"
          PRIu64 ", %" PRIu32 " bytes)", r->opts->dest, why, msg->disk,
          msg->u.hash.offset, msg->u.hash.length);
    return;
  }
  source_reader_deliver (r->disks[r->cur].src.reader);
}

static void
on_message (struct stm_conn *conn, const struct wire_msg *msg, void *opaque)
{
  struct compare_run *r = opaque;

  if (ended (r))
    return;
  r->last_activity_ns = time_monotonic_ns ();
  switch (msg->type) {
  case WIRE_HELLO_REPLY:
    if (r->phase != COMPARE_HELLO || r->hello_answered)
      break;
    on_hello_reply (r, &msg->u.hello_reply);
    return;
  case WIRE_HASHES:
    if (r->phase != COMPARE_READING)
      break;
    on_hashes (r, msg);
    return;
  case WIRE_ERROR:
  case WIRE_ABORT:
    fail (r, "the receiver at %s %s: %.*s (%s)", r->opts->dest,
          msg->type == WIRE_ERROR ? "refused the comparison" : "aborted the comparison",
          (int) msg->u.error.text_len, msg->u.error.text,
          wire_error_code_name (msg->u.error.code));
    return;
  case WIRE_KEEPALIVE:
  case WIRE_EXPORT:              /* nothing is served for a comparison */
    return;
  default:
    break;
  }
  fail (r, "the receiver at %s sent an unexpected %s message (while %s)",
        r->opts->dest, wire_type_name (msg->type), compare_phase_name (r->phase));
}

static void
on_drain (struct stm_conn *conn, void *opaque)
{
  struct compare_run *r = opaque;

  if (!ended (r))
    pump (r);
}

static void
on_close (struct stm_conn *conn, const char *reason, void *opaque)
{
  struct compare_run *r = opaque;

  r->conn = NULL;       /* freed by the transport after this returns */
  fail (r, "the receiver at %s closed the connection (while %s): %s", r->opts->dest,
        compare_phase_name (r->phase), reason);
}

static const struct stm_conn_callbacks conn_callbacks = {
  .on_ready = on_ready,
  .on_message = on_message,
  .on_drain = on_drain,
  .on_close = on_close,
};

/* ---- timers and signals -------------------------------------------- */

static void
rate_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct compare_run *r = w->data;

  r->rate_blocked = false;
  r->last_activity_ns = time_monotonic_ns ();
  pump (r);
}

/* Every second: the stall check, a keepalive when nothing else goes,
 * progress, and a look at what the guest wrote. */
static void
tick_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct compare_run *r = w->data;
  uint64_t now = time_monotonic_ns ();

  if (ended (r))
    return;
  if (!r->rate_blocked &&
      now - r->last_activity_ns > COMPARE_STALL_TIMEOUT_S * NS_PER_S) {
    fail (r, "the receiver at %s made no progress for %d seconds (while %s)",
          r->opts->dest, COMPARE_STALL_TIMEOUT_S, compare_phase_name (r->phase));
    return;
  }
  if (r->conn != NULL && r->phase != COMPARE_CONNECTING &&
      stm_conn_output_pending (r->conn) == 0) {
    uint8_t frame[WIRE_ENCODE_MAX];
    (void) stm_conn_send (r->conn, frame, wire_encode_keepalive (frame), NULL, 0);
  }
  if (r->phase != COMPARE_READING)
    return;
  double secs = (double) (now - r->start_ns) / (double) NS_PER_S;
  struct compare_report_progress p = {
    .disk = r->cur < r->ndisks ? r->disks[r->cur].src.name : NULL,
    .bytes_compared = r->compared, .size = r->size,
    .rate = secs > 0 ? (double) r->compared / secs : 0.,
  };
  compare_report_progress (&r->report, &p);
  if (r->live)
    for (uint32_t i = 0; i < r->ndisks; i++)
      if (r->disks[i].snapshots == 0)
        snapshot (&r->disks[i], SNAPSHOT_DURING);
}

static void
signal_cb (struct ev_loop *loop, ev_signal *w, int revents)
{
  fail (w->data, "interrupted by %s", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- set-up -------------------------------------------------------- */

/* Open every disk's source (and filter).  -1 after failing. */
static int
open_disks (struct compare_run *r)
{
  char err[1024];
  uint32_t watched = 0;

  for (uint32_t i = 0; i < r->ndisks; i++) {
    struct compare_disk *d = &r->disks[i];
    if (compare_source_open (&d->src, r->loop, err, sizeof err) == -1) {
      fail (r, "%s", err);
      return -1;
    }
    d->unit = compare_pass_unit (d->src.block);
    hash_window_reset (&d->win);
    if (compare_diff_init (&d->diff, d->src.size, d->unit) == -1) {
      fail (r, "out of memory for the difference map of the source %s", d->src.uri);
      return -1;
    }
    r->size += d->src.size;
    watched += d->src.ctl != NULL;
  }
  /* main.c allows control sockets for every disk or for none. */
  r->live = watched == r->ndisks;
  return 0;
}

/* The receiver's connection (its handshake runs on the loop).  -1 after
 * failing. */
static int
connect_receiver (struct compare_run *r)
{
  const struct sender_options *o = r->opts;

  /* These log what was wrong, naming the file or host:port. */
  r->creds = tls_creds_load (&o->tls, false);
  if (r->creds == NULL) {
    fail (r, "no comparison with %s was started", o->dest);
    return -1;
  }
  int fd = tcp_connect (o->dest_host, o->dest_port, COMPARE_CONNECT_TIMEOUT_MS);
  if (fd == -1) {
    fail (r, "no comparison with %s was started", o->dest);
    return -1;
  }
  r->conn = stm_conn_new (r->loop, fd, r->creds, false, o->dest, &conn_callbacks, r);
  if (r->conn == NULL) {
    fail (r, "no comparison with %s was started", o->dest);
    return -1;
  }
  if (o->named) {
    struct wire_disks disks = { .count = r->ndisks };
    for (uint32_t i = 0; i < r->ndisks; i++)
      disks.size[i] = r->disks[i].src.size;
    stm_conn_set_disks (r->conn, &disks);
  }
  else
    stm_conn_set_image_size (r->conn, r->disks[0].src.size);
  return 0;
}

static int
set_up (struct compare_run *r)
{
  if (open_disks (r) == -1)
    return -1;
  /* Random: a comparison is never a migration the receiver knows. */
  int e = gnutls_rnd (GNUTLS_RND_NONCE, r->migration_id, sizeof r->migration_id);
  if (e < 0) {
    fail (r, "cannot draw a random id for the comparison: %s", gnutls_strerror (e));
    return -1;
  }
  if (connect_receiver (r) == -1)
    return -1;
  for (uint32_t i = 0; i < r->ndisks; i++) {
    struct compare_disk *d = &r->disks[i];
    source_reader_start (d->src.reader, r->loop, &reader_callbacks, d);
    if (d->src.ctl != NULL) {
      r->first_snapshots++;
      snapshot (d, SNAPSHOT_FIRST);
    }
  }
  return 0;
}

static void
init_watchers (struct compare_run *r)
{
  ev_timer_init (&r->rate_timer, rate_timer_cb, 0., 0.);
  r->rate_timer.data = r;
  ev_timer_init (&r->tick, tick_cb, 1., 1.);
  r->tick.data = r;
  ev_signal_init (&r->sigint, signal_cb, SIGINT);
  r->sigint.data = r;
  ev_signal_init (&r->sigterm, signal_cb, SIGTERM);
  r->sigterm.data = r;
}

int
compare_run (const struct sender_options *opts)
{
  struct compare_run *r = calloc (1, sizeof *r);
  if (r == NULL) {
    log_error ("out of memory; nothing was compared");
    return 1;
  }
  r->opts = opts;
  r->exit_code = 1;
  r->phase = COMPARE_CONNECTING;
  r->start_ns = r->last_activity_ns = time_monotonic_ns ();
  r->ndisks = opts->ndisks;
  compare_report_init (&r->report, opts->json, opts->progress);
  for (uint32_t i = 0; i < r->ndisks; i++) {
    struct compare_disk *d = &r->disks[i];
    d->run = r;
    d->index = i;
    d->src.name = opts->disks[i].name;
    d->src.uri = opts->disks[i].source_uri;
    d->src.control_path = opts->disks[i].control_path;
  }
  /* A burst of a tenth of a second, but at least one read. */
  uint64_t burst = opts->rate / 10 > SOURCE_READER_CHUNK ? opts->rate / 10
    : SOURCE_READER_CHUNK;
  rate_limit_init (&r->rate, opts->rate, burst, r->start_ns);
  r->loop = ev_loop_new (EVFLAG_AUTO);
  if (r->loop == NULL) {
    log_error ("cannot create the event loop; nothing was compared");
    free (r);
    return 1;
  }
  init_watchers (r);
  if (set_up (r) == 0) {
    ev_timer_start (r->loop, &r->tick);
    ev_signal_start (r->loop, &r->sigint);
    ev_signal_start (r->loop, &r->sigterm);
    ev_run (r->loop, 0);
    if (!ended (r))
      fail (r, "internal error: the event loop ended early");
  }

  int status = r->exit_code;
  compare_report_clear (&r->report);
  if (r->conn != NULL)
    stm_conn_close (r->conn);
  for (uint32_t i = 0; i < r->ndisks; i++) {
    compare_source_close (&r->disks[i].src);
    compare_diff_free (&r->disks[i].diff);
  }
  if (r->creds != NULL)
    tls_creds_free (r->creds);
  ev_loop_destroy (r->loop);
  free (r);
  return status;
}
