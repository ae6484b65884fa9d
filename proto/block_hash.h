/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the block hashes both ends of a comparison compute (HASH_REQ and
 * HASHES in wire.h).
 *
 * A hash is HMAC-SHA-256 (GnuTLS) of one unit of a range under a key the
 * sender draws at random for each connection.  Keyed, a guest that knows
 * the old contents of a block still cannot write new contents that hash
 * alike, since it never learns the key; SHA-256 was chosen over BLAKE2b
 * (libb2) because GnuTLS uses the CPU's SHA extensions: 1.56 GB/s against
 * 0.80 GB/s for BLAKE2b-256 on 64 KiB units on the machine of
 * docs/performance.md ("Hash comparison").  No I/O: the callers read.
 */
#ifndef STM_PROTO_BLOCK_HASH_H
#define STM_PROTO_BLOCK_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* Draw a new key.  -1 (with a reason in errbuf) if GnuTLS's generator
 * fails. */
int block_hash_new_key (uint8_t key[WIRE_HASH_KEY_LEN], char *errbuf, size_t errlen);

/* Hash len bytes of buf in units of unit bytes (the last may be shorter)
 * into out, which has room for wire_hash_count (len, unit) hashes of
 * WIRE_HASH_LEN bytes.  -1 (with a reason in errbuf) if GnuTLS fails. */
int block_hash_units (const uint8_t key[WIRE_HASH_KEY_LEN], const void *buf,
                      uint32_t len, uint32_t unit, uint8_t *out,
                      char *errbuf, size_t errlen);

#endif /* STM_PROTO_BLOCK_HASH_H */
