/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: hash requests on their way and their answers (see
 * hash_window.h). */
#include <config.h>

#include <assert.h>
#include <string.h>

#include "hash_window.h"

void
hash_window_reset (struct hash_window *w)
{
  w->head = w->count = w->answered = 0;
}

bool
hash_window_can_push (const struct hash_window *w)
{
  return w->count < HASH_WINDOW_MAX;
}

void
hash_window_push (struct hash_window *w, uint64_t offset, uint32_t length,
                  uint32_t unit)
{
  assert (hash_window_can_push (w));
  assert (length > 0 && length <= SOURCE_READER_CHUNK);
  assert (unit >= WIRE_HASH_MIN_UNIT);
  struct hash_request *r = &w->q[(w->head + w->count) % HASH_WINDOW_MAX];
  r->offset = offset;
  r->length = length;
  r->unit = unit;
  r->answered = false;
  w->count++;
}

int
hash_window_answer (struct hash_window *w, uint64_t offset, uint32_t length,
                    uint32_t unit, const uint8_t *hashes, const char **why)
{
  if (w->answered >= w->count) {
    *why = "HASHES answers no HASH_REQ";
    return -1;
  }
  struct hash_request *r = &w->q[(w->head + w->answered) % HASH_WINDOW_MAX];
  if (r->offset != offset || r->length != length || r->unit != unit) {
    *why = "HASHES answers another range than the oldest HASH_REQ";
    return -1;
  }
  memcpy (r->hashes, hashes, (size_t) wire_hash_count (length, unit) * WIRE_HASH_LEN);
  r->answered = true;
  w->answered++;
  return 0;
}

bool
hash_window_waiting (const struct hash_window *w, uint64_t offset, uint32_t length)
{
  if (w->count == 0)
    return false;
  const struct hash_request *r = &w->q[w->head];
  return r->offset == offset && r->length == length && !r->answered;
}

const struct hash_request *
hash_window_take (struct hash_window *w, uint64_t offset, uint32_t length)
{
  if (w->count == 0)
    return NULL;
  struct hash_request *r = &w->q[w->head];
  if (r->offset != offset || r->length != length)
    return NULL;
  assert (r->answered);
  w->head = (w->head + 1) % HASH_WINDOW_MAX;
  w->count--;
  w->answered--;
  return r;
}
