/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the ordered stage in front of the receiver connection.  See
 * send_stage.h.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "send_stage.h"

/* The room a reservation keeps for its head: a DATA or DATA_ZSTD frame
 * header (WIRE_ENCODE_MAX).  A copied message's head (a HELLO with its
 * disk table, an ABORT with its text) is as long as it is. */
#define RESERVED_HEAD_MAX 64

struct send_stage_entry {
  struct send_stage_entry *next;
  bool reserved;                 /* its message is not made yet */
  size_t headlen;
  void *body;                    /* owned; NULL for none */
  size_t bodylen;
  uint8_t head[];
};

void
send_stage_init (struct send_stage *s)
{
  memset (s, 0, sizeof *s);
}

bool
send_stage_empty (const struct send_stage *s)
{
  return s->first == NULL;
}

static void
append (struct send_stage *s, struct send_stage_entry *e)
{
  e->next = NULL;
  if (s->last != NULL)
    s->last->next = e;
  else
    s->first = e;
  s->last = e;
  s->entries++;
}

static void
entry_free (struct send_stage_entry *e)
{
  free (e->body);
  free (e);
}

int
send_stage_send (struct send_stage *s, send_stage_sink sink, void *opaque,
                 const void *head, size_t headlen, const void *body, size_t bodylen)
{
  struct send_stage_entry *e;

  if (send_stage_empty (s))
    return sink (opaque, head, headlen, body, bodylen);
  e = calloc (1, sizeof *e + headlen);
  if (e == NULL)
    return -1;
  if (body != NULL && bodylen > 0) {
    e->body = malloc (bodylen);
    if (e->body == NULL) {
      free (e);
      return -1;
    }
    memcpy (e->body, body, bodylen);
    e->bodylen = bodylen;
  }
  memcpy (e->head, head, headlen);
  e->headlen = headlen;
  append (s, e);
  s->bytes += headlen + e->bodylen;
  return 0;
}

struct send_stage_entry *
send_stage_reserve (struct send_stage *s, uint64_t *gen)
{
  struct send_stage_entry *e = calloc (1, sizeof *e + RESERVED_HEAD_MAX);

  if (e == NULL)
    return NULL;
  e->reserved = true;
  append (s, e);
  s->reserved++;
  *gen = s->gen;
  return e;
}

/* Send the filled messages at the front, up to the first reservation. */
static int
flush (struct send_stage *s, send_stage_sink sink, void *opaque)
{
  struct send_stage_entry *e;

  while ((e = s->first) != NULL && !e->reserved) {
    if (sink (opaque, e->head, e->headlen, e->body, e->bodylen) == -1)
      return -1;
    s->first = e->next;
    if (s->first == NULL)
      s->last = NULL;
    s->entries--;
    s->bytes -= e->headlen + e->bodylen;
    entry_free (e);
  }
  return 0;
}

int
send_stage_fill (struct send_stage *s, struct send_stage_entry *e, uint64_t gen,
                 const void *head, size_t headlen, void *body, size_t bodylen,
                 send_stage_sink sink, void *opaque)
{
  if (gen != s->gen) {
    free (body);
    return 0;
  }
  assert (e->reserved && headlen <= RESERVED_HEAD_MAX);
  memcpy (e->head, head, headlen);
  e->headlen = headlen;
  e->body = body;
  e->bodylen = bodylen;
  e->reserved = false;
  s->reserved--;
  s->bytes += headlen + bodylen;
  return flush (s, sink, opaque);
}

void
send_stage_clear (struct send_stage *s)
{
  struct send_stage_entry *e, *next;

  for (e = s->first; e != NULL; e = next) {
    next = e->next;
    entry_free (e);
  }
  s->first = s->last = NULL;
  s->entries = s->reserved = 0;
  s->bytes = 0;
  s->gen++;
}
