/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the block bitmap (see bitmap.h).
 *
 * Bits live in 64-bit words, bit i in word i / 64 at position i % 64.
 * Every change to a word is one GCC __atomic read-modify-write, so setters on
 * nbdkit worker threads, clearers on the control thread and
 * block_bitmap_move_into can all run at once without a lock and without
 * losing a bit.  Reads that only count or search use relaxed loads: their
 * answer is a snapshot that may be stale by the time it is used, which is
 * all any caller can ask of a bitmap that keeps changing.
 *
 * The bits past nbits in the last word are never set, so counting and
 * searching need no special case for the tail.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "bitmap.h"
#include "bits.h"

#define BITS_PER_WORD 64

/* The mask of bits [lo, hi) of one word, for 0 <= lo < hi <= 64.  Written
 * so that no shift is by 64, which C leaves undefined. */
static uint64_t
word_mask (unsigned lo, unsigned hi)
{
  uint64_t upper, lower;

  assert (lo < hi && hi <= BITS_PER_WORD);
  upper = hi == BITS_PER_WORD ? ~UINT64_C (0) : (UINT64_C (1) << hi) - 1;
  lower = (UINT64_C (1) << lo) - 1;
  return upper & ~lower;
}

/* The valid bits of the last word: all of it when nbits is a multiple of 64. */
static uint64_t
last_word_mask (const struct block_bitmap *bm)
{
  unsigned tail = bm->nbits % BITS_PER_WORD;

  return tail == 0 ? ~UINT64_C (0) : word_mask (0, tail);
}

int
block_bitmap_init (struct block_bitmap *bm, uint64_t nbits)
{
  uint64_t nwords = nbits / BITS_PER_WORD + (nbits % BITS_PER_WORD != 0);

  bm->words = NULL;
  bm->nbits = 0;
  bm->nwords = 0;

  /* A size that cannot be allocated on this machine is an allocation
   * failure, whatever the word size. */
  if (nwords > SIZE_MAX / sizeof (uint64_t)) {
    errno = ENOMEM;
    return -1;
  }
  if (nwords > 0) {
    bm->words = calloc ((size_t) nwords, sizeof (uint64_t));
    if (bm->words == NULL) {
      errno = ENOMEM;
      return -1;
    }
  }
  bm->nbits = nbits;
  bm->nwords = (size_t) nwords;
  return 0;
}

void
block_bitmap_free (struct block_bitmap *bm)
{
  free (bm->words);
  bm->words = NULL;
  bm->nbits = 0;
  bm->nwords = 0;
}

/* Clip [first, first+count) to the bitmap.  Returns false when nothing of
 * the range is inside.  Written so that first+count never overflows. */
static bool
clip_range (const struct block_bitmap *bm, uint64_t first, uint64_t *count)
{
  if (first >= bm->nbits || *count == 0)
    return false;
  if (*count > bm->nbits - first)
    *count = bm->nbits - first;
  return true;
}

/* Set mask in a word, skipping the read-modify-write when every bit of it
 * is already set.  A guest rewriting the same blocks between two passes
 * (the common case) then only reads the word: the locked RMW, and the
 * cache line bouncing between the cores that write, are avoided.  The
 * load is sequentially consistent like the exchange in move_into, so
 * either it sees the bits still set (and the exchange, which comes later,
 * moves them after this write completed) or it sees them gone and sets
 * them again. */
static void
word_set (uint64_t *word, uint64_t mask)
{
  if ((__atomic_load_n (word, __ATOMIC_SEQ_CST) & mask) == mask)
    return;
  __atomic_fetch_or (word, mask, __ATOMIC_SEQ_CST);
}

void
block_bitmap_set_range (struct block_bitmap *bm, uint64_t first, uint64_t count)
{
  uint64_t end, w, first_w, last_w;

  if (!clip_range (bm, first, &count))
    return;
  end = first + count;          /* exclusive, <= nbits */
  first_w = first / BITS_PER_WORD;
  last_w = (end - 1) / BITS_PER_WORD;

  if (first_w == last_w) {
    word_set (&bm->words[first_w],
              word_mask (first % BITS_PER_WORD, (end - 1) % BITS_PER_WORD + 1));
    return;
  }

  /* Partial first word, whole middle words, partial (or whole) last word. */
  word_set (&bm->words[first_w], word_mask (first % BITS_PER_WORD, BITS_PER_WORD));
  for (w = first_w + 1; w < last_w; w++)
    word_set (&bm->words[w], ~UINT64_C (0));
  word_set (&bm->words[last_w], word_mask (0, (end - 1) % BITS_PER_WORD + 1));
}

void
block_bitmap_clear_range (struct block_bitmap *bm, uint64_t first, uint64_t count)
{
  uint64_t end, w, first_w, last_w;

  if (!clip_range (bm, first, &count))
    return;
  end = first + count;
  first_w = first / BITS_PER_WORD;
  last_w = (end - 1) / BITS_PER_WORD;

  if (first_w == last_w) {
    __atomic_fetch_and (&bm->words[first_w],
                        ~word_mask (first % BITS_PER_WORD,
                                    (end - 1) % BITS_PER_WORD + 1),
                        __ATOMIC_SEQ_CST);
    return;
  }

  __atomic_fetch_and (&bm->words[first_w],
                      ~word_mask (first % BITS_PER_WORD, BITS_PER_WORD),
                      __ATOMIC_SEQ_CST);
  /* A whole word cleared is a plain atomic store: no bit of it survives
   * whatever a concurrent setter did before. */
  for (w = first_w + 1; w < last_w; w++)
    __atomic_store_n (&bm->words[w], 0, __ATOMIC_SEQ_CST);
  __atomic_fetch_and (&bm->words[last_w],
                      ~word_mask (0, (end - 1) % BITS_PER_WORD + 1),
                      __ATOMIC_SEQ_CST);
}

void
block_bitmap_set_all (struct block_bitmap *bm)
{
  size_t w;

  if (bm->nwords == 0)
    return;
  for (w = 0; w + 1 < bm->nwords; w++)
    __atomic_fetch_or (&bm->words[w], ~UINT64_C (0), __ATOMIC_SEQ_CST);
  /* The last word is masked so the bits past nbits stay zero. */
  __atomic_fetch_or (&bm->words[bm->nwords - 1], last_word_mask (bm),
                     __ATOMIC_SEQ_CST);
}

void
block_bitmap_clear_all (struct block_bitmap *bm)
{
  size_t w;

  for (w = 0; w < bm->nwords; w++)
    __atomic_store_n (&bm->words[w], 0, __ATOMIC_SEQ_CST);
}

bool
block_bitmap_test (const struct block_bitmap *bm, uint64_t bit)
{
  uint64_t word;

  if (bit >= bm->nbits)
    return false;
  word = __atomic_load_n (&bm->words[bit / BITS_PER_WORD], __ATOMIC_RELAXED);
  return (word >> (bit % BITS_PER_WORD)) & 1;
}

uint64_t
block_bitmap_count (const struct block_bitmap *bm)
{
  uint64_t n = 0;
  size_t w;

  for (w = 0; w < bm->nwords; w++)
    n += (uint64_t) __builtin_popcountll (__atomic_load_n (&bm->words[w],
                                                           __ATOMIC_RELAXED));
  return n;
}

bool
block_bitmap_next_run (const struct block_bitmap *bm, uint64_t from,
                       uint64_t *start, uint64_t *count)
{
  uint64_t w, bits, run_start, run_end;

  if (from >= bm->nbits)
    return false;

  /* Find the first set bit at or after 'from', skipping zero words.  The
   * shift is by less than 64, so it is defined. */
  w = from / BITS_PER_WORD;
  bits = __atomic_load_n (&bm->words[w], __ATOMIC_RELAXED)
    & (~UINT64_C (0) << (from % BITS_PER_WORD));
  while (bits == 0) {
    w++;
    if (w >= bm->nwords)
      return false;
    bits = __atomic_load_n (&bm->words[w], __ATOMIC_RELAXED);
  }
  run_start = w * BITS_PER_WORD + (uint64_t) __builtin_ctzll (bits);

  /* Find the first clear bit after the start, which ends the run.  The
   * clear bits are the set bits of the complement, and the complement of
   * the word loaded above is reused so the run starts on a bit that was
   * really seen set.  Bits past nbits are zero, so their complement stops
   * the run at nbits in the last word. */
  bits = ~bits & (~UINT64_C (0) << (run_start % BITS_PER_WORD));
  run_end = bm->nbits;          /* if every later word is full */
  for (;;) {
    if (bits != 0) {
      run_end = w * BITS_PER_WORD + (uint64_t) __builtin_ctzll (bits);
      if (run_end > bm->nbits)
        run_end = bm->nbits;
      break;
    }
    w++;
    if (w >= bm->nwords)
      break;
    bits = ~__atomic_load_n (&bm->words[w], __ATOMIC_RELAXED);
  }

  *start = run_start;
  *count = run_end - run_start;
  return true;
}

void
block_bitmap_move_into (struct block_bitmap *dst, struct block_bitmap *src)
{
  size_t w;

  assert (dst->nbits == src->nbits);
  /* The exchange takes the word's bits and leaves zero in one step: a bit a
   * concurrent setter adds before the exchange moves now, one added after it
   * stays in src for the next move.  Between the exchange and the OR into
   * dst a bit is held only in the local variable; callers that must see
   * every bit in dst | src at all times (the filter's SNAPSHOT) serialise
   * their readers against this call. */
  for (w = 0; w < src->nwords; w++) {
    uint64_t bits = __atomic_exchange_n (&src->words[w], 0, __ATOMIC_SEQ_CST);

    if (bits != 0)
      __atomic_fetch_or (&dst->words[w], bits, __ATOMIC_SEQ_CST);
  }
}

void
block_bitmap_or_into (struct block_bitmap *dst, const struct block_bitmap *src)
{
  size_t w;

  assert (dst->nbits == src->nbits);
  for (w = 0; w < src->nwords; w++) {
    uint64_t bits = __atomic_load_n (&src->words[w], __ATOMIC_SEQ_CST);

    if (bits != 0)
      __atomic_fetch_or (&dst->words[w], bits, __ATOMIC_SEQ_CST);
  }
}

void
block_range_of_bytes (uint64_t offset, uint64_t length, uint32_t block_size,
                      uint64_t *first, uint64_t *count)
{
  uint64_t last_byte;

  assert (is_power_of_two (block_size));

  *first = offset / block_size;
  if (length == 0) {
    *count = 0;
    return;
  }
  /* The last byte rather than the end: offset + length may be exactly 2^64,
   * which does not fit, but offset + length - 1 always does.  A range
   * reaching past 2^64 (outside the contract) is clipped, not wrapped. */
  if (length - 1 > UINT64_MAX - offset)
    last_byte = UINT64_MAX;
  else
    last_byte = offset + (length - 1);
  *count = last_byte / block_size - *first + 1;
}

uint64_t
block_count_for_size (uint64_t image_size, uint32_t block_size)
{
  assert (block_size != 0);
  return image_size / block_size + (image_size % block_size != 0);
}
