/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the disk name alphabet (disk_name.h). */
#include <config.h>

#include "disk_name.h"

static bool
name_char_ok (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool
disk_name_valid (const char *name, size_t len)
{
  if (len == 0 || len > DISK_NAME_MAX || name[0] == '.' || name[0] == '-')
    return false;
  for (size_t i = 0; i < len; i++)
    if (!name_char_ok (name[i]))
      return false;
  return true;
}
