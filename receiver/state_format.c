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

/* Version 3: the record of named outputs. */
static size_t
state_format_group (const struct migration_record *r, char buf[STATE_TEXT_MAX])
{
  char id[MIGRATION_ID_TEXT_LEN];
  size_t len;
  uint32_t i;
  int n;

  migration_id_format (r->id, id);
  n = snprintf (buf, STATE_TEXT_MAX, "%s %d\n%s %s\ndisks %" PRIu32 "\n",
                STATE_FORMAT_NAME, STATE_FORMAT_VERSION_GROUP,
                key_names[KEY_MIGRATION_ID], id, r->ndisks);
  assert (n > 0 && n < STATE_TEXT_MAX);
  len = (size_t) n;
  for (i = 0; i < r->ndisks; i++) {
    n = snprintf (buf + len, STATE_TEXT_MAX - len, "disk %s %" PRIu64 " %" PRIu32 "\n",
                  r->disks[i].name, r->disks[i].size, r->disks[i].block_size);
    assert (n > 0 && (size_t) n < STATE_TEXT_MAX - len);
    len += (size_t) n;
  }
  n = snprintf (buf + len, STATE_TEXT_MAX - len, "%s %" PRIu64 "\n%s %s\n",
                key_names[KEY_DURABLE_SEQ], r->durable_seq,
                key_names[KEY_STATE], wire_dest_state_name (r->state));
  /* Every field has a bounded width, so the text always fits. */
  assert (n > 0 && (size_t) n < STATE_TEXT_MAX - len);
  return len + (size_t) n;
}

size_t
state_format (const struct migration_record *r, char buf[STATE_TEXT_MAX])
{
  char id[MIGRATION_ID_TEXT_LEN];
  int n;

  assert (r->known);
  assert (r->ndisks >= 1 && r->ndisks <= WIRE_MAX_DISKS);
  if (r->ndisks > 1 || r->disks[0].name[0] != '\0')
    return state_format_group (r, buf);
  assert (r->image_size == r->disks[0].size && r->block_size == r->disks[0].block_size);
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

/* The first line: the format's name and version (2 or 3, into *version). */
static bool
parse_header (const char *line, uint64_t *version_out, char why[STATE_WHY_MAX])
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
  if (version != STATE_FORMAT_VERSION && version != STATE_FORMAT_VERSION_GROUP) {
    snprintf (why, STATE_WHY_MAX,
              "line 1: format version %" PRIu64 " is not a version (%d or %d) "
              "this stm-recv reads%s", version, STATE_FORMAT_VERSION,
              STATE_FORMAT_VERSION_GROUP,
              version > STATE_FORMAT_VERSION_GROUP ? " (written by a newer stm-recv?)" : "");
    return false;
  }
  *version_out = version;
  return true;
}

/* A decimal as state_format writes it: no sign, no leading zeros. */
static bool
parse_decimal (const char *text, uint64_t *v)
{
  return !(text[0] == '0' && text[1] != '\0') && parse_u64 (text, v) == 0;
}

/* "disks N" of version 3. */
static bool
parse_disks_line (const char *line, struct migration_record *r,
                  char why[STATE_WHY_MAX], unsigned lineno)
{
  uint64_t v;

  if (strncmp (line, "disks ", 6) != 0 || !parse_decimal (line + 6, &v) ||
      v < 1 || v > WIRE_MAX_DISKS) {
    snprintf (why, STATE_WHY_MAX, "line %u: expected \"disks N\" with N from "
              "1 to %d", lineno, WIRE_MAX_DISKS);
    return false;
  }
  r->ndisks = (uint32_t) v;
  return true;
}

/* "disk NAME SIZE BLOCK" of version 3, into r->disks[k]. */
static bool
parse_disk_line (const char *line, struct migration_record *r, uint32_t k,
                 char why[STATE_WHY_MAX], unsigned lineno)
{
  char copy[STATE_TEXT_MAX];
  char *name, *size, *block, *end;
  uint64_t sz, bl;
  uint32_t j;

  snprintf (copy, sizeof copy, "%s", line);
  if (strncmp (copy, "disk ", 5) != 0)
    goto bad;
  name = copy + 5;
  size = strchr (name, ' ');
  if (size == NULL)
    goto bad;
  *size++ = '\0';
  block = strchr (size, ' ');
  if (block == NULL)
    goto bad;
  *block++ = '\0';
  end = strchr (block, ' ');
  if (end != NULL || !wire_disk_name_ok (name, strlen (name)) ||
      !parse_decimal (size, &sz) || sz == 0 || sz > WIRE_MAX_IMAGE_SIZE ||
      !parse_decimal (block, &bl) || !block_size_ok (bl))
    goto bad;
  for (j = 0; j < k; j++)
    if (strcmp (r->disks[j].name, name) == 0) {
      snprintf (why, STATE_WHY_MAX, "line %u: the disk %.*s is listed twice",
                lineno, WIRE_MAX_DISK_NAME, name);
      return false;
    }
  /* wire_disk_name_ok bounded it above. */
  snprintf (r->disks[k].name, sizeof r->disks[k].name, "%.*s", WIRE_MAX_DISK_NAME, name);
  r->disks[k].size = sz;
  r->disks[k].block_size = (uint32_t) bl;
  return true;

 bad:
  snprintf (why, STATE_WHY_MAX, "line %u: expected \"disk NAME SIZE BLOCK\" "
            "with a valid name, size and block size", lineno);
  return false;
}

/* Split text into at most max lines (NUL-terminated copies in store, each
 * at most STATE_TEXT_MAX): the number of lines, or -1 with why set. */
static int
split_lines (const char *text, size_t len, char (*store)[STATE_TEXT_MAX],
             unsigned max, char why[STATE_WHY_MAX])
{
  size_t pos = 0;
  unsigned n = 0;

  while (pos < len) {
    const char *nl = memchr (text + pos, '\n', len - pos);
    size_t line_len;

    if (nl == NULL) {
      snprintf (why, STATE_WHY_MAX, "line %u: no newline at the end", n + 1);
      return -1;
    }
    if (n == max) {
      snprintf (why, STATE_WHY_MAX, "line %u: unexpected text after the last key",
                n + 1);
      return -1;
    }
    /* Shorter than STATE_TEXT_MAX since the whole text is. */
    line_len = (size_t) (nl - (text + pos));
    memcpy (store[n], text + pos, line_len);
    store[n][line_len] = '\0';
    pos += line_len + 1;
    n++;
  }
  return (int) n;
}

/* The lines after the header: version 2's keys, or version 3's. */
static bool
parse_body (uint64_t version, char (*lines)[STATE_TEXT_MAX], unsigned n,
            struct migration_record *r, char why[STATE_WHY_MAX])
{
  unsigned want, i = 1;
  uint32_t k;

  if (version == STATE_FORMAT_VERSION) {
    for (k = 0; k < N_KEYS; k++, i++) {
      if (i >= n) {
        snprintf (why, STATE_WHY_MAX, "line %u: the file ends early", i + 1);
        return false;
      }
      if (!parse_line ((enum state_key) k, lines[i], r, why, i + 1))
        return false;
    }
    r->ndisks = 1;
    r->disks[0].name[0] = '\0';
    r->disks[0].size = r->image_size;
    r->disks[0].block_size = r->block_size;
  }
  else {
    if (n < 3) {
      snprintf (why, STATE_WHY_MAX, "line %u: the file ends early", n + 1);
      return false;
    }
    if (!parse_line (KEY_MIGRATION_ID, lines[1], r, why, 2) ||
        !parse_disks_line (lines[2], r, why, 3))
      return false;
    want = 3 + r->ndisks + 2;
    if (n < want) {
      snprintf (why, STATE_WHY_MAX, "line %u: the file ends early", n + 1);
      return false;
    }
    for (k = 0; k < r->ndisks; k++)
      if (!parse_disk_line (lines[3 + k], r, k, why, 3 + k + 1))
        return false;
    i = 3 + r->ndisks;
    if (!parse_line (KEY_DURABLE_SEQ, lines[i], r, why, i + 1) ||
        !parse_line (KEY_STATE, lines[i + 1], r, why, i + 2))
      return false;
    i += 2;
    r->image_size = r->disks[0].size;
    r->block_size = r->disks[0].block_size;
  }
  if (i != n) {
    snprintf (why, STATE_WHY_MAX, "line %u: unexpected text after the last key",
              i + 1);
    return false;
  }
  return true;
}

/* Most lines a valid file has: version 3 with every disk. */
#define STATE_LINES_MAX (3 + WIRE_MAX_DISKS + 2)

int
state_parse (const char *text, size_t len, struct migration_record *r,
             char why[STATE_WHY_MAX])
{
  char lines[STATE_LINES_MAX][STATE_TEXT_MAX];   /* 86 KiB, on the stack */
  struct migration_record parsed;
  uint64_t version;
  int n;

  if (len >= STATE_TEXT_MAX) {
    snprintf (why, STATE_WHY_MAX, "the file is longer than %d bytes",
              STATE_TEXT_MAX - 1);
    return -1;
  }
  if (memchr (text, '\0', len) != NULL) {
    snprintf (why, STATE_WHY_MAX, "the file contains a NUL byte");
    return -1;
  }
  if (len == 0) {
    snprintf (why, STATE_WHY_MAX, "line 1: the file ends early");
    return -1;
  }
  n = split_lines (text, len, lines, STATE_LINES_MAX, why);
  if (n < 0)
    return -1;

  migration_record_init (&parsed);
  if (!parse_header (lines[0], &version, why) ||
      !parse_body (version, lines, (unsigned) n, &parsed, why))
    return -1;
  parsed.known = true;
  *r = parsed;
  return 0;
}

enum state_verdict
state_judge (enum state_found found, const struct migration_record *r,
             bool is_block_device, uint64_t output_size)
{
  return state_judge_disk (found, r, 0, is_block_device, output_size);
}

enum state_verdict
state_judge_group (const enum state_verdict *verdicts, unsigned n)
{
  bool stale = false, resumable = false;
  unsigned i;

  for (i = 0; i < n; i++) {
    if (state_verdict_refuses (verdicts[i]))
      return verdicts[i];
    stale |= verdicts[i] == VERDICT_STALE;
    resumable |= verdicts[i] == VERDICT_RESUMABLE;
  }
  if (stale)
    return VERDICT_STALE;
  return resumable ? VERDICT_RESUMABLE : VERDICT_EMPTY;
}

enum state_verdict
state_judge_disk (enum state_found found, const struct migration_record *r,
                  uint32_t k, bool is_block_device, uint64_t output_size)
{
  uint64_t image_size = 0;

  if (found == STATE_VALID) {
    assert (r != NULL && r->known && k < r->ndisks);
    image_size = r->disks[k].size;
  }
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
      return output_size >= image_size ? VERDICT_RESUMABLE : VERDICT_REFUSE_SIZE;
    if (output_size == image_size)
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
