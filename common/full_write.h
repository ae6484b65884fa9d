/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: writing a whole buffer to a file descriptor at an offset.
 *
 * pwrite(2) may write less than asked (a signal, a full device) and may be
 * interrupted before writing anything; every caller that means "all of it
 * or an error" needs the same loop, so it lives here once.
 */
#ifndef STM_COMMON_FULL_WRITE_H
#define STM_COMMON_FULL_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* Write all LEN bytes of BUF to FD at OFFSET, retrying on EINTR and after
 * short writes.  Returns 0, or -1 with errno set (EIO when pwrite makes no
 * progress without saying why, rather than spinning).  The caller reports
 * the error: only it knows which file this is. */
int full_pwrite (int fd, const void *buf, size_t len, uint64_t offset);

#endif /* STM_COMMON_FULL_WRITE_H */
