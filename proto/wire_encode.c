/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the encoders of the sender-receiver wire format (wire.h), and the
 * names of its types, states and error codes for messages.
 *
 * Like the decoder in wire.c this does no I/O and allocates nothing: each
 * encoder writes one frame's header and fixed payload into the caller's
 * buffer.  The encoders trust their caller (the values are ours); what
 * they must never produce, a frame the decoder would refuse, is asserted.
 */
#include <config.h>

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bits.h"
#include "wire.h"
#include "wire_bytes.h"

size_t
wire_encode_hello (uint8_t *out, const struct wire_hello *h)
{
  uint8_t *p = out + WIRE_HEADER_SIZE;
  uint32_t pos = HELLO_PAYLOAD, i;

  memcpy (p, h->migration_id, WIRE_MIGRATION_ID_LEN);
  put_u64 (p + 16, h->image_size);
  put_u32 (p + 24, h->block_size);
  put_u32 (p + 28, h->features);
  if (h->features & WIRE_FEATURE_DISKS) {
    /* A table the decoder would refuse is a bug in the sender. */
    assert (h->ndisks >= 1 && h->ndisks <= WIRE_MAX_DISKS);
    assert (h->disks[0].size == h->image_size &&
            h->disks[0].block_size == h->block_size);
    put_u32 (p + pos, h->ndisks);
    pos += 4;
    for (i = 0; i < h->ndisks; i++) {
      const struct wire_hello_disk *d = &h->disks[i];

      assert (wire_disk_name_ok (d->name, d->name_len));
      put_u64 (p + pos, d->size);
      put_u32 (p + pos + 8, d->block_size);
      put_u16 (p + pos + 12, d->name_len);
      memcpy (p + pos + HELLO_DISK_FIXED, d->name, d->name_len);
      pos += HELLO_DISK_FIXED + d->name_len;
    }
  }
  put_header (out, WIRE_HELLO, pos);
  return WIRE_HEADER_SIZE + pos;
}

size_t
wire_encode_hello_reply (uint8_t *out, const struct wire_hello_reply *r)
{
  size_t n = put_header (out, WIRE_HELLO_REPLY, HELLO_REPLY_PAYLOAD);

  put_u32 (out + n, r->mode);
  put_u32 (out + n + 4, r->features);
  put_u64 (out + n + 8, r->durable_seq);
  return n + HELLO_REPLY_PAYLOAD;
}

size_t
wire_encode_disk_data_header (uint8_t *out, uint32_t disk, uint64_t offset,
                              uint32_t length)
{
  size_t n;

  /* A frame the decoder would refuse is a bug in the sender. */
  assert (length >= 1 && length <= WIRE_MAX_DATA);
  assert (disk < WIRE_MAX_DISKS);
  n = put_header_disk (out, WIRE_DATA, DATA_FIXED + length, disk);
  put_u64 (out + n, offset);
  put_u32 (out + n + 8, length);
  return n + DATA_FIXED;
}

size_t
wire_encode_data_zstd_header (uint8_t *out, uint32_t disk, uint64_t offset,
                              uint32_t length, uint32_t frame_len)
{
  size_t n;

  assert (length >= 1 && length <= WIRE_MAX_DATA);
  assert (frame_len >= 1 && frame_len <= WIRE_MAX_DATA);
  assert (disk < WIRE_MAX_DISKS);
  n = put_header_disk (out, WIRE_DATA_ZSTD, DATA_FIXED + frame_len, disk);
  put_u64 (out + n, offset);
  put_u32 (out + n + 8, length);
  return n + DATA_FIXED;
}

size_t
wire_encode_data_header (uint8_t *out, uint64_t offset, uint32_t length)
{
  return wire_encode_disk_data_header (out, 0, offset, length);
}

size_t
wire_encode_disk_zero (uint8_t *out, uint32_t disk, uint64_t offset,
                       uint64_t length)
{
  size_t n;

  assert (disk < WIRE_MAX_DISKS);
  n = put_header_disk (out, WIRE_ZERO, ZERO_PAYLOAD, disk);
  put_u64 (out + n, offset);
  put_u64 (out + n + 8, length);
  return n + ZERO_PAYLOAD;
}

size_t
wire_encode_zero (uint8_t *out, uint64_t offset, uint64_t length)
{
  return wire_encode_disk_zero (out, 0, offset, length);
}

size_t
wire_encode_pass_begin (uint8_t *out, uint32_t pass, uint64_t bytes)
{
  size_t n = put_header (out, WIRE_PASS_BEGIN, PASS_BEGIN_PAYLOAD);

  put_u32 (out + n, pass);
  put_u64 (out + n + 4, bytes);
  return n + PASS_BEGIN_PAYLOAD;
}

size_t
wire_encode_pass_end (uint8_t *out, uint32_t pass)
{
  size_t n = put_header (out, WIRE_PASS_END, PASS_END_PAYLOAD);

  put_u32 (out + n, pass);
  return n + PASS_END_PAYLOAD;
}

static size_t
encode_seq (uint8_t *out, enum wire_type type, uint64_t seq)
{
  size_t n = put_header (out, type, SEQ_PAYLOAD);

  put_u64 (out + n, seq);
  return n + SEQ_PAYLOAD;
}

size_t
wire_encode_sync (uint8_t *out, uint64_t seq)
{
  return encode_seq (out, WIRE_SYNC, seq);
}

size_t
wire_encode_durable (uint8_t *out, uint64_t seq)
{
  return encode_seq (out, WIRE_DURABLE, seq);
}

size_t
wire_encode_commit (uint8_t *out, uint64_t seq)
{
  return encode_seq (out, WIRE_COMMIT, seq);
}

/* Copy text into a frame, cut to WIRE_MAX_TEXT bytes (backing off so that a
 * UTF-8 sequence is never split) and with every byte the decoder would
 * refuse replaced by a space: an error message that happens to hold a
 * newline must still reach the peer rather than become a protocol error.
 * Returns the number of bytes written. */
static uint32_t
put_text (uint8_t *out, const char *text)
{
  size_t len, i;

  if (text == NULL)
    text = "";
  len = strnlen (text, WIRE_MAX_TEXT + 1);
  if (len > WIRE_MAX_TEXT) {
    len = WIRE_MAX_TEXT;
    while (len > 0 && ((uint8_t) text[len] & 0xc0) == 0x80)
      len--;
  }
  for (i = 0; i < len; i++) {
    uint8_t c = (uint8_t) text[i];
    out[i] = text_byte_ok (c) ? c : ' ';
  }
  return (uint32_t) len;
}

size_t
wire_encode_committed (uint8_t *out, const char *uri)
{
  uint8_t *payload = out + WIRE_HEADER_SIZE;
  uint32_t len = put_text (payload + COMMITTED_FIXED, uri);

  put_header (out, WIRE_COMMITTED, COMMITTED_FIXED + len);
  put_u32 (payload, len);
  return WIRE_HEADER_SIZE + COMMITTED_FIXED + len;
}

size_t
wire_encode_export (uint8_t *out, uint32_t disk, const char *uri)
{
  uint8_t *payload = out + WIRE_HEADER_SIZE;
  uint32_t len = put_text (payload + EXPORT_FIXED, uri);

  /* An empty EXPORT says nothing; the decoder refuses it. */
  assert (len >= 1);
  assert (disk < WIRE_MAX_DISKS);
  put_header_disk (out, WIRE_EXPORT, EXPORT_FIXED + len, disk);
  put_u32 (payload, len);
  return WIRE_HEADER_SIZE + EXPORT_FIXED + len;
}

static size_t
encode_error (uint8_t *out, enum wire_type type, uint32_t code,
              const char *text)
{
  uint8_t *payload = out + WIRE_HEADER_SIZE;
  uint32_t len = put_text (payload + ERROR_FIXED, text);

  put_header (out, type, ERROR_FIXED + len);
  put_u32 (payload, code);
  put_u32 (payload + 4, len);
  return WIRE_HEADER_SIZE + ERROR_FIXED + len;
}

size_t
wire_encode_error (uint8_t *out, uint32_t code, const char *text)
{
  return encode_error (out, WIRE_ERROR, code, text);
}

size_t
wire_encode_abort (uint8_t *out, uint32_t code, const char *text)
{
  return encode_error (out, WIRE_ABORT, code, text);
}

size_t
wire_encode_keepalive (uint8_t *out)
{
  return put_header (out, WIRE_KEEPALIVE, 0);
}

static size_t
encode_outcome (uint8_t *out, enum wire_type type, uint64_t seq, uint32_t value)
{
  size_t n = put_header (out, type, OUTCOME_PAYLOAD);

  put_u64 (out + n, seq);
  put_u32 (out + n + 8, value);
  return n + OUTCOME_PAYLOAD;
}

size_t
wire_encode_outcome (uint8_t *out, uint64_t seq, enum wire_outcome outcome)
{
  return encode_outcome (out, WIRE_OUTCOME, seq, outcome);
}

size_t
wire_encode_recorded (uint8_t *out, uint64_t seq, enum wire_dest_state state)
{
  return encode_outcome (out, WIRE_RECORDED, seq, state);
}

size_t
wire_encode_hash_key (uint8_t *out, const uint8_t *key)
{
  size_t n = put_header (out, WIRE_HASH_KEY, HASH_KEY_PAYLOAD);
  memcpy (out + n, key, WIRE_HASH_KEY_LEN);
  return n + HASH_KEY_PAYLOAD;
}

static size_t
encode_hash (uint8_t *out, enum wire_type type, uint32_t payload_len,
             uint32_t disk, uint64_t offset, uint32_t length, uint32_t unit)
{
  assert (length >= 1 && length <= WIRE_MAX_HASH_RANGE);
  assert (is_power_of_two (unit) && unit >= WIRE_HASH_MIN_UNIT &&
          unit <= WIRE_HASH_MAX_UNIT);
  size_t n = put_header_disk (out, type, payload_len, disk);
  put_u64 (out + n, offset);
  put_u32 (out + n + 8, length);
  put_u32 (out + n + 12, unit);
  return n + HASH_FIXED;
}

size_t
wire_encode_hash_req (uint8_t *out, uint32_t disk, uint64_t offset,
                      uint32_t length, uint32_t unit)
{
  return encode_hash (out, WIRE_HASH_REQ, HASH_FIXED, disk, offset, length, unit);
}

size_t
wire_encode_hashes_header (uint8_t *out, uint32_t disk, uint64_t offset,
                           uint32_t length, uint32_t unit)
{
  uint32_t payload = HASH_FIXED + WIRE_HASH_LEN * wire_hash_count (length, unit);
  return encode_hash (out, WIRE_HASHES, payload, disk, offset, length, unit);
}

const char *
wire_type_name (uint32_t type)
{
  switch (type) {
  case WIRE_HELLO: return "HELLO";
  case WIRE_HELLO_REPLY: return "HELLO_REPLY";
  case WIRE_DATA: return "DATA";
  case WIRE_ZERO: return "ZERO";
  case WIRE_PASS_BEGIN: return "PASS_BEGIN";
  case WIRE_PASS_END: return "PASS_END";
  case WIRE_SYNC: return "SYNC";
  case WIRE_DURABLE: return "DURABLE";
  case WIRE_COMMIT: return "COMMIT";
  case WIRE_COMMITTED: return "COMMITTED";
  case WIRE_ABORT: return "ABORT";
  case WIRE_ERROR: return "ERROR";
  case WIRE_KEEPALIVE: return "KEEPALIVE";
  case WIRE_OUTCOME: return "OUTCOME";
  case WIRE_RECORDED: return "RECORDED";
  case WIRE_EXPORT: return "EXPORT";
  case WIRE_HASH_KEY: return "HASH_KEY";
  case WIRE_HASH_REQ: return "HASH_REQ";
  case WIRE_HASHES: return "HASHES";
  case WIRE_DATA_ZSTD: return "DATA_ZSTD";
  default: return "unknown";
  }
}

const char *
wire_dest_state_name (uint32_t state)
{
  switch (state) {
  case WIRE_STATE_INCOMPLETE: return "incomplete";
  case WIRE_STATE_PREPARED: return "prepared";
  case WIRE_STATE_FINAL: return "final";
  case WIRE_STATE_SUPERSEDED: return "superseded";
  default: return "unknown";
  }
}

/* Short names in the style of errno names, for log lines such as
 * "receiver refused: EBUSY another migration is in progress".  Where no
 * errno fits (mismatch, internal) the name is made up in the same style. */
const char *
wire_error_code_name (uint32_t code)
{
  switch (code) {
  case WIRE_ERR_PROTOCOL: return "EPROTO";
  case WIRE_ERR_BUSY: return "EBUSY";
  case WIRE_ERR_IO: return "EIO";
  case WIRE_ERR_NOSPACE: return "ENOSPC";
  case WIRE_ERR_MISMATCH: return "EMISMATCH";
  case WIRE_ERR_ABORTED: return "ECANCELED";
  case WIRE_ERR_INTERNAL: return "EINTERNAL";
  default: return "unknown";
  }
}
