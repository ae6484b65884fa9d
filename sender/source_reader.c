/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: libnbd asynchronous reads in a libev loop (see
 * source_reader.h).
 *
 * The handle is driven by the loop through nbd_watch.h.  libnbd's
 * completion callbacks only mark a slot done.  The slots are delivered
 * afterwards, in issue order, outside libnbd, so the caller may do
 * anything in its callback, including stopping the reader.
 *
 * Block status: one base:allocation request at a time, for the range the
 * caller is about to read (at most STATUS_MAX_QUERY bytes, less where the
 * source is finely fragmented: see status_query).  Its answer is
 * kept as a short map (at most STATUS_MAP_MAX runs) that later calls walk
 * forward; a zero run becomes a slot that needs no read and is complete at
 * once, delivered in order with the reads through on_zero.  The map is
 * only trusted within a pass: source_reader_forget_allocation (called when
 * a pass begins) drops it, and an answer to a request made before that is
 * ignored.  Within a pass a stale answer is as harmless as a stale read:
 * the filter marks a block dirty after a write completes, so a block
 * written after the question is sent again in the next pass.
 *
 * Mirroring (docs/architecture.md, "Mirroring") adds a clock: the mirror
 * ring's position the caller sampled before issuing (source_reader_clock).
 * A read carries the clock of its issue; a zero slot carries the clock of
 * the block status request its run came from, since that is when the
 * source was asked.  A written block is no longer dirty when its write is
 * mirrored, so a stale zero run is no longer harmless: it is used only
 * while no record at or after its clock has been sent (the caller's
 * floor), and only if no read already issued carries a later clock
 * (slots are delivered in issue order, so their clocks must not go
 * back); otherwise the source is asked again.  The request in flight
 * holds the oldest clock (source_reader_oldest_clock), so the records its
 * answer may be placed before stay unsent until the answer is used.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "source_handle.h"
#include "nbd_watch.h"
#include "source_reader.h"

/* Largest range one block status request asks about, and the most runs of
 * an answer kept; the rest is asked for again when reached. */
#define STATUS_MAX_QUERY (1024u * 1024 * 1024)
/* The smallest range asked about once answers overflow the map. */
#define STATUS_MIN_QUERY (1024u * 1024)
#define STATUS_MAP_MAX 256

struct alloc_run {
  uint64_t offset, length;
  bool zero;
};

struct read_slot {
  struct source_reader *reader;
  uint64_t offset;
  uint32_t length;
  bool done;
  int err;
  void *buf;
  bool zero;                    /* a zero range: no read, length in zlen */
  uint64_t zlen;
  uint64_t clock;               /* the mirror clock it is placed at */
};

struct source_reader {
  struct nbd_handle *nbd;
  uint64_t size;
  struct ev_loop *loop;
  struct nbd_watch watch;        /* the handle on the loop */
  bool started;
  const struct source_reader_callbacks *cb;
  void *opaque;
  /* A ring: head is the oldest issued read, count how many are issued. */
  struct read_slot slots[SOURCE_READER_SLOTS];
  unsigned head, count;
  /* Delivers zero slots that no socket event would announce. */
  ev_timer kick;

  /* base:allocation: the map of the last answer, and the request on the
   * way (staged into pending_map until it completes). */
  bool has_block_status;
  struct alloc_run map[STATUS_MAP_MAX];
  unsigned map_len;
  bool status_in_flight, status_done;
  /* Mirroring: the clock for what is issued next, how far records have
   * been sent (a zero run asked about before that is stale), and the
   * clocks of the map and of the request in flight. */
  uint64_t clock, floor;
  uint64_t map_clock, status_req_clock;
  uint64_t issued_clock;         /* the latest clock a slot was issued at */
  /* How much to ask about next.  A server's answer costs it in proportion
   * to the runs in the range (nbdkit's file plugin seeks from hole to
   * data to hole), and we keep only STATUS_MAP_MAX runs: asking about a
   * whole gigabyte of a finely fragmented file for 256 runs each time
   * made it rescan the same gigabyte over and over.  So the range shrinks
   * to what the map held when an answer overflows it, and doubles again
   * (up to STATUS_MAX_QUERY) when one does not. */
  uint64_t status_query;
  bool pending_full;                  /* the answer had more runs than fit */
  int status_err;
  uint64_t status_gen, status_req_gen;
  struct alloc_run pending_map[STATUS_MAP_MAX];
  unsigned pending_len;
};

struct source_reader *
source_reader_open (const char *uri, char *errbuf, size_t errlen)
{
  struct source_reader *r = calloc (1, sizeof *r);
  if (r == NULL) {
    snprintf (errbuf, errlen, "out of memory");
    return NULL;
  }
  r->status_query = STATUS_MAX_QUERY;
  for (unsigned i = 0; i < SOURCE_READER_SLOTS; i++) {
    r->slots[i].reader = r;
    r->slots[i].buf = malloc (SOURCE_READER_CHUNK);
    if (r->slots[i].buf == NULL) {
      snprintf (errbuf, errlen, "out of memory for read buffers");
      source_reader_close (r);
      return NULL;
    }
  }
  r->nbd = source_handle_create ("stm-send-source", errbuf, errlen);
  if (r->nbd == NULL) {
    source_reader_close (r);
    return NULL;
  }
  /* libnbd zeroes every read buffer before reading into it, in case a
   * server answers short; the read either succeeds in full or fails and
   * the buffer is then not used, so that memset is pure cost (it was a
   * visible share of stm-send's time in a profile of the full pass). */
  nbd_set_pread_initialize (r->nbd, false);
  /* Ask for the allocation map, so holes need not be read.  A server
   * without it is fine: everything is read then. */
  if (nbd_add_meta_context (r->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    source_reader_close (r);
    return NULL;
  }
  if (nbd_connect_uri (r->nbd, uri) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    source_reader_close (r);
    return NULL;
  }
  int64_t size = nbd_get_size (r->nbd);
  if (size < 0) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    source_reader_close (r);
    return NULL;
  }
  r->size = size;
  r->has_block_status =
    nbd_can_meta_context (r->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  return r;
}

bool
source_reader_has_block_status (const struct source_reader *r)
{
  return r->has_block_status;
}

void
source_reader_forget_allocation (struct source_reader *r)
{
  r->map_len = 0;
  r->status_gen++;
}

uint64_t
source_reader_size (const struct source_reader *r)
{
  return r->size;
}

/* Give completed slots back, oldest first, then let the caller refill. */
static void
deliver (struct source_reader *r)
{
  bool any = false;
  while (r->started && r->count > 0 && r->slots[r->head].done) {
    struct read_slot *s = &r->slots[r->head];
    /* A read the caller is not ready for stays first in line (with its
     * buffer), and everything after it waits behind it. */
    if (!s->zero && s->err == 0 && r->cb->can_deliver != NULL &&
        !r->cb->can_deliver (r->opaque, s->offset, s->length))
      break;
    s->done = false;
    r->head = (r->head + 1) % SOURCE_READER_SLOTS;
    r->count--;
    any = true;
    if (s->zero)
      r->cb->on_zero (r->opaque, s->offset, s->zlen, s->clock);
    else
      r->cb->on_read (r->opaque, s->offset, s->length, s->buf, s->err,
                      s->clock);
  }
  /* A block status answer arrived: install it (unless a new pass began
   * since it was asked) and let the caller go on issuing. */
  if (r->started && r->status_done) {
    r->status_done = false;
    r->status_in_flight = false;
    if (r->status_err != 0 || r->pending_len == 0) {
      /* The source could not say (or said nothing usable, which asking
       * again would not change): read everything from now on. */
      r->has_block_status = false;
    }
    else if (r->status_req_gen == r->status_gen) {
      memcpy (r->map, r->pending_map, r->pending_len * sizeof r->map[0]);
      r->map_len = r->pending_len;
      r->map_clock = r->status_req_clock;
    }
    if (r->pending_len > 0) {
      if (r->pending_full) {
        const struct alloc_run *last = &r->pending_map[r->pending_len - 1];
        uint64_t held = last->offset + last->length - r->pending_map[0].offset;
        r->status_query = held > STATUS_MIN_QUERY ? held : STATUS_MIN_QUERY;
      }
      else if (r->status_query < STATUS_MAX_QUERY / 2)
        r->status_query *= 2;
      else
        r->status_query = STATUS_MAX_QUERY;
    }
    any = true;
  }
  if (any && r->started)
    r->cb->on_slots_free (r->opaque);
}

static void
kick_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  deliver (w->data);
}

static void
fail (struct source_reader *r)
{
  const char *why = nbd_get_error ();
  source_reader_stop (r);
  r->cb->on_failure (r->opaque, why ? why : "the NBD connection failed");
}

static void
on_progress (void *opaque, bool ok)
{
  struct source_reader *r = opaque;

  if (!ok) {
    fail (r);
    return;
  }
  deliver (r);
}

void
source_reader_start (struct source_reader *r, struct ev_loop *loop,
                     const struct source_reader_callbacks *cb, void *opaque)
{
  r->loop = loop;
  r->cb = cb;
  r->opaque = opaque;
  nbd_watch_start (&r->watch, loop, r->nbd, on_progress, r);
  ev_timer_init (&r->kick, kick_cb, 0., 0.);
  r->kick.data = r;
  r->started = true;
}

bool
source_reader_can_issue (const struct source_reader *r)
{
  return r->started && r->count < SOURCE_READER_SLOTS;
}

static int
read_done (void *user_data, int *error)
{
  struct read_slot *s = user_data;
  s->done = true;
  s->err = *error;
  return 1;             /* retire the command: nothing else to collect */
}

/* A request issued on a connection that turns out dead (its server
 * gone) fails inside the call that issues it: its completion has run,
 * and with nothing in flight no socket event will come to deliver it
 * (nbd_watch polls only while something is in flight).  The kick
 * delivers it from the loop, so the caller hears of the failure. */
static void
kick_if_dead (struct source_reader *r)
{
  if (nbd_aio_is_dead (r->nbd) && !ev_is_active (&r->kick))
    ev_timer_start (r->loop, &r->kick);
}

int
source_reader_issue (struct source_reader *r, uint64_t offset, uint32_t length,
                     char *errbuf, size_t errlen)
{
  if (!source_reader_can_issue (r) || length == 0 || length > SOURCE_READER_CHUNK) {
    snprintf (errbuf, errlen, "internal error: bad read request");
    errno = EINVAL;
    return -1;
  }
  unsigned i = (r->head + r->count) % SOURCE_READER_SLOTS;
  struct read_slot *s = &r->slots[i];
  s->offset = offset;
  s->length = length;
  s->zero = false;
  s->done = false;
  s->err = 0;
  s->clock = r->clock;
  if (r->clock > r->issued_clock)
    r->issued_clock = r->clock;
  nbd_completion_callback cb = { .callback = read_done, .user_data = s };
  if (nbd_aio_pread (r->nbd, s->buf, length, offset, cb, 0) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    return -1;
  }
  r->count++;
  kick_if_dead (r);
  return 0;
}

/* Collect one block status answer: (length, flags) pairs from offset on.
 * Neighbouring runs of the same kind are merged; runs past the map's
 * capacity are dropped (asked for again when reached). */
static int
status_extent (void *user_data, const char *metacontext, uint64_t offset,
               uint32_t *entries, size_t nr_entries, int *error)
{
  struct source_reader *r = user_data;

  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (size_t i = 0; i + 1 < nr_entries; i += 2) {
    uint64_t len = entries[i];
    bool zero = (entries[i + 1] & LIBNBD_STATE_ZERO) != 0;
    struct alloc_run *last = r->pending_len ? &r->pending_map[r->pending_len - 1] : NULL;

    if (len == 0)
      break;
    if (last && last->zero == zero && last->offset + last->length == offset) {
      last->length += len;
    }
    else {
      if (r->pending_len == STATUS_MAP_MAX) {
        r->pending_full = true;
        break;
      }
      r->pending_map[r->pending_len++] =
        (struct alloc_run) { .offset = offset, .length = len, .zero = zero };
    }
    offset += len;
  }
  return 0;
}

static int
status_done (void *user_data, int *error)
{
  struct source_reader *r = user_data;

  r->status_done = true;
  r->status_err = *error;
  return 1;
}

/* The run of the map holding offset, or NULL. */
static const struct alloc_run *
map_find (const struct source_reader *r, uint64_t offset)
{
  for (unsigned i = 0; i < r->map_len; i++)
    if (offset >= r->map[i].offset && offset - r->map[i].offset < r->map[i].length)
      return &r->map[i];
  return NULL;
}

int64_t
source_reader_issue_range (struct source_reader *r, uint64_t offset,
                           uint64_t maxlen, bool *zero, char *errbuf, size_t errlen)
{
  *zero = false;
  if (!source_reader_can_issue (r) || maxlen == 0) {
    snprintf (errbuf, errlen, "internal error: bad read request");
    errno = EINVAL;
    return -1;
  }
  if (!r->has_block_status || r->cb->on_zero == NULL) {
    uint32_t len = maxlen < SOURCE_READER_CHUNK ? (uint32_t) maxlen : SOURCE_READER_CHUNK;
    if (source_reader_issue (r, offset, len, errbuf, errlen) == -1)
      return -1;
    return len;
  }

  const struct alloc_run *run = map_find (r, offset);
  /* A zero run known from before the last record sent may have been
   * written since, and its write is not dirty if it was mirrored: ask
   * again rather than place zeroes after that record.  Nor may it be
   * placed before a read issued ahead of it: slots are delivered in
   * issue order, and that read's data goes after every record below its
   * clock, so the clocks of what is issued must not go back. */
  if (run != NULL && run->zero &&
      (r->map_clock < r->floor || r->map_clock < r->issued_clock)) {
    source_reader_forget_allocation (r);
    run = NULL;
  }
  if (run == NULL) {
    if (r->status_in_flight)
      return 0;
    uint64_t count = maxlen < r->status_query ? maxlen : r->status_query;
    nbd_extent_callback ecb = { .callback = status_extent, .user_data = r };
    nbd_completion_callback ccb = { .callback = status_done, .user_data = r };
    r->pending_len = 0;
    r->pending_full = false;
    r->status_done = false;
    r->status_err = 0;
    r->status_req_gen = r->status_gen;
    r->status_req_clock = r->clock;
    if (nbd_aio_block_status (r->nbd, count, offset, ecb, ccb, 0) == -1) {
      snprintf (errbuf, errlen, "%s", nbd_get_error ());
      return -1;
    }
    r->status_in_flight = true;
    kick_if_dead (r);
    return 0;
  }

  uint64_t avail = run->offset + run->length - offset;
  if (avail > maxlen)
    avail = maxlen;
  if (!run->zero) {
    uint32_t len = avail < SOURCE_READER_CHUNK ? (uint32_t) avail : SOURCE_READER_CHUNK;
    if (source_reader_issue (r, offset, len, errbuf, errlen) == -1)
      return -1;
    return len;
  }

  /* A zero range: a slot that is complete at once, delivered in order. */
  *zero = true;
  unsigned i = (r->head + r->count) % SOURCE_READER_SLOTS;
  struct read_slot *s = &r->slots[i];
  s->offset = offset;
  s->length = 0;
  s->zero = true;
  s->zlen = avail;
  s->err = 0;
  s->clock = r->map_clock;
  r->issued_clock = r->map_clock;
  s->done = true;
  r->count++;
  if (!ev_is_active (&r->kick))
    ev_timer_start (r->loop, &r->kick);
  return (int64_t) avail;
}

void
source_reader_clock (struct source_reader *r, uint64_t clock, uint64_t floor)
{
  r->clock = clock;
  r->floor = floor;
}

uint64_t
source_reader_oldest_clock (const struct source_reader *r)
{
  uint64_t oldest = r->status_in_flight ? r->status_req_clock : UINT64_MAX;

  /* Zero slots carry their map's clock, which may be older than a read
   * issued before them: look at every slot, not just the first. */
  for (unsigned k = 0; k < r->count; k++) {
    const struct read_slot *s = &r->slots[(r->head + k) % SOURCE_READER_SLOTS];
    if (s->clock < oldest)
      oldest = s->clock;
  }
  return oldest;
}

unsigned
source_reader_in_flight (const struct source_reader *r)
{
  return r->count;
}

void
source_reader_deliver (struct source_reader *r)
{
  if (r->started && !ev_is_active (&r->kick))
    ev_timer_start (r->loop, &r->kick);
}

void
source_reader_stop (struct source_reader *r)
{
  if (!r->started)
    return;
  r->started = false;
  nbd_watch_stop (&r->watch);
  ev_timer_stop (r->loop, &r->kick);
}

void
source_reader_close (struct source_reader *r)
{
  if (r == NULL)
    return;
  source_reader_stop (r);
  if (r->nbd) {
    /* Shut down politely; reads still in flight are simply dropped. */
    nbd_shutdown (r->nbd, 0);
    nbd_close (r->nbd);
  }
  for (unsigned i = 0; i < SOURCE_READER_SLOTS; i++)
    free (r->slots[i].buf);
  free (r);
}
