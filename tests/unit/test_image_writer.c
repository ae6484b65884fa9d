/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of stm-recv's gradual writeback (receiver/image_writer.c)
 * on a real temporary file, with sync_file_range and fdatasync replaced by
 * recording stand-ins (the linker's --wrap).  They check what the kernel
 * cannot be made to show on demand: that every write starts its own
 * writeback and each full window waits for the one before it; that an
 * output where sync_file_range does not work silently falls back to
 * fdatasync alone; and that a writeback error a wait reports is not lost
 * but returned by the next sync, since fdatasync would not see it again.
 * And that the output reads back what was written (hash comparison).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "image_writer.h"

#define MiB (1024 * 1024)
#define WAIT_ALL (SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | \
                  SYNC_FILE_RANGE_WAIT_AFTER)

/* What the stand-ins saw, and what they are told to answer. */
struct call { off64_t offset, nbytes; unsigned int flags; };
static struct call calls[64];
static size_t ncalls;
static int sfr_errno;           /* sync_file_range fails with this, if set */
static bool sfr_fail_waits_only;
static int fdatasyncs;

int __wrap_sync_file_range (int fd, off64_t offset, off64_t nbytes,
                            unsigned int flags);
int __wrap_fdatasync (int fd);

int
__wrap_sync_file_range (int fd, off64_t offset, off64_t nbytes,
                        unsigned int flags)
{
  (void) fd;
  if (ncalls < sizeof calls / sizeof calls[0])
    calls[ncalls] = (struct call) { offset, nbytes, flags };
  ncalls++;
  if (sfr_errno != 0 && (!sfr_fail_waits_only || flags != SYNC_FILE_RANGE_WRITE)) {
    errno = sfr_errno;
    return -1;
  }
  return 0;
}

int
__wrap_fdatasync (int fd)
{
  (void) fd;
  fdatasyncs++;
  return 0;
}

static char path[] = "/tmp/stm-test-image-writer.XXXXXX";
static char *buf;               /* 4 MiB to write */

static int
setup (void **state)
{
  int fd = mkstemp (path);
  (void) state;
  if (fd == -1)
    return -1;
  close (fd);
  buf = calloc (1, 4 * MiB);
  ncalls = 0;
  sfr_errno = 0;
  sfr_fail_waits_only = false;
  fdatasyncs = 0;
  return buf == NULL ? -1 : 0;
}

static int
teardown (void **state)
{
  (void) state;
  unlink (path);
  strcpy (path + strlen (path) - 6, "XXXXXX");
  free (buf);
  return 0;
}

static struct image_writer *
open_prepared (void)
{
  struct image_writer *w = image_writer_open (path);
  assert_non_null (w);
  assert_int_equal (image_writer_prepare (w, 64 * MiB, true), 0);
  return w;
}

static void
expect_call (size_t i, off64_t offset, off64_t nbytes, unsigned int flags)
{
  assert_true (i < ncalls);
  assert_int_equal (calls[i].offset, offset);
  assert_int_equal (calls[i].nbytes, nbytes);
  assert_int_equal (calls[i].flags, flags);
}

/* Writes of 4 MiB in order: each starts its writeback; the fourth fills
 * the second 8 MiB window, which waits for the first, and so on. */
static void
test_windows (void **state)
{
  struct image_writer *w = open_prepared ();
  (void) state;

  for (int i = 0; i < 6; i++)
    assert_int_equal (image_writer_write (w, (uint64_t) i * 4 * MiB, buf, 4 * MiB), 0);
  assert_int_equal (ncalls, 8);
  expect_call (0, 0, 4 * MiB, SYNC_FILE_RANGE_WRITE);
  expect_call (1, 4 * MiB, 4 * MiB, SYNC_FILE_RANGE_WRITE);
  expect_call (2, 8 * MiB, 4 * MiB, SYNC_FILE_RANGE_WRITE);
  expect_call (3, 12 * MiB, 4 * MiB, SYNC_FILE_RANGE_WRITE);
  expect_call (4, 0, 8 * MiB, WAIT_ALL);
  expect_call (5, 16 * MiB, 4 * MiB, SYNC_FILE_RANGE_WRITE);
  expect_call (6, 20 * MiB, 4 * MiB, SYNC_FILE_RANGE_WRITE);
  expect_call (7, 8 * MiB, 8 * MiB, WAIT_ALL);

  /* A sync leaves nothing to wait for: the next wait comes two windows
   * later again, and covers only what was written after the sync. */
  assert_int_equal (image_writer_sync (w), 0);
  assert_int_equal (fdatasyncs, 1);
  ncalls = 0;
  for (int i = 0; i < 4; i++)
    assert_int_equal (image_writer_write (w, (uint64_t) (15 - i) * 4 * MiB, buf, 4 * MiB), 0);
  assert_int_equal (ncalls, 5);
  /* Written backwards: the window's span is from its lowest offset to
   * its highest end. */
  expect_call (4, 56 * MiB, 8 * MiB, WAIT_ALL);
  image_writer_close (w);
}

/* Scattered writes: a window's span covers them all, gaps included. */
static void
test_scattered_span (void **state)
{
  static const uint64_t at[] = { 2 * MiB, 40 * MiB, 4 * MiB, 40 * MiB };
  struct image_writer *w = open_prepared ();
  (void) state;

  for (int i = 0; i < 4; i++)
    assert_int_equal (image_writer_write (w, at[i], buf, 4 * MiB), 0);
  assert_int_equal (ncalls, 5);
  expect_call (4, 2 * MiB, 42 * MiB, WAIT_ALL);
  image_writer_close (w);
}

/* An output where sync_file_range does not work: one try, then silence;
 * writes and syncs work as before. */
static void
test_unsupported (void **state)
{
  static const int errs[] = { EINVAL, ENOSYS, ESPIPE, EOPNOTSUPP };
  (void) state;

  for (size_t e = 0; e < sizeof errs / sizeof errs[0]; e++) {
    struct image_writer *w = open_prepared ();
    ncalls = 0;
    fdatasyncs = 0;
    sfr_errno = errs[e];
    for (int i = 0; i < 8; i++)
      assert_int_equal (image_writer_write (w, (uint64_t) i * 4 * MiB, buf, 4 * MiB), 0);
    assert_int_equal (ncalls, 1);
    assert_int_equal (image_writer_sync (w), 0);
    assert_int_equal (fdatasyncs, 1);
    image_writer_close (w);
  }
}

/* A wait that reports EIO: the write goes on (the error concerns earlier
 * data), the next sync fails with EIO although fdatasync succeeds, and
 * the sync after it succeeds (as fdatasync reports an error once). */
static void
test_error_kept_for_sync (void **state)
{
  struct image_writer *w = open_prepared ();
  (void) state;

  sfr_errno = EIO;
  sfr_fail_waits_only = true;
  for (int i = 0; i < 6; i++)
    assert_int_equal (image_writer_write (w, (uint64_t) i * 4 * MiB, buf, 4 * MiB), 0);
  errno = 0;
  assert_int_equal (image_writer_sync (w), -1);
  assert_int_equal (errno, EIO);
  assert_int_equal (fdatasyncs, 1);
  sfr_errno = 0;
  assert_int_equal (image_writer_sync (w), 0);
  /* Gradual writeback stays on after an I/O error. */
  ncalls = 0;
  assert_int_equal (image_writer_write (w, 0, buf, 4 * MiB), 0);
  assert_int_equal (ncalls, 1);
  image_writer_close (w);
}

/* Reading back (for hash comparison): what was written, with a prepare
 * that is not fresh keeping it and a fresh one emptying it; and bytes
 * past the file's end (cut shorter behind the writer's back) as zeroes. */
static void
test_read_back (void **state)
{
  struct image_writer *w = open_prepared ();
  char *back = malloc (2 * MiB);
  (void) state;

  assert_non_null (back);
  memset (buf, 0xa5, MiB);
  assert_int_equal (image_writer_write (w, 3 * MiB, buf, MiB), 0);
  assert_int_equal (image_writer_read (w, 3 * MiB, back, MiB), 0);
  assert_memory_equal (back, buf, MiB);
  /* Kept across a resize that is not fresh, up to the new size. */
  assert_int_equal (image_writer_prepare (w, 80 * MiB, false), 0);
  assert_int_equal (image_writer_read (w, 3 * MiB - 4096, back, 8192), 0);
  for (int i = 0; i < 4096; i++)
    assert_int_equal (back[i], 0);
  assert_memory_equal (back + 4096, buf, 4096);
  /* The file ends in the middle of the range: the rest reads as zeroes. */
  assert_int_equal (truncate (path, (off_t) (3 * MiB + 512 * 1024)), 0);
  memset (back, 0x11, 2 * MiB);
  assert_int_equal (image_writer_read (w, 3 * MiB, back, 2 * MiB), 0);
  assert_memory_equal (back, buf, 512 * 1024);
  for (size_t i = 512 * 1024; i < 2 * MiB; i++)
    assert_int_equal (back[i], 0);
  /* Fresh: nothing from before survives. */
  assert_int_equal (image_writer_prepare (w, 64 * MiB, true), 0);
  assert_int_equal (image_writer_read (w, 3 * MiB, back, MiB), 0);
  for (size_t i = 0; i < MiB; i++)
    assert_int_equal (back[i], 0);
  free (back);
  image_writer_close (w);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_windows, setup, teardown),
    cmocka_unit_test_setup_teardown (test_scattered_span, setup, teardown),
    cmocka_unit_test_setup_teardown (test_unsupported, setup, teardown),
    cmocka_unit_test_setup_teardown (test_error_kept_for_sync, setup, teardown),
    cmocka_unit_test_setup_teardown (test_read_back, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
