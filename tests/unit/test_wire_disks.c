/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the wire format's several-disk parts: the HELLO disk
 * table (WIRE_FEATURE_DISKS), the header's disk index on DATA and ZERO,
 * and the EXPORT message.  Round trips check the bytes on the wire as well
 * as the decoded fields; the hostile inputs check that each broken rule is
 * refused with a reason that names it.  The one-disk format is tested in
 * test_wire.c.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

#define MIB (1024u * 1024)

static void
be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static void
be16 (uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t) (v >> 8);
  p[1] = (uint8_t) v;
}

/* A two-disk HELLO: "root" of 8 MiB in 64 KiB blocks, "data-1" of 1 MiB
 * in 4 KiB blocks. */
static void
two_disk_hello (struct wire_hello *h)
{
  size_t i;

  memset (h, 0, sizeof *h);
  for (i = 0; i < WIRE_MIGRATION_ID_LEN; i++)
    h->migration_id[i] = (uint8_t) (0x10 + i);
  h->image_size = 8 * MIB;
  h->block_size = 65536;
  h->features = WIRE_FEATURE_DISKS;
  h->ndisks = 2;
  h->disks[0] = (struct wire_hello_disk) { 8 * MIB, 65536, 4, "root" };
  h->disks[1] = (struct wire_hello_disk) { 1 * MIB, 4096, 6, "data-1" };
}

/* Decode a heap copy of exactly len bytes, so ASan sees over-reads.  The
 * message's pointers are not used after the copy is freed. */
static enum wire_decode_result
decode_copy (const uint8_t *buf, size_t len, const struct wire_disks *d,
             struct wire_msg *msg, const char **why)
{
  uint8_t *copy = malloc (len ? len : 1);
  size_t consumed;
  enum wire_decode_result r;

  assert_non_null (copy);
  memcpy (copy, buf, len);
  r = wire_decode (copy, len, d, msg, &consumed, why);
  if (r == WIRE_DECODE_OK)
    assert_int_equal (consumed, len);
  free (copy);
  return r;
}

static void
expect_refused (const uint8_t *buf, size_t len, const struct wire_disks *d,
                const char *word)
{
  struct wire_msg msg;
  const char *why = NULL;

  assert_int_equal (decode_copy (buf, len, d, &msg, &why), WIRE_DECODE_ERROR);
  assert_non_null (why);
  if (strstr (why, word) == NULL)
    fail_msg ("reason \"%s\" does not mention \"%s\"", why, word);
}

static void
test_hello_table_round_trip (void **state)
{
  uint8_t buf[WIRE_ENCODE_HELLO_MAX];
  struct wire_hello h;
  struct wire_msg msg;
  struct wire_disks d;
  size_t consumed, n;
  const char *why;

  two_disk_hello (&h);
  n = wire_encode_hello (buf, &h);
  /* 32 fixed + 4 count + (14 + 4) + (14 + 6). */
  assert_int_equal (n, WIRE_HEADER_SIZE + 32 + 4 + 18 + 20);
  /* The bytes of the table: count, then disk 0's size, block, name. */
  assert_memory_equal (buf + WIRE_HEADER_SIZE + 32, "\0\0\0\2", 4);
  assert_memory_equal (buf + WIRE_HEADER_SIZE + 36,
                       "\0\0\0\0\0\x80\0\0" "\0\1\0\0" "\0\4" "root", 18);
  assert_int_equal (wire_decode (buf, n, NULL, &msg, &consumed, &why),
                    WIRE_DECODE_OK);
  assert_int_equal (consumed, n);
  assert_int_equal (msg.u.hello.features, WIRE_FEATURE_DISKS);
  assert_int_equal (msg.u.hello.ndisks, 2);
  assert_true (msg.u.hello.disks[1].size == 1 * MIB);
  assert_int_equal (msg.u.hello.disks[1].block_size, 4096);
  assert_int_equal (msg.u.hello.disks[1].name_len, 6);
  assert_memory_equal (msg.u.hello.disks[1].name, "data-1", 6);
  wire_disks_from_hello (&d, &msg.u.hello);
  assert_int_equal (d.count, 2);
  assert_true (d.size[0] == 8 * MIB && d.size[1] == 1 * MIB);
}

/* Without the feature a HELLO decodes as one unnamed disk. */
static void
test_hello_plain_is_one_disk (void **state)
{
  uint8_t buf[WIRE_ENCODE_HELLO_MAX];
  struct wire_hello h;
  struct wire_msg msg;
  const char *why;
  size_t n;

  two_disk_hello (&h);
  h.features = 0;
  n = wire_encode_hello (buf, &h);
  assert_int_equal (n, WIRE_HEADER_SIZE + 32);
  assert_int_equal (decode_copy (buf, n, NULL, &msg, &why), WIRE_DECODE_OK);
  assert_int_equal (msg.u.hello.ndisks, 1);
  assert_int_equal (msg.u.hello.disks[0].name_len, 0);
  assert_true (msg.u.hello.disks[0].size == 8 * MIB);
  /* A plain HELLO of more than 32 bytes is refused, once it is whole. */
  be32 (buf + 8, 33);
  buf[n] = 0;
  expect_refused (buf, n + 1, NULL, "32 bytes");
}

/* The largest table fits WIRE_ENCODE_HELLO_MAX and decodes. */
static void
test_hello_table_largest (void **state)
{
  uint8_t buf[WIRE_ENCODE_HELLO_MAX];
  char names[WIRE_MAX_DISKS][WIRE_MAX_DISK_NAME];
  struct wire_hello h;
  struct wire_msg msg;
  const char *why;
  size_t n, i;

  two_disk_hello (&h);
  h.ndisks = WIRE_MAX_DISKS;
  for (i = 0; i < WIRE_MAX_DISKS; i++) {
    memset (names[i], 'a' + (int) i, WIRE_MAX_DISK_NAME);
    h.disks[i] = (struct wire_hello_disk) { 8 * MIB, 65536, WIRE_MAX_DISK_NAME,
                                            names[i] };
  }
  n = wire_encode_hello (buf, &h);
  assert_int_equal (n, WIRE_ENCODE_HELLO_MAX);
  assert_int_equal (decode_copy (buf, n, NULL, &msg, &why), WIRE_DECODE_OK);
  assert_int_equal (msg.u.hello.ndisks, WIRE_MAX_DISKS);
  /* One byte more than the largest table is refused from the header. */
  be32 (buf + 8, (uint32_t) (n - WIRE_HEADER_SIZE + 1));
  expect_refused (buf, WIRE_HEADER_SIZE, NULL, "largest disk table");
}

/* Encode the two-disk HELLO, let edit break it, expect word in the reason. */
static void
hello_broken (void (*edit) (uint8_t *payload, size_t *plen), const char *word)
{
  uint8_t buf[WIRE_ENCODE_HELLO_MAX + 64];
  struct wire_hello h;
  size_t n, plen;

  two_disk_hello (&h);
  n = wire_encode_hello (buf, &h);
  plen = n - WIRE_HEADER_SIZE;
  edit (buf + WIRE_HEADER_SIZE, &plen);
  be32 (buf + 8, (uint32_t) plen);
  expect_refused (buf, WIRE_HEADER_SIZE + plen, NULL, word);
}

/* Payload offsets in the two-disk HELLO. */
#define T_COUNT 32
#define T_DISK0 36
#define T_DISK1 (36 + 18)

static void e_count0 (uint8_t *p, size_t *l) { (void) l; be32 (p + T_COUNT, 0); }
static void e_count17 (uint8_t *p, size_t *l) { (void) l; be32 (p + T_COUNT, 17); }
static void e_count3 (uint8_t *p, size_t *l) { (void) l; be32 (p + T_COUNT, 3); }
static void e_no_count (uint8_t *p, size_t *l) { (void) p; *l = 34; }
static void e_cut_entry (uint8_t *p, size_t *l) { (void) p; *l = T_DISK1 + 10; }
static void e_cut_name (uint8_t *p, size_t *l) { (void) p; *l = T_DISK1 + 16; }
static void e_trailing (uint8_t *p, size_t *l) { p[*l] = 'x'; (*l)++; }
static void e_long_name (uint8_t *p, size_t *l) { (void) l; be16 (p + T_DISK1 + 12, 200); }
static void e_empty_name (uint8_t *p, size_t *l)
{
  /* Disk 1's name made empty: its 6 bytes become trailing bytes, so
   * drop them too. */
  be16 (p + T_DISK1 + 12, 0);
  *l -= 6;
}
static void e_bad_char (uint8_t *p, size_t *l) { (void) l; p[T_DISK1 + 14] = '/'; }
static void e_space (uint8_t *p, size_t *l) { (void) l; p[T_DISK1 + 14] = ' '; }
static void e_dup (uint8_t *p, size_t *l)
{
  /* Disk 1 named "root" too ("data-1" cut to 4 bytes). */
  be16 (p + T_DISK1 + 12, 4);
  memcpy (p + T_DISK1 + 14, "root", 4);
  *l -= 2;
}
static void e_size0 (uint8_t *p, size_t *l) { (void) l; memset (p + T_DISK1, 0, 8); }
static void e_size_huge (uint8_t *p, size_t *l) { (void) l; memset (p + T_DISK1, 0xff, 8); }
static void e_block (uint8_t *p, size_t *l) { (void) l; be32 (p + T_DISK1 + 8, 6144); }
static void e_disk0_size (uint8_t *p, size_t *l) { (void) l; p[T_DISK0 + 7] = 1; }
static void e_disk0_block (uint8_t *p, size_t *l) { (void) l; be32 (p + T_DISK0 + 8, 4096); }
static void e_unknown_bit (uint8_t *p, size_t *l) { (void) l; be32 (p + 28, WIRE_FEATURE_DISKS | 0x100); }

static void
test_hello_table_hostile (void **state)
{
  hello_broken (e_count0, "disk count");
  hello_broken (e_count17, "disk count");
  hello_broken (e_count3, "ends inside a disk's entry");
  hello_broken (e_no_count, "no disk count");
  hello_broken (e_cut_entry, "ends inside a disk's entry");
  hello_broken (e_cut_name, "ends inside a disk's name");
  hello_broken (e_trailing, "bytes after its disk table");
  hello_broken (e_long_name, "ends inside a disk's name");
  hello_broken (e_empty_name, "disk name");
  hello_broken (e_bad_char, "disk name");
  hello_broken (e_space, "disk name");
  hello_broken (e_dup, "same disk twice");
  hello_broken (e_size0, "empty image");
  hello_broken (e_size_huge, "2^63-1");
  hello_broken (e_block, "block size");
  hello_broken (e_disk0_size, "first disk");
  hello_broken (e_disk0_block, "first disk");
  hello_broken (e_unknown_bit, "feature bits");
}

static void
test_disk_name_ok (void **state)
{
  char long_name[WIRE_MAX_DISK_NAME + 1];

  assert_true (wire_disk_name_ok ("a", 1));
  assert_true (wire_disk_name_ok ("vda.qcow-2_x", 12));
  assert_false (wire_disk_name_ok ("", 0));
  assert_false (wire_disk_name_ok ("a/b", 3));
  assert_false (wire_disk_name_ok ("a=b", 3));
  assert_false (wire_disk_name_ok ("..", 2));
  assert_false (wire_disk_name_ok (".a", 2));
  assert_false (wire_disk_name_ok ("-a", 2));
  assert_true (wire_disk_name_ok ("a.", 2));
  assert_false (wire_disk_name_ok ("a\0b", 3));
  assert_false (wire_disk_name_ok ("\xc3\xa9", 2));
  memset (long_name, 'x', sizeof long_name);
  assert_true (wire_disk_name_ok (long_name, WIRE_MAX_DISK_NAME));
  assert_false (wire_disk_name_ok (long_name, WIRE_MAX_DISK_NAME + 1));
}

/* DATA and ZERO carry their disk in the header and are bounded by that
 * disk's size. */
static void
test_disk_index (void **state)
{
  uint8_t buf[WIRE_ENCODE_MAX + 4096];
  struct wire_disks d = { .count = 2, .size = { 8 * MIB, 1 * MIB } };
  struct wire_disks none = { .count = 0 };
  struct wire_msg msg;
  const char *why;
  size_t n;

  n = wire_encode_disk_data_header (buf, 1, 1 * MIB - 4096, 4096);
  memset (buf + n, 0x5a, 4096);
  n += 4096;
  assert_memory_equal (buf + 12, "\0\0\0\1", 4);
  assert_int_equal (decode_copy (buf, n, &d, &msg, &why), WIRE_DECODE_OK);
  assert_int_equal (msg.disk, 1);
  assert_true (msg.u.data.offset == 1 * MIB - 4096);
  /* Past disk 1's end though inside disk 0's. */
  n = wire_encode_disk_data_header (buf, 1, 1 * MIB, 4096);
  expect_refused (buf, n, &d, "outside the image");
  /* The header alone refuses a disk beyond the table, and any disk
   * before HELLO. */
  n = wire_encode_disk_data_header (buf, 2, 0, 4096);
  expect_refused (buf, WIRE_HEADER_SIZE, &d, "did not announce");
  expect_refused (buf, WIRE_HEADER_SIZE, &none, "before HELLO");
  expect_refused (buf, WIRE_HEADER_SIZE, NULL, "before HELLO");
  be32 (buf + 12, UINT32_MAX);
  expect_refused (buf, WIRE_HEADER_SIZE, &d, "did not announce");

  n = wire_encode_disk_zero (buf, 1, 0, 1 * MIB);
  assert_int_equal (decode_copy (buf, n, &d, &msg, &why), WIRE_DECODE_OK);
  assert_int_equal (msg.disk, 1);
  n = wire_encode_disk_zero (buf, 1, 0, 1 * MIB + 1);
  expect_refused (buf, n, &d, "outside the image");
  n = wire_encode_disk_zero (buf, 0, 0, 8 * MIB);
  assert_int_equal (decode_copy (buf, n, &d, &msg, &why), WIRE_DECODE_OK);
  assert_int_equal (msg.disk, 0);
  /* The one-disk encoders send disk 0: today's bytes. */
  n = wire_encode_zero (buf, 0, 4096);
  assert_memory_equal (buf + 12, "\0\0\0\0", 4);
}

/* Every message that is for no disk must say disk 0. */
static void
test_disk_index_elsewhere (void **state)
{
  uint8_t buf[WIRE_ENCODE_TEXT_MAX];
  struct wire_disks d = { .count = 2, .size = { 8 * MIB, 1 * MIB } };
  size_t n;

  n = wire_encode_sync (buf, 3);
  be32 (buf + 12, 1);
  expect_refused (buf, n, &d, "for no disk");
  n = wire_encode_commit (buf, 3);
  be32 (buf + 12, 1);
  expect_refused (buf, n, &d, "for no disk");
  n = wire_encode_committed (buf, "nbd://h/x");
  be32 (buf + 12, 1);
  expect_refused (buf, n, &d, "for no disk");
  n = wire_encode_keepalive (buf);
  be32 (buf + 12, 0x80000000u);
  expect_refused (buf, n, &d, "for no disk");
}

static void
test_export (void **state)
{
  uint8_t buf[WIRE_ENCODE_TEXT_MAX];
  struct wire_disks d = { .count = 2, .size = { 8 * MIB, 1 * MIB } };
  const char *uri = "nbd://192.0.2.1:10810/data-1";
  struct wire_msg msg;
  const char *why;
  size_t consumed, n;

  n = wire_encode_export (buf, 1, uri);
  assert_int_equal (n, WIRE_HEADER_SIZE + 4 + strlen (uri));
  assert_memory_equal (buf + 4, "\0\1\0\x10", 4);      /* version, type 16 */
  assert_int_equal (wire_decode (buf, n, &d, &msg, &consumed, &why),
                    WIRE_DECODE_OK);
  assert_int_equal (msg.type, WIRE_EXPORT);
  assert_int_equal (msg.disk, 1);
  assert_int_equal (msg.u.export_uri.text_len, strlen (uri));
  assert_memory_equal (msg.u.export_uri.text, uri, strlen (uri));
  assert_string_equal (wire_type_name (WIRE_EXPORT), "EXPORT");

  /* A disk not in the table, or no table yet. */
  n = wire_encode_export (buf, 1, uri);
  be32 (buf + 12, 2);
  expect_refused (buf, n, &d, "did not announce");
  be32 (buf + 12, 0);
  expect_refused (buf, n, NULL, "before HELLO");
  /* Empty, mismatched length, control character. */
  be32 (buf + 8, 4);
  be32 (buf + WIRE_HEADER_SIZE, 0);
  expect_refused (buf, WIRE_HEADER_SIZE + 4, &d, "too short");
  n = wire_encode_export (buf, 0, uri);
  be32 (buf + WIRE_HEADER_SIZE, 3);
  expect_refused (buf, n, &d, "does not match");
  n = wire_encode_export (buf, 0, uri);
  buf[n - 1] = '\n';
  expect_refused (buf, n, &d, "control character");
  /* Longer than the text limit, from the header alone. */
  be32 (buf + 8, 4 + WIRE_MAX_TEXT + 1);
  expect_refused (buf, WIRE_HEADER_SIZE, &d, "1024-byte");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hello_table_round_trip),
    cmocka_unit_test (test_hello_plain_is_one_disk),
    cmocka_unit_test (test_hello_table_largest),
    cmocka_unit_test (test_hello_table_hostile),
    cmocka_unit_test (test_disk_name_ok),
    cmocka_unit_test (test_disk_index),
    cmocka_unit_test (test_disk_index_elsewhere),
    cmocka_unit_test (test_export),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
