/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the settings shared by every libnbd handle on the source (see
 * source_handle.h).
 */
#include <config.h>

#include <stdbool.h>
#include <stdio.h>

#include <libnbd.h>

#include "source_handle.h"

struct nbd_handle *
source_handle_create (const char *name, char *errbuf, size_t errlen)
{
  struct nbd_handle *nbd = nbd_create ();

  if (nbd == NULL) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    return NULL;
  }
  nbd_set_handle_name (nbd, name);
  /* Allow tls-psk-file= and similar local-file parameters in the URI. */
  if (nbd_set_uri_allow_local_file (nbd, true) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    nbd_close (nbd);
    return NULL;
  }
  return nbd;
}
