/* SPDX-License-Identifier: BSD-3-Clause */
/* stm integration tests: the reference the receiver's HASHES are checked
 * against.  It computes block hashes the way docs/protocol.md
 * ("Comparing") defines them, through nettle's own UMAC-128 interface
 * rather than the GnuTLS one stm uses, so a mistake in stm's key, nonce
 * or unit handling shows as a mismatch.
 *
 *   umac-units KEY-HEX OFFSET UNIT < BYTES
 *
 * prints, in hex, one line per unit of the bytes on stdin, which are the
 * range of the disk starting at OFFSET: UMAC-128 of the unit, with the
 * 16-byte key KEY-HEX and the nonce made of the unit's offset (8 bytes,
 * big-endian) and 8 zero bytes.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/umac.h>

int
main (int argc, char **argv)
{
  uint8_t key[16], nonce[16], tag[16];
  struct umac128_ctx ctx;

  if (argc != 4 || strlen (argv[1]) != 32) {
    fprintf (stderr, "usage: umac-units KEY-HEX(32 digits) OFFSET UNIT < BYTES\n");
    return 2;
  }
  for (int i = 0; i < 16; i++) {
    unsigned v;
    if (sscanf (argv[1] + 2 * i, "%2x", &v) != 1)
      return 2;
    key[i] = (uint8_t) v;
  }
  uint64_t offset = strtoull (argv[2], NULL, 10);
  size_t unit = strtoul (argv[3], NULL, 10);
  uint8_t *buf = malloc (unit);
  if (unit == 0 || buf == NULL)
    return 2;
  umac128_set_key (&ctx, key);
  for (;;) {
    size_t n = fread (buf, 1, unit, stdin);
    if (n == 0)
      break;
    memset (nonce, 0, sizeof nonce);
    for (int i = 0; i < 8; i++)
      nonce[i] = (uint8_t) (offset >> (56 - 8 * i));
    umac128_set_nonce (&ctx, sizeof nonce, nonce);
    umac128_update (&ctx, n, buf);
    umac128_digest (&ctx, sizeof tag, tag);
    for (int i = 0; i < 16; i++)
      printf ("%02x", tag[i]);
    printf ("\n");
    offset += n;
    if (n < unit)
      break;
  }
  free (buf);
  return 0;
}
