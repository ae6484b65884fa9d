/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the output image's file descriptor and the system calls that
 * change it: open, lock, size, pwrite, hole punching, gradual writeback
 * (sync_file_range) and fdatasync; and pread, to read it back for hashes.  See image_writer.h for the contract.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#include "full_write.h"
#include "image_writer.h"
#include "log.h"

/* Offsets are handed to the kernel as off_t: they must not be cut. */
_Static_assert (sizeof (off_t) == 8, "off_t must be 64 bits");

/* Writing zeroes by hand (the last resort for ZERO) goes through a buffer
 * of this size, allocated the first time it is needed. */
#define ZERO_CHUNK (1024 * 1024)

/* Gradual writeback.  Left alone, the kernel keeps what stm-recv writes
 * dirty in the page cache (up to vm.dirty_background_ratio of memory, often
 * gigabytes) until a SYNC's fdatasync writes it all out at once; when the
 * destination shares a disk with a running guest, the guest's synced writes
 * then queue behind that burst.  Instead, each write's range is handed to
 * the disk as it lands, and once WRITEBACK_WINDOW bytes were written since
 * the last wait, the writer waits for the window before them (by then
 * mostly on disk already, so the wait is short).  What stm-recv has dirty
 * or in flight thus stays under about two windows, and a SYNC finds little
 * left to write.  8 MiB is tens of milliseconds of a disk's work (80 ms at
 * 100 MB/s), and the window waited for had a window's time to get there
 * already, so the wait holds the event loop for less than that; 2 and
 * 32 MiB did no better for a guest on the same disk (docs/performance.md).
 * It can be set at build time (-DWRITEBACK_WINDOW=...; 0 turns gradual
 * writeback off). */
#ifndef WRITEBACK_WINDOW
#define WRITEBACK_WINDOW (8 * 1024 * 1024)
#endif

/* The byte range spanned by the writes of one window: from the lowest
 * offset written to the highest end.  A full pass writes in order, so the
 * span is the window itself; a later pass writes scattered blocks, and the
 * span then covers clean pages too, which the kernel skips (it looks pages
 * up by their dirty and writeback tags, not one by one). */
struct wb_span {
  uint64_t start, end;        /* end == 0: nothing written */
  uint64_t bytes;             /* bytes written into it */
};

struct image_writer {
  char *path;
  int fd;
  bool is_block_device;
  uint64_t size;              /* file size, or the device capacity */
  /* The output's file system (or device) said it cannot punch holes, or
   * cannot zero ranges: do not ask again for every ZERO. */
  bool cannot_punch;
  bool cannot_zero_range;
  void *zeroes;               /* ZERO_CHUNK bytes of zero, or NULL */
  /* This open created the file, and which file it is: a start that
   * fails may remove it (image_writer_discard), and only it. */
  bool created;
  dev_t dev;
  ino_t ino;
  /* Gradual writeback: off when sync_file_range does not work on this
   * output (the kernel or file system cannot do it), in which case
   * everything is left to fdatasync as before. */
  bool no_writeback;
  struct wb_span wb_current;  /* written since the last wait, started */
  struct wb_span wb_previous; /* the window before it: waited for next */
  /* An error the kernel reported for writeback stm-recv waited for.  The
   * kernel reports a writeback error once to each open file: having told
   * sync_file_range, it would not tell the next fdatasync, so the error is
   * kept here and the next image_writer_sync fails with it. */
  int wb_error;
};

/* The capacity of the block device behind fd, or -1 with errno. */
static int
block_device_size (int fd, uint64_t *size)
{
  if (ioctl (fd, BLKGETSIZE64, size) == -1)
    return -1;
  return 0;
}

/* Did sync_file_range fail because it cannot work on this output at all
 * (an old kernel, a file system or file type without writeback)?  Then
 * the writer goes on without it, silently: fdatasync alone is what stm-recv
 * did before, and still makes everything durable. */
static bool
writeback_unsupported (int err)
{
  return err == EINVAL || err == ENOSYS || err == ESPIPE || err == EOPNOTSUPP;
}

/* Call sync_file_range on the span with flags.  An error that says it
 * cannot work here turns gradual writeback off; any other (EIO from a
 * failed writeback, ENOSPC, ENOMEM) is kept for the next sync to report,
 * since it may have been the only report of lost data. */
static void
writeback_range (struct image_writer *w, const struct wb_span *span,
                 unsigned int flags)
{
  if (w->no_writeback || span->end <= span->start)
    return;
  if (sync_file_range (w->fd, (off64_t) span->start,
                       (off64_t) (span->end - span->start), flags) == 0)
    return;
  if (writeback_unsupported (errno))
    w->no_writeback = true;
  else if (w->wb_error == 0)
    w->wb_error = errno;
}

/* Forget the windows: after a sync nothing of them is left to write, and
 * after the file is emptied their pages are gone. */
static void
writeback_reset (struct image_writer *w)
{
  memset (&w->wb_current, 0, sizeof w->wb_current);
  memset (&w->wb_previous, 0, sizeof w->wb_previous);
}

/* [offset, offset+len) was just written: start its writeback, and once a
 * window is full wait for the window before it. */
static void
writeback_written (struct image_writer *w, uint64_t offset, uint64_t len)
{
  struct wb_span range = { .start = offset, .end = offset + len, .bytes = len };
  struct wb_span *cur = &w->wb_current;

  if (WRITEBACK_WINDOW == 0 || w->no_writeback || len == 0)
    return;

  /* Start writing these pages now, without waiting for the I/O.  The
   * call can still sleep, while the device's queue is full, while the
   * block layer throttles writeback, or while the file system allocates
   * blocks for the pages, but not for the writes to complete. */
  writeback_range (w, &range, SYNC_FILE_RANGE_WRITE);

  if (cur->end == 0) {
    cur->start = range.start;
    cur->end = range.end;
  }
  else {
    if (range.start < cur->start)
      cur->start = range.start;
    if (range.end > cur->end)
      cur->end = range.end;
  }
  cur->bytes += len;
  if (cur->bytes < WRITEBACK_WINDOW)
    return;

  /* The window is full.  Wait for the previous one, whose writeback was
   * started a window's worth of writes ago: WAIT_BEFORE lets I/O already
   * in flight finish, WRITE starts pages dirtied again since, WAIT_AFTER
   * waits for those too, so that window is then on disk (but not
   * durable: only fdatasync flushes the disk's cache and the file's
   * metadata).  The current window becomes the previous one. */
  writeback_range (w, &w->wb_previous,
                   SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                   SYNC_FILE_RANGE_WAIT_AFTER);
  w->wb_previous = *cur;
  memset (cur, 0, sizeof *cur);
}

struct image_writer *
image_writer_open (const char *path)
{
  struct image_writer *w;
  struct stat st;

  w = calloc (1, sizeof *w);
  if (w == NULL || (w->path = strdup (path)) == NULL) {
    log_error ("cannot open the output %s: %m", path);
    free (w);
    return NULL;
  }
  w->fd = -1;

  /* Create it only if it does not exist, to know whether we did; an
   * existing output is opened as it is (and if it vanishes in between,
   * created after all). */
  for (int tries = 0; tries < 2 && w->fd == -1; tries++) {
    w->fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd >= 0)
      w->created = true;
    else if (errno == EEXIST)
      w->fd = open (path, O_RDWR | O_CLOEXEC);
    if (w->fd == -1 && errno != ENOENT)
      break;
  }
  if (w->fd == -1) {
    if (errno == EISDIR)
      log_error ("the output %s is a directory: give the path of an image file "
                 "or a block device", path);
    else
      log_error ("cannot open the output %s: %m", path);
    goto fail;
  }
  if (fstat (w->fd, &st) == -1) {
    log_error ("cannot stat the output %s: %m", path);
    goto fail;
  }
  w->dev = st.st_dev;
  w->ino = st.st_ino;
  if (S_ISBLK (st.st_mode)) {
    /* Open it again exclusively: Linux then refuses a device that is
     * mounted or held by device-mapper, LVM, md or another exclusive
     * opener, which stm-recv would otherwise overwrite under its user.
     * (Plain opens, such as --export's nbdkit, still succeed.) */
    int excl = open (path, O_RDWR | O_EXCL | O_CLOEXEC);
    if (excl == -1) {
      if (errno == EBUSY)
        log_error ("the block device %s is in use (mounted, or held by "
                   "device-mapper, LVM, md or another program that opened it "
                   "exclusively): refusing to write to it; nothing was written",
                   path);
      else
        log_error ("cannot open the block device %s exclusively: %m", path);
      goto fail;
    }
    close (w->fd);
    w->fd = excl;
    w->is_block_device = true;
    if (block_device_size (w->fd, &w->size) == -1) {
      log_error ("cannot read the size of the block device %s: %m", path);
      goto fail;
    }
  }
  else if (S_ISREG (st.st_mode))
    w->size = st.st_size;
  else {
    log_error ("the output %s is neither a regular file nor a block device", path);
    goto fail;
  }

  /* Two receivers writing one output would corrupt it silently; the lock
   * turns that mistake into a clear startup error.  It is released when
   * the process exits, however it exits. */
  if (flock (w->fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      log_error ("the output %s is locked by another process "
                 "(another stm-recv writing it?)", path);
    else
      log_error ("cannot lock the output %s: %m", path);
    goto fail;
  }
  return w;

 fail:
  image_writer_discard (w);
  return NULL;
}

int
image_writer_prepare (struct image_writer *w, uint64_t image_size, bool fresh)
{
  assert (image_size <= INT64_MAX);

  if (w->is_block_device) {
    if (block_device_size (w->fd, &w->size) == -1)
      return -1;
    if (w->size < image_size) {
      errno = ENOSPC;
      return -1;
    }
    return 0;
  }

  /* Emptying first drops blocks of whatever the file held before, so a
   * new migration starts from a file that reads as zeroes and allocates
   * only what is written. */
  if (fresh && ftruncate (w->fd, 0) == -1)
    return -1;
  if (fresh)
    writeback_reset (w);
  if (ftruncate (w->fd, (off_t) image_size) == -1)
    return -1;
  w->size = image_size;
  return 0;
}

int
image_writer_write (struct image_writer *w, uint64_t offset,
                    const void *buf, size_t len)
{
  if (full_pwrite (w->fd, buf, len, offset) == -1)
    return -1;
  writeback_written (w, offset, len);
  return 0;
}

int
image_writer_read (struct image_writer *w, uint64_t offset, void *buf, size_t len)
{
  uint8_t *p = buf;

  while (len > 0) {
    ssize_t n = pread (w->fd, p, len, (off_t) offset);

    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1)
      return -1;
    if (n == 0) {
      /* The end of the file: what lies beyond reads as zeroes, as it
       * would once the file is extended to the image's size. */
      memset (p, 0, len);
      return 0;
    }
    p += n;
    offset += (uint64_t) n;
    len -= (size_t) n;
  }
  return 0;
}

/* Did fallocate fail because this file system or device cannot do it at
 * all (as opposed to failing on this range or for lack of space)? */
static bool
fallocate_unsupported (int err)
{
  return err == EOPNOTSUPP || err == ENOSYS;
}

/* The last resort: write zeroes over the range, ZERO_CHUNK at a time. */
static int
write_zeroes (struct image_writer *w, uint64_t offset, uint64_t length)
{
  if (w->zeroes == NULL) {
    w->zeroes = calloc (1, ZERO_CHUNK);
    if (w->zeroes == NULL)
      return -1;
  }
  while (length > 0) {
    size_t n = length < ZERO_CHUNK ? (size_t) length : ZERO_CHUNK;
    if (image_writer_write (w, offset, w->zeroes, n) == -1)
      return -1;
    offset += n;
    length -= n;
  }
  return 0;
}

int
image_writer_zero (struct image_writer *w, uint64_t offset, uint64_t length)
{
  if (length == 0)
    return 0;

  /* Punching keeps a sparse image sparse and is cheap on both files and
   * devices that support it. */
  if (!w->cannot_punch) {
    if (fallocate (w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   (off_t) offset, (off_t) length) == 0)
      return 0;
    if (fallocate_unsupported (errno))
      w->cannot_punch = true;
    else if (errno != EINVAL)   /* EINVAL: not for this range; try others */
      return -1;
  }
  if (!w->cannot_zero_range) {
    if (fallocate (w->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                   (off_t) offset, (off_t) length) == 0)
      return 0;
    if (fallocate_unsupported (errno))
      w->cannot_zero_range = true;
    else if (errno != EINVAL)
      return -1;
  }
  return write_zeroes (w, offset, length);
}

int
image_writer_sync (struct image_writer *w)
{
  int err;

  /* fdatasync stays the only durability promise: gradual writeback only
   * means it finds less to write.  It runs even when a writeback error is
   * pending, so that whatever it can make durable is. */
  if (fdatasync (w->fd) == -1) {
    err = errno;
    w->wb_error = 0;
    errno = err;
    return -1;
  }
  writeback_reset (w);
  if (w->wb_error != 0) {
    errno = w->wb_error;
    w->wb_error = 0;
    return -1;
  }
  return 0;
}

const char *
image_writer_path (const struct image_writer *w)
{
  return w->path;
}

bool
image_writer_is_block_device (const struct image_writer *w)
{
  return w->is_block_device;
}

uint64_t
image_writer_size (const struct image_writer *w)
{
  return w->size;
}

void
image_writer_discard (struct image_writer *w)
{
  struct stat fst, pst;

  if (w == NULL)
    return;
  /* Only a file this open created, still empty, and still the one at
   * the path: never a file stm-recv found there, nor one another process
   * put in its place. */
  if (w->created && w->fd >= 0 && fstat (w->fd, &fst) == 0 && fst.st_size == 0 &&
      lstat (w->path, &pst) == 0 && pst.st_dev == w->dev && pst.st_ino == w->ino &&
      unlink (w->path) == -1)
    log_warning ("cannot remove the empty output %s that this failed start "
                 "created: %m", w->path);
  image_writer_close (w);
}

void
image_writer_close (struct image_writer *w)
{
  if (w == NULL)
    return;
  if (w->fd >= 0)
    close (w->fd);
  free (w->zeroes);
  free (w->path);
  free (w);
}
