/* stm-recv: the output image's file descriptor and the system calls that
 * change it: open, lock, size, pwrite, hole punching, fdatasync.  See
 * image_writer.h for the contract.
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
};

/* The capacity of the block device behind fd, or -1 with errno. */
static int
block_device_size (int fd, uint64_t *size)
{
  if (ioctl (fd, BLKGETSIZE64, size) == -1)
    return -1;
  return 0;
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
  if (ftruncate (w->fd, (off_t) image_size) == -1)
    return -1;
  w->size = image_size;
  return 0;
}

int
image_writer_write (struct image_writer *w, uint64_t offset,
                    const void *buf, size_t len)
{
  return full_pwrite (w->fd, buf, len, offset);
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
  return fdatasync (w->fd);
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
