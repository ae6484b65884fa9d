/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: which errors mean "the destination is out of space".
 *
 * The receiver tells the sender apart an output that ran out of room (the
 * operator can make room and let the migration resume) from any other I/O
 * error.  Three errnos mean the former: ENOSPC (the file system or device
 * is full), EDQUOT (the user's quota is) and EFBIG (the file would grow
 * past the file system's or RLIMIT_FSIZE's largest file).  Every place
 * that sorts an error asks this one function, so none can forget one of
 * them.
 */
#ifndef STM_COMMON_NO_SPACE_H
#define STM_COMMON_NO_SPACE_H

#include <errno.h>
#include <stdbool.h>

static inline bool
errno_is_no_space (int err)
{
  return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

#endif /* STM_COMMON_NO_SPACE_H */
