/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the mirror ring's lock-free logic (mirror/mirror_ring.c):
 * reserve, commit and consume; wrap-around of the data; a full ring and
 * the space the consumer's durable position frees; stale commit flags
 * from an earlier lap; the walk that requeues what the consumer never
 * made durable; and many writer threads against one consumer thread.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "mirror_consumer.h"
#include "mirror_ring.h"
#include "mirror_test_ring.h"

static struct test_ring *
new_ring (uint64_t capacity)
{
  return new_test_ring (capacity, 0);
}

static void
free_ring (struct test_ring *t)
{
  free_test_ring (t);
}

static uint64_t
put_write (struct test_ring *t, uint64_t offset, const void *buf, size_t len)
{
  uint64_t pos;

  assert_true (mirror_ring_reserve (&t->r, len, &pos));
  mirror_ring_copy_in (&t->r, pos, 0, buf, len);
  mirror_ring_commit (&t->r, pos, MIRROR_WRITE, offset, len, len);
  return pos;
}

/* The data of an entry, gathered from its one or two pieces. */
static void
gather (const struct mirror_entry *e, uint8_t *out)
{
  memcpy (out, e->data[0], e->data_len[0]);
  memcpy (out + e->data_len[0], e->data[1], e->data_len[1]);
}

static void
test_capacity_rule (void **state)
{
  (void) state;
  assert_true (mirror_ring_capacity_ok (1 << 20));
  assert_true (mirror_ring_capacity_ok (UINT64_C (1) << 32));
  assert_false (mirror_ring_capacity_ok ((1 << 20) + 4096));
  assert_false (mirror_ring_capacity_ok (1 << 19));
  assert_false (mirror_ring_capacity_ok (UINT64_C (1) << 33));
  assert_int_equal (mirror_record_size (0), 64);
  assert_int_equal (mirror_record_size (1), 128);
  assert_int_equal (mirror_record_size (4096), 4160);
}

static void
test_reserve_commit_consume (void **state)
{
  struct test_ring *t = new_ring (8192);
  struct mirror_entry e;
  uint8_t buf[100], out[100];
  uint64_t pos, z;

  (void) state;
  memset (buf, 0xab, sizeof buf);
  /* Nothing yet. */
  assert_int_equal (mirror_ring_peek (&t->r, 0, &e), 0);

  pos = put_write (t, 4096, buf, sizeof buf);
  assert_int_equal (pos, 0);
  assert_true (mirror_ring_reserve (&t->r, 0, &z));
  assert_int_equal (z, 192);
  /* Reserved but not committed: the consumer waits for it. */
  assert_int_equal (mirror_ring_peek (&t->r, z, &e), 0);
  mirror_ring_commit (&t->r, z, MIRROR_ZERO, 8192, 65536, 0);
  assert_int_equal (mirror_ring_head (&t->r), 256);

  assert_int_equal (mirror_ring_peek (&t->r, 0, &e), 1);
  assert_int_equal (e.type, MIRROR_WRITE);
  assert_int_equal (e.offset, 4096);
  assert_int_equal (e.length, 100);
  assert_int_equal (e.end, 192);
  assert_int_equal (e.data_len[1], 0);
  gather (&e, out);
  assert_memory_equal (out, buf, sizeof buf);

  assert_int_equal (mirror_ring_peek (&t->r, e.end, &e), 1);
  assert_int_equal (e.type, MIRROR_ZERO);
  assert_int_equal (e.offset, 8192);
  assert_int_equal (e.length, 65536);
  assert_int_equal (e.data_len[0] + e.data_len[1], 0);
  assert_int_equal (mirror_ring_peek (&t->r, e.end, &e), 0);
  /* Not on a granule: refused as a protocol error. */
  assert_int_equal (mirror_ring_peek (&t->r, 5, &e), -1);
  assert_int_equal (errno, EPROTO);
  free_ring (t);
}

static void
test_full_and_durable (void **state)
{
  struct test_ring *t = new_ring (4096);
  uint8_t buf[960];               /* 1024-byte records */
  uint64_t pos;

  (void) state;
  memset (buf, 1, sizeof buf);
  for (int i = 0; i < 4; i++)
    put_write (t, 0, buf, sizeof buf);
  /* Full: nothing more fits, not even a header. */
  assert_false (mirror_ring_reserve (&t->r, 0, &pos));
  /* Taken but not durable frees nothing. */
  t->page.consumed = 2048;
  assert_false (mirror_ring_reserve (&t->r, 0, &pos));
  /* Durable frees exactly that space. */
  t->page.durable = 1024;
  assert_true (mirror_ring_reserve (&t->r, sizeof buf, &pos));
  assert_int_equal (pos, 4096);
  assert_false (mirror_ring_reserve (&t->r, 0, &pos));
  mirror_ring_commit (&t->r, pos, MIRROR_ZERO, 0, 4096, 0);
  /* A consumer claiming more than was ever reserved frees no more. */
  t->page.durable = UINT64_MAX;
  assert_int_equal (mirror_ring_durable (&t->r), mirror_ring_head (&t->r));
  /* Larger than the ring: refused at once. */
  assert_false (mirror_ring_reserve (&t->r, 4096, &pos));
  /* A stopped ring takes nothing. */
  t->r.hdr->stopped = 1;
  assert_false (mirror_ring_reserve (&t->r, 0, &pos));
  free_ring (t);
}

/* The consumer's window bounds what writers may use; a record larger
 * than the window goes only into an empty ring; 0 or more than the
 * capacity means the whole ring. */
static void
test_window (void **state)
{
  struct test_ring *t = new_ring (8192);
  uint8_t buf[1984];              /* 2048-byte records */
  uint64_t pos;

  (void) state;
  memset (buf, 2, sizeof buf);
  t->page.window = 4096;
  assert_int_equal (mirror_ring_window (&t->r), 4096);
  put_write (t, 0, buf, sizeof buf);
  put_write (t, 0, buf, sizeof buf);
  /* The window is used up, though the ring has room. */
  assert_false (mirror_ring_reserve (&t->r, 0, &pos));
  t->page.durable = 2048;
  put_write (t, 0, buf, sizeof buf);
  assert_false (mirror_ring_reserve (&t->r, 0, &pos));
  /* Larger than the window: only into an empty ring. */
  t->page.durable = 4096;
  assert_false (mirror_ring_reserve (&t->r, 4096, &pos));
  t->page.durable = 6144;
  assert_true (mirror_ring_reserve (&t->r, 4096, &pos));
  mirror_ring_commit (&t->r, pos, MIRROR_WRITE, 0, 4096, 4096);
  /* No window, or one past the capacity: the whole ring. */
  t->page.window = 0;
  assert_int_equal (mirror_ring_window (&t->r), 8192);
  t->page.window = 1 << 20;
  assert_int_equal (mirror_ring_window (&t->r), 8192);
  assert_true (mirror_ring_reserve (&t->r, 1000, &pos));
  free_ring (t);
}

static void
test_wrap_around (void **state)
{
  struct test_ring *t = new_ring (4096);
  struct mirror_entry e;
  uint8_t buf[1500], out[1500];
  uint64_t pos = 0;

  (void) state;
  /* Records of 1536 bytes: the third wraps round the end. */
  for (int i = 0; i < 20; i++) {
    uint64_t p;

    for (size_t j = 0; j < sizeof buf; j++)
      buf[j] = (uint8_t) (i * 7 + j);
    p = put_write (t, (uint64_t) i * 4096, buf, sizeof buf);
    assert_int_equal (p, pos);
    assert_int_equal (mirror_ring_peek (&t->r, pos, &e), 1);
    assert_int_equal (e.offset, (uint64_t) i * 4096);
    assert_int_equal (e.data_len[0] + e.data_len[1], sizeof buf);
    if (i == 2)
      assert_true (e.data_len[1] > 0);
    gather (&e, out);
    assert_memory_equal (out, buf, sizeof buf);
    pos = e.end;
    t->page.consumed = t->page.durable = pos;
  }
  free_ring (t);
}

/* A commit flag from an earlier lap must not make the consumer take the
 * bytes at that position for a record of this lap. */
static void
test_stale_flag (void **state)
{
  struct test_ring *t = new_ring (4096);
  struct mirror_entry e;
  uint8_t buf[4096 - 64];
  uint64_t pos;

  (void) state;
  memset (buf, 0, sizeof buf);
  put_write (t, 0, buf, sizeof buf);     /* fills the ring exactly */
  t->page.consumed = t->page.durable = 4096;
  /* Reserve at position 4096 (the same bytes) without committing: the
   * old flag says granule 1 (0 + 1), not 65 (64 + 1). */
  assert_true (mirror_ring_reserve (&t->r, 0, &pos));
  assert_int_equal (pos, 4096);
  assert_int_equal (mirror_ring_peek (&t->r, 4096, &e), 0);
  /* Guest data shaped like a header inside a record is never a record:
   * its granule's flag is never written. */
  assert_int_equal (mirror_ring_peek (&t->r, 4096 + 128, &e), 0);
  mirror_ring_commit (&t->r, pos, MIRROR_ZERO, 0, 4096, 0);
  assert_int_equal (mirror_ring_peek (&t->r, 4096, &e), 1);
  free_ring (t);
}

struct walked {
  uint64_t n;
  uint64_t offsets[64];
};

static void
note_walked (void *opaque, const struct mirror_entry *e)
{
  struct walked *w = opaque;

  w->offsets[w->n++] = e->offset;
}

static void
test_walk (void **state)
{
  struct test_ring *t = new_ring (4096);
  uint8_t buf[960];
  struct walked w = { 0 };
  uint64_t positions[8];

  (void) state;
  memset (buf, 2, sizeof buf);
  for (int i = 0; i < 6; i++) {
    positions[i] = put_write (t, (uint64_t) i, buf, sizeof buf);
    /* The consumer keeps up, durable one record behind. */
    t->page.durable = positions[i] > 0 ? positions[i] - 1024 : 0;
  }
  /* Records 2..5 are in the ring; the consumer made 0..2 durable. */
  t->page.durable = positions[3];
  assert_int_equal (mirror_ring_walk_from (&t->r, mirror_ring_durable (&t->r),
                                           note_walked, &w), 3);
  assert_int_equal (w.offsets[0], 3);
  assert_int_equal (w.offsets[2], 5);
  /* A durable position inside a record: that record counts as not
   * durable, the walk still finds the boundaries. */
  w.n = 0;
  assert_int_equal (mirror_ring_walk_from (&t->r, positions[3] + 64,
                                           note_walked, &w), 3);
  assert_int_equal (w.offsets[0], 3);
  free_ring (t);
}

/* Many writers, one consumer: every record arrives once, intact, and each
 * writer's records in the order it wrote them. */
#define WRITERS 4
#define PER_WRITER 20000

struct mt {
  struct test_ring *t;
  unsigned full;                 /* reservations refused: atomic */
  unsigned errors;               /* consumer-side mismatches */
};

struct writer_arg {
  struct mt *mt;
  unsigned id;
};

static void *
writer_thread (void *arg)
{
  struct writer_arg *wa = arg;
  struct test_ring *t = wa->mt->t;

  for (uint64_t i = 0; i < PER_WRITER; ) {
    uint8_t buf[200];
    size_t len = 9 + (size_t) ((i * 37 + wa->id) % 190);
    uint64_t pos;

    memset (buf, (int) (wa->id * 16 + i % 16), len);
    memcpy (buf, &i, sizeof i);
    if (!mirror_ring_reserve (&t->r, len, &pos)) {
      __atomic_fetch_add (&wa->mt->full, 1, __ATOMIC_RELAXED);
      sched_yield ();
      continue;                  /* the test retries; the filter would not */
    }
    mirror_ring_copy_in (&t->r, pos, 0, buf, len);
    mirror_ring_commit (&t->r, pos, MIRROR_WRITE, wa->id, len, len);
    i++;
  }
  return NULL;
}

static void *
consumer_thread (void *arg)
{
  struct mt *mt = arg;
  struct test_ring *t = mt->t;
  uint64_t next[WRITERS] = { 0 }, pos = 0, got = 0;

  while (got < (uint64_t) WRITERS * PER_WRITER) {
    struct mirror_entry e;
    uint8_t out[200];
    uint64_t i;
    int r = mirror_ring_peek (&t->r, pos, &e);

    if (r == 0) {
      sched_yield ();
      continue;
    }
    if (r == -1 || e.offset >= WRITERS || e.length < 9 || e.length > 200) {
      mt->errors++;
      break;
    }
    gather (&e, out);
    memcpy (&i, out, sizeof i);
    if (i != next[e.offset] ||
        out[e.length - 1] != (uint8_t) (e.offset * 16 + i % 16))
      mt->errors++;
    next[e.offset] = i + 1;
    pos = e.end;
    got++;
    __atomic_store_n (&t->page.durable, pos, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void
test_many_writers (void **state)
{
  struct mt mt = { .t = new_ring (16384) };
  struct writer_arg wa[WRITERS];
  pthread_t w[WRITERS], c;

  (void) state;
  assert_int_equal (pthread_create (&c, NULL, consumer_thread, &mt), 0);
  for (unsigned i = 0; i < WRITERS; i++) {
    wa[i] = (struct writer_arg) { .mt = &mt, .id = i };
    assert_int_equal (pthread_create (&w[i], NULL, writer_thread, &wa[i]), 0);
  }
  for (unsigned i = 0; i < WRITERS; i++)
    pthread_join (w[i], NULL);
  pthread_join (c, NULL);
  assert_int_equal (mt.errors, 0);
  assert_int_equal (mt.t->r.hdr->entries, (uint64_t) WRITERS * PER_WRITER);
  assert_int_equal (mirror_ring_durable (&mt.t->r), mirror_ring_head (&mt.t->r));
  free_ring (mt.t);
}

/* The consumer's side over real memfds, as MIRROR START hands them out:
 * mapping (the area read-only), taking a record, the durable position
 * the producer sees, and the sleeping handshake with the eventfd. */
static void
test_consumer_over_memfds (void **state)
{
  const uint64_t capacity = 1 << 20;
  uint64_t area_size = mirror_ring_area_size (capacity);
  int area_fd = memfd_create ("test-ring", MFD_CLOEXEC);
  int page_fd = memfd_create ("test-page", MFD_CLOEXEC);
  int event_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct mirror_consumer_page *page;
  struct mirror_consumer c;
  struct mirror_ring producer;
  struct mirror_entry e;
  void *area;
  uint64_t pos, one = 1;
  uint8_t data[5000];

  (void) state;
  assert_true (area_fd >= 0 && page_fd >= 0 && event_fd >= 0);
  assert_int_equal (ftruncate (area_fd, (off_t) area_size), 0);
  assert_int_equal (ftruncate (page_fd, sizeof *page), 0);
  area = mmap (NULL, area_size, PROT_READ | PROT_WRITE, MAP_SHARED, area_fd, 0);
  page = mmap (NULL, sizeof *page, PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0);
  assert_true (area != MAP_FAILED && page != MAP_FAILED);
  mirror_ring_format (&producer, area, capacity, page, 1 << 30, 65536, false,
                      0, 0);

  assert_int_equal (mirror_consumer_map (&c, dup (area_fd), dup (page_fd),
                                         dup (event_fd)), 0);
  assert_int_equal (mirror_consumer_next (&c, &e), 0);
  /* Nothing committed: the wait times out, and the consumer no longer
   * says it sleeps. */
  assert_int_equal (mirror_consumer_wait (&c, 10), 0);
  assert_int_equal (page->sleeping, 0);

  memset (data, 0x77, sizeof data);
  assert_true (mirror_ring_reserve (&producer, sizeof data, &pos));
  mirror_ring_copy_in (&producer, pos, 0, data, sizeof data);
  mirror_ring_commit (&producer, pos, MIRROR_WRITE, 65536, sizeof data,
                      sizeof data);
  assert_int_equal (mirror_consumer_clock (&c), mirror_record_size (sizeof data));
  /* A record is there: the wait returns at once. */
  assert_int_equal (mirror_consumer_wait (&c, 1000), 1);
  assert_int_equal (mirror_consumer_next (&c, &e), 1);
  assert_int_equal (e.offset, 65536);
  assert_int_equal (e.length, sizeof data);
  assert_memory_equal (e.data[0], data, sizeof data);
  mirror_consumer_taken (&c, c.next_pos, 1);
  assert_int_equal (mirror_ring_durable (&producer), 0);
  mirror_consumer_durable (&c, c.next_pos, 1);
  assert_int_equal (mirror_ring_durable (&producer), mirror_ring_head (&producer));

  /* An event loop's way: arm (nothing there: wait), the producer's
   * signal, woken. */
  assert_int_equal (mirror_consumer_arm (&c), 0);
  assert_int_equal (page->sleeping, 1);
  assert_int_equal (mirror_consumer_event_fd (&c) >= 0, 1);
  assert_int_equal (write (event_fd, &one, sizeof one), (ssize_t) sizeof one);
  assert_int_equal (mirror_consumer_woken (&c), 0);
  assert_int_equal (page->sleeping, 0);
  /* A record committed before the arm: no sleep. */
  assert_true (mirror_ring_reserve (&producer, 0, &pos));
  mirror_ring_commit (&producer, pos, MIRROR_ZERO, 0, 65536, 0);
  assert_int_equal (mirror_consumer_arm (&c), 1);
  assert_int_equal (page->sleeping, 0);
  assert_int_equal (mirror_consumer_next (&c, &e), 1);
  assert_int_equal (e.type, MIRROR_ZERO);

  /* A producer's signal wakes a sleeping consumer. */
  assert_int_equal (write (event_fd, &one, sizeof one), (ssize_t) sizeof one);
  assert_int_equal (mirror_consumer_wait (&c, 1000), 1);
  assert_false (mirror_consumer_stopped (&c));
  producer.hdr->stopped = 1;
  assert_true (mirror_consumer_stopped (&c));

  mirror_consumer_unmap (&c);
  munmap (area, area_size);
  munmap (page, sizeof *page);
  close (area_fd);
  close (page_fd);
  close (event_fd);
}

/* A consumer refuses what is not a ring of this version. */
static void
test_consumer_refuses_garbage (void **state)
{
  int area_fd = memfd_create ("garbage", MFD_CLOEXEC);
  int page_fd = memfd_create ("page", MFD_CLOEXEC);
  struct mirror_consumer c;

  (void) state;
  assert_int_equal (ftruncate (area_fd, 1 << 20), 0);
  assert_int_equal (ftruncate (page_fd, 4096), 0);
  assert_int_equal (mirror_consumer_map (&c, area_fd, page_fd, -1), -1);
  assert_int_equal (errno, EINVAL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_capacity_rule),
    cmocka_unit_test (test_reserve_commit_consume),
    cmocka_unit_test (test_full_and_durable),
    cmocka_unit_test (test_window),
    cmocka_unit_test (test_wrap_around),
    cmocka_unit_test (test_stale_flag),
    cmocka_unit_test (test_walk),
    cmocka_unit_test (test_many_writers),
    cmocka_unit_test (test_consumer_over_memfds),
    cmocka_unit_test (test_consumer_refuses_garbage),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
