/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of stm-recv's hash comparison decisions
 * (receiver/hash_policy.c): when a new migration keeps what its
 * outputs hold, which HELLOs allow hash messages or only compare, which
 * messages a compare-only session accepts, and which output sizes can be
 * compared.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hash_policy.h"

#define HASH WIRE_FEATURE_HASH
#define KEEP WIRE_FEATURE_KEEP
#define ONLY WIRE_FEATURE_COMPARE_ONLY

static const struct compare_output empty_file = { false, 0 };
static const struct compare_output file_2g = { false, 2ull << 30 };
static const struct compare_output device = { true, 1ull << 30 };

static void
test_holds_data (void **state)
{
  (void) state;
  assert_false (hash_policy_holds_data (&empty_file));
  assert_true (hash_policy_holds_data (&file_2g));
  assert_true (hash_policy_holds_data (&device));
  /* A block device is taken to hold data whatever its size says. */
  assert_true (hash_policy_holds_data (&(struct compare_output) { true, 0 }));
}

/* keep = HASH and (KEEP or --force) and some output holds data. */
static void
test_keep (void **state)
{
  (void) state;
  for (int force = 0; force <= 1; force++)
    for (int holds = 0; holds <= 1; holds++)
      for (uint32_t f = 0; f < 64; f++) {
        bool expected = (f & HASH) && ((f & KEEP) || force) && holds;
        assert_int_equal (hash_policy_keep (f, force, holds), expected);
      }
  /* The cases the design names: an image taken over with --force, an
   * output committed by an earlier migration (needs --force), and
   * stm-send --compare (KEEP) without --force. */
  assert_true (hash_policy_keep (HASH, true, true));
  assert_true (hash_policy_keep (HASH | KEEP, false, true));
  /* A sender that cannot compare always gets an emptied output. */
  assert_false (hash_policy_keep (KEEP, true, true));
  assert_false (hash_policy_keep (0, true, true));
}

static void
test_kept_bytes (void **state)
{
  struct compare_output group[3] = { empty_file, file_2g, device };
  (void) state;

  assert_int_equal (hash_policy_kept_bytes (HASH, true, group, 3),
                    (2ull << 30) + (1ull << 30));
  assert_int_equal (hash_policy_kept_bytes (HASH, false, group, 3), 0);
  assert_int_equal (hash_policy_kept_bytes (HASH | KEEP, false, group, 3),
                    (2ull << 30) + (1ull << 30));
  /* Nothing held anywhere: nothing kept, the outputs are emptied. */
  assert_int_equal (hash_policy_kept_bytes (HASH | KEEP, true, group, 1), 0);
  assert_int_equal (hash_policy_kept_bytes (0, true, group + 1, 2), 0);
}

static void
test_features (void **state)
{
  (void) state;
  assert_false (hash_policy_hash_offered (0));
  assert_false (hash_policy_hash_offered (KEEP | WIRE_FEATURE_DISKS));
  assert_true (hash_policy_hash_offered (HASH));
  /* Compare-only implies hash comparison. */
  assert_true (hash_policy_hash_offered (ONLY));
  assert_true (hash_policy_compare_only (ONLY | HASH));
  assert_false (hash_policy_compare_only (HASH | KEEP));
  /* The reply echoes what is offered and known, and adds KEPT. */
  assert_int_equal (hash_policy_reply_features (HASH | WIRE_FEATURE_DISKS, false),
                    HASH | WIRE_FEATURE_DISKS);
  assert_int_equal (hash_policy_reply_features (HASH | KEEP, true),
                    HASH | KEEP | WIRE_FEATURE_KEPT);
  assert_int_equal (hash_policy_reply_features (ONLY | HASH, false), ONLY | HASH);
  /* KEPT offered by a sender is not echoed (never offered, only answered);
   * the decoder refuses it before, and the reply does not repeat it. */
  assert_int_equal (hash_policy_reply_features (WIRE_FEATURE_KEPT, false), 0);
}

static void
test_sizes (void **state)
{
  struct compare_output group[2] = { file_2g, device };
  uint64_t same[2] = { 2ull << 30, 1ull << 30 };
  uint64_t disk_smaller[2] = { 2ull << 30, 512ull << 20 };
  uint64_t disk_larger[2] = { 2ull << 30, 2ull << 30 };
  uint64_t other_file[2] = { (2ull << 30) - 4096, 1ull << 30 };
  (void) state;

  assert_true (hash_policy_size_ok (&file_2g, 2ull << 30));
  assert_false (hash_policy_size_ok (&file_2g, (2ull << 30) + 1));
  assert_false (hash_policy_size_ok (&empty_file, 4096));
  assert_int_equal (hash_policy_size_mismatch (group, same, 2), -1);
  /* A device larger than the disk holds it; a smaller one cannot. */
  assert_int_equal (hash_policy_size_mismatch (group, disk_smaller, 2), -1);
  assert_int_equal (hash_policy_size_mismatch (group, disk_larger, 2), 1);
  assert_int_equal (hash_policy_size_mismatch (group, other_file, 2), 0);
}

static void
test_compare_only_allows (void **state)
{
  (void) state;
  for (uint32_t t = WIRE_HELLO; t <= WIRE_HASHES; t++) {
    bool expected = t == WIRE_HASH_KEY || t == WIRE_HASH_REQ ||
      t == WIRE_KEEPALIVE || t == WIRE_ERROR || t == WIRE_ABORT;
    assert_int_equal (hash_policy_allows ((enum wire_type) t), expected);
  }
  assert_false (hash_policy_allows (WIRE_DATA));
  assert_false (hash_policy_allows (WIRE_SYNC));
  assert_false (hash_policy_allows (WIRE_COMMIT));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_holds_data),
    cmocka_unit_test (test_keep),
    cmocka_unit_test (test_kept_bytes),
    cmocka_unit_test (test_features),
    cmocka_unit_test (test_sizes),
    cmocka_unit_test (test_compare_only_allows),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
