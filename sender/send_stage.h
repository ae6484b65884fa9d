/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the ordered stage in front of the receiver connection.
 *
 * Every message the migration writes to the receiver must reach the
 * socket in the order it was sent: a SYNC covers what was sent before it,
 * mirror records are ordered against the pass's reads, hash requests
 * against data.  With --compress, a DATA payload is compressed on a
 * worker thread (compress_worker.h) and its message is known only later,
 * so the payload's place in the order is reserved (send_stage_reserve)
 * and filled in when the worker is done (send_stage_fill); messages sent
 * meanwhile are copied and wait behind it.  With nothing reserved and
 * nothing waiting, a message goes straight to the sink (stm_conn_send),
 * as if the stage were not there: compression off costs nothing.
 *
 * No I/O of its own and no locks: it runs on the event loop, and the
 * sink is a callback, so cmocka tests drive it with a fake one.
 */
#ifndef STM_SENDER_SEND_STAGE_H
#define STM_SENDER_SEND_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where messages go: 0, or -1 if the connection refused them. */
typedef int (*send_stage_sink) (void *opaque, const void *head, size_t headlen,
                                const void *body, size_t bodylen);

struct send_stage_entry;

struct send_stage {
  struct send_stage_entry *first, *last;
  size_t entries;                /* waiting, reserved ones included */
  size_t reserved;               /* of them, not filled in yet */
  uint64_t bytes;                /* bytes of the filled ones */
  /* Moved on by send_stage_clear: a reservation made before it is stale
   * and must not be filled (send_stage_fill refuses it). */
  uint64_t gen;
};

void send_stage_init (struct send_stage *s);

/* Nothing reserved and nothing waiting: a message would go straight out. */
bool send_stage_empty (const struct send_stage *s);

/* Send a message (head, and body unless NULL), in order: straight to sink
 * when the stage is empty, else copied to wait.  0; -1 if the sink
 * refused it (errno unchanged), or with errno ENOMEM if it could not be
 * copied. */
int send_stage_send (struct send_stage *s, send_stage_sink sink, void *opaque,
                     const void *head, size_t headlen,
                     const void *body, size_t bodylen);

/* Reserve the next place in the order for a message made later.  NULL
 * with errno ENOMEM.  *gen is set to the stage's generation. */
struct send_stage_entry *send_stage_reserve (struct send_stage *s, uint64_t *gen);

/* Fill the place e reserved in generation gen with head (copied, at most
 * 64 bytes: WIRE_ENCODE_MAX) and body (bodylen bytes, taken over: freed with free), then
 * send every filled message from the front up to the first place still
 * reserved.  A stale reservation (gen is not the stage's) is not touched:
 * body is freed and 0 returned.  -1 if the sink refused a message; the
 * stage keeps what was not sent. */
int send_stage_fill (struct send_stage *s, struct send_stage_entry *e, uint64_t gen,
                     const void *head, size_t headlen, void *body, size_t bodylen,
                     send_stage_sink sink, void *opaque);

/* Drop everything waiting and every reservation (the connection is gone:
 * nothing of it may go to the next one), and move the generation on. */
void send_stage_clear (struct send_stage *s);

#endif /* STM_SENDER_SEND_STAGE_H */
