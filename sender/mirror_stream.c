/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the mirror stream (see mirror_stream.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "mirror_stream.h"
#include "rate_limit.h"
#include "source_reader.h"
#include "time_units.h"

/* Records go to the receiver only on a connection that has been greeted
 * and while the migration may still change the destination: from the
 * first pass's preparation to the check before the commit.  (While
 * frozen no new record comes, and the final pass drains the ring before
 * its SYNC.) */
static bool
can_send (const struct migration *m)
{
  if (!m->started || m->conn == NULL || migration_ended (m))
    return false;
  switch (m->phase) {
  case PHASE_PREPARING:
  case PHASE_PASS:
  case PHASE_PASS_SYNC:
  case PHASE_DECIDING:
  case PHASE_READY:
  case PHASE_FREEZING:
  case PHASE_CHECKING:
    return true;
  default:
    return false;
  }
}

static void pump_cb (struct ev_loop *loop, ev_timer *w, int revents);
static void wake_cb (struct ev_loop *loop, ev_io *w, int revents);

int
mirror_stream_map (struct migration_disk *d, int fds[3])
{
  struct disk_mirror *mr = &d->mirror;

  if (mirror_consumer_map (&mr->cons, fds[0], fds[1], fds[2]) == -1)
    return -1;
  if (mr->cons.ring.hdr->image_size != d->size) {
    mirror_consumer_unmap (&mr->cons);
    errno = EINVAL;
    return -1;
  }
  mr->on = true;
  return 0;
}

void
mirror_stream_start (struct migration_disk *d)
{
  struct disk_mirror *mr = &d->mirror;
  struct migration *m = d->m;

  if (!mr->on)
    return;
  ev_io_init (&mr->wake, wake_cb, mirror_consumer_event_fd (&mr->cons), EV_READ);
  mr->wake.data = d;
  ev_io_start (m->loop, &mr->wake);
  ev_timer_init (&mr->nap, pump_cb, MIRROR_NAP_S, 0.);
  mr->nap.data = d;
}

void
mirror_stream_stop (struct migration_disk *d)
{
  struct disk_mirror *mr = &d->mirror;

  if (!mr->on || d->m->loop == NULL)
    return;
  ev_io_stop (d->m->loop, &mr->wake);
  ev_timer_stop (d->m->loop, &mr->nap);
}

void
mirror_stream_close (struct migration_disk *d)
{
  if (!d->mirror.on)
    return;
  mirror_stream_stop (d);
  mirror_consumer_unmap (&d->mirror.cons);
  d->mirror.on = false;
}

uint64_t
mirror_stream_clock (const struct migration_disk *d)
{
  return d->mirror.on ? mirror_consumer_clock (&d->mirror.cons) : 0;
}

uint64_t
mirror_stream_sent (const struct migration_disk *d)
{
  return d->mirror.on ? d->mirror.cons.next_pos : 0;
}

uint64_t
mirror_stream_backlog (const struct migration_disk *d)
{
  const struct disk_mirror *mr = &d->mirror;

  if (!mr->on)
    return 0;
  uint64_t head = mirror_consumer_clock (&mr->cons);
  return head > mr->cons.next_pos ? head - mr->cons.next_pos : 0;
}

/* Queue one record to the receiver: its data as DATA, or a ZERO, at
 * time now.  -1 after failing. */
static int
send_record (struct migration_disk *d, const struct mirror_entry *e, uint64_t now)
{
  struct migration *m = d->m;
  struct disk_mirror *mr = &d->mirror;
  uint8_t frame[WIRE_ENCODE_MAX];
  char filter[PATH_MAX + 64];
  uint64_t data = 0;

  if (!wire_range_ok (e->offset, e->length, d->size) ||
      (e->type == MIRROR_WRITE && e->data_len[0] + e->data_len[1] != e->length)) {
    migration_fail (m, "the mirror ring of %s holds a record (offset %" PRIu64
                    ", %" PRIu64 " bytes, at position %" PRIu64 ") that does not "
                    "fit the image of %" PRIu64 " bytes",
                    migration_disk_filter (d, filter, sizeof filter),
                    e->offset, e->length, e->pos, d->size);
    return -1;
  }
  if (e->type == MIRROR_ZERO) {
    if (migration_send (m, frame, wire_encode_disk_zero (frame, d->index, e->offset,
                                                         e->length), NULL, 0) == -1)
      return -1;
    mr->zero_bytes += e->length;
    migration_account_zero (d, e->length);
  }
  else {
    /* A DATA message carries at most WIRE_MAX_DATA bytes, and a guest
     * write may be larger (or wrap round the ring's end): as many
     * messages as it takes, in order. */
    uint64_t offset = e->offset;
    for (int i = 0; i < 2; i++)
      for (size_t done = 0; done < e->data_len[i]; ) {
        size_t n = e->data_len[i] - done;
        if (n > WIRE_MAX_DATA)
          n = WIRE_MAX_DATA;
        if (compress_send_data (d, offset, e->data[i] + done, n) == -1)
          return -1;
        offset += n;
        done += n;
      }
    data = e->length;
    mr->data_bytes += data;
    rate_limit_take (&m->rate, data, now);
  }
  mr->records++;
  m->meas.last_activity_ns = now;
  sync_ledger_note_mirror (&d->ledger, mr->cons.next_pos, mr->cons.taken_entries,
                           data, now);
  return 0;
}

/* Send the records that start below limit (when bounded, while the
 * output queue has room and --rate allows).  Records below wait_to (at
 * most the clock now) were reserved before it and are committed
 * presently: wait for them, within MIRROR_COMMIT_WAIT_NS.  The wait is a
 * yield loop on the event loop's thread, but it lasts as long as a
 * writer takes to copy its data into the ring.  One reading of the clock
 * serves a whole batch of records.  Returns the records sent, -1 after
 * failing the migration. */
static int64_t
send_below (struct migration_disk *d, uint64_t limit, uint64_t wait_to,
            bool bounded)
{
  struct disk_mirror *mr = &d->mirror;
  uint64_t deadline = 0, now = time_monotonic_ns ();
  int64_t sent = 0;
  char filter[PATH_MAX + 64];

  while (mr->cons.next_pos < limit) {
    /* Share the connection with the pass: above the output queue's high
     * water mark, records wait in the ring (and a full ring makes the
     * guest's writes wait, or go dirty), and the queue's drain pumps
     * again. */
    if (bounded && d->m->conn != NULL && compress_hold_back (d->m))
      break;
    /* And keep to --rate, which caps the sum: records pay as the pass's
     * reads do, and wait while the bucket is in debt. */
    if (bounded && rate_limit_wait_ns (&d->m->rate, now) > 0)
      break;
    struct mirror_entry e;
    int r = mirror_consumer_next (&mr->cons, &e);

    if (r == -1) {
      migration_fail (d->m, "the mirror ring of %s is corrupt at position %" PRIu64,
                      migration_disk_filter (d, filter, sizeof filter),
                      mr->cons.next_pos);
      return -1;
    }
    if (r == 0) {
      if (mr->cons.next_pos >= wait_to)
        break;
      now = time_monotonic_ns ();
      if (deadline == 0)
        deadline = now + MIRROR_COMMIT_WAIT_NS;
      else if (now > deadline) {
        migration_fail (d->m, "the mirror ring of %s has a record reserved at "
                        "position %" PRIu64 " that its writer has not committed "
                        "in %" PRIu64 " ms", migration_disk_filter (d, filter, sizeof filter),
                        mr->cons.next_pos, (uint64_t) MIRROR_COMMIT_WAIT_NS / NS_PER_MS);
        return -1;
      }
      sched_yield ();
      continue;
    }
    if (send_record (d, &e, now) == -1)
      return -1;
    sent++;
  }
  if (sent > 0)
    mirror_consumer_taken (&mr->cons, mr->cons.next_pos, mr->cons.taken_entries);
  return sent;
}

/* Cut a SYNC for the records sent since the last one if it is due
 * (mirror_stream.h).  Not within the final pass, which its own SYNC
 * ends.  While FREEZE drains the gate it is: mirror-sync writers in the
 * gate wait for their records to be durable. */
static void
sync_if_due (struct migration_disk *d)
{
  struct migration *m = d->m;
  struct disk_mirror *mr = &d->mirror;

  if (m->cur.final_pass && (m->phase == PHASE_PASS || m->phase == PHASE_PASS_SYNC))
    return;
  if (m->phase == PHASE_CHECKING)
    return;
  /* A SYNC after an eighth of the ring, or a quarter of the window: the
   * writers' room comes back as the SYNCs are answered. */
  uint64_t every = mr->cons.ring.capacity / 8;
  if (mr->window != 0 && mr->window / 4 < every)
    every = mr->window / 4;
  if (sync_ledger_mirror_due (&d->ledger, time_monotonic_ns (),
                              mr->cons.ring.hdr->sync != 0, every,
                              MIRROR_SYNC_INTERVAL_NS))
    migration_send_sync (m, false, false);
}

/* The ring has nothing more for now: nap, then sleep on the eventfd
 * (mirror_consumer_arm).  In mirror-sync every write waits for us, so we
 * sleep at once and its commit wakes us. */
static void
wait_for_records (struct migration_disk *d)
{
  struct disk_mirror *mr = &d->mirror;
  struct ev_loop *loop = d->m->loop;

  if (ev_is_active (&mr->nap))
    return;
  double again = MIRROR_NAP_S;
  if (mr->cons.ring.hdr->sync == 0 && mr->naps < MIRROR_NAPS)
    mr->naps++;
  else {
    int r = mirror_consumer_arm (&mr->cons);
    if (r == 0) {
      if (d->ledger.mirror_pos == d->ledger.mirror_cut_pos)
        return;                  /* the eventfd wakes us */
      /* Records sent and not yet synced: come back when their SYNC is
       * due, if no record wakes us first. */
      again = (double) MIRROR_SYNC_INTERVAL_NS / NS_PER_S;
    }
    else
      again = 0.;                /* a record came, or the ring stopped */
  }
  ev_timer_set (&mr->nap, again, 0.);
  ev_timer_start (loop, &mr->nap);
}

int
mirror_stream_pump (struct migration_disk *d)
{
  struct disk_mirror *mr = &d->mirror;

  if (!mr->on || mr->stopped || !can_send (d->m))
    return 0;
  /* The gate: records at or after the oldest read still out wait for its
   * data (docs/architecture.md, "Mirroring"). */
  uint64_t gate = source_reader_oldest_clock (d->reader);
  int64_t sent = send_below (d, gate, 0, true);
  if (sent == -1)
    return -1;
  if (sent > 0)
    mr->naps = 0;
  sync_if_due (d);
  if (migration_ended (d->m))
    return -1;
  if (gate != UINT64_MAX)
    return 0;                    /* the reads' deliveries pump again */
  if (d->m->conn != NULL && compress_hold_back (d->m))
    return 0;                    /* and so does the output queue's drain, or
                                    the compressor's jobs' completion */
  uint64_t rate_wait = rate_limit_wait_ns (&d->m->rate, time_monotonic_ns ());
  if (rate_wait > 0) {
    /* --rate: come back when the bucket is out of debt. */
    ev_timer_stop (d->m->loop, &mr->nap);
    ev_timer_set (&mr->nap, (double) rate_wait / NS_PER_S, 0.);
    ev_timer_start (d->m->loop, &mr->nap);
    return 0;
  }
  if (mirror_consumer_stopped (&mr->cons) &&
      mr->cons.next_pos >= mirror_consumer_clock (&mr->cons)) {
    /* The filter took the ring away (a flip, MIRROR STOP): what we did
     * not make durable is dirty again there. */
    mr->stopped = true;
    mirror_stream_stop (d);
    return 0;
  }
  wait_for_records (d);
  return 0;
}

void
mirror_stream_set_window (struct migration_disk *d, uint64_t bytes)
{
  struct disk_mirror *mr = &d->mirror;

  if (!mr->on || bytes == mr->window)
    return;
  mr->window = bytes;
  mirror_consumer_set_window (&mr->cons, bytes);
}

int
mirror_stream_before_read (struct migration_disk *d, uint64_t clock)
{
  if (!d->mirror.on)
    return 0;
  return send_below (d, clock, clock, false) == -1 ? -1 : 0;
}

int
mirror_stream_drain (struct migration_disk *d)
{
  if (!d->mirror.on)
    return 0;
  return send_below (d, UINT64_MAX, mirror_consumer_clock (&d->mirror.cons),
                     false) == -1 ? -1 : 0;
}

void
mirror_stream_rewind (struct migration_disk *d)
{
  struct disk_mirror *mr = &d->mirror;

  if (!mr->on)
    return;
  /* Our own word on the page, never past what was reserved. */
  uint64_t pos = __atomic_load_n (&mr->cons.page->durable, __ATOMIC_ACQUIRE);
  uint64_t entries = mr->cons.page->durable_entries;
  if (pos > mirror_consumer_clock (&mr->cons))
    pos = mirror_consumer_clock (&mr->cons);
  mr->cons.next_pos = pos;
  mr->cons.taken_entries = entries;
  mirror_consumer_taken (&mr->cons, pos, entries);
  sync_ledger_rewind_mirror (&d->ledger, pos, entries);
  mr->resent_from = pos;
}

static void
pump_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  (void) mirror_stream_pump (w->data);
}

static void
wake_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct migration_disk *d = w->data;

  (void) mirror_consumer_woken (&d->mirror.cons);
  d->mirror.naps = 0;
  (void) mirror_stream_pump (d);
}
