/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the mirror stream, every guest write the filter hands over
 * through its mirror ring (--converge mirror|mirror-sync), sent to the
 * receiver in order with the pass's data.
 *
 * Each disk's filter gives its ring at start-up (MIRROR START, setup.c);
 * from then on the loop takes its records and sends each as DATA (or
 * ZERO) on the receiver connection, like any pass data, so the receiver
 * needs nothing new.  The order is the rule of docs/architecture.md
 * ("Mirroring"): a copy read's data is placed at the ring's clock sampled
 * just before the read was issued, so records below a read's clock go
 * before its data (mirror_stream_before_read) and records at or after the
 * oldest read still out wait for it (the gate, mirror_stream_pump).
 *
 * Records are never CONFIRMed: the filter set no dirty bit for them.
 * Each SYNC records how far the records sent before it reach
 * (sync_ledger_note_mirror), and its DURABLE moves the ring's durable
 * position there (durability.c), which frees the ring's space and, in
 * mirror-sync, acknowledges the guest's writes.  In mirror-sync a SYNC
 * follows every batch of records at once; in mirror, one follows once an
 * eighth of the ring (or a quarter of the window) is unsynced, or
 * MIRROR_SYNC_INTERVAL_NS after the oldest unsynced record was sent.
 *
 * The window (mirror_stream_set_window) bounds how far the destination
 * lags: once the copy rate is known, writers may use only what the
 * final pass can send within a quarter of the downtime budget; beyond it they
 * wait for room (MIRROR START's wait, --mirror-wait), then fall back to
 * dirty bits.  So a guest that writes faster than the link is paced by
 * it, as DRBD's protocol A paces one by its send buffer, and the cutover
 * can come at any moment.
 *
 * When the receiver is lost, what was sent and not made durable is still
 * in the ring: mirror_stream_rewind starts again from the durable
 * position, before any read of the next pass.  When stm-send dies, the
 * filter turns those records back into dirty blocks.
 */
#ifndef STM_SENDER_MIRROR_STREAM_H
#define STM_SENDER_MIRROR_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "migration.h"

/* In mirror (not -sync) mode, the longest records stay unsynced. */
#define MIRROR_SYNC_INTERVAL_NS (50 * NS_PER_MS)
/* A consumer that finds the ring empty naps this long, MIRROR_NAPS times,
 * before it sleeps on the eventfd: a consumer asleep makes every write
 * signal it (docs/architecture.md, "Acknowledgement modes"). */
#define MIRROR_NAP_S 0.001
#define MIRROR_NAPS 2
/* The longest we wait for a record reserved before a read's clock to be
 * committed: its writer is copying its data in, which takes microseconds;
 * a filter that stops there for this long has stopped altogether. */
#define MIRROR_COMMIT_WAIT_NS (2 * NS_PER_S)

/* Take over the three descriptors MIRROR START handed over (fds[0..2])
 * and map the ring for disk d.  -1 with errno set (the caller reports). */
int mirror_stream_map (struct migration_disk *d, int fds[3]);
/* Start watching the ring on m's loop (after the loop exists). */
void mirror_stream_start (struct migration_disk *d);
void mirror_stream_stop (struct migration_disk *d);
void mirror_stream_close (struct migration_disk *d);

/* The ring's clock, to place a read about to be issued; 0 without a
 * ring. */
uint64_t mirror_stream_clock (const struct migration_disk *d);
/* How far records have been sent (the reader's floor for zero runs). */
uint64_t mirror_stream_sent (const struct migration_disk *d);

/* A read (or zero range) placed at clock is about to be sent: send every
 * record below clock first, waiting for any of them still being
 * committed.  -1 after failing the migration. */
int mirror_stream_before_read (struct migration_disk *d, uint64_t clock);
/* Send what the gate lets through (records below the oldest read still
 * out), cut a SYNC if one is due, and wait for more when the ring is
 * empty.  Does nothing while records cannot be sent (no receiver, the
 * migration ended).  -1 after failing the migration. */
int mirror_stream_pump (struct migration_disk *d);
/* Bound what the destination may lag behind the guest on this disk to
 * bytes of the ring (convergence_mirror_window; 0: the whole ring). */
void mirror_stream_set_window (struct migration_disk *d, uint64_t bytes);
/* Frozen: send every record up to the ring's head (which no longer
 * moves), so the final SYNC covers them all.  -1 after failing. */
int mirror_stream_drain (struct migration_disk *d);
/* The receiver was lost: send again from the durable position. */
void mirror_stream_rewind (struct migration_disk *d);

/* Bytes of records in the ring not yet sent: what the final pass must
 * still send.  (Records sent and not yet durable cost the final SYNC's
 * round trip, which the prediction counts already: the pass-end SYNCs
 * that measure it cover records too.) */
uint64_t mirror_stream_backlog (const struct migration_disk *d);

#endif /* STM_SENDER_MIRROR_STREAM_H */
