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
 */
#ifndef STM_SENDER_SOURCE_READER_H
#define STM_SENDER_SOURCE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define SOURCE_READER_SLOTS 16
#define SOURCE_READER_CHUNK (1024u * 1024)

struct source_reader;

struct source_reader_callbacks {
  /* One read finished, in issue order.  err is 0 or an errno. */
  void (*on_read) (void *opaque, uint64_t offset, uint32_t length,
                   const void *buf, int err);
  /* After a batch of on_read calls: slots are free, issue more. */
  void (*on_slots_free) (void *opaque);
  /* The NBD connection failed; reason is libnbd's message. */
  void (*on_failure) (void *opaque, const char *reason);
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
/* Reads issued and not yet delivered. */
unsigned source_reader_in_flight (const struct source_reader *r);
/* Detach from the loop: no more callbacks. */
void source_reader_stop (struct source_reader *r);
void source_reader_close (struct source_reader *r);

#endif /* STM_SENDER_SOURCE_READER_H */
