/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: a token bucket for --rate, as pure arithmetic.
 *
 * The caller passes the monotonic time in nanoseconds.  Taking more tokens
 * than are available is allowed and leaves the bucket in debt.  The
 * sender pays before it reads: it waits rate_limit_wait_for_ns with the
 * most the next read can send, then takes what the read did send.
 * Paying after (waiting only for the debt of the last read) lets each
 * pass send its last read unpaid, and together with a bucket saved up
 * between passes that put a 16 MiB pass at 3 MiB/s about 14% over the
 * cap.  A rate of 0 means unlimited.
 */
#ifndef STM_SENDER_RATE_LIMIT_H
#define STM_SENDER_RATE_LIMIT_H

#include <stdint.h>

struct rate_limit {
  uint64_t rate;        /* bytes per second, 0 = unlimited */
  uint64_t burst;       /* most tokens the bucket holds */
  int64_t tokens;       /* may be negative: debt */
  uint64_t last_ns;     /* time of the last refill */
};

void rate_limit_init (struct rate_limit *rl, uint64_t rate, uint64_t burst,
                      uint64_t now_ns);
/* Add the tokens earned since the last refill, up to the burst. */
void rate_limit_refill (struct rate_limit *rl, uint64_t now_ns);
/* Spend bytes tokens (refilling first). */
void rate_limit_take (struct rate_limit *rl, uint64_t bytes, uint64_t now_ns);
/* Nanoseconds to wait until the bucket is out of debt (0 = go now). */
uint64_t rate_limit_wait_ns (struct rate_limit *rl, uint64_t now_ns);
/* Nanoseconds to wait until the bucket holds bytes tokens, or as many as
 * it can hold (the burst) if bytes is more (0 = go now). */
uint64_t rate_limit_wait_for_ns (struct rate_limit *rl, uint64_t bytes,
                                 uint64_t now_ns);
/* A pass begins: tokens saved up while nothing was sent (between passes)
 * are dropped, so that the pass's own average keeps to the rate; a debt
 * is kept. */
void rate_limit_restart (struct rate_limit *rl, uint64_t now_ns);

#endif /* STM_SENDER_RATE_LIMIT_H */
