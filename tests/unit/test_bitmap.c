/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the block bitmap (common/bitmap.c).
 *
 * Edges first: sizes that are not a multiple of 64, ranges that cross word
 * boundaries, runs that end at the last bit, byte ranges near 2^64.  Every
 * single-threaded test is checked against a plain bool array as a model.
 * The threaded test checks the one property the filter relies on: while
 * setters run, repeated move_into never loses a bit.
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bitmap.h"

/* Check that bm has exactly the bits of model[0..nbits). */
static void
assert_matches_model (const struct block_bitmap *bm, const bool *model)
{
  uint64_t i, n = 0;

  for (i = 0; i < bm->nbits; i++) {
    if (block_bitmap_test (bm, i) != model[i])
      fail_msg ("bit %" PRIu64 " is %d, expected %d", i,
                block_bitmap_test (bm, i), model[i]);
    n += model[i];
  }
  assert_int_equal (block_bitmap_count (bm), n);
  /* Bits past nbits are never set. */
  if (bm->nbits % 64 != 0)
    assert_int_equal (bm->words[bm->nwords - 1] >> (bm->nbits % 64), 0);
}

static void
test_init_sizes (void **state)
{
  struct block_bitmap bm;
  static const uint64_t sizes[] = { 0, 1, 63, 64, 65, 127, 128, 129, 1000 };
  size_t i;

  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    assert_int_equal (block_bitmap_init (&bm, sizes[i]), 0);
    assert_int_equal (bm.nbits, sizes[i]);
    assert_int_equal (bm.nwords, (sizes[i] + 63) / 64);
    assert_int_equal (block_bitmap_count (&bm), 0);
    block_bitmap_set_all (&bm);
    assert_int_equal (block_bitmap_count (&bm), sizes[i]);
    block_bitmap_clear_all (&bm);
    assert_int_equal (block_bitmap_count (&bm), 0);
    block_bitmap_free (&bm);
    assert_null (bm.words);
  }
}

static void
test_set_all_masks_tail (void **state)
{
  struct block_bitmap bm;
  uint64_t start, count;

  assert_int_equal (block_bitmap_init (&bm, 130), 0);
  block_bitmap_set_all (&bm);
  assert_int_equal (block_bitmap_count (&bm), 130);
  assert_int_equal (bm.words[2], 3);      /* bits 128 and 129 only */
  assert_true (block_bitmap_test (&bm, 129));
  assert_false (block_bitmap_test (&bm, 130));   /* out of range */
  assert_true (block_bitmap_next_run (&bm, 0, &start, &count));
  assert_int_equal (start, 0);
  assert_int_equal (count, 130);
  assert_true (block_bitmap_next_run (&bm, 129, &start, &count));
  assert_int_equal (start, 129);
  assert_int_equal (count, 1);
  assert_false (block_bitmap_next_run (&bm, 130, &start, &count));
  block_bitmap_free (&bm);
}

/* Set and clear many ranges, including ones crossing words and ones
 * reaching past the end, and compare with the model after each. */
static void
test_ranges_against_model (void **state)
{
  static const uint64_t sizes[] = { 1, 64, 100, 192, 200 };
  size_t s;

  for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    const uint64_t nbits = sizes[s];
    struct block_bitmap bm;
    bool model[256];
    uint64_t first, count, i;

    assert_int_equal (block_bitmap_init (&bm, nbits), 0);
    memset (model, 0, sizeof model);
    /* Every (first, count) with first up to nbits+1 and count up to 140,
     * alternating set and clear: all the edge positions relative to
     * word boundaries are covered. */
    for (first = 0; first <= nbits + 1; first++) {
      for (count = 0; count <= 140; count += (count < 70 ? 1 : 7)) {
        bool set = (first + count) % 3 != 0;

        if (set)
          block_bitmap_set_range (&bm, first, count);
        else
          block_bitmap_clear_range (&bm, first, count);
        for (i = first; i < first + count && i < nbits; i++)
          model[i] = set;
      }
      assert_matches_model (&bm, model);
    }
    block_bitmap_free (&bm);
  }
}

static void
test_range_huge_count (void **state)
{
  struct block_bitmap bm;

  assert_int_equal (block_bitmap_init (&bm, 100), 0);
  /* first + count overflows 64 bits: must clip, not wrap. */
  block_bitmap_set_range (&bm, 10, UINT64_MAX);
  assert_int_equal (block_bitmap_count (&bm), 90);
  block_bitmap_clear_range (&bm, 50, UINT64_MAX - 10);
  assert_int_equal (block_bitmap_count (&bm), 40);
  block_bitmap_set_range (&bm, UINT64_MAX, UINT64_MAX);
  block_bitmap_set_range (&bm, 100, 1);
  assert_int_equal (block_bitmap_count (&bm), 40);
  assert_false (block_bitmap_test (&bm, UINT64_MAX));
  block_bitmap_free (&bm);
}

/* Compare next_run with a walk of the model. */
static void
check_runs (const struct block_bitmap *bm, const bool *model)
{
  uint64_t from, start, count;

  for (from = 0; from <= bm->nbits + 1; from++) {
    uint64_t s = from, e;
    bool found;

    while (s < bm->nbits && !model[s])
      s++;
    found = block_bitmap_next_run (bm, from, &start, &count);
    if (s >= bm->nbits) {
      assert_false (found);
      continue;
    }
    assert_true (found);
    for (e = s; e < bm->nbits && model[e]; e++)
      ;
    assert_int_equal (start, s);
    assert_int_equal (count, e - s);
  }
}

static void
test_next_run (void **state)
{
  struct block_bitmap bm;
  bool model[300] = { false };
  uint64_t i, start, count;

  assert_int_equal (block_bitmap_init (&bm, 300), 0);
  assert_false (block_bitmap_next_run (&bm, 0, &start, &count));
  check_runs (&bm, model);

  /* A run crossing two word boundaries, one exactly a word, single bits
   * on both sides of a boundary, and a run ending at the last bit. */
  block_bitmap_set_range (&bm, 60, 80);         /* 60..139 */
  block_bitmap_set_range (&bm, 192, 64);        /* word 3 exactly */
  block_bitmap_set_range (&bm, 263, 1);
  block_bitmap_set_range (&bm, 264, 0);
  block_bitmap_set_range (&bm, 270, 30);        /* to the end */
  for (i = 60; i < 140; i++) model[i] = true;
  for (i = 192; i < 256; i++) model[i] = true;
  model[263] = true;
  for (i = 270; i < 300; i++) model[i] = true;
  assert_matches_model (&bm, model);
  check_runs (&bm, model);

  assert_true (block_bitmap_next_run (&bm, 0, &start, &count));
  assert_int_equal (start, 60);
  assert_int_equal (count, 80);
  assert_true (block_bitmap_next_run (&bm, 100, &start, &count));
  assert_int_equal (start, 100);
  assert_int_equal (count, 40);
  assert_true (block_bitmap_next_run (&bm, 140, &start, &count));
  assert_int_equal (start, 192);
  assert_int_equal (count, 64);
  assert_true (block_bitmap_next_run (&bm, 264, &start, &count));
  assert_int_equal (start, 270);
  assert_int_equal (count, 30);

  /* Pseudo-random patterns: a fixed seed, so a failure reproduces. */
  srand (12345);
  for (i = 0; i < 20; i++) {
    uint64_t b;

    block_bitmap_clear_all (&bm);
    for (b = 0; b < 300; b++) {
      model[b] = rand () % (i % 4 + 2) != 0;
      if (model[b])
        block_bitmap_set_range (&bm, b, 1);
    }
    assert_matches_model (&bm, model);
    check_runs (&bm, model);
  }
  block_bitmap_free (&bm);
}

static void
test_next_run_full_words (void **state)
{
  struct block_bitmap bm;
  uint64_t start, count;

  /* nbits a multiple of 64 and all set: the run ends at nbits, found by
   * running off the last word. */
  assert_int_equal (block_bitmap_init (&bm, 256), 0);
  block_bitmap_set_all (&bm);
  assert_true (block_bitmap_next_run (&bm, 5, &start, &count));
  assert_int_equal (start, 5);
  assert_int_equal (count, 251);
  assert_true (block_bitmap_next_run (&bm, 255, &start, &count));
  assert_int_equal (start, 255);
  assert_int_equal (count, 1);
  block_bitmap_free (&bm);
}

static void
test_move_and_or_into (void **state)
{
  struct block_bitmap dst, src;

  assert_int_equal (block_bitmap_init (&dst, 200), 0);
  assert_int_equal (block_bitmap_init (&src, 200), 0);
  block_bitmap_set_range (&dst, 0, 10);
  block_bitmap_set_range (&src, 5, 10);         /* overlaps 5..9 */
  block_bitmap_set_range (&src, 190, 10);

  block_bitmap_or_into (&dst, &src);
  assert_int_equal (block_bitmap_count (&src), 20);     /* unchanged */
  assert_int_equal (block_bitmap_count (&dst), 25);

  block_bitmap_clear_all (&dst);
  block_bitmap_set_range (&dst, 0, 10);
  block_bitmap_move_into (&dst, &src);
  assert_int_equal (block_bitmap_count (&src), 0);
  assert_int_equal (block_bitmap_count (&dst), 25);
  assert_true (block_bitmap_test (&dst, 14));
  assert_false (block_bitmap_test (&dst, 15));
  assert_true (block_bitmap_test (&dst, 199));

  /* Moving an empty bitmap changes nothing. */
  block_bitmap_move_into (&dst, &src);
  assert_int_equal (block_bitmap_count (&dst), 25);
  block_bitmap_free (&dst);
  block_bitmap_free (&src);
}

static void
test_block_count_for_size (void **state)
{
  assert_int_equal (block_count_for_size (0, 65536), 0);
  assert_int_equal (block_count_for_size (1, 65536), 1);
  assert_int_equal (block_count_for_size (65536, 65536), 1);
  assert_int_equal (block_count_for_size (65537, 65536), 2);
  assert_int_equal (block_count_for_size (10 * 65536 + 512, 65536), 11);
  assert_int_equal (block_count_for_size (UINT64_MAX, 4096),
                    UINT64_MAX / 4096 + 1);
  assert_int_equal (block_count_for_size (UINT64_MAX, 1), UINT64_MAX);
}

static void
test_partial_last_block (void **state)
{
  struct block_bitmap bm;
  uint64_t size = 100 * 4096 + 17, first, count;

  /* An image whose last block is partial: a write to its last byte
   * touches the last block, which exists in the bitmap. */
  assert_int_equal (block_bitmap_init (&bm, block_count_for_size (size, 4096)), 0);
  assert_int_equal (bm.nbits, 101);
  block_range_of_bytes (size - 1, 1, 4096, &first, &count);
  assert_int_equal (first, 100);
  assert_int_equal (count, 1);
  block_bitmap_set_range (&bm, first, count);
  assert_true (block_bitmap_test (&bm, 100));
  block_range_of_bytes (0, size, 4096, &first, &count);
  assert_int_equal (first, 0);
  assert_int_equal (count, 101);
  block_bitmap_set_range (&bm, first, count);
  assert_int_equal (block_bitmap_count (&bm), 101);
  block_bitmap_free (&bm);
}

static void
test_range_of_bytes (void **state)
{
  uint64_t first, count;

  block_range_of_bytes (0, 0, 4096, &first, &count);
  assert_int_equal (count, 0);
  block_range_of_bytes (8192, 0, 4096, &first, &count);
  assert_int_equal (first, 2);
  assert_int_equal (count, 0);
  block_range_of_bytes (0, 1, 4096, &first, &count);
  assert_int_equal (first, 0);
  assert_int_equal (count, 1);
  block_range_of_bytes (0, 4096, 4096, &first, &count);
  assert_int_equal (first, 0);
  assert_int_equal (count, 1);
  block_range_of_bytes (0, 4097, 4096, &first, &count);
  assert_int_equal (count, 2);
  block_range_of_bytes (4095, 2, 4096, &first, &count);
  assert_int_equal (first, 0);
  assert_int_equal (count, 2);
  block_range_of_bytes (4096, 4096, 4096, &first, &count);
  assert_int_equal (first, 1);
  assert_int_equal (count, 1);
  block_range_of_bytes (100, 65536 * 3, 65536, &first, &count);
  assert_int_equal (first, 0);
  assert_int_equal (count, 4);
  block_range_of_bytes (12345, 1, 1, &first, &count);
  assert_int_equal (first, 12345);
  assert_int_equal (count, 1);

  /* Near 2^64: offset + length == 2^64 exactly must not overflow. */
  block_range_of_bytes (UINT64_MAX - 4095, 4096, 4096, &first, &count);
  assert_int_equal (first, UINT64_MAX / 4096);
  assert_int_equal (count, 1);
  block_range_of_bytes (UINT64_MAX - 4096, 4097, 4096, &first, &count);
  assert_int_equal (first, UINT64_MAX / 4096 - 1);
  assert_int_equal (count, 2);
  block_range_of_bytes (UINT64_MAX, 1, 65536, &first, &count);
  assert_int_equal (first, UINT64_MAX / 65536);
  assert_int_equal (count, 1);
  block_range_of_bytes (0, UINT64_MAX, 65536, &first, &count);
  assert_int_equal (first, 0);
  assert_int_equal (count, UINT64_MAX / 65536 + 1);
  block_range_of_bytes (1, UINT64_MAX, 65536, &first, &count);  /* == 2^64 */
  assert_int_equal (first, 0);
  assert_int_equal (count, UINT64_MAX / 65536 + 1);
  block_range_of_bytes (0, UINT64_MAX, 1, &first, &count);
  assert_int_equal (first, 0);
  assert_int_equal (count, UINT64_MAX);
  block_range_of_bytes (UINT64_C (1) << 63, UINT64_C (1) << 63,
                        UINT32_C (1) << 26, &first, &count);
  assert_int_equal (first, UINT64_C (1) << 37);
  assert_int_equal (count, UINT64_C (1) << 37);
}

/* The concurrency test.  Two setters each set every bit of their own half
 * of the bitmap exactly once, in a scattered order, while a mover
 * repeatedly drains src into dst.  A bit lost in a move racing with a set
 * is never set again, so afterwards dst | src must hold every bit. */
#define MT_NBITS 4000037        /* not a multiple of 64 */

struct setter_args {
  struct block_bitmap *src;
  uint64_t lo, hi;              /* the bits [lo, hi) this thread sets */
};

struct mover_args {
  struct block_bitmap *dst, *src;
  int *setters_done;            /* guarded by the atomics on it */
  unsigned moves;
};

static void *
setter_thread (void *arg)
{
  struct setter_args *a = arg;
  uint64_t n = a->hi - a->lo, i;

  /* A stride coprime with n visits every bit in an order that jumps across
   * words, so the same word is set again after the mover took it. */
  for (i = 0; i < n; i++) {
    uint64_t b = a->lo + (i * 7919) % n;

    if (i % 5 == 0)
      block_bitmap_set_range (a->src, b, 3);    /* may cross words */
    else
      block_bitmap_set_range (a->src, b, 1);
  }
  return NULL;
}

static void *
mover_thread (void *arg)
{
  struct mover_args *a = arg;

  /* Bounded: it stops when both setters are done (they run a fixed number
   * of rounds) plus one final move. */
  while (__atomic_load_n (a->setters_done, __ATOMIC_SEQ_CST) < 2) {
    block_bitmap_move_into (a->dst, a->src);
    a->moves++;
  }
  block_bitmap_move_into (a->dst, a->src);
  return NULL;
}

static void
test_concurrent_move_into (void **state)
{
  struct block_bitmap dst, src, all;
  struct setter_args s1, s2;
  struct mover_args m;
  pthread_t t1, t2, tm;
  int setters_done = 0;

  assert_int_equal (block_bitmap_init (&dst, MT_NBITS), 0);
  assert_int_equal (block_bitmap_init (&src, MT_NBITS), 0);
  assert_int_equal (block_bitmap_init (&all, MT_NBITS), 0);

  /* The two halves meet in the middle of a word, so both setters update
   * that word at once. */
  s1 = (struct setter_args) { &src, 0, 2000000 };
  s2 = (struct setter_args) { &src, 2000000, MT_NBITS };
  m = (struct mover_args) { &dst, &src, &setters_done, 0 };

  assert_int_equal (pthread_create (&tm, NULL, mover_thread, &m), 0);
  assert_int_equal (pthread_create (&t1, NULL, setter_thread, &s1), 0);
  assert_int_equal (pthread_create (&t2, NULL, setter_thread, &s2), 0);
  assert_int_equal (pthread_join (t1, NULL), 0);
  __atomic_fetch_add (&setters_done, 1, __ATOMIC_SEQ_CST);
  assert_int_equal (pthread_join (t2, NULL), 0);
  __atomic_fetch_add (&setters_done, 1, __ATOMIC_SEQ_CST);
  assert_int_equal (pthread_join (tm, NULL), 0);

  /* The mover ran its final move after the setters ended, so src is empty
   * and dst alone has every bit.  Check the union anyway: that is the
   * property, the emptiness of src is a consequence of the final move. */
  print_message ("mover drained src %u times while the setters ran\n", m.moves);
  assert_true (m.moves >= 1);
  block_bitmap_or_into (&all, &dst);
  block_bitmap_or_into (&all, &src);
  assert_int_equal (block_bitmap_count (&all), MT_NBITS);
  assert_int_equal (block_bitmap_count (&src), 0);
  assert_int_equal (block_bitmap_count (&dst), MT_NBITS);

  block_bitmap_free (&dst);
  block_bitmap_free (&src);
  block_bitmap_free (&all);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_init_sizes),
    cmocka_unit_test (test_set_all_masks_tail),
    cmocka_unit_test (test_ranges_against_model),
    cmocka_unit_test (test_range_huge_count),
    cmocka_unit_test (test_next_run),
    cmocka_unit_test (test_next_run_full_words),
    cmocka_unit_test (test_move_and_or_into),
    cmocka_unit_test (test_block_count_for_size),
    cmocka_unit_test (test_partial_last_block),
    cmocka_unit_test (test_range_of_bytes),
    cmocka_unit_test (test_concurrent_move_into),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
