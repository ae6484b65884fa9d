/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of hash comparison's decisions (sender/compare_policy.c)
 * and of the window of hash requests on their way
 * (sender/hash_window.c): when a pass compares, the hash unit, the runs
 * of matching and differing units a compared read is cut into, and the
 * order rules the receiver's answers must keep.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compare_policy.h"
#include "hash_window.h"

#define KIB 1024u
#define MIB (1024u * 1024)

static void
test_wanted (void **state)
{
  (void) state;
  /* A receiver without hashes is never asked, whatever it holds. */
  assert_false (compare_pass_wanted (false, true, true));
  assert_false (compare_pass_wanted (false, false, true));
  /* A new migration into an emptied output: nothing to compare. */
  assert_false (compare_pass_wanted (true, false, false));
  /* Kept data must be compared; a resumed one is worth comparing. */
  assert_true (compare_pass_wanted (true, true, false));
  assert_true (compare_pass_wanted (true, false, true));
}

static void
test_unit (void **state)
{
  (void) state;
  assert_int_equal (compare_pass_unit (4 * KIB), 4 * KIB);
  assert_int_equal (compare_pass_unit (64 * KIB), 64 * KIB);
  assert_int_equal (compare_pass_unit (16 * KIB), 16 * KIB);
  assert_int_equal (compare_pass_unit (1 * MIB), COMPARE_UNIT_MAX);
  assert_int_equal (compare_pass_unit (64 * MIB), COMPARE_UNIT_MAX);
}

/* A request for a read at 1 MiB of 5 units of 64 KiB and a short sixth
 * (1000 bytes); src gets the same hashes but for the units in differ. */
static void
make_read (struct hash_request *req, uint8_t *src, const char *differ)
{
  memset (req, 0, sizeof *req);
  req->offset = MIB;
  req->unit = 64 * KIB;
  req->length = 5 * 64 * KIB + 1000;
  req->answered = true;
  for (unsigned i = 0; i < 6; i++) {
    memset (req->hashes + i * WIRE_HASH_LEN, 'a' + i, WIRE_HASH_LEN);
    memset (src + i * WIRE_HASH_LEN, 'a' + i, WIRE_HASH_LEN);
  }
  for (const char *p = differ; *p; p++)
    src[(*p - '0') * WIRE_HASH_LEN + WIRE_HASH_LEN - 1] ^= 1;
}

static void
test_runs (void **state)
{
  struct hash_request *req = malloc (sizeof *req);
  uint8_t src[6 * WIRE_HASH_LEN];
  uint64_t end = MIB + 5 * 64 * KIB + 1000;
  bool differs;
  (void) state;

  assert_non_null (req);
  /* All equal: one run to the end. */
  make_read (req, src, "");
  assert_int_equal (compare_run_end (req, src, MIB, end, &differs), end);
  assert_false (differs);
  /* Units 1 and 2 differ, and the short last one. */
  make_read (req, src, "125");
  assert_int_equal (compare_run_end (req, src, MIB, end, &differs), MIB + 64 * KIB);
  assert_false (differs);
  assert_int_equal (compare_run_end (req, src, MIB + 64 * KIB, end, &differs),
                    MIB + 3 * 64 * KIB);
  assert_true (differs);
  assert_int_equal (compare_run_end (req, src, MIB + 3 * 64 * KIB, end, &differs),
                    MIB + 5 * 64 * KIB);
  assert_false (differs);
  assert_int_equal (compare_run_end (req, src, MIB + 5 * 64 * KIB, end, &differs), end);
  assert_true (differs);
  /* A part of an extent starting inside a unit, and ending inside one:
   * the run is cut to the part. */
  assert_int_equal (compare_run_end (req, src, MIB + 100 * KIB, MIB + 150 * KIB,
                                     &differs), MIB + 150 * KIB);
  assert_true (differs);
  assert_int_equal (compare_run_end (req, src, MIB + 10 * KIB, MIB + 100 * KIB,
                                     &differs), MIB + 64 * KIB);
  assert_false (differs);
  free (req);
}

static void
test_window_order (void **state)
{
  struct hash_window *w = malloc (sizeof *w);
  uint8_t hashes[16 * WIRE_HASH_LEN];
  const char *why;
  (void) state;

  assert_non_null (w);
  memset (hashes, 7, sizeof hashes);
  hash_window_reset (w);
  /* A read nobody asked about never waits, and is not compared. */
  assert_false (hash_window_waiting (w, 0, MIB));
  assert_null (hash_window_take (w, 0, MIB));
  hash_window_push (w, 0, MIB, 64 * KIB);
  hash_window_push (w, MIB, MIB, 64 * KIB);
  assert_true (hash_window_waiting (w, 0, MIB));
  /* Only the oldest read waits; the answers must come in order. */
  assert_false (hash_window_waiting (w, MIB, MIB));
  assert_int_equal (hash_window_answer (w, MIB, MIB, 64 * KIB, hashes, &why), -1);
  assert_string_equal (why, "HASHES answers another range than the oldest HASH_REQ");
  assert_int_equal (hash_window_answer (w, 0, MIB, 4 * KIB, hashes, &why), -1);
  assert_int_equal (hash_window_answer (w, 0, MIB, 64 * KIB, hashes, &why), 0);
  assert_false (hash_window_waiting (w, 0, MIB));
  const struct hash_request *r = hash_window_take (w, 0, MIB);
  assert_non_null (r);
  assert_int_equal (r->hashes[15 * WIRE_HASH_LEN], 7);
  assert_true (hash_window_waiting (w, MIB, MIB));
  assert_int_equal (hash_window_answer (w, MIB, MIB, 64 * KIB, hashes, &why), 0);
  assert_int_equal (hash_window_answer (w, 2 * MIB, MIB, 64 * KIB, hashes, &why), -1);
  assert_string_equal (why, "HASHES answers no HASH_REQ");
  assert_non_null (hash_window_take (w, MIB, MIB));
  /* Full after one request per read slot. */
  for (unsigned i = 0; i < HASH_WINDOW_MAX; i++)
    hash_window_push (w, (uint64_t) i * MIB, MIB, 64 * KIB);
  assert_false (hash_window_can_push (w));
  /* A new connection: nothing waits any more. */
  hash_window_reset (w);
  assert_true (hash_window_can_push (w));
  assert_false (hash_window_waiting (w, 0, MIB));
  free (w);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_wanted),
    cmocka_unit_test (test_unit),
    cmocka_unit_test (test_runs),
    cmocka_unit_test (test_window_order),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
