/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: HASH_KEY and HASH_REQ answered from an output.  See
 * hash_answer.h.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_hash.h"
#include "hash_answer.h"
#include "image_writer.h"

/* The largest HASHES frame: the header and fixed part, and the hashes of
 * a whole range in the smallest units. */
#define HASHES_FRAME_MAX \
  (WIRE_ENCODE_MAX + WIRE_HASH_LEN * (WIRE_MAX_HASH_RANGE / WIRE_HASH_MIN_UNIT))

void
hash_answer_init (struct hash_answer *h)
{
  memset (h, 0, sizeof *h);
}

void
hash_answer_free (struct hash_answer *h)
{
  free (h->buf);
  free (h->frame);
  hash_answer_init (h);
}

/* The buffers, allocated at the first request.  -1 if there is no
 * memory for them. */
static int
ensure_buffers (struct hash_answer *h)
{
  if (h->buf == NULL)
    h->buf = malloc (WIRE_MAX_HASH_RANGE);
  if (h->frame == NULL)
    h->frame = malloc (HASHES_FRAME_MAX);
  return h->buf != NULL && h->frame != NULL ? 0 : -1;
}

/* HASH_REQ: read the range and build its HASHES frame. */
static uint32_t
answer_range (struct hash_answer *h, struct image_writer *image, uint32_t disk,
              uint64_t offset, uint32_t length, uint32_t unit,
              const uint8_t **frame, size_t *frame_len, char *why, size_t why_len)
{
  size_t head;

  /* The decoder checked these; an 8 MiB buffer must never be overrun
   * whatever reaches this point. */
  if (length == 0 || length > WIRE_MAX_HASH_RANGE || unit < WIRE_HASH_MIN_UNIT) {
    snprintf (why, why_len, "HASH_REQ of %" PRIu32 " bytes in units of %"
              PRIu32 " was not checked by the decoder", length, unit);
    return WIRE_ERR_INTERNAL;
  }
  if (ensure_buffers (h) == -1) {
    snprintf (why, why_len, "out of memory for the %u MiB buffer that hash "
              "requests are read into", WIRE_MAX_HASH_RANGE / (1024 * 1024));
    return WIRE_ERR_INTERNAL;
  }
  if (image_writer_read (image, offset, h->buf, length) == -1)
    return WIRE_ERR_IO;
  head = wire_encode_hashes_header (h->frame, disk, offset, length, unit);
  if (block_hash_units (h->key, offset, h->buf, length, unit, h->frame + head,
                        why, why_len) == -1)
    return WIRE_ERR_INTERNAL;
  h->requests++;
  h->pass_requests++;
  h->bytes += length;
  h->pass_bytes += length;
  *frame = h->frame;
  *frame_len = head + (size_t) WIRE_HASH_LEN * wire_hash_count (length, unit);
  return 0;
}

uint32_t
hash_answer_message (struct hash_answer *h, bool offered,
                     const struct wire_msg *msg, struct image_writer *image,
                     const uint8_t **frame, size_t *frame_len,
                     char *why, size_t why_len)
{
  why[0] = '\0';
  *frame = NULL;
  *frame_len = 0;
  if (!offered) {
    snprintf (why, why_len, "%s from a sender whose HELLO did not offer hash "
              "comparison", wire_type_name (msg->type));
    return WIRE_ERR_PROTOCOL;
  }
  if (msg->type == WIRE_HASH_KEY) {
    memcpy (h->key, msg->u.hash_key.key, WIRE_HASH_KEY_LEN);
    h->have_key = true;
    return 0;
  }
  if (!h->have_key) {
    snprintf (why, why_len, "HASH_REQ before HASH_KEY: there is no key to "
              "hash with");
    return WIRE_ERR_PROTOCOL;
  }
  return answer_range (h, image, msg->disk, msg->u.hash.offset,
                       msg->u.hash.length, msg->u.hash.unit, frame, frame_len,
                       why, why_len);
}

void
hash_answer_take_pass (struct hash_answer *h, uint64_t *requests, uint64_t *bytes)
{
  *requests = h->pass_requests;
  *bytes = h->pass_bytes;
  h->pass_requests = 0;
  h->pass_bytes = 0;
}
