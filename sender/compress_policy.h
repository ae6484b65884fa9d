/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: whether to compress DATA (--compress), decided from
 * measurements.  Pure: no I/O, no clock; sender/compress.c measures and
 * calls in, cmocka tests call it with made-up measurements.
 *
 * --compress auto compresses when the link is the bottleneck and
 * compression makes the copy faster, not when the CPU is.  Each window of
 * the migration (a quarter of a second or so of data) is reported with
 * what it measured: its wall time, the event loop's CPU time, the time
 * the output queue sat at its high water mark (the link held the copy
 * back), the data bytes in and the payload bytes out, and what zstd did
 * with the bytes it was given (sampled chunks while off, every chunk while
 * on).  From these the policy keeps estimates: the link's rate when it was
 * saturated, the compression ratio, zstd's CPU cost per byte and the rest
 * of the loop's, and predicts the copy rate with and without compression:
 *
 *   off: min (1 / other, link)
 *   on:  min (1 / (other + zstd), link / ratio)
 *
 * or, where zstd runs on a thread of its own beside the loop (threaded),
 *
 *   on:  min (1 / other, 1 / zstd, link / ratio)
 *
 * It turns compression on when that predicts at least COMPRESS_GAIN more,
 * and off when the prediction falls below COMPRESS_STAY; while on, it checks the rate actually achieved against the rate last
 * achieved off, and turns it off again when the link's rate was only
 * apparent (e.g. the receiver's disk, which compression does not relieve,
 * was the bottleneck), holding off longer after every such try.
 */
#ifndef STM_SENDER_COMPRESS_POLICY_H
#define STM_SENDER_COMPRESS_POLICY_H

#include <stdbool.h>
#include <stdint.h>

enum compress_mode {
  COMPRESS_AUTO,             /* decided by compress_policy_update */
  COMPRESS_OFF,              /* never; the HELLO does not offer it */
  COMPRESS_ZSTD,             /* every chunk that pays */
};

/* A window needs this much data to be judged; a shorter one is merged into
 * the next. */
#define COMPRESS_WINDOW_MIN_BYTES (4u * 1024 * 1024)
/* Compression must promise this much more throughput to be turned on. */
#define COMPRESS_GAIN 1.2
/* And to be kept on: below this, compression costs CPU for nothing. */
#define COMPRESS_STAY 1.05
/* While on, the achieved rate may fall this far below the last rate
 * achieved off before compression is judged not to pay. */
#define COMPRESS_KEEP 0.9

/* What one window measured. */
struct compress_window {
  uint64_t wall_ns;          /* its length */
  uint64_t cpu_ns;           /* the event loop thread's CPU time in it */
  uint64_t full_ns;          /* time the output queue sat at its high mark */
  uint64_t in_bytes;         /* DATA payload bytes, before compression */
  uint64_t out_bytes;        /* payload bytes queued, after compression */
  uint64_t tried_in;         /* bytes given to zstd (probes included) */
  uint64_t tried_out;        /* what came out (in, where it did not pay) */
  uint64_t tried_ns;         /* CPU time of those calls */
  uint64_t worker_ns;        /* of tried_ns, that of the worker thread: not
                                in cpu_ns */
};

/* What the policy knows and has decided.  0 is "not measured yet". */
struct compress_policy {
  bool on;                   /* compressing now */
  bool threaded;             /* zstd runs on its own thread while on */
  double link_bps;           /* wire bytes/s when the link was saturated */
  double ratio;              /* zstd's output / input */
  double zstd_spb;           /* zstd's CPU seconds per input byte */
  double other_spb;          /* the rest of the loop's, per input byte */
  double rate_off, rate_on;  /* input bytes/s achieved off, and on */
  unsigned windows_on;       /* windows judged since turning on */
  unsigned hold;             /* windows to wait before trying again */
  unsigned backoff;          /* the hold after the next failed try */
};

/* Initially off, nothing known. */
void compress_policy_init (struct compress_policy *p);

/* Take one window's measurements.  Returns whether to compress from now
 * on (p->on); a window with less than COMPRESS_WINDOW_MIN_BYTES changes
 * nothing (the caller keeps adding to it). */
bool compress_policy_update (struct compress_policy *p, const struct compress_window *w);

/* The predicted copy rates (input bytes/s) off and on, from p's
 * estimates; 0 when too little is known. */
void compress_policy_predict (const struct compress_policy *p, double *off, double *on);

/* --compress auto|off|zstd[:LEVEL]: 0, or -1 if arg is none of those
 * (LEVEL from ZSTD_FRAME_MIN_LEVEL to ZSTD_FRAME_MAX_LEVEL; zstd alone
 * and auto use ZSTD_FRAME_DEFAULT_LEVEL). */
int compress_parse (const char *arg, enum compress_mode *mode, int *level);

#endif /* STM_SENDER_COMPRESS_POLICY_H */
