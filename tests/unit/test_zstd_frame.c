/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of DATA_ZSTD: its codec (proto/wire.c, wire_encode.c)
 * and its frames (proto/zstd_frame.c).
 *
 * Compressible data goes through deflate and inflate unchanged;
 * incompressible data is neither probed worth it nor deflated; and every
 * way a frame can lie to the receiver (not zstd, skippable, truncated,
 * trailing bytes, a content size that differs, a frame without one that
 * decompresses to more or fewer bytes, corrupt blocks) is refused with a
 * reason, after which the inflater still works.  Frames are built with
 * libzstd directly where the code under test would refuse to make them.
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
#include <zstd.h>

#include "wire.h"
#include "zstd_frame.h"

#define CHUNK (1024u * 1024)

/* Text-like data: words from a small vocabulary, seeded, so it compresses
 * well but not trivially. */
static void
fill_text (uint8_t *p, size_t n, uint32_t seed)
{
  static const char *const words[] = {
    "block ", "dirty ", "migration ", "receiver ", "sender ", "durable ",
    "the ", "of ", "a ", "source\n", "freeze ", "flip ", "42 ", "image ",
  };
  size_t i = 0;

  while (i < n) {
    const char *w;
    seed = seed * 1103515245u + 12345u;
    w = words[(seed >> 16) % (sizeof words / sizeof words[0])];
    for (; *w != '\0' && i < n; w++)
      p[i++] = (uint8_t) *w;
  }
}

static void
fill_random (uint8_t *p, size_t n, uint64_t seed)
{
  for (size_t i = 0; i < n; i++) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    p[i] = (uint8_t) (seed >> 24);
  }
}

/* A frame made by libzstd itself, with or without the content size. */
static size_t
raw_frame (uint8_t *dst, size_t cap, const uint8_t *src, size_t n, bool content_size)
{
  ZSTD_CCtx *c = ZSTD_createCCtx ();
  size_t r;

  assert_non_null (c);
  assert_false (ZSTD_isError (ZSTD_CCtx_setParameter (c, ZSTD_c_contentSizeFlag,
                                                      content_size ? 1 : 0)));
  if (!content_size) {
    /* Streaming with no pledged size writes no content size. */
    ZSTD_inBuffer in = { src, n, 0 };
    ZSTD_outBuffer out = { dst, cap, 0 };
    r = ZSTD_compressStream2 (c, &out, &in, ZSTD_e_end);
    assert_int_equal (r, 0);
    r = out.pos;
  }
  else
    r = ZSTD_compress2 (c, dst, cap, src, n);
  assert_false (ZSTD_isError (r));
  ZSTD_freeCCtx (c);
  return r;
}

static void
test_round_trip (void **state)
{
  static uint8_t src[CHUNK];
  struct zstd_deflater *d = zstd_deflater_new (ZSTD_FRAME_DEFAULT_LEVEL);
  struct zstd_inflater *in = zstd_inflater_new ();
  const uint8_t *frame, *out;
  const char *why;
  size_t flen;

  assert_non_null (d);
  assert_non_null (in);
  /* Sizes of a whole chunk, an odd one and a guest's 4 KiB write. */
  static const size_t sizes[] = { CHUNK, 777777, 4096 };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    fill_text (src, n, (uint32_t) i);
    assert_true (zstd_probe (d, src, n));
    flen = zstd_deflate (d, src, n, &frame);
    assert_true (flen > 0);
    assert_true (flen <= n - n / 8);
    assert_true (ZSTD_getFrameContentSize (frame, flen) == n);
    out = zstd_inflate (in, frame, flen, n, &why);
    assert_non_null (out);
    assert_memory_equal (out, src, n);
  }
  zstd_deflater_free (d);
  zstd_inflater_free (in);
}

/* Random data does not pay: the probe says so, and deflate gives up. */
static void
test_incompressible (void **state)
{
  static uint8_t src[CHUNK];
  struct zstd_deflater *d = zstd_deflater_new (3);
  const uint8_t *frame = NULL;

  assert_non_null (d);
  fill_random (src, CHUNK, 12345);
  assert_false (zstd_probe (d, src, CHUNK));
  assert_int_equal (zstd_deflate (d, src, CHUNK, &frame), 0);
  /* A chunk that is random but for a compressible head: the probe is
   * fooled, deflate is not. */
  fill_text (src, ZSTD_PROBE_BYTES, 7);
  assert_true (zstd_probe (d, src, CHUNK));
  assert_int_equal (zstd_deflate (d, src, CHUNK, &frame), 0);
  /* Tiny payloads never pay (a frame header alone is bigger). */
  memset (src, 'a', 8);
  assert_int_equal (zstd_deflate (d, src, 8, &frame), 0);
  /* And the context is fine after those failures. */
  fill_text (src, CHUNK, 8);
  assert_true (zstd_deflate (d, src, CHUNK, &frame) > 0);
  zstd_deflater_free (d);
}

/* Inflate frame and expect a refusal whose reason contains word. */
static void
expect_refused (struct zstd_inflater *in, const uint8_t *frame, size_t flen,
                size_t length, const char *word)
{
  const char *why = NULL;

  assert_null (zstd_inflate (in, frame, flen, length, &why));
  assert_non_null (why);
  if (strstr (why, word) == NULL)
    fail_msg ("reason \"%s\" does not mention \"%s\"", why, word);
}

static void
test_hostile_frames (void **state)
{
  static uint8_t src[CHUNK], frame[CHUNK + 1024], bad[CHUNK + 1024];
  struct zstd_inflater *in = zstd_inflater_new ();
  const uint8_t *out;
  const char *why;
  size_t flen, nflen, n = 65536;

  assert_non_null (in);
  fill_text (src, n, 99);
  flen = raw_frame (frame, sizeof frame, src, n, true);

  /* Lies about the length, caught from the header. */
  expect_refused (in, frame, flen, n - 1, "header says it holds 65536");
  expect_refused (in, frame, flen, n + 1, "header says it holds 65536");
  /* Not zstd at all, too short, skippable. */
  memcpy (bad, "STMWxxxxxxxxxxxx", 16);
  expect_refused (in, bad, 16, n, "magic");
  expect_refused (in, frame, 3, n, "too short");
  memcpy (bad, "\x50\x2a\x4d\x18\x04\x00\x00\x00zzzz", 12);
  expect_refused (in, bad, 12, n, "magic");
  /* Truncated, and with bytes after the frame. */
  expect_refused (in, frame, flen - 1, n, "truncated");
  expect_refused (in, frame, flen / 2, n, "truncated");
  memcpy (bad, frame, flen);
  memcpy (bad + flen, frame, flen);     /* two frames */
  expect_refused (in, bad, 2 * flen, n, "after");
  bad[flen] = 0;
  expect_refused (in, bad, flen + 1, n, "after");

  /* Without a content size, the decompression itself must catch it. */
  nflen = raw_frame (bad, sizeof bad, src, n, false);
  assert_true (ZSTD_getFrameContentSize (bad, nflen) == ZSTD_CONTENTSIZE_UNKNOWN);
  expect_refused (in, bad, nflen, n - 4096, "more bytes");
  expect_refused (in, bad, nflen, n + 4096, "decompresses to 65536 bytes");
  out = zstd_inflate (in, bad, nflen, n, &why);
  assert_non_null (out);
  assert_memory_equal (out, src, n);

  /* Corrupt the blocks (not the header): every byte flipped in turn in a
   * bounded stretch must be refused or give exactly n bytes, never more,
   * and never crash. */
  for (size_t i = 6; i < flen && i < 400; i++) {
    memcpy (bad, frame, flen);
    bad[i] ^= 0x5a;
    out = zstd_inflate (in, bad, flen, n, &why);
    if (out == NULL)
      assert_non_null (why);
  }
  /* After all those refusals the inflater still works. */
  out = zstd_inflate (in, frame, flen, n, &why);
  assert_non_null (out);
  assert_memory_equal (out, src, n);
  zstd_inflater_free (in);
}

/* ---- the DATA_ZSTD frame on the wire ---- */

static enum wire_decode_result
decode (const uint8_t *buf, size_t len, uint64_t image_size, struct wire_msg *msg,
        const char **why)
{
  struct wire_disks disks;
  size_t consumed;

  wire_disks_one (&disks, image_size);
  return wire_decode (buf, len, &disks, msg, &consumed, why);
}

static void
test_codec (void **state)
{
  static uint8_t buf[WIRE_ENCODE_MAX + 64];
  const uint8_t zframe[] = "pretend zstd frame";
  struct wire_msg msg;
  const char *why;
  size_t n;

  n = wire_encode_data_zstd_header (buf, 0, 4096, 65536, sizeof zframe);
  memcpy (buf + n, zframe, sizeof zframe);
  assert_int_equal (decode (buf, n + sizeof zframe, 1u << 20, &msg, &why), WIRE_DECODE_OK);
  assert_int_equal (msg.type, WIRE_DATA_ZSTD);
  assert_true (msg.u.data_zstd.offset == 4096);
  assert_int_equal (msg.u.data_zstd.length, 65536);
  assert_int_equal (msg.u.data_zstd.frame_len, sizeof zframe);
  assert_ptr_equal (msg.u.data_zstd.frame, buf + n);
  assert_string_equal (wire_type_name (WIRE_DATA_ZSTD), "DATA_ZSTD");

  /* The decompressed range must lie inside the image... */
  n = wire_encode_data_zstd_header (buf, 0, (1u << 20) - 4096, 8192, sizeof zframe);
  memcpy (buf + n, zframe, sizeof zframe);
  assert_int_equal (decode (buf, n + sizeof zframe, 1u << 20, &msg, &why),
                    WIRE_DECODE_ERROR);
  assert_non_null (strstr (why, "outside the image"));
  /* ...and is refused from its fixed part, before the frame has come. */
  assert_int_equal (decode (buf, n, 1u << 20, &msg, &why), WIRE_DECODE_ERROR);
  /* Before HELLO, and for a disk HELLO did not announce. */
  assert_int_equal (decode (buf, n + sizeof zframe, 0, &msg, &why), WIRE_DECODE_ERROR);
  n = wire_encode_data_zstd_header (buf, 1, 0, 8192, sizeof zframe);
  memcpy (buf + n, zframe, sizeof zframe);
  assert_int_equal (decode (buf, n + sizeof zframe, 1u << 20, &msg, &why),
                    WIRE_DECODE_ERROR);
  /* A length of 0 or over 8 MiB, written by hand (offset 16, length 24). */
  n = wire_encode_data_zstd_header (buf, 0, 0, 8192, sizeof zframe);
  memcpy (buf + n, zframe, sizeof zframe);
  memset (buf + 24, 0, 4);
  assert_int_equal (decode (buf, n + sizeof zframe, 1ull << 40, &msg, &why),
                    WIRE_DECODE_ERROR);
  buf[24] = 0x00; buf[25] = 0x80; buf[26] = 0x00; buf[27] = 0x01;
  assert_int_equal (decode (buf, n + sizeof zframe, 1ull << 40, &msg, &why),
                    WIRE_DECODE_ERROR);
  /* No frame at all: the payload is just the fixed part. */
  n = wire_encode_data_zstd_header (buf, 0, 0, 8192, 1);
  buf[11] = 12;                 /* payload length 12 */
  assert_int_equal (decode (buf, n, 1u << 20, &msg, &why), WIRE_DECODE_ERROR);
  assert_non_null (strstr (why, "too short"));
}

/* HELLO and HELLO_REPLY carry the bit. */
static void
test_feature_bit (void **state)
{
  struct wire_hello h = { .image_size = 1u << 20, .block_size = 65536,
                          .features = WIRE_FEATURE_EXPORT | WIRE_FEATURE_ZSTD };
  struct wire_hello_reply r = { .mode = WIRE_MODE_NEW, .features = WIRE_FEATURE_ZSTD };
  uint8_t buf[WIRE_ENCODE_HELLO_MAX];
  struct wire_msg msg;
  const char *why;

  assert_int_equal (decode (buf, wire_encode_hello (buf, &h), 0, &msg, &why),
                    WIRE_DECODE_OK);
  assert_int_equal (msg.u.hello.features, WIRE_FEATURE_EXPORT | WIRE_FEATURE_ZSTD);
  assert_int_equal (decode (buf, wire_encode_hello_reply (buf, &r), 0, &msg, &why),
                    WIRE_DECODE_OK);
  assert_int_equal (msg.u.hello_reply.features, WIRE_FEATURE_ZSTD);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_incompressible),
    cmocka_unit_test (test_hostile_frames),
    cmocka_unit_test (test_codec),
    cmocka_unit_test (test_feature_bit),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
