/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: making way for a listening Unix socket (unix_socket.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>

#include "unix_socket.h"

int
unix_socket_clear_stale (const struct sockaddr_un *addr, bool *removed,
                         char *why, size_t whylen)
{
  const char *path = addr->sun_path;
  struct stat sb;
  int probe, r;

  *removed = false;
  if (lstat (path, &sb) == -1) {
    if (errno == ENOENT)
      return 0;
    snprintf (why, whylen, "cannot inspect the path: %s", strerror (errno));
    return -1;
  }
  if (!S_ISSOCK (sb.st_mode)) {
    snprintf (why, whylen, "exists and is not a socket; refusing to replace it");
    return -1;
  }

  probe = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe == -1) {
    snprintf (why, whylen, "socket: %s", strerror (errno));
    return -1;
  }
  r = connect (probe, (const struct sockaddr *) addr, sizeof *addr);
  if (r == 0 || errno == EAGAIN) {
    /* EAGAIN: a full backlog, so somebody is listening. */
    close (probe);
    snprintf (why, whylen, "is in use: another process is listening on it; "
              "refusing to take it over");
    return -1;
  }
  if (errno != ECONNREFUSED) {
    snprintf (why, whylen, "cannot tell whether the existing socket is in "
              "use: connect: %s", strerror (errno));
    close (probe);
    return -1;
  }
  close (probe);

  if (unlink (path) == -1 && errno != ENOENT) {
    snprintf (why, whylen, "cannot remove the stale socket: %s", strerror (errno));
    return -1;
  }
  *removed = true;
  return 0;
}
