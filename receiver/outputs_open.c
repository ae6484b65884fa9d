/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: opening the outputs at startup and adopting what their state
 * file records.  See outputs_open.h.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "image_writer.h"
#include "log.h"
#include "outputs_open.h"
#include "receiver.h"
#include "state_file.h"

/* The outputs in words: the path of the one unnamed output (as before
 * there were groups, so its messages and events are unchanged); for named
 * ones the subject of a sentence: "the disk NAME (PATH)" for one, "the
 * group of disks NAME (PATH), NAME (PATH)" for several. */
static void
format_outputs_text (const struct outputs *o, char *buf, size_t len)
{
  size_t used;
  unsigned i;

  if (!outputs_named (o)) {
    snprintf (buf, len, "%s", o->spec[0].path);
    return;
  }
  snprintf (buf, len, "%s", o->count == 1 ? "the disk " : "the group of disks ");
  for (i = 0; i < o->count; i++) {
    used = strlen (buf);
    snprintf (buf + used, len - used, "%s%s (%s)", i ? ", " : "",
              o->spec[i].name, o->spec[i].path);
  }
}

/* Do the record's disk names equal the outputs' names (as sets)? */
static bool
record_names_match (const struct migration_record *r, const struct outputs *o,
                    const char *state, char *words, size_t len)
{
  size_t used;
  uint32_t i;
  bool ok = r->ndisks == o->count;

  for (i = 0; ok && i < r->ndisks; i++)
    ok = outputs_find (o, r->disks[i].name, strlen (r->disks[i].name)) >= 0;
  if (ok)
    return true;
  snprintf (words, len, "the state file %s records the disks [", state);
  for (i = 0; i < r->ndisks; i++) {
    used = strlen (words);
    snprintf (words + used, len - used, "%s%s", i ? " " : "",
              r->disks[i].name[0] ? r->disks[i].name : "(unnamed)");
  }
  used = strlen (words);
  snprintf (words + used, len - used, "], not the --output names");
  return false;
}

/* A refusal: fatal, or with --force a warning (the receiver then starts
 * holding nothing). */
static int
refuse (struct receiver *rx, const char *reason)
{
  if (!rx->opts->force) {
    events_error (&rx->events, NULL, WIRE_ERR_MISMATCH,
                  "refusing to start: %s.  Use --force to let the first "
                  "migration to connect overwrite %s, or give another --output",
                  reason, rx->outputs_text);
    return -1;
  }
  log_warning ("--force: %s; the first migration to connect overwrites it",
               reason);
  migration_record_init (&rx->record);
  return 0;
}

/* Why output i is refused, in words. */
static void
describe_refusal (struct receiver *rx, unsigned i, enum state_verdict verdict,
                  const struct migration_record *found, uint32_t k,
                  const char *why, char *buf, size_t len)
{
  const char *output = image_writer_path (rx->images[i]);
  const char *state = state_file_path (rx->state);
  char id[MIGRATION_ID_TEXT_LEN];

  switch (verdict) {
  case VERDICT_REFUSE_FOREIGN:
    snprintf (buf, len, "the output %s already holds %" PRIu64 " bytes and has "
              "no state file %s, so it is not an stm-recv output (or its state "
              "file was removed)", output, image_writer_size (rx->images[i]), state);
    return;
  case VERDICT_REFUSE_INVALID:
    snprintf (buf, len, "the state file %s of the output %s is not valid (%s), "
              "so which migration %s holds is unknown", state, output, why, output);
    return;
  case VERDICT_REFUSE_SIZE:
    migration_id_format (found->id, id);
    snprintf (buf, len, "the output %s holds %" PRIu64 " bytes but its state file "
              "%s records migration %s with an image of %" PRIu64 " bytes: the "
              "output was changed outside stm-recv", output,
              image_writer_size (rx->images[i]), state, id, found->disks[k].size);
    return;
  default:
    assert (!"describe_refusal: not a refusal");
  }
}

/* A state file beside an output of a group other than the primary is not
 * the group's: refused, or with --force removed. */
static int
check_secondary_state (struct receiver *rx, unsigned i)
{
  const char *output = rx->opts->outputs.spec[i].path;
  struct state_file *sf = state_file_open (output);
  struct migration_record other;
  enum state_found what;
  char why[STATE_WHY_MAX], reason[1024];
  int r = 0;

  if (sf == NULL)
    return -1;
  if (state_file_load (sf, &what, &other, why) == -1) {
    events_error (&rx->events, NULL, 0, "cannot read the state file %s of the "
                  "output %s: %s", state_file_path (sf), output, strerror (errno));
    r = -1;
  }
  else if (what != STATE_ABSENT) {
    snprintf (reason, sizeof reason, "the output %s has a state file of its own, "
              "%s, but the group's is %s beside the output of the disk that "
              "sorts first: %s belongs to another migration", output,
              state_file_path (sf), state_file_path (rx->state), output);
    if (!rx->opts->force) {
      events_error (&rx->events, NULL, WIRE_ERR_MISMATCH,
                    "refusing to start: %s.  Use --force to remove that state "
                    "file and let the first migration to connect overwrite %s",
                    reason, output);
      r = -1;
    }
    else if (state_file_remove (sf) == -1) {
      events_error (&rx->events, NULL, 0, "--force: cannot remove %s: %s; the "
                    "output %s is unchanged", state_file_path (sf), strerror (errno),
                    output);
      r = -1;
    }
    else
      log_warning ("--force: %s; removed it", reason);
  }
  state_file_close (sf);
  return r;
}

/* Judge every output against the record found and adopt it, or refuse. */
static int
adopt (struct receiver *rx, enum state_found what,
       const struct migration_record *found, const char *why)
{
  const struct outputs *o = &rx->opts->outputs;
  enum state_verdict verdicts[WIRE_MAX_DISKS], verdict;
  char reason[1024], id[MIGRATION_ID_TEXT_LEN];
  unsigned i;

  if (what == STATE_VALID && !record_names_match (found, o, state_file_path (rx->state),
                                                reason, sizeof reason))
    return refuse (rx, reason);
  for (i = 0; i < o->count; i++) {
    int k = what == STATE_VALID ? migration_record_find (found, o->spec[i].name) : 0;

    assert (k >= 0);
    verdicts[i] = state_judge_disk (what, found, (uint32_t) k,
                                    image_writer_is_block_device (rx->images[i]),
                                    image_writer_size (rx->images[i]));
    if (state_verdict_refuses (verdicts[i])) {
      describe_refusal (rx, i, verdicts[i], found, (uint32_t) k, why, reason,
                        sizeof reason);
      return refuse (rx, reason);
    }
  }
  verdict = state_judge_group (verdicts, o->count);
  migration_id_format (found->id, id);
  switch (verdict) {
  case VERDICT_RESUMABLE:
    rx->record = *found;
    log_info ("%s%s holds migration %s, %s (durable up to sync %" PRIu64 "): %s",
              outputs_named (o) ? "" : "the output ", rx->outputs_text,
              id, wire_dest_state_name (found->state), found->durable_seq,
              migration_record_state_meaning (found->state));
    return 0;
  case VERDICT_STALE:
    log_warning ("the state file %s records migration %s, but %s%s is "
                 "empty: the data it recorded is gone, so that migration will "
                 "start again from nothing", state_file_path (rx->state), id,
                 o->count > 1 ? "an output of "
                 : outputs_named (o) ? "" : "the output ", rx->outputs_text);
    return 0;
  case VERDICT_EMPTY:
    for (i = 0; i < o->count; i++)
      if (image_writer_is_block_device (rx->images[i]))
        log_info ("the block device %s has no record in %s: the first "
                  "migration to connect overwrites it",
                  image_writer_path (rx->images[i]), state_file_path (rx->state));
    return 0;
  default:
    assert (!"adopt: unexpected verdict");
    return -1;
  }
}

int
outputs_open (struct receiver *rx)
{
  const struct outputs *o = &rx->opts->outputs;
  struct migration_record found;
  enum state_found what;
  char why[STATE_WHY_MAX];
  unsigned i, primary = outputs_primary (o);

  format_outputs_text (o, rx->outputs_text, sizeof rx->outputs_text);
  for (i = 0; i < o->count; i++) {
    rx->images[i] = image_writer_open (o->spec[i].path);
    if (rx->images[i] == NULL)
      goto fail;
    rx->nimages = i + 1;
  }
  /* After the outputs are locked, so no other stm-recv changes a state
   * file while it is judged. */
  rx->state = state_file_open (o->spec[primary].path);
  if (rx->state == NULL)
    goto fail;
  for (i = 0; i < o->count; i++)
    if (i != primary && check_secondary_state (rx, i) == -1)
      goto fail;

  migration_record_init (&found);
  if (state_file_load (rx->state, &what, &found, why) == -1) {
    events_error (&rx->events, NULL, 0, "cannot read the state file %s of %s: %s",
                  state_file_path (rx->state), rx->outputs_text, strerror (errno));
    goto fail;
  }
  if (adopt (rx, what, &found, why) == -1)
    goto fail;
  return 0;

 fail:
  /* A failed start leaves no new file behind. */
  outputs_close (rx, true);
  return -1;
}

void
outputs_close (struct receiver *rx, bool discard)
{
  unsigned i;

  for (i = 0; i < rx->nimages; i++) {
    if (discard)
      image_writer_discard (rx->images[i]);
    else
      image_writer_close (rx->images[i]);
    rx->images[i] = NULL;
  }
  rx->nimages = 0;
  state_file_close (rx->state);
  rx->state = NULL;
}
