/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: a libnbd handle driven by the sender's libev loop.
 *
 * libnbd tells which way its socket must be polled
 * (nbd_aio_get_direction), and that can change after any call, so an
 * ev_prepare watcher re-arms an ev_io watcher just before the loop
 * blocks.  When the socket is ready, nbd_aio_notify_read/write lets libnbd
 * make progress and run its completion callbacks; then on_progress runs,
 * outside libnbd, so that its owner can act on what completed.  With
 * nothing in flight the socket is not watched, so an idle handle never
 * keeps the loop running.  Used by the read pipeline (source_reader.c)
 * and the flush probe (flush_probe.c), each on its own handle.
 */
#ifndef STM_SENDER_NBD_WATCH_H
#define STM_SENDER_NBD_WATCH_H

#include <stdbool.h>

#include <ev.h>
#include <libnbd.h>

struct nbd_watch {
  struct ev_loop *loop;
  struct nbd_handle *nbd;
  ev_io io;
  ev_prepare prepare;
  bool started;
  /* After libnbd has made progress (ok), or when a notify call failed
   * (ok false: nbd_get_error says why, and the watch is stopped). */
  void (*on_progress) (void *opaque, bool ok);
  void *opaque;
};

/* Start watching nbd (connected, in the aio ready state) on loop. */
void nbd_watch_start (struct nbd_watch *w, struct ev_loop *loop,
                      struct nbd_handle *nbd,
                      void (*on_progress) (void *opaque, bool ok), void *opaque);
/* Stop watching; harmless if not started. */
void nbd_watch_stop (struct nbd_watch *w);

#endif /* STM_SENDER_NBD_WATCH_H */
