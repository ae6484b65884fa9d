/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of stm-recv's state file text and of the decisions made
 * from it (receiver/state_format.c, receiver/migration_record.c).
 *
 * A record is formatted and parsed back; every way a state file can be
 * damaged (each line cut, each key misspelt, numbers out of range, extra
 * text, a newer version, every prefix of a good file) must be refused with
 * a reason naming the line; a seeded mutation loop checks that whatever the
 * parser accepts is a record it would write the same way.  Then the
 * startup judgement of an output against its state file, and the HELLO
 * decision, case by case.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "migration_record.h"
#include "state_format.h"
#include "wire.h"

static const char good_text[] =
  "stm-recv-state 2\n"
  "migration_id 00112233445566778899aabbccddeeff\n"
  "image_size 1073741824\n"
  "block_size 65536\n"
  "durable_seq 12\n"
  "state incomplete\n";

static void
sample_record (struct migration_record *r)
{
  static const uint8_t id[WIRE_MIGRATION_ID_LEN] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
  };

  migration_record_init (r);
  r->known = true;
  memcpy (r->id, id, sizeof r->id);
  r->image_size = 1073741824;
  r->block_size = 65536;
  r->ndisks = 1;
  r->disks[0].size = r->image_size;
  r->disks[0].block_size = r->block_size;
  r->durable_seq = 12;
  r->state = WIRE_STATE_INCOMPLETE;
}

static bool
records_equal (const struct migration_record *a, const struct migration_record *b)
{
  return a->known == b->known && memcmp (a->id, b->id, sizeof a->id) == 0 &&
    a->image_size == b->image_size && a->block_size == b->block_size &&
    a->durable_seq == b->durable_seq && a->state == b->state &&
    a->ndisks == b->ndisks &&
    memcmp (a->disks, b->disks, a->ndisks * sizeof a->disks[0]) == 0;
}

/* The one unnamed output of a one-disk receiver, and the map of a HELLO
 * of one disk onto it. */
static const struct outputs one_output = { 1, { { "", "image" } } };
static unsigned map_one[WIRE_MAX_DISKS];

/* The disk table a decoded one-disk HELLO carries, from its fixed part
 * (which the tests change). */
static struct wire_hello *
synced (struct wire_hello *h)
{
  h->ndisks = 1;
  h->disks[0] = (struct wire_hello_disk) { h->image_size, h->block_size, 0, NULL };
  return h;
}

static enum migration_decision
decide (const struct migration_record *r, struct wire_hello *h)
{
  return migration_record_decide (r, synced (h), &one_output, map_one);
}

static void
begin (struct migration_record *r, struct wire_hello *h,
       enum migration_decision d)
{
  migration_record_begin (r, synced (h), &one_output, map_one, d);
}

static enum hello_verdict
judge (const struct migration_record *r, struct wire_hello *h, bool busy,
       bool force)
{
  unsigned map[WIRE_MAX_DISKS];
  char why[OUTPUTS_WHY_MAX];

  return migration_record_judge_hello (r, synced (h), &one_output, map, why,
                                       busy, force);
}

/* Parse a heap copy of exactly len bytes, so a read past the end shows
 * under AddressSanitizer or valgrind. */
static int
parse_exact (const char *text, size_t len, struct migration_record *r,
             char why[STATE_WHY_MAX])
{
  char *copy = malloc (len ? len : 1);
  int ret;

  assert_non_null (copy);
  memcpy (copy, text, len);
  ret = state_parse (copy, len, r, why);
  free (copy);
  return ret;
}

/* text must be refused, with a reason containing expect_in_why. */
static void
parse_bad (const char *text, const char *expect_in_why)
{
  struct migration_record r;
  char why[STATE_WHY_MAX] = "";

  sample_record (&r);
  r.durable_seq = 999;
  if (parse_exact (text, strlen (text), &r, why) != -1)
    fail_msg ("state_parse accepted:\n%s", text);
  if (strstr (why, expect_in_why) == NULL)
    fail_msg ("state_parse's reason \"%s\" does not mention \"%s\" for:\n%s",
              why, expect_in_why, text);
  /* A refused text leaves the record alone. */
  assert_int_equal (r.durable_seq, 999);
}

/* good_text with the first occurrence of from replaced by to. */
static void
parse_bad_edit (const char *from, const char *to, const char *expect_in_why)
{
  char text[STATE_TEXT_MAX + 64];
  const char *at = strstr (good_text, from);

  assert_non_null (at);
  snprintf (text, sizeof text, "%.*s%s%s", (int) (at - good_text), good_text,
            to, at + strlen (from));
  parse_bad (text, expect_in_why);
}

static void
test_round_trip (void **state)
{
  struct migration_record r, back;
  char text[STATE_TEXT_MAX], why[STATE_WHY_MAX];
  size_t len;

  sample_record (&r);
  len = state_format (&r, text);
  assert_int_equal (len, strlen (text));
  assert_string_equal (text, good_text);
  migration_record_init (&back);
  assert_int_equal (parse_exact (text, len, &back, why), 0);
  assert_true (records_equal (&r, &back));

  /* The extremes of every field survive too. */
  memset (r.id, 0xff, sizeof r.id);
  r.image_size = r.disks[0].size = WIRE_MAX_IMAGE_SIZE;
  r.block_size = r.disks[0].block_size = WIRE_MAX_BLOCK;
  r.durable_seq = UINT64_MAX;
  r.state = WIRE_STATE_SUPERSEDED;
  len = state_format (&r, text);
  assert_true (len < STATE_TEXT_MAX);
  assert_non_null (strstr (text, "state superseded\n"));
  assert_int_equal (parse_exact (text, len, &back, why), 0);
  assert_true (records_equal (&r, &back));
  /* Every state survives. */
  for (uint32_t st = WIRE_STATE_INCOMPLETE; st <= WIRE_STATE_SUPERSEDED; st++) {
    r.state = st;
    len = state_format (&r, text);
    assert_int_equal (parse_exact (text, len, &back, why), 0);
    assert_true (records_equal (&r, &back));
  }

  r.image_size = r.disks[0].size = 0;
  r.block_size = r.disks[0].block_size = WIRE_MIN_BLOCK;
  r.durable_seq = 0;
  len = state_format (&r, text);
  assert_int_equal (parse_exact (text, len, &back, why), 0);
  assert_true (records_equal (&r, &back));
}

static void
test_every_prefix_refused (void **state)
{
  size_t len = strlen (good_text), i;
  struct migration_record r;
  char why[STATE_WHY_MAX];

  for (i = 0; i < len; i++) {
    migration_record_init (&r);
    if (parse_exact (good_text, i, &r, why) != -1)
      fail_msg ("a prefix of %zu bytes was accepted", i);
    assert_false (r.known);
  }
  assert_int_equal (parse_exact (good_text, len, &r, why), 0);
}

static void
test_header (void **state)
{
  parse_bad_edit ("stm-recv-state 2\n", "stm-recv-state 4\n", "newer");
  /* Version 3 (named disks) has no image_size line. */
  parse_bad_edit ("stm-recv-state 2\n", "stm-recv-state 3\n", "line 3");
  parse_bad_edit ("stm-recv-state 2\n", "stm-recv-state 0\n", "version 0");
  /* Version 1 said "complete yes", which cannot tell a prepared commit
   * from a final one: not to be trusted. */
  parse_bad_edit ("stm-recv-state 2\n", "stm-recv-state 1\n", "version 1");
  parse_bad_edit ("stm-recv-state 2\n", "stm-send-state 2\n", "line 1");
  parse_bad_edit ("stm-recv-state 2\n", "stm-recv-state\n", "line 1");
  parse_bad_edit ("stm-recv-state 2\n", "stm-recv-state 2 \n", "line 1");
  parse_bad_edit ("stm-recv-state 2\n", "\n", "line 1");
  parse_bad ("", "line 1");
}

static void
test_keys (void **state)
{
  /* Misspelt, missing, repeated or reordered keys. */
  parse_bad_edit ("migration_id ", "migration-id ", "line 2");
  parse_bad_edit ("image_size 1073741824\n", "", "line 3");
  parse_bad_edit ("block_size 65536\n", "block_size 65536\nblock_size 65536\n", "line 5");
  parse_bad_edit ("image_size 1073741824\nblock_size 65536\n",
                  "block_size 65536\nimage_size 1073741824\n", "line 3");
  parse_bad_edit ("state incomplete\n", "state incomplete\nextra 1\n", "after the last key");
  parse_bad_edit ("state incomplete\n", "state incomplete", "line 6");
  parse_bad_edit ("state incomplete\n", "state incomplete\n\n", "after the last key");
  parse_bad_edit ("state incomplete\n", "complete no\n", "line 6");
  parse_bad_edit ("durable_seq 12", "durable_seq  12", "line 5");
  parse_bad_edit ("durable_seq 12", "durable_seq\t12", "line 5");
  parse_bad_edit ("durable_seq 12\n", "durable_seq 12\r\n", "line 5");
}

static void
test_values (void **state)
{
  /* The id: exactly 32 lowercase hex digits. */
  parse_bad_edit ("00112233445566778899aabbccddeeff", "00112233445566778899AABBCCDDEEFF",
                  "line 2");
  parse_bad_edit ("00112233445566778899aabbccddeeff", "00112233445566778899aabbccddee",
                  "line 2");
  parse_bad_edit ("00112233445566778899aabbccddeeff", "00112233445566778899aabbccddeeff0",
                  "line 2");
  parse_bad_edit ("00112233445566778899aabbccddeeff", "0011223344556677889gaabbccddeeff",
                  "line 2");
  /* Sizes and numbers. */
  parse_bad_edit ("image_size 1073741824", "image_size 9223372036854775808", "too large");
  parse_bad_edit ("image_size 1073741824", "image_size -1", "line 3");
  parse_bad_edit ("image_size 1073741824", "image_size 1G", "line 3");
  parse_bad_edit ("image_size 1073741824", "image_size ", "line 3");
  parse_bad_edit ("block_size 65536", "block_size 65537", "power of two");
  parse_bad_edit ("block_size 65536", "block_size 2048", "power of two");
  parse_bad_edit ("block_size 65536", "block_size 134217728", "power of two");
  parse_bad_edit ("block_size 65536", "block_size 4294967296", "power of two");
  parse_bad_edit ("durable_seq 12", "durable_seq 18446744073709551616", "line 5");
  parse_bad_edit ("durable_seq 12", "durable_seq +12", "line 5");
  parse_bad_edit ("state incomplete", "state complete", "none of");
  parse_bad_edit ("state incomplete", "state Final", "none of");
  parse_bad_edit ("state incomplete", "state ", "none of");
}

static void
test_size_and_nul (void **state)
{
  char big[STATE_TEXT_MAX + 10];
  char with_nul[sizeof good_text];
  struct migration_record r;
  char why[STATE_WHY_MAX];

  memset (big, 'x', sizeof big);
  assert_int_equal (parse_exact (big, sizeof big, &r, why), -1);
  assert_non_null (strstr (why, "longer"));
  assert_int_equal (parse_exact (big, STATE_TEXT_MAX, &r, why), -1);
  assert_non_null (strstr (why, "longer"));

  memcpy (with_nul, good_text, sizeof with_nul);
  with_nul[40] = '\0';
  assert_int_equal (parse_exact (with_nul, sizeof with_nul - 1, &r, why), -1);
  assert_non_null (strstr (why, "NUL"));
}

/* Bounded, seeded mutations of a good file: whatever is accepted must be a
 * valid record that formats back to exactly the text accepted. */
static void
test_mutations (void **state)
{
  size_t len = strlen (good_text);
  unsigned seed = 12345, round, accepted = 0;

  for (round = 0; round < 20000; round++) {
    char text[STATE_TEXT_MAX], back[STATE_TEXT_MAX], why[STATE_WHY_MAX];
    struct migration_record r;
    unsigned flips, k;

    memcpy (text, good_text, len);
    flips = 1 + rand_r (&seed) % 3;
    for (k = 0; k < flips; k++) {
      size_t at = (size_t) rand_r (&seed) % len;
      switch (rand_r (&seed) % 3) {
      case 0: text[at] = (char) (rand_r (&seed) & 0xff); break;
      case 1: text[at] = (char) ('0' + rand_r (&seed) % 10); break;
      default: text[at] ^= (char) (1u << (rand_r (&seed) % 8)); break;
      }
    }
    migration_record_init (&r);
    if (parse_exact (text, len, &r, why) == 0) {
      accepted++;
      assert_true (r.known);
      assert_true (r.image_size <= WIRE_MAX_IMAGE_SIZE);
      assert_true (r.block_size >= WIRE_MIN_BLOCK && r.block_size <= WIRE_MAX_BLOCK);
      assert_int_equal (r.block_size & (r.block_size - 1), 0);
      if (state_format (&r, back) != len || memcmp (back, text, len) != 0)
        fail_msg ("accepted a text that does not format back the same:\n%.*s",
                  (int) len, text);
    }
    else
      assert_true (why[0] != '\0');
  }
  /* Digit mutations of the numbers are valid records: some must pass, or
   * the loop tested nothing but refusals. */
  assert_true (accepted > 0);
}

static void
test_judge (void **state)
{
  struct migration_record r;
  const uint64_t size = 1073741824;

  /* No state file. */
  assert_int_equal (state_judge (STATE_ABSENT, NULL, false, 0), VERDICT_EMPTY);
  assert_int_equal (state_judge (STATE_ABSENT, NULL, false, 1), VERDICT_REFUSE_FOREIGN);
  assert_int_equal (state_judge (STATE_ABSENT, NULL, true, size), VERDICT_EMPTY);
  /* A damaged state file, whatever the output. */
  assert_int_equal (state_judge (STATE_INVALID, NULL, false, 0), VERDICT_REFUSE_INVALID);
  assert_int_equal (state_judge (STATE_INVALID, NULL, true, size), VERDICT_REFUSE_INVALID);

  /* A record with durable data. */
  sample_record (&r);
  assert_int_equal (state_judge (STATE_VALID, &r, false, size), VERDICT_RESUMABLE);
  assert_int_equal (state_judge (STATE_VALID, &r, false, 0), VERDICT_STALE);
  assert_int_equal (state_judge (STATE_VALID, &r, false, size - 1), VERDICT_REFUSE_SIZE);
  assert_int_equal (state_judge (STATE_VALID, &r, false, size + 1), VERDICT_REFUSE_SIZE);
  assert_int_equal (state_judge (STATE_VALID, &r, true, size), VERDICT_RESUMABLE);
  assert_int_equal (state_judge (STATE_VALID, &r, true, 2 * size), VERDICT_RESUMABLE);
  assert_int_equal (state_judge (STATE_VALID, &r, true, size - 1), VERDICT_REFUSE_SIZE);
  r.state = WIRE_STATE_FINAL;
  assert_int_equal (state_judge (STATE_VALID, &r, false, size), VERDICT_RESUMABLE);
  assert_int_equal (state_judge (STATE_VALID, &r, false, 4096), VERDICT_REFUSE_SIZE);

  /* A record that promised nothing: any size will do. */
  r.state = WIRE_STATE_INCOMPLETE;
  r.durable_seq = 0;
  assert_int_equal (state_judge (STATE_VALID, &r, false, 4096), VERDICT_RESUMABLE);
  assert_int_equal (state_judge (STATE_VALID, &r, false, 0), VERDICT_RESUMABLE);

  assert_true (state_verdict_refuses (VERDICT_REFUSE_FOREIGN));
  assert_true (state_verdict_refuses (VERDICT_REFUSE_INVALID));
  assert_true (state_verdict_refuses (VERDICT_REFUSE_SIZE));
  assert_false (state_verdict_refuses (VERDICT_RESUMABLE));
  assert_false (state_verdict_refuses (VERDICT_EMPTY));
  assert_false (state_verdict_refuses (VERDICT_STALE));
}

static void
hello_for (const struct migration_record *r, struct wire_hello *h)
{
  memset (h, 0, sizeof *h);
  memcpy (h->migration_id, r->id, sizeof h->migration_id);
  h->image_size = r->image_size;
  h->block_size = r->block_size;
}

static void
test_decide (void **state)
{
  struct migration_record r;
  struct wire_hello h;

  /* Nothing held: NEW. */
  sample_record (&r);
  hello_for (&r, &h);
  migration_record_init (&r);
  assert_int_equal (decide (&r, &h), MIGRATION_NEW);

  /* The same migration with something durable: RESUME, committed or not,
   * and whatever block size the sender uses now. */
  sample_record (&r);
  assert_int_equal (decide (&r, &h), MIGRATION_RESUME);
  h.block_size = 4096;
  assert_int_equal (decide (&r, &h), MIGRATION_RESUME);
  r.state = WIRE_STATE_PREPARED;
  assert_int_equal (decide (&r, &h), MIGRATION_RESUME);
  r.durable_seq = 0;
  assert_int_equal (decide (&r, &h), MIGRATION_RESUME);

  /* Nothing ever acknowledged: NEW, even for the same id. */
  r.state = WIRE_STATE_INCOMPLETE;
  assert_int_equal (decide (&r, &h), MIGRATION_NEW);

  /* Another size: MISMATCH; another id: OTHER. */
  sample_record (&r);
  hello_for (&r, &h);
  h.image_size += 4096;
  assert_int_equal (decide (&r, &h), MIGRATION_MISMATCH);
  hello_for (&r, &h);
  h.migration_id[15] ^= 1;
  assert_int_equal (decide (&r, &h), MIGRATION_OTHER);
  r.state = WIRE_STATE_FINAL;
  assert_int_equal (decide (&r, &h), MIGRATION_OTHER);
}

static void
test_record_life (void **state)
{
  struct migration_record r;
  struct wire_hello h;
  const char *why = NULL;

  sample_record (&r);
  hello_for (&r, &h);
  migration_record_init (&r);
  begin (&r, &h, MIGRATION_NEW);
  assert_true (r.known);
  assert_int_equal (r.durable_seq, 0);
  assert_int_equal (r.state, WIRE_STATE_INCOMPLETE);
  assert_int_equal (migration_record_hello_mode (&r), WIRE_MODE_RESUME);
  migration_record_durable (&r, 3);
  assert_int_equal (r.durable_seq, 3);
  /* COMMIT prepares; it does not make the destination final. */
  assert_int_equal (migration_record_committed (&r, 4, &why), 0);
  assert_int_equal (r.state, WIRE_STATE_PREPARED);
  assert_int_equal (r.durable_seq, 4);
  assert_int_equal (migration_record_hello_mode (&r), WIRE_MODE_PREPARED);
  /* A resumed sender writing again makes the image incomplete. */
  h.block_size = 4096;
  begin (&r, &h, MIGRATION_RESUME);
  assert_int_equal (r.block_size, 4096);
  assert_int_equal (r.durable_seq, 4);
  assert_int_equal (r.state, WIRE_STATE_PREPARED);
  migration_record_written (&r);
  assert_int_equal (r.state, WIRE_STATE_INCOMPLETE);
  assert_int_equal (r.durable_seq, 4);
}

/* The whole judgement of a HELLO, in the order it is made. */
static void
test_judge_hello (void **state)
{
  struct migration_record r;
  struct wire_hello h;

  sample_record (&r);
  hello_for (&r, &h);
  /* Busy comes first, whatever the HELLO says. */
  assert_int_equal (judge (&r, &h, true, true), HELLO_REFUSE_BUSY);
  assert_int_equal (judge (&r, &h, false, false), HELLO_ACCEPT_RESUME);
  /* Malformed: refused even with --force. */
  h.features = 0x80;
  assert_int_equal (judge (&r, &h, false, true), HELLO_REFUSE_FEATURES);
  /* Compare-only: busy still comes first, and the features are checked,
   * but what the output holds refuses nothing (it records nothing). */
  h.features = WIRE_FEATURE_HASH | WIRE_FEATURE_COMPARE_ONLY;
  assert_int_equal (judge (&r, &h, true, false), HELLO_REFUSE_BUSY);
  assert_int_equal (judge (&r, &h, false, false), HELLO_ACCEPT_COMPARE);
  h.migration_id[0] ^= 1;
  assert_int_equal (judge (&r, &h, false, false), HELLO_ACCEPT_COMPARE);
  h.image_size += 4096;
  assert_int_equal (judge (&r, &h, false, false), HELLO_ACCEPT_COMPARE);
  h.block_size = 2048;
  assert_int_equal (judge (&r, &h, false, false), HELLO_REFUSE_GEOMETRY);
  hello_for (&r, &h);
  /* The other new bits are accepted like any known feature. */
  h.features = WIRE_FEATURE_HASH | WIRE_FEATURE_KEEP;
  assert_int_equal (judge (&r, &h, false, false), HELLO_ACCEPT_RESUME);
  h.features = 0;
  h.block_size = 65537;
  assert_int_equal (judge (&r, &h, false, true), HELLO_REFUSE_GEOMETRY);
  h.block_size = 2048;
  assert_int_equal (judge (&r, &h, false, true), HELLO_REFUSE_GEOMETRY);
  hello_for (&r, &h);
  h.image_size = (uint64_t) INT64_MAX + 1;
  assert_int_equal (judge (&r, &h, false, true), HELLO_REFUSE_GEOMETRY);
  /* Another size of this migration, or another migration: refused, or
   * forced over with --force. */
  hello_for (&r, &h);
  h.image_size += 4096;
  assert_int_equal (judge (&r, &h, false, false), HELLO_REFUSE_MISMATCH);
  assert_int_equal (judge (&r, &h, false, true), HELLO_ACCEPT_FORCED);
  hello_for (&r, &h);
  h.migration_id[0] ^= 1;
  assert_int_equal (judge (&r, &h, false, false), HELLO_REFUSE_OTHER);
  assert_int_equal (judge (&r, &h, false, true), HELLO_ACCEPT_FORCED);
  /* Nothing held: new, --force or not. */
  migration_record_init (&r);
  assert_int_equal (judge (&r, &h, false, false), HELLO_ACCEPT_NEW);
  assert_int_equal (judge (&r, &h, false, true), HELLO_ACCEPT_NEW);
  /* A final migration comes back: resumed, and answered final. */
  sample_record (&r);
  r.state = WIRE_STATE_FINAL;
  hello_for (&r, &h);
  assert_int_equal (judge (&r, &h, false, false), HELLO_ACCEPT_RESUME);
  assert_int_equal (migration_record_hello_mode (&r), WIRE_MODE_FINAL);

  /* Another migration of the same disks over an incomplete or superseded
   * one is taken over without --force when it compares (a source whose
   * nbdkit restarted); never a prepared or final one, never for a sender
   * that cannot compare, never at another size. */
  static const struct { uint32_t state; enum hello_verdict v; } takeover[] = {
    { WIRE_STATE_INCOMPLETE, HELLO_ACCEPT_TAKEOVER },
    { WIRE_STATE_SUPERSEDED, HELLO_ACCEPT_TAKEOVER },
    { WIRE_STATE_PREPARED, HELLO_REFUSE_OTHER },
    { WIRE_STATE_FINAL, HELLO_REFUSE_OTHER },
  };
  for (size_t i = 0; i < sizeof takeover / sizeof takeover[0]; i++) {
    sample_record (&r);
    r.state = takeover[i].state;
    hello_for (&r, &h);
    h.migration_id[0] ^= 1;
    h.features = WIRE_FEATURE_HASH;
    assert_int_equal (judge (&r, &h, false, false), takeover[i].v);
    assert_int_equal (judge (&r, &h, false, true), HELLO_ACCEPT_FORCED);
    h.features = 0;
    assert_int_equal (judge (&r, &h, false, false), HELLO_REFUSE_OTHER);
  }
  sample_record (&r);
  hello_for (&r, &h);
  h.migration_id[0] ^= 1;
  h.features = WIRE_FEATURE_HASH;
  h.image_size += 4096;
  assert_int_equal (judge (&r, &h, false, false), HELLO_REFUSE_OTHER);
}

/* The words and codes of refused HELLOs. */
static void
test_refusal_words (void **state)
{
  struct migration_record r;
  struct wire_hello h;
  char buf[WIRE_MAX_TEXT + 1];
  (void) state;

  sample_record (&r);
  hello_for (&r, &h);
  synced (&h);
  assert_int_equal (migration_record_refusal (&r, HELLO_REFUSE_BUSY, &h, "/o.img",
                                              "10.0.0.1:5", "ab", "", buf, sizeof buf),
                    WIRE_ERR_BUSY);
  assert_non_null (strstr (buf, "busy"));
  assert_non_null (strstr (buf, "10.0.0.1:5"));
  h.migration_id[0] ^= 1;
  assert_int_equal (migration_record_refusal (&r, HELLO_REFUSE_OTHER, &h, "/o.img",
                                              "", "ab", "", buf, sizeof buf),
                    WIRE_ERR_MISMATCH);
  assert_non_null (strstr (buf, "--force"));
  assert_non_null (strstr (buf, "/o.img"));
  h.features = 0x80;
  assert_int_equal (migration_record_refusal (&r, HELLO_REFUSE_FEATURES, &h, "/o.img",
                                              "", "ab", "", buf, sizeof buf),
                    WIRE_ERR_PROTOCOL);
  assert_non_null (strstr (buf, "0x80"));
  assert_string_equal (migration_record_mode_name (WIRE_MODE_PREPARED), "prepared");
}

/* The second phase: what OUTCOME may do to each state. */
static void
test_record_outcome (void **state)
{
  struct migration_record r;
  const char *why = NULL;

  /* Thawed after the commit: superseded, resumable, again harmless. */
  sample_record (&r);
  assert_int_equal (migration_record_committed (&r, 13, &why), 0);
  assert_int_equal (migration_record_outcome (&r, 13, WIRE_OUTCOME_THAWED, &why), 0);
  assert_int_equal (r.state, WIRE_STATE_SUPERSEDED);
  assert_int_equal (migration_record_outcome (&r, 13, WIRE_OUTCOME_THAWED, &why), 0);
  assert_int_equal (migration_record_hello_mode (&r), WIRE_MODE_RESUME);
  /* A superseded copy is never made final by a late flip report. */
  assert_int_equal (migration_record_outcome (&r, 13, WIRE_OUTCOME_FLIPPED, &why), -1);
  assert_non_null (strstr (why, "not prepared"));
  assert_int_equal (r.state, WIRE_STATE_SUPERSEDED);
  /* It may be committed again (the guest wrote nothing since). */
  assert_int_equal (migration_record_committed (&r, 14, &why), 0);
  assert_int_equal (r.state, WIRE_STATE_PREPARED);

  /* Flipped: final; the outcome must name the commit recorded. */
  assert_int_equal (migration_record_outcome (&r, 13, WIRE_OUTCOME_FLIPPED, &why), -1);
  assert_non_null (strstr (why, "another commit"));
  assert_int_equal (r.state, WIRE_STATE_PREPARED);
  assert_int_equal (migration_record_outcome (&r, 14, WIRE_OUTCOME_FLIPPED, &why), 0);
  assert_int_equal (r.state, WIRE_STATE_FINAL);
  assert_int_equal (migration_record_hello_mode (&r), WIRE_MODE_FINAL);
  assert_int_equal (migration_record_outcome (&r, 14, WIRE_OUTCOME_FLIPPED, &why), 0);
  assert_int_equal (r.state, WIRE_STATE_FINAL);
  /* Final is final: no thaw report, no further COMMIT. */
  assert_int_equal (migration_record_outcome (&r, 14, WIRE_OUTCOME_THAWED, &why), -1);
  assert_non_null (strstr (why, "already final"));
  assert_int_equal (migration_record_committed (&r, 15, &why), -1);
  assert_int_equal (r.state, WIRE_STATE_FINAL);
  assert_int_equal (r.durable_seq, 14);

  /* Incomplete: a flip report is a contradiction; a thaw report (of a
   * COMMIT that never arrived) changes nothing. */
  sample_record (&r);
  assert_int_equal (migration_record_outcome (&r, 12, WIRE_OUTCOME_FLIPPED, &why), -1);
  assert_int_equal (r.state, WIRE_STATE_INCOMPLETE);
  assert_int_equal (migration_record_outcome (&r, 99, WIRE_OUTCOME_THAWED, &why), 0);
  assert_int_equal (r.state, WIRE_STATE_INCOMPLETE);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_every_prefix_refused),
    cmocka_unit_test (test_header),
    cmocka_unit_test (test_keys),
    cmocka_unit_test (test_values),
    cmocka_unit_test (test_size_and_nul),
    cmocka_unit_test (test_mutations),
    cmocka_unit_test (test_judge),
    cmocka_unit_test (test_decide),
    cmocka_unit_test (test_record_life),
    cmocka_unit_test (test_record_outcome),
    cmocka_unit_test (test_judge_hello),
    cmocka_unit_test (test_refusal_words),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
