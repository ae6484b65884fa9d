/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: what the wire codec's two halves (wire.c decodes, wire_encode.c
 * encodes) share and nothing else needs: the payload sizes of the fixed
 * parts and the big-endian helpers.  Private to proto/.
 */
#ifndef STM_PROTO_WIRE_BYTES_H
#define STM_PROTO_WIRE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* Payload sizes of the fixed parts, as in docs/protocol.md. */
#define HELLO_PAYLOAD 32
#define HELLO_DISK_FIXED 14             /* size u64, block u32, name_len u16 */
#define HELLO_PAYLOAD_MAX \
  (HELLO_PAYLOAD + 4 + WIRE_MAX_DISKS * (HELLO_DISK_FIXED + WIRE_MAX_DISK_NAME))
#define HELLO_REPLY_PAYLOAD 16
#define DATA_FIXED 12
#define ZERO_PAYLOAD 16
#define PASS_BEGIN_PAYLOAD 12
#define PASS_END_PAYLOAD 4
#define SEQ_PAYLOAD 8
#define ERROR_FIXED 8
#define COMMITTED_FIXED 4
#define OUTCOME_PAYLOAD 12
#define EXPORT_FIXED 4
#define HASH_KEY_PAYLOAD WIRE_HASH_KEY_LEN
#define HASH_FIXED 16                   /* offset u64, length u32, unit u32 */

/* Big-endian helpers.  They work byte by byte so they need neither
 * alignment nor knowledge of the host's byte order. */
static inline void
put_u16 (uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t) (v >> 8);
  p[1] = (uint8_t) v;
}

static inline void
put_u32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static inline void
put_u64 (uint8_t *p, uint64_t v)
{
  put_u32 (p, (uint32_t) (v >> 32));
  put_u32 (p + 4, (uint32_t) v);
}

static inline uint16_t
get_u16 (const uint8_t *p)
{
  return (uint16_t) ((p[0] << 8) | p[1]);
}

static inline uint32_t
get_u32 (const uint8_t *p)
{
  return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
         ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static inline uint64_t
get_u64 (const uint8_t *p)
{
  return ((uint64_t) get_u32 (p) << 32) | get_u32 (p + 4);
}

/* Write the 16-byte header and return the offset of the payload. */
static inline size_t
put_header_disk (uint8_t *out, enum wire_type type, uint32_t payload_len,
                 uint32_t disk)
{
  put_u32 (out, WIRE_MAGIC);
  put_u16 (out + 4, WIRE_VERSION);
  put_u16 (out + 6, (uint16_t) type);
  put_u32 (out + 8, payload_len);
  put_u32 (out + 12, disk);
  return WIRE_HEADER_SIZE;
}

static inline size_t
put_header (uint8_t *out, enum wire_type type, uint32_t payload_len)
{
  return put_header_disk (out, type, payload_len, 0);
}

/* Bytes a text field may hold: printable, or tab. */
static inline bool
text_byte_ok (uint8_t c)
{
  if (c == '\t')
    return true;
  return c >= 0x20 && c != 0x7f;
}

#endif /* STM_PROTO_WIRE_BYTES_H */
