/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: reading the state file and replacing it atomically (write a
 * temporary file, fsync, rename, fsync the directory).  See state_file.h.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "full_write.h"
#include "log.h"
#include "state_file.h"

#define TMP_SUFFIX ".tmp"

struct state_file {
  char *path;              /* IMAGE.stm-state */
  char *tmp_path;          /* IMAGE.stm-state.tmp */
  char *dir;               /* the directory both live in */
  int dir_fd;              /* open on dir, for fsync after a rename */
};

/* The directory part of path ("." when there is none). */
static char *
directory_of (const char *path)
{
  const char *slash = strrchr (path, '/');

  if (slash == NULL)
    return strdup (".");
  if (slash == path)
    return strdup ("/");
  return strndup (path, (size_t) (slash - path));
}

struct state_file *
state_file_open (const char *output_path)
{
  struct state_file *sf;

  sf = calloc (1, sizeof *sf);
  if (sf == NULL)
    goto nomem;
  sf->dir_fd = -1;
  if (asprintf (&sf->path, "%s%s", output_path, STATE_FILE_SUFFIX) == -1) {
    sf->path = NULL;
    goto nomem;
  }
  if (asprintf (&sf->tmp_path, "%s%s", sf->path, TMP_SUFFIX) == -1) {
    sf->tmp_path = NULL;
    goto nomem;
  }
  sf->dir = directory_of (output_path);
  if (sf->dir == NULL)
    goto nomem;

  sf->dir_fd = open (sf->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sf->dir_fd == -1) {
    log_error ("cannot open the directory %s of the output %s (for its state "
               "file): %m", sf->dir, output_path);
    state_file_close (sf);
    return NULL;
  }
  return sf;

 nomem:
  log_error ("cannot prepare the state file of the output %s: %m", output_path);
  state_file_close (sf);
  return NULL;
}

int
state_file_load (struct state_file *sf, enum state_found *found,
                 struct migration_record *r, char why[STATE_WHY_MAX])
{
  /* Room for one byte more than a valid file has, to tell "too long". */
  char text[STATE_TEXT_MAX];
  struct stat st;
  size_t len = 0;
  int fd, saved;

  why[0] = '\0';
  fd = open (sf->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd == -1) {
    if (errno == ENOENT) {
      *found = STATE_ABSENT;
      return 0;
    }
    if (errno == ELOOP) {
      /* A symbolic link where stm-recv writes regular files: the rename
       * would replace the link, not what it points to.  Not ours. */
      *found = STATE_INVALID;
      snprintf (why, STATE_WHY_MAX, "it is a symbolic link");
      return 0;
    }
    return -1;
  }
  if (fstat (fd, &st) == -1) {
    saved = errno;
    close (fd);
    errno = saved;
    return -1;
  }
  if (!S_ISREG (st.st_mode)) {
    close (fd);
    *found = STATE_INVALID;
    snprintf (why, STATE_WHY_MAX, "it is not a regular file");
    return 0;
  }

  while (len < sizeof text) {
    ssize_t n = read (fd, text + len, sizeof text - len);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      saved = errno;
      close (fd);
      errno = saved;
      return -1;
    }
    if (n == 0)
      break;
    len += (size_t) n;
  }
  close (fd);

  /* A text that fills the buffer is too long: state_parse says so. */
  if (state_parse (text, len, r, why) == -1)
    *found = STATE_INVALID;
  else
    *found = STATE_VALID;
  return 0;
}

int
state_file_store (struct state_file *sf, const struct migration_record *r,
                  const char **step)
{
  char text[STATE_TEXT_MAX];
  size_t len;
  int fd, saved;

  *step = "writing";
  len = state_format (r, text);

  /* O_TRUNC: a temporary file left by a crash is simply overwritten. */
  fd = open (sf->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
             0600);
  if (fd == -1)
    return -1;
  /* fsync rather than fdatasync: the new file's size and existence are
   * metadata that must be on disk before the rename makes it the state. */
  if (full_pwrite (fd, text, len, 0) == -1 ||
      (*step = "syncing", fsync (fd) == -1)) {
    saved = errno;
    close (fd);
    (void) unlink (sf->tmp_path);
    errno = saved;
    return -1;
  }
  if (close (fd) == -1) {
    saved = errno;
    (void) unlink (sf->tmp_path);
    errno = saved;
    return -1;
  }
  *step = "renaming";
  if (rename (sf->tmp_path, sf->path) == -1) {
    saved = errno;
    (void) unlink (sf->tmp_path);
    errno = saved;
    return -1;
  }
  /* The rename is only durable once the directory is. */
  *step = "syncing the directory of";
  if (fsync (sf->dir_fd) == -1)
    return -1;
  return 0;
}

int
state_file_remove (struct state_file *sf)
{
  if (unlink (sf->path) == -1 && errno != ENOENT)
    return -1;
  return fsync (sf->dir_fd);
}

const char *
state_file_path (const struct state_file *sf)
{
  return sf->path;
}

void
state_file_close (struct state_file *sf)
{
  if (sf == NULL)
    return;
  if (sf->dir_fd >= 0)
    close (sf->dir_fd);
  free (sf->path);
  free (sf->tmp_path);
  free (sf->dir);
  free (sf);
}
