/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: a connection's output queue: the bytes queued for the peer and not
 * yet taken by the socket, in a list of fixed-size chunks.
 *
 * Messages are copied in whole or not at all, and leave from the front in
 * whatever pieces the transport takes.  The front stays where it is until
 * consumed, which is what a transport that must repeat a send with the
 * same data (TLS) relies on.  Emptied chunks are kept for reuse, up to a
 * bound, so a sender that keeps the queue full does not keep returning
 * memory to the allocator and faulting fresh pages in.
 */
#ifndef STM_PROTO_OUT_QUEUE_H
#define STM_PROTO_OUT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct out_chunk;

/* All zero is an empty queue. */
struct out_queue {
  struct out_chunk *head, *tail, *spare;
  unsigned nspare;
  size_t pending;                      /* bytes queued, not yet sent */
};

/* Append a message made of head and body (either may be empty).  Returns
 * 0, or -1 when out of memory, with nothing appended. */
int out_queue_append (struct out_queue *q, const void *head, size_t headlen,
                      const void *body, size_t bodylen);

/* The first bytes still to send: *len of them at the pointer returned.
 * Only when pending > 0. */
const uint8_t *out_queue_front (struct out_queue *q, size_t *len);

/* n bytes of the front (at most its *len) have been sent. */
void out_queue_consume (struct out_queue *q, size_t n);

/* Free every chunk; the queue is empty after. */
void out_queue_free (struct out_queue *q);

#endif /* STM_PROTO_OUT_QUEUE_H */
