/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: timing a flush of the source (see flush_probe.h). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>

#include <libnbd.h>

#include "flush_probe.h"
#include "log.h"
#include "source_handle.h"

struct flush_probe {
  struct nbd_handle *nbd;
  int can_flush;
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
  nbd_shutdown (p->nbd, 0);
  nbd_close (p->nbd);
  free (p);
}

uint64_t
flush_probe_measure (struct flush_probe *p, char *errbuf, size_t errlen)
{
  if (!p->can_flush)
    return 0;
  /* FREEZE flushes twice, the guest waiting only for the second, which
   * has what was written during the first.  Do the same and time the
   * second. */
  if (nbd_flush (p->nbd, 0) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    return UINT64_MAX;
  }
  uint64_t start = time_monotonic_ns ();
  if (nbd_flush (p->nbd, 0) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    return UINT64_MAX;
  }
  return time_monotonic_ns () - start;
}
