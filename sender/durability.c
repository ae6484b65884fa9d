/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: making sent data durable and confirming it to the filter.
 *
 * Every range sent goes into the sync ledger (sync_ledger.h).  A SYNC (or
 * the COMMIT, which is a SYNC that also ends the migration's data) cuts
 * the ledger: the ranges sent so far wait under that SYNC's seq.  When the
 * receiver answers DURABLE for a seq, the ranges of every SYNC up to it
 * are CONFIRMed to the filter on the control channel, so the filter only
 * ever forgets a dirty block once the destination holds it on disk.  A
 * refused CONFIRM fails the migration (failure.c): the filter would hand
 * those blocks out again, and a flip needs them confirmed.  Mirror ring
 * records are not CONFIRMed: a SYNC's DURABLE moves the ring's durable
 * position past the records sent before it instead.
 */
#include <config.h>

#include <limits.h>
#include <stdio.h>

#include "clock.h"
#include "migration.h"

uint64_t
migration_send_sync (struct migration *m, bool ends_pass, bool commit)
{
  /* One SYNC covers what every disk sent: every disk's ledger is cut with
   * it, so the ledgers' seqs stay the group's one sequence. */
  uint64_t now = time_monotonic_ns (), seq = 0;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    uint64_t s = sync_ledger_cut (&d->ledger, d->size, d->block, ends_pass, now);
    if (s == 0 || (seq != 0 && s != seq)) {
      migration_fail (m, s == 0 ? "out of memory"
                      : "internal error: the sync ledgers of the disks are out of step");
      return 0;
    }
    seq = s;
  }
  uint8_t frame[WIRE_ENCODE_MAX];
  size_t len = commit ? wire_encode_commit (frame, seq) : wire_encode_sync (frame, seq);
  if (migration_send_msg (m, frame, len) == -1)
    return 0;
  return seq;
}

static void
confirm_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  char where[64], filter[PATH_MAX + 64];

  /* A refused CONFIRM fails the migration whenever it comes: the filter
   * would hand those blocks out again, and a flip needs them confirmed. */
  if (!r->ok)
    migration_fail (m, "cannot confirm durable data to %s %s: %s",
                    migration_disk_filter (d, filter, sizeof filter),
                    migration_where (m, where, sizeof where), r->error);
}

void
migration_confirm_up_to (struct migration *m, uint64_t seq)
{
  for (uint32_t k = 0; k < m->ndisks; k++) {
    struct migration_disk *d = &m->disks[k];
    size_t n = sync_ledger_count_up_to (&d->ledger, seq);

    /* The ranges are copied into the requests: the ledger lets them go. */
    for (size_t i = 0; i < n; i++) {
      const struct pending_sync *s = &d->ledger.pending[i];
      if (s->ranges.len > 0)
        control_channel_confirm (d->ctl, s->ranges.items, s->ranges.len,
                                 confirm_replied, d, m->ctl_epoch);
    }
    /* Ring records sent before those SYNCs are durable too: their space
     * may go back to the guest's writes, and mirror-sync writers waiting
     * for them are acknowledged (mirror_stream.h). */
    uint64_t pos, entries;
    if (d->mirror.on && sync_ledger_mirror_durable (&d->ledger, n, &pos, &entries))
      mirror_consumer_durable (&d->mirror.cons, pos, entries);
    sync_ledger_retire (&d->ledger, n);
  }
}
