/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: formatting and parsing the state file's text, and judging an
 * output against it.  Pure logic; see state_format.h.
 */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "state_format.h"
#include "wire.h"
#include "human_units.h"

/* The keys after the first line, in the order they are written and must
 * be read. */
enum state_key {
  KEY_MIGRATION_ID,
  KEY_IMAGE_SIZE,
  KEY_BLOCK_SIZE,
  KEY_DURABLE_SEQ,
  KEY_STATE,
  N_KEYS,
};

static const char *const key_names[N_KEYS] = {
  [KEY_MIGRATION_ID] = "migration_id",
  [KEY_IMAGE_SIZE] = "image_size",
  [KEY_BLOCK_SIZE] = "block_size",
  [KEY_DURABLE_SEQ] = "durable_seq",
  [KEY_STATE] = "state",
};

size_t
state_format (const struct migration_record *r, char buf[STATE_TEXT_MAX])
{
  char id[MIGRATION_ID_TEXT_LEN];
  int n;

  assert (r->known);
  migration_id_format (r->id, id);
  n = snprintf (buf, STATE_TEXT_MAX,
                "%s %d\n"
                "%s %s\n"
                "%s %" PRIu64 "\n"
                "%s %" PRIu32 "\n"
                "%s %" PRIu64 "\n"
                "%s %s\n",
                STATE_FORMAT_NAME, STATE_FORMAT_VERSION,
                key_names[KEY_MIGRATION_ID], id,
                key_names[KEY_IMAGE_SIZE], r->image_size,
                key_names[KEY_BLOCK_SIZE], r->block_size,
                key_names[KEY_DURABLE_SEQ], r->durable_seq,
                key_names[KEY_STATE], wire_dest_state_name (r->state));
  /* Every field has a bounded width, so the text always fits. */
  assert (n > 0 && n < STATE_TEXT_MAX);
  return (size_t) n;
}

/* Lowercase only: the text must be what state_format writes. */
static int
hex_digit (char c)
{
  return c >= 'A' && c <= 'F' ? -1 : hex_digit_value (c);
}

/* 32 lowercase hex digits, as migration_id_format writes them. */
static bool
parse_id (const char *text, uint8_t id[WIRE_MIGRATION_ID_LEN])
{
  size_t i;

  if (strlen (text) != 2 * WIRE_MIGRATION_ID_LEN)
    return false;
  for (i = 0; i < WIRE_MIGRATION_ID_LEN; i++) {
    int hi = hex_digit (text[2 * i]), lo = hex_digit (text[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    id[i] = (uint8_t) (hi << 4 | lo);
  }
  return true;
}

static bool
block_size_ok (uint64_t b)
{
  return b <= UINT32_MAX && migration_record_block_size_ok ((uint32_t) b);
}

/* Judge one "key value" line (without its newline) into r.  Returns false
 * with why set. */
static bool
parse_line (enum state_key key, const char *line, struct migration_record *r,
            char why[STATE_WHY_MAX], unsigned lineno)
{
  const char *name = key_names[key];
  size_t name_len = strlen (name);
  const char *value;
  uint64_t v = 0;

  if (strncmp (line, name, name_len) != 0 || line[name_len] != ' ') {
    snprintf (why, STATE_WHY_MAX, "line %u: expected the key %s", lineno, name);
    return false;
  }
  value = line + name_len + 1;

  switch (key) {
  case KEY_MIGRATION_ID:
    if (!parse_id (value, r->id)) {
      snprintf (why, STATE_WHY_MAX,
                "line %u: %s is not %d lowercase hex digits", lineno, name,
                2 * WIRE_MIGRATION_ID_LEN);
      return false;
    }
    return true;
  case KEY_STATE:
    for (uint32_t st = WIRE_STATE_INCOMPLETE; st <= WIRE_STATE_SUPERSEDED; st++)
      if (strcmp (value, wire_dest_state_name (st)) == 0) {
        r->state = st;
        return true;
      }
    snprintf (why, STATE_WHY_MAX, "line %u: %s is none of incomplete, "
              "prepared, final and superseded", lineno, name);
    return false;
  case KEY_IMAGE_SIZE:
  case KEY_BLOCK_SIZE:
  case KEY_DURABLE_SEQ:
    /* No leading zeros either: the text must be what state_format
     * writes, digit for digit. */
    if ((value[0] == '0' && value[1] != '\0') || parse_u64 (value, &v) == -1) {
      snprintf (why, STATE_WHY_MAX, "line %u: %s is not a decimal number",
                lineno, name);
      return false;
    }
    break;
  case N_KEYS:
    assert (!"parse_line: no such key");
  }

  if (key == KEY_IMAGE_SIZE) {
    if (v > WIRE_MAX_IMAGE_SIZE) {
      snprintf (why, STATE_WHY_MAX, "line %u: %s %" PRIu64 " is too large",
                lineno, name, v);
      return false;
    }
    r->image_size = v;
  }
  else if (key == KEY_BLOCK_SIZE) {
    if (!block_size_ok (v)) {
      snprintf (why, STATE_WHY_MAX,
                "line %u: %s %" PRIu64 " is not a power of two from %u to %u",
                lineno, name, v, WIRE_MIN_BLOCK, WIRE_MAX_BLOCK);
      return false;
    }
    r->block_size = (uint32_t) v;
  }
  else
    r->durable_seq = v;
  return true;
}

/* The first line: the format's name and version. */
static bool
parse_header (const char *line, char why[STATE_WHY_MAX])
{
  size_t name_len = strlen (STATE_FORMAT_NAME);
  uint64_t version;

  if (strncmp (line, STATE_FORMAT_NAME, name_len) != 0 || line[name_len] != ' ' ||
      parse_u64 (line + name_len + 1, &version) == -1) {
    snprintf (why, STATE_WHY_MAX,
              "line 1: not an stm-recv state file (expected \"%s %d\")",
              STATE_FORMAT_NAME, STATE_FORMAT_VERSION);
    return false;
  }
  if (version != STATE_FORMAT_VERSION) {
    snprintf (why, STATE_WHY_MAX,
              "line 1: format version %" PRIu64 " is not the version %d "
              "this stm-recv reads%s", version, STATE_FORMAT_VERSION,
              version > STATE_FORMAT_VERSION ? " (written by a newer stm-recv?)" : "");
    return false;
  }
  return true;
}

int
state_parse (const char *text, size_t len, struct migration_record *r,
             char why[STATE_WHY_MAX])
{
  struct migration_record parsed;
  char line[STATE_TEXT_MAX];
  size_t pos = 0;
  unsigned lineno;

  if (len >= STATE_TEXT_MAX) {
    snprintf (why, STATE_WHY_MAX, "the file is longer than %d bytes",
              STATE_TEXT_MAX - 1);
    return -1;
  }
  if (memchr (text, '\0', len) != NULL) {
    snprintf (why, STATE_WHY_MAX, "the file contains a NUL byte");
    return -1;
  }

  migration_record_init (&parsed);
  /* Line 1 is the header, lines 2.. are the keys in order. */
  for (lineno = 1; lineno <= 1 + N_KEYS; lineno++) {
    const char *nl;
    size_t line_len;

    if (pos == len) {
      snprintf (why, STATE_WHY_MAX, "line %u: the file ends early", lineno);
      return -1;
    }
    nl = memchr (text + pos, '\n', len - pos);
    if (nl == NULL) {
      snprintf (why, STATE_WHY_MAX, "line %u: no newline at the end", lineno);
      return -1;
    }
    /* Shorter than STATE_TEXT_MAX since the whole text is. */
    line_len = (size_t) (nl - (text + pos));
    memcpy (line, text + pos, line_len);
    line[line_len] = '\0';
    pos += line_len + 1;

    if (lineno == 1) {
      if (!parse_header (line, why))
        return -1;
    }
    else if (!parse_line ((enum state_key) (lineno - 2), line, &parsed, why, lineno))
      return -1;
  }
  if (pos != len) {
    snprintf (why, STATE_WHY_MAX, "line %u: unexpected text after the last key",
              lineno);
    return -1;
  }

  parsed.known = true;
  *r = parsed;
  return 0;
}

enum state_verdict
state_judge (enum state_found found, const struct migration_record *r,
             bool is_block_device, uint64_t output_size)
{
  switch (found) {
  case STATE_INVALID:
    return VERDICT_REFUSE_INVALID;

  case STATE_ABSENT:
    /* A block device is always "non-empty"; the operator dedicated it to
     * stm by naming it.  A regular file that holds bytes but no record of
     * a migration is somebody's data. */
    if (is_block_device || output_size == 0)
      return VERDICT_EMPTY;
    return VERDICT_REFUSE_FOREIGN;

  case STATE_VALID:
    assert (r != NULL && r->known);
    /* Nothing was ever acknowledged: no sender relies on what the output
     * holds, whatever its size (a receiver that stopped between writing
     * the record of a new migration and sizing the output leaves the old
     * size). */
    if (r->durable_seq == 0 && r->state == WIRE_STATE_INCOMPLETE)
      return VERDICT_RESUMABLE;
    if (is_block_device)
      return output_size >= r->image_size ? VERDICT_RESUMABLE : VERDICT_REFUSE_SIZE;
    if (output_size == r->image_size)
      return VERDICT_RESUMABLE;
    /* The file was emptied or replaced by an empty one: the data the
     * record speaks of is gone, and nothing else is at stake. */
    if (output_size == 0)
      return VERDICT_STALE;
    return VERDICT_REFUSE_SIZE;
  }
  assert (!"state_judge: unknown state_found");
  return VERDICT_REFUSE_INVALID;
}

bool
state_verdict_refuses (enum state_verdict v)
{
  return v == VERDICT_REFUSE_FOREIGN || v == VERDICT_REFUSE_INVALID ||
    v == VERDICT_REFUSE_SIZE;
}
