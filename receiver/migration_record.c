/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the NEW / RESUME / MISMATCH / OTHER decision and the bookkeeping of
 * the one migration the receiver holds.  Pure logic; see
 * migration_record.h.
 */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration_record.h"
#include "bits.h"

void
migration_record_init (struct migration_record *r)
{
  memset (r, 0, sizeof *r);
}

int
migration_record_find (const struct migration_record *r, const char *name)
{
  uint32_t i;

  for (i = 0; i < r->ndisks; i++)
    if (strcmp (r->disks[i].name, name) == 0)
      return (int) i;
  return -1;
}

enum migration_decision
migration_record_decide (const struct migration_record *r,
                         const struct wire_hello *hello,
                         const struct outputs *o,
                         const unsigned map[WIRE_MAX_DISKS])
{
  uint32_t i;

  if (!r->known)
    return MIGRATION_NEW;
  if (memcmp (r->id, hello->migration_id, sizeof r->id) != 0)
    return MIGRATION_OTHER;
  if (r->durable_seq == 0 && r->state == WIRE_STATE_INCOMPLETE)
    return MIGRATION_NEW;
  /* The same migration announcing other disks or another size cannot be
   * resumed: the durable data was laid out for the old disks and sizes,
   * and silently resizing an output would corrupt it. */
  if (r->ndisks != hello->ndisks)
    return MIGRATION_MISMATCH;
  for (i = 0; i < hello->ndisks; i++) {
    int k = migration_record_find (r, o->spec[map[i]].name);

    if (k < 0 || r->disks[k].size != hello->disks[i].size)
      return MIGRATION_MISMATCH;
  }
  return MIGRATION_RESUME;
}

/* Does r record the same disks (names and sizes) as hello announces? */
static bool
same_disks (const struct migration_record *r, const struct wire_hello *hello,
            const struct outputs *o, const unsigned map[WIRE_MAX_DISKS])
{
  if (r->ndisks != hello->ndisks)
    return false;
  for (uint32_t i = 0; i < hello->ndisks; i++) {
    int k = migration_record_find (r, o->spec[map[i]].name);

    if (k < 0 || r->disks[k].size != hello->disks[i].size)
      return false;
  }
  return true;
}

/* Another migration may take over an incomplete or superseded one
 * without --force when its sender compares: such an output was never the
 * guest's disk (the source of that migration stayed authoritative, as it
 * does until it flips to a prepared copy, and a superseded copy is one
 * it thawed away from), so nothing is lost, and what it holds is
 * compared, not trusted.  This is the source whose nbdkit restarted: its
 * new instance makes a new migration id for the same disks.  Prepared
 * and final outputs, which may be the guest's disk, are never taken over
 * this way. */
static bool
may_take_over (const struct migration_record *r, const struct wire_hello *hello,
               const struct outputs *o, const unsigned map[WIRE_MAX_DISKS])
{
  return (r->state == WIRE_STATE_INCOMPLETE || r->state == WIRE_STATE_SUPERSEDED) &&
    (hello->features & WIRE_FEATURE_HASH) != 0 && same_disks (r, hello, o, map);
}

bool
migration_record_block_size_ok (uint32_t b)
{
  return b >= WIRE_MIN_BLOCK && b <= WIRE_MAX_BLOCK && is_power_of_two (b);
}

enum hello_verdict
migration_record_judge_hello (const struct migration_record *r,
                              const struct wire_hello *hello,
                              const struct outputs *o,
                              unsigned map[WIRE_MAX_DISKS],
                              char why[OUTPUTS_WHY_MAX], bool busy, bool force)
{
  uint32_t i;

  if (busy)
    return HELLO_REFUSE_BUSY;
  /* The decoder checks these too; checking again here keeps the output
   * safe whatever the transport lets through. */
  if ((hello->features & ~WIRE_FEATURES_KNOWN) != 0)
    return HELLO_REFUSE_FEATURES;
  if (hello->ndisks < 1 || hello->ndisks > WIRE_MAX_DISKS)
    return HELLO_REFUSE_GEOMETRY;
  for (i = 0; i < hello->ndisks; i++)
    if (!migration_record_block_size_ok (hello->disks[i].block_size) ||
        hello->disks[i].size == 0 || hello->disks[i].size > WIRE_MAX_IMAGE_SIZE)
      return HELLO_REFUSE_GEOMETRY;
  /* Even --force never writes a disk into an output of another name. */
  if (!outputs_match_hello (o, hello, map, why))
    return HELLO_REFUSE_DISKS;
  /* Comparing reads the outputs and changes nothing, so what they hold
   * (another migration, this one at another size) refuses nothing. */
  if ((hello->features & WIRE_FEATURE_COMPARE_ONLY) != 0)
    return HELLO_ACCEPT_COMPARE;
  switch (migration_record_decide (r, hello, o, map)) {
  case MIGRATION_NEW: return HELLO_ACCEPT_NEW;
  case MIGRATION_RESUME: return HELLO_ACCEPT_RESUME;
  case MIGRATION_MISMATCH: return force ? HELLO_ACCEPT_FORCED : HELLO_REFUSE_MISMATCH;
  case MIGRATION_OTHER:
    if (force)
      return HELLO_ACCEPT_FORCED;
    return may_take_over (r, hello, o, map) ? HELLO_ACCEPT_TAKEOVER : HELLO_REFUSE_OTHER;
  }
  assert (!"migration_record_judge_hello: unknown decision");
  return HELLO_REFUSE_OTHER;
}

uint32_t
migration_record_refusal (const struct migration_record *r,
                          enum hello_verdict verdict, const struct wire_hello *hello,
                          const char *outputs, const char *busy_peer,
                          const char *id, const char *disks_why,
                          char *buf, size_t len)
{
  char held[MIGRATION_ID_TEXT_LEN + 64];

  migration_record_describe (r, held, sizeof held);
  switch (verdict) {
  case HELLO_REFUSE_BUSY:
    snprintf (buf, len, "busy: %s is in a session with %s; refusing migration %s",
              outputs, busy_peer, id);
    return WIRE_ERR_BUSY;
  case HELLO_REFUSE_FEATURES:
    snprintf (buf, len, "HELLO asks for unknown features 0x%" PRIx32,
              hello->features);
    return WIRE_ERR_PROTOCOL;
  case HELLO_REFUSE_GEOMETRY:
    snprintf (buf, len, "HELLO has an invalid block size (%" PRIu32 ") or image "
              "size (%" PRIu64 ")", hello->block_size, hello->image_size);
    return WIRE_ERR_PROTOCOL;
  case HELLO_REFUSE_DISKS:
    snprintf (buf, len, "mismatch: %s (outputs: %s); refusing migration %s, "
              "nothing was changed", disks_why, outputs, id);
    return WIRE_ERR_MISMATCH;
  case HELLO_REFUSE_MISMATCH:
    if (r->ndisks > 1 || hello->ndisks > 1 || r->disks[0].name[0] != '\0')
      snprintf (buf, len, "mismatch: %s hold %s with %" PRIu32 " disks, and the "
                "sender announces %" PRIu32 " disks of which some differ in name "
                "or size; restart stm-recv with --force to overwrite them",
                outputs, held, r->ndisks, hello->ndisks);
    else
      snprintf (buf, len, "mismatch: %s holds %s with an image of %" PRIu64
                " bytes, but the sender announces %" PRIu64 " bytes; restart "
                "stm-recv with --force to overwrite it",
                outputs, held, r->image_size, hello->image_size);
    return WIRE_ERR_MISMATCH;
  case HELLO_REFUSE_OTHER:
    snprintf (buf, len, "mismatch: %s holds another migration (%s); refusing "
              "migration %s: restart stm-recv with --force to overwrite it, or "
              "give another --output", outputs, held, id);
    return WIRE_ERR_MISMATCH;
  default:
    assert (!"migration_record_refusal: not a refusal");
    snprintf (buf, len, "HELLO refused");
    return WIRE_ERR_INTERNAL;
  }
}

void
migration_record_begin (struct migration_record *r,
                        const struct wire_hello *hello,
                        const struct outputs *o,
                        const unsigned map[WIRE_MAX_DISKS],
                        enum migration_decision decision)
{
  uint32_t i;

  assert (decision == MIGRATION_NEW || decision == MIGRATION_RESUME);
  assert (hello->ndisks >= 1 && hello->ndisks <= WIRE_MAX_DISKS);

  if (decision == MIGRATION_NEW) {
    r->known = true;
    memcpy (r->id, hello->migration_id, sizeof r->id);
    r->durable_seq = 0;
    r->state = WIRE_STATE_INCOMPLETE;
    r->ndisks = hello->ndisks;
    for (i = 0; i < hello->ndisks; i++) {
      snprintf (r->disks[i].name, sizeof r->disks[i].name, "%s",
                o->spec[map[i]].name);
      r->disks[i].size = hello->disks[i].size;
    }
  }
  /* The block size only matters to the sender and the filter (it is the
   * granularity of CONFIRM); a resumed sender may choose another. */
  for (i = 0; i < hello->ndisks; i++) {
    int k = migration_record_find (r, o->spec[map[i]].name);

    assert (k >= 0);
    r->disks[k].block_size = hello->disks[i].block_size;
  }
  r->image_size = r->disks[0].size;
  r->block_size = r->disks[0].block_size;
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

const char *
migration_record_mode_name (enum wire_hello_mode mode)
{
  switch (mode) {
  case WIRE_MODE_NEW: return "new";
  case WIRE_MODE_RESUME: return "resume";
  case WIRE_MODE_PREPARED: return "prepared";
  case WIRE_MODE_FINAL: return "final";
  }
  return "unknown";
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

const char *
migration_record_state_meaning (enum wire_dest_state state)
{
  switch (state) {
  case WIRE_STATE_INCOMPLETE:
    return "the source is authoritative; a sender of this migration resumes it";
  case WIRE_STATE_PREPARED:
    return "complete and durable, but whether the source flipped to it is not "
      "recorded: the source's STATUS says which copy is authoritative (run "
      "stm-send again with the same arguments to record it)";
  case WIRE_STATE_FINAL:
    return "the source has flipped to it: this copy is authoritative";
  case WIRE_STATE_SUPERSEDED:
    return "the source thawed after the commit and is authoritative; this copy "
      "is stale, and a sender of this migration resumes it";
  }
  return "unknown state";
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

void
migration_record_describe (const struct migration_record *r, char *buf,
                           size_t len)
{
  char id[MIGRATION_ID_TEXT_LEN];

  migration_id_format (r->id, id);
  snprintf (buf, len, "migration %s, %s, durable up to sync %" PRIu64,
            id, wire_dest_state_name (r->state), r->durable_seq);
}

