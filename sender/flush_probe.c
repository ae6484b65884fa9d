/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: timing a flush of the source (see flush_probe.h). */
#include <config.h>

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "clock.h"
#include "flush_probe.h"
#include "nbd_watch.h"
#include "source_handle.h"

struct flush_probe {
  struct nbd_handle *nbd;
  int can_flush;
  struct nbd_watch watch;
  flush_probe_cb *cb;
  void *opaque;
  unsigned issued;               /* flushes issued in this measurement */
  unsigned completed;            /* and completed (set by libnbd) */
  int error;                     /* the first failed flush's errno */
  uint64_t second_start_ns;
};

struct flush_probe *
flush_probe_open (const char *uri, char *errbuf, size_t errlen)
{
  struct flush_probe *p = calloc (1, sizeof *p);

  if (p == NULL) {
    snprintf (errbuf, errlen, "out of memory");
    return NULL;
  }
  p->nbd = source_handle_create ("stm-send-flush-probe", errbuf, errlen);
  if (p->nbd == NULL) {
    free (p);
    return NULL;
  }
  if (nbd_connect_uri (p->nbd, uri) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    nbd_close (p->nbd);
    free (p);
    return NULL;
  }
  p->can_flush = nbd_can_flush (p->nbd) == 1;
  return p;
}

void
flush_probe_close (struct flush_probe *p)
{
  if (p == NULL)
    return;
  nbd_watch_stop (&p->watch);
  nbd_shutdown (p->nbd, 0);
  nbd_close (p->nbd);
  free (p);
}

bool
flush_probe_busy (const struct flush_probe *p)
{
  return p->watch.started;
}

void
flush_probe_abandon (struct flush_probe *p)
{
  if (p != NULL)
    nbd_watch_stop (&p->watch);
}

/* libnbd's completion callback: only note it, inside libnbd. */
static int
flush_completed (void *opaque, int *error)
{
  struct flush_probe *p = opaque;

  if (*error != 0 && p->error == 0)
    p->error = *error;
  p->completed++;
  return 1;
}

static int
issue_flush (struct flush_probe *p)
{
  nbd_completion_callback done = { .callback = flush_completed, .user_data = p };

  if (nbd_aio_flush (p->nbd, done, 0) == -1)
    return -1;
  p->issued++;
  return 0;
}

static void
finish (struct flush_probe *p, uint64_t ns, const char *why)
{
  nbd_watch_stop (&p->watch);
  p->cb (p->opaque, ns, why);
}

/* The loop let libnbd make progress: go on when a flush has completed. */
static void
on_progress (void *opaque, bool ok)
{
  struct flush_probe *p = opaque;
  char why[256];

  if (!ok) {
    snprintf (why, sizeof why, "%s", nbd_get_error ());
    finish (p, UINT64_MAX, why);
    return;
  }
  if (p->completed < p->issued)
    return;
  if (p->error != 0) {
    snprintf (why, sizeof why, "the flush failed: %s", strerror (p->error));
    finish (p, UINT64_MAX, why);
    return;
  }
  if (p->issued == 1) {
    p->second_start_ns = time_monotonic_ns ();
    if (issue_flush (p) == -1) {
      snprintf (why, sizeof why, "%s", nbd_get_error ());
      finish (p, UINT64_MAX, why);
    }
    return;
  }
  finish (p, time_monotonic_ns () - p->second_start_ns, NULL);
}

int
flush_probe_start (struct flush_probe *p, struct ev_loop *loop,
                   flush_probe_cb *cb, void *opaque, char *why, size_t whylen)
{
  assert (!p->watch.started);
  if (!p->can_flush)
    return 1;
  p->cb = cb;
  p->opaque = opaque;
  p->issued = p->completed = 0;
  p->error = 0;
  if (issue_flush (p) == -1) {
    snprintf (why, whylen, "%s", nbd_get_error ());
    return -1;
  }
  nbd_watch_start (&p->watch, loop, p->nbd, on_progress, p);
  return 0;
}
