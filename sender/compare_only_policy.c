/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: its decisions (see compare_only_policy.h). */
#include <config.h>

#include <string.h>

#include "compare_only_policy.h"
#include "source_reader.h"
#include "wire.h"

const char *
compare_phase_name (enum compare_phase p)
{
  switch (p) {
  case COMPARE_CONNECTING: return "connecting";
  case COMPARE_HELLO: return "hello";
  case COMPARE_READING: return "reading";
  case COMPARE_FINAL_SNAPSHOT: return "final-snapshot";
  case COMPARE_DONE: return "done";
  case COMPARE_FAILED: return "failed";
  }
  return "unknown";
}

bool
compare_phase_allowed (enum compare_phase from, enum compare_phase to)
{
  switch (to) {
  case COMPARE_CONNECTING:
    return false;                /* where every run starts, once */
  case COMPARE_HELLO:
    return from == COMPARE_CONNECTING;
  case COMPARE_READING:
    return from == COMPARE_HELLO;
  case COMPARE_FINAL_SNAPSHOT:
    return from == COMPARE_READING;
  case COMPARE_DONE:
    /* Without a filter there is no last SNAPSHOT to wait for. */
    return from == COMPARE_READING || from == COMPARE_FINAL_SNAPSHOT;
  case COMPARE_FAILED:
    return from != COMPARE_DONE && from != COMPARE_FAILED;
  }
  return false;
}

const char *
compare_source_refusal (const char *state, const char *owner)
{
  if (strcmp (state, "frozen") == 0)
    return "is frozen: a migration is cutting over (or a client froze it by "
      "hand), and its guest writes are held";
  if (strcmp (state, "fenced") == 0 || strcmp (state, "forwarding") == 0)
    return "has flipped: it no longer serves the guest, whose disk is the "
      "destination now";
  if (strcmp (state, "tracking") != 0)
    return "is in a state this stm-send does not know";
  if (strcmp (owner, "none") != 0)
    return "is owned by another control connection (a running stm-send, or "
      "a client by hand): its change tracking is that migration's";
  return NULL;
}

bool
compare_reply_agrees (uint32_t features)
{
  uint32_t both = WIRE_FEATURE_COMPARE_ONLY | WIRE_FEATURE_HASH;

  return (features & both) == both;
}

uint32_t
compare_read_length (uint64_t next, uint64_t size)
{
  uint64_t left = size - next;

  return left < SOURCE_READER_CHUNK ? (uint32_t) left : SOURCE_READER_CHUNK;
}

enum compare_result
compare_result_of (uint64_t bytes_differing, uint64_t bytes_changed_during,
                   bool written_inexact)
{
  /* A difference outside the written ranges is one whatever they hold:
   * bridged gaps only make those ranges larger. */
  if (bytes_differing > 0)
    return COMPARE_DIFFERENT;
  if (written_inexact && bytes_changed_during > 0)
    return COMPARE_INEXACT;
  return COMPARE_IDENTICAL;
}

const char *
compare_result_name (enum compare_result r)
{
  switch (r) {
  case COMPARE_IDENTICAL: return "identical";
  case COMPARE_DIFFERENT: return "different";
  case COMPARE_INEXACT: return "inexact";
  }
  return "unknown";
}

int
compare_result_exit_code (enum compare_result r)
{
  return r == COMPARE_IDENTICAL ? 0 : 1;
}
