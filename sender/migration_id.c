/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: deriving the migration id (see migration_id.h). */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "migration_id.h"

#define INSTANCE_HEX_LEN 32

static bool
is_instance_id (const char *s)
{
  return strlen (s) == INSTANCE_HEX_LEN &&
    strspn (s, "0123456789abcdef") == INSTANCE_HEX_LEN;
}

int
migration_id_derive (const struct migration_id_inputs *in,
                     uint8_t id[WIRE_MIGRATION_ID_LEN])
{
  if (!is_instance_id (in->filter_instance))
    return -1;

  /* Fields are separated by newlines.  Only the destination (last, with
   * its length given) could contain one, so two different inputs never
   * produce the same text. */
  char text[1024];
  int n = snprintf (text, sizeof text,
                    "stm migration id v2\ninstance=%s\nsize=%" PRIu64
                    "\ndest=%zu:%s\n",
                    in->filter_instance, in->image_size,
                    strlen (in->dest), in->dest);
  if (n < 0 || (size_t) n >= sizeof text)
    return -1;

  uint8_t digest[32];
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, text, n, digest) < 0)
    return -1;
  memcpy (id, digest, WIRE_MIGRATION_ID_LEN);
  return 0;
}

int
migration_id_derive_group (const struct migration_id_disk *disks, size_t ndisks,
                           const char *dest, uint8_t id[WIRE_MIGRATION_ID_LEN])
{
  /* Names are [A-Za-z0-9._-] and instance ids hex digits, so no field
   * holds a newline but the destination, whose length is given. */
  char text[4096];
  size_t n = 0;
  int w = snprintf (text, sizeof text, "stm migration group id v1\ndisks=%zu\n", ndisks);
  if (w < 0 || ndisks == 0)
    return -1;
  n = (size_t) w;
  for (size_t i = 0; i < ndisks; i++) {
    if (!is_instance_id (disks[i].filter_instance) ||
        strchr (disks[i].name, '\n') != NULL)
      return -1;
    w = snprintf (text + n, sizeof text - n, "disk=%s\ninstance=%s\nsize=%" PRIu64 "\n",
                  disks[i].name, disks[i].filter_instance, disks[i].image_size);
    if (w < 0 || (size_t) w >= sizeof text - n)
      return -1;
    n += (size_t) w;
  }
  w = snprintf (text + n, sizeof text - n, "dest=%zu:%s\n", strlen (dest), dest);
  if (w < 0 || (size_t) w >= sizeof text - n)
    return -1;
  n += (size_t) w;

  uint8_t digest[32];
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, text, n, digest) < 0)
    return -1;
  memcpy (id, digest, WIRE_MIGRATION_ID_LEN);
  return 0;
}

void
migration_id_hex (const uint8_t id[WIRE_MIGRATION_ID_LEN], char *out)
{
  for (size_t i = 0; i < WIRE_MIGRATION_ID_LEN; i++)
    sprintf (&out[2 * i], "%02x", id[i]);
}
