/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the token bucket behind --rate (see rate_limit.h).
 *
 * Token counts are kept well inside int64_t: the burst is clamped to 2^62
 * and the debt to one burst plus the largest single take, so additions
 * never overflow.
 */
#include <config.h>

#include "rate_limit.h"
#include "time_units.h"

#define TOKENS_MAX ((int64_t) 1 << 62)

void
rate_limit_init (struct rate_limit *rl, uint64_t rate, uint64_t burst,
                 uint64_t now_ns)
{
  rl->rate = rate;
  if (burst == 0)
    burst = 1;
  rl->burst = burst > (uint64_t) TOKENS_MAX ? (uint64_t) TOKENS_MAX : burst;
  rl->tokens = (int64_t) rl->burst;
  rl->last_ns = now_ns;
}

void
rate_limit_refill (struct rate_limit *rl, uint64_t now_ns)
{
  if (rl->rate == 0 || now_ns <= rl->last_ns)
    return;
  uint64_t elapsed = now_ns - rl->last_ns;
  unsigned __int128 earned = (unsigned __int128) elapsed * rl->rate / NS_PER_S;
  if (earned == 0)
    return;             /* keep last_ns so fractions accumulate */
  rl->last_ns = now_ns;
  if (earned > (unsigned __int128) TOKENS_MAX)
    earned = TOKENS_MAX;
  int64_t t = rl->tokens + (int64_t) earned;
  if (t > (int64_t) rl->burst)
    t = (int64_t) rl->burst;
  rl->tokens = t;
}

void
rate_limit_take (struct rate_limit *rl, uint64_t bytes, uint64_t now_ns)
{
  if (rl->rate == 0)
    return;
  rate_limit_refill (rl, now_ns);
  if (bytes > (uint64_t) TOKENS_MAX)
    bytes = TOKENS_MAX;
  rl->tokens -= (int64_t) bytes;
  if (rl->tokens < -TOKENS_MAX)
    rl->tokens = -TOKENS_MAX;
}

uint64_t
rate_limit_wait_ns (struct rate_limit *rl, uint64_t now_ns)
{
  if (rl->rate == 0)
    return 0;
  rate_limit_refill (rl, now_ns);
  if (rl->tokens >= 0)
    return 0;
  unsigned __int128 debt = (unsigned __int128) (-rl->tokens);
  unsigned __int128 ns = (debt * NS_PER_S + rl->rate - 1) / rl->rate;
  return ns > UINT64_MAX ? UINT64_MAX : (uint64_t) ns;
}

uint64_t
rate_limit_wait_for_ns (struct rate_limit *rl, uint64_t bytes, uint64_t now_ns)
{
  if (rl->rate == 0)
    return 0;
  rate_limit_refill (rl, now_ns);
  int64_t need = bytes > rl->burst ? (int64_t) rl->burst : (int64_t) bytes;
  if (rl->tokens >= need)
    return 0;
  unsigned __int128 missing = (unsigned __int128) (need - rl->tokens);
  unsigned __int128 ns = (missing * NS_PER_S + rl->rate - 1) / rl->rate;
  return ns > UINT64_MAX ? UINT64_MAX : (uint64_t) ns;
}

void
rate_limit_restart (struct rate_limit *rl, uint64_t now_ns)
{
  if (rl->rate == 0)
    return;
  rate_limit_refill (rl, now_ns);
  if (rl->tokens > 0)
    rl->tokens = 0;
  rl->last_ns = now_ns;
}
