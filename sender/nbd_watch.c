/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: a libnbd handle on the libev loop (nbd_watch.h). */
#include <config.h>

#include "nbd_watch.h"

static void
io_cb (struct ev_loop *loop, ev_io *io, int revents)
{
  struct nbd_watch *w = io->data;

  if (((revents & EV_READ) && nbd_aio_notify_read (w->nbd) == -1) ||
      ((revents & EV_WRITE) && nbd_aio_notify_write (w->nbd) == -1)) {
    nbd_watch_stop (w);
    w->on_progress (w->opaque, false);
    return;
  }
  w->on_progress (w->opaque, true);
}

/* Poll in the direction libnbd wants now: it changes with every request
 * issued and every reply read. */
static void
prepare_cb (struct ev_loop *loop, ev_prepare *p, int revents)
{
  struct nbd_watch *w = p->data;
  unsigned dir = nbd_aio_get_direction (w->nbd);
  int events = 0;

  if (dir & LIBNBD_AIO_DIRECTION_READ)
    events |= EV_READ;
  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    events |= EV_WRITE;
  /* With nothing in flight there is nothing to wait for; keeping the
   * watcher off also lets the loop end when everything else is done. */
  if (nbd_aio_in_flight (w->nbd) == 0)
    events = 0;
  if (events != (w->io.events & (EV_READ | EV_WRITE)) || !ev_is_active (&w->io)) {
    ev_io_stop (loop, &w->io);
    if (events) {
      ev_io_set (&w->io, w->io.fd, events);
      ev_io_start (loop, &w->io);
    }
  }
}

void
nbd_watch_start (struct nbd_watch *w, struct ev_loop *loop, struct nbd_handle *nbd,
                 void (*on_progress) (void *opaque, bool ok), void *opaque)
{
  w->loop = loop;
  w->nbd = nbd;
  w->on_progress = on_progress;
  w->opaque = opaque;
  ev_io_init (&w->io, io_cb, nbd_aio_get_fd (nbd), EV_READ);
  w->io.data = w;
  ev_prepare_init (&w->prepare, prepare_cb);
  w->prepare.data = w;
  ev_prepare_start (loop, &w->prepare);
  /* The prepare watcher alone must not keep the loop alive. */
  ev_unref (loop);
  w->started = true;
}

void
nbd_watch_stop (struct nbd_watch *w)
{
  if (!w->started)
    return;
  w->started = false;
  ev_io_stop (w->loop, &w->io);
  /* Undo the ev_unref of nbd_watch_start before stopping the watcher. */
  ev_ref (w->loop);
  ev_prepare_stop (w->loop, &w->prepare);
}
