/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: encoding and decoding of the sender-receiver wire format.
 *
 * This file turns struct wire_msg values into big-endian frames and back.
 * It does no I/O and allocates nothing: the transport hands it a buffer, and
 * the decoder either fills a message whose pointers point into that buffer,
 * says how many bytes the frame needs in total, or refuses the frame with a
 * static sentence saying why.  Every field a peer controls is checked here,
 * before any caller can act on it, so the receiver never writes outside the
 * image and a reader never buffers more than WIRE_MAX_FRAME bytes.
 */
#include <config.h>

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bits.h"
#include "wire.h"
#include "wire_bytes.h"
void
wire_disks_one (struct wire_disks *d, uint64_t image_size)
{
  memset (d, 0, sizeof *d);
  if (image_size > 0) {
    d->count = 1;
    d->size[0] = image_size;
  }
}

void
wire_disks_from_hello (struct wire_disks *d, const struct wire_hello *h)
{
  uint32_t i;

  memset (d, 0, sizeof *d);
  assert (h->ndisks <= WIRE_MAX_DISKS);
  d->count = h->ndisks;
  for (i = 0; i < h->ndisks; i++)
    d->size[i] = h->disks[i].size;
}

/* Disk names end up in file names, log lines, command lines and NBD
 * export names, so they are kept to characters that are safe in all of
 * them, and never start with '.' (".." must never name a file beside the
 * export's others) or '-' (never an option). */
bool
wire_disk_name_ok (const char *name, size_t len)
{
  size_t i;

  if (len == 0 || len > WIRE_MAX_DISK_NAME || name[0] == '.' || name[0] == '-')
    return false;
  for (i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* Does the message type name a disk in its header? */
static bool
type_has_disk (uint16_t type)
{
  return type == WIRE_DATA || type == WIRE_ZERO || type == WIRE_EXPORT ||
         type == WIRE_HASH_REQ || type == WIRE_HASHES || type == WIRE_DATA_ZSTD;
}

bool
wire_range_ok (uint64_t offset, uint64_t length, uint64_t image_size)
{
  /* Written as two comparisons against image_size so that offset + length
   * is never computed and so can never wrap around. */
  if (length == 0)
    return false;
  if (offset >= image_size)
    return false;
  return length <= image_size - offset;
}

/* Texts (ERROR, ABORT and COMMITTED) are shown to people and written to
 * logs, so they may hold no NUL (they are not NUL-terminated in the frame
 * and a NUL would silently cut them) and no control characters that could
 * forge log lines or move the terminal cursor.  Tab is harmless.  Bytes of
 * 0x80 and above are allowed so that UTF-8 text passes. */
static bool
text_ok (const uint8_t *text, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++)
    if (!text_byte_ok (text[i]))
      return false;
  return true;
}

/* The bounds on a type's payload length that can be checked from the
 * header alone, before the payload has arrived.  min == max for the types
 * whose payload is fixed.  *fixed is the size of the part of the payload
 * that holds numbers (all of it, but for DATA's bytes and the texts). */
static bool
payload_bounds (uint16_t type, uint32_t *min, uint32_t *max, uint32_t *fixed)
{
  *fixed = 0;
  switch (type) {
  case WIRE_HELLO:
    /* The disk table is checked once the whole payload is there; it is
     * small (at most HELLO_PAYLOAD_MAX bytes). */
    *min = HELLO_PAYLOAD;
    *max = HELLO_PAYLOAD_MAX;
    return true;
  case WIRE_HELLO_REPLY:
    *min = *max = HELLO_REPLY_PAYLOAD;
    return true;
  case WIRE_DATA:
  case WIRE_DATA_ZSTD:
    /* At least one byte of data: an empty DATA carries nothing.  A
     * DATA_ZSTD frame is no larger than the data it holds. */
    *min = DATA_FIXED + 1;
    *max = DATA_FIXED + WIRE_MAX_DATA;
    *fixed = DATA_FIXED;
    return true;
  case WIRE_ZERO:
    *min = *max = ZERO_PAYLOAD;
    return true;
  case WIRE_PASS_BEGIN:
    *min = *max = PASS_BEGIN_PAYLOAD;
    return true;
  case WIRE_PASS_END:
    *min = *max = PASS_END_PAYLOAD;
    return true;
  case WIRE_SYNC:
  case WIRE_DURABLE:
  case WIRE_COMMIT:
    *min = *max = SEQ_PAYLOAD;
    return true;
  case WIRE_COMMITTED:
    *min = *fixed = COMMITTED_FIXED;
    *max = COMMITTED_FIXED + WIRE_MAX_TEXT;
    return true;
  case WIRE_EXPORT:
    *fixed = EXPORT_FIXED;
    *min = EXPORT_FIXED + 1;
    *max = EXPORT_FIXED + WIRE_MAX_TEXT;
    return true;
  case WIRE_ABORT:
  case WIRE_ERROR:
    *min = *fixed = ERROR_FIXED;
    *max = ERROR_FIXED + WIRE_MAX_TEXT;
    return true;
  case WIRE_KEEPALIVE:
    *min = *max = 0;
    return true;
  case WIRE_HASH_KEY:
    *min = *max = HASH_KEY_PAYLOAD;
    return true;
  case WIRE_HASH_REQ:
    *min = *max = HASH_FIXED;
    return true;
  case WIRE_HASHES:
    /* The count follows from the fixed part, which is checked as soon
     * as it is buffered (decode_hash). */
    *min = HASH_FIXED + WIRE_HASH_LEN;
    *max = HASH_FIXED + WIRE_HASH_LEN * (WIRE_MAX_HASH_RANGE / WIRE_HASH_MIN_UNIT);
    *fixed = HASH_FIXED;
    return true;
  case WIRE_OUTCOME:
  case WIRE_RECORDED:
    *min = *max = OUTCOME_PAYLOAD;
    return true;
  default:
    return false;
  }
}

/* A payload-length error worded for the type, so that the peer's log says
 * which kind of frame was malformed. */
static const char *
payload_length_why (uint16_t type, uint32_t plen, uint32_t max)
{
  switch (type) {
  case WIRE_DATA:
    if (plen > max)
      return "DATA payload exceeds the 8 MiB data limit";
    return "DATA payload is too short to hold an offset, a length and data";
  case WIRE_DATA_ZSTD:
    if (plen > max)
      return "DATA_ZSTD frame exceeds the 8 MiB data limit";
    return "DATA_ZSTD payload is too short to hold an offset, a length and a frame";
  case WIRE_COMMITTED:
    if (plen > max)
      return "COMMITTED URI exceeds the 1024-byte text limit";
    return "COMMITTED payload is too short to hold its URI length";
  case WIRE_ABORT:
    if (plen > max)
      return "ABORT text exceeds the 1024-byte text limit";
    return "ABORT payload is too short to hold a code and a text length";
  case WIRE_ERROR:
    if (plen > max)
      return "ERROR text exceeds the 1024-byte text limit";
    return "ERROR payload is too short to hold a code and a text length";
  case WIRE_HELLO:
    if (plen > max)
      return "HELLO payload exceeds the size of the largest disk table";
    return "HELLO payload is shorter than 32 bytes";
  case WIRE_EXPORT:
    if (plen > max)
      return "EXPORT URI exceeds the 1024-byte text limit";
    return "EXPORT payload is too short to hold a URI length and a URI";
  case WIRE_HELLO_REPLY:
    return "HELLO_REPLY payload length is not 16 bytes";
  case WIRE_ZERO:
    return "ZERO payload length is not 16 bytes";
  case WIRE_PASS_BEGIN:
    return "PASS_BEGIN payload length is not 12 bytes";
  case WIRE_PASS_END:
    return "PASS_END payload length is not 4 bytes";
  case WIRE_SYNC:
    return "SYNC payload length is not 8 bytes";
  case WIRE_DURABLE:
    return "DURABLE payload length is not 8 bytes";
  case WIRE_COMMIT:
    return "COMMIT payload length is not 8 bytes";
  case WIRE_KEEPALIVE:
    return "KEEPALIVE carries a payload";
  case WIRE_OUTCOME:
    return "OUTCOME payload length is not 12 bytes";
  case WIRE_RECORDED:
    return "RECORDED payload length is not 12 bytes";
  case WIRE_HASH_KEY:
    return "HASH_KEY payload length is not 16 bytes";
  case WIRE_HASH_REQ:
    return "HASH_REQ payload length is not 16 bytes";
  case WIRE_HASHES:
    if (plen > max)
      return "HASHES payload exceeds the hashes of an 8 MiB range";
    return "HASHES payload is too short to hold a range and one hash";
  default:
    return "payload length is wrong for the message type";
  }
}

/* Check one disk's geometry; which names the disk in the reason. */
static bool
geometry_ok (uint64_t size, uint32_t block, const char **why)
{
  if (size == 0) {
    *why = "HELLO announces an empty image";
    return false;
  }
  if (size > (uint64_t) WIRE_MAX_IMAGE_SIZE) {
    *why = "HELLO image size exceeds 2^63-1 bytes";
    return false;
  }
  if (!is_power_of_two (block) ||
      block < WIRE_MIN_BLOCK || block > WIRE_MAX_BLOCK) {
    *why = "HELLO block size is not a power of two from 4 KiB to 64 MiB";
    return false;
  }
  return true;
}

/* Decode the disk table that follows the fixed part of a HELLO with
 * WIRE_FEATURE_DISKS: u32 ndisks, then per disk u64 size, u32 block, u16
 * name_len, name.  It must fill the payload exactly. */
static bool
decode_disk_table (const uint8_t *p, uint32_t plen, struct wire_hello *h,
                   const char **why)
{
  uint32_t pos = HELLO_PAYLOAD, i, j;

  if (plen < HELLO_PAYLOAD + 4) {
    *why = "HELLO with the disks feature has no disk count";
    return false;
  }
  h->ndisks = get_u32 (p + pos);
  pos += 4;
  if (h->ndisks == 0 || h->ndisks > WIRE_MAX_DISKS) {
    *why = "HELLO disk count is not from 1 to 16";
    return false;
  }
  for (i = 0; i < h->ndisks; i++) {
    struct wire_hello_disk *d = &h->disks[i];

    /* pos <= plen always holds, so plen - pos cannot wrap. */
    if (plen - pos < HELLO_DISK_FIXED) {
      *why = "HELLO disk table ends inside a disk's entry";
      return false;
    }
    d->size = get_u64 (p + pos);
    d->block_size = get_u32 (p + pos + 8);
    d->name_len = get_u16 (p + pos + 12);
    pos += HELLO_DISK_FIXED;
    if (d->name_len > plen - pos) {
      *why = "HELLO disk table ends inside a disk's name";
      return false;
    }
    d->name = (const char *) (p + pos);
    pos += d->name_len;
    if (!geometry_ok (d->size, d->block_size, why))
      return false;
    if (!wire_disk_name_ok (d->name, d->name_len)) {
      *why = "HELLO disk name is not 1 to 64 of A-Z a-z 0-9 . _ -";
      return false;
    }
    for (j = 0; j < i; j++)
      if (h->disks[j].name_len == d->name_len &&
          memcmp (h->disks[j].name, d->name, d->name_len) == 0) {
        *why = "HELLO names the same disk twice";
        return false;
      }
  }
  if (pos != plen) {
    *why = "HELLO has bytes after its disk table";
    return false;
  }
  /* The fixed part repeats disk 0, so that code which knows one disk
   * (logs, the one-disk receiver) reads a true size there. */
  if (h->disks[0].size != h->image_size ||
      h->disks[0].block_size != h->block_size) {
    *why = "HELLO image and block size differ from its first disk's";
    return false;
  }
  return true;
}

static enum wire_decode_result
decode_hello (const uint8_t *p, uint32_t plen, struct wire_hello *h,
              const char **why)
{
  memcpy (h->migration_id, p, WIRE_MIGRATION_ID_LEN);
  h->image_size = get_u64 (p + 16);
  h->block_size = get_u32 (p + 24);
  h->features = get_u32 (p + 28);
  if ((h->features & ~WIRE_FEATURES_KNOWN) != 0) {
    *why = "HELLO asks for feature bits this version does not know";
    return WIRE_DECODE_ERROR;
  }
  if (!geometry_ok (h->image_size, h->block_size, why))
    return WIRE_DECODE_ERROR;
  if ((h->features & WIRE_FEATURE_DISKS) == 0) {
    if (plen != HELLO_PAYLOAD) {
      *why = "HELLO without the disks feature is not 32 bytes";
      return WIRE_DECODE_ERROR;
    }
    h->ndisks = 1;
    h->disks[0].size = h->image_size;
    h->disks[0].block_size = h->block_size;
    h->disks[0].name_len = 0;
    h->disks[0].name = NULL;
    return WIRE_DECODE_OK;
  }
  return decode_disk_table (p, plen, h, why) ? WIRE_DECODE_OK : WIRE_DECODE_ERROR;
}

/* OUTCOME and RECORDED: a seq and a value that must be known. */
static enum wire_decode_result
decode_outcome (uint16_t type, const uint8_t *p, struct wire_msg *msg,
                const char **why)
{
  msg->u.outcome.seq = get_u64 (p);
  msg->u.outcome.value = get_u32 (p + 8);
  if (type == WIRE_OUTCOME &&
      msg->u.outcome.value != WIRE_OUTCOME_FLIPPED &&
      msg->u.outcome.value != WIRE_OUTCOME_THAWED) {
    *why = "OUTCOME is neither flipped (1) nor thawed (2)";
    return WIRE_DECODE_ERROR;
  }
  if (type == WIRE_RECORDED && msg->u.outcome.value > WIRE_STATE_SUPERSEDED) {
    *why = "RECORDED names no known state (0 to 3)";
    return WIRE_DECODE_ERROR;
  }
  return WIRE_DECODE_OK;
}

/* DATA: its length is the rest of the payload, within the disk. */
static enum wire_decode_result
decode_data (const uint8_t *p, uint32_t plen, uint64_t image_size,
             struct wire_msg *msg, const char **why)
{
  msg->u.data.offset = get_u64 (p);
  msg->u.data.length = get_u32 (p + 8);
  msg->u.data.bytes = p + DATA_FIXED;
  /* The payload bound already limits plen to 13 .. 12 + 8 MiB, so a
   * length equal to plen - 12 is within 1 .. 8 MiB too. */
  if (msg->u.data.length != plen - DATA_FIXED) {
    *why = "DATA length does not match its payload length";
    return WIRE_DECODE_ERROR;
  }
  if (!wire_range_ok (msg->u.data.offset, msg->u.data.length, image_size)) {
    *why = "DATA range lies outside the image";
    return WIRE_DECODE_ERROR;
  }
  return WIRE_DECODE_OK;
}

/* ZERO: a range of any length within the disk, but not empty. */
static enum wire_decode_result
decode_zero (const uint8_t *p, uint64_t image_size, struct wire_msg *msg,
             const char **why)
{
  msg->u.zero.offset = get_u64 (p);
  msg->u.zero.length = get_u64 (p + 8);
  if (msg->u.zero.length == 0) {
    *why = "ZERO has length 0";
    return WIRE_DECODE_ERROR;
  }
  if (!wire_range_ok (msg->u.zero.offset, msg->u.zero.length, image_size)) {
    *why = "ZERO range lies outside the image";
    return WIRE_DECODE_ERROR;
  }
  return WIRE_DECODE_OK;
}

/* HASH_REQ and HASHES: a range of the disk, within WIRE_MAX_HASH_RANGE,
 * in units of a power of two from WIRE_HASH_MIN_UNIT to
 * WIRE_HASH_MAX_UNIT; HASHES must hold exactly the range's hashes. */
static enum wire_decode_result
decode_hash (uint16_t type, const uint8_t *p, uint32_t plen,
             uint64_t image_size, struct wire_msg *msg, const char **why)
{
  uint32_t unit = get_u32 (p + 12);

  msg->u.hash.offset = get_u64 (p);
  msg->u.hash.length = get_u32 (p + 8);
  msg->u.hash.unit = unit;
  msg->u.hash.hashes = p + HASH_FIXED;
  if (msg->u.hash.length == 0 || msg->u.hash.length > WIRE_MAX_HASH_RANGE) {
    *why = type == WIRE_HASH_REQ ? "HASH_REQ length is not from 1 byte to 8 MiB"
      : "HASHES length is not from 1 byte to 8 MiB";
    return WIRE_DECODE_ERROR;
  }
  if (!is_power_of_two (unit) || unit < WIRE_HASH_MIN_UNIT ||
      unit > WIRE_HASH_MAX_UNIT) {
    *why = type == WIRE_HASH_REQ
      ? "HASH_REQ unit is not a power of two from 4 KiB to 1 MiB"
      : "HASHES unit is not a power of two from 4 KiB to 1 MiB";
    return WIRE_DECODE_ERROR;
  }
  if (!wire_range_ok (msg->u.hash.offset, msg->u.hash.length, image_size)) {
    *why = type == WIRE_HASH_REQ ? "HASH_REQ range lies outside the image"
      : "HASHES range lies outside the image";
    return WIRE_DECODE_ERROR;
  }
  msg->u.hash.count = wire_hash_count (msg->u.hash.length, unit);
  if (type == WIRE_HASHES &&
      plen != HASH_FIXED + (uint64_t) WIRE_HASH_LEN * msg->u.hash.count) {
    *why = "HASHES payload does not hold exactly one hash per unit of its range";
    return WIRE_DECODE_ERROR;
  }
  return WIRE_DECODE_OK;
}

/* DATA_ZSTD: the range is the decompressed one, bounded as DATA's; the
 * frame is only counted here (zstd_frame.c judges it). */
static enum wire_decode_result
decode_data_zstd (const uint8_t *p, uint32_t plen, uint64_t image_size,
                  struct wire_msg *msg, const char **why)
{
  msg->u.data_zstd.offset = get_u64 (p);
  msg->u.data_zstd.length = get_u32 (p + 8);
  msg->u.data_zstd.frame_len = plen - DATA_FIXED;
  msg->u.data_zstd.frame = p + DATA_FIXED;
  if (msg->u.data_zstd.length == 0 || msg->u.data_zstd.length > WIRE_MAX_DATA) {
    *why = "DATA_ZSTD length is not from 1 byte to 8 MiB";
    return WIRE_DECODE_ERROR;
  }
  if (!wire_range_ok (msg->u.data_zstd.offset, msg->u.data_zstd.length, image_size)) {
    *why = "DATA_ZSTD range lies outside the image";
    return WIRE_DECODE_ERROR;
  }
  return WIRE_DECODE_OK;
}

/* Decode and check the fixed part of a payload whose length is within its
 * type's bounds.  p points at the payload; only the fixed part (see
 * payload_bounds) needs to be in the buffer, so that a DATA frame with a
 * bad range is refused before the reader buffers megabytes of it.  The
 * texts are checked by check_text once the whole frame is there. */
static enum wire_decode_result
decode_fixed (uint16_t type, const uint8_t *p, uint32_t plen,
              uint64_t image_size, struct wire_msg *msg, const char **why)
{
  switch (type) {
  case WIRE_HELLO:
    return decode_hello (p, plen, &msg->u.hello, why);

  case WIRE_HELLO_REPLY: {
    struct wire_hello_reply *r = &msg->u.hello_reply;

    r->mode = get_u32 (p);
    r->features = get_u32 (p + 4);
    r->durable_seq = get_u64 (p + 8);
    if (r->mode > WIRE_MODE_FINAL) {
      *why = "HELLO_REPLY mode is none of new (0), resume (1), prepared (2) "
        "and final (3)";
      return WIRE_DECODE_ERROR;
    }
    /* The receiver may only agree to features the sender offered, and the
     * sender can offer none that this version does not know. */
    if ((r->features & ~WIRE_REPLY_FEATURES_KNOWN) != 0) {
      *why = "HELLO_REPLY names feature bits this version does not know";
      return WIRE_DECODE_ERROR;
    }
    return WIRE_DECODE_OK;
  }

  case WIRE_DATA:
    return decode_data (p, plen, image_size, msg, why);

  case WIRE_DATA_ZSTD:
    return decode_data_zstd (p, plen, image_size, msg, why);

  case WIRE_ZERO:
    return decode_zero (p, image_size, msg, why);

  case WIRE_PASS_BEGIN:
    msg->u.pass_begin.pass = get_u32 (p);
    msg->u.pass_begin.bytes = get_u64 (p + 4);
    return WIRE_DECODE_OK;

  case WIRE_PASS_END:
    msg->u.pass_end.pass = get_u32 (p);
    return WIRE_DECODE_OK;

  case WIRE_SYNC:
  case WIRE_DURABLE:
    msg->u.sync.seq = get_u64 (p);
    return WIRE_DECODE_OK;

  case WIRE_COMMIT:
    msg->u.commit.seq = get_u64 (p);
    return WIRE_DECODE_OK;

  case WIRE_EXPORT:
    msg->u.export_uri.text_len = get_u32 (p);
    msg->u.export_uri.text = (const char *) (p + EXPORT_FIXED);
    if (msg->u.export_uri.text_len != plen - EXPORT_FIXED) {
      *why = "EXPORT URI length does not match its payload length";
      return WIRE_DECODE_ERROR;
    }
    return WIRE_DECODE_OK;

  case WIRE_COMMITTED:
    msg->u.committed.text_len = get_u32 (p);
    msg->u.committed.text = (const char *) (p + COMMITTED_FIXED);
    if (msg->u.committed.text_len != plen - COMMITTED_FIXED) {
      *why = "COMMITTED URI length does not match its payload length";
      return WIRE_DECODE_ERROR;
    }
    return WIRE_DECODE_OK;

  case WIRE_ABORT:
  case WIRE_ERROR:
    /* Codes are not checked against the known list: a newer peer may send
     * a code this version does not know, and the text still explains it. */
    msg->u.error.code = get_u32 (p);
    msg->u.error.text_len = get_u32 (p + 4);
    msg->u.error.text = (const char *) (p + ERROR_FIXED);
    if (msg->u.error.text_len != plen - ERROR_FIXED) {
      *why = type == WIRE_ERROR
        ? "ERROR text length does not match its payload length"
        : "ABORT text length does not match its payload length";
      return WIRE_DECODE_ERROR;
    }
    return WIRE_DECODE_OK;

  case WIRE_KEEPALIVE:
    return WIRE_DECODE_OK;

  case WIRE_OUTCOME:
  case WIRE_RECORDED:
    return decode_outcome (type, p, msg, why);

  case WIRE_HASH_KEY:
    msg->u.hash_key.key = p;
    return WIRE_DECODE_OK;

  case WIRE_HASH_REQ:
  case WIRE_HASHES:
    return decode_hash (type, p, plen, image_size, msg, why);

  default:
    /* payload_bounds refused every other type already. */
    abort ();
  }
}

/* Check the text of a complete COMMITTED, ERROR or ABORT frame whose
 * fixed part decode_fixed has accepted. */
static enum wire_decode_result
check_text (const struct wire_msg *msg, const char **why)
{
  switch (msg->type) {
  case WIRE_COMMITTED:
    if (!text_ok ((const uint8_t *) msg->u.committed.text,
                  msg->u.committed.text_len)) {
      *why = "COMMITTED URI contains a NUL or a control character";
      return WIRE_DECODE_ERROR;
    }
    return WIRE_DECODE_OK;
  case WIRE_EXPORT:
    if (!text_ok ((const uint8_t *) msg->u.export_uri.text,
                  msg->u.export_uri.text_len)) {
      *why = "EXPORT URI contains a NUL or a control character";
      return WIRE_DECODE_ERROR;
    }
    return WIRE_DECODE_OK;
  case WIRE_ERROR:
  case WIRE_ABORT:
    if (!text_ok ((const uint8_t *) msg->u.error.text,
                  msg->u.error.text_len)) {
      *why = msg->type == WIRE_ERROR
        ? "ERROR text contains a NUL or a control character"
        : "ABORT text contains a NUL or a control character";
      return WIRE_DECODE_ERROR;
    }
    return WIRE_DECODE_OK;
  default:
    return WIRE_DECODE_OK;
  }
}

enum wire_decode_result
wire_decode (const uint8_t *buf, size_t len, const struct wire_disks *disks,
             struct wire_msg *msg, size_t *consumed, const char **why)
{
  uint32_t magic, plen, disk, min, max, fixed, ndisks;
  uint64_t image_size = 0;
  uint16_t version, type;
  enum wire_decode_result r;
  size_t frame_size;
  struct wire_msg m;

  assert (buf != NULL || len == 0);
  assert (msg != NULL && consumed != NULL && why != NULL);
  *why = NULL;

  if (len < WIRE_HEADER_SIZE) {
    *consumed = WIRE_HEADER_SIZE;
    return WIRE_DECODE_NEED_MORE;
  }

  /* Everything that can be judged from the header is judged before the
   * reader is told how much more to buffer, so a hostile length can never
   * make it buffer more than WIRE_MAX_FRAME. */
  *consumed = 0;
  magic = get_u32 (buf);
  version = get_u16 (buf + 4);
  type = get_u16 (buf + 6);
  plen = get_u32 (buf + 8);
  disk = get_u32 (buf + 12);
  ndisks = disks != NULL ? disks->count : 0;
  assert (ndisks <= WIRE_MAX_DISKS);

  if (magic != WIRE_MAGIC) {
    *why = "bad magic: the peer does not speak the stm wire protocol";
    return WIRE_DECODE_ERROR;
  }
  if (version != WIRE_VERSION) {
    *why = "unsupported wire protocol version (this side speaks version 1)";
    return WIRE_DECODE_ERROR;
  }
  if (!payload_bounds (type, &min, &max, &fixed)) {
    *why = "unknown message type";
    return WIRE_DECODE_ERROR;
  }
  if (!type_has_disk (type) && disk != 0) {
    *why = "header names a disk in a message that is for no disk";
    return WIRE_DECODE_ERROR;
  }
  if (type_has_disk (type)) {
    if (ndisks == 0) {
      *why = type == WIRE_EXPORT
        ? "EXPORT arrived before HELLO announced the disks"
        : type == WIRE_HASH_REQ || type == WIRE_HASHES
        ? "HASH_REQ or HASHES arrived before HELLO announced the disks"
        : type == WIRE_DATA || type == WIRE_DATA_ZSTD
        ? "DATA arrived before HELLO announced the image size"
        : "ZERO arrived before HELLO announced the image size";
      return WIRE_DECODE_ERROR;
    }
    if (disk >= ndisks) {
      *why = "header names a disk the HELLO did not announce";
      return WIRE_DECODE_ERROR;
    }
    image_size = disks->size[disk];
  }
  if (plen < min || plen > max) {
    *why = payload_length_why (type, plen, max);
    return WIRE_DECODE_ERROR;
  }

  frame_size = (size_t) WIRE_HEADER_SIZE + plen;
  assert (frame_size <= WIRE_MAX_FRAME);
  if (fixed == 0)
    fixed = plen;

  /* The numbers of a variable-size payload are judged as soon as they
   * are buffered; fixed-size payloads are judged once complete.  The
   * message is decoded into a local copy so that the caller's is only
   * overwritten by a frame that passed every check. */
  memset (&m, 0, sizeof m);
  m.type = (enum wire_type) type;
  m.disk = disk;
  if (len >= (size_t) WIRE_HEADER_SIZE + fixed) {
    r = decode_fixed (type, buf + WIRE_HEADER_SIZE, plen, image_size, &m, why);
    if (r != WIRE_DECODE_OK)
      return r;
  }
  if (len < frame_size) {
    *consumed = frame_size;
    return WIRE_DECODE_NEED_MORE;
  }
  r = check_text (&m, why);
  if (r != WIRE_DECODE_OK)
    return r;
  *msg = m;
  *consumed = frame_size;
  return WIRE_DECODE_OK;
}
