/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: parsing --output NAME=IMAGE and matching a HELLO's disks to the
 * outputs.  Pure logic; see outputs.h.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "outputs.h"

int
output_spec_parse (const char *arg, struct output_spec *spec,
                   char why[OUTPUTS_WHY_MAX])
{
  const char *eq = strchr (arg, '=');

  memset (spec, 0, sizeof *spec);
  /* A name can hold no '/', so a path that contains '=' after a '/' is
   * never mistaken for NAME=IMAGE; "./x=y" names the file "x=y". */
  if (eq != NULL && wire_disk_name_ok (arg, (size_t) (eq - arg))) {
    memcpy (spec->name, arg, (size_t) (eq - arg));
    spec->path = eq + 1;
    if (spec->path[0] == '\0') {
      snprintf (why, OUTPUTS_WHY_MAX, "--output '%s': the image path of disk "
                "%s is empty", arg, spec->name);
      return -1;
    }
    return 0;
  }
  spec->path = arg;
  if (arg[0] == '\0') {
    snprintf (why, OUTPUTS_WHY_MAX, "--output: the image path is empty");
    return -1;
  }
  return 0;
}

bool
outputs_named (const struct outputs *o)
{
  return o->count > 0 && o->spec[0].name[0] != '\0';
}

int
outputs_find (const struct outputs *o, const char *name, size_t len)
{
  unsigned i;

  for (i = 0; i < o->count; i++)
    if (strlen (o->spec[i].name) == len && memcmp (o->spec[i].name, name, len) == 0)
      return (int) i;
  return -1;
}

int
outputs_add (struct outputs *o, const struct output_spec *spec,
             char why[OUTPUTS_WHY_MAX])
{
  bool named = spec->name[0] != '\0';

  if (o->count > 0 && named != outputs_named (o)) {
    snprintf (why, OUTPUTS_WHY_MAX, "--output '%s': give either one --output "
              "IMAGE or one or more --output NAME=IMAGE, not both (for a file "
              "whose name contains '=', write ./NAME=...)", spec->path);
    return -1;
  }
  if (o->count > 0 && !named) {
    snprintf (why, OUTPUTS_WHY_MAX, "--output '%s': more than one output needs "
              "names: --output NAME=IMAGE for each", spec->path);
    return -1;
  }
  if (named && outputs_find (o, spec->name, strlen (spec->name)) >= 0) {
    snprintf (why, OUTPUTS_WHY_MAX, "--output: the disk name %s is given twice",
              spec->name);
    return -1;
  }
  if (o->count == WIRE_MAX_DISKS) {
    snprintf (why, OUTPUTS_WHY_MAX, "--output %s=%s: at most %d disks",
              spec->name, spec->path, WIRE_MAX_DISKS);
    return -1;
  }
  o->spec[o->count++] = *spec;
  return 0;
}

unsigned
outputs_primary (const struct outputs *o)
{
  unsigned i, first = 0;

  for (i = 1; i < o->count; i++)
    if (strcmp (o->spec[i].name, o->spec[first].name) < 0)
      first = i;
  return first;
}

/* Append " name" to a list in words, as far as it fits. */
static void
append_name (char *list, size_t size, const char *name, size_t len)
{
  size_t used = strlen (list);

  snprintf (list + used, size - used, "%s%.*s", used ? " " : "", (int) len, name);
}

bool
outputs_match_hello (const struct outputs *o, const struct wire_hello *h,
                     unsigned map[WIRE_MAX_DISKS], char why[OUTPUTS_WHY_MAX])
{
  /* The two lists, with the sentence around them, fit OUTPUTS_WHY_MAX. */
  char extra[OUTPUTS_WHY_MAX / 2 - 64] = "", missing[OUTPUTS_WHY_MAX / 2 - 64] = "";
  bool used[WIRE_MAX_DISKS] = { false };
  unsigned i;

  if (h->ndisks == 1 && h->disks[0].name_len == 0) {
    /* The one-disk HELLO of a sender that names no disks. */
    if (o->count == 1) {
      map[0] = 0;
      return true;
    }
    snprintf (why, OUTPUTS_WHY_MAX, "HELLO announces one unnamed disk, but "
              "this receiver assembles %u named disks", o->count);
    return false;
  }
  for (i = 0; i < h->ndisks; i++) {
    int k = outputs_find (o, h->disks[i].name, h->disks[i].name_len);

    if (k < 0 || !outputs_named (o))
      append_name (extra, sizeof extra, h->disks[i].name, h->disks[i].name_len);
    else {
      map[i] = (unsigned) k;
      used[k] = true;
    }
  }
  for (i = 0; i < o->count; i++)
    if (!used[i] && outputs_named (o))
      append_name (missing, sizeof missing, o->spec[i].name, strlen (o->spec[i].name));
  if (extra[0] == '\0' && missing[0] == '\0')
    return true;
  if (!outputs_named (o))
    snprintf (why, OUTPUTS_WHY_MAX, "HELLO names disks [%s], but this receiver "
              "has one unnamed --output", extra);
  else if (missing[0] == '\0')
    snprintf (why, OUTPUTS_WHY_MAX, "HELLO names disks [%s] that have no --output",
              extra);
  else if (extra[0] == '\0')
    snprintf (why, OUTPUTS_WHY_MAX, "HELLO lacks disks [%s] that have an --output",
              missing);
  else
    snprintf (why, OUTPUTS_WHY_MAX, "HELLO names disks [%s] that have no --output, "
              "and lacks [%s]", extra, missing);
  return false;
}

const char *
outputs_words (const struct outputs *o, unsigned i, char *buf, size_t len)
{
  const struct output_spec *spec = &o->spec[i];

  if (spec->name[0] == '\0')
    return spec->path;
  snprintf (buf, len, "disk %s (%s)", spec->name, spec->path);
  return buf;
}
