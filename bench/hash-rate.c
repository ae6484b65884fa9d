/* SPDX-License-Identifier: BSD-3-Clause */
/* stm benchmark: how fast the candidate keyed hashes for block
 * comparison (proto/block_hash.h) hash 64 KiB units on this machine, one
 * core: HMAC-SHA-256, AES-GMAC-128 and UMAC-128 through GnuTLS, and keyed
 * BLAKE2b-256 through libb2 when built with -DHAVE_LIBB2.  Each hashes
 * 512 MiB of random bytes, unit by unit with a fresh nonce or call per
 * unit, as the comparison does.  Built and run by bench/hash-rate.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#ifdef HAVE_LIBB2
#include <blake2.h>
#endif

#define UNIT 65536
#define UNITS 8192

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void
report (const char *name, double seconds)
{
  printf ("%-22s %8.0f MB/s\n", name, (double) UNIT * UNITS / seconds / 1e6);
}

/* A MAC with a nonce per unit (GMAC, UMAC), or none (HMAC). */
static void
mac_units (const char *name, gnutls_mac_algorithm_t alg, size_t keylen,
           size_t noncelen, const uint8_t *buf)
{
  uint8_t key[32] = { 1 }, nonce[16] = { 0 }, out[64];
  gnutls_hmac_hd_t h;

  if (gnutls_hmac_init (&h, alg, key, keylen) < 0) {
    printf ("%-22s unavailable\n", name);
    return;
  }
  double t = now ();
  for (uint64_t i = 0; i < UNITS; i++) {
    if (noncelen > 0) {
      memcpy (nonce, &i, sizeof i);
      gnutls_hmac_set_nonce (h, nonce, noncelen);
    }
    gnutls_hmac (h, buf + i * UNIT, UNIT);
    gnutls_hmac_output (h, out);
  }
  report (name, now () - t);
  gnutls_hmac_deinit (h, NULL);
}

int
main (void)
{
  uint8_t *buf = malloc ((size_t) UNIT * UNITS);

  if (buf == NULL || gnutls_rnd (GNUTLS_RND_NONCE, buf, (size_t) UNIT * UNITS) < 0)
    return 1;
  printf ("keyed hashes of %d units of %d KiB, one core\n", UNITS, UNIT / 1024);
  mac_units ("HMAC-SHA-256", GNUTLS_MAC_SHA256, 32, 0, buf);
  mac_units ("AES-GMAC-128", GNUTLS_MAC_AES_GMAC_128, 16, 12, buf);
  mac_units ("UMAC-128 (stm)", GNUTLS_MAC_UMAC_128, 16, 16, buf);
#ifdef HAVE_LIBB2
  uint8_t key[32] = { 1 }, out[32];
  double t = now ();
  for (size_t i = 0; i < UNITS; i++)
    blake2b (out, buf + i * UNIT, key, sizeof out, UNIT, sizeof key);
  report ("BLAKE2b-256 (libb2)", now () - t);
#else
  printf ("%-22s not built (install libb2-dev)\n", "BLAKE2b-256 (libb2)");
#endif
  free (buf);
  return 0;
}
