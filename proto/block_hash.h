/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the block hashes both ends of a comparison compute (HASH_REQ and
 * HASHES in wire.h).
 *
 * A hash is UMAC-128 (RFC 4418, GnuTLS over nettle) of one unit of a
 * range under a key the sender draws at random for each connection,
 * with the unit's offset as the nonce.  Why a universal-hash MAC and not
 * a plain hash: the hashes must resist a guest that writes a block
 * chosen to hash like the old one.  Keyed, the guest never learns the
 * key (it crosses only the connection, under TLS), so it can only guess:
 * two different units of up to 64 KiB collide with probability about
 * 2^-120 (four independent UHASH-32 layers).  A key-less hash (SHA-256)
 * would need collision resistance on its own, and the same key with
 * HMAC-SHA-256 is what this was first: measured on 64 KiB units on the
 * machine of docs/performance.md ("Hash comparison"), HMAC-SHA-256 runs at
 * 1.54 GB/s with the CPU's SHA extensions, keyed BLAKE2b-256 (libb2) at
 * 0.80 GB/s, AES-GMAC at 3.5 GB/s and UMAC-128 at 6.2-7.1 GB/s; both
 * ends hash every byte they compare, so the hash is the comparison's
 * main cost.  The nonce is reused only for the same unit under the same
 * key, and the tags are never shown to the guest, so the MAC's
 * unforgeability against an attacker who sees tags is not what is
 * relied on; only the universal hash's bound is.  No I/O.
 */
#ifndef STM_PROTO_BLOCK_HASH_H
#define STM_PROTO_BLOCK_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* Draw a new key.  -1 (with a reason in errbuf) if GnuTLS's generator
 * fails. */
int block_hash_new_key (uint8_t key[WIRE_HASH_KEY_LEN], char *errbuf, size_t errlen);

/* UMAC-128's nonce: 16 bytes, the unit's offset (big-endian) first. */
#define BLOCK_HASH_NONCE_LEN 16

/* Hash len bytes of buf, which hold the range of the disk starting at
 * offset, in units of unit bytes (the last may be shorter) into out, which has room for wire_hash_count (len, unit) hashes of
 * WIRE_HASH_LEN bytes.  -1 (with a reason in errbuf) if GnuTLS fails. */
int block_hash_units (const uint8_t key[WIRE_HASH_KEY_LEN], uint64_t offset,
                      const void *buf, uint32_t len, uint32_t unit, uint8_t *out,
                      char *errbuf, size_t errlen);

#endif /* STM_PROTO_BLOCK_HASH_H */
