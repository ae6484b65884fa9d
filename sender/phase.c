/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the table of legal phase transitions (see phase.h). */
#include <config.h>

#include <stdint.h>

#include "phase.h"

#define TO(p) (1u << (p))
/* Every live phase may lose the receiver or fail (at once, or after the
 * replies to THAW and THROTTLE 0). */
#define LIVE_EXITS (TO (PHASE_RECONNECTING) | TO (PHASE_FAILING) | TO (PHASE_FAILED))

static const uint32_t legal[PHASE_COUNT] = {
  /* After a flip the receiver may stay out of reach: the migration is
   * done all the same (the record is what is missing). */
  [PHASE_RECONNECTING] = TO (PHASE_CONNECTING) | TO (PHASE_FAILING) |
                         TO (PHASE_FAILED) | TO (PHASE_DONE),
  [PHASE_CONNECTING] = TO (PHASE_HELLO) | LIVE_EXITS | TO (PHASE_DONE),
  [PHASE_HELLO] = TO (PHASE_PREPARING) | TO (PHASE_RECORDING) | TO (PHASE_DONE) |
                  LIVE_EXITS,
  [PHASE_PREPARING] = TO (PHASE_PASS) | LIVE_EXITS,
  [PHASE_PASS] = TO (PHASE_PASS_SYNC) | LIVE_EXITS,
  [PHASE_PASS_SYNC] = TO (PHASE_DECIDING) | TO (PHASE_CHECKING) | TO (PHASE_VERIFYING) |
                      LIVE_EXITS,
  [PHASE_VERIFYING] = TO (PHASE_CHECKING) | LIVE_EXITS,
  [PHASE_DECIDING] = TO (PHASE_PREPARING) | TO (PHASE_FREEZING) | TO (PHASE_READY) |
                     LIVE_EXITS,
  /* --cutover manual, held ready with nothing pressing to copy: the next
   * pass starts after a short wait, or at once on CUTOVER (ready.c). */
  [PHASE_READY] = TO (PHASE_PREPARING) | LIVE_EXITS,
  [PHASE_FREEZING] = TO (PHASE_PASS) | LIVE_EXITS,
  [PHASE_CHECKING] = TO (PHASE_COMMITTING) | LIVE_EXITS,
  [PHASE_COMMITTING] = TO (PHASE_FLIPPING) | LIVE_EXITS,
  /* From FLIPPING on, a failure after the flip ends DONE (the record is
   * what is missing); the receiver lost meanwhile is taken up after it. */
  [PHASE_FLIPPING] = TO (PHASE_RECORDING) | TO (PHASE_DONE) | LIVE_EXITS,
  [PHASE_RECORDING] = TO (PHASE_DONE) | TO (PHASE_RECONNECTING),
  [PHASE_DONE] = 0,
  [PHASE_FAILING] = TO (PHASE_FAILED),
  [PHASE_FAILED] = 0,
};

bool
phase_transition_ok (enum migration_phase from, enum migration_phase to)
{
  if ((unsigned) from >= PHASE_COUNT || (unsigned) to >= PHASE_COUNT)
    return false;
  return (legal[from] & TO (to)) != 0;
}

bool
phase_is_final (enum migration_phase p)
{
  return p == PHASE_DONE || p == PHASE_FAILED;
}

bool
phase_is_over (enum migration_phase p)
{
  return p == PHASE_DONE || p == PHASE_FAILING || p == PHASE_FAILED;
}

const char *
phase_name (enum migration_phase p)
{
  static const char *const names[PHASE_COUNT] = {
    [PHASE_RECONNECTING] = "RECONNECTING", [PHASE_CONNECTING] = "CONNECTING",
    [PHASE_HELLO] = "HELLO", [PHASE_PREPARING] = "PREPARING", [PHASE_PASS] = "PASS",
    [PHASE_PASS_SYNC] = "PASS_SYNC", [PHASE_DECIDING] = "DECIDING",
    [PHASE_FREEZING] = "FREEZING", [PHASE_CHECKING] = "CHECKING",
    [PHASE_VERIFYING] = "VERIFYING",
    [PHASE_COMMITTING] = "COMMITTING", [PHASE_FLIPPING] = "FLIPPING",
    [PHASE_RECORDING] = "RECORDING", [PHASE_DONE] = "DONE",
    [PHASE_FAILING] = "FAILING", [PHASE_FAILED] = "FAILED",
    [PHASE_READY] = "READY",
  };
  return (unsigned) p < PHASE_COUNT ? names[p] : "unknown";
}
