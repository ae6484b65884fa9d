/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: a block bitmap, one bit per block of the image.
 *
 * The filter keeps three of these (dirty, unconfirmed and handed_out: the
 * blocks the latest SNAPSHOT moved) and sets dirty bits from many nbdkit
 * worker threads at once while the control thread takes snapshots, so
 * every update of a word is a single atomic operation: setting
 * and clearing ranges never takes a lock, and block_bitmap_move_into drains
 * one bitmap into another a word at a time with an atomic exchange so no bit
 * set concurrently is ever lost.  Walking set runs goes a 64-bit word at a
 * time, so a pass over a mostly clean bitmap costs little.
 *
 * The bitmap knows nothing about byte offsets; block_range_of_bytes converts
 * a byte range into the blocks it touches.
 */
#ifndef STM_COMMON_BITMAP_H
#define STM_COMMON_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct block_bitmap {
  uint64_t *words;      /* nwords words; bits past nbits are always zero */
  uint64_t nbits;       /* number of blocks */
  size_t nwords;
};

/* Allocate a bitmap of nbits bits, all clear.  Returns -1 with errno set
 * (ENOMEM) on failure. */
int block_bitmap_init (struct block_bitmap *bm, uint64_t nbits);
void block_bitmap_free (struct block_bitmap *bm);

/* Set or clear bits [first, first+count), clipped to nbits.  Atomic per
 * word; safe against concurrent setters, clearers and block_bitmap_move_into. */
void block_bitmap_set_range (struct block_bitmap *bm, uint64_t first, uint64_t count);
void block_bitmap_clear_range (struct block_bitmap *bm, uint64_t first, uint64_t count);
void block_bitmap_set_all (struct block_bitmap *bm);
void block_bitmap_clear_all (struct block_bitmap *bm);

bool block_bitmap_test (const struct block_bitmap *bm, uint64_t bit);
uint64_t block_bitmap_count (const struct block_bitmap *bm);

/* Find the first run of set bits at or after bit 'from'.  Returns false if
 * there is none; otherwise *start and *count describe the whole run. */
bool block_bitmap_next_run (const struct block_bitmap *bm, uint64_t from,
                            uint64_t *start, uint64_t *count);

/* dst |= src, then src = 0, word by word with an atomic exchange on src, so
 * a bit set in src concurrently either moves now or stays in src.  Both
 * bitmaps must have the same nbits. */
void block_bitmap_move_into (struct block_bitmap *dst, struct block_bitmap *src);

/* dst |= src (src unchanged).  Same nbits. */
void block_bitmap_or_into (struct block_bitmap *dst, const struct block_bitmap *src);

/* The blocks touched by the byte range [offset, offset+length) for a block
 * size block_size (a power of two): first block and number of blocks.
 * length 0 gives count 0.  No overflow for any offset+length <= 2^64. */
void block_range_of_bytes (uint64_t offset, uint64_t length, uint32_t block_size,
                           uint64_t *first, uint64_t *count);

/* Number of blocks for an image of image_size bytes (the last may be
 * partial). */
uint64_t block_count_for_size (uint64_t image_size, uint32_t block_size);

#endif /* STM_COMMON_BITMAP_H */
