/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: libFuzzer harness for the wire decoder (proto/wire.c).
 *
 * The receiver and the sender decode whatever bytes arrive on their TLS
 * connection with wire_decode, so every input here stands for a hostile
 * peer.  The input is read as a stream of frames, the way a connection
 * reader consumes it, once for each of a few image sizes: 0 growing to the
 * size a decoded HELLO announces (what a receiver does), a fixed 1 MiB
 * (the seed corpus's image), the largest legal image, and a size derived
 * from the first frame's offset and length fields so that ranges ending
 * exactly at, just before or just past the end of the image are common.
 *
 * For every frame the harness checks what the callers rely on: an accepted
 * frame lies inside the input and encodes back to the same bytes, DATA and
 * ZERO ranges lie inside the image, texts are bounded and printable; a
 * request for more bytes never exceeds WIRE_MAX_FRAME; every prefix of an
 * accepted frame asks for more bytes rather than failing; a refused or
 * incomplete frame leaves the caller's message untouched.  An accepted
 * DATA_ZSTD's frame is handed to the receiver's decompression
 * (zstd_inflate), which must either refuse it with a reason or produce
 * exactly the announced length.  Finally the
 * input, read as a C string, is passed through the text encoders, whose
 * output the decoder must accept.  A broken invariant aborts, which
 * libFuzzer reports as a crash with the input that caused it.
 */
#include <config.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "zstd_frame.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Abort with the broken invariant's text; libFuzzer saves the input. */
#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "fuzz_wire_decode: invariant broken: %s (%s:%d)\n", \
               #cond, __FILE__, __LINE__);                              \
      abort ();                                                         \
    }                                                                   \
  } while (0)

/* The image the seed corpus's DATA and ZERO frames address. */
#define SEED_IMAGE_SIZE (1024u * 1024)

/* Raw big-endian reads, independent of the code under test. */
static uint32_t
be32 (const uint8_t *p)
{
  return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
         ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static uint64_t
be64 (const uint8_t *p)
{
  return ((uint64_t) be32 (p) << 32) | be32 (p + 4);
}

/* The same rule as the decoder's, restated here so that a change to one
 * without the other is noticed. */
static bool
text_is_clean (const char *text, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char) text[i];
    if (c != '\t' && (c < 0x20 || c == 0x7f))
      return false;
  }
  return true;
}

/* A text of an accepted frame must lie inside the frame, end exactly where
 * the frame ends, be bounded and be clean. */
static void
check_text (const uint8_t *frame, size_t frame_size,
            const char *text, uint32_t text_len)
{
  CHECK (text_len <= WIRE_MAX_TEXT);
  CHECK ((const uint8_t *) text >= frame + WIRE_HEADER_SIZE);
  CHECK ((const uint8_t *) text + text_len == frame + frame_size);
  CHECK (text_is_clean (text, text_len));
}

/* Copy a frame's text into a NUL-terminated string for the encoders; the
 * text holds no NUL (check_text saw to that). */
static const char *
text_string (char *buf, const char *text, uint32_t text_len)
{
  memcpy (buf, text, text_len);
  buf[text_len] = '\0';
  return buf;
}

/* Encode msg again and compare with the frame it was decoded from: the
 * decoder must not have lost, invented or reinterpreted a field. */
static void
check_round_trip (const struct wire_msg *msg, const uint8_t *frame,
                  size_t frame_size)
{
  uint8_t out[WIRE_ENCODE_HELLO_MAX + WIRE_ENCODE_TEXT_MAX];
  char text[WIRE_MAX_TEXT + 1];
  size_t n;

  switch (msg->type) {
  case WIRE_HELLO: n = wire_encode_hello (out, &msg->u.hello); break;
  case WIRE_HELLO_REPLY:
    n = wire_encode_hello_reply (out, &msg->u.hello_reply);
    break;
  case WIRE_DATA:
    n = wire_encode_disk_data_header (out, msg->disk, msg->u.data.offset,
                                      msg->u.data.length);
    CHECK (n + msg->u.data.length == frame_size);
    CHECK (msg->u.data.bytes == frame + n);
    frame_size = n;             /* the data bytes are not re-encoded */
    break;
  case WIRE_DATA_ZSTD:
    n = wire_encode_data_zstd_header (out, msg->disk, msg->u.data_zstd.offset,
                                      msg->u.data_zstd.length,
                                      msg->u.data_zstd.frame_len);
    CHECK (n + msg->u.data_zstd.frame_len == frame_size);
    CHECK (msg->u.data_zstd.frame == frame + n);
    frame_size = n;             /* the frame is not re-encoded */
    break;
  case WIRE_ZERO:
    n = wire_encode_disk_zero (out, msg->disk, msg->u.zero.offset,
                               msg->u.zero.length);
    break;
  case WIRE_PASS_BEGIN:
    n = wire_encode_pass_begin (out, msg->u.pass_begin.pass,
                                msg->u.pass_begin.bytes);
    break;
  case WIRE_PASS_END: n = wire_encode_pass_end (out, msg->u.pass_end.pass); break;
  case WIRE_SYNC: n = wire_encode_sync (out, msg->u.sync.seq); break;
  case WIRE_DURABLE: n = wire_encode_durable (out, msg->u.sync.seq); break;
  case WIRE_COMMIT: n = wire_encode_commit (out, msg->u.commit.seq); break;
  case WIRE_COMMITTED:
    n = wire_encode_committed (out, text_string (text, msg->u.committed.text,
                                                 msg->u.committed.text_len));
    break;
  case WIRE_EXPORT:
    n = wire_encode_export (out, msg->disk,
                            text_string (text, msg->u.export_uri.text,
                                         msg->u.export_uri.text_len));
    break;
  case WIRE_ERROR:
    n = wire_encode_error (out, msg->u.error.code,
                           text_string (text, msg->u.error.text,
                                        msg->u.error.text_len));
    break;
  case WIRE_ABORT:
    n = wire_encode_abort (out, msg->u.error.code,
                           text_string (text, msg->u.error.text,
                                        msg->u.error.text_len));
    break;
  case WIRE_KEEPALIVE: n = wire_encode_keepalive (out); break;
  case WIRE_OUTCOME:
    n = wire_encode_outcome (out, msg->u.outcome.seq, msg->u.outcome.value);
    break;
  case WIRE_RECORDED:
    n = wire_encode_recorded (out, msg->u.outcome.seq, msg->u.outcome.value);
    break;
  case WIRE_HASH_KEY: n = wire_encode_hash_key (out, msg->u.hash_key.key); break;
  case WIRE_HASH_REQ:
    n = wire_encode_hash_req (out, msg->disk, msg->u.hash.offset, msg->u.hash.length,
                              msg->u.hash.unit);
    break;
  case WIRE_HASHES:
    n = wire_encode_hashes_header (out, msg->disk, msg->u.hash.offset,
                                   msg->u.hash.length, msg->u.hash.unit);
    CHECK (n + (size_t) msg->u.hash.count * WIRE_HASH_LEN == frame_size);
    CHECK (msg->u.hash.hashes == frame + n);
    frame_size = n;             /* the hashes are not re-encoded */
    break;
  default:
    CHECK (!"decoder accepted an unknown type");
    return;
  }
  CHECK (n == frame_size);
  CHECK (memcmp (out, frame, n) == 0);
}

/* What the receiver does with an accepted DATA_ZSTD: decompress it into
 * exactly its length, or refuse it with a reason.  Decompressed once per
 * decoding of the frame; the inflater lives for the whole run, as a
 * session's does. */
static void
check_inflate (const struct wire_msg *msg)
{
  static struct zstd_inflater *z;
  const uint8_t *out;
  const char *why = NULL;

  if (z == NULL)
    z = zstd_inflater_new ();
  CHECK (z != NULL);
  out = zstd_inflate (z, msg->u.data_zstd.frame, msg->u.data_zstd.frame_len,
                      msg->u.data_zstd.length, &why);
  if (out == NULL)
    CHECK (why != NULL && why[0] != '\0' && strlen (why) < 200);
  else {
    /* The last byte is readable (ASan checks the buffer's extent). */
    volatile uint8_t last = out[msg->u.data_zstd.length - 1];
    (void) last;
  }
}

/* The checks on one accepted frame. */
static void
check_accepted (const struct wire_msg *msg, const uint8_t *frame,
                size_t avail, size_t consumed, const struct wire_disks *disks)
{
  uint64_t image_size = 0;
  uint32_t i, j;

  /* Only DATA, DATA_ZSTD, ZERO, EXPORT, HASH_REQ and HASHES name a disk,
   * and only one announced. */
  if (msg->type == WIRE_DATA || msg->type == WIRE_ZERO ||
      msg->type == WIRE_EXPORT || msg->type == WIRE_DATA_ZSTD ||
      msg->type == WIRE_HASH_REQ || msg->type == WIRE_HASHES) {
    CHECK (msg->disk < disks->count);
    image_size = disks->size[msg->disk];
  }
  else
    CHECK (msg->disk == 0);

  CHECK (consumed >= WIRE_HEADER_SIZE);
  CHECK (consumed <= avail);
  CHECK (consumed <= WIRE_MAX_FRAME);
  CHECK (consumed == WIRE_HEADER_SIZE + (size_t) be32 (frame + 8));
  CHECK ((uint32_t) msg->type == ((uint32_t) frame[6] << 8 | frame[7]));

  switch (msg->type) {
  case WIRE_HELLO:
    CHECK (msg->u.hello.image_size >= 1);
    CHECK (msg->u.hello.image_size <= (uint64_t) WIRE_MAX_IMAGE_SIZE);
    CHECK (msg->u.hello.block_size >= WIRE_MIN_BLOCK);
    CHECK (msg->u.hello.block_size <= WIRE_MAX_BLOCK);
    CHECK ((msg->u.hello.block_size & (msg->u.hello.block_size - 1)) == 0);
    CHECK ((msg->u.hello.features & ~WIRE_FEATURES_KNOWN) == 0);
    CHECK (msg->u.hello.ndisks >= 1 && msg->u.hello.ndisks <= WIRE_MAX_DISKS);
    CHECK (msg->u.hello.disks[0].size == msg->u.hello.image_size);
    CHECK (msg->u.hello.disks[0].block_size == msg->u.hello.block_size);
    for (i = 0; i < msg->u.hello.ndisks; i++) {
      const struct wire_hello_disk *d = &msg->u.hello.disks[i];

      CHECK (d->size >= 1 && d->size <= (uint64_t) WIRE_MAX_IMAGE_SIZE);
      CHECK ((d->block_size & (d->block_size - 1)) == 0);
      if (msg->u.hello.features & WIRE_FEATURE_DISKS) {
        CHECK (wire_disk_name_ok (d->name, d->name_len));
        CHECK ((const uint8_t *) d->name >= frame + WIRE_HEADER_SIZE);
        CHECK ((const uint8_t *) d->name + d->name_len <= frame + consumed);
        for (j = 0; j < i; j++)
          CHECK (d->name_len != msg->u.hello.disks[j].name_len ||
                 memcmp (d->name, msg->u.hello.disks[j].name, d->name_len) != 0);
      }
      else
        CHECK (msg->u.hello.ndisks == 1 && d->name_len == 0);
    }
    break;
  case WIRE_HELLO_REPLY:
    CHECK (msg->u.hello_reply.mode <= WIRE_MODE_FINAL);
    CHECK ((msg->u.hello_reply.features & ~WIRE_REPLY_FEATURES_KNOWN) == 0);
    break;
  case WIRE_DATA:
    /* What the receiver's pwrite relies on. */
    CHECK (image_size > 0);
    CHECK (msg->u.data.length >= 1 && msg->u.data.length <= WIRE_MAX_DATA);
    CHECK (msg->u.data.offset < image_size);
    CHECK (msg->u.data.length <= image_size - msg->u.data.offset);
    CHECK (msg->u.data.bytes >= frame + WIRE_HEADER_SIZE);
    CHECK (msg->u.data.bytes + msg->u.data.length == frame + consumed);
    break;
  case WIRE_DATA_ZSTD:
    CHECK (image_size > 0);
    CHECK (msg->u.data_zstd.length >= 1 && msg->u.data_zstd.length <= WIRE_MAX_DATA);
    CHECK (msg->u.data_zstd.offset < image_size);
    CHECK (msg->u.data_zstd.length <= image_size - msg->u.data_zstd.offset);
    CHECK (msg->u.data_zstd.frame_len >= 1);
    CHECK (msg->u.data_zstd.frame + msg->u.data_zstd.frame_len == frame + consumed);
    check_inflate (msg);
    break;
  case WIRE_ZERO:
    CHECK (image_size > 0);
    CHECK (msg->u.zero.length >= 1);
    CHECK (msg->u.zero.offset < image_size);
    CHECK (msg->u.zero.length <= image_size - msg->u.zero.offset);
    break;
  case WIRE_COMMITTED:
    check_text (frame, consumed, msg->u.committed.text,
                msg->u.committed.text_len);
    break;
  case WIRE_EXPORT:
    CHECK (msg->u.export_uri.text_len >= 1);
    check_text (frame, consumed, msg->u.export_uri.text,
                msg->u.export_uri.text_len);
    break;
  case WIRE_ERROR:
  case WIRE_ABORT:
    check_text (frame, consumed, msg->u.error.text, msg->u.error.text_len);
    break;
  case WIRE_OUTCOME:
    CHECK (msg->u.outcome.value == WIRE_OUTCOME_FLIPPED ||
           msg->u.outcome.value == WIRE_OUTCOME_THAWED);
    break;
  case WIRE_RECORDED:
    CHECK (msg->u.outcome.value <= WIRE_STATE_SUPERSEDED);
    break;
  case WIRE_HASH_REQ:
  case WIRE_HASHES:
    /* What the receiver's read and the sender's window rely on. */
    CHECK (image_size > 0);
    CHECK (msg->u.hash.length >= 1 && msg->u.hash.length <= WIRE_MAX_HASH_RANGE);
    CHECK (msg->u.hash.offset < image_size);
    CHECK (msg->u.hash.length <= image_size - msg->u.hash.offset);
    CHECK (msg->u.hash.unit >= WIRE_HASH_MIN_UNIT && msg->u.hash.unit <= WIRE_HASH_MAX_UNIT);
    CHECK ((msg->u.hash.unit & (msg->u.hash.unit - 1)) == 0);
    CHECK (msg->u.hash.count == wire_hash_count (msg->u.hash.length, msg->u.hash.unit));
    break;
  case WIRE_HASH_KEY:
  case WIRE_PASS_BEGIN:
  case WIRE_PASS_END:
  case WIRE_SYNC:
  case WIRE_DURABLE:
  case WIRE_COMMIT:
  case WIRE_KEEPALIVE:
    break;
  default:
    CHECK (!"decoder accepted an unknown type");
  }
  CHECK (wire_type_name (msg->type) != NULL);
  check_round_trip (msg, frame, consumed);
}

/* Decode frame[0..len) from a heap block of exactly len bytes, so that
 * AddressSanitizer sees any read past what the decoder was given. */
static enum wire_decode_result
decode_exact (const uint8_t *frame, size_t len, const struct wire_disks *disks,
              struct wire_msg *msg, size_t *consumed, const char **why)
{
  uint8_t *copy = malloc (len ? len : 1);
  enum wire_decode_result r;

  CHECK (copy != NULL);
  if (len > 0)
    memcpy (copy, frame, len);
  r = wire_decode (copy, len, disks, msg, consumed, why);
  free (copy);
  return r;
}

/* Every proper prefix of an accepted frame is incomplete, never wrong:
 * a reader that receives a valid frame in pieces must not drop the peer.
 * Checking every prefix of a large DATA frame would be slow, so the
 * header boundary, the end of the fixed part and the last byte are
 * checked, plus one length chosen from the frame's own bytes. */
static void
check_prefixes (const uint8_t *frame, size_t frame_size,
                const struct wire_disks *disks)
{
  size_t cuts[8], i, ncuts = 0;

  cuts[ncuts++] = 0;
  cuts[ncuts++] = WIRE_HEADER_SIZE - 1;
  cuts[ncuts++] = WIRE_HEADER_SIZE;
  cuts[ncuts++] = WIRE_HEADER_SIZE + 8;
  cuts[ncuts++] = WIRE_HEADER_SIZE + 12;
  cuts[ncuts++] = frame_size - 1;
  cuts[ncuts++] = frame_size > 1 ? be32 (frame + 8) % frame_size : 0;

  for (i = 0; i < ncuts; i++) {
    struct wire_msg msg, before;
    const char *why = NULL;
    size_t consumed = 0;
    enum wire_decode_result r;

    if (cuts[i] >= frame_size)
      continue;
    memset (&msg, 0xa5, sizeof msg);
    before = msg;
    r = decode_exact (frame, cuts[i], disks, &msg, &consumed, &why);
    CHECK (r == WIRE_DECODE_NEED_MORE);
    CHECK (memcmp (&msg, &before, sizeof msg) == 0);
    if (cuts[i] < WIRE_HEADER_SIZE)
      CHECK (consumed == WIRE_HEADER_SIZE);
    else
      CHECK (consumed == frame_size);
  }
}

/* Read data[0..size) as consecutive frames, as a connection reader does.
 * If session is true the disk table starts empty and follows HELLO. */
static void
decode_stream (const uint8_t *data, size_t size, const struct wire_disks *start,
               bool session)
{
  struct wire_disks disks = *start;
  size_t pos = 0;
  unsigned frames = 0;

  /* Each accepted frame consumes at least a header, so the loop ends; the
   * count bound is a second guard against a decoder that returns 0. */
  while (pos < size && frames <= size / WIRE_HEADER_SIZE) {
    struct wire_msg msg, before;
    const char *why = NULL;
    size_t consumed = (size_t) -1;
    enum wire_decode_result r;

    memset (&msg, 0x5a, sizeof msg);
    before = msg;
    r = wire_decode (data + pos, size - pos, &disks, &msg, &consumed, &why);
    switch (r) {
    case WIRE_DECODE_OK:
      check_accepted (&msg, data + pos, size - pos, consumed, &disks);
      check_prefixes (data + pos, consumed, &disks);
      if (session && msg.type == WIRE_HELLO)
        wire_disks_from_hello (&disks, &msg.u.hello);
      pos += consumed;
      frames++;
      break;
    case WIRE_DECODE_NEED_MORE:
      CHECK (consumed > size - pos);
      CHECK (consumed >= WIRE_HEADER_SIZE);
      CHECK (consumed <= WIRE_MAX_FRAME);
      CHECK (memcmp (&msg, &before, sizeof msg) == 0);
      return;
    case WIRE_DECODE_ERROR:
      CHECK (why != NULL && why[0] != '\0');
      CHECK (strlen (why) < 200);
      CHECK (memcmp (&msg, &before, sizeof msg) == 0);
      return;
    default:
      CHECK (!"wire_decode returned an unknown result");
    }
  }
}

/* The text encoders clean and cut any C string; what they produce must
 * always decode, to the cleaned text. */
static void
check_text_encoders (const uint8_t *data, size_t size)
{
  uint8_t out[WIRE_ENCODE_TEXT_MAX];
  char *text = malloc (size + 1);
  struct wire_msg msg;
  const char *why;
  size_t n, consumed, in_len;
  int k;

  CHECK (text != NULL);
  memcpy (text, data, size);
  text[size] = '\0';
  in_len = strlen (text);

  for (k = 0; k < 3; k++) {
    const char *t;
    uint32_t t_len;

    if (k == 0)
      n = wire_encode_committed (out, text);
    else if (k == 1)
      n = wire_encode_error (out, WIRE_ERR_IO, text);
    else
      n = wire_encode_abort (out, WIRE_ERR_ABORTED, text);
    CHECK (n <= sizeof out);
    CHECK (wire_decode (out, n, NULL, &msg, &consumed, &why) == WIRE_DECODE_OK);
    CHECK (consumed == n);
    if (k == 0) {
      t = msg.u.committed.text;
      t_len = msg.u.committed.text_len;
    }
    else {
      t = msg.u.error.text;
      t_len = msg.u.error.text_len;
    }
    CHECK (t_len <= in_len && t_len <= WIRE_MAX_TEXT);
    /* A short enough text is kept whole, its bad bytes made spaces. */
    if (in_len <= WIRE_MAX_TEXT)
      CHECK (t_len == in_len);
    for (size_t i = 0; i < t_len; i++)
      CHECK (t[i] == text[i] || t[i] == ' ');
  }
  free (text);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint64_t derived = SEED_IMAGE_SIZE;
  struct wire_disks d;

  /* The first frame's offset plus its length (DATA's u32 or ZERO's u64),
   * nudged by the last byte: the range then ends at, before or after the
   * image's end. */
  if (size >= WIRE_HEADER_SIZE + 16) {
    uint64_t offset = be64 (data + WIRE_HEADER_SIZE);
    uint64_t length = data[7] == WIRE_ZERO
      ? be64 (data + WIRE_HEADER_SIZE + 8) : be32 (data + WIRE_HEADER_SIZE + 8);
    derived = offset + length + (uint64_t) (data[size - 1] % 3) - 1;
  }

  wire_disks_one (&d, 0);
  decode_stream (data, size, &d, true);
  wire_disks_one (&d, SEED_IMAGE_SIZE);
  decode_stream (data, size, &d, false);
  wire_disks_one (&d, (uint64_t) WIRE_MAX_IMAGE_SIZE);
  decode_stream (data, size, &d, false);
  wire_disks_one (&d, derived);
  decode_stream (data, size, &d, false);
  /* The two-disk table of the seeds' group session, and a third disk
   * whose size the input chose. */
  d.count = 3;
  d.size[0] = SEED_IMAGE_SIZE;
  d.size[1] = SEED_IMAGE_SIZE / 2;
  d.size[2] = derived ? derived : 1;
  decode_stream (data, size, &d, false);
  check_text_encoders (data, size);
  return 0;
}
