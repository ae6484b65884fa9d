/* stm-send: the pass loop (see migration.h).
 *
 * Everything runs on one libev loop: the receiver connection (proto/
 * tls_transport.h), the source reads (source_reader.c), a rate timer, a
 * one-second tick for progress, and the signal watchers.  The control
 * socket is used with blocking calls from inside the callbacks; each one is
 * a single short round trip to the filter, except FREEZE.
 *
 * A pass: SNAPSHOT gives the extents; PASS_BEGIN; the extents are read in
 * chunks of at most SOURCE_READER_CHUNK that never cross an extent, and each
 * chunk goes out as DATA, or ZERO if it is all zeroes; PASS_END; SYNC.  Only
 * when DURABLE comes back for a SYNC are the ranges sent before it
 * confirmed to the filter.  Reads stop while the output queue is above its
 * high water mark or the --rate bucket is in debt.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convergence.h"
#include "cutover.h"
#include "log.h"
#include "migration.h"
#include "migration_id.h"
#include "report_sink.h"
#include "retry_policy.h"

#define NS_PER_S 1000000000u
#define NS_PER_MS 1000000u

const char *
migration_where (const struct migration *m, char *buf, size_t len)
{
  switch (m->phase) {
  case PHASE_RECONNECTING: snprintf (buf, len, "while reconnecting"); break;
  case PHASE_CONNECTING: snprintf (buf, len, "while connecting"); break;
  case PHASE_HELLO: snprintf (buf, len, "during the handshake"); break;
  case PHASE_PASS:
  case PHASE_PASS_SYNC:
    if (m->final_pass)
      snprintf (buf, len, "during the final pass (%" PRIu32 ")", m->pass);
    else
      snprintf (buf, len, "during pass %" PRIu32, m->pass);
    break;
  case PHASE_COMMITTING: snprintf (buf, len, "while committing"); break;
  case PHASE_RECORDING:
    snprintf (buf, len, "after the flip, while the receiver records it");
    break;
  case PHASE_DONE: snprintf (buf, len, "after the flip"); break;
  case PHASE_FAILED: snprintf (buf, len, "after a failure"); break;
  case PHASE_COUNT: assert (!"PHASE_COUNT is not a phase"); break;
  }
  return buf;
}

void
migration_set_phase (struct migration *m, enum migration_phase to)
{
  if (!phase_transition_ok (m->phase, to)) {
    log_error ("internal error: stm-send went from phase %s to %s, which "
               "phase.h does not allow", phase_name (m->phase), phase_name (to));
    assert (!"illegal phase transition");
  }
  m->phase = to;
}

static bool
ended (const struct migration *m)
{
  return phase_is_final (m->phase);
}

static double
pass_rate (const struct migration *m, uint64_t now)
{
  uint64_t ns = now - m->pass_start_ns;
  return ns ? (double) m->pass_done * NS_PER_S / ns : 0;
}

static void
fill_sample (const struct migration *m, struct progress_sample *s, uint64_t now)
{
  s->pass = m->pass;
  s->final = m->final_pass;
  s->pass_bytes = m->pass_bytes;
  s->pass_done = m->pass_done;
  s->bytes_sent = m->bytes_sent;
  s->dirty_bytes = m->dirty_bytes;
  s->rate = pass_rate (m, now);
}

void
migration_sample (const struct migration *m, struct progress_sample *s, uint64_t now)
{
  fill_sample (m, s, now);
}

/* Queue one message, with PAYLOAD after its frame (NULL, 0 for none).  A
 * connection that is gone or refuses the bytes means the receiver is lost:
 * every sender of messages reacts the same way, so it is said once here.
 * -1 after reconnect_lost. */
static int
send_with_payload (struct migration *m, const uint8_t *frame, size_t len,
                   const void *payload, size_t payload_len)
{
  char where[64];
  if (m->conn == NULL ||
      stm_conn_send (m->conn, frame, len, payload, payload_len) == -1) {
    reconnect_lost (m, true, "cannot send to the receiver at %s %s",
                    m->opts->dest, migration_where (m, where, sizeof where));
    return -1;
  }
  return 0;
}

static int
send_msg (struct migration *m, const uint8_t *frame, size_t len)
{
  if (m->conn == NULL && m->phase == PHASE_RECONNECTING)
    return -1;          /* already waiting to connect again */
  return send_with_payload (m, frame, len, NULL, 0);
}

/* ---- SYNC bookkeeping ---------------------------------------------- */

uint64_t
migration_send_sync (struct migration *m, bool ends_pass, bool commit)
{
  uint64_t seq = sync_ledger_cut (&m->ledger, m->size, m->block, ends_pass,
                                  time_monotonic_ns ());
  if (seq == 0) {
    cutover_fail (m, "out of memory");
    return 0;
  }
  uint8_t frame[WIRE_ENCODE_MAX];
  size_t len = commit ? wire_encode_commit (frame, seq) : wire_encode_sync (frame, seq);
  if (send_msg (m, frame, len) == -1)
    return 0;
  return seq;
}

int
migration_confirm_up_to (struct migration *m, uint64_t seq)
{
  size_t n = sync_ledger_count_up_to (&m->ledger, seq), done = 0;
  int r = 0;
  while (done < n) {
    const struct pending_sync *s = &m->ledger.pending[done];
    done++;
    if (control_confirm_ranges (m->control, s->ranges.items, s->ranges.len) == -1) {
      char where[64];
      cutover_fail (m, "cannot confirm durable data to the filter at %s %s: %s",
                    m->opts->control_path, migration_where (m, where, sizeof where),
                    control_client_error (m->control));
      r = -1;
      break;
    }
  }
  sync_ledger_retire (&m->ledger, done);
  return r;
}

/* ---- the pass ------------------------------------------------------- */

static void pump (struct migration *m);

/* Outside the final pass, ask the filter how much is dirty now, for the
 * progress report, and let the convergence policy look at it: a pass
 * already doomed not to shrink the dirty set may be throttled now rather
 * than at its end (cutover.c).  Both the end of a pass and the periodic
 * tick do this.  A failed STATUS is not fatal here: the next one will do.
 * -1 when the policy ended the migration. */
static int
refresh_dirty_during_pass (struct migration *m)
{
  struct control_status st;

  if (m->final_pass || control_status (m->control, &st) != 0)
    return 0;
  m->dirty_bytes = st.dirty_bytes;
  return cutover_during_pass (m, &st);
}

static void
pass_all_sent (struct migration *m)
{
  uint8_t frame[WIRE_ENCODE_MAX];
  struct progress_sample s;
  uint64_t now = time_monotonic_ns ();

  m->pass_ended = true;
  if (refresh_dirty_during_pass (m) == -1)
    return;
  fill_sample (m, &s, now);
  progress_update (&m->progress, &s, now, true);
  if (send_msg (m, frame, wire_encode_pass_end (frame, m->pass)) == -1)
    return;
  if (m->final_pass) {
    cutover_final_pass_sent (m);
    return;
  }
  if (migration_send_sync (m, true, false) == 0)
    return;
  migration_set_phase (m, PHASE_PASS_SYNC);
}

void
migration_begin_pass (struct migration *m, bool final)
{
  uint8_t frame[WIRE_ENCODE_MAX];

  /* The receiver refuses anything outside the image; say so here, naming
   * the filter, rather than as a protocol error from the receiver. */
  for (size_t i = 0; i < m->extents.len; i++)
    if (!wire_range_ok (m->extents.items[i].offset, m->extents.items[i].length,
                        m->size)) {
      cutover_fail (m, "the filter at %s handed out an extent (%" PRIu64 ", %" PRIu64
                    ") outside the image of %" PRIu64 " bytes", m->opts->control_path,
                    m->extents.items[i].offset, m->extents.items[i].length, m->size);
      return;
    }

  m->pass++;
  m->final_pass = final;
  m->ext_index = 0;
  m->ext_pos = 0;
  m->send_index = 0;
  m->send_pos = 0;
  /* What the source said of its allocation before may be stale now. */
  source_reader_forget_allocation (m->reader);
  m->all_issued = m->extents.len == 0;
  m->pass_ended = false;
  m->pass_bytes = extent_list_total_bytes (&m->extents);
  m->pass_done = 0;
  m->pass_start_ns = time_monotonic_ns ();
  /* An ordinary pass keeps to --rate on its own; the final pass may use
   * the burst saved up meanwhile, since the guest is held during it. */
  if (!final)
    rate_limit_restart (&m->rate, m->pass_start_ns);
  migration_set_phase (m, PHASE_PASS);
  /* SNAPSHOT just took every dirty block. */
  m->dirty_bytes = 0;

  progress_pass_begin (&m->progress, m->pass, m->pass_bytes, final);
  if (send_msg (m, frame, wire_encode_pass_begin (frame, m->pass, m->pass_bytes)) == -1)
    return;
  cutover_pass_begun (m);
  pump (m);
}

/* Start the next ordinary pass: SNAPSHOT, then read. */
static void
next_pass (struct migration *m)
{
  uint64_t generation;
  if (control_snapshot (m->control, &m->extents, &generation) == -1) {
    cutover_fail (m, "cannot take a snapshot of the dirty blocks from the filter "
                  "at %s before pass %" PRIu32 ": %s",
                  m->opts->control_path, m->pass + 1, control_client_error (m->control));
    return;
  }
  /* Hot blocks wait for the final pass (cutover.c). */
  if (cutover_defer_hot_blocks (m) == -1)
    return;
  migration_begin_pass (m, false);
}

/* Where the read starting at start (within the extent at ext_index)
 * should end: that extent's end, stretched over the following extents
 * while the gaps are short and the read stays within a chunk.  A lone
 * extent is not cut here: the reader reads a chunk of it, or hands back a
 * zero range of any length. */
static uint64_t
read_window_end (const struct migration *m, uint64_t start)
{
  size_t i = m->ext_index;
  const struct extent *e = &m->extents.items[i];
  uint64_t end = e->offset + e->length;

  while (end - start < SOURCE_READER_CHUNK && i + 1 < m->extents.len) {
    const struct extent *next = &m->extents.items[i + 1];
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
  uint64_t bytes = 0;

  while (m->ext_index < m->extents.len) {
    const struct extent *e = &m->extents.items[m->ext_index];
    uint64_t from = e->offset + m->ext_pos;
    uint64_t to = e->offset + e->length;
    if (from >= issued_end)
      break;
    if (to > issued_end) {
      bytes += issued_end - from;
      m->ext_pos = issued_end - e->offset;
      break;
    }
    bytes += to - from;
    m->ext_index++;
    m->ext_pos = 0;
  }
  m->all_issued = m->ext_index == m->extents.len;
  return bytes;
}

/* Issue reads while there is room in every window. */
static void
pump (struct migration *m)
{
  if (m->phase != PHASE_PASS || m->pass_ended || m->conn == NULL)
    return;

  while (!m->all_issued && source_reader_can_issue (m->reader)) {
    if (stm_conn_output_pending (m->conn) >= MIGRATION_OUTPUT_HIGH) {
      m->output_blocked = true;
      break;
    }
    m->output_blocked = false;
    /* Pay for the next read before issuing it (rate_limit.h): it sends at
     * most a chunk of what is left of this window. */
    uint64_t start = m->extents.items[m->ext_index].offset + m->ext_pos;
    uint64_t end = read_window_end (m, start);
    uint64_t now = time_monotonic_ns ();
    uint64_t wait = rate_limit_wait_for_ns (&m->rate, end - start < SOURCE_READER_CHUNK
                                            ? end - start : SOURCE_READER_CHUNK, now);
    if (wait > 0) {
      if (!m->rate_blocked) {
        m->rate_blocked = true;
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
    int64_t len = source_reader_issue_range (m->reader, start, end - start,
                                             &zero, err, sizeof err);
    if (len == -1) {
      char where[64];
      cutover_fail (m, "cannot read the source %s %s: %s", m->opts->source_uri,
                    migration_where (m, where, sizeof where), err);
      return;
    }
    if (len == 0)
      break;
    uint64_t extent_bytes = advance_issued (m, start + (uint64_t) len);
    /* A zero range costs a few bytes on the wire, not its length; gaps
     * read between extents are not sent. */
    if (!zero)
      rate_limit_take (&m->rate, extent_bytes, now);
  }

  if (m->all_issued && source_reader_in_flight (m->reader) == 0)
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
source_result_unwanted (struct migration *m)
{
  if (ended (m))
    return true;
  if (m->stale_reads > 0) {
    m->stale_reads--;
    return true;
  }
  return false;
}

/* Account for a range just queued to the receiver as DATA or ZERO: it is
 * done for this pass, and unsynced until the receiver says it is durable.
 * -1 after failing the migration. */
static int
note_range_sent (struct migration *m, uint64_t offset, uint64_t length, bool data)
{
  m->last_activity_ns = time_monotonic_ns ();
  m->pass_done += length;
  m->bytes_sent += length;
  if (sync_ledger_note_sent (&m->ledger, offset, length, data) == -1) {
    cutover_fail (m, "out of memory");
    return -1;
  }
  return 0;
}

/* Send the parts of the extents that lie in [offset, offset+length), just
 * read (buf) or reported as zeroes (buf NULL): reads come back in the order
 * they were issued, so the send cursor is at or after offset.  A part that
 * reads as zeroes goes as ZERO (the receiver punches a hole).  Returns the
 * data bytes sent, or -1 after failing the migration. */
static int64_t
send_extent_parts (struct migration *m, uint64_t offset, uint64_t length,
                   const uint8_t *buf)
{
  uint64_t end = offset + length;
  int64_t data_bytes = 0;
  uint8_t frame[WIRE_ENCODE_MAX];

  while (m->send_index < m->extents.len) {
    const struct extent *e = &m->extents.items[m->send_index];
    uint64_t from = e->offset + m->send_pos;
    if (from >= end)
      break;
    assert (from >= offset);
    uint64_t to = e->offset + e->length < end ? e->offset + e->length : end;
    uint64_t n = to - from;
    int r;
    bool data = buf != NULL && !all_zero (buf + (from - offset), n);
    if (!data)
      r = send_with_payload (m, frame, wire_encode_zero (frame, from, n), NULL, 0);
    else {
      r = send_with_payload (m, frame, wire_encode_data_header (frame, from, n),
                             buf + (from - offset), n);
      data_bytes += n;
    }
    if (r == -1 || note_range_sent (m, from, n, data) == -1)
      return -1;
    if (to == e->offset + e->length) {
      m->send_index++;
      m->send_pos = 0;
    }
    else
      m->send_pos = to - e->offset;
  }
  return data_bytes;
}

static void
on_read (void *opaque, uint64_t offset, uint32_t length, const void *buf, int err)
{
  struct migration *m = opaque;
  char where[64];
  if (source_result_unwanted (m))
    return;
  if (err) {
    cutover_fail (m, "cannot read the source %s at offset %" PRIu64 " (%" PRIu32
                  " bytes) %s: %s", m->opts->source_uri, offset, length,
                  migration_where (m, where, sizeof where), strerror (err));
    return;
  }

  /* Data counts towards the bytes that call for a SYNC within a pass;
   * zeroes cost the receiver no writing. */
  if (send_extent_parts (m, offset, length, buf) == -1)
    return;
  /* Make progress durable every so often within a long pass; the final
   * pass is made durable by its one SYNC at the end. */
  if (!m->final_pass &&
      sync_ledger_due (&m->ledger, m->last_activity_ns, MIGRATION_SYNC_EVERY,
                       MIGRATION_SYNC_MIN, MIGRATION_SYNC_INTERVAL_NS))
    migration_send_sync (m, false, false);
}

/* A range the source reports as zeroes: a ZERO message for each part of
 * an extent in it, however long (the receiver punches a hole). */
static void
on_zero (void *opaque, uint64_t offset, uint64_t length)
{
  struct migration *m = opaque;
  if (source_result_unwanted (m))
    return;
  (void) send_extent_parts (m, offset, length, NULL);
}

static void
on_slots_free (void *opaque)
{
  struct migration *m = opaque;
  if (!ended (m))
    pump (m);
}

static void
on_source_failure (void *opaque, const char *reason)
{
  struct migration *m = opaque;
  char where[64];
  cutover_fail (m, "the connection to the source %s failed %s: %s",
                m->opts->source_uri, migration_where (m, where, sizeof where), reason);
}

static const struct source_reader_callbacks reader_callbacks = {
  .on_read = on_read,
  .on_slots_free = on_slots_free,
  .on_failure = on_source_failure,
  .on_zero = on_zero,
};

/* ---- after a pass is durable: converge or cut over ----------------- */

static void
pass_durable (struct migration *m, uint64_t sync_sent_ns)
{
  uint64_t now = time_monotonic_ns ();
  uint64_t pass_ns = now - m->pass_start_ns;
  m->sync_rtt_ns = now - sync_sent_ns;
  if (m->min_sync_rtt_ns == 0 || m->sync_rtt_ns < m->min_sync_rtt_ns)
    m->min_sync_rtt_ns = m->sync_rtt_ns;
  if (m->pass_bytes > 0) {
    m->last_pass_bytes = m->pass_bytes;
    m->last_pass_ns = pass_ns;
    convergence_rate_add (&m->pass_rates, m->pass_bytes, pass_ns);
  }

  struct control_status st;
  uint64_t status_start = time_monotonic_ns ();
  int status_r = control_status (m->control, &st);
  m->control_rtt_ns = time_monotonic_ns () - status_start;
  if (status_r == -1) {
    cutover_fail (m, "cannot read the status of the filter at %s after pass %"
                  PRIu32 ": %s",
                  m->opts->control_path, m->pass, control_client_error (m->control));
    return;
  }
  m->dirty_bytes = st.dirty_bytes;

  /* convergence.c decides; cutover.c acts (throttle, freeze, give up). */
  if (cutover_after_pass (m, &st, now, pass_ns))
    next_pass (m);
}

static void
on_durable (struct migration *m, uint64_t seq)
{
  bool pass_end = false;
  uint64_t sent_ns = 0;
  if (seq > m->ledger.last_seq) {
    cutover_fail (m, "the receiver at %s acknowledged SYNC %" PRIu64
                  " which was never sent", m->opts->dest, seq);
    return;
  }
  for (size_t i = 0; i < sync_ledger_count_up_to (&m->ledger, seq); i++)
    if (m->ledger.pending[i].ends_pass) {
      pass_end = true;
      sent_ns = m->ledger.pending[i].sent_ns;
    }
  if (migration_confirm_up_to (m, seq) == -1)
    return;
  if (pass_end && m->phase == PHASE_PASS_SYNC) {
    /* The final pass goes on to COMMIT, unless the cutover is called off
     * (too late), which leaves an ordinary pass end. */
    if (m->final_pass && cutover_final_pass_durable (m))
      return;
    pass_durable (m, sent_ns);
  }
}

/* ---- the receiver connection --------------------------------------- */

static void
on_ready (struct stm_conn *conn, void *opaque)
{
  struct migration *m = opaque;
  struct wire_hello h = { .image_size = m->size, .block_size = m->block,
                          .features = 0 };
  uint8_t frame[WIRE_ENCODE_MAX];
  memcpy (h.migration_id, m->migration_id, sizeof h.migration_id);
  m->handshake_ns = time_monotonic_ns () - m->attach_ns;
  migration_set_phase (m, PHASE_HELLO);
  send_msg (m, frame, wire_encode_hello (frame, &h));
}

/* The source has flipped for this migration, but the receiver does not
 * hold it prepared or final: nothing here can repair that, and the source
 * does not serve the guest any more, so exit 1 (which says the source is
 * serving) would be a lie. */
static void
flipped_but_receiver_lost (struct migration *m, const char *answer)
{
  char msg[1024];
  snprintf (msg, sizeof msg, "the source has flipped for migration %s (STATUS on "
            "%s), but the receiver at %s answered HELLO with %s: it does not hold "
            "this migration prepared or final (was its output replaced, or "
            "stm-recv started with --force?); the source no longer serves the "
            "guest, and the destination's copy cannot be vouched for",
            m->migration_id_hex, m->opts->control_path, m->opts->dest, answer);
  progress_clear (&m->progress);
  log_error ("%s", msg);
  progress_error (&m->progress, msg, "flipped");
  migration_set_phase (m, PHASE_FAILED);
  m->exit_code = STM_SEND_EXIT_UNKNOWN;
  migration_finish (m);
}

/* HELLO_REPLY once the source has flipped (in this process, or before it
 * started): only the receiver's record is left to complete. */
static void
on_hello_reply_flipped (struct migration *m, const struct wire_hello_reply *r)
{
  if (!m->started)
    progress_start (&m->progress, m->opts->source_uri, m->opts->dest, m->size,
                    m->block, m->migration_id_hex, "flipped");
  m->started = true;
  reconnect_done (m);
  switch (r->mode) {
  case WIRE_MODE_FINAL:
    if (m->flipped_at_start)
      log_info ("migration %s had already completed: the source has flipped to %s, "
                "which records it as final", m->migration_id_hex, m->opts->dest);
    cutover_complete (m, "final");
    return;
  case WIRE_MODE_PREPARED:
    /* A process that flipped knows its COMMIT; one that found the source
     * flipped takes the commit the receiver holds, which is the one the
     * flip was for: the filter flips only with every block confirmed
     * durable there. */
    if (m->flipped_at_start) {
      m->commit_seq = r->durable_seq;
      log_info ("migration %s had already flipped; recording it as final on %s",
                m->migration_id_hex, m->opts->dest);
    }
    cutover_send_outcome (m);
    return;
  default:
    flipped_but_receiver_lost (m, r->mode == WIRE_MODE_NEW ? "new" : "resume");
    return;
  }
}

static void
on_hello_reply (struct migration *m, const struct wire_hello_reply *r)
{
  const char *mode;
  uint64_t confirmed = 0;
  int ret;
  if (m->flipped) {
    on_hello_reply_flipped (m, r);
    return;
  }
  if (r->mode == WIRE_MODE_FINAL) {
    cutover_fail (m, "the receiver at %s records migration %s as final (the source "
                  "flipped to it), but the source at %s has not flipped: the two "
                  "disagree, and nothing was changed", m->opts->dest,
                  m->migration_id_hex, m->opts->control_path);
    return;
  }
  if (r->mode == WIRE_MODE_PREPARED) {
    /* The receiver holds a commit of this migration, but the source is
     * tracking (never flipped, or thawed since): that copy is superseded,
     * and the receiver must record so before anything else, so it never
     * claims a prepared copy the guest has written past.  Then resume. */
    uint8_t frame[WIRE_ENCODE_MAX];
    send_msg (m, frame, wire_encode_outcome (frame, r->durable_seq, WIRE_OUTCOME_THAWED));
  }
  if (r->mode == WIRE_MODE_NEW) {
    mode = "new";
    sync_ledger_drop_pending (&m->ledger);
    ret = control_reset (m->control, m->migration_id_hex);
  }
  else if (r->mode == WIRE_MODE_RESUME || r->mode == WIRE_MODE_PREPARED) {
    mode = "resume";
    /* SYNCs sent on a lost connection that the receiver did make durable
     * (only their DURABLE reply was lost): confirm them now, before RESUME
     * turns every unconfirmed block dirty again, so they are not resent.
     * A durable position beyond what this process sent belongs to an
     * earlier sender, and covers none of our SYNCs. */
    if (r->durable_seq <= m->ledger.last_seq) {
      confirmed = sync_ledger_bytes_of_first (&m->ledger,
                                              sync_ledger_count_up_to (&m->ledger,
                                                                       r->durable_seq));
      if (migration_confirm_up_to (m, r->durable_seq) == -1)
        return;
    }
    sync_ledger_drop_pending (&m->ledger);
    ret = control_resume (m->control, m->migration_id_hex);
    if (ret == -1 && errno == ESTALE) {
      /* Another migration reset the source's tracking since this one's
       * last run, and may have confirmed blocks to its own destination:
       * none of that counts here.  Copy everything again; the receiver's
       * data and durable position stay valid, the passes overwrite it. */
      log_warning ("%s; so every block is copied again to %s",
                   control_client_error (m->control), m->opts->dest);
      ret = control_reset (m->control, m->migration_id_hex);
    }
    /* Our SYNC numbers continue after what the receiver holds, and never
     * go back (a number is never reused for other data). */
    sync_ledger_resume_from (&m->ledger, r->durable_seq);
  }
  else {
    cutover_fail (m, "the receiver at %s answered HELLO with an unknown mode %" PRIu32,
                  m->opts->dest, r->mode);
    return;
  }
  if (ret == -1) {
    cutover_fail (m, "cannot prepare the filter at %s for a %s migration: %s",
                  m->opts->control_path, mode, control_client_error (m->control));
    return;
  }
  if (!m->started)
    progress_start (&m->progress, m->opts->source_uri, m->opts->dest, m->size,
                    m->block, m->migration_id_hex, mode);
  else
    progress_resumed (&m->progress, m->opts->dest, mode, r->durable_seq, confirmed);
  m->started = true;
  /* RESUME and RESET both made every unconfirmed block dirty, deferred hot
   * blocks included: none is deferred any more. */
  hot_blocks_forget_deferred (&m->hot);
  reconnect_done (m);
  next_pass (m);
}

static void
on_message (struct stm_conn *conn, const struct wire_msg *msg, void *opaque)
{
  struct migration *m = opaque;
  char where[64];
  if (ended (m))
    return;
  m->last_activity_ns = time_monotonic_ns ();
  switch (msg->type) {
  case WIRE_HELLO_REPLY:
    if (m->phase != PHASE_HELLO)
      break;
    on_hello_reply (m, &msg->u.hello_reply);
    return;
  case WIRE_DURABLE:
    if (m->phase < PHASE_PASS)
      break;
    on_durable (m, msg->u.sync.seq);
    return;
  case WIRE_COMMITTED:
    if (m->phase != PHASE_COMMITTING)
      break;
    cutover_on_committed (m, msg);
    return;
  case WIRE_RECORDED:
    /* Also the answer to OUTCOME thawed, which needs none. */
    if (m->phase != PHASE_RECORDING)
      return;
    if (msg->u.outcome.value != WIRE_STATE_FINAL) {
      cutover_fail (m, "the receiver at %s recorded the flipped migration as %s, "
                    "not final", m->opts->dest,
                    wire_dest_state_name (msg->u.outcome.value));
      return;
    }
    cutover_complete (m, "final");
    return;
  case WIRE_ERROR:
  case WIRE_ABORT:
    /* Only "busy" is worth another attempt; see retry_policy.h.  No
     * space is said first: it is what the operator has to fix. */
    reconnect_lost (m, msg->type == WIRE_ERROR &&
                    retry_wire_error_transient (msg->u.error.code),
                    "%sthe receiver at %s %s %s: %.*s (%s)",
                    msg->u.error.code == WIRE_ERR_NOSPACE
                    ? "the destination is out of space: " : "",
                    m->opts->dest,
                    msg->type == WIRE_ERROR ? "reported an error" : "aborted the migration",
                    migration_where (m, where, sizeof where),
                    (int) msg->u.error.text_len, msg->u.error.text,
                    wire_error_code_name (msg->u.error.code));
    return;
  case WIRE_KEEPALIVE:
    return;
  default:
    break;
  }
  cutover_fail (m, "the receiver at %s sent an unexpected %s message %s",
                m->opts->dest, wire_type_name (msg->type),
                migration_where (m, where, sizeof where));
}

static void
on_drain (struct stm_conn *conn, void *opaque)
{
  struct migration *m = opaque;
  if (ended (m))
    return;
  m->output_blocked = false;
  pump (m);
}

static void
on_close (struct stm_conn *conn, const char *reason, void *opaque)
{
  struct migration *m = opaque;
  char where[64];
  m->conn = NULL;       /* freed by the transport after this returns */
  /* Before the migration has started, a refused connection means a
   * configuration to fix (only "busy" is retried, above); after, the
   * network or the receiver may come back. */
  reconnect_lost (m, (m->started || m->rc.active) && retry_close_transient (reason),
                  "the receiver at %s closed the connection %s: %s",
                  m->opts->dest, migration_where (m, where, sizeof where), reason);
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
  struct migration *m = w->data;
  m->rate_blocked = false;
  m->last_activity_ns = time_monotonic_ns ();
  pump (m);
}

/* Every second: progress, and a nudge to the pump in case a drain
 * notification was missed. */
static void
tick_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct migration *m = w->data;
  uint64_t now = time_monotonic_ns ();
  if (ended (m))
    return;
  /* A --rate wait is our own doing, not a stall; a hung receiver is
   * given up like a lost one, and connected to again. */
  if (!m->rate_blocked && m->phase != PHASE_RECONNECTING &&
      now - m->last_activity_ns > (uint64_t) MIGRATION_STALL_TIMEOUT_S * NS_PER_S) {
    char where[64];
    /* As in on_close: before the migration has started, a receiver that
     * never answers is a configuration to fix, not a network to wait out. */
    reconnect_lost (m, m->started || m->rc.active,
                    "the receiver at %s made no progress for %d seconds %s",
                    m->opts->dest, MIGRATION_STALL_TIMEOUT_S,
                    migration_where (m, where, sizeof where));
    return;
  }
  /* With nothing queued (waiting for DURABLE, a slow source, a --rate
   * wait), tell the receiver we are alive: it closes a sender that stays
   * silent for a minute. */
  if (m->conn && stm_conn_output_pending (m->conn) == 0 &&
      (m->phase == PHASE_HELLO || m->phase == PHASE_PASS ||
       m->phase == PHASE_PASS_SYNC || m->phase == PHASE_COMMITTING ||
       m->phase == PHASE_RECORDING)) {
    uint8_t frame[WIRE_ENCODE_MAX];
    (void) stm_conn_send (m->conn, frame, wire_encode_keepalive (frame), NULL, 0);
  }
  if (m->phase != PHASE_PASS && m->phase != PHASE_PASS_SYNC)
    return;
  if (refresh_dirty_during_pass (m) == -1)
    return;
  struct progress_sample s;
  fill_sample (m, &s, now);
  progress_update (&m->progress, &s, now, false);
  if (m->output_blocked && m->conn &&
      stm_conn_output_pending (m->conn) < MIGRATION_OUTPUT_LOW)
    m->output_blocked = false;
  pump (m);
}

static void
signal_cb (struct ev_loop *loop, ev_signal *w, int revents)
{
  struct migration *m = w->data;
  cutover_fail (m, "interrupted by %s", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void
exit_timer_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  /* The receiver did not take our last messages in time: stop waiting. */
  ev_break (loop, EVBREAK_ALL);
}

void
migration_finish (struct migration *m)
{
  /* Give the transport a few seconds to flush ABORT or the last bytes; the
   * timer does not by itself keep the loop running. */
  ev_timer_init (&m->exit_timer, exit_timer_cb, 5., 0.);
  ev_timer_start (m->loop, &m->exit_timer);
  ev_unref (m->loop);

  ev_timer_stop (m->loop, &m->rate_timer);
  ev_timer_stop (m->loop, &m->tick_timer);
  ev_timer_stop (m->loop, &m->overrun_timer);
  ev_timer_stop (m->loop, &m->midpass_timer);
  ev_signal_stop (m->loop, &m->sigint_watcher);
  ev_signal_stop (m->loop, &m->sigterm_watcher);
  reconnect_stop (m);
  if (m->reader)
    source_reader_stop (m->reader);
  if (m->conn) {
    struct stm_conn *conn = m->conn;
    m->conn = NULL;
    stm_conn_close_after_flush (conn);
  }
}

/* ---- setup ---------------------------------------------------------- */

/* A failure before the migration started: nothing was frozen or reset
 * (or the source had already flipped for this migration). */
static void
setup_error (struct migration *m, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

static void
setup_error (struct migration *m, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (m->flipped) {
    /* Run again after its flip: the source has flipped for this very
     * migration, so the exit status is 0 whatever failed here. */
    log_warning ("%s; the source at %s had already flipped for migration %s, so "
                 "the destination is authoritative, but whether the receiver "
                 "recorded it final could not be checked: run stm-send again "
                 "once the receiver is reachable", msg, m->opts->control_path,
                 m->migration_id_hex);
    m->exit_code = 0;
    progress_done (&m->progress, 0, 0, 0, 0., "unknown");
    return;
  }
  log_error ("%s; the source is unchanged and remains authoritative", msg);
  progress_error (&m->progress, msg, "thawed");
}

/* The source is in a state no migration can start from (state as STATUS
 * names it): say so, and report that state as the source's. */
static void
refuse_source_state (struct migration *m, const char *state, const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));

static void
refuse_source_state (struct migration *m, const char *state, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  log_error ("%s", msg);
  progress_error (&m->progress, msg, state);
}

static int
connect_everything (struct migration *m)
{
  const struct sender_options *o = m->opts;
  char err[512];

  /* The source first: the filter learns the image size when the first NBD
   * client connects, and answers EAGAIN until then. */
  m->reader = source_reader_open (o->source_uri, err, sizeof err);
  if (m->reader == NULL) {
    setup_error (m, "cannot connect to the source %s: %s", o->source_uri, err);
    return -1;
  }
  /* A second connection only to time flushes for the downtime prediction;
   * without it the prediction leaves the flush out until the first FREEZE
   * measured one. */
  m->flush_probe = flush_probe_open (o->source_uri, err, sizeof err);
  if (m->flush_probe == NULL)
    log_warning ("cannot open a second connection to the source %s to time "
                 "flushes (%s): the downtime prediction will not include "
                 "the flush", o->source_uri, err);

  m->control = control_client_connect (o->control_path, MIGRATION_CONTROL_TIMEOUT_MS,
                                       err, sizeof err);
  if (m->control == NULL) {
    setup_error (m, "cannot connect to the filter's control socket %s: %s",
                 o->control_path, err);
    return -1;
  }
  struct control_status st;
  if (control_status (m->control, &st) == -1) {
    setup_error (m, "cannot read the status of the filter at %s: %s", o->control_path,
                 control_client_error (m->control));
    return -1;
  }
  if (st.size != source_reader_size (m->reader)) {
    setup_error (m, "the filter at %s reports an image of %" PRIu64 " bytes but the "
                 "source %s has %" PRIu64 " bytes: is this the right control socket?",
                 o->control_path, st.size, o->source_uri, source_reader_size (m->reader));
    return -1;
  }
  if (st.block < WIRE_MIN_BLOCK || st.block > WIRE_MAX_BLOCK) {
    setup_error (m, "the filter at %s uses a block size of %" PRIu32 " bytes, outside "
                 "what the wire protocol carries", o->control_path, st.block);
    return -1;
  }
  m->size = st.size;
  struct migration_id_inputs id_in = {
    .filter_instance = st.instance, .image_size = m->size, .dest = o->dest,
  };
  if (migration_id_derive (&id_in, m->migration_id) == -1) {
    setup_error (m, "cannot derive the migration id from the filter at %s "
                 "(instance id \"%s\")", o->control_path, st.instance);
    return -1;
  }
  migration_id_hex (m->migration_id, m->migration_id_hex);

  if (strcmp (st.state, "fenced") == 0 || strcmp (st.state, "forwarding") == 0) {
    if (strcmp (st.migration, m->migration_id_hex) != 0) {
      m->exit_code = STM_SEND_EXIT_UNKNOWN;
      refuse_source_state (m, st.state, "the filter at %s has already flipped (state "
                           "%s) for migration %s, not this one (%s): the source was "
                           "migrated elsewhere and this nbdkit process no longer "
                           "serves it", o->control_path, st.state, st.migration,
                           m->migration_id_hex);
      return -1;
    }
    /* A stm-send of this migration flipped it and did not live to record
     * it on the receiver: connect only to do that. */
    m->flipped = true;
    m->flipped_at_start = true;
  }
  /* Frozen by somebody else (another stm-send, or by hand): the commands
   * of a migration belong to the freeze's owner, so nothing could start;
   * and the source is not ours to thaw. */
  if (strcmp (st.state, "frozen") == 0) {
    refuse_source_state (m, st.state, "the filter at %s is frozen by another control "
                         "connection (another stm-send, or a client by hand): its "
                         "guest writes are held until that connection thaws it or "
                         "closes; nothing was changed", o->control_path);
    return -1;
  }
  m->block = st.block;
  m->dirty_bytes = st.dirty_bytes;
  /* FREEZE and FLIP run within the filter's freeze timeout, which may be
   * longer than MIGRATION_CONTROL_TIMEOUT_MS: do not give up on a reply
   * the filter is still entitled to be working on. */
  control_client_set_freeze_timeout (m->control, st.freeze_timeout_ms);

  /* These report their own errors, naming the file or host:port. */
  m->creds = tls_creds_load (&o->tls, false);
  if (m->creds == NULL) {
    setup_error (m, "no migration to %s was started", o->dest);
    return -1;
  }
  int fd = tcp_connect (o->dest_host, o->dest_port, MIGRATION_CONNECT_TIMEOUT_MS);
  if (fd == -1) {
    setup_error (m, "no migration to %s was started", o->dest);
    return -1;
  }
  if (migration_attach_receiver (m, fd) == -1) {
    setup_error (m, "no migration to %s was started", o->dest);
    return -1;
  }
  return 0;
}

int
migration_attach_receiver (struct migration *m, int fd)
{
  /* The first connection is made in CONNECTING already; a new one after
   * a lost receiver comes from RECONNECTING. */
  if (m->phase != PHASE_CONNECTING)
    migration_set_phase (m, PHASE_CONNECTING);
  m->last_activity_ns = time_monotonic_ns ();
  m->attach_ns = m->last_activity_ns;
  m->conn = stm_conn_new (m->loop, fd, m->creds, false, m->opts->dest,
                          &conn_callbacks, m);
  if (m->conn == NULL)
    return -1;
  stm_conn_set_image_size (m->conn, m->size);
  stm_conn_set_water_marks (m->conn, MIGRATION_OUTPUT_LOW, MIGRATION_OUTPUT_HIGH);
  return 0;
}

int
migration_run (const struct sender_options *opts)
{
  struct migration *m = calloc (1, sizeof *m);
  if (m == NULL) {
    log_error ("out of memory");
    return 1;
  }
  m->opts = opts;
  m->exit_code = 1;
  m->phase = PHASE_CONNECTING;       /* where every migration starts */
  m->start_ns = time_monotonic_ns ();
  m->policy = (struct convergence_policy) CONVERGENCE_POLICY_INIT (opts->converge);
  m->last_activity_ns = m->start_ns;
  sync_ledger_init (&m->ledger);
  m->loop = ev_loop_new (EVFLAG_AUTO);
  progress_init (&m->progress, opts->json, opts->progress);
  reconnect_init (m);
  /* Allow a burst of a tenth of a second of traffic, but at least one
   * chunk so a read is never held back forever. */
  uint64_t burst = opts->rate / 10;
  if (burst < SOURCE_READER_CHUNK)
    burst = SOURCE_READER_CHUNK;
  rate_limit_init (&m->rate, opts->rate, burst, m->start_ns);

  if (m->loop == NULL) {
    log_error ("cannot create the event loop");
    free (m);
    return 1;
  }
  /* --report: the page is drawn from the same events --json prints. */
  struct report_sink *report = NULL;
  if (opts->report_path != NULL
      && (report = report_sink_new (opts->report_path)) != NULL)
    progress_set_tee (&m->progress, report_sink_line, report);

  if (connect_everything (m) == 0) {
    source_reader_start (m->reader, m->loop, &reader_callbacks, m);
    ev_timer_init (&m->rate_timer, rate_timer_cb, 0., 0.);
    m->rate_timer.data = m;
    ev_timer_init (&m->tick_timer, tick_cb, 1., 1.);
    m->tick_timer.data = m;
    cutover_init (m);
    ev_timer_start (m->loop, &m->tick_timer);
    ev_signal_init (&m->sigint_watcher, signal_cb, SIGINT);
    m->sigint_watcher.data = m;
    ev_signal_start (m->loop, &m->sigint_watcher);
    ev_signal_init (&m->sigterm_watcher, signal_cb, SIGTERM);
    m->sigterm_watcher.data = m;
    ev_signal_start (m->loop, &m->sigterm_watcher);

    /* Runs until migration_finish has stopped our watchers and the
     * transport has flushed and closed. */
    ev_run (m->loop, 0);

    if (!ended (m))
      /* Cannot happen: every path ends in success or cutover_fail. */
      cutover_fail (m, "internal error: the event loop ended early");
  }

  int status = m->exit_code;
  /* Never leave the terminal line open. */
  progress_clear (&m->progress);
  reconnect_stop (m);
  if (m->conn)
    stm_conn_close (m->conn);
  source_reader_close (m->reader);
  flush_probe_close (m->flush_probe);
  /* Closing the control connection also releases ownership in the filter
   * (and thaws it if a freeze were somehow still held). */
  control_client_close (m->control);
  if (m->creds)
    tls_creds_free (m->creds);
  sync_ledger_free (&m->ledger);
  extent_list_free (&m->extents);
  hot_blocks_free (&m->hot);
  ev_loop_destroy (m->loop);
  free (m);
  /* Last, once the source is released: drawing the page must not hold
   * it.  A report that cannot be written is reported and does not change
   * the exit status, which says what state the source is in. */
  report_sink_finish (report);
  return status;
}
