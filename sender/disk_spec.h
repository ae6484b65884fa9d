/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: one --disk option, name=NAME,source=NBD-URI,control=PATH.
 *
 * The syntax is QEMU's key=value list: items are separated by commas, a
 * comma inside a value is written twice (",,"), and only the first '=' of
 * an item separates its key from its value, so an NBD URI's query string
 * ("?socket=/run/a.sock") needs no escaping.  Every key is required and
 * may appear once; an unknown key is an error, so a typo is never taken
 * silently for a default.  control= may be left out only when the caller
 * says so (stm-send --compare-only, where a source need not be behind the
 * filter); then spec->control is NULL.
 *
 * Pure: no I/O.  A malformed option gives -1 and a sentence in why that
 * names the key or the text at fault; the caller says which option.
 */
#ifndef STM_SENDER_DISK_SPEC_H
#define STM_SENDER_DISK_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "wire.h"

struct disk_spec {
  char *name;                    /* wire_disk_name_ok */
  char *source;                  /* the source's NBD URI, through the filter */
  char *control;                 /* the filter's control socket, or NULL */
};

/* Parse text into *spec (whose strings are allocated; free them with
 * disk_spec_free).  -1 with why filled (and nothing to free) on a
 * malformed option, or with errno ENOMEM.  control= is required when
 * control_required, else optional. */
int disk_spec_parse (const char *text, bool control_required, struct disk_spec *spec,
                     char *why, size_t whylen);
void disk_spec_free (struct disk_spec *spec);

#endif /* STM_SENDER_DISK_SPEC_H */
