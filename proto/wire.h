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
 *   disk    u32  the disk a DATA, DATA_ZSTD, ZERO or EXPORT is for (an index
 *                into the HELLO's disk table); zero in every other message
 *
 * This file is pure encode/decode with no I/O and no allocation, so it can
 * be unit tested and fuzzed directly.  The decoder checks every field before
 * the caller sees the message: the payload length against the per-type
 * bound, the disk index against the disks the HELLO announced, and offsets
 * and lengths against that disk's size without overflow.
 * DATA payloads (and DATA_ZSTD frames) are not copied: the decoded message
 * points into the caller's buffer.  The decoder checks a DATA_ZSTD's range
 * (its length is the decompressed length) but not the frame inside, which
 * proto/zstd_frame.c decompresses and checks.
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
/* Most disks one migration may carry (WIRE_FEATURE_DISKS). */
#define WIRE_MAX_DISKS 16
/* Longest disk name; names are 1 to 64 of [A-Za-z0-9._-]. */
#define WIRE_MAX_DISK_NAME 64

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
  WIRE_EXPORT = 16,      /* receiver -> sender: the NBD URI (behind the
                          * gate until the commit) of one disk's image */
  WIRE_HASH_KEY = 17,    /* sender -> receiver: the secret key of this
                          * connection's block hashes */
  WIRE_HASH_REQ = 18,    /* sender -> receiver: hash a range of a disk */
  WIRE_HASHES = 19,      /* receiver -> sender: the hashes of that range */
  WIRE_DATA_ZSTD = 20,   /* sender -> receiver: DATA as a zstd frame
                          * (only after both agreed WIRE_FEATURE_ZSTD) */
};

/* HELLO feature bits; unknown bits are refused.  WIRE_FEATURE_DISKS: the
 * HELLO's fixed part is followed by a table of named disks (see
 * docs/protocol.md, "Several disks").  WIRE_FEATURE_EXPORT: the sender
 * understands EXPORT, so a receiver with --export announces each disk's
 * URI as soon as it is served (behind the gate), before any freeze; a
 * HELLO with WIRE_FEATURE_DISKS implies it.  HELLO_REPLY echoes the bits
 * the receiver agrees to. */
#define WIRE_FEATURE_DISKS 1u
#define WIRE_FEATURE_EXPORT 2u
/* Hash comparison (docs/protocol.md, "Comparing").  WIRE_FEATURE_HASH:
 * the sender can compare blocks by HASH_KEY, HASH_REQ and HASHES, and
 * will compare its first pass if the receiver keeps data to compare
 * against.  WIRE_FEATURE_KEEP (with HASH): keep whatever the outputs hold
 * for a new migration instead of emptying them (stm-send --compare).
 * WIRE_FEATURE_COMPARE_ONLY (with HASH): this connection only compares;
 * the receiver records nothing and changes nothing.  WIRE_FEATURE_KEPT
 * is never offered, only answered: the receiver kept the data its
 * outputs held for this new migration, so the sender must compare its
 * first pass (a block it skipped would keep the old data). */
#define WIRE_FEATURE_HASH 4u
#define WIRE_FEATURE_KEEP 8u
#define WIRE_FEATURE_COMPARE_ONLY 32u
#define WIRE_FEATURE_KEPT 64u
/* WIRE_FEATURE_ZSTD: the sender may send DATA_ZSTD; it does so only once
 * HELLO_REPLY has echoed the bit. */
#define WIRE_FEATURE_ZSTD 16u
#define WIRE_FEATURES_KNOWN (WIRE_FEATURE_DISKS | WIRE_FEATURE_EXPORT | \
                             WIRE_FEATURE_HASH | WIRE_FEATURE_KEEP | \
                             WIRE_FEATURE_ZSTD | WIRE_FEATURE_COMPARE_ONLY)
/* The bits a HELLO_REPLY may carry. */
#define WIRE_REPLY_FEATURES_KNOWN (WIRE_FEATURES_KNOWN | WIRE_FEATURE_KEPT)

/* Block hashes: UMAC-128 (block_hash.h) under a key the sender draws for
 * each connection, over units of a power of two from 4 KiB to 1 MiB (the
 * last unit of a range may be shorter).  A range asked for is at most
 * WIRE_MAX_HASH_RANGE bytes. */
#define WIRE_HASH_LEN 16
#define WIRE_HASH_KEY_LEN 16
#define WIRE_HASH_MIN_UNIT 4096u
#define WIRE_HASH_MAX_UNIT (1024u * 1024)
#define WIRE_MAX_HASH_RANGE (8u * 1024 * 1024)

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

/* One disk of a HELLO.  name points into the decoded frame (or, for
 * the encoder, the caller's string) and is not NUL-terminated; name_len
 * is 0 for the single unnamed disk of a HELLO without WIRE_FEATURE_DISKS. */
struct wire_hello_disk {
  uint64_t size;
  uint32_t block_size;
  uint16_t name_len;
  const char *name;
};

/* image_size and block_size are those of disk 0.  The decoder always fills
 * the disk table: a HELLO without WIRE_FEATURE_DISKS decodes as one unnamed
 * disk of image_size and block_size.  The encoder writes the table only
 * when features has WIRE_FEATURE_DISKS. */
struct wire_hello {
  uint8_t migration_id[WIRE_MIGRATION_ID_LEN];
  uint64_t image_size;
  uint32_t block_size;
  uint32_t features;
  uint32_t ndisks;
  struct wire_hello_disk disks[WIRE_MAX_DISKS];
};                  /* payload 32 bytes; with WIRE_FEATURE_DISKS 32 + 4 +
                     * for each disk 14 + name_len */

/* The disks a decoder bounds DATA, ZERO and EXPORT by: their count and
 * sizes, in the order of the HELLO's table.  count 0 (or no table at all)
 * before the HELLO. */
struct wire_disks {
  uint32_t count;
  uint64_t size[WIRE_MAX_DISKS];
};

struct wire_hello_reply {
  uint32_t mode;            /* enum wire_hello_mode */
  uint32_t features;
  uint64_t durable_seq;     /* last SYNC seq made durable (0 = none) */
};                                          /* payload 16 bytes */

struct wire_msg {
  enum wire_type type;
  uint32_t disk;            /* header's disk index (0 but for DATA, DATA_ZSTD,
                             * ZERO, EXPORT) */
  union {
    struct wire_hello hello;
    struct wire_hello_reply hello_reply;
    struct { uint64_t offset; uint32_t length; const uint8_t *bytes; } data;
                                            /* payload 12 + length */
    /* DATA_ZSTD: length is the decompressed length (1 to WIRE_MAX_DATA),
     * checked against the disk as DATA's; frame is the zstd frame. */
    struct { uint64_t offset; uint32_t length; uint32_t frame_len;
             const uint8_t *frame; } data_zstd;     /* payload 12 + frame_len */
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
    /* EXPORT: the NBD URI of msg.disk's image, 1 to WIRE_MAX_TEXT bytes,
     * checked as the texts are. */
    struct { uint32_t text_len; const char *text; } export_uri;           /* 4 + len */
    /* HASH_KEY: WIRE_HASH_KEY_LEN bytes, pointing into the frame. */
    struct { const uint8_t *key; } hash_key;                    /* 32 */
    /* HASH_REQ: hash [offset, offset+length) of msg.disk in units of unit
     * bytes.  HASHES: the answer, count = wire_hash_count (length, unit)
     * hashes of WIRE_HASH_LEN bytes each, pointing into the frame. */
    struct { uint64_t offset; uint32_t length; uint32_t unit;
             uint32_t count; const uint8_t *hashes; } hash;     /* 16 (+ 32 * count) */
  } u;
};

/* Result of wire_decode. */
enum wire_decode_result {
  WIRE_DECODE_OK = 1,       /* *msg filled, *consumed bytes used */
  WIRE_DECODE_NEED_MORE = 0,/* not a whole frame yet; *consumed = bytes needed in total */
  WIRE_DECODE_ERROR = -1,   /* malformed; *why says what, in words */
};

/* Decode one frame from buf[0..len).  disks bounds the header's disk
 * index of DATA, ZERO and EXPORT, and the ranges of DATA and ZERO; pass
 * NULL (or a table of count 0) before the HELLO is known, and then those
 * messages are refused.  On NEED_MORE, *consumed is the total frame size
 * if the header is complete (never more than WIRE_MAX_FRAME), else
 * WIRE_HEADER_SIZE. */
enum wire_decode_result wire_decode (const uint8_t *buf, size_t len,
                                     const struct wire_disks *disks,
                                     struct wire_msg *msg, size_t *consumed,
                                     const char **why);

/* Fill a one-disk table of image_size bytes (count 0 if image_size is 0). */
void wire_disks_one (struct wire_disks *d, uint64_t image_size);

/* The disk table a decoded (or to be encoded) HELLO announces. */
void wire_disks_from_hello (struct wire_disks *d, const struct wire_hello *h);

/* Is name (len bytes, not NUL-terminated) a valid disk name: 1 to
 * WIRE_MAX_DISK_NAME of [A-Za-z0-9._-], not starting with '.' or '-'? */
bool wire_disk_name_ok (const char *name, size_t len);

/* How many hashes cover length bytes in units of unit (unit > 0). */
static inline uint32_t
wire_hash_count (uint32_t length, uint32_t unit)
{
  return (uint32_t) (((uint64_t) length + unit - 1) / unit);
}

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
/* Room for any HELLO (with a full disk table of longest names). */
#define WIRE_ENCODE_HELLO_MAX \
  (WIRE_HEADER_SIZE + 32 + 4 + WIRE_MAX_DISKS * (14 + WIRE_MAX_DISK_NAME))
/* wire_encode_hello: a HELLO with WIRE_FEATURE_DISKS needs
 * WIRE_ENCODE_HELLO_MAX bytes of room and a valid table (1 to
 * WIRE_MAX_DISKS disks with valid, distinct names; disk 0's size and block
 * size equal to image_size and block_size), which is asserted. */
size_t wire_encode_hello (uint8_t *out, const struct wire_hello *h);
size_t wire_encode_hello_reply (uint8_t *out, const struct wire_hello_reply *r);
/* DATA and ZERO for disk 0 (a one-disk migration), and for any disk. */
size_t wire_encode_data_header (uint8_t *out, uint64_t offset, uint32_t length);
size_t wire_encode_zero (uint8_t *out, uint64_t offset, uint64_t length);
size_t wire_encode_disk_data_header (uint8_t *out, uint32_t disk,
                                     uint64_t offset, uint32_t length);
size_t wire_encode_disk_zero (uint8_t *out, uint32_t disk,
                              uint64_t offset, uint64_t length);
/* DATA_ZSTD's header and fixed part: frame_len bytes of zstd frame follow,
 * which decompress to length bytes (both 1 to WIRE_MAX_DATA). */
size_t wire_encode_data_zstd_header (uint8_t *out, uint32_t disk, uint64_t offset,
                                     uint32_t length, uint32_t frame_len);
/* EXPORT for disk: uri (non-empty; cut and cleaned as texts are) needs
 * WIRE_ENCODE_TEXT_MAX bytes of room. */
size_t wire_encode_export (uint8_t *out, uint32_t disk, const char *uri);
/* HASH_KEY (key is WIRE_HASH_KEY_LEN bytes), HASH_REQ, and the header and
 * fixed part of HASHES: the caller sends the count hashes right after.
 * The range and unit must be valid (asserted: 1 to WIRE_MAX_HASH_RANGE
 * bytes, unit a power of two from WIRE_HASH_MIN_UNIT to
 * WIRE_HASH_MAX_UNIT). */
size_t wire_encode_hash_key (uint8_t *out, const uint8_t *key);
size_t wire_encode_hash_req (uint8_t *out, uint32_t disk, uint64_t offset,
                             uint32_t length, uint32_t unit);
size_t wire_encode_hashes_header (uint8_t *out, uint32_t disk, uint64_t offset,
                                  uint32_t length, uint32_t unit);
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
