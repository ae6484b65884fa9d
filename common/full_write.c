/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the "write all of it" loop around pwrite(2) (see full_write.h).
 *
 * Shared by the receiver's image writer and its state file, which both
 * need every byte on the file or a clear error, never a silent short write.
 */
#include <config.h>

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

#include "full_write.h"

int
full_pwrite (int fd, const void *buf, size_t len, uint64_t offset)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t n = pwrite (fd, p, len, (off_t) offset);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (n == 0) {
      /* pwrite made no progress without saying why; do not spin. */
      errno = EIO;
      return -1;
    }
    p += n;
    len -= (size_t) n;
    offset += (uint64_t) n;
  }
  return 0;
}
