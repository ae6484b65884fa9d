/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the NEW / RESUME / MISMATCH / OTHER decision and the bookkeeping of
 * the one migration the receiver holds.  Pure logic; see
 * migration_record.h.
 */
#include <config.h>

#include <assert.h>
#include <string.h>

#include "migration_record.h"
#include "bits.h"

void
migration_record_init (struct migration_record *r)
{
  memset (r, 0, sizeof *r);
}

enum migration_decision
migration_record_decide (const struct migration_record *r,
                         const struct wire_hello *hello)
{
  if (!r->known)
    return MIGRATION_NEW;
  if (memcmp (r->id, hello->migration_id, sizeof r->id) != 0)
    return MIGRATION_OTHER;
  if (r->durable_seq == 0 && r->state == WIRE_STATE_INCOMPLETE)
    return MIGRATION_NEW;
  /* The same migration announcing another size cannot be resumed: the
   * durable data was laid out for the old size, and silently resizing
   * the output would corrupt it. */
  if (r->image_size != hello->image_size)
    return MIGRATION_MISMATCH;
  return MIGRATION_RESUME;
}

bool
migration_record_block_size_ok (uint32_t b)
{
  return b >= WIRE_MIN_BLOCK && b <= WIRE_MAX_BLOCK && is_power_of_two (b);
}

enum hello_verdict
migration_record_judge_hello (const struct migration_record *r,
                              const struct wire_hello *hello, bool busy, bool force)
{
  if (busy)
    return HELLO_REFUSE_BUSY;
  /* The decoder checks these too; checking again here keeps the output
   * safe whatever the transport lets through. */
  if ((hello->features & ~WIRE_FEATURES_KNOWN) != 0)
    return HELLO_REFUSE_FEATURES;
  if (!migration_record_block_size_ok (hello->block_size) || hello->image_size > WIRE_MAX_IMAGE_SIZE)
    return HELLO_REFUSE_GEOMETRY;
  switch (migration_record_decide (r, hello)) {
  case MIGRATION_NEW: return HELLO_ACCEPT_NEW;
  case MIGRATION_RESUME: return HELLO_ACCEPT_RESUME;
  case MIGRATION_MISMATCH: return force ? HELLO_ACCEPT_FORCED : HELLO_REFUSE_MISMATCH;
  case MIGRATION_OTHER: return force ? HELLO_ACCEPT_FORCED : HELLO_REFUSE_OTHER;
  }
  assert (!"migration_record_judge_hello: unknown decision");
  return HELLO_REFUSE_OTHER;
}

void
migration_record_begin (struct migration_record *r,
                        const struct wire_hello *hello,
                        enum migration_decision decision)
{
  assert (decision == MIGRATION_NEW || decision == MIGRATION_RESUME);

  if (decision == MIGRATION_NEW) {
    r->known = true;
    memcpy (r->id, hello->migration_id, sizeof r->id);
    r->image_size = hello->image_size;
    r->durable_seq = 0;
    r->state = WIRE_STATE_INCOMPLETE;
  }
  /* The block size only matters to the sender and the filter (it is the
   * granularity of CONFIRM); a resumed sender may choose another. */
  r->block_size = hello->block_size;
}

enum wire_hello_mode
migration_record_hello_mode (const struct migration_record *r)
{
  switch (r->state) {
  case WIRE_STATE_PREPARED: return WIRE_MODE_PREPARED;
  case WIRE_STATE_FINAL: return WIRE_MODE_FINAL;
  case WIRE_STATE_INCOMPLETE:
  case WIRE_STATE_SUPERSEDED: return WIRE_MODE_RESUME;
  }
  assert (!"migration_record_hello_mode: unknown state");
  return WIRE_MODE_RESUME;
}

void
migration_record_written (struct migration_record *r)
{
  r->state = WIRE_STATE_INCOMPLETE;
}

void
migration_record_durable (struct migration_record *r, uint64_t seq)
{
  r->durable_seq = seq;
}

int
migration_record_committed (struct migration_record *r, uint64_t seq,
                            const char **why)
{
  if (r->state == WIRE_STATE_FINAL) {
    *why = "COMMIT for a migration already final (the source has flipped to "
      "this destination)";
    return -1;
  }
  r->durable_seq = seq;
  r->state = WIRE_STATE_PREPARED;
  return 0;
}

int
migration_record_outcome (struct migration_record *r, uint64_t seq,
                          enum wire_outcome outcome, const char **why)
{
  if (outcome == WIRE_OUTCOME_THAWED && r->state == WIRE_STATE_INCOMPLETE)
    return 0;
  if (seq != r->durable_seq) {
    *why = "OUTCOME names another commit than the one recorded";
    return -1;
  }
  switch (outcome) {
  case WIRE_OUTCOME_FLIPPED:
    if (r->state != WIRE_STATE_PREPARED && r->state != WIRE_STATE_FINAL) {
      *why = "OUTCOME flipped for a destination that is not prepared (no "
        "commit is recorded, or the source was reported thawed)";
      return -1;
    }
    r->state = WIRE_STATE_FINAL;
    return 0;
  case WIRE_OUTCOME_THAWED:
    if (r->state == WIRE_STATE_FINAL) {
      *why = "OUTCOME thawed for a destination already final (the source "
        "was reported flipped)";
      return -1;
    }
    r->state = WIRE_STATE_SUPERSEDED;
    return 0;
  }
  *why = "OUTCOME is neither flipped nor thawed";
  return -1;
}

void
migration_id_format (const uint8_t id[WIRE_MIGRATION_ID_LEN],
                     char out[MIGRATION_ID_TEXT_LEN])
{
  static const char hex[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < WIRE_MIGRATION_ID_LEN; i++) {
    out[2 * i] = hex[id[i] >> 4];
    out[2 * i + 1] = hex[id[i] & 0xf];
  }
  out[2 * WIRE_MIGRATION_ID_LEN] = '\0';
}
