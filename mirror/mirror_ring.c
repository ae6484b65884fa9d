/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the mirror ring's layout and lock-free operations (see
 * mirror_ring.h). */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mirror_ring.h"

_Static_assert (sizeof (struct mirror_record) == MIRROR_GRANULE,
                "a record header is one granule");
_Static_assert (sizeof (struct mirror_ring_header) <= MIRROR_HEADER_PAGE,
                "the ring header fits its page");

bool
mirror_ring_capacity_ok (uint64_t capacity)
{
  return capacity >= MIRROR_MIN_CAPACITY && capacity <= MIRROR_MAX_CAPACITY &&
    (capacity & (capacity - 1)) == 0;
}

static uint64_t
flags_bytes (uint64_t capacity)
{
  uint64_t bytes = capacity / MIRROR_GRANULE * sizeof (uint64_t);

  /* The data area starts on a page. */
  return (bytes + MIRROR_HEADER_PAGE - 1) & ~(uint64_t) (MIRROR_HEADER_PAGE - 1);
}

uint64_t
mirror_ring_area_size (uint64_t capacity)
{
  return MIRROR_HEADER_PAGE + flags_bytes (capacity) + capacity;
}

static void
set_view (struct mirror_ring *r, void *area, uint64_t capacity,
          struct mirror_consumer_page *cons)
{
  r->hdr = area;
  r->flags = (uint64_t *) ((uint8_t *) area + MIRROR_HEADER_PAGE);
  r->data = (uint8_t *) area + MIRROR_HEADER_PAGE + flags_bytes (capacity);
  r->cons = cons;
  r->capacity = capacity;
  r->nflags = capacity / MIRROR_GRANULE;
}

void
mirror_ring_format (struct mirror_ring *r, void *area, uint64_t capacity,
                    struct mirror_consumer_page *cons,
                    uint64_t image_size, uint32_t block_size,
                    bool sync, uint64_t sync_timeout_ns,
                    uint64_t full_wait_ns)
{
  struct mirror_ring_header *hdr = area;

  assert (mirror_ring_capacity_ok (capacity) ||
          /* The unit tests use smaller rings. */
          (capacity >= 4 * MIRROR_GRANULE && (capacity & (capacity - 1)) == 0));
  hdr->version = MIRROR_RING_VERSION;
  hdr->granule = MIRROR_GRANULE;
  hdr->capacity = capacity;
  hdr->flags_offset = MIRROR_HEADER_PAGE;
  hdr->data_offset = MIRROR_HEADER_PAGE + flags_bytes (capacity);
  hdr->area_size = mirror_ring_area_size (capacity);
  hdr->image_size = image_size;
  hdr->block_size = block_size;
  hdr->sync = sync ? 1 : 0;
  hdr->sync_timeout_ns = sync_timeout_ns;
  hdr->full_wait_ns = full_wait_ns;
  cons->magic = MIRROR_CONSUMER_MAGIC;
  set_view (r, area, capacity, cons);
  /* Last, so that a header with the magic is complete. */
  __atomic_store_n (&hdr->magic, MIRROR_RING_MAGIC, __ATOMIC_RELEASE);
}

int
mirror_ring_attach (struct mirror_ring *r, void *area, uint64_t area_size,
                    struct mirror_consumer_page *cons)
{
  const struct mirror_ring_header *hdr = area;
  uint64_t capacity;

  if (area_size < MIRROR_HEADER_PAGE ||
      __atomic_load_n (&hdr->magic, __ATOMIC_ACQUIRE) != MIRROR_RING_MAGIC ||
      hdr->version != MIRROR_RING_VERSION ||
      hdr->granule != MIRROR_GRANULE ||
      cons->magic != MIRROR_CONSUMER_MAGIC) {
    errno = EINVAL;
    return -1;
  }
  capacity = hdr->capacity;
  if (capacity < 4 * MIRROR_GRANULE || capacity > MIRROR_MAX_CAPACITY ||
      (capacity & (capacity - 1)) != 0 ||
      hdr->area_size != mirror_ring_area_size (capacity) ||
      hdr->area_size > area_size ||
      hdr->data_offset != MIRROR_HEADER_PAGE + flags_bytes (capacity)) {
    errno = EINVAL;
    return -1;
  }
  set_view (r, area, capacity, cons);
  return 0;
}

uint64_t
mirror_record_size (uint64_t data_len)
{
  return (sizeof (struct mirror_record) + data_len + MIRROR_GRANULE - 1) &
    ~(uint64_t) (MIRROR_GRANULE - 1);
}

uint64_t
mirror_ring_head (const struct mirror_ring *r)
{
  return __atomic_load_n (&r->hdr->head, __ATOMIC_ACQUIRE);
}

/* The consumer's durable position, clamped to what has been reserved: a
 * consumer cannot make the ring hand out space it has not been given. */
static uint64_t
durable_before (const struct mirror_ring *r, uint64_t head)
{
  uint64_t d = __atomic_load_n (&r->cons->durable, __ATOMIC_ACQUIRE);

  return d > head ? head : d;
}

uint64_t
mirror_ring_durable (const struct mirror_ring *r)
{
  return durable_before (r, mirror_ring_head (r));
}

uint64_t
mirror_ring_window (const struct mirror_ring *r)
{
  uint64_t w = __atomic_load_n (&r->cons->window, __ATOMIC_RELAXED);

  return w == 0 || w > r->capacity ? r->capacity : w;
}

bool
mirror_ring_can_hold (const struct mirror_ring *r, uint64_t data_len)
{
  /* The first test keeps the rounding in mirror_record_size from
   * wrapping. */
  return data_len <= r->capacity &&
    mirror_record_size (data_len) <= r->capacity;
}

bool
mirror_ring_is_stopped (const struct mirror_ring *r)
{
  return __atomic_load_n (&r->hdr->stopped, __ATOMIC_ACQUIRE) != 0;
}

void
mirror_ring_waiter_enter (struct mirror_ring *r)
{
  __atomic_fetch_add (&r->hdr->full_waiters, 1, __ATOMIC_SEQ_CST);
  __atomic_thread_fence (__ATOMIC_SEQ_CST);
}

void
mirror_ring_waiter_leave (struct mirror_ring *r)
{
  __atomic_fetch_sub (&r->hdr->full_waiters, 1, __ATOMIC_RELAXED);
}

bool
mirror_ring_durable_wake_needed (const struct mirror_ring *r)
{
  /* The store of durable before this, the load of the waiters after. */
  __atomic_thread_fence (__ATOMIC_SEQ_CST);
  return r->hdr->sync != 0 ||
    __atomic_load_n (&r->hdr->full_waiters, __ATOMIC_RELAXED) != 0;
}

bool
mirror_ring_reserve (struct mirror_ring *r, uint64_t data_len, uint64_t *pos)
{
  uint64_t size, head;

  if (!mirror_ring_can_hold (r, data_len))
    return false;
  size = mirror_record_size (data_len);

  head = __atomic_load_n (&r->hdr->head, __ATOMIC_RELAXED);
  for (;;) {
    if (__atomic_load_n (&r->hdr->stopped, __ATOMIC_RELAXED))
      return false;
    /* The space [durable, head) is still the consumer's, and writers
     * keep within its window: a record larger than that only goes into
     * an empty ring. */
    uint64_t used = head - durable_before (r, head);
    if (used + size > r->capacity ||
        (used + size > mirror_ring_window (r) && used > 0))
      return false;
    if (__atomic_compare_exchange_n (&r->hdr->head, &head, head + size, true,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      break;
  }
  __atomic_fetch_add (&r->hdr->entries, 1, __ATOMIC_RELAXED);
  *pos = head;
  return true;
}

/* Copy between the ring and a buffer at an absolute byte position that
 * may wrap. */
static void
copy_at (struct mirror_ring *r, uint64_t at, const void *buf, size_t len)
{
  uint64_t i = at & (r->capacity - 1);
  size_t first = len;

  if (first > r->capacity - i)
    first = (size_t) (r->capacity - i);
  memcpy (r->data + i, buf, first);
  if (first < len)
    memcpy (r->data, (const uint8_t *) buf + first, len - first);
}

void
mirror_ring_copy_in (struct mirror_ring *r, uint64_t pos, uint64_t skip,
                     const void *buf, size_t len)
{
  copy_at (r, pos + sizeof (struct mirror_record) + skip, buf, len);
}

void
mirror_ring_commit (struct mirror_ring *r, uint64_t pos,
                    enum mirror_record_type type, uint64_t offset,
                    uint64_t length, uint64_t data_len)
{
  struct mirror_record *rec =
    (struct mirror_record *) (r->data + (pos & (r->capacity - 1)));
  uint64_t g = pos / MIRROR_GRANULE;

  memset (rec, 0, sizeof *rec);
  rec->pos = pos;
  rec->size = (uint32_t) mirror_record_size (data_len);
  rec->type = (uint32_t) type;
  rec->offset = offset;
  rec->length = length;
  /* Not the order of reservation when writers race; the consumer orders
   * by pos, and this only numbers records for people reading them. */
  rec->entry = __atomic_load_n (&r->hdr->entries, __ATOMIC_RELAXED);
  __atomic_store_n (&r->flags[g % r->nflags], g + 1, __ATOMIC_RELEASE);
}

int
mirror_ring_peek (const struct mirror_ring *r, uint64_t pos,
                  struct mirror_entry *e)
{
  uint64_t g = pos / MIRROR_GRANULE;
  const struct mirror_record *rec;
  uint64_t i, data_len;

  if (pos % MIRROR_GRANULE != 0) {
    errno = EPROTO;
    return -1;
  }
  if (__atomic_load_n (&r->flags[g % r->nflags], __ATOMIC_ACQUIRE) != g + 1)
    return 0;
  i = pos & (r->capacity - 1);
  rec = (const struct mirror_record *) (r->data + i);
  if (rec->pos != pos || rec->size < sizeof *rec || rec->size > r->capacity ||
      rec->size % MIRROR_GRANULE != 0 ||
      rec->type < MIRROR_WRITE || rec->type > MIRROR_ZERO) {
    errno = EPROTO;
    return -1;
  }
  data_len = rec->type == MIRROR_WRITE ? rec->length : 0;
  if (mirror_record_size (data_len) != rec->size) {
    errno = EPROTO;
    return -1;
  }

  e->pos = pos;
  e->end = pos + rec->size;
  e->entry = rec->entry;
  e->type = (enum mirror_record_type) rec->type;
  e->offset = rec->offset;
  e->length = rec->length;
  /* The data follows the header, perhaps round the end of the area. */
  i = (i + sizeof *rec) & (r->capacity - 1);
  e->data[0] = r->data + i;
  e->data_len[0] = (size_t) data_len;
  e->data[1] = r->data;
  e->data_len[1] = 0;
  if (data_len > r->capacity - i) {
    e->data_len[0] = (size_t) (r->capacity - i);
    e->data_len[1] = (size_t) (data_len - e->data_len[0]);
  }
  return 1;
}

uint64_t
mirror_ring_walk_from (const struct mirror_ring *r, uint64_t from,
                       void (*fn) (void *opaque, const struct mirror_entry *e),
                       void *opaque)
{
  uint64_t head = mirror_ring_head (r);
  uint64_t pos, visited = 0;
  struct mirror_entry e;

  /* Bytes older than one lap have been overwritten: the first record
   * start at or after head - capacity is the oldest whole record. */
  pos = head > r->capacity ? head - r->capacity : 0;
  while (pos < head && mirror_ring_peek (r, pos, &e) != 1)
    pos += MIRROR_GRANULE;
  while (pos < head && mirror_ring_peek (r, pos, &e) == 1) {
    if (e.end > from) {
      fn (opaque, &e);
      visited++;
    }
    pos = e.end;
  }
  return visited;
}
