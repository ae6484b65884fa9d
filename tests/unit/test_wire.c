/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the wire codec (proto/wire.c).
 *
 * Every message type is encoded and decoded back; every prefix of a valid
 * frame must ask for more bytes; each header and payload check is hit with
 * a frame that breaks exactly that rule; and a bounded, seeded mutation loop
 * feeds damaged frames to the decoder and checks that whatever it accepts
 * still satisfies the invariants the receiver relies on.  Inputs are copied
 * into buffers of exactly the announced length so that a read past the end
 * shows up under valgrind or AddressSanitizer.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

#define IMAGE_SIZE (1024u * 1024 * 1024)        /* 1 GiB */

/* Raw big-endian writers, independent of the code under test, for
 * building frames the encoders refuse to produce. */
static void
be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static void
be64 (uint8_t *p, uint64_t v)
{
  be32 (p, (uint32_t) (v >> 32));
  be32 (p + 4, (uint32_t) v);
}

static void
raw_header (uint8_t *p, uint32_t magic, uint16_t version, uint16_t type,
            uint32_t len, uint32_t reserved)
{
  be32 (p, magic);
  p[4] = (uint8_t) (version >> 8);
  p[5] = (uint8_t) version;
  p[6] = (uint8_t) (type >> 8);
  p[7] = (uint8_t) type;
  be32 (p + 8, len);
  be32 (p + 12, reserved);
}

/* wire_decode for a one-disk migration of image_size bytes (none before
 * HELLO: image_size 0). */
static enum wire_decode_result
decode_sized (const uint8_t *buf, size_t len, uint64_t image_size,
              struct wire_msg *msg, size_t *consumed, const char **why)
{
  struct wire_disks d;

  wire_disks_one (&d, image_size);
  return wire_decode (buf, len, &d, msg, consumed, why);
}

/* Decode a copy of buf[0..len) held in a heap block of exactly len bytes. */
static enum wire_decode_result
decode_exact (const uint8_t *buf, size_t len, uint64_t image_size,
              struct wire_msg *msg, size_t *consumed, const char **why)
{
  uint8_t *copy = malloc (len ? len : 1);
  enum wire_decode_result r;

  assert_non_null (copy);
  if (len)
    memcpy (copy, buf, len);
  r = decode_sized (copy, len, image_size, msg, consumed, why);
  /* Pointers in msg point into copy: the callers that look at them use
   * decode_ok instead, which keeps its buffer. */
  free (copy);
  return r;
}

static void
expect_error (const uint8_t *buf, size_t len, uint64_t image_size)
{
  struct wire_msg msg;
  size_t consumed = 12345;
  const char *why = NULL;

  assert_int_equal (decode_exact (buf, len, image_size, &msg, &consumed, &why),
                    WIRE_DECODE_ERROR);
  assert_non_null (why);
  assert_true (strlen (why) > 0);
}

/* As expect_error, and the reason names the rule that was broken. */
static void
expect_error_why (const uint8_t *buf, size_t len, uint64_t image_size,
                  const char *word)
{
  struct wire_msg msg;
  size_t consumed;
  const char *why = NULL;

  assert_int_equal (decode_exact (buf, len, image_size, &msg, &consumed, &why),
                    WIRE_DECODE_ERROR);
  assert_non_null (why);
  if (strstr (why, word) == NULL)
    fail_msg ("reason \"%s\" does not mention \"%s\"", why, word);
}

static void
decode_ok (const uint8_t *buf, size_t len, uint64_t image_size,
           struct wire_msg *msg)
{
  size_t consumed = 0;
  const char *why = NULL;
  enum wire_decode_result r;

  r = decode_sized (buf, len, image_size, msg, &consumed, &why);
  if (r != WIRE_DECODE_OK)
    fail_msg ("decode failed: %s", why ? why : "(need more)");
  assert_int_equal (consumed, len);
}

/* ---- round trips ---- */

static void
test_round_trip_hello (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX];
  struct wire_hello h = { .image_size = 12345678901ull,
                          .block_size = 65536, .features = 0 };
  struct wire_msg msg;
  size_t n, i;

  for (i = 0; i < WIRE_MIGRATION_ID_LEN; i++)
    h.migration_id[i] = (uint8_t) (0xa0 + i);
  n = wire_encode_hello (buf, &h);
  assert_int_equal (n, WIRE_HEADER_SIZE + 32);
  /* The header is big-endian: check the bytes, not just the round trip. */
  assert_memory_equal (buf, "STMW\x00\x01\x00\x01\x00\x00\x00\x20\0\0\0\0", 16);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_HELLO);
  assert_memory_equal (msg.u.hello.migration_id, h.migration_id,
                       WIRE_MIGRATION_ID_LEN);
  assert_true (msg.u.hello.image_size == h.image_size);
  assert_int_equal (msg.u.hello.block_size, 65536);
  assert_int_equal (msg.u.hello.features, 0);
}

static void
test_round_trip_hello_reply (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX];
  struct wire_hello_reply r = { .mode = WIRE_MODE_RESUME, .features = 0,
                                .durable_seq = 0x0102030405060708ull };
  struct wire_msg msg;
  size_t n;

  n = wire_encode_hello_reply (buf, &r);
  assert_int_equal (n, WIRE_HEADER_SIZE + 16);
  assert_memory_equal (buf + 24, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_HELLO_REPLY);
  assert_int_equal (msg.u.hello_reply.mode, WIRE_MODE_RESUME);
  assert_true (msg.u.hello_reply.durable_seq == r.durable_seq);

  r.mode = WIRE_MODE_NEW;
  r.durable_seq = 0;
  n = wire_encode_hello_reply (buf, &r);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.hello_reply.mode, WIRE_MODE_NEW);
}

static void
test_round_trip_data (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX + 100];
  struct wire_msg msg;
  size_t n, i;

  n = wire_encode_data_header (buf, IMAGE_SIZE - 100, 100);
  assert_int_equal (n, WIRE_HEADER_SIZE + 12);
  for (i = 0; i < 100; i++)
    buf[n + i] = (uint8_t) i;
  decode_ok (buf, n + 100, IMAGE_SIZE, &msg);
  assert_int_equal (msg.type, WIRE_DATA);
  assert_true (msg.u.data.offset == IMAGE_SIZE - 100);
  assert_int_equal (msg.u.data.length, 100);
  /* DATA is not copied: the bytes point into the caller's buffer. */
  assert_ptr_equal (msg.u.data.bytes, buf + n);
}

static void
test_round_trip_data_max (void **state)
{
  uint8_t *buf = calloc (1, WIRE_MAX_FRAME);
  struct wire_msg msg;
  size_t n;

  assert_non_null (buf);
  n = wire_encode_data_header (buf, 0, WIRE_MAX_DATA);
  assert_int_equal (n + WIRE_MAX_DATA, WIRE_MAX_FRAME);
  decode_ok (buf, WIRE_MAX_FRAME, IMAGE_SIZE, &msg);
  assert_int_equal (msg.u.data.length, WIRE_MAX_DATA);
  free (buf);
}

static void
test_round_trip_fixed (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX];
  struct wire_msg msg;
  size_t n;

  n = wire_encode_zero (buf, 4096, IMAGE_SIZE - 4096);
  assert_int_equal (n, WIRE_HEADER_SIZE + 16);
  decode_ok (buf, n, IMAGE_SIZE, &msg);
  assert_int_equal (msg.type, WIRE_ZERO);
  assert_true (msg.u.zero.offset == 4096);
  assert_true (msg.u.zero.length == IMAGE_SIZE - 4096);

  n = wire_encode_pass_begin (buf, 7, 0xfedcba9876543210ull);
  assert_int_equal (n, WIRE_HEADER_SIZE + 12);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_PASS_BEGIN);
  assert_int_equal (msg.u.pass_begin.pass, 7);
  assert_true (msg.u.pass_begin.bytes == 0xfedcba9876543210ull);

  n = wire_encode_pass_end (buf, 0xdeadbeef);
  assert_int_equal (n, WIRE_HEADER_SIZE + 4);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_PASS_END);
  assert_int_equal (msg.u.pass_end.pass, 0xdeadbeef);

  n = wire_encode_sync (buf, UINT64_MAX);
  assert_int_equal (n, WIRE_HEADER_SIZE + 8);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_SYNC);
  assert_true (msg.u.sync.seq == UINT64_MAX);

  n = wire_encode_durable (buf, 42);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_DURABLE);
  assert_true (msg.u.sync.seq == 42);

  n = wire_encode_commit (buf, 43);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_COMMIT);
  assert_true (msg.u.commit.seq == 43);

  n = wire_encode_keepalive (buf);
  assert_int_equal (n, WIRE_HEADER_SIZE);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_KEEPALIVE);
}

static void
test_round_trip_texts (void **state)
{
  uint8_t buf[WIRE_ENCODE_TEXT_MAX];
  const char *uri = "nbds://dest.example:10809/disk0";
  struct wire_msg msg;
  size_t n;

  n = wire_encode_committed (buf, uri);
  assert_int_equal (n, WIRE_HEADER_SIZE + 4 + strlen (uri));
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_COMMITTED);
  assert_int_equal (msg.u.committed.text_len, strlen (uri));
  assert_memory_equal (msg.u.committed.text, uri, strlen (uri));

  n = wire_encode_committed (buf, "");
  assert_int_equal (n, WIRE_HEADER_SIZE + 4);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.committed.text_len, 0);

  n = wire_encode_committed (buf, NULL);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.committed.text_len, 0);

  n = wire_encode_error (buf, WIRE_ERR_NOSPACE, "no space\tleft on /dev/sdb");
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_ERROR);
  assert_int_equal (msg.u.error.code, WIRE_ERR_NOSPACE);
  assert_int_equal (msg.u.error.text_len, strlen ("no space\tleft on /dev/sdb"));
  assert_memory_equal (msg.u.error.text, "no space\tleft on /dev/sdb",
                       msg.u.error.text_len);

  n = wire_encode_abort (buf, WIRE_ERR_ABORTED, "caf\xc3\xa9 closed");
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_ABORT);
  assert_int_equal (msg.u.error.code, WIRE_ERR_ABORTED);
  assert_memory_equal (msg.u.error.text, "caf\xc3\xa9 closed", 12);

  /* Unknown error codes pass: the text still explains them. */
  n = wire_encode_error (buf, 999, "future");
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.error.code, 999);
}

/* The encoder cuts long texts and blanks bytes the decoder would refuse,
 * so anything it produces decodes. */
static void
test_encode_text_limits (void **state)
{
  uint8_t buf[WIRE_ENCODE_TEXT_MAX];
  char text[2000];
  struct wire_msg msg;
  size_t n;

  memset (text, 'x', sizeof text - 1);
  text[sizeof text - 1] = '\0';
  n = wire_encode_error (buf, 1, text);
  assert_int_equal (n, WIRE_ENCODE_TEXT_MAX);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.error.text_len, WIRE_MAX_TEXT);

  n = wire_encode_committed (buf, text);
  assert_int_equal (n, WIRE_HEADER_SIZE + 4 + WIRE_MAX_TEXT);
  decode_ok (buf, n, 0, &msg);

  /* A two-byte UTF-8 character straddling the limit is dropped whole. */
  text[WIRE_MAX_TEXT - 1] = '\xc3';
  text[WIRE_MAX_TEXT] = '\xa9';
  n = wire_encode_error (buf, 1, text);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.error.text_len, WIRE_MAX_TEXT - 1);

  n = wire_encode_error (buf, 1, "line one\nline two\r\x7f\x01");
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.error.text_len, 20);
  assert_memory_equal (msg.u.error.text, "line one line two   ", 20);

  /* Exactly WIRE_MAX_TEXT bytes are kept whole. */
  memset (text, 'y', WIRE_MAX_TEXT);
  text[WIRE_MAX_TEXT] = '\0';
  n = wire_encode_abort (buf, 1, text);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.error.text_len, WIRE_MAX_TEXT);
}

/* Two frames back to back in one buffer decode one after the other. */
static void
test_consecutive_frames (void **state)
{
  uint8_t buf[2 * WIRE_ENCODE_MAX];
  struct wire_msg msg;
  size_t n1, n2, consumed;
  const char *why;

  n1 = wire_encode_sync (buf, 5);
  n2 = wire_encode_keepalive (buf + n1);
  assert_int_equal (decode_sized (buf, n1 + n2, 0, &msg, &consumed, &why),
                    WIRE_DECODE_OK);
  assert_int_equal (consumed, n1);
  assert_int_equal (msg.type, WIRE_SYNC);
  assert_int_equal (decode_sized (buf + n1, n2, 0, &msg, &consumed, &why),
                    WIRE_DECODE_OK);
  assert_int_equal (consumed, n2);
  assert_int_equal (msg.type, WIRE_KEEPALIVE);
}

/* ---- truncation ---- */

/* Build one valid frame of every type into frames[i] (each at most
 * WIRE_ENCODE_TEXT_MAX + 200 bytes), returning how many. */
#define FRAME_ROOM (WIRE_ENCODE_TEXT_MAX + 200)
static size_t
build_valid_frames (uint8_t frames[][FRAME_ROOM], size_t *lens)
{
  struct wire_hello h = { .image_size = IMAGE_SIZE, .block_size = 4096 };
  struct wire_hello_reply r = { .mode = 1, .durable_seq = 9 };
  size_t k = 0, i;

  memset (h.migration_id, 0x5a, sizeof h.migration_id);
  lens[k] = wire_encode_hello (frames[k], &h); k++;
  lens[k] = wire_encode_hello_reply (frames[k], &r); k++;
  lens[k] = wire_encode_data_header (frames[k], 8192, 150);
  for (i = 0; i < 150; i++)
    frames[k][lens[k] + i] = (uint8_t) (i * 7);
  lens[k] += 150; k++;
  lens[k] = wire_encode_data_header (frames[k], IMAGE_SIZE - 1, 1);
  frames[k][lens[k]] = 0xff;
  lens[k] += 1; k++;
  lens[k] = wire_encode_zero (frames[k], 0, IMAGE_SIZE); k++;
  lens[k] = wire_encode_pass_begin (frames[k], 1, IMAGE_SIZE); k++;
  lens[k] = wire_encode_pass_end (frames[k], 1); k++;
  lens[k] = wire_encode_sync (frames[k], 3); k++;
  lens[k] = wire_encode_durable (frames[k], 3); k++;
  lens[k] = wire_encode_commit (frames[k], 4); k++;
  lens[k] = wire_encode_committed (frames[k], "nbd+unix:///?socket=/tmp/s"); k++;
  lens[k] = wire_encode_committed (frames[k], ""); k++;
  lens[k] = wire_encode_error (frames[k], 3, "write failed: Input/output error"); k++;
  lens[k] = wire_encode_abort (frames[k], 6, "user interrupt"); k++;
  lens[k] = wire_encode_keepalive (frames[k]); k++;
  return k;
}

#define NFRAMES 15

static void
test_truncation (void **state)
{
  static uint8_t frames[NFRAMES][FRAME_ROOM];
  size_t lens[NFRAMES], nframes, f, len;

  nframes = build_valid_frames (frames, lens);
  assert_int_equal (nframes, NFRAMES);
  for (f = 0; f < nframes; f++) {
    struct wire_msg msg;
    size_t consumed;
    const char *why;

    /* The whole frame decodes... */
    assert_int_equal (decode_exact (frames[f], lens[f], IMAGE_SIZE,
                                    &msg, &consumed, &why), WIRE_DECODE_OK);
    assert_int_equal (consumed, lens[f]);

    /* ...and every proper prefix asks for more: the header size until the
     * header is complete, then the size of the whole frame. */
    for (len = 0; len < lens[f]; len++) {
      consumed = 0;
      assert_int_equal (decode_exact (frames[f], len, IMAGE_SIZE,
                                      &msg, &consumed, &why),
                        WIRE_DECODE_NEED_MORE);
      if (len < WIRE_HEADER_SIZE)
        assert_int_equal (consumed, WIRE_HEADER_SIZE);
      else
        assert_int_equal (consumed, lens[f]);
    }
  }
}

/* ---- header checks ---- */

static void
test_bad_header (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX];
  size_t n;

  n = wire_encode_sync (buf, 1);
  buf[0] = 'X';
  expect_error (buf, n, 0);
  /* A wrong magic is refused from the header alone. */
  expect_error (buf, WIRE_HEADER_SIZE, 0);

  n = wire_encode_sync (buf, 1);
  buf[5] = 2;                           /* version 2 */
  expect_error (buf, n, 0);
  n = wire_encode_sync (buf, 1);
  buf[4] = 1;                           /* version 257 */
  expect_error (buf, n, 0);
  n = wire_encode_sync (buf, 1);
  buf[5] = 0;                           /* version 0 */
  expect_error (buf, n, 0);

  n = wire_encode_sync (buf, 1);
  buf[15] = 1;                          /* reserved */
  expect_error (buf, n, 0);
  n = wire_encode_sync (buf, 1);
  buf[12] = 0x80;
  expect_error (buf, WIRE_HEADER_SIZE, 0);
}

static void
test_unknown_type (void **state)
{
  static const uint16_t types[] = { 0, 14, 15, 0x100, 0x8001, 0xffff };
  uint8_t buf[WIRE_HEADER_SIZE + 8];
  size_t i;

  for (i = 0; i < sizeof types / sizeof types[0]; i++) {
    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, types[i], 0, 0);
    expect_error (buf, WIRE_HEADER_SIZE, 0);
    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, types[i], 8, 0);
    be64 (buf + WIRE_HEADER_SIZE, 1);
    expect_error (buf, sizeof buf, 0);
  }
}

/* ---- payload length checks ---- */

/* Each fixed-size type with a payload one byte short or long is refused
 * from the header alone, before the reader is told to buffer anything. */
static void
test_fixed_length_mismatch (void **state)
{
  static const struct { uint16_t type; uint32_t len; } fixed[] = {
    /* HELLO's length depends on its features: test_wire_disks.c. */
    { WIRE_HELLO_REPLY, 16 }, { WIRE_ZERO, 16 },
    { WIRE_PASS_BEGIN, 12 }, { WIRE_PASS_END, 4 }, { WIRE_SYNC, 8 },
    { WIRE_DURABLE, 8 }, { WIRE_COMMIT, 8 }, { WIRE_KEEPALIVE, 0 },
  };
  uint8_t buf[WIRE_HEADER_SIZE];
  size_t i;

  for (i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    struct wire_msg msg;
    size_t consumed;
    const char *why;

    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, fixed[i].type,
                fixed[i].len + 1, 0);
    expect_error (buf, sizeof buf, IMAGE_SIZE);
    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, fixed[i].type, UINT32_MAX, 0);
    expect_error (buf, sizeof buf, IMAGE_SIZE);
    if (fixed[i].len > 0) {
      raw_header (buf, WIRE_MAGIC, WIRE_VERSION, fixed[i].type,
                  fixed[i].len - 1, 0);
      expect_error (buf, sizeof buf, IMAGE_SIZE);
      /* The right length with the payload still missing: need more. */
      raw_header (buf, WIRE_MAGIC, WIRE_VERSION, fixed[i].type,
                  fixed[i].len, 0);
      assert_int_equal (decode_exact (buf, sizeof buf, IMAGE_SIZE,
                                      &msg, &consumed, &why),
                        WIRE_DECODE_NEED_MORE);
      assert_int_equal (consumed, WIRE_HEADER_SIZE + fixed[i].len);
    }
  }
}

static void
test_data_length (void **state)
{
  uint8_t buf[WIRE_HEADER_SIZE + 12 + 64];
  struct wire_msg msg;
  size_t consumed;
  const char *why;

  /* More than 8 MiB of data: refused from the header alone. */
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_DATA,
              12 + WIRE_MAX_DATA + 1, 0);
  expect_error (buf, WIRE_HEADER_SIZE, IMAGE_SIZE);
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_DATA, 9000000, 0);
  expect_error (buf, WIRE_HEADER_SIZE, IMAGE_SIZE);
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_DATA, UINT32_MAX, 0);
  expect_error (buf, WIRE_HEADER_SIZE, IMAGE_SIZE);

  /* Exactly 8 MiB: the reader is told to buffer WIRE_MAX_FRAME, no more. */
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_DATA, 12 + WIRE_MAX_DATA, 0);
  assert_int_equal (decode_exact (buf, WIRE_HEADER_SIZE, IMAGE_SIZE,
                                  &msg, &consumed, &why),
                    WIRE_DECODE_NEED_MORE);
  assert_int_equal (consumed, WIRE_MAX_FRAME);

  /* No data at all, or not even the offset and length. */
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_DATA, 12, 0);
  be64 (buf + 16, 0);
  be32 (buf + 24, 0);
  expect_error (buf, WIRE_HEADER_SIZE + 12, IMAGE_SIZE);
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_DATA, 0, 0);
  expect_error (buf, WIRE_HEADER_SIZE, IMAGE_SIZE);

  /* The announced data length differs from what the payload holds. */
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_DATA, 12 + 64, 0);
  be64 (buf + 16, 0);
  memset (buf + 28, 0, 64);
  be32 (buf + 24, 64);
  assert_int_equal (decode_exact (buf, sizeof buf, IMAGE_SIZE,
                                  &msg, &consumed, &why), WIRE_DECODE_OK);
  be32 (buf + 24, 63);
  expect_error (buf, sizeof buf, IMAGE_SIZE);
  be32 (buf + 24, 65);
  expect_error (buf, sizeof buf, IMAGE_SIZE);
  be32 (buf + 24, 0);
  expect_error (buf, sizeof buf, IMAGE_SIZE);
  be32 (buf + 24, UINT32_MAX);
  expect_error (buf, sizeof buf, IMAGE_SIZE);
}

static void
test_text_length (void **state)
{
  uint8_t buf[WIRE_HEADER_SIZE + 8 + WIRE_MAX_TEXT + 1];
  static const uint16_t types[] = { WIRE_ERROR, WIRE_ABORT };
  struct wire_msg msg;
  size_t i, consumed;
  const char *why;

  for (i = 0; i < 2; i++) {
    /* Over the text limit: refused from the header. */
    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, types[i],
                8 + WIRE_MAX_TEXT + 1, 0);
    expect_error (buf, WIRE_HEADER_SIZE, 0);
    /* Too short for the code and length. */
    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, types[i], 7, 0);
    expect_error (buf, WIRE_HEADER_SIZE, 0);
    /* Text length disagreeing with the payload length. */
    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, types[i], 8 + 5, 0);
    be32 (buf + 16, 1);
    memcpy (buf + 24, "hello", 5);
    be32 (buf + 20, 5);
    assert_int_equal (decode_exact (buf, WIRE_HEADER_SIZE + 13, 0,
                                    &msg, &consumed, &why), WIRE_DECODE_OK);
    assert_int_equal (msg.u.error.text_len, 5);
    be32 (buf + 20, 4);
    expect_error (buf, WIRE_HEADER_SIZE + 13, 0);
    be32 (buf + 20, 6);
    expect_error (buf, WIRE_HEADER_SIZE + 13, 0);
    be32 (buf + 20, UINT32_MAX);
    expect_error (buf, WIRE_HEADER_SIZE + 13, 0);
  }

  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_COMMITTED,
              4 + WIRE_MAX_TEXT + 1, 0);
  expect_error (buf, WIRE_HEADER_SIZE, 0);
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_COMMITTED, 3, 0);
  expect_error (buf, WIRE_HEADER_SIZE, 0);
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_COMMITTED, 4 + 3, 0);
  be32 (buf + 16, 2);
  memcpy (buf + 20, "abc", 3);
  expect_error (buf, WIRE_HEADER_SIZE + 7, 0);
}

static void
test_text_content (void **state)
{
  static const char *const bad[] = {
    "a\0b", "line\n", "cr\r", "\x1b[2J", "del\x7f", "\x01",
  };
  static const size_t bad_len[] = { 3, 5, 3, 4, 4, 1 };
  uint8_t buf[WIRE_HEADER_SIZE + 8 + 16];
  struct wire_msg msg;
  size_t i, consumed;
  const char *why;

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = bad_len[i];

    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_ERROR, 8 + n, 0);
    be32 (buf + 16, 1);
    be32 (buf + 20, (uint32_t) n);
    memcpy (buf + 24, bad[i], n);
    expect_error (buf, WIRE_HEADER_SIZE + 8 + n, 0);

    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_ABORT, 8 + n, 0);
    expect_error (buf, WIRE_HEADER_SIZE + 8 + n, 0);

    raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_COMMITTED, 4 + n, 0);
    be32 (buf + 16, (uint32_t) n);
    memcpy (buf + 20, bad[i], n);
    expect_error (buf, WIRE_HEADER_SIZE + 4 + n, 0);
  }

  /* Tab and bytes above 0x7f are fine. */
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_ERROR, 8 + 4, 0);
  be32 (buf + 16, 1);
  be32 (buf + 20, 4);
  memcpy (buf + 24, "\t\xc3\xa9~", 4);
  assert_int_equal (decode_exact (buf, WIRE_HEADER_SIZE + 12, 0,
                                  &msg, &consumed, &why), WIRE_DECODE_OK);
}

/* ---- ranges ---- */

static void
test_range_ok (void **state)
{
  assert_true (wire_range_ok (0, 1, 1));
  assert_true (wire_range_ok (0, 100, 100));
  assert_true (wire_range_ok (99, 1, 100));
  assert_false (wire_range_ok (99, 2, 100));
  assert_false (wire_range_ok (100, 1, 100));
  assert_false (wire_range_ok (0, 0, 100));
  assert_false (wire_range_ok (50, 0, 100));
  assert_false (wire_range_ok (0, 1, 0));
  /* offset + length wraps around 2^64 to something small. */
  assert_false (wire_range_ok (UINT64_MAX, 2, UINT64_MAX));
  assert_false (wire_range_ok (UINT64_MAX - 1, 10, 100));
  assert_false (wire_range_ok (10, UINT64_MAX - 5, 100));
  assert_false (wire_range_ok (1, UINT64_MAX, UINT64_MAX));
  assert_true (wire_range_ok (0, UINT64_MAX, UINT64_MAX));
  assert_true (wire_range_ok (UINT64_MAX - 1, 1, UINT64_MAX));
  assert_true (wire_range_ok (INT64_MAX - 4096, 4096, INT64_MAX));
}

static void
test_data_range (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX + 16];
  struct wire_msg msg;
  size_t n;

  memset (buf, 0, sizeof buf);
  n = wire_encode_data_header (buf, IMAGE_SIZE - 16, 16);
  decode_ok (buf, n + 16, IMAGE_SIZE, &msg);
  n = wire_encode_data_header (buf, IMAGE_SIZE - 15, 16);
  expect_error (buf, n + 16, IMAGE_SIZE);
  n = wire_encode_data_header (buf, IMAGE_SIZE, 16);
  expect_error (buf, n + 16, IMAGE_SIZE);
  /* offset + length overflows 2^64 and would land at 8 if it wrapped. */
  n = wire_encode_data_header (buf, UINT64_MAX - 7, 16);
  expect_error (buf, n + 16, IMAGE_SIZE);
  expect_error (buf, n + 16, UINT64_MAX);
  /* Before HELLO the image size is 0 and DATA is refused outright. */
  n = wire_encode_data_header (buf, 0, 16);
  expect_error_why (buf, n + 16, 0, "HELLO");
}

static void
test_zero_range (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX];
  struct wire_msg msg;
  size_t n;

  n = wire_encode_zero (buf, IMAGE_SIZE - 1, 1);
  decode_ok (buf, n, IMAGE_SIZE, &msg);
  n = wire_encode_zero (buf, IMAGE_SIZE - 1, 2);
  expect_error (buf, n, IMAGE_SIZE);
  n = wire_encode_zero (buf, 0, IMAGE_SIZE + 1ull);
  expect_error (buf, n, IMAGE_SIZE);
  n = wire_encode_zero (buf, 4096, UINT64_MAX - 100);
  expect_error (buf, n, IMAGE_SIZE);
  expect_error (buf, n, UINT64_MAX);
  n = wire_encode_zero (buf, UINT64_MAX, 1);
  expect_error (buf, n, IMAGE_SIZE);
  n = wire_encode_zero (buf, 0, 0);
  expect_error_why (buf, n, IMAGE_SIZE, "length 0");
  n = wire_encode_zero (buf, 0, 4096);
  expect_error_why (buf, n, 0, "HELLO");
  /* Larger than any DATA but within the image: ZERO has no 8 MiB limit. */
  n = wire_encode_zero (buf, 0, IMAGE_SIZE);
  decode_ok (buf, n, IMAGE_SIZE, &msg);
}

/* The numbers of a variable-size frame are judged as soon as they are
 * buffered, so a reader is never asked to buffer megabytes of a DATA frame
 * that will be refused anyway. */
static void
test_early_refusal (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX];
  struct wire_msg msg;
  size_t n, consumed;
  const char *why;

  /* Header and offset/length of an 8 MiB DATA outside the image. */
  n = wire_encode_data_header (buf, IMAGE_SIZE, WIRE_MAX_DATA);
  assert_int_equal (n, WIRE_HEADER_SIZE + 12);
  expect_error_why (buf, n, IMAGE_SIZE, "outside");
  /* Before HELLO. */
  n = wire_encode_data_header (buf, 0, WIRE_MAX_DATA);
  expect_error_why (buf, n, 0, "HELLO");
  /* Within the image: the reader is told to buffer the whole frame, and
   * one byte short of the fixed part it only learns the frame size. */
  assert_int_equal (decode_exact (buf, n, IMAGE_SIZE, &msg, &consumed, &why),
                    WIRE_DECODE_NEED_MORE);
  assert_int_equal (consumed, WIRE_MAX_FRAME);
  n = wire_encode_data_header (buf, IMAGE_SIZE, WIRE_MAX_DATA);
  assert_int_equal (decode_exact (buf, n - 1, IMAGE_SIZE, &msg, &consumed, &why),
                    WIRE_DECODE_NEED_MORE);
  assert_int_equal (consumed, WIRE_MAX_FRAME);

  /* The inner DATA length disagrees with the header's payload length. */
  n = wire_encode_data_header (buf, 0, 4096);
  be32 (buf + 24, 4095);
  expect_error_why (buf, n, IMAGE_SIZE, "match");

  /* An ERROR whose text length disagrees, text not yet arrived. */
  raw_header (buf, WIRE_MAGIC, WIRE_VERSION, WIRE_ERROR, 8 + 100, 0);
  be32 (buf + 16, 1);
  be32 (buf + 20, 99);
  expect_error_why (buf, WIRE_HEADER_SIZE + 8, 0, "match");
  be32 (buf + 20, 100);
  assert_int_equal (decode_exact (buf, WIRE_HEADER_SIZE + 8, 0,
                                  &msg, &consumed, &why),
                    WIRE_DECODE_NEED_MORE);
  assert_int_equal (consumed, WIRE_HEADER_SIZE + 108);
}

/* ---- HELLO and HELLO_REPLY fields ---- */

static void
expect_hello (uint64_t image_size, uint32_t block_size, uint32_t features,
              bool ok)
{
  struct wire_hello h = { .image_size = image_size, .block_size = block_size,
                          .features = features };
  uint8_t buf[WIRE_ENCODE_MAX];
  struct wire_msg msg;
  size_t n = wire_encode_hello (buf, &h);

  if (ok) {
    decode_ok (buf, n, 0, &msg);
    assert_true (msg.u.hello.image_size == image_size);
    assert_int_equal (msg.u.hello.block_size, block_size);
  }
  else
    expect_error (buf, n, 0);
}

static void
test_hello_fields (void **state)
{
  expect_hello (1, 4096, 0, true);
  expect_hello (INT64_MAX, 4096, 0, true);
  expect_hello (0, 4096, 0, false);
  expect_hello ((uint64_t) INT64_MAX + 1, 4096, 0, false);
  expect_hello (UINT64_MAX, 4096, 0, false);
  expect_hello (IMAGE_SIZE, 64u << 20, 0, true);
  expect_hello (IMAGE_SIZE, 128u << 20, 0, false);
  expect_hello (IMAGE_SIZE, 2048, 0, false);
  expect_hello (IMAGE_SIZE, 0, 0, false);
  expect_hello (IMAGE_SIZE, 6144, 0, false);
  expect_hello (IMAGE_SIZE, 65537, 0, false);
  expect_hello (IMAGE_SIZE, 0x80000000u, 0, false);
  /* Bit 0 is WIRE_FEATURE_DISKS, which needs a disk table
   * (test_wire_disks.c); bit 1 is WIRE_FEATURE_EXPORT, which needs
   * nothing more; WIRE_FEATURE_HASH (4) and its companions need nothing
   * more either (test_wire_hash.c); bit 8 (0x100) is not defined, nor is
   * KEPT, which only a HELLO_REPLY may carry. */
  expect_hello (IMAGE_SIZE, 65536, WIRE_FEATURE_EXPORT, true);
  expect_hello (IMAGE_SIZE, 65536, WIRE_FEATURE_HASH | WIRE_FEATURE_KEEP, true);
  expect_hello (IMAGE_SIZE, 65536, 0x100, false);
  expect_hello (IMAGE_SIZE, 65536, WIRE_FEATURE_KEPT, false);
  expect_hello (IMAGE_SIZE, 65536, 0x80000000u, false);
}

static void
test_hello_reply_fields (void **state)
{
  struct wire_hello_reply r = { 0 };
  uint8_t buf[WIRE_ENCODE_MAX];
  struct wire_msg msg;
  size_t n;

  r.mode = WIRE_MODE_PREPARED;
  n = wire_encode_hello_reply (buf, &r);
  decode_ok (buf, n, 0, &msg);
  r.mode = WIRE_MODE_FINAL;
  n = wire_encode_hello_reply (buf, &r);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.hello_reply.mode, WIRE_MODE_FINAL);
  r.mode = 4;
  n = wire_encode_hello_reply (buf, &r);
  expect_error (buf, n, 0);
  r.mode = UINT32_MAX;
  n = wire_encode_hello_reply (buf, &r);
  expect_error (buf, n, 0);
  r.mode = WIRE_MODE_NEW;
  r.features = 0x100;
  n = wire_encode_hello_reply (buf, &r);
  expect_error (buf, n, 0);
  r.features = WIRE_FEATURE_HASH | WIRE_FEATURE_KEPT;
  n = wire_encode_hello_reply (buf, &r);
  decode_ok (buf, n, 0, &msg);
  r.features = 0;
  r.durable_seq = UINT64_MAX;
  n = wire_encode_hello_reply (buf, &r);
  decode_ok (buf, n, 0, &msg);
  assert_true (msg.u.hello_reply.durable_seq == UINT64_MAX);
}

/* OUTCOME and RECORDED: 12 bytes, and only the values they define. */
static void
test_outcome_fields (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX];
  struct wire_msg msg;
  size_t n;

  n = wire_encode_outcome (buf, UINT64_MAX, WIRE_OUTCOME_FLIPPED);
  assert_int_equal (n, WIRE_HEADER_SIZE + 12);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_OUTCOME);
  assert_true (msg.u.outcome.seq == UINT64_MAX);
  assert_int_equal (msg.u.outcome.value, WIRE_OUTCOME_FLIPPED);
  n = wire_encode_outcome (buf, 3, WIRE_OUTCOME_THAWED);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.u.outcome.value, WIRE_OUTCOME_THAWED);
  n = wire_encode_outcome (buf, 3, 0);
  expect_error (buf, n, 0);
  n = wire_encode_outcome (buf, 3, 3);
  expect_error (buf, n, 0);

  n = wire_encode_recorded (buf, 9, WIRE_STATE_FINAL);
  decode_ok (buf, n, 0, &msg);
  assert_int_equal (msg.type, WIRE_RECORDED);
  assert_int_equal (msg.u.outcome.seq, 9);
  assert_int_equal (msg.u.outcome.value, WIRE_STATE_FINAL);
  n = wire_encode_recorded (buf, 9, 4);
  expect_error (buf, n, 0);

  /* A payload of the wrong length is refused from the header alone. */
  n = wire_encode_outcome (buf, 3, WIRE_OUTCOME_FLIPPED);
  buf[11] = 13;
  expect_error (buf, n, 0);
}

static void
test_names (void **state)
{
  assert_string_equal (wire_type_name (WIRE_DATA), "DATA");
  assert_string_equal (wire_type_name (WIRE_HELLO_REPLY), "HELLO_REPLY");
  assert_string_equal (wire_type_name (WIRE_KEEPALIVE), "KEEPALIVE");
  assert_string_equal (wire_type_name (0), "unknown");
  assert_string_equal (wire_type_name (WIRE_OUTCOME), "OUTCOME");
  assert_string_equal (wire_type_name (WIRE_RECORDED), "RECORDED");
  assert_string_equal (wire_type_name (WIRE_HASHES), "HASHES");
  assert_string_equal (wire_type_name (99), "unknown");
  assert_string_equal (wire_dest_state_name (WIRE_STATE_PREPARED), "prepared");
  assert_string_equal (wire_dest_state_name (WIRE_STATE_SUPERSEDED), "superseded");
  assert_string_equal (wire_dest_state_name (4), "unknown");
  assert_string_equal (wire_error_code_name (WIRE_ERR_IO), "EIO");
  assert_string_equal (wire_error_code_name (WIRE_ERR_BUSY), "EBUSY");
  assert_string_equal (wire_error_code_name (0), "unknown");
  assert_string_equal (wire_error_code_name (1000), "unknown");
}

/* ---- mutation fuzzing ---- */

/* xorshift64*: a fixed seed makes every run feed the same inputs. */
static uint64_t
next_random (uint64_t *s)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dull;
}

static bool
text_valid (const char *t, uint32_t len)
{
  uint32_t i;

  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char) t[i];
    if (c != '\t' && (c < 0x20 || c == 0x7f))
      return false;
  }
  return true;
}

/* What the receiver and sender rely on for any message the decoder
 * accepts. */
static void
check_invariants (const uint8_t *buf, size_t len, uint64_t image_size,
                  const struct wire_msg *msg, size_t consumed)
{
  assert_true (consumed >= WIRE_HEADER_SIZE);
  assert_true (consumed <= len);
  assert_true (consumed <= WIRE_MAX_FRAME);
  assert_int_not_equal (strcmp (wire_type_name (msg->type), "unknown"), 0);

  switch (msg->type) {
  case WIRE_HELLO:
    assert_int_equal (consumed, WIRE_HEADER_SIZE + 32);
    assert_true (msg->u.hello.image_size >= 1);
    assert_true (msg->u.hello.image_size <= (uint64_t) INT64_MAX);
    assert_true (msg->u.hello.block_size >= WIRE_MIN_BLOCK);
    assert_true (msg->u.hello.block_size <= WIRE_MAX_BLOCK);
    assert_int_equal (msg->u.hello.block_size & (msg->u.hello.block_size - 1), 0);
    assert_int_equal (msg->u.hello.features & ~WIRE_FEATURES_KNOWN, 0);
    assert_int_equal (msg->u.hello.features & WIRE_FEATURE_DISKS, 0);
    break;
  case WIRE_HELLO_REPLY:
    assert_true (msg->u.hello_reply.mode <= WIRE_MODE_FINAL);
    break;
  case WIRE_DATA:
    assert_true (image_size > 0);
    assert_true (msg->u.data.length >= 1);
    assert_true (msg->u.data.length <= WIRE_MAX_DATA);
    assert_int_equal (consumed, WIRE_HEADER_SIZE + 12 + msg->u.data.length);
    assert_ptr_equal (msg->u.data.bytes, buf + WIRE_HEADER_SIZE + 12);
    assert_true (msg->u.data.offset < image_size);
    assert_true (msg->u.data.length <= image_size - msg->u.data.offset);
    break;
  case WIRE_ZERO:
    assert_true (image_size > 0);
    assert_true (msg->u.zero.length >= 1);
    assert_true (msg->u.zero.offset < image_size);
    assert_true (msg->u.zero.length <= image_size - msg->u.zero.offset);
    break;
  case WIRE_COMMITTED:
    assert_true (msg->u.committed.text_len <= WIRE_MAX_TEXT);
    assert_int_equal (consumed, WIRE_HEADER_SIZE + 4 + msg->u.committed.text_len);
    assert_true (text_valid (msg->u.committed.text, msg->u.committed.text_len));
    break;
  case WIRE_ERROR:
  case WIRE_ABORT:
    assert_true (msg->u.error.text_len <= WIRE_MAX_TEXT);
    assert_int_equal (consumed, WIRE_HEADER_SIZE + 8 + msg->u.error.text_len);
    assert_true (text_valid (msg->u.error.text, msg->u.error.text_len));
    break;
  case WIRE_KEEPALIVE:
    assert_int_equal (consumed, WIRE_HEADER_SIZE);
    break;
  default:
    break;
  }
}

#define FUZZ_ITERATIONS 20000

static void
test_mutation_fuzz (void **state)
{
  static uint8_t frames[NFRAMES][FRAME_ROOM];
  static uint8_t work[FRAME_ROOM];
  size_t lens[NFRAMES], nframes, iter;
  uint64_t seed = 0x53544d5720261121ull;
  unsigned ok = 0, need_more = 0, errors = 0;

  nframes = build_valid_frames (frames, lens);
  for (iter = 0; iter < FUZZ_ITERATIONS; iter++) {
    size_t f = next_random (&seed) % nframes;
    size_t len = lens[f], nmut, m;
    uint64_t image_size;
    struct wire_msg msg;
    size_t consumed = 0;
    const char *why = NULL;
    enum wire_decode_result r;
    uint8_t *copy;

    memcpy (work, frames[f], len);
    nmut = 1 + next_random (&seed) % 4;
    for (m = 0; m < nmut; m++) {
      uint64_t x = next_random (&seed);
      size_t pos = (size_t) ((x >> 8) % len);

      switch (x % 6) {
      case 0:                   /* flip one bit */
        work[pos] ^= (uint8_t) (1u << ((x >> 40) % 8));
        break;
      case 1:                   /* replace a byte */
        work[pos] = (uint8_t) (x >> 32);
        break;
      case 2:                   /* cut the frame short */
        len = pos;
        break;
      case 3:                   /* rewrite the header's payload length */
        be32 (work + 8, (uint32_t) (x >> 32) % (len + 64));
        break;
      case 4:                   /* rewrite an inner u32 length or offset */
        if (len >= WIRE_HEADER_SIZE + 12)
          be32 (work + WIRE_HEADER_SIZE + 4 * ((x >> 16) % 3),
                (uint32_t) (x >> 32));
        break;
      case 5:                   /* extreme values at a random position */
        if (pos + 8 <= len)
          be64 (work + pos, (x >> 32) & 1 ? UINT64_MAX : 0);
        break;
      }
      if (len == 0)
        break;
    }

    switch (next_random (&seed) % 4) {
    case 0: image_size = 0; break;
    case 1: image_size = IMAGE_SIZE; break;
    case 2: image_size = UINT64_MAX; break;
    default: image_size = 1 + next_random (&seed) % IMAGE_SIZE; break;
    }

    /* An exact-size heap copy so that over-reads are caught by ASan. */
    copy = malloc (len ? len : 1);
    assert_non_null (copy);
    memcpy (copy, work, len);
    r = decode_sized (copy, len, image_size, &msg, &consumed, &why);
    switch (r) {
    case WIRE_DECODE_OK:
      ok++;
      check_invariants (copy, len, image_size, &msg, consumed);
      break;
    case WIRE_DECODE_NEED_MORE:
      need_more++;
      assert_true (consumed > len);
      assert_true (consumed <= WIRE_MAX_FRAME);
      if (len < WIRE_HEADER_SIZE)
        assert_int_equal (consumed, WIRE_HEADER_SIZE);
      break;
    case WIRE_DECODE_ERROR:
      errors++;
      assert_non_null (why);
      assert_true (why[0] != '\0');
      break;
    default:
      fail_msg ("wire_decode returned %d", (int) r);
    }
    free (copy);
  }
  /* The mutations must exercise all three outcomes, or the loop is not
   * testing what it claims to. */
  assert_true (ok > 100);
  assert_true (need_more > 100);
  assert_true (errors > 100);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip_hello),
    cmocka_unit_test (test_round_trip_hello_reply),
    cmocka_unit_test (test_round_trip_data),
    cmocka_unit_test (test_round_trip_data_max),
    cmocka_unit_test (test_round_trip_fixed),
    cmocka_unit_test (test_round_trip_texts),
    cmocka_unit_test (test_encode_text_limits),
    cmocka_unit_test (test_consecutive_frames),
    cmocka_unit_test (test_truncation),
    cmocka_unit_test (test_bad_header),
    cmocka_unit_test (test_unknown_type),
    cmocka_unit_test (test_fixed_length_mismatch),
    cmocka_unit_test (test_data_length),
    cmocka_unit_test (test_text_length),
    cmocka_unit_test (test_text_content),
    cmocka_unit_test (test_range_ok),
    cmocka_unit_test (test_data_range),
    cmocka_unit_test (test_zero_range),
    cmocka_unit_test (test_early_refusal),
    cmocka_unit_test (test_hello_fields),
    cmocka_unit_test (test_hello_reply_fields),
    cmocka_unit_test (test_outcome_fields),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_mutation_fuzz),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
