/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: keyed block hashes, UMAC-128 (see block_hash.h for the choice). */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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

/* The nonce of the unit at offset: its offset, big-endian, then zeroes.
 * Both ends hash a unit with the same nonce, which is what makes their
 * tags comparable. */
static void
unit_nonce (uint64_t offset, uint8_t nonce[BLOCK_HASH_NONCE_LEN])
{
  memset (nonce, 0, BLOCK_HASH_NONCE_LEN);
  for (int i = 0; i < 8; i++)
    nonce[i] = (uint8_t) (offset >> (56 - 8 * i));
}

int
block_hash_units (const uint8_t key[WIRE_HASH_KEY_LEN], uint64_t offset,
                  const void *buf, uint32_t len, uint32_t unit, uint8_t *out,
                  char *errbuf, size_t errlen)
{
  const uint8_t *p = buf;
  uint8_t nonce[BLOCK_HASH_NONCE_LEN];
  gnutls_hmac_hd_t h;
  int r;

  assert (unit > 0);
  r = gnutls_hmac_init (&h, GNUTLS_MAC_UMAC_128, key, WIRE_HASH_KEY_LEN);
  if (r < 0) {
    snprintf (errbuf, errlen, "cannot start UMAC-128: %s", gnutls_strerror (r));
    return -1;
  }
  for (uint32_t pos = 0; pos < len; pos += unit) {
    uint32_t n = len - pos < unit ? len - pos : unit;
    unit_nonce (offset + pos, nonce);
    gnutls_hmac_set_nonce (h, nonce, sizeof nonce);
    if ((r = gnutls_hmac (h, p + pos, n)) < 0)
      break;
    gnutls_hmac_output (h, out);
    out += WIRE_HASH_LEN;
  }
  gnutls_hmac_deinit (h, NULL);
  if (r < 0) {
    snprintf (errbuf, errlen, "cannot hash %" PRIu32 " bytes at offset %" PRIu64 ": %s",
              len, offset, gnutls_strerror (r));
    return -1;
  }
  return 0;
}
