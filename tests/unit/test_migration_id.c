/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of stm-send's migration id (sender/migration_id.c): the
 * one-disk derivation must stay what it was (a restarted stm-send of an
 * earlier version's migration resumes), and a group's id must change
 * with any disk's name, instance or size, the disks' order and the
 * destination, and never equal a one-disk id. */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "migration_id.h"

#define INST_A "0123456789abcdef0123456789abcdef"
#define INST_B "fedcba9876543210fedcba9876543210"

static void
group_hex (const struct migration_id_disk *d, size_t n, const char *dest, char *hex)
{
  uint8_t id[WIRE_MIGRATION_ID_LEN];
  assert_int_equal (migration_id_derive_group (d, n, dest, id), 0);
  migration_id_hex (id, hex);
}

static void
test_one_disk_id_is_unchanged (void **state)
{
  (void) state;
  struct migration_id_inputs in = {
    .filter_instance = INST_A, .image_size = 1048576, .dest = "host:10809",
  };
  uint8_t id[WIRE_MIGRATION_ID_LEN];
  char hex[2 * WIRE_MIGRATION_ID_LEN + 1];
  assert_int_equal (migration_id_derive (&in, id), 0);
  migration_id_hex (id, hex);
  /* SHA-256 of "stm migration id v2\ninstance=...\nsize=1048576\n
   * dest=10:host:10809\n", first 16 bytes: what every earlier stm-send
   * derived (computed independently with sha256sum). */
  assert_string_equal (hex, "d578a5ee762b12e661fe1073958a4743");
}

static void
test_group_id_depends_on_everything (void **state)
{
  (void) state;
  struct migration_id_disk g[2] = {
    { .name = "sys", .filter_instance = INST_A, .image_size = 1048576 },
    { .name = "data", .filter_instance = INST_B, .image_size = 65536 },
  };
  char base[33], other[33], again[33];

  group_hex (g, 2, "host:10809", base);
  group_hex (g, 2, "host:10809", again);
  assert_string_equal (base, again);

  g[1].name = "data2";
  group_hex (g, 2, "host:10809", other);
  assert_string_not_equal (base, other);
  g[1].name = "data";

  g[1].filter_instance = INST_A;
  group_hex (g, 2, "host:10809", other);
  assert_string_not_equal (base, other);
  g[1].filter_instance = INST_B;

  g[0].image_size++;
  group_hex (g, 2, "host:10809", other);
  assert_string_not_equal (base, other);
  g[0].image_size--;

  group_hex (g, 2, "host:10810", other);
  assert_string_not_equal (base, other);

  struct migration_id_disk swapped[2] = { g[1], g[0] };
  group_hex (swapped, 2, "host:10809", other);
  assert_string_not_equal (base, other);

  group_hex (g, 1, "host:10809", other);
  assert_string_not_equal (base, other);
}

static void
test_named_disk_alone_is_not_the_one_disk_form (void **state)
{
  (void) state;
  struct migration_id_disk g = {
    .name = "sys", .filter_instance = INST_A, .image_size = 1048576,
  };
  char hex[33];
  group_hex (&g, 1, "host:10809", hex);
  assert_string_not_equal (hex, "d578a5ee762b12e661fe1073958a4743");
}

static void
test_group_refuses_bad_input (void **state)
{
  (void) state;
  struct migration_id_disk g = {
    .name = "sys", .filter_instance = "not-hex", .image_size = 1,
  };
  uint8_t id[WIRE_MIGRATION_ID_LEN];
  assert_int_equal (migration_id_derive_group (&g, 1, "h:1", id), -1);
  g.filter_instance = INST_A;
  assert_int_equal (migration_id_derive_group (&g, 0, "h:1", id), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_one_disk_id_is_unchanged),
    cmocka_unit_test (test_group_id_depends_on_everything),
    cmocka_unit_test (test_named_disk_alone_is_not_the_one_disk_form),
    cmocka_unit_test (test_group_refuses_bad_input),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
