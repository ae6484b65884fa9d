/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: asynchronous reads of the source through libnbd, driven by the
 * sender's libev loop.
 *
 * The reader owns a fixed window of read buffers (SOURCE_READER_SLOTS of at
 * most SOURCE_READER_CHUNK bytes), so memory is bounded whatever the image
 * size.  Reads are issued with nbd_aio_pread and completed reads are handed
 * back strictly in the order they were issued, from the loop and never from
 * inside libnbd, with the buffer valid for the duration of the callback: the
 * caller sends it as a DATA body (stm_conn_send copies it) and the slot is
 * reused.  In-order delivery keeps the sent ranges contiguous, so the
 * ranges to CONFIRM coalesce.
 *
 * When the source offers base:allocation block status, the reader asks
 * for it before reading (source_reader_issue_range): ranges the source
 * says read as zeroes are not read at all but handed back, in the same
 * order as the reads, through on_zero, however long they are, so a hole
 * of many gigabytes costs one small request to the source and one ZERO
 * message to the receiver.
 */
#ifndef STM_SENDER_SOURCE_READER_H
#define STM_SENDER_SOURCE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

/* 16 reads of 1 MiB: measured against 256 KiB and 4 MiB reads (see
 * docs/performance.md).  Overridable at build time (-D) for such
 * measurements; a chunk must stay within WIRE_MAX_DATA. */
#ifndef SOURCE_READER_SLOTS
#define SOURCE_READER_SLOTS 16
#endif
#ifndef SOURCE_READER_CHUNK
#define SOURCE_READER_CHUNK (1024u * 1024)
#endif

struct source_reader;

struct source_reader_callbacks {
  /* One read finished, in issue order.  err is 0 or an errno.  clock is
   * the mirror clock it was issued at (source_reader_clock). */
  void (*on_read) (void *opaque, uint64_t offset, uint32_t length,
                   const void *buf, int err, uint64_t clock);
  /* After a batch of on_read calls: slots are free, issue more. */
  void (*on_slots_free) (void *opaque);
  /* The NBD connection failed; reason is libnbd's message. */
  void (*on_failure) (void *opaque, const char *reason);
  /* A range the source reports as reading zeroes, in issue order with the
   * reads (only from source_reader_issue_range; may be NULL otherwise). */
  void (*on_zero) (void *opaque, uint64_t offset, uint64_t length,
                   uint64_t clock);
  /* May the read of [offset, offset+length) be delivered now?  A
   * comparison (compare_pass.h) holds a read back until the receiver's
   * hashes of its range are in; the reads after it wait too, so the
   * order holds.  NULL: always.  It must not act, only answer; call
   * source_reader_deliver once the answer may have changed. */
  bool (*can_deliver) (void *opaque, uint64_t offset, uint32_t length);
};

/* Connect to the NBD URI (blocking).  Returns NULL with errbuf filled. */
struct source_reader *source_reader_open (const char *uri,
                                          char *errbuf, size_t errlen);
uint64_t source_reader_size (const struct source_reader *r);
/* Attach to the loop; from now on callbacks may run. */
void source_reader_start (struct source_reader *r, struct ev_loop *loop,
                          const struct source_reader_callbacks *cb, void *opaque);
/* Is a slot free for another read? */
bool source_reader_can_issue (const struct source_reader *r);
/* Issue a read of length <= SOURCE_READER_CHUNK.  Returns -1 with errbuf
 * filled if libnbd refuses it. */
int source_reader_issue (struct source_reader *r, uint64_t offset, uint32_t length,
                         char *errbuf, size_t errlen);
/* Issue the next piece of [offset, offset+maxlen): a read of at most
 * SOURCE_READER_CHUNK bytes where the source holds data, or a zero range
 * (delivered through on_zero) of any length where it reads as zeroes.
 * Returns the number of bytes issued (*zero says which kind); 0 means the allocation there is not
 * known yet and a block status request is on its way: call again from
 * on_slots_free.  Without block status this is source_reader_issue of
 * min(maxlen, SOURCE_READER_CHUNK).  -1 with errbuf filled on failure. */
int64_t source_reader_issue_range (struct source_reader *r, uint64_t offset,
                                   uint64_t maxlen, bool *zero,
                                   char *errbuf, size_t errlen);
/* Does the source answer base:allocation block status? */
bool source_reader_has_block_status (const struct source_reader *r);
/* Drop what the reader knows of the source's allocation: call when a pass
 * begins, since the source may have changed since it was asked. */
void source_reader_forget_allocation (struct source_reader *r);
/* Mirroring (docs/architecture.md, "Mirroring"): what is issued from now
 * on is placed at the mirror ring's position clock, sampled just before;
 * records up to floor have been sent, so an allocation answer older than
 * that is not trusted for zeroes (it is asked for again).  Without
 * mirroring both stay 0 and change nothing. */
void source_reader_clock (struct source_reader *r, uint64_t clock, uint64_t floor);
/* The oldest clock of what is issued and not yet delivered (a block
 * status request in flight included): records at or after it must wait.
 * UINT64_MAX when nothing is outstanding. */
uint64_t source_reader_oldest_clock (const struct source_reader *r);
/* Reads issued and not yet delivered. */
unsigned source_reader_in_flight (const struct source_reader *r);
/* Deliver what can_deliver held back, from the loop (not from within
 * the call). */
void source_reader_deliver (struct source_reader *r);
/* Detach from the loop: no more callbacks. */
void source_reader_stop (struct source_reader *r);
void source_reader_close (struct source_reader *r);

#endif /* STM_SENDER_SOURCE_READER_H */
