/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the outputs a receiver assembles, and which of them each disk
 * of a HELLO goes to.
 *
 * A receiver has either one unnamed output (--output IMAGE, the one-disk
 * form) or 1 to WIRE_MAX_DISKS named ones (--output NAME=IMAGE, a group
 * of disks migrated together, docs/protocol.md "Several disks").  An
 * argument is NAME=IMAGE when the text before its first '=' is a valid
 * disk name (1 to 64 of [A-Za-z0-9._-]: no '/', so "./x=y" and
 * "/dev/disk/by-id/a=b" are paths) and IMAGE is not empty; otherwise the
 * whole argument is a path.
 *
 * Matching a HELLO: an unnamed HELLO (no disk table) matches exactly one
 * output, named or not; a named HELLO must name exactly the outputs'
 * names, in any order.  The match is a map from the HELLO's disk index to
 * the output's index, or, when it fails, the missing and extra names in
 * words for the ERROR.
 *
 * The group's state file lives beside the output whose name sorts first
 * (strcmp), so that the same outputs always find it however the options
 * are ordered: outputs_primary.
 *
 * Pure logic with no I/O (tests/unit/test_outputs.c).
 */
#ifndef STM_RECEIVER_OUTPUTS_H
#define STM_RECEIVER_OUTPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct output_spec {
  char name[WIRE_MAX_DISK_NAME + 1];   /* "" for the unnamed output */
  const char *path;                    /* points into the argument */
};

struct outputs {
  unsigned count;
  struct output_spec spec[WIRE_MAX_DISKS];
};

/* Room for the words of a failed match or a refused option. */
#define OUTPUTS_WHY_MAX 1536

/* Parse one --output argument into *spec (path points into arg).  -1 with
 * why set if it names an empty path. */
int output_spec_parse (const char *arg, struct output_spec *spec,
                       char why[OUTPUTS_WHY_MAX]);

/* Add a parsed spec to the set: -1 with why set if the set would mix
 * named and unnamed outputs, hold two unnamed ones or a name twice, or
 * grow past WIRE_MAX_DISKS. */
int outputs_add (struct outputs *o, const struct output_spec *spec,
                 char why[OUTPUTS_WHY_MAX]);

/* Are the outputs named (the group form)? */
bool outputs_named (const struct outputs *o);

/* The index of the output whose name sorts first (0 when unnamed). */
unsigned outputs_primary (const struct outputs *o);

/* The index of the output named name (len bytes), or -1. */
int outputs_find (const struct outputs *o, const char *name, size_t len);

/* Output i in words for messages: its path, or "disk NAME (PATH)" if
 * named; buf has room for WIRE_MAX_DISK_NAME + PATH_MAX + 16 bytes, and
 * is returned (or the path itself). */
const char *outputs_words (const struct outputs *o, unsigned i, char *buf, size_t len);

/* Map each of the HELLO's disks to an output: map[i] is the output
 * index of hello disk i.  false with why set ("HELLO names disks [x] that
 * have no --output, and lacks [y]") when the disks do not match. */
bool outputs_match_hello (const struct outputs *o, const struct wire_hello *h,
                          unsigned map[WIRE_MAX_DISKS], char why[OUTPUTS_WHY_MAX]);

#endif /* STM_RECEIVER_OUTPUTS_H */
