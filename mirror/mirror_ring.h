/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the mirror ring, the shared-memory queue through which the migrate
 * filter hands every completed guest write to its consumer (stm-send).
 *
 * This file is the ring's layout and its pure operations on memory: no
 * system call, no message.  The filter (the producer) creates the memory
 * (nbdkit-plugin/mirror.c) and the consumer maps it (mirror_consumer.c);
 * both use these functions, so the rules below live in one place.
 *
 * Two shared areas:
 *
 * - the ring area, written by the filter only (the consumer maps it
 *   read-only; the memfd is sealed against new writable mappings): a
 *   header page, an array of commit flags, and the data area of
 *   `capacity` bytes (a power of two) addressed by absolute positions
 *   that only grow (position mod capacity is the byte in the area);
 * - the consumer page, written by the consumer: how far it has taken
 *   entries (`consumed`) and how far the destination has them durable
 *   (`durable`), which is also how far the ring's space may be reused.
 *
 * A record is a 64-byte header (struct mirror_record) followed by the
 * data of a write, rounded up to MIRROR_GRANULE bytes.  Records start on
 * granule boundaries, so a header never wraps; data may, and is copied
 * in two pieces then.  Writers reserve space by a compare-and-swap on
 * `head` (a fetch-add could not give back space it took from a full
 * ring), copy the guest's data in, fill the header, and publish the
 * record by a release store of its commit flag: flags[g mod n] = g + 1,
 * g being the absolute granule number of its start.  A flag left from an
 * earlier lap holds a smaller number and a granule inside some record's
 * data never has its flag written, so the consumer cannot mistake stale
 * bytes (or guest data shaped like a header) for a record.  Writers share
 * no lock: only the atomic head, and each waits for nobody while the ring
 * has room (a writer that finds it full may wait for room, bounded:
 * mirror_wait.h, which is not pure and lives apart).
 *
 * The position of a record is also its sequence number: records are
 * ordered by reservation, and a write reserves only after the plugin has
 * completed it.  `head` is the ring's clock; a consumer samples it before
 * it issues a copy read through the filter (docs/architecture.md,
 * "Mirroring").
 */
#ifndef STM_MIRROR_RING_H
#define STM_MIRROR_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIRROR_RING_MAGIC UINT64_C(0x73746d6d6972726f)      /* "stmmirro" */
#define MIRROR_CONSUMER_MAGIC UINT64_C(0x73746d6d69726363)  /* "stmmircc" */
/* 2: the header gained full_wait_ns and full_waiters; 3: the consumer
 * page gained window. */
#define MIRROR_RING_VERSION 3
#define MIRROR_GRANULE 64u
#define MIRROR_HEADER_PAGE 4096u
/* Ring sizes MIRROR START accepts: powers of two from 1 MiB to 4 GiB. */
#define MIRROR_MIN_CAPACITY (UINT64_C (1) << 20)
#define MIRROR_MAX_CAPACITY (UINT64_C (1) << 32)

/* A trim is not a record: what a trimmed range reads as is the plugin's
 * choice, so the filter marks it dirty and a copy read tells. */
enum mirror_record_type {
  MIRROR_WRITE = 1,              /* length bytes of data follow */
  MIRROR_ZERO = 2,               /* the range reads as zeroes now */
};

/* The ring area's first page. */
struct mirror_ring_header {
  uint64_t magic;                /* MIRROR_RING_MAGIC */
  uint32_t version;              /* MIRROR_RING_VERSION */
  uint32_t granule;              /* MIRROR_GRANULE */
  uint64_t capacity;             /* bytes of the data area */
  uint64_t flags_offset;         /* byte offset of the flags in the area */
  uint64_t data_offset;          /* byte offset of the data area */
  uint64_t area_size;            /* bytes of the whole ring area */
  uint64_t image_size;           /* the image the filter tracks */
  uint32_t block_size;           /* the filter's migrate-block */
  uint32_t sync;                 /* 1: mirror-sync (writers wait) */
  uint64_t sync_timeout_ns;      /* longest a mirror-sync write waits */
  uint64_t full_wait_ns;         /* longest a write waits for room (0: none) */
  /* Written by writers: each on a cache line of its own. */
  uint64_t head __attribute__((aligned (64)));   /* next position, atomic */
  uint64_t entries __attribute__((aligned (64))); /* records reserved */
  uint64_t stopped __attribute__((aligned (64)));  /* 1: no more records */
  /* Writers waiting for room right now: the consumer wakes them only
   * when there are some (mirror_ring_durable_wake_needed). */
  uint32_t full_waiters __attribute__((aligned (64)));
};

/* The consumer page (its own memfd, writable by the consumer). */
struct mirror_consumer_page {
  uint64_t magic;                /* MIRROR_CONSUMER_MAGIC, set by the filter */
  /* Position up to which the consumer has taken records, and how many. */
  uint64_t consumed __attribute__((aligned (64)));
  uint64_t consumed_entries;
  /* Position up to which the destination has the records durable; the
   * ring reuses space below it.  Never past consumed. */
  uint64_t durable __attribute__((aligned (64)));
  uint64_t durable_entries;
  /* How many bytes of the ring writers may use, between durable and
   * head (0: all of it): the consumer bounds its lag with it, so that
   * what a cutover must still send and make durable fits its budget
   * (mirror_consumer_set_window).  Clamped to the capacity; a record
   * larger than the window fits only in an empty ring. */
  uint64_t window;
  /* Bumped after a change of durable that a writer may wait for (every
   * one in mirror-sync; in mirror, while full_waiters is not 0):
   * mirror-sync writers and writers waiting for room wait on it (a futex
   * word). */
  uint32_t durable_wake;
  /* 1 while the consumer sleeps on the eventfd: the next commit signals
   * it (and clears this). */
  uint32_t sleeping __attribute__((aligned (64)));
};

struct mirror_record {
  uint64_t pos;                  /* absolute position: the sequence number */
  uint32_t size;                 /* bytes of header and data, granules */
  uint32_t type;                 /* enum mirror_record_type */
  uint64_t offset;               /* in the image */
  uint64_t length;               /* bytes written, zeroed or trimmed */
  uint64_t entry;                /* 1 for the ring's first record, ... */
  uint8_t reserved[MIRROR_GRANULE - 40];
};

/* A view of a mapped ring: the header, flags and data pointers, and the
 * consumer page.  Neither side owns the memory through it. */
struct mirror_ring {
  struct mirror_ring_header *hdr;
  uint64_t *flags;               /* capacity / MIRROR_GRANULE of them */
  uint8_t *data;
  struct mirror_consumer_page *cons;
  uint64_t capacity;
  uint64_t nflags;
};

/* A record as the consumer sees it: the data in one or two pieces (when
 * it wraps round the end of the area). */
struct mirror_entry {
  uint64_t pos, end;             /* [pos, end): its span of positions */
  uint64_t entry;
  enum mirror_record_type type;
  uint64_t offset, length;
  const uint8_t *data[2];
  size_t data_len[2];
};

/* Bytes of the ring area for a data area of capacity bytes. */
uint64_t mirror_ring_area_size (uint64_t capacity);

/* Is capacity a size MIRROR START accepts? */
bool mirror_ring_capacity_ok (uint64_t capacity);

/* Lay a new ring out on zeroed memory of mirror_ring_area_size (capacity)
 * bytes and a zeroed consumer page, and fill in the view r.  full_wait_ns:
 * how long a write that finds no room may wait for it (0: not at all). */
void mirror_ring_format (struct mirror_ring *r, void *area, uint64_t capacity,
                         struct mirror_consumer_page *cons,
                         uint64_t image_size, uint32_t block_size,
                         bool sync, uint64_t sync_timeout_ns,
                         uint64_t full_wait_ns);

/* Fill in the view r of an existing ring (the consumer, after mapping).
 * Returns -1 with errno EINVAL if the area is not a ring of this version
 * or does not fit area_size bytes. */
int mirror_ring_attach (struct mirror_ring *r, void *area, uint64_t area_size,
                        struct mirror_consumer_page *cons);

/* --- the producer (the filter's writers) --------------------------- */

/* Bytes a record with data_len bytes of data takes. */
uint64_t mirror_record_size (uint64_t data_len);

/* Reserve room for a record carrying data_len bytes.  Returns true and
 * the record's position in *pos, or false if the ring has not that much
 * free space below what the consumer has made durable (or the record is
 * larger than the ring, or the ring is stopped).  Lock free. */
bool mirror_ring_reserve (struct mirror_ring *r, uint64_t data_len,
                          uint64_t *pos);

/* Could a record carrying data_len bytes ever fit, in an empty ring?  If
 * not, waiting for room is pointless. */
bool mirror_ring_can_hold (const struct mirror_ring *r, uint64_t data_len);

/* Has the ring been stopped (no more records)? */
bool mirror_ring_is_stopped (const struct mirror_ring *r);

/* A writer starts or stops waiting for room (mirror_wait.h).  Starting
 * is a full fence, after which the writer looks at the durable position:
 * paired with the fence in mirror_ring_durable_wake_needed, either the
 * consumer sees the waiter or the waiter sees the new position. */
void mirror_ring_waiter_enter (struct mirror_ring *r);
void mirror_ring_waiter_leave (struct mirror_ring *r);

/* Copy len bytes into the data of the record reserved at pos, at byte
 * skip of its data.  The caller has the reservation. */
void mirror_ring_copy_in (struct mirror_ring *r, uint64_t pos, uint64_t skip,
                          const void *buf, size_t len);

/* Fill the header of the record reserved at pos and publish it (release).
 * data_len must be what was reserved (0 for ZERO and TRIM). */
void mirror_ring_commit (struct mirror_ring *r, uint64_t pos,
                         enum mirror_record_type type, uint64_t offset,
                         uint64_t length, uint64_t data_len);

/* The bytes writers may use now: the consumer's window, clamped to the
 * capacity (the capacity when it set none). */
uint64_t mirror_ring_window (const struct mirror_ring *r);

/* Where the consumer's durable position stands, as the producer may trust
 * it: never past head. */
uint64_t mirror_ring_durable (const struct mirror_ring *r);

/* The ring's clock: the position the next record will take (acquire). */
uint64_t mirror_ring_head (const struct mirror_ring *r);

/* --- the consumer -------------------------------------------------- */

/* The committed record at pos, if there is one.  Returns 1 and fills e,
 * 0 if the record at pos is not committed yet (or pos is head), -1 with
 * errno EPROTO if what is there is not a record of this ring. */
int mirror_ring_peek (const struct mirror_ring *r, uint64_t pos,
                      struct mirror_entry *e);

/* The consumer has just moved durable: must it bump durable_wake and
 * wake the futex?  Yes in mirror-sync (every write waits for durable),
 * and while any writer waits for room.  Begins with a full fence (see
 * mirror_ring_waiter_enter). */
bool mirror_ring_durable_wake_needed (const struct mirror_ring *r);

/* --- after the consumer has gone (the filter, every writer gone) --- */

/* Call fn for every record still in the ring that ends past `from`
 * (records the consumer never made durable), oldest first, finding
 * record starts by their commit flags, so a consumer that wrote a
 * position inside a record cannot make the walk misread.  Every record
 * reserved must be committed.  Returns the number of records visited. */
uint64_t mirror_ring_walk_from (const struct mirror_ring *r, uint64_t from,
                                void (*fn) (void *opaque,
                                            const struct mirror_entry *e),
                                void *opaque);

#endif /* STM_MIRROR_RING_H */
