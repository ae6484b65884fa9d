/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: one pass.  SNAPSHOT gives the extents (the hot blocks left for
 * the final pass, hot_blocks.h); PASS_BEGIN; the extents are read in
 * windows of at most SOURCE_READER_CHUNK, merged across short gaps, and
 * each part goes out as DATA, or ZERO where it reads as zeroes; PASS_END;
 * SYNC.  Reads stop while the output queue is above its high water mark or
 * the --rate bucket is in debt.  Only when DURABLE comes back for a SYNC
 * are the ranges it covers confirmed to the filter (sync_ledger.h,
 * migration_confirm_up_to).
 *
 * While an ordinary pass runs, the convergence policy may slow the guest
 * down at once rather than at the pass's end (throttle_during_pass), from
 * the periodic tick or from a mid-pass timer that looks at the dirty set
 * more often.  What to do once a pass is durable (another pass, the
 * cutover) is not decided here: see cutover.c.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convergence.h"
#include "log.h"
#include "mirror_stream.h"
#include "compare_pass.h"
#include "compress.h"
#include "pass.h"
#include "status_poller.h"
#include "time_units.h"
#include "verify.h"

/* How often the dirty set is looked at while a mid-pass throttle may be
 * due, in seconds. */
#define MIDPASS_CHECK_S 0.05

static void start_disk (struct migration *m, uint32_t i);
static void pass_issue_reads (struct migration *m);

/* ---- what the convergence policy does during a pass ----------------- */

void
pass_throttle_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  char filter[PATH_MAX + 64];

  /* The throttle is reported when asked for; a refusal ends the
   * migration whenever it comes (the failure path releases it). */
  if (!r->ok)
    migration_fail (d->m, "cannot throttle guest writes through %s: %s",
                    migration_disk_filter (d, filter, sizeof filter), r->error);
}

void
pass_throttle_all (struct migration *m, uint64_t rate)
{
  /* --rate-like: the group's guest writes are held to rate in all, so
   * each disk's filter gets its share. */
  uint64_t each = rate / m->ndisks;
  if (rate != 0 && each == 0)
    each = 1;
  for (uint32_t i = 0; i < m->ndisks; i++)
    control_channel_throttle (m->disks[i].ctl, each, pass_throttle_replied,
                              &m->disks[i], m->ctl_epoch);
}

/* During an ordinary pass, with the filter's status st from the periodic
 * tick or the mid-pass timer: set the guest throttle at once if the
 * policy would set it at the end of this pass anyway
 * (convergence_midpass_throttle).  -1 after migration_fail. */
static int
throttle_during_pass (struct migration *m, const struct control_status *st)
{
  if ((m->phase != PHASE_PASS && m->phase != PHASE_PASS_SYNC) || m->cur.final_pass ||
      m->throttle_held_off)
    return 0;
  struct convergence_input in = {
    .pass = m->cur.pass,
    .pass_bytes = m->cur.pass_bytes,
    .pass_ns = 0,
    .dirty_bytes = st->dirty_bytes,
    .written_bytes = st->write_bytes >= m->meas.last_write_bytes
      ? st->write_bytes - m->meas.last_write_bytes : 0,
    .write_requests = st->writes >= m->meas.last_writes ? st->writes - m->meas.last_writes : 0,
    .image_size = m->size,
    .block_size = m->block,
    .pass_done_bytes = m->cur.pass_done,
  };
  uint64_t throughput = convergence_rate_estimate (&m->meas.pass_rates);
  uint64_t rate = convergence_midpass_throttle (&in, throughput, &m->policy);
  if (rate == 0)
    return 0;
  pass_throttle_all (m, rate);
  progress_throttle (&m->progress, rate, st->dirty_bytes, throughput);
  return 0;
}


/* While a mid-pass throttle is possible, look at the dirty set often: at
 * a guest's full write rate a second is long enough to dirty the whole
 * image again, so waiting for the once-a-second tick costs a whole pass. */
static void
midpass_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;

  if (m->phase != PHASE_PASS || m->cur.final_pass || m->cur.pass_ended ||
      !convergence_midpass_possible (&m->policy)) {
    ev_timer_stop (loop, w);
    return;
  }
  pass_look_at_dirty (m);
}

/* A pass has begun: while the policy could throttle during it, look at
 * the dirty set every twentieth of a second (throttle_during_pass). */
static void
arm_midpass_timer (struct migration *m)
{
  ev_timer_stop (m->loop, &m->midpass_timer);
  if (!m->cur.final_pass && convergence_midpass_possible (&m->policy)) {
    ev_timer_set (&m->midpass_timer, MIDPASS_CHECK_S, MIDPASS_CHECK_S);
    ev_timer_start (m->loop, &m->midpass_timer);
  }
}

/* A SNAPSHOT for an ordinary pass is in m->cur.extents: leave the hot blocks
 * out of it for the final pass (hot_blocks.h), within an eighth of the
 * downtime budget at the last measured throughput.  -1 after
 * migration_fail. */
static int
defer_hot_blocks (struct migration *m)
{
  uint64_t throughput = convergence_rate_estimate (&m->meas.pass_rates);
  /* The disks share the budget. */
  uint64_t budget = (uint64_t) ((unsigned __int128) throughput *
                                m->opts->max_downtime_ns / HOT_BLOCKS_BUDGET_DIVISOR
                                / NS_PER_S) / m->ndisks;
  uint64_t before = 0, after = 0;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    before += extent_list_total_bytes (&d->extents);
    if (hot_blocks_filter (&d->hot, &d->extents, m->cur.pass == 0, budget, d->block) == -1) {
      migration_fail (m, "out of memory for the hot blocks of pass %" PRIu32, m->cur.pass + 1);
      return -1;
    }
    after += extent_list_total_bytes (&d->extents);
  }
  if (after < before)
    progress_hot_blocks (&m->progress, m->cur.pass + 1, before - after,
                         migration_deferred_bytes (m));
  return 0;
}

void
pass_mirror_window (struct migration *m, uint64_t max_downtime_ns)
{
  if (!convergence_mirrors (m->opts->converge))
    return;
  uint64_t rate = convergence_rate_estimate (&m->meas.pass_rates);
  /* Within the first pass, what it and the rings have moved so far. */
  uint64_t now = time_monotonic_ns ();
  if (rate == 0 && m->phase == PHASE_PASS &&
      now - m->cur.pass_start_ns >= MIRROR_WINDOW_FIRST_NS)
    rate = convergence_throughput (m->cur.pass_done + migration_mirror_bytes (m)
                                   - m->cur.mirror_bytes_at_begin,
                                   now - m->cur.pass_start_ns);
  for (uint32_t i = 0; i < m->ndisks; i++)
    mirror_stream_set_window (&m->disks[i],
                              convergence_mirror_window (rate, max_downtime_ns,
                                                         m->ndisks, m->opts->mirror_ring));
}

/* ---- the pass ------------------------------------------------------- */

/* Outside the final pass, ask the filter how much is dirty now, for the
 * progress report, and let the convergence policy look at it: a pass
 * already doomed not to shrink the dirty set may be throttled now rather
 * than at its end (cutover.c).  Both the end of a pass and the periodic
 * tick do this.  A failed STATUS is not fatal here: the next one will do.
 * -1 when the policy ended the migration. */
void
pass_look_at_dirty (struct migration *m)
{
  if (!m->cur.final_pass)
    for (uint32_t i = 0; i < m->ndisks; i++)
      status_poller_ask (m->disks[i].poller);
}

void
pass_group_status (const struct migration *m, struct control_status *sum)
{
  *sum = m->disks[0].st;
  for (uint32_t i = 1; i < m->ndisks; i++) {
    const struct control_status *st = &m->disks[i].st;
    sum->size += st->size;
    sum->dirty_bytes += st->dirty_bytes;
    sum->unconfirmed_bytes += st->unconfirmed_bytes;
    sum->write_bytes += st->write_bytes;
    sum->writes += st->writes;
  }
}

void
pass_on_status (void *opaque, const struct control_status *st, uint64_t rtt_ns)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;

  /* A reply that comes after its pass (or the migration) ended is of no
   * use to the throttle: the pass's end asks the filter itself. */
  if (migration_ended (m) || m->cur.final_pass ||
      (m->phase != PHASE_PASS && m->phase != PHASE_PASS_SYNC))
    return;
  /* The group is judged on its sums: this disk's figures are new, the
   * others' are their last. */
  d->st = *st;
  struct control_status sum;
  pass_group_status (m, &sum);
  m->meas.dirty_bytes = sum.dirty_bytes;
  (void) throttle_during_pass (m, &sum);
}

static void
pass_all_sent (struct migration *m)
{
  uint8_t frame[WIRE_ENCODE_MAX];
  struct progress_sample s;
  uint64_t now = time_monotonic_ns ();

  /* Frozen, the rings' heads no longer move: every record goes before
   * the final SYNC, which makes them durable with the pass. */
  if (m->cur.final_pass)
    for (uint32_t i = 0; i < m->ndisks; i++)
      if (mirror_stream_drain (&m->disks[i]) == -1)
        return;
  m->cur.pass_ended = true;
  migration_sample (m, &s, now);
  progress_update (&m->progress, &s, now, true);
  if (migration_send_msg (m, frame, wire_encode_pass_end (frame, m->cur.pass)) == -1)
    return;
  /* The final pass too ends with an ordinary SYNC: the receiver's
   * fdatasync is the slowest step of the commit, and while it runs the
   * cutover can still be called off (the receiver has declared nothing
   * complete); COMMIT then finds nothing left to write. */
  if (migration_send_sync (m, true, false) == 0)
    return;
  migration_set_phase (m, PHASE_PASS_SYNC);
}

void
pass_begin (struct migration *m, bool final)
{
  uint8_t frame[WIRE_ENCODE_MAX];

  char filter[PATH_MAX + 64];

  /* The receiver refuses anything outside the image; say so here, naming
   * the filter, rather than as a protocol error from the receiver. */
  m->cur.pass_bytes = 0;
  for (uint32_t k = 0; k < m->ndisks; k++) {
    struct migration_disk *d = &m->disks[k];
    for (size_t i = 0; i < d->extents.len; i++)
      if (!wire_range_ok (d->extents.items[i].offset, d->extents.items[i].length,
                          d->size)) {
        migration_fail (m, "%s handed out an extent (%" PRIu64 ", %" PRIu64
                        ") outside the image of %" PRIu64 " bytes",
                        migration_disk_filter (d, filter, sizeof filter),
                        d->extents.items[i].offset, d->extents.items[i].length, d->size);
        return;
      }
    /* What the source said of its allocation before may be stale now. */
    source_reader_forget_allocation (d->reader);
    m->cur.pass_bytes += extent_list_total_bytes (&d->extents);
  }

  m->cur.pass++;
  m->cur.final_pass = final;
  compare_pass_begin (m);
  start_disk (m, 0);
  m->cur.pass_ended = false;
  m->cur.pass_done = 0;
  m->cur.pass_start_ns = time_monotonic_ns ();
  m->cur.mirror_bytes_at_begin = migration_mirror_bytes (m);
  /* An ordinary pass keeps to --rate on its own; the final pass may use
   * the burst saved up meanwhile, since the guest is held during it. */
  if (!final)
    rate_limit_restart (&m->rate, m->cur.pass_start_ns);
  migration_set_phase (m, PHASE_PASS);
  /* SNAPSHOT just took every dirty block, of every disk. */
  m->meas.dirty_bytes = 0;
  for (uint32_t i = 0; i < m->ndisks; i++)
    m->disks[i].st.dirty_bytes = 0;

  progress_pass_begin (&m->progress, m->cur.pass, m->cur.pass_bytes, final);
  if (migration_send_msg (m, frame, wire_encode_pass_begin (frame, m->cur.pass, m->cur.pass_bytes)) == -1)
    return;
  arm_midpass_timer (m);
  pass_pump (m);
}

static void
snapshot_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  struct extent_list taken;
  char filter[PATH_MAX + 64];

  if (!migration_reply_current (m, tag, PHASE_PREPARING))
    return;
  if (!r->ok) {
    migration_fail (m, "cannot take a snapshot of the dirty blocks from %s before "
                    "pass %" PRIu32 ": %s", migration_disk_filter (d, filter, sizeof filter),
                    m->cur.pass + 1, r->error);
    return;
  }
  taken = *r->extents;
  *r->extents = d->extents;
  d->extents = taken;
  if (!migration_await_one (m))
    return;
  /* Hot blocks wait for the final pass (cutover.c). */
  if (defer_hot_blocks (m) == -1)
    return;
  pass_begin (m, false);
}

/* Start the next ordinary pass: SNAPSHOT every disk, then read when the
 * last has answered. */
void
pass_next (struct migration *m)
{
  if (m->phase != PHASE_PREPARING)
    migration_set_phase (m, PHASE_PREPARING);
  migration_await_all (m);
  for (uint32_t i = 0; i < m->ndisks; i++)
    control_channel_snapshot (m->disks[i].ctl, snapshot_replied, &m->disks[i],
                              m->ctl_epoch);
}

/* Where the read starting at start (within the extent at ext_index)
 * should end: that extent's end, stretched over the following extents
 * while the gaps are short and the read stays within a chunk.  A lone
 * extent is not cut here: the reader reads a chunk of it, or hands back a
 * zero range of any length. */
static uint64_t
read_window_end (const struct migration *m, uint64_t start)
{
  const struct extent_list *x = &m->disks[m->cur.disk].extents;
  size_t i = m->cur.ext_index;
  const struct extent *e = &x->items[i];
  uint64_t end = e->offset + e->length;

  while (end - start < SOURCE_READER_CHUNK && i + 1 < x->len) {
    const struct extent *next = &x->items[i + 1];
    assert (next->offset >= end);
    if (next->offset - end > MIGRATION_MERGE_GAP ||
        next->offset + next->length - start > SOURCE_READER_CHUNK)
      break;
    end = next->offset + next->length;
    i++;
  }
  return end;
}

/* Everything before issued_end has been issued: move the read cursor
 * there, past the extents and gaps below it.  Returns the bytes of
 * extents (not gaps) it moved over. */
static uint64_t
advance_issued (struct migration *m, uint64_t issued_end)
{
  const struct extent_list *x = &m->disks[m->cur.disk].extents;
  uint64_t bytes = 0;

  while (m->cur.ext_index < x->len) {
    const struct extent *e = &x->items[m->cur.ext_index];
    uint64_t from = e->offset + m->cur.ext_pos;
    uint64_t to = e->offset + e->length;
    if (from >= issued_end)
      break;
    if (to > issued_end) {
      bytes += issued_end - from;
      m->cur.ext_pos = issued_end - e->offset;
      break;
    }
    bytes += to - from;
    m->cur.ext_index++;
    m->cur.ext_pos = 0;
  }
  m->cur.all_issued = m->cur.ext_index == x->len;
  return bytes;
}

/* Point the cursor at the start of disk i's extents for this pass. */
static void
start_disk (struct migration *m, uint32_t i)
{
  m->cur.disk = i;
  m->cur.ext_index = 0;
  m->cur.ext_pos = 0;
  m->cur.send_index = 0;
  m->cur.send_pos = 0;
  m->cur.all_issued = m->disks[i].extents.len == 0;
}

/* The current disk is all read and sent: go on to the next one that has
 * something to send.  False when there is none left. */
static bool
next_disk (struct migration *m)
{
  while (m->cur.disk + 1 < m->ndisks) {
    start_disk (m, m->cur.disk + 1);
    if (!m->cur.all_issued)
      return true;
  }
  return false;
}

/* Issue reads while there is room in every window. */
/* Issue reads while there is room in every window, then send the mirror
 * records the reads let through (mirror_stream_pump): reads first, so
 * that a guest writing as fast as the link carries does not starve the
 * pass of the output queue. */
void
pass_pump (struct migration *m)
{
  pass_issue_reads (m);
  if (migration_ended (m))
    return;
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (mirror_stream_pump (&m->disks[i]) == -1)
      return;
}

static void
pass_issue_reads (struct migration *m)
{
  if (m->phase != PHASE_PASS || m->cur.pass_ended || m->conn == NULL)
    return;

  struct migration_disk *d = &m->disks[m->cur.disk];
  /* Disk by disk: the next one starts when every read of this one has
   * come back, so the sends stay in the order of the reads. */
  while (m->cur.all_issued && source_reader_in_flight (d->reader) == 0 && next_disk (m))
    d = &m->disks[m->cur.disk];
  while (!m->cur.all_issued && source_reader_can_issue (d->reader)) {
    /* The output queue at its high mark, or the compressor's fill of
     * jobs: the drain, or the jobs' completion, pumps again. */
    if (compress_hold_back (m)) {
      m->cur.output_blocked = true;
      break;
    }
    m->cur.output_blocked = false;
    /* Pay for the next read before issuing it (rate_limit.h): it sends at
     * most a chunk of what is left of this window. */
    uint64_t start = d->extents.items[m->cur.ext_index].offset + m->cur.ext_pos;
    uint64_t end = read_window_end (m, start);
    uint64_t now = time_monotonic_ns ();
    uint64_t wait = rate_limit_wait_for_ns (&m->rate, end - start < SOURCE_READER_CHUNK
                                            ? end - start : SOURCE_READER_CHUNK, now);
    if (wait > 0) {
      if (!m->cur.rate_blocked) {
        m->cur.rate_blocked = true;
        ev_timer_set (&m->rate_timer, (double) wait / NS_PER_S, 0.);
        ev_timer_start (m->loop, &m->rate_timer);
      }
      break;
    }

    /* The reader issues a read of data or, where the source reports
     * zeroes, a zero range of any length; 0 means it is asking the source
     * for the allocation first and calls on_slots_free when it knows. */
    bool zero;
    char err[256];
    /* Place what is issued in the mirror order (mirror_stream.h). */
    source_reader_clock (d->reader, mirror_stream_clock (d), mirror_stream_sent (d));
    int64_t len = source_reader_issue_range (d->reader, start, end - start,
                                             &zero, err, sizeof err);
    if (len == -1) {
      char where[64];
      migration_fail (m, "cannot read the source %s %s: %s", d->source_uri,
                    migration_where (m, where, sizeof where), err);
      return;
    }
    if (len == 0)
      break;
    /* A comparing pass asks for the receiver's hashes of what it reads. */
    if (!zero && compare_pass_issued (d, start, (uint32_t) len) == -1)
      return;
    uint64_t extent_bytes = advance_issued (m, start + (uint64_t) len);
    /* A zero range costs a few bytes on the wire, not its length; gaps
     * read between extents are not sent; a compared read pays for what
     * differs when it is sent (send_compared_part). */
    if (!zero && !compare_pass_on (d))
      rate_limit_take (&m->rate, extent_bytes, now);
  }

  if (m->cur.all_issued && source_reader_in_flight (d->reader) == 0 &&
      m->cur.disk + 1 >= m->ndisks)
    pass_all_sent (m);
}

static bool
all_zero (const void *buf, size_t len)
{
  const unsigned char *p = buf;
  return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
}

/* A result from the source reader that nobody waits for any more: the
 * migration has ended, or the read belongs to a pass abandoned when the
 * receiver was lost.  Both kinds of result (data and zeroes) are dropped
 * by the same rule, and each counts once against stale_reads. */
static bool
source_result_unwanted (struct migration_disk *d)
{
  if (migration_ended (d->m))
    return true;
  if (d->stale_reads > 0) {
    d->stale_reads--;
    return true;
  }
  /* Reads of the disk being sent only: the pass goes on to the next disk
   * once every read of this one has come back. */
  assert (d->index == d->m->cur.disk);
  return false;
}

/* Account for a range just queued to the receiver as DATA or ZERO: it is
 * done for this pass, and unsynced until the receiver says it is durable.
 * -1 after failing the migration. */
static int
note_range_sent (struct migration_disk *d, uint64_t offset, uint64_t length, bool data)
{
  struct migration *m = d->m;
  m->meas.last_activity_ns = time_monotonic_ns ();
  m->cur.pass_done += length;
  if (sync_ledger_note_sent (&d->ledger, offset, length, data) == -1) {
    migration_fail (m, "out of memory");
    return -1;
  }
  return 0;
}

/* Send [from, from+n) of an extent part as DATA (data, n bytes) or, when
 * it reads as zeroes (or data is NULL), as ZERO (the receiver punches a
 * hole).  Returns the data bytes sent, or -1 after failing the migration. */
static int64_t
send_part (struct migration_disk *d, uint64_t from, uint64_t n, const uint8_t *data)
{
  bool is_data = data != NULL && !all_zero (data, n);

  if (is_data) {
    /* As DATA or DATA_ZSTD (compress.h), which counts it once its
     * message is made. */
    if (compress_send_data (d, from, data, n) == -1)
      return -1;
  }
  else {
    uint8_t frame[WIRE_ENCODE_MAX];
    /* Disk 0's headers are the one-disk form's, byte for byte. */
    if (migration_send (d->m, frame, wire_encode_disk_zero (frame, d->index, from, n),
                        NULL, 0) == -1)
      return -1;
    migration_account_zero (d, n);
  }
  /* (A compared run that matched is noted as sent too, but sends
   * nothing and is counted by compare_pass_count alone.) */
  if (note_range_sent (d, from, n, is_data) == -1)
    return -1;
  return is_data ? (int64_t) n : 0;
}

/* A compared part [from, to) of the read req (data at buf, read from
 * req->offset): runs of units whose hashes match are noted as sent
 * without sending them (the receiver holds them; the next SYNC makes
 * them durable there), the others are sent.  Returns the data bytes
 * sent, or -1 after failing the migration. */
static int64_t
send_compared_part (struct migration_disk *d, const struct hash_request *req,
                    const uint8_t *src_hashes, uint64_t from, uint64_t to,
                    const uint8_t *buf)
{
  int64_t data_bytes = 0;

  while (from < to) {
    bool differs;
    uint64_t end = compare_run_end (req, src_hashes, from, to, &differs);
    compare_pass_count (d, end - from, differs);
    if (differs) {
      int64_t r = send_part (d, from, end - from, buf + (from - req->offset));
      if (r == -1)
        return -1;
      data_bytes += r;
      /* --rate caps what crosses the link: what differs, not what was
       * compared (the next read waits while the bucket is in debt). */
      rate_limit_take (&d->m->rate, end - from, time_monotonic_ns ());
    }
    else if (note_range_sent (d, from, end - from, false) == -1)
      return -1;
    from = end;
  }
  return data_bytes;
}

/* Send the parts of the extents that lie in [offset, offset+length), just
 * read (buf) or reported as zeroes (buf NULL): reads come back in the order
 * they were issued, so the send cursor is at or after offset.  With req
 * (a compared read), only what differs from the receiver's copy goes.
 * Returns the data bytes sent, or -1 after failing the migration. */
static int64_t
send_extent_parts (struct migration_disk *d, uint64_t offset, uint64_t length,
                   const uint8_t *buf, const struct hash_request *req,
                   const uint8_t *src_hashes)
{
  struct migration *m = d->m;
  uint64_t end = offset + length;
  int64_t data_bytes = 0;

  while (m->cur.send_index < d->extents.len) {
    const struct extent *e = &d->extents.items[m->cur.send_index];
    uint64_t from = e->offset + m->cur.send_pos;
    if (from >= end)
      break;
    assert (from >= offset);
    uint64_t to = e->offset + e->length < end ? e->offset + e->length : end;
    int64_t r = req != NULL
      ? send_compared_part (d, req, src_hashes, from, to, buf)
      : send_part (d, from, to - from, buf != NULL ? buf + (from - offset) : NULL);
    if (r == -1)
      return -1;
    data_bytes += r;
    if (to == e->offset + e->length) {
      m->cur.send_index++;
      m->cur.send_pos = 0;
    }
    else
      m->cur.send_pos = to - e->offset;
  }
  return data_bytes;
}

static void
on_read (void *opaque, uint64_t offset, uint32_t length, const void *buf, int err,
         uint64_t clock)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  char where[64];
  if (source_result_unwanted (d))
    return;
  /* Outside a pass, at the freeze: --verify's reads (verify.h). */
  if (m->phase == PHASE_VERIFYING) {
    verify_on_read (d, offset, length, buf, err);
    return;
  }
  /* The records the read has seen go before its data. */
  if (mirror_stream_before_read (d, clock) == -1)
    return;
  if (err) {
    migration_fail (m, "cannot read the source %s at offset %" PRIu64 " (%" PRIu32
                  " bytes) %s: %s", d->source_uri, offset, length,
                  migration_where (m, where, sizeof where), strerror (err));
    return;
  }

  /* In a comparing pass, the receiver's hashes of the range are in
   * (compare_pass_can_deliver held the read back until they were). */
  const uint8_t *src_hashes = NULL;
  const struct hash_request *req = compare_pass_take (d, offset, length, buf,
                                                      &src_hashes);
  if (req == NULL && migration_ended (m))
    return;
  /* Data counts towards the bytes that call for a SYNC within a pass;
   * zeroes cost the receiver no writing. */
  if (send_extent_parts (d, offset, length, buf, req, src_hashes) == -1)
    return;
  /* Make progress durable every so often within a long pass; the final
   * pass is made durable by its one SYNC at the end. */
  if (!m->cur.final_pass &&
      sync_ledger_due (&d->ledger, m->meas.last_activity_ns, MIGRATION_SYNC_EVERY,
                       MIGRATION_SYNC_MIN, MIGRATION_SYNC_INTERVAL_NS))
    migration_send_sync (m, false, false);
}

/* A range the source reports as zeroes: a ZERO message for each part of
 * an extent in it, however long (the receiver punches a hole). */
static void
on_zero (void *opaque, uint64_t offset, uint64_t length, uint64_t clock)
{
  struct migration_disk *d = opaque;
  if (source_result_unwanted (d) || mirror_stream_before_read (d, clock) == -1)
    return;
  (void) send_extent_parts (d, offset, length, NULL, NULL, NULL);
}

static void
on_slots_free (void *opaque)
{
  struct migration_disk *d = opaque;
  if (migration_ended (d->m))
    return;
  if (d->m->phase == PHASE_VERIFYING)
    verify_pump (d->m);
  else
    pass_pump (d->m);
}

static void
on_source_failure (void *opaque, const char *reason)
{
  struct migration_disk *d = opaque;
  char where[64];
  migration_fail (d->m, "the connection to the source %s failed %s: %s",
                  d->source_uri, migration_where (d->m, where, sizeof where), reason);
}

static bool
can_deliver (void *opaque, uint64_t offset, uint32_t length)
{
  return compare_pass_can_deliver (opaque, offset, length);
}

const struct source_reader_callbacks pass_reader_callbacks = {
  .can_deliver = can_deliver,
  .on_read = on_read,
  .on_slots_free = on_slots_free,
  .on_failure = on_source_failure,
  .on_zero = on_zero,
};

void
pass_init (struct migration *m)
{
  ev_timer_init (&m->midpass_timer, midpass_timer_cb, 0., 0.);
  m->midpass_timer.data = m;
}

void
pass_abandon (struct migration *m)
{
  /* Replies to what was asked before are stale now (phase.h). */
  m->ctl_epoch++;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    d->stale_reads = d->reader ? source_reader_in_flight (d->reader) : 0;
    sync_ledger_forget_unsynced (&d->ledger);
  }
  compare_pass_abandon (m);
  m->cur.final_pass = false;
  m->cur.all_issued = true;
  m->cur.pass_ended = true;
  m->cur.output_blocked = false;
  if (m->cur.rate_blocked) {
    ev_timer_stop (m->loop, &m->rate_timer);
    m->cur.rate_blocked = false;
  }
  ev_timer_stop (m->loop, &m->midpass_timer);
}
