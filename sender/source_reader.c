/* stm-send: libnbd asynchronous reads in a libev loop (see
 * source_reader.h).
 *
 * libnbd tells us which way its socket must be polled
 * (nbd_aio_get_direction); that can change after any call, so an ev_prepare
 * watcher re-arms the ev_io watcher just before the loop blocks.  When the
 * socket is ready we call nbd_aio_notify_read/write; libnbd then runs
 * completion callbacks, which only mark the slot done.  The slots are
 * delivered afterwards, in issue order, outside libnbd, so the caller may
 * do anything in its callback, including stopping the reader.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "source_reader.h"

struct read_slot {
  struct source_reader *reader;
  uint64_t offset;
  uint32_t length;
  bool done;
  int err;
  void *buf;
};

struct source_reader {
  struct nbd_handle *nbd;
  uint64_t size;
  struct ev_loop *loop;
  ev_io io;
  ev_prepare prepare;
  bool started;
  const struct source_reader_callbacks *cb;
  void *opaque;
  /* A ring: head is the oldest issued read, count how many are issued. */
  struct read_slot slots[SOURCE_READER_SLOTS];
  unsigned head, count;
};

struct source_reader *
source_reader_open (const char *uri, char *errbuf, size_t errlen)
{
  struct source_reader *r = calloc (1, sizeof *r);
  if (r == NULL) {
    snprintf (errbuf, errlen, "out of memory");
    return NULL;
  }
  for (unsigned i = 0; i < SOURCE_READER_SLOTS; i++) {
    r->slots[i].reader = r;
    r->slots[i].buf = malloc (SOURCE_READER_CHUNK);
    if (r->slots[i].buf == NULL) {
      snprintf (errbuf, errlen, "out of memory for read buffers");
      source_reader_close (r);
      return NULL;
    }
  }
  r->nbd = nbd_create ();
  if (r->nbd == NULL) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    source_reader_close (r);
    return NULL;
  }
  nbd_set_handle_name (r->nbd, "stm-send-source");
  /* Allow tls-psk-file= and similar local-file parameters in the URI. */
  nbd_set_uri_allow_local_file (r->nbd, true);
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
  return r;
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
    s->done = false;
    r->head = (r->head + 1) % SOURCE_READER_SLOTS;
    r->count--;
    any = true;
    r->cb->on_read (r->opaque, s->offset, s->length, s->buf, s->err);
  }
  if (any && r->started)
    r->cb->on_slots_free (r->opaque);
}

static void
fail (struct source_reader *r)
{
  const char *why = nbd_get_error ();
  source_reader_stop (r);
  r->cb->on_failure (r->opaque, why ? why : "the NBD connection failed");
}

static void
io_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct source_reader *r = w->data;
  if ((revents & EV_READ) && nbd_aio_notify_read (r->nbd) == -1) {
    fail (r);
    return;
  }
  if ((revents & EV_WRITE) && nbd_aio_notify_write (r->nbd) == -1) {
    fail (r);
    return;
  }
  deliver (r);
}

/* Poll in the direction libnbd wants now: it changes with every request
 * issued and every reply read. */
static void
prepare_cb (struct ev_loop *loop, ev_prepare *w, int revents)
{
  struct source_reader *r = w->data;
  unsigned dir = nbd_aio_get_direction (r->nbd);
  int events = 0;
  if (dir & LIBNBD_AIO_DIRECTION_READ)
    events |= EV_READ;
  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    events |= EV_WRITE;
  /* With nothing in flight there is nothing to wait for; keeping the
   * watcher off also lets the loop end when everything else is done. */
  if (nbd_aio_in_flight (r->nbd) == 0 && r->count == 0)
    events = 0;
  if (events != (r->io.events & (EV_READ | EV_WRITE)) || !ev_is_active (&r->io)) {
    ev_io_stop (loop, &r->io);
    if (events) {
      ev_io_set (&r->io, r->io.fd, events);
      ev_io_start (loop, &r->io);
    }
  }
}

void
source_reader_start (struct source_reader *r, struct ev_loop *loop,
                     const struct source_reader_callbacks *cb, void *opaque)
{
  r->loop = loop;
  r->cb = cb;
  r->opaque = opaque;
  ev_io_init (&r->io, io_cb, nbd_aio_get_fd (r->nbd), EV_READ);
  r->io.data = r;
  ev_prepare_init (&r->prepare, prepare_cb);
  r->prepare.data = r;
  ev_prepare_start (loop, &r->prepare);
  /* The prepare watcher alone must not keep the loop alive. */
  ev_unref (loop);
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
  s->done = false;
  s->err = 0;
  nbd_completion_callback cb = { .callback = read_done, .user_data = s };
  if (nbd_aio_pread (r->nbd, s->buf, length, offset, cb, 0) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    return -1;
  }
  r->count++;
  return 0;
}

unsigned
source_reader_in_flight (const struct source_reader *r)
{
  return r->count;
}

void
source_reader_stop (struct source_reader *r)
{
  if (!r->started)
    return;
  r->started = false;
  ev_io_stop (r->loop, &r->io);
  ev_ref (r->loop);
  ev_prepare_stop (r->loop, &r->prepare);
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
