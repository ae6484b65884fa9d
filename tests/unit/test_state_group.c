/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of stm-recv's groups of named outputs: parsing --output
 * NAME=IMAGE (receiver/outputs.c), matching a HELLO's disks to the outputs,
 * the state file's version 3 that records a group in one file
 * (receiver/state_format.c), the startup judgement of a group, and the
 * HELLO verdict for groups (receiver/migration_record.c).  The one-disk
 * cases are in test_state_file.c.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>

#include "migration_record.h"
#include "outputs.h"
#include "state_format.h"
#include "wire.h"

#define MIB (1024u * 1024)

static const char group_text[] =
  "stm-recv-state 3\n"
  "migration_id 00112233445566778899aabbccddeeff\n"
  "disks 2\n"
  "disk root 8388608 65536\n"
  "disk data-1 1048576 4096\n"
  "durable_seq 7\n"
  "state prepared\n";

static void
add (struct outputs *o, const char *arg)
{
  struct output_spec spec;
  char why[OUTPUTS_WHY_MAX];

  if (output_spec_parse (arg, &spec, why) == -1 || outputs_add (o, &spec, why) == -1)
    fail_msg ("%s refused: %s", arg, why);
}

static void
expect_add_refused (struct outputs *o, const char *arg, const char *word)
{
  struct output_spec spec;
  char why[OUTPUTS_WHY_MAX] = "";

  if (output_spec_parse (arg, &spec, why) == 0 && outputs_add (o, &spec, why) == 0)
    fail_msg ("%s accepted", arg);
  if (strstr (why, word) == NULL)
    fail_msg ("reason \"%s\" does not mention \"%s\"", why, word);
}

/* The outputs "root" and "data-1" and a HELLO naming them in that order. */
static void
group (struct outputs *o, struct wire_hello *h)
{
  memset (o, 0, sizeof *o);
  add (o, "root=/dst/root.img");
  add (o, "data-1=/dst/data.img");
  memset (h, 0, sizeof *h);
  memcpy (h->migration_id, "\x00\x11\x22\x33\x44\x55\x66\x77"
          "\x88\x99\xaa\xbb\xcc\xdd\xee\xff", WIRE_MIGRATION_ID_LEN);
  h->image_size = 8 * MIB;
  h->block_size = 65536;
  h->features = WIRE_FEATURE_DISKS;
  h->ndisks = 2;
  h->disks[0] = (struct wire_hello_disk) { 8 * MIB, 65536, 4, "root" };
  h->disks[1] = (struct wire_hello_disk) { 1 * MIB, 4096, 6, "data-1" };
}

static void
test_output_spec (void **state)
{
  struct output_spec spec;
  char why[OUTPUTS_WHY_MAX];

  assert_int_equal (output_spec_parse ("root=/a/b.img", &spec, why), 0);
  assert_string_equal (spec.name, "root");
  assert_string_equal (spec.path, "/a/b.img");
  /* A '/' before the '=' makes it a path; so does a name that is not one. */
  assert_int_equal (output_spec_parse ("./x=y", &spec, why), 0);
  assert_string_equal (spec.name, "");
  assert_string_equal (spec.path, "./x=y");
  assert_int_equal (output_spec_parse ("/dev/disk/by-id/a=b", &spec, why), 0);
  assert_string_equal (spec.path, "/dev/disk/by-id/a=b");
  assert_int_equal (output_spec_parse ("a b=c", &spec, why), 0);
  assert_string_equal (spec.name, "");
  assert_int_equal (output_spec_parse ("=c", &spec, why), 0);
  assert_string_equal (spec.path, "=c");
  assert_int_equal (output_spec_parse ("plain.img", &spec, why), 0);
  assert_string_equal (spec.name, "");
  /* The first '=' splits: the image path may hold more. */
  assert_int_equal (output_spec_parse ("d=x=y", &spec, why), 0);
  assert_string_equal (spec.name, "d");
  assert_string_equal (spec.path, "x=y");
  assert_int_equal (output_spec_parse ("d=", &spec, why), -1);
  assert_non_null (strstr (why, "empty"));
  assert_int_equal (output_spec_parse ("", &spec, why), -1);
}

static void
test_outputs_set (void **state)
{
  struct outputs o = { 0 };
  char name[8];
  int i;

  add (&o, "zeta=/z");
  add (&o, "alpha=/a");
  add (&o, "mid=/m");
  assert_true (outputs_named (&o));
  assert_int_equal (outputs_primary (&o), 1);
  assert_int_equal (outputs_find (&o, "mid", 3), 2);
  assert_int_equal (outputs_find (&o, "mi", 2), -1);
  expect_add_refused (&o, "alpha=/b", "twice");
  expect_add_refused (&o, "/plain", "not both");

  memset (&o, 0, sizeof o);
  add (&o, "/plain");
  assert_false (outputs_named (&o));
  assert_int_equal (outputs_primary (&o), 0);
  expect_add_refused (&o, "/other", "needs names");
  expect_add_refused (&o, "a=/a", "not both");

  memset (&o, 0, sizeof o);
  for (i = 0; i < WIRE_MAX_DISKS; i++) {
    char arg[32];
    snprintf (arg, sizeof arg, "d%d=/x%d", i, i);
    add (&o, arg);
  }
  snprintf (name, sizeof name, "e=/e");
  expect_add_refused (&o, name, "at most 16");
}

static void
test_match_hello (void **state)
{
  struct outputs o;
  struct wire_hello h;
  unsigned map[WIRE_MAX_DISKS];
  char why[OUTPUTS_WHY_MAX];

  group (&o, &h);
  /* In another order than the options: the map follows the names. */
  h.disks[0] = (struct wire_hello_disk) { 1 * MIB, 4096, 6, "data-1" };
  h.disks[1] = (struct wire_hello_disk) { 8 * MIB, 65536, 4, "root" };
  assert_true (outputs_match_hello (&o, &h, map, why));
  assert_int_equal (map[0], 1);
  assert_int_equal (map[1], 0);

  /* One missing and one extra: both named. */
  h.disks[1] = (struct wire_hello_disk) { 8 * MIB, 65536, 5, "swap0" };
  assert_false (outputs_match_hello (&o, &h, map, why));
  assert_non_null (strstr (why, "[swap0] that have no --output"));
  assert_non_null (strstr (why, "lacks [root]"));
  /* Only missing. */
  h.ndisks = 1;
  assert_false (outputs_match_hello (&o, &h, map, why));
  assert_non_null (strstr (why, "lacks disks [root]"));
  /* An unnamed HELLO against two named outputs. */
  h.disks[0] = (struct wire_hello_disk) { 8 * MIB, 65536, 0, NULL };
  assert_false (outputs_match_hello (&o, &h, map, why));
  assert_non_null (strstr (why, "unnamed"));

  /* An unnamed HELLO matches one output, named or not. */
  memset (&o, 0, sizeof o);
  add (&o, "root=/dst/root.img");
  assert_true (outputs_match_hello (&o, &h, map, why));
  assert_int_equal (map[0], 0);
  memset (&o, 0, sizeof o);
  add (&o, "/dst/root.img");
  assert_true (outputs_match_hello (&o, &h, map, why));
  /* A named HELLO never matches an unnamed output. */
  h.disks[0] = (struct wire_hello_disk) { 8 * MIB, 65536, 4, "root" };
  assert_false (outputs_match_hello (&o, &h, map, why));
  assert_non_null (strstr (why, "one unnamed --output"));
}

static int
parse_exact (const char *text, struct migration_record *r, char why[STATE_WHY_MAX])
{
  size_t len = strlen (text);
  char *copy = malloc (len ? len : 1);
  int ret;

  assert_non_null (copy);
  memcpy (copy, text, len);
  ret = state_parse (copy, len, r, why);
  free (copy);
  return ret;
}

static void
test_group_text (void **state)
{
  struct migration_record r, back;
  char why[STATE_WHY_MAX], text[STATE_TEXT_MAX];
  size_t len;

  migration_record_init (&r);
  if (parse_exact (group_text, &r, why) != 0)
    fail_msg ("refused: %s", why);
  assert_int_equal (r.ndisks, 2);
  assert_string_equal (r.disks[1].name, "data-1");
  assert_true (r.disks[1].size == 1 * MIB);
  assert_int_equal (r.disks[1].block_size, 4096);
  /* The one-disk fields mirror disk 0. */
  assert_true (r.image_size == 8 * MIB);
  assert_int_equal (r.block_size, 65536);
  assert_int_equal (r.durable_seq, 7);
  assert_int_equal (r.state, WIRE_STATE_PREPARED);
  /* Written back byte for byte. */
  len = state_format (&r, text);
  assert_int_equal (len, strlen (group_text));
  assert_memory_equal (text, group_text, len);
  assert_int_equal (parse_exact (text, &back, why), 0);

  /* A one-disk named group is version 3 too. */
  r.ndisks = 1;
  len = state_format (&r, text);
  assert_memory_equal (text, "stm-recv-state 3\n", 17);
  assert_non_null (strstr (text, "disks 1\ndisk root 8388608 65536\n"));
  /* The largest group fits. */
  r.ndisks = WIRE_MAX_DISKS;
  for (uint32_t i = 0; i < WIRE_MAX_DISKS; i++) {
    memset (r.disks[i].name, 'a' + (int) i, WIRE_MAX_DISK_NAME);
    r.disks[i].name[WIRE_MAX_DISK_NAME] = '\0';
    r.disks[i].size = (uint64_t) INT64_MAX;
    r.disks[i].block_size = 64u << 20;
  }
  r.durable_seq = UINT64_MAX;
  len = state_format (&r, text);
  assert_true (len < STATE_TEXT_MAX);
  assert_int_equal (parse_exact (text, &back, why), 0);
  assert_int_equal (back.ndisks, WIRE_MAX_DISKS);
}

/* Replace the first from in group_text with to; expect a refusal that
 * names word. */
static void
group_bad_edit (const char *from, const char *to, const char *word)
{
  char text[STATE_TEXT_MAX], why[STATE_WHY_MAX] = "";
  struct migration_record r;
  const char *at = strstr (group_text, from);

  assert_non_null (at);
  snprintf (text, sizeof text, "%.*s%s%s", (int) (at - group_text), group_text,
            to, at + strlen (from));
  migration_record_init (&r);
  if (parse_exact (text, &r, why) == 0)
    fail_msg ("accepted:\n%s", text);
  assert_false (r.known);
  if (strstr (why, word) == NULL)
    fail_msg ("reason \"%s\" does not mention \"%s\"", why, word);
}

static void
test_group_text_damaged (void **state)
{
  char why[STATE_WHY_MAX];
  struct migration_record r;
  size_t i, len = strlen (group_text);

  group_bad_edit ("disks 2\n", "disks 3\n", "ends early");
  group_bad_edit ("disks 2\n", "disks 1\n", "line 5");
  group_bad_edit ("disks 2\n", "disks 0\n", "line 3");
  group_bad_edit ("disks 2\n", "disks 17\n", "line 3");
  group_bad_edit ("disks 2\n", "disks 02\n", "line 3");
  group_bad_edit ("disk data-1", "disk root", "twice");
  group_bad_edit ("disk data-1", "disk data/1", "line 5");
  group_bad_edit ("disk data-1 1048576 4096", "disk data-1 1048576", "line 5");
  group_bad_edit ("disk data-1 1048576 4096", "disk data-1 1048576 4096 x", "line 5");
  group_bad_edit ("disk data-1 1048576 4096", "disk data-1 0 4096", "line 5");
  group_bad_edit ("disk data-1 1048576 4096", "disk data-1 1048576 6144", "line 5");
  group_bad_edit ("disk data-1 1048576 4096", "disk data-1 9223372036854775808 4096",
                  "line 5");
  group_bad_edit ("disk data-1 ", "disk  data-1 ", "line 5");
  group_bad_edit ("state prepared\n", "state prepared\nextra\n", "line 8");
  group_bad_edit ("durable_seq", "durable-seq", "line 6");
  /* Every proper prefix is refused. */
  for (i = 0; i < len; i++) {
    migration_record_init (&r);
    if (state_parse (group_text, i, &r, why) == 0)
      fail_msg ("a prefix of %zu bytes was accepted", i);
  }
}

static void
test_judge_group (void **state)
{
  struct migration_record r;
  char why[STATE_WHY_MAX];
  enum state_verdict v[3];

  assert_int_equal (parse_exact (group_text, &r, why), 0);
  assert_int_equal (state_judge_disk (STATE_VALID, &r, 1, false, 1 * MIB),
                    VERDICT_RESUMABLE);
  assert_int_equal (state_judge_disk (STATE_VALID, &r, 1, false, 8 * MIB),
                    VERDICT_REFUSE_SIZE);
  assert_int_equal (state_judge_disk (STATE_VALID, &r, 0, false, 8 * MIB),
                    VERDICT_RESUMABLE);
  assert_int_equal (state_judge_disk (STATE_VALID, &r, 1, false, 0), VERDICT_STALE);

  v[0] = VERDICT_RESUMABLE; v[1] = VERDICT_RESUMABLE;
  assert_int_equal (state_judge_group (v, 2), VERDICT_RESUMABLE);
  /* One disk's data gone: the group's record is stale. */
  v[1] = VERDICT_STALE;
  assert_int_equal (state_judge_group (v, 2), VERDICT_STALE);
  v[2] = VERDICT_REFUSE_FOREIGN;
  assert_int_equal (state_judge_group (v, 3), VERDICT_REFUSE_FOREIGN);
  v[0] = VERDICT_EMPTY; v[1] = VERDICT_EMPTY;
  assert_int_equal (state_judge_group (v, 2), VERDICT_EMPTY);
}

static enum hello_verdict
judge (const struct migration_record *r, const struct outputs *o,
       const struct wire_hello *h, bool force)
{
  unsigned map[WIRE_MAX_DISKS];
  char why[OUTPUTS_WHY_MAX];

  return migration_record_judge_hello (r, h, o, map, why, false, force);
}

static void
test_group_hello (void **state)
{
  struct migration_record r;
  struct outputs o;
  struct wire_hello h;
  unsigned map[WIRE_MAX_DISKS];
  char why[OUTPUTS_WHY_MAX];

  /* Nothing held: the new record names the outputs, in the HELLO's order. */
  group (&o, &h);
  migration_record_init (&r);
  assert_int_equal (judge (&r, &o, &h, false), HELLO_ACCEPT_NEW);
  assert_true (outputs_match_hello (&o, &h, map, why));
  migration_record_begin (&r, &h, &o, map, MIGRATION_NEW);
  assert_int_equal (r.ndisks, 2);
  assert_string_equal (r.disks[0].name, "root");
  assert_string_equal (r.disks[1].name, "data-1");
  assert_true (r.disks[1].size == 1 * MIB);
  assert_true (r.image_size == 8 * MIB);

  /* Something durable: the same disks in another order resume; the block
   * sizes follow the names. */
  migration_record_durable (&r, 5);
  h.disks[0] = (struct wire_hello_disk) { 1 * MIB, 8192, 6, "data-1" };
  h.disks[1] = (struct wire_hello_disk) { 8 * MIB, 65536, 4, "root" };
  h.image_size = 1 * MIB;
  h.block_size = 8192;
  assert_int_equal (judge (&r, &o, &h, false), HELLO_ACCEPT_RESUME);
  assert_true (outputs_match_hello (&o, &h, map, why));
  migration_record_begin (&r, &h, &o, map, MIGRATION_RESUME);
  assert_int_equal (r.disks[1].block_size, 8192);
  assert_string_equal (r.disks[0].name, "root");

  /* One disk at another size: mismatch, forced with --force. */
  h.disks[0].size = 2 * MIB;
  assert_int_equal (judge (&r, &o, &h, false), HELLO_REFUSE_MISMATCH);
  assert_int_equal (judge (&r, &o, &h, true), HELLO_ACCEPT_FORCED);
  /* Names that are not the outputs': refused even with --force. */
  group (&o, &h);
  h.disks[1] = (struct wire_hello_disk) { 1 * MIB, 4096, 4, "data" };
  assert_int_equal (judge (&r, &o, &h, true), HELLO_REFUSE_DISKS);
  /* A bad geometry in any disk. */
  group (&o, &h);
  h.disks[1].block_size = 2048;
  assert_int_equal (judge (&r, &o, &h, true), HELLO_REFUSE_GEOMETRY);

  /* A record of one disk (the receiver had one output) against a
   * two-disk HELLO of the same migration: mismatch. */
  group (&o, &h);
  r.ndisks = 1;
  assert_int_equal (judge (&r, &o, &h, false), HELLO_REFUSE_MISMATCH);
}

/* The words and codes of a failed resize, write or fdatasync of an
 * output (outputs_prepare_failure, outputs_io_failure). */
static void
test_output_failures (void **state)
{
  char buf[1100];
  (void) state;

  assert_int_equal (outputs_prepare_failure ("disk root (/o.img)", 4096, ENOSPC, true,
                                             1024, true, true, buf, sizeof buf),
                    WIRE_ERR_NOSPACE);
  assert_string_equal (buf, "the block device disk root (/o.img) holds 1024 bytes, "
                       "smaller than the image (4096 bytes); the state file records "
                       "the new migration with nothing durable, and the outputs keep "
                       "their data");
  assert_int_equal (outputs_prepare_failure ("/o.img", 4096, EIO, false, 0, false,
                                             false, buf, sizeof buf), WIRE_ERR_IO);
  assert_non_null (strstr (buf, "I/O error on the destination: cannot set the size of "
                           "/o.img to 4096 bytes"));
  assert_non_null (strstr (buf, "; the outputs' data and their state file are unchanged"));
  assert_int_equal (outputs_io_failure (EDQUOT, "writing", "/o.img", 65536, 512, 7,
                                        buf, sizeof buf), WIRE_ERR_NOSPACE);
  assert_non_null (strstr (buf, "out of space on the destination: writing /o.img at "
                           "offset 65536 (512 bytes)"));
  assert_int_equal (outputs_io_failure (EIO, NULL, "/o.img", 0, 0, 7, buf, sizeof buf),
                    WIRE_ERR_IO);
  assert_non_null (strstr (buf, "fdatasync of /o.img failed"));
  assert_non_null (strstr (buf, "data since sync 7 is not known to be durable"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_output_spec),
    cmocka_unit_test (test_outputs_set),
    cmocka_unit_test (test_match_hello),
    cmocka_unit_test (test_group_text),
    cmocka_unit_test (test_group_text_damaged),
    cmocka_unit_test (test_judge_group),
    cmocka_unit_test (test_group_hello),
    cmocka_unit_test (test_output_failures),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
