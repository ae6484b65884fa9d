/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the state every part of a migration shares, and the
 * primitives they all use on it: phase changes (phase.h), messages to the
 * receiver and what they counted (byte_counts.h), where the migration
 * stands (for messages and progress), and the end (migration_finish, and migration_complete after a flip).
 *
 * Making data durable and confirming it is durability.c's; the failure
 * path is failure.c's.  This file calls nothing above it (durability.c,
 * failure.c, pass.c, cutover.c, run.c): a lost receiver is reported
 * through m->receiver_lost, which run.c sets.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convergence.h"
#include "log.h"
#include "migration.h"
#include "stm_conn.h"
#include "time_units.h"


const char *
migration_where (const struct migration *m, char *buf, size_t len)
{
  switch (m->phase) {
  case PHASE_RECONNECTING: snprintf (buf, len, "while reconnecting"); break;
  case PHASE_CONNECTING: snprintf (buf, len, "while connecting"); break;
  case PHASE_HELLO: snprintf (buf, len, "during the handshake"); break;
  case PHASE_PASS:
  case PHASE_PASS_SYNC:
    if (m->cur.final_pass)
      snprintf (buf, len, "during the final pass (%" PRIu32 ")", m->cur.pass);
    else
      snprintf (buf, len, "during pass %" PRIu32, m->cur.pass);
    break;
  case PHASE_PREPARING:
    snprintf (buf, len, "before pass %" PRIu32, m->cur.pass + 1);
    break;
  case PHASE_DECIDING:
    snprintf (buf, len, "at the end of pass %" PRIu32, m->cur.pass);
    break;
  case PHASE_READY:
    snprintf (buf, len, "while ready to cut over, after pass %" PRIu32, m->cur.pass);
    break;
  case PHASE_FREEZING: snprintf (buf, len, "while freezing the source"); break;
  case PHASE_VERIFYING:
    snprintf (buf, len, "while verifying the destination, the source frozen");
    break;
  case PHASE_CHECKING:
    snprintf (buf, len, "at the end of the final pass (%" PRIu32 ")", m->cur.pass);
    break;
  case PHASE_COMMITTING: snprintf (buf, len, "while committing"); break;
  case PHASE_FLIPPING: snprintf (buf, len, "while flipping the source"); break;
  case PHASE_RECORDING:
    snprintf (buf, len, "after the flip, while the receiver records it");
    break;
  case PHASE_DONE: snprintf (buf, len, "after the flip"); break;
  case PHASE_FAILING:
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

bool
migration_ended (const struct migration *m)
{
  return phase_is_over (m->phase);
}

bool
migration_reply_current (const struct migration *m, uint64_t tag,
                         enum migration_phase want)
{
  return tag == m->ctl_epoch && m->phase == want;
}

const char *
migration_disk_filter (const struct migration_disk *d, char *buf, size_t len)
{
  if (d->name != NULL)
    snprintf (buf, len, "the filter of disk %s at %s", d->name, d->control_path);
  else
    snprintf (buf, len, "the filter at %s", d->control_path);
  return buf;
}

void
migration_await_all (struct migration *m)
{
  m->awaiting = m->ndisks;
  m->step_failed = false;
}

bool
migration_await_one (struct migration *m)
{
  assert (m->awaiting > 0);
  return --m->awaiting == 0;
}

void
migration_disk_thawed (struct migration_disk *d)
{
  struct migration *m = d->m;

  d->frozen = false;
  m->cut.frozen = false;
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (m->disks[i].frozen)
      m->cut.frozen = true;
}

void
migration_account_data (struct migration_disk *d, uint64_t payload_bytes,
                        uint64_t sent_bytes)
{
  byte_counts_add_data (&d->m->meas.counts, payload_bytes, sent_bytes);
  byte_counts_add_data (&d->counts, payload_bytes, sent_bytes);
}

void
migration_account_zero (struct migration_disk *d, uint64_t length)
{
  byte_counts_add_zero (&d->m->meas.counts, length);
  byte_counts_add_zero (&d->counts, length);
}

void
migration_counts (const struct migration *m, struct byte_counts *out)
{
  *out = m->meas.counts;
  out->wire = m->meas.wire_bytes_before + (m->conn ? stm_conn_wire_bytes (m->conn) : 0);
  for (uint32_t i = 0; i < m->ndisks; i++)
    out->compared += m->disks[i].cmp.compared;
}

struct stm_conn *
migration_drop_conn (struct migration *m)
{
  struct stm_conn *conn = m->conn;
  if (conn != NULL)
    m->meas.wire_bytes_before += stm_conn_wire_bytes (conn);
  m->conn = NULL;
  /* Nothing meant for this connection may go on the next one. */
  send_stage_clear (&m->stage);
  return conn;
}

uint64_t
migration_mirror_bytes (const struct migration *m)
{
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < m->ndisks; i++)
    bytes += m->disks[i].mirror.data_bytes;
  return bytes;
}

uint64_t
migration_deferred_bytes (const struct migration *m)
{
  uint64_t n = 0;
  for (uint32_t i = 0; i < m->ndisks; i++)
    n += hot_blocks_deferred_bytes (&m->disks[i].hot);
  return n;
}

static double
pass_rate (const struct migration *m, uint64_t now)
{
  uint64_t ns = now - m->cur.pass_start_ns;
  return ns ? (double) m->cur.pass_done * NS_PER_S / ns : 0;
}

_Static_assert (sizeof ((struct progress_sample *) 0)->disks_buf >= MIGRATION_DISKS_JSON_MAX,
                "a progress sample holds every disk's figures");

/* A disk's flip, as the flip event says it. */
static const char *
disk_flip_mode (const struct migration *m, const struct migration_disk *d)
{
  return d->flip == DISK_FLIP_FENCED || m->opts->flip == FLIP_FENCE ? "fence" : "forward";
}

const char *
migration_disks_json (const struct migration *m, unsigned what, char *buf, size_t len)
{
  size_t n = 0;
  int w;

  assert (len >= MIGRATION_DISKS_JSON_MAX);
  if (!m->named)
    return NULL;
  buf[n++] = '[';
  for (uint32_t i = 0; i < m->ndisks; i++) {
    const struct migration_disk *d = &m->disks[i];
    w = snprintf (buf + n, len - n, "%s{\"name\":\"%s\"", i ? "," : "", d->name);
    n += (size_t) w;
    if (what & DISKS_JSON_SIZE)
      n += (size_t) snprintf (buf + n, len - n, ",\"size\":%" PRIu64 ",\"block\":%" PRIu32,
                              d->size, d->block);
    if (what & DISKS_JSON_COUNTS) {
      struct byte_counts c = d->counts;
      c.compared = d->cmp.compared;
      n += byte_counts_disk_fields (buf + n, len - n, &c);
    }
    if (what & DISKS_JSON_DIRTY)
      n += (size_t) snprintf (buf + n, len - n, ",\"dirty_bytes\":%" PRIu64,
                              d->st.dirty_bytes);
    if (what & DISKS_JSON_FLIP) {
      const char *mode = disk_flip_mode (m, d);
      n += (size_t) snprintf (buf + n, len - n, ",\"mode\":\"%s\",\"preconnected\":%s",
                              mode, strcmp (mode, "forward") == 0 && d->flip_preconnected
                              ? "true" : "false");
    }
    if (what & DISKS_JSON_OUTCOME)
      n += (size_t) snprintf (buf + n, len - n, ",\"flip\":\"%s\"", disk_flip_mode (m, d));
    buf[n++] = '}';
    assert (n < len - 2);
  }
  buf[n++] = ']';
  buf[n] = '\0';
  return buf;
}

void
migration_sample (const struct migration *m, struct progress_sample *s, uint64_t now)
{
  s->pass = m->cur.pass;
  s->final = m->cur.final_pass;
  s->pass_bytes = m->cur.pass_bytes;
  s->pass_done = m->cur.pass_done;
  migration_counts (m, &s->counts);
  s->dirty_bytes = m->meas.dirty_bytes;
  s->rate = pass_rate (m, now);
  s->disks_json = migration_disks_json (m, DISKS_JSON_COUNTS | DISKS_JSON_DIRTY,
                                        s->disks_buf, sizeof s->disks_buf);
}

/* The stage's sink: the receiver connection. */
static int
conn_sink (void *opaque, const void *head, size_t headlen, const void *body,
           size_t bodylen)
{
  struct migration *m = opaque;
  if (m->conn == NULL)
    return -1;
  return stm_conn_send (m->conn, head, headlen, body, bodylen);
}

int
migration_send_failed (struct migration *m)
{
  char where[64], reason[256];
  if (errno == ENOMEM)
    snprintf (reason, sizeof reason, "out of memory queueing a message to the "
              "receiver at %s %s", m->opts->dest, migration_where (m, where, sizeof where));
  else
    snprintf (reason, sizeof reason, "cannot send to the receiver at %s %s",
              m->opts->dest, migration_where (m, where, sizeof where));
  m->receiver_lost (m, true, reason);
  return -1;
}

int
migration_send (struct migration *m, const uint8_t *frame, size_t len,
                const void *payload, size_t payload_len)
{
  errno = 0;
  if (m->conn == NULL ||
      send_stage_send (&m->stage, conn_sink, m, frame, len, payload, payload_len) == -1)
    return migration_send_failed (m);
  return 0;
}

int
migration_send_fill (struct migration *m, struct send_stage_entry *slot, uint64_t gen,
                     const uint8_t *frame, size_t len, void *payload, size_t payload_len)
{
  errno = 0;
  if (send_stage_fill (&m->stage, slot, gen, frame, len, payload, payload_len,
                       conn_sink, m) == -1)
    return migration_send_failed (m);
  return 0;
}

void
migration_send_quiet (struct migration *m, const uint8_t *frame, size_t len)
{
  if (m->conn != NULL)
    (void) send_stage_send (&m->stage, conn_sink, m, frame, len, NULL, 0);
}

int
migration_send_msg (struct migration *m, const uint8_t *frame, size_t len)
{
  if (m->conn == NULL && m->phase == PHASE_RECONNECTING)
    return -1;          /* already waiting to connect again */
  return migration_send (m, frame, len, NULL, 0);
}

/* ---- the end ------------------------------------------------------- */




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
  if (m->finished != NULL)
    m->finished (m);
  ev_timer_init (&m->exit_timer, exit_timer_cb, 5., 0.);
  ev_timer_start (m->loop, &m->exit_timer);
  ev_unref (m->loop);

  ev_timer_stop (m->loop, &m->rate_timer);
  ev_timer_stop (m->loop, &m->tick_timer);
  ev_timer_stop (m->loop, &m->overrun_timer);
  ev_timer_stop (m->loop, &m->midpass_timer);
  ev_signal_stop (m->loop, &m->sigint_watcher);
  ev_signal_stop (m->loop, &m->sigterm_watcher);
  reconnect_stop (&m->rc);
  /* A STATUS still in flight would keep the loop alive for nothing. */
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    status_poller_close (d->poller);
    d->poller = NULL;
    /* Nothing the migration still asks the filter matters now; closing
     * the owning connection is also what releases it in the filter. */
    if (d->ctl != NULL)
      control_channel_disconnect (d->ctl);
    if (d->reader)
      source_reader_stop (d->reader);
    flush_probe_abandon (d->flush_probe);
    /* The mirror ring's watchers would keep the loop running too (the
     * ring itself goes with the owning connection). */
    if (d->mirror.on) {
      ev_io_stop (m->loop, &d->mirror.wake);
      ev_timer_stop (m->loop, &d->mirror.nap);
    }
  }
  struct stm_conn *conn = migration_drop_conn (m);
  if (conn != NULL)
    stm_conn_close_after_flush (conn);
}

/* ---- the failure path and the end after a flip --------------------- */

void
migration_complete (struct migration *m, const char *recorded)
{
  if (migration_ended (m))
    return;
  assert (m->cut.flipped);
  migration_set_phase (m, PHASE_DONE);
  m->exit_code = 0;
  char disks[MIGRATION_DISKS_JSON_MAX];
  struct progress_mirror mirror = {
    .mode = m->opts->converge == CONVERGE_MIRROR_SYNC ? "mirror-sync" : "mirror",
  };
  for (uint32_t i = 0; i < m->ndisks; i++) {
    mirror.records += m->disks[i].mirror.records;
    mirror.data_bytes += m->disks[i].mirror.data_bytes;
    mirror.zero_bytes += m->disks[i].mirror.zero_bytes;
  }
  /* The wire bytes are those written so far: the goodbye after the
   * summary is not in them. */
  struct byte_counts counts;
  migration_counts (m, &counts);
  progress_done (&m->progress, &counts, m->cur.pass, m->cut.downtime_ms,
                 (double) (time_monotonic_ns () - m->meas.start_ns) / NS_PER_S,
                 recorded, migration_disks_json (m, DISKS_JSON_SIZE | DISKS_JSON_COUNTS |
                                                 DISKS_JSON_OUTCOME, disks, sizeof disks),
                 convergence_mirrors (m->opts->converge) ? &mirror : NULL);
  migration_finish (m);
}
