/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of hash comparison's wire messages (HASH_KEY, HASH_REQ,
 * HASHES) and of the block hashes themselves (block_hash.c).  Round trips
 * check the bytes and the decoded fields; hostile frames check that each
 * broken rule is refused with a reason that names it; the hashes are
 * checked against nettle's UMAC-128 used directly, and nettle's against
 * RFC 4418's test vector.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <nettle/umac.h>

#include "block_hash.h"
#include "wire.h"

#define MIB (1024u * 1024)

static enum wire_decode_result
decode (const uint8_t *frame, size_t len, const struct wire_disks *disks,
        struct wire_msg *m, const char **why)
{
  size_t consumed;
  return wire_decode (frame, len, disks, m, &consumed, why);
}

static void
test_hash_key_round_trip (void **state)
{
  uint8_t key[WIRE_HASH_KEY_LEN], frame[WIRE_ENCODE_MAX];
  struct wire_msg m;
  const char *why;
  (void) state;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 7);
  size_t n = wire_encode_hash_key (frame, key);
  assert_int_equal (n, WIRE_HEADER_SIZE + WIRE_HASH_KEY_LEN);
  assert_int_equal (decode (frame, n, NULL, &m, &why), WIRE_DECODE_OK);
  assert_int_equal (m.type, WIRE_HASH_KEY);
  assert_memory_equal (m.u.hash_key.key, key, sizeof key);
  /* One byte short is a truncated frame, never a shorter key. */
  frame[11] = WIRE_HASH_KEY_LEN - 1;
  assert_int_equal (decode (frame, n - 1, NULL, &m, &why), WIRE_DECODE_ERROR);
  assert_string_equal (why, "HASH_KEY payload length is not 16 bytes");
}

static void
test_hash_req_round_trip (void **state)
{
  struct wire_disks disks = { .count = 2, .size = { 64 * MIB, 5 * MIB + 123 } };
  uint8_t frame[WIRE_ENCODE_MAX];
  struct wire_msg m;
  const char *why;
  (void) state;

  /* The last unit of the image is short. */
  size_t n = wire_encode_hash_req (frame, 1, 4 * MIB, MIB + 123, 65536);
  assert_int_equal (n, WIRE_HEADER_SIZE + 16);
  assert_int_equal (decode (frame, n, &disks, &m, &why), WIRE_DECODE_OK);
  assert_int_equal (m.type, WIRE_HASH_REQ);
  assert_int_equal (m.disk, 1);
  assert_int_equal (m.u.hash.offset, 4 * MIB);
  assert_int_equal (m.u.hash.length, MIB + 123);
  assert_int_equal (m.u.hash.unit, 65536);
  assert_int_equal (m.u.hash.count, 17);

  /* Before HELLO, outside the image, on an unknown disk. */
  assert_int_equal (decode (frame, n, NULL, &m, &why), WIRE_DECODE_ERROR);
  assert_string_equal (why, "HASH_REQ or HASHES arrived before HELLO announced the disks");
  n = wire_encode_hash_req (frame, 1, 4 * MIB + 124, MIB, 65536);
  assert_int_equal (decode (frame, n, &disks, &m, &why), WIRE_DECODE_ERROR);
  assert_string_equal (why, "HASH_REQ range lies outside the image");
  n = wire_encode_hash_req (frame, 2, 0, MIB, 65536);
  assert_int_equal (decode (frame, n, &disks, &m, &why), WIRE_DECODE_ERROR);
  assert_string_equal (why, "header names a disk the HELLO did not announce");
}

/* Rewrite the length and unit words of an encoded HASH_REQ. */
static void
poke (uint8_t *frame, uint32_t length, uint32_t unit)
{
  uint8_t *p = frame + WIRE_HEADER_SIZE + 8;
  for (int i = 0; i < 4; i++) {
    p[i] = (uint8_t) (length >> (24 - 8 * i));
    p[4 + i] = (uint8_t) (unit >> (24 - 8 * i));
  }
}

static void
test_hash_req_bounds (void **state)
{
  struct wire_disks disks = { .count = 1, .size = { 64 * MIB } };
  uint8_t frame[WIRE_ENCODE_MAX];
  struct wire_msg m;
  const char *why;
  (void) state;

  size_t n = wire_encode_hash_req (frame, 0, 0, MIB, 4096);
  poke (frame, 0, 4096);
  assert_int_equal (decode (frame, n, &disks, &m, &why), WIRE_DECODE_ERROR);
  assert_string_equal (why, "HASH_REQ length is not from 1 byte to 8 MiB");
  poke (frame, 8 * MIB + 1, 4096);
  assert_int_equal (decode (frame, n, &disks, &m, &why), WIRE_DECODE_ERROR);
  assert_string_equal (why, "HASH_REQ length is not from 1 byte to 8 MiB");
  /* Units: too small, too large, not a power of two, zero. */
  const uint32_t bad_units[] = { 2048, 2 * MIB, 65536 + 4096, 0 };
  for (size_t i = 0; i < sizeof bad_units / sizeof bad_units[0]; i++) {
    poke (frame, MIB, bad_units[i]);
    assert_int_equal (decode (frame, n, &disks, &m, &why), WIRE_DECODE_ERROR);
    assert_string_equal (why, "HASH_REQ unit is not a power of two from 4 KiB to 1 MiB");
  }
  /* The largest range in the smallest units is the largest HASHES. */
  poke (frame, 8 * MIB, 4096);
  assert_int_equal (decode (frame, n, &disks, &m, &why), WIRE_DECODE_OK);
  assert_int_equal (m.u.hash.count, 2048);
  assert_true (WIRE_HEADER_SIZE + 16 + 2048 * WIRE_HASH_LEN <= WIRE_MAX_FRAME);
}

static void
test_hashes_round_trip (void **state)
{
  struct wire_disks disks = { .count = 1, .size = { 64 * MIB } };
  uint8_t *frame = malloc (WIRE_ENCODE_MAX + 3 * WIRE_HASH_LEN);
  struct wire_msg m;
  const char *why;
  (void) state;

  assert_non_null (frame);
  size_t n = wire_encode_hashes_header (frame, 0, MIB, 3 * 65536 - 1, 65536);
  for (size_t i = 0; i < 3 * WIRE_HASH_LEN; i++)
    frame[n + i] = (uint8_t) i;
  assert_int_equal (decode (frame, n + 3 * WIRE_HASH_LEN, &disks, &m, &why),
                    WIRE_DECODE_OK);
  assert_int_equal (m.type, WIRE_HASHES);
  assert_int_equal (m.u.hash.count, 3);
  assert_int_equal (m.u.hash.hashes[0], 0);
  assert_int_equal (m.u.hash.hashes[3 * WIRE_HASH_LEN - 1], 3 * WIRE_HASH_LEN - 1);
  /* A payload one hash short (its length word says so) is refused as
   * soon as the fixed part is in. */
  frame[11] = (uint8_t) (16 + 2 * WIRE_HASH_LEN);
  assert_int_equal (decode (frame, n, &disks, &m, &why), WIRE_DECODE_ERROR);
  assert_string_equal (why, "HASHES payload does not hold exactly one hash per unit of its range");
  free (frame);
}

static void
hex (const uint8_t *h, size_t n, char *out)
{
  for (size_t i = 0; i < n; i++)
    snprintf (out + 2 * i, 3, "%02x", h[i]);
}

/* nettle's UMAC-128 is UMAC-128: RFC 4418's test vector for the empty
 * message (key "abcdefghijklmnop", nonce "bcdefghi"). */
static void
test_umac_rfc4418 (void **state)
{
  struct umac128_ctx ctx;
  uint8_t tag[16];
  char text[33];
  (void) state;

  umac128_set_key (&ctx, (const uint8_t *) "abcdefghijklmnop");
  umac128_set_nonce (&ctx, 8, (const uint8_t *) "bcdefghi");
  umac128_digest (&ctx, sizeof tag, tag);
  hex (tag, sizeof tag, text);
  assert_string_equal (text, "32fedb100c79ad58f07ff7643cc60465");
}

/* block_hash_units (GnuTLS) against nettle's UMAC-128 directly, unit by
 * unit, with the nonce docs/protocol.md defines: the unit's offset,
 * big-endian, then eight zero bytes.  A short last unit included. */
static void
test_block_hash_reference (void **state)
{
  uint8_t key[WIRE_HASH_KEY_LEN], buf[3 * 4096 + 300];
  uint8_t out[4 * WIRE_HASH_LEN], want[WIRE_HASH_LEN], nonce[16];
  const uint64_t offset = (UINT64_C (5) << 32) + 8192;
  struct umac128_ctx ctx;
  char err[256];
  (void) state;

  for (int i = 0; i < WIRE_HASH_KEY_LEN; i++)
    key[i] = (uint8_t) (i * 11);
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t) (i * 7 + (i >> 9));
  assert_int_equal (block_hash_units (key, offset, buf, sizeof buf, 4096, out,
                                      err, sizeof err), 0);
  umac128_set_key (&ctx, key);
  for (int u = 0; u < 4; u++) {
    uint64_t at = offset + (uint64_t) u * 4096;
    size_t n = u < 3 ? 4096 : 300;
    memset (nonce, 0, sizeof nonce);
    for (int i = 0; i < 8; i++)
      nonce[i] = (uint8_t) (at >> (56 - 8 * i));
    umac128_set_nonce (&ctx, sizeof nonce, nonce);
    umac128_update (&ctx, n, buf + u * 4096);
    umac128_digest (&ctx, sizeof want, want);
    assert_memory_equal (out + u * WIRE_HASH_LEN, want, WIRE_HASH_LEN);
  }

  /* Another key, another offset, or one flipped bit: another hash. */
  uint8_t other[WIRE_HASH_LEN];
  key[0] ^= 1;
  assert_int_equal (block_hash_units (key, offset, buf, 4096, 4096, other, err,
                                      sizeof err), 0);
  assert_memory_not_equal (other, out, WIRE_HASH_LEN);
  key[0] ^= 1;
  assert_int_equal (block_hash_units (key, offset + 4096, buf, 4096, 4096, other, err,
                                      sizeof err), 0);
  assert_memory_not_equal (other, out, WIRE_HASH_LEN);
  buf[4095] ^= 0x80;
  assert_int_equal (block_hash_units (key, offset, buf, 4096, 4096, other, err,
                                      sizeof err), 0);
  assert_memory_not_equal (other, out, WIRE_HASH_LEN);
}

static void
test_block_hash_new_key (void **state)
{
  uint8_t a[WIRE_HASH_KEY_LEN], b[WIRE_HASH_KEY_LEN];
  char err[256];
  (void) state;

  assert_int_equal (block_hash_new_key (a, err, sizeof err), 0);
  assert_int_equal (block_hash_new_key (b, err, sizeof err), 0);
  assert_memory_not_equal (a, b, sizeof a);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hash_key_round_trip),
    cmocka_unit_test (test_hash_req_round_trip),
    cmocka_unit_test (test_hash_req_bounds),
    cmocka_unit_test (test_hashes_round_trip),
    cmocka_unit_test (test_umac_rfc4418),
    cmocka_unit_test (test_block_hash_reference),
    cmocka_unit_test (test_block_hash_new_key),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
