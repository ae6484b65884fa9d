/* stm-recv: the NEW / RESUME / MISMATCH / OTHER decision and the bookkeeping of
 * the one migration the receiver holds.  Pure logic; see
 * migration_record.h.
 */
#include <config.h>

#include <assert.h>
#include <string.h>

#include "migration_record.h"

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
  if (r->durable_seq == 0 && !r->committed)
    return MIGRATION_NEW;
  /* The same migration announcing another size cannot be resumed: the
   * durable data was laid out for the old size, and silently resizing
   * the output would corrupt it. */
  if (r->image_size != hello->image_size)
    return MIGRATION_MISMATCH;
  return MIGRATION_RESUME;
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
    r->committed = false;
  }
  /* The block size only matters to the sender and the filter (it is the
   * granularity of CONFIRM); a resumed sender may choose another. */
  r->block_size = hello->block_size;
}

void
migration_record_written (struct migration_record *r)
{
  r->committed = false;
}

void
migration_record_durable (struct migration_record *r, uint64_t seq)
{
  r->durable_seq = seq;
}

void
migration_record_committed (struct migration_record *r, uint64_t seq)
{
  r->durable_seq = seq;
  r->committed = true;
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
