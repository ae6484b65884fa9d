/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: HMAC-SHA-256 block hashes (see block_hash.h for the choice). */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "block_hash.h"

int
block_hash_new_key (uint8_t key[WIRE_HASH_KEY_LEN], char *errbuf, size_t errlen)
{
  int r = gnutls_rnd (GNUTLS_RND_KEY, key, WIRE_HASH_KEY_LEN);

  if (r < 0) {
    snprintf (errbuf, errlen, "cannot draw a hash key: %s", gnutls_strerror (r));
    return -1;
  }
  return 0;
}

int
block_hash_units (const uint8_t key[WIRE_HASH_KEY_LEN], const void *buf,
                  uint32_t len, uint32_t unit, uint8_t *out,
                  char *errbuf, size_t errlen)
{
  const uint8_t *p = buf;

  assert (unit > 0);
  for (uint32_t pos = 0; pos < len; pos += unit) {
    uint32_t n = len - pos < unit ? len - pos : unit;
    int r = gnutls_hmac_fast (GNUTLS_MAC_SHA256, key, WIRE_HASH_KEY_LEN,
                              p + pos, n, out);
    if (r < 0) {
      snprintf (errbuf, errlen, "cannot hash %" PRIu32 " bytes: %s", n,
                gnutls_strerror (r));
      return -1;
    }
    out += WIRE_HASH_LEN;
  }
  return 0;
}
