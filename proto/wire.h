/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the sender-receiver wire format.
 *
 * Every message is a 16-byte header followed by a payload, all integers in
 * network byte order:
 *
 *   magic   u32  WIRE_MAGIC ("STMW")
 *   version u16  WIRE_VERSION
 *   type    u16  enum wire_type
 *   length  u32  payload length in bytes
 *   reserved u32 must be zero
 *
 * This file is pure encode/decode with no I/O and no allocation, so it can
 * be unit tested and fuzzed directly.  The decoder checks every field before
 * the caller sees the message: the payload length against the per-type
 * bound, and offsets and lengths against the image size without overflow.
 * DATA payloads are not copied: the decoded message points into the caller's
 * buffer.
 */
#ifndef STM_PROTO_WIRE_H
#define STM_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC 0x53544d57u          /* "STMW" */
#define WIRE_VERSION 1
#define WIRE_HEADER_SIZE 16

/* Largest DATA payload (bytes of image data in one message). */
#define WIRE_MAX_DATA (8u * 1024 * 1024)
/* Largest text in ERROR/ABORT/COMMITTED payloads. */
#define WIRE_MAX_TEXT 1024
/* Largest whole frame the decoder will ever ask a reader to buffer. */
#define WIRE_MAX_FRAME (WIRE_HEADER_SIZE + 12 + WIRE_MAX_DATA)
/* Block sizes the protocol accepts (matching the filter). */
#define WIRE_MIN_BLOCK 4096u
#define WIRE_MAX_BLOCK (64u * 1024 * 1024)
/* Largest image: 2^63 - 1 so offset+length never overflows int64 users. */
#define WIRE_MAX_IMAGE_SIZE INT64_MAX
#define WIRE_MIGRATION_ID_LEN 16

enum wire_type {
  WIRE_HELLO = 1,        /* sender -> receiver */
  WIRE_HELLO_REPLY = 2,  /* receiver -> sender */
  WIRE_DATA = 3,         /* sender -> receiver */
  WIRE_ZERO = 4,         /* sender -> receiver */
  WIRE_PASS_BEGIN = 5,   /* sender -> receiver */
  WIRE_PASS_END = 6,     /* sender -> receiver */
  WIRE_SYNC = 7,         /* sender -> receiver: make all before this durable */
  WIRE_DURABLE = 8,      /* receiver -> sender: everything up to SYNC seq is durable */
  WIRE_COMMIT = 9,       /* sender -> receiver: the image is complete */
  WIRE_COMMITTED = 10,   /* receiver -> sender: complete and durable */
  WIRE_ABORT = 11,       /* either way: the migration is abandoned */
  WIRE_ERROR = 12,       /* either way: a fatal error, code + text */
  WIRE_KEEPALIVE = 13,   /* either way */
  WIRE_OUTCOME = 14,     /* sender -> receiver: what became of the source
                          * after COMMITTED (flipped, or thawed) */
  WIRE_RECORDED = 15,    /* receiver -> sender: the state the outcome was
                          * recorded as, durably */
};

/* HELLO features bits (none defined yet; unknown bits are refused). */
#define WIRE_FEATURES_KNOWN 0u

/* HELLO_REPLY modes. */
enum wire_hello_mode {
  WIRE_MODE_NEW = 0,     /* the receiver has nothing of this migration */
  WIRE_MODE_RESUME = 1,  /* the receiver holds durable data of this migration */
  WIRE_MODE_PREPARED = 2,/* it holds this migration committed (prepared):
                          * complete and durable up to durable_seq, but
                          * whether the source flipped was never recorded */
  WIRE_MODE_FINAL = 3,   /* it holds this migration final: the source
                          * flipped to it */
};

/* The commit is two-phase.  COMMIT makes the destination durable and
 * records it as prepared; only OUTCOME, sent once the sender knows what
 * became of the source, makes it final (the source flipped) or superseded
 * (the source thawed and stays authoritative).  These are the states a
 * receiver records, as RECORDED reports them. */
enum wire_dest_state {
  WIRE_STATE_INCOMPLETE = 0,
  WIRE_STATE_PREPARED = 1,
  WIRE_STATE_FINAL = 2,
  WIRE_STATE_SUPERSEDED = 3,
};

/* OUTCOME values. */
enum wire_outcome {
  WIRE_OUTCOME_FLIPPED = 1,  /* the source flipped to this destination */
  WIRE_OUTCOME_THAWED = 2,   /* the source thawed: it stays authoritative */
};

/* Error codes carried by ERROR (and ABORT). */
enum wire_error_code {
  WIRE_ERR_PROTOCOL = 1,   /* malformed or unexpected message */
  WIRE_ERR_BUSY = 2,       /* another migration is in progress */
  WIRE_ERR_IO = 3,         /* I/O error on the destination */
  WIRE_ERR_NOSPACE = 4,    /* destination out of space */
  WIRE_ERR_MISMATCH = 5,   /* output belongs to another migration / size mismatch */
  WIRE_ERR_ABORTED = 6,    /* the peer gave up */
  WIRE_ERR_INTERNAL = 7,
};

struct wire_hello {
  uint8_t migration_id[WIRE_MIGRATION_ID_LEN];
  uint64_t image_size;
  uint32_t block_size;
  uint32_t features;
};                                          /* payload 32 bytes */

struct wire_hello_reply {
  uint32_t mode;            /* enum wire_hello_mode */
  uint32_t features;
  uint64_t durable_seq;     /* last SYNC seq made durable (0 = none) */
};                                          /* payload 16 bytes */

struct wire_msg {
  enum wire_type type;
  union {
    struct wire_hello hello;
    struct wire_hello_reply hello_reply;
    struct { uint64_t offset; uint32_t length; const uint8_t *bytes; } data;
                                            /* payload 12 + length */
    struct { uint64_t offset; uint64_t length; } zero;          /* 16 */
    struct { uint32_t pass; uint64_t bytes; } pass_begin;       /* 12 */
    struct { uint32_t pass; } pass_end;                         /* 4 */
    struct { uint64_t seq; } sync;                              /* 8 (SYNC, DURABLE) */
    struct { uint64_t seq; } commit;                            /* 8 */
    /* OUTCOME: the COMMIT's seq and an enum wire_outcome.  RECORDED: the
     * same seq and the enum wire_dest_state now recorded. */
    struct { uint64_t seq; uint32_t value; } outcome;           /* 12 */
    /* COMMITTED: an optional NBD URI where the finished image is served
     * (empty if none).  ERROR and ABORT: code and text.  The text is not
     * NUL-terminated in the buffer; it is checked to hold no NUL and no
     * control characters other than tab. */
    struct { uint32_t code; uint32_t text_len; const char *text; } error; /* 8 + len */
    struct { uint32_t text_len; const char *text; } committed;            /* 4 + len */
  } u;
};

/* Result of wire_decode. */
enum wire_decode_result {
  WIRE_DECODE_OK = 1,       /* *msg filled, *consumed bytes used */
  WIRE_DECODE_NEED_MORE = 0,/* not a whole frame yet; *consumed = bytes needed in total */
  WIRE_DECODE_ERROR = -1,   /* malformed; *why says what, in words */
};

/* Decode one frame from buf[0..len).  image_size bounds DATA and ZERO
 * ranges; pass 0 before the HELLO is known, and then DATA/ZERO are refused.
 * On NEED_MORE, *consumed is the total frame size if the header is complete
 * (never more than WIRE_MAX_FRAME), else WIRE_HEADER_SIZE. */
enum wire_decode_result wire_decode (const uint8_t *buf, size_t len,
                                     uint64_t image_size,
                                     struct wire_msg *msg, size_t *consumed,
                                     const char **why);

/* Is [offset, offset+length) inside an image of image_size bytes, with no
 * overflow?  length 0 is refused. */
bool wire_range_ok (uint64_t offset, uint64_t length, uint64_t image_size);

/* Encoders.  Each writes the header and the fixed part of the payload into
 * out (which must have room for WIRE_ENCODE_MAX bytes, except for text which
 * needs WIRE_HEADER_SIZE + 8 + WIRE_MAX_TEXT) and returns the number of bytes
 * written.  For DATA only the header and the 12-byte offset/length are
 * written: the caller sends the data bytes right after, so they are never
 * copied into a staging buffer.  Text longer than WIRE_MAX_TEXT is cut. */
#define WIRE_ENCODE_MAX 64
#define WIRE_ENCODE_TEXT_MAX (WIRE_HEADER_SIZE + 8 + WIRE_MAX_TEXT)
size_t wire_encode_hello (uint8_t *out, const struct wire_hello *h);
size_t wire_encode_hello_reply (uint8_t *out, const struct wire_hello_reply *r);
size_t wire_encode_data_header (uint8_t *out, uint64_t offset, uint32_t length);
size_t wire_encode_zero (uint8_t *out, uint64_t offset, uint64_t length);
size_t wire_encode_pass_begin (uint8_t *out, uint32_t pass, uint64_t bytes);
size_t wire_encode_pass_end (uint8_t *out, uint32_t pass);
size_t wire_encode_sync (uint8_t *out, uint64_t seq);
size_t wire_encode_durable (uint8_t *out, uint64_t seq);
size_t wire_encode_commit (uint8_t *out, uint64_t seq);
size_t wire_encode_committed (uint8_t *out, const char *uri);
size_t wire_encode_error (uint8_t *out, uint32_t code, const char *text);
size_t wire_encode_abort (uint8_t *out, uint32_t code, const char *text);
size_t wire_encode_keepalive (uint8_t *out);
size_t wire_encode_outcome (uint8_t *out, uint64_t seq, enum wire_outcome outcome);
size_t wire_encode_recorded (uint8_t *out, uint64_t seq, enum wire_dest_state state);

const char *wire_type_name (uint32_t type);          /* "DATA", or "unknown" */
const char *wire_error_code_name (uint32_t code);    /* "EIO"-style short name */
const char *wire_dest_state_name (uint32_t state);   /* "prepared", or "unknown" */

#endif /* STM_PROTO_WIRE_H */
