/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of a writer's bounded wait for room in a full mirror ring
 * (mirror/mirror_wait.c), with real threads and the real futex: a writer
 * blocked on a full ring proceeds once the consumer reports records
 * durable; it gives up after the bound when the consumer does not; it
 * stops at once when its give_up says so and the futex is woken, or the
 * ring is stopped; the consumer wakes only when someone waits; and many
 * writers against a consumer that frees room bit by bit all get in, none
 * lost to a missed wake (the writers' sleeps are not sliced, so a missed
 * wake would cost the whole bound and show as a timeout).
 */
#include <config.h>

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mirror_consumer.h"
#include "mirror_ring.h"
#include "mirror_test_ring.h"
#include "mirror_wait.h"

#define NS_PER_MS UINT64_C (1000000)
#define CAPACITY 4096u
/* Three records of this much data fill a ring of CAPACITY bytes (each
 * takes 1088), and a fourth does not fit. */
#define DATA_LEN 1000u

static struct test_ring *
new_ring (uint64_t full_wait_ns)
{
  return new_test_ring (CAPACITY, full_wait_ns);
}

static void
free_ring (struct test_ring *t)
{
  free_test_ring (t);
}

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

static void
sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

  nanosleep (&ts, NULL);
}

/* Reserve and commit one record of len bytes; false if there is no room. */
static bool
put (struct test_ring *t, uint64_t len)
{
  static const uint8_t buf[DATA_LEN];
  uint64_t pos;

  if (!mirror_ring_reserve (&t->r, len, &pos))
    return false;
  mirror_ring_copy_in (&t->r, pos, 0, buf, len);
  mirror_ring_commit (&t->r, pos, MIRROR_WRITE, 0, len, len);
  return true;
}

static void
fill (struct test_ring *t)
{
  for (int i = 0; i < 3; i++)
    assert_true (put (t, DATA_LEN));
  assert_false (put (t, DATA_LEN));
}

/* The consumer takes every committed record and reports it durable. */
static void
consume_all (struct test_ring *t)
{
  struct mirror_entry e;

  while (mirror_consumer_next (&t->c, &e) == 1)
    ;
  mirror_consumer_taken (&t->c, t->c.next_pos, t->c.taken_entries);
  mirror_consumer_durable (&t->c, t->c.next_pos, t->c.taken_entries);
}

/* One writer waiting on a thread of its own. */
struct waiter {
  struct test_ring *t;
  struct mirror_wait_policy policy;
  enum mirror_wait_result result;
  uint64_t pos, waited_ns;
  pthread_t thread;
};

static void *
waiter_thread (void *arg)
{
  struct waiter *w = arg;

  w->result = mirror_wait_room (&w->t->r, DATA_LEN, &w->policy, &w->pos,
                                &w->waited_ns);
  if (w->result == MIRROR_WAIT_READY)
    mirror_ring_commit (&w->t->r, w->pos, MIRROR_WRITE, 1, DATA_LEN,
                        DATA_LEN);
  return NULL;
}

static void
start_waiter (struct waiter *w)
{
  uint64_t deadline = now_ns () + 5000 * NS_PER_MS;

  assert_int_equal (pthread_create (&w->thread, NULL, waiter_thread, w), 0);
  /* Until it counts itself a waiter (bounded: 5 s). */
  while (__atomic_load_n (&w->t->r.hdr->full_waiters, __ATOMIC_ACQUIRE) == 0) {
    assert_true (now_ns () < deadline);
    sched_yield ();
  }
}

/* A writer blocked on a full ring proceeds when the consumer makes room,
 * long before its bound. */
static void
test_proceeds_when_durable_moves (void **state)
{
  struct test_ring *t = new_ring (10000 * NS_PER_MS);
  struct waiter w = {
    .t = t, .policy = { .timeout_ns = 10000 * NS_PER_MS, .slice_ns = 0 },
  };
  struct mirror_entry e;

  (void) state;
  fill (t);
  start_waiter (&w);
  sleep_ms (100);
  /* Still waiting: nothing was made durable. */
  assert_int_equal (__atomic_load_n (&t->r.hdr->full_waiters, __ATOMIC_ACQUIRE),
                    1);
  consume_all (t);
  assert_int_equal (pthread_join (w.thread, NULL), 0);
  assert_int_equal (w.result, MIRROR_WAIT_READY);
  assert_true (w.waited_ns >= 90 * NS_PER_MS);
  assert_true (w.waited_ns < 5000 * NS_PER_MS);
  assert_int_equal (t->r.hdr->full_waiters, 0);
  /* Its record is in the ring, after the three that filled it. */
  assert_int_equal (mirror_consumer_next (&t->c, &e), 1);
  assert_int_equal (e.pos, 3 * mirror_record_size (DATA_LEN));
  assert_int_equal (e.offset, 1);
  free_ring (t);
}

/* With no room made, the writer gives up after its bound, not before,
 * and not much after. */
static void
test_gives_up_after_bound (void **state)
{
  struct test_ring *t = new_ring (200 * NS_PER_MS);
  struct waiter w = {
    .t = t, .policy = { .timeout_ns = 200 * NS_PER_MS, .slice_ns = 0 },
  };
  uint64_t head;

  (void) state;
  fill (t);
  head = mirror_ring_head (&t->r);
  start_waiter (&w);
  assert_int_equal (pthread_join (w.thread, NULL), 0);
  assert_int_equal (w.result, MIRROR_WAIT_TIMEOUT);
  assert_true (w.waited_ns >= 200 * NS_PER_MS);
  assert_true (w.waited_ns < 2000 * NS_PER_MS);
  assert_int_equal (mirror_ring_head (&t->r), head);  /* nothing reserved */
  assert_int_equal (t->r.hdr->full_waiters, 0);
  /* A bound of 0 does not sleep at all. */
  w.policy.timeout_ns = 0;
  assert_int_equal (mirror_wait_room (&t->r, DATA_LEN, &w.policy, &w.pos,
                                      &w.waited_ns), MIRROR_WAIT_TIMEOUT);
  assert_true (w.waited_ns < 1000 * NS_PER_MS);
  free_ring (t);
}

static bool
flag_is_set (void *opaque)
{
  return __atomic_load_n ((const unsigned *) opaque, __ATOMIC_SEQ_CST) != 0;
}

/* A give_up made true (FREEZE, in the filter) and the futex woken: the
 * writer stops at once, though its bound is far off and its sleep not
 * sliced. */
static void
test_give_up_ends_wait_at_once (void **state)
{
  struct test_ring *t = new_ring (60000 * NS_PER_MS);
  unsigned freezing = 0;
  struct waiter w = {
    .t = t,
    .policy = { .timeout_ns = 60000 * NS_PER_MS, .slice_ns = 0,
                .give_up = flag_is_set, .opaque = &freezing },
  };
  uint64_t t0;

  (void) state;
  fill (t);
  start_waiter (&w);
  sleep_ms (50);
  t0 = now_ns ();
  __atomic_store_n (&freezing, 1, __ATOMIC_SEQ_CST);
  mirror_wait_wake_all (&t->r);
  assert_int_equal (pthread_join (w.thread, NULL), 0);
  assert_int_equal (w.result, MIRROR_WAIT_GAVE_UP);
  assert_true (now_ns () - t0 < 2000 * NS_PER_MS);
  /* Already true: no wait at all. */
  assert_int_equal (mirror_wait_room (&t->r, DATA_LEN, &w.policy, &w.pos,
                                      &w.waited_ns), MIRROR_WAIT_GAVE_UP);
  free_ring (t);
}

/* A ring stopped (and its waiters woken, as the filter does) ends the
 * wait at once. */
static void
test_stopped_ends_wait (void **state)
{
  struct test_ring *t = new_ring (60000 * NS_PER_MS);
  struct waiter w = {
    .t = t, .policy = { .timeout_ns = 60000 * NS_PER_MS, .slice_ns = 0 },
  };
  uint64_t t0;

  (void) state;
  fill (t);
  start_waiter (&w);
  sleep_ms (50);
  t0 = now_ns ();
  __atomic_store_n (&t->r.hdr->stopped, 1, __ATOMIC_RELEASE);
  mirror_wait_wake_all (&t->r);
  assert_int_equal (pthread_join (w.thread, NULL), 0);
  assert_int_equal (w.result, MIRROR_WAIT_STOPPED);
  assert_true (now_ns () - t0 < 2000 * NS_PER_MS);
  assert_true (mirror_ring_is_stopped (&t->r));
  free_ring (t);
}

/* Which records could ever fit: waiting for room is pointless for the
 * others. */
static void
test_can_hold (void **state)
{
  struct test_ring *t = new_ring (0);

  (void) state;
  assert_true (mirror_ring_can_hold (&t->r, 0));
  assert_true (mirror_ring_can_hold (&t->r, CAPACITY - MIRROR_GRANULE));
  assert_false (mirror_ring_can_hold (&t->r, CAPACITY - MIRROR_GRANULE + 1));
  assert_false (mirror_ring_can_hold (&t->r, UINT64_MAX));
  free_ring (t);
}

/* The consumer bumps the futex word only when a writer may wait for it:
 * always in mirror-sync, in mirror only while a writer waits for room. */
static void
test_wake_only_when_needed (void **state)
{
  struct test_ring *t = new_ring (1000 * NS_PER_MS);
  uint32_t before;

  (void) state;
  assert_true (put (t, DATA_LEN));
  before = t->page.durable_wake;
  consume_all (t);
  assert_int_equal (t->page.durable_wake, before);
  assert_int_equal (mirror_ring_durable (&t->r), mirror_ring_head (&t->r));

  mirror_ring_waiter_enter (&t->r);
  assert_true (put (t, DATA_LEN));
  consume_all (t);
  assert_int_equal (t->page.durable_wake, before + 1);
  mirror_ring_waiter_leave (&t->r);

  t->r.hdr->sync = 1;
  assert_true (put (t, DATA_LEN));
  consume_all (t);
  assert_int_equal (t->page.durable_wake, before + 2);
  free_ring (t);
}

/* Many writers, a consumer slower than they are that frees room one
 * record at a time. */
#define WRITERS 4
#define PER_WRITER 300

struct stress {
  struct test_ring *t;
  unsigned room, not_room;       /* atomic */
  unsigned saw_waiters;          /* durable reports made with waiters */
};

static void *
stress_writer (void *arg)
{
  struct stress *s = arg;
  /* Not sliced: a missed wake would cost the whole bound. */
  const struct mirror_wait_policy policy = {
    .timeout_ns = 5000 * NS_PER_MS, .slice_ns = 0,
  };

  for (int i = 0; i < PER_WRITER &&
         __atomic_load_n (&s->not_room, __ATOMIC_RELAXED) == 0; i++) {
    uint64_t pos, waited;
    static const uint8_t buf[DATA_LEN];

    if (!mirror_ring_reserve (&s->t->r, DATA_LEN, &pos) &&
        mirror_wait_room (&s->t->r, DATA_LEN, &policy, &pos, &waited)
        != MIRROR_WAIT_READY) {
      /* A missed wake: the test fails, without waiting out the others. */
      __atomic_fetch_add (&s->not_room, 1, __ATOMIC_RELAXED);
      break;
    }
    mirror_ring_copy_in (&s->t->r, pos, 0, buf, DATA_LEN);
    mirror_ring_commit (&s->t->r, pos, MIRROR_WRITE, 0, DATA_LEN, DATA_LEN);
    __atomic_fetch_add (&s->room, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void *
stress_consumer (void *arg)
{
  struct stress *s = arg;
  struct mirror_consumer *c = &s->t->c;
  uint64_t deadline = now_ns () + 60000 * NS_PER_MS;
  const struct timespec pause = { 0, 200 * 1000 };

  while (c->taken_entries < (uint64_t) WRITERS * PER_WRITER &&
         __atomic_load_n (&s->not_room, __ATOMIC_RELAXED) == 0 &&
         now_ns () < deadline) {
    struct mirror_entry e;

    if (mirror_consumer_next (c, &e) != 1) {
      sched_yield ();
      continue;
    }
    mirror_consumer_taken (c, c->next_pos, c->taken_entries);
    /* Slower than the writers, so that they find the ring full and
     * sleep, again and again. */
    nanosleep (&pause, NULL);
    mirror_consumer_durable (c, c->next_pos, c->taken_entries);
    if (__atomic_load_n (&s->t->r.hdr->full_waiters, __ATOMIC_RELAXED) > 0)
      s->saw_waiters++;
  }
  return NULL;
}

static void
test_many_writers_all_get_room (void **state)
{
  struct stress s = { .t = new_ring (10000 * NS_PER_MS) };
  pthread_t writers[WRITERS], consumer;

  (void) state;
  for (int i = 0; i < WRITERS; i++)
    assert_int_equal (pthread_create (&writers[i], NULL, stress_writer, &s), 0);
  assert_int_equal (pthread_create (&consumer, NULL, stress_consumer, &s), 0);
  for (int i = 0; i < WRITERS; i++)
    assert_int_equal (pthread_join (writers[i], NULL), 0);
  assert_int_equal (pthread_join (consumer, NULL), 0);
  assert_int_equal (s.not_room, 0);
  /* The writers did wait (most reports find some asleep). */
  assert_true (s.saw_waiters > PER_WRITER);
  assert_int_equal (s.room, WRITERS * PER_WRITER);
  assert_int_equal (s.t->c.taken_entries, WRITERS * PER_WRITER);
  assert_int_equal (s.t->r.hdr->full_waiters, 0);
  free_ring (s.t);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_proceeds_when_durable_moves),
    cmocka_unit_test (test_gives_up_after_bound),
    cmocka_unit_test (test_give_up_ends_wait_at_once),
    cmocka_unit_test (test_stopped_ends_wait),
    cmocka_unit_test (test_can_hold),
    cmocka_unit_test (test_wake_only_when_needed),
    cmocka_unit_test (test_many_writers_all_get_room),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
