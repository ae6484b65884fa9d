/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the output queue of a connection (see out_queue.h).
 *
 * The chunks are big (256 KiB) so that a sender's DATA messages, up to
 * 8 MiB, take few of them and the transport can write large pieces; the
 * spare list holds enough for a sender's whole queue (16 MiB and a few
 * reads on top).
 */
#include <config.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "out_queue.h"

#define OUT_CHUNK_SIZE (256 * 1024)     /* output queue granule */
#define OUT_SPARE_CHUNKS 80

/* A piece of the output queue: bytes [start, end) are still to be sent. */
struct out_chunk {
  struct out_chunk *next;
  size_t start, end;
  uint8_t bytes[OUT_CHUNK_SIZE];
};

static struct out_chunk *
chunk_get (struct out_queue *q)
{
  struct out_chunk *k = q->spare;

  if (k != NULL) {
    q->spare = k->next;
    q->nspare--;
  }
  else {
    k = malloc (sizeof *k);
    if (k == NULL)
      return NULL;
  }
  k->next = NULL;
  k->start = k->end = 0;
  return k;
}

static void
chunk_put (struct out_queue *q, struct out_chunk *k)
{
  if (q->nspare < OUT_SPARE_CHUNKS) {
    k->next = q->spare;
    q->spare = k;
    q->nspare++;
  }
  else
    free (k);
}

/* Copy len bytes after the tail; the chunks they need are already linked
 * after it. */
static void
queue_copy (struct out_queue *q, const void *data, size_t len)
{
  const uint8_t *p = data;

  while (len > 0) {
    struct out_chunk *t = q->tail;
    size_t n;

    if (t->end == OUT_CHUNK_SIZE) {
      assert (t->next != NULL);
      t = q->tail = t->next;
    }
    n = OUT_CHUNK_SIZE - t->end;
    if (n > len)
      n = len;
    memcpy (t->bytes + t->end, p, n);
    t->end += n;
    p += n;
    len -= n;
    q->pending += n;
  }
}

/* Every chunk the message needs is obtained before anything is copied, so
 * a failure never leaves half a message queued. */
int
out_queue_append (struct out_queue *q, const void *head, size_t headlen,
                  const void *body, size_t bodylen)
{
  size_t total = headlen + bodylen, room, need;
  struct out_chunk *added = NULL, *last = NULL, *k;

  room = q->tail ? OUT_CHUNK_SIZE - q->tail->end : 0;
  for (need = total > room ? total - room : 0; need > 0;
       need -= need < OUT_CHUNK_SIZE ? need : OUT_CHUNK_SIZE) {
    k = chunk_get (q);
    if (k == NULL) {
      while (added) {
        k = added->next;
        free (added);
        added = k;
      }
      return -1;
    }
    if (last)
      last->next = k;
    else
      added = k;
    last = k;
  }
  if (added) {
    if (q->tail)
      q->tail->next = added;
    else
      q->head = q->tail = added;
  }
  if (headlen > 0)
    queue_copy (q, head, headlen);
  if (bodylen > 0)
    queue_copy (q, body, bodylen);
  assert (q->tail->next == NULL);
  return 0;
}

/* The head chunk has been sent entirely: drop it, or rewind it when it is
 * also the tail so it is filled again from the start. */
static void
queue_pop_sent (struct out_queue *q)
{
  struct out_chunk *k = q->head;

  assert (k->start == k->end);
  if (k == q->tail) {
    k->start = k->end = 0;
    return;
  }
  q->head = k->next;
  chunk_put (q, k);
}

const uint8_t *
out_queue_front (struct out_queue *q, size_t *len)
{
  assert (q->pending > 0);
  while (q->head->start == q->head->end)
    queue_pop_sent (q);
  *len = q->head->end - q->head->start;
  return q->head->bytes + q->head->start;
}

void
out_queue_consume (struct out_queue *q, size_t n)
{
  struct out_chunk *k = q->head;

  assert (n <= k->end - k->start);
  k->start += n;
  q->pending -= n;
  if (k->start == k->end)
    queue_pop_sent (q);
}

static void
chunks_free (struct out_chunk *k)
{
  struct out_chunk *next;

  for (; k != NULL; k = next) {
    next = k->next;
    free (k);
  }
}

void
out_queue_free (struct out_queue *q)
{
  chunks_free (q->head);
  chunks_free (q->spare);
  memset (q, 0, sizeof *q);
}
