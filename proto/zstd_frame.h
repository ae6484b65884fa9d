/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: zstd frames of DATA_ZSTD, made and judged.
 *
 * The sender's side (struct zstd_deflater) compresses a DATA payload into
 * one zstd frame only when that pays: the frame must be at least an eighth
 * smaller than the data, and a cheap probe (the first ZSTD_PROBE_BYTES at
 * the same level) tells incompressible data apart before the whole payload
 * is tried.  The receiver's side (struct zstd_inflater) turns a frame back
 * into exactly the length DATA_ZSTD announced, and refuses anything else:
 * not a zstd frame, bytes after the frame, a content size header that
 * differs from the length, a frame that is corrupt or decompresses to
 * fewer or more bytes.  Hostile frames cost at most the length's buffer
 * (at most WIRE_MAX_DATA, allocated once) and never crash.
 *
 * No I/O: both keep their zstd context and one buffer, so they can be unit
 * tested and fuzzed directly.  Not thread-safe: one user at a time.
 */
#ifndef STM_PROTO_ZSTD_FRAME_H
#define STM_PROTO_ZSTD_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* zstd levels stm accepts (--compress zstd:LEVEL): the fast (negative)
 * ones and 1 to 19.  The default is the fast level -1: over a 1 Gbit/s
 * link, where stm-send is CPU-bound beside nbdkit and stm-recv on 2
 * CPUs, it copied the /usr/lib image of bench/link.sh in 4.88 s (3 runs,
 * 4.83-4.95) against 5.62 s (5.31-5.76) at level 1, one session, its
 * frames 0.38 of the data against 0.33 (docs/performance.md). */
#define ZSTD_FRAME_MIN_LEVEL (-5)
#define ZSTD_FRAME_MAX_LEVEL 19
#define ZSTD_FRAME_DEFAULT_LEVEL (-1)
/* How much of a payload the probe compresses. */
#define ZSTD_PROBE_BYTES (16u * 1024)

struct zstd_deflater;
struct zstd_inflater;

/* A compressor at level (ZSTD_FRAME_MIN_LEVEL..MAX).  NULL with errno set
 * when out of memory. */
struct zstd_deflater *zstd_deflater_new (int level);
void zstd_deflater_free (struct zstd_deflater *z);

/* Compress src[0..n) (1 to WIRE_MAX_DATA bytes) into one frame that
 * records n as its content size.  Returns the frame's length, with *frame
 * pointing at it (valid until the next call), or 0 if the frame would not
 * be at least an eighth smaller than n (or zstd failed, e.g. out of
 * memory): the caller sends the data as it is. */
size_t zstd_deflate (struct zstd_deflater *z, const void *src, size_t n,
                     const uint8_t **frame);

/* Is src[0..n) worth a try?  Compresses its first ZSTD_PROBE_BYTES (all
 * of it when shorter) and says whether that shrank by at least a
 * sixteenth.  About 1/30 of the cost of compressing a MiB of random data. */
bool zstd_probe (struct zstd_deflater *z, const void *src, size_t n);

/* A decompressor.  NULL with errno set when out of memory. */
struct zstd_inflater *zstd_inflater_new (void);
void zstd_inflater_free (struct zstd_inflater *z);

/* Decompress frame[0..frame_len) into exactly length bytes (1 to
 * WIRE_MAX_DATA).  Returns the bytes (valid until the next call), or NULL
 * with *why a sentence saying what is wrong with the frame (valid until
 * the next call), or that memory ran out. */
const uint8_t *zstd_inflate (struct zstd_inflater *z, const uint8_t *frame,
                             size_t frame_len, size_t length, const char **why);

#endif /* STM_PROTO_ZSTD_FRAME_H */
