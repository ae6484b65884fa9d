/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: what a disk's name may be.
 *
 * A migration of several disks names each one (stm-send --disk name=NAME,
 * stm-recv --output NAME=IMAGE), and the names travel in HELLO, in events
 * and in the receiver's state file.  They are kept to a short, safe
 * alphabet so that they need no quoting anywhere: in a state file line, a
 * JSON string, a shell command or a file name.
 */
#ifndef STM_COMMON_DISK_NAME_H
#define STM_COMMON_DISK_NAME_H

#include <stdbool.h>
#include <stddef.h>

/* The longest name, in bytes. */
#define DISK_NAME_MAX 64

/* Is name[0..len) a valid disk name: 1 to DISK_NAME_MAX characters from
 * [A-Za-z0-9._-], not starting with '.' or '-' (so a name is never a
 * hidden file or an option)? */
bool disk_name_valid (const char *name, size_t len);

#endif /* STM_COMMON_DISK_NAME_H */
