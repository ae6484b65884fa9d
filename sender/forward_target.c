/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: where a forward flip sends the guest, and having the filter
 * connect there before the freeze.
 *
 * The URI is --flip forward=URI as given, or the one the receiver
 * announces for its export (EXPORT, as soon as the export serves, behind
 * its gate; COMMITTED repeats it), with this host's credentials added
 * (forward_target_uri).  A FLIP forward would open that connection, TLS
 * handshake included, while the guest is frozen; PRECONNECT has the filter
 * open it ahead of the freeze instead, so that the flip has nothing slow
 * left to do and costs the guest no more than a fence flip.  It is a
 * help, never a condition: if PRECONNECT fails, or the URI at the flip is
 * another, FLIP connects by itself as before (its reply says which,
 * preconnected=0|1, and the flip event carries it).
 *
 * PRECONNECT is only sent while the source is not frozen: the filter
 * reads no other command of this connection until it has connected, and
 * nothing may wait behind it while guest writes are held.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_proto.h"
#include "forward_target.h"
#include "log.h"

/* Append s to the URI being built, percent-encoding what is not safe in a
 * query value.  -1 if it does not fit. */
static int
uri_append_encoded (char *uri, size_t len, const char *s)
{
  size_t n = strlen (uri);
  for (; *s; s++) {
    unsigned char c = (unsigned char) *s;
    int w;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr ("-._~/", c))
      w = snprintf (uri + n, len - n, "%c", c);
    else
      w = snprintf (uri + n, len - n, "%%%02X", c);
    if (w < 0 || (size_t) w >= len - n)
      return -1;
    n += (size_t) w;
  }
  return 0;
}

/* The PSK identity to use: --tls-user, or the first in the file. */
static int
psk_identity (const struct sender_options *o, char *user, size_t len)
{
  return tls_psk_file_identity (o->tls.psk_file, o->tls.psk_user, user, len);
}

/* The receiver announces its export without credentials
 * ("nbds://HOST:PORT/"), since the files it names would be the
 * destination's.  The filter connects from this host, so add ours: the PSK
 * identity and file, or the certificate directory (libnbd looks there for
 * ca-cert.pem, client-cert.pem and client-key.pem, which is our --tls-certs
 * layout), as absolute paths because nbdkit does not share our working
 * directory.  A plain nbd:// URI (the receiver runs --insecure) is used as
 * it is.  -1 after migration_fail. */
int
forward_target_uri (struct migration *m, const char *text, size_t text_len,
                    char *uri, size_t len)
{
  const struct sender_options *o = m->opts;
  char given[WIRE_MAX_TEXT + 1], path[PATH_MAX], user[256];

  snprintf (given, sizeof given, "%.*s", (int) text_len, text);
  uri[0] = '\0';
  if (given[0] == '\0' || strncmp (given, "nbds://", 7) != 0 ||
      strchr (given, '?') != NULL || strchr (given, '@') != NULL) {
    snprintf (uri, len, "%s", given);
    return 0;
  }
  if (o->tls.mode == TLS_MODE_INSECURE) {
    migration_fail (m, "cannot flip the source (forward): the receiver at %s serves "
                  "the image with TLS (%s) but stm-send runs --insecure and has "
                  "no credentials for it; give --flip forward=URI", o->dest, given);
    return -1;
  }
  const char *file = o->tls.mode == TLS_MODE_PSK ? o->tls.psk_file : o->tls.certs_dir;
  if (realpath (file, path) == NULL) {
    migration_fail (m, "cannot flip the source (forward): cannot resolve %s: %s",
                  file, strerror (errno));
    return -1;
  }
  int r;
  if (o->tls.mode == TLS_MODE_PSK) {
    if (psk_identity (o, user, sizeof user) == -1) {
      migration_fail (m, "cannot flip the source (forward): cannot read a PSK "
                    "identity from %s", o->tls.psk_file);
      return -1;
    }
    r = snprintf (uri, len, "nbds://");
    r = r < 0 || uri_append_encoded (uri, len, user) == -1 ? -1 : 0;
    if (r == 0) {
      size_t n = strlen (uri);
      r = snprintf (uri + n, len - n, "@%s?tls-psk-file=", given + 7);
      r = r < 0 || (size_t) r >= len - n ? -1 : 0;
    }
  }
  else {
    r = snprintf (uri, len, "%s?tls-certificates=", given);
    r = r < 0 || (size_t) r >= len ? -1 : 0;
  }
  if (r == 0)
    r = uri_append_encoded (uri, len, path);
  if (r == -1) {
    migration_fail (m, "cannot flip the source (forward): the URI for %s is too long",
                  given);
    return -1;
  }
  return 0;
}

static void
preconnect_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  char filter[PATH_MAX + 64];

  if (r->ok || migration_ended (m) || tag != m->ctl_epoch)
    return;
  /* Not fatal: FLIP connects by itself, inside the freeze. */
  d->preconnect_uri[0] = '\0';
  log_warning ("%s could not connect to the forward destination ahead of the "
               "flip (%s); the source keeps tracking, and the flip will connect "
               "while the guest is frozen",
               migration_disk_filter (d, filter, sizeof filter), r->error);
}

void
forward_target_prepare (struct migration_disk *d, const char *uri)
{
  struct migration *m = d->m;

  if (m->opts->flip != FLIP_FORWARD || uri[0] == '\0' || migration_ended (m) ||
      m->cut.frozen || m->cut.flipped || m->cut.flip_in_flight ||
      m->phase == PHASE_FAILING || control_channel_is_broken (d->ctl))
    return;
  if (strcmp (uri, d->preconnect_uri) == 0)
    return;                     /* asked already, on this connection */
  snprintf (d->preconnect_uri, sizeof d->preconnect_uri, "%s", uri);
  control_channel_preconnect (d->ctl, uri, preconnect_replied, d, m->ctl_epoch);
}

void
forward_target_on_export (struct migration *m, const struct wire_msg *msg)
{
  /* Each disk's export is its own (the header's index is the HELLO's,
   * which is ours); an explicit --flip forward=URI wins over what the
   * receiver announces. */
  if (m->opts->flip != FLIP_FORWARD || m->opts->forward_uri != NULL ||
      msg->disk >= m->ndisks)
    return;
  struct migration_disk *d = &m->disks[msg->disk];
  if (forward_target_uri (m, msg->u.export_uri.text, msg->u.export_uri.text_len,
                          d->flip_uri, sizeof d->flip_uri) == -1)
    return;
  /* Every EXPORT announces a server that has just started listening, even
   * at a URI asked for before (a superseded copy's nbdkit is replaced on
   * the same port), so ask again: the filter answers at once if what it
   * holds for that URI is still usable, and connects afresh if not. */
  d->preconnect_uri[0] = '\0';
  forward_target_prepare (d, d->flip_uri);
}
