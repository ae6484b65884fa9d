/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: zstd frames of DATA_ZSTD, made (sender) and judged (receiver).
 * See zstd_frame.h.
 *
 * The receiver decompresses in one call into a flat buffer of exactly the
 * announced length, so zstd allocates no window whatever the frame says
 * (the window log is capped all the same, at what an 8 MiB payload
 * needs), and a frame that would produce more bytes fails with "the
 * destination buffer is too small" instead of writing past it.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "wire.h"
#include "zstd_frame.h"

/* log2 (WIRE_MAX_DATA): the largest window a frame of one payload needs. */
#define MAX_WINDOW_LOG 23

struct zstd_deflater {
  ZSTD_CCtx *cctx;
  uint8_t *buf;              /* the last frame; room for WIRE_MAX_DATA */
};

struct zstd_inflater {
  ZSTD_DCtx *dctx;
  uint8_t *buf;              /* the last decompressed payload */
  char why[160];
};

struct zstd_deflater *
zstd_deflater_new (int level)
{
  struct zstd_deflater *z = calloc (1, sizeof *z);

  assert (level >= ZSTD_FRAME_MIN_LEVEL && level <= ZSTD_FRAME_MAX_LEVEL);
  if (z == NULL)
    return NULL;
  z->cctx = ZSTD_createCCtx ();
  z->buf = malloc (WIRE_MAX_DATA);
  if (z->cctx == NULL || z->buf == NULL ||
      ZSTD_isError (ZSTD_CCtx_setParameter (z->cctx, ZSTD_c_compressionLevel,
                                            level))) {
    zstd_deflater_free (z);
    errno = ENOMEM;
    return NULL;
  }
  return z;
}

void
zstd_deflater_free (struct zstd_deflater *z)
{
  if (z == NULL)
    return;
  ZSTD_freeCCtx (z->cctx);
  free (z->buf);
  free (z);
}

size_t
zstd_deflate (struct zstd_deflater *z, const void *src, size_t n,
              const uint8_t **frame)
{
  size_t r;

  assert (n >= 1 && n <= WIRE_MAX_DATA);
  /* The frame must fit in n - n/8 bytes: zstd gives up with "destination
   * too small" as soon as it overflows, which is also what keeps a
   * DATA_ZSTD frame within WIRE_MAX_DATA. */
  r = ZSTD_compress2 (z->cctx, z->buf, n - n / 8, src, n);
  if (ZSTD_isError (r) || r == 0) {
    /* A failed call may leave the context mid-frame. */
    ZSTD_CCtx_reset (z->cctx, ZSTD_reset_session_only);
    return 0;
  }
  *frame = z->buf;
  return r;
}

bool
zstd_probe (struct zstd_deflater *z, const void *src, size_t n)
{
  size_t len = n < ZSTD_PROBE_BYTES ? n : ZSTD_PROBE_BYTES;
  size_t r;

  r = ZSTD_compress2 (z->cctx, z->buf, ZSTD_compressBound (len), src, len);
  if (ZSTD_isError (r)) {
    ZSTD_CCtx_reset (z->cctx, ZSTD_reset_session_only);
    return false;
  }
  return r <= len - len / 16;
}

struct zstd_inflater *
zstd_inflater_new (void)
{
  struct zstd_inflater *z = calloc (1, sizeof *z);

  if (z == NULL)
    return NULL;
  z->dctx = ZSTD_createDCtx ();
  if (z->dctx == NULL ||
      ZSTD_isError (ZSTD_DCtx_setParameter (z->dctx, ZSTD_d_windowLogMax,
                                            MAX_WINDOW_LOG))) {
    zstd_inflater_free (z);
    errno = ENOMEM;
    return NULL;
  }
  return z;
}

void
zstd_inflater_free (struct zstd_inflater *z)
{
  if (z == NULL)
    return;
  ZSTD_freeDCtx (z->dctx);
  free (z->buf);
  free (z);
}

/* Check what can be read from the frame's header: a single zstd frame
 * (not a skippable one) filling frame_len exactly, whose content size, if
 * it records one, is length.  NULL if it is fine, else why not. */
static const char *
frame_shape_why (struct zstd_inflater *z, const uint8_t *frame,
                 size_t frame_len, size_t length)
{
  unsigned long long content;
  uint32_t magic;
  size_t whole;

  if (frame_len < 4)
    return "the frame is too short to be a zstd frame";
  magic = (uint32_t) frame[0] | (uint32_t) frame[1] << 8 |
    (uint32_t) frame[2] << 16 | (uint32_t) frame[3] << 24;
  if (magic != ZSTD_MAGICNUMBER)
    return "the frame does not start with the zstd magic number";
  whole = ZSTD_findFrameCompressedSize (frame, frame_len);
  if (ZSTD_isError (whole))
    return "the zstd frame is truncated or corrupt";
  if (whole != frame_len)
    return "the payload holds bytes after its zstd frame";
  content = ZSTD_getFrameContentSize (frame, frame_len);
  if (content == ZSTD_CONTENTSIZE_ERROR)
    return "the zstd frame header is corrupt";
  if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != length) {
    snprintf (z->why, sizeof z->why,
              "the zstd frame header says it holds %llu bytes, not the "
              "%zu bytes DATA_ZSTD announces", content, length);
    return z->why;
  }
  return NULL;
}

const uint8_t *
zstd_inflate (struct zstd_inflater *z, const uint8_t *frame, size_t frame_len,
              size_t length, const char **why)
{
  size_t r;

  assert (length >= 1 && length <= WIRE_MAX_DATA);
  *why = frame_shape_why (z, frame, frame_len, length);
  if (*why != NULL)
    return NULL;
  if (z->buf == NULL) {
    /* Once, at the largest size, so that a session's first frame decides
     * its memory and later ones cost no allocation. */
    z->buf = malloc (WIRE_MAX_DATA);
    if (z->buf == NULL) {
      *why = "out of memory for the decompressed data";
      return NULL;
    }
  }
  r = ZSTD_decompressDCtx (z->dctx, z->buf, length, frame, frame_len);
  if (ZSTD_isError (r)) {
    ZSTD_DCtx_reset (z->dctx, ZSTD_reset_session_only);
    if (ZSTD_getErrorCode (r) == ZSTD_error_dstSize_tooSmall)
      *why = "the zstd frame decompresses to more bytes than DATA_ZSTD announces";
    else {
      snprintf (z->why, sizeof z->why, "the zstd frame does not decompress: %s",
                ZSTD_getErrorName (r));
      *why = z->why;
    }
    return NULL;
  }
  if (r != length) {
    snprintf (z->why, sizeof z->why, "the zstd frame decompresses to %zu bytes, "
              "not the %zu bytes DATA_ZSTD announces", r, length);
    *why = z->why;
    return NULL;
  }
  return z->buf;
}
