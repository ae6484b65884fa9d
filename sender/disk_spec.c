/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: parsing a --disk option (disk_spec.h). */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk_spec.h"

/* Copy the item starting at *p up to the next single comma into a new
 * string, turning ",," into ",", and leave *p after that comma (or at the
 * end).  NULL on allocation failure. */
static char *
next_item (const char **p)
{
  const char *s = *p;
  size_t len = strlen (s);
  char *out = malloc (len + 1);
  size_t n = 0;

  if (out == NULL)
    return NULL;
  while (*s != '\0') {
    if (*s == ',') {
      if (s[1] != ',') {
        s++;                     /* the separator */
        break;
      }
      s++;                       /* ",," is one comma */
    }
    out[n++] = *s++;
  }
  out[n] = '\0';
  *p = s;
  return out;
}

/* The key's slot in spec, or NULL if the key is unknown. */
static char **
slot_for_key (struct disk_spec *spec, const char *key)
{
  if (strcmp (key, "name") == 0)
    return &spec->name;
  if (strcmp (key, "source") == 0)
    return &spec->source;
  if (strcmp (key, "control") == 0)
    return &spec->control;
  return NULL;
}

/* Check one "key=value" item and store its value.  The item is taken over
 * (stored or freed).  -1 with why filled. */
static int
take_item (struct disk_spec *spec, char *item, char *why, size_t whylen)
{
  char *eq = strchr (item, '=');
  char **slot;

  if (eq == NULL) {
    snprintf (why, whylen, "\"%s\" is not key=value", item);
    free (item);
    return -1;
  }
  *eq = '\0';
  slot = slot_for_key (spec, item);
  if (slot == NULL) {
    snprintf (why, whylen, "unknown key \"%s\" (the keys are name, source "
              "and control)", item);
    free (item);
    return -1;
  }
  if (*slot != NULL) {
    snprintf (why, whylen, "%s= is given twice", item);
    free (item);
    return -1;
  }
  if (eq[1] == '\0') {
    snprintf (why, whylen, "%s= is empty", item);
    free (item);
    return -1;
  }
  /* The value moves to the start of the buffer, which the slot keeps. */
  memmove (item, eq + 1, strlen (eq + 1) + 1);
  *slot = item;
  return 0;
}

int
disk_spec_parse (const char *text, bool control_required, struct disk_spec *spec,
                 char *why, size_t whylen)
{
  const char *p = text;

  memset (spec, 0, sizeof *spec);
  if (*p == '\0') {
    snprintf (why, whylen, "it is empty");
    return -1;
  }
  while (*p != '\0') {
    char *item = next_item (&p);

    if (item == NULL) {
      snprintf (why, whylen, "%s", strerror (ENOMEM));
      disk_spec_free (spec);
      return -1;
    }
    if (take_item (spec, item, why, whylen) == -1) {
      disk_spec_free (spec);
      return -1;
    }
  }

  const char *missing = spec->name == NULL ? "name" :
    spec->source == NULL ? "source" :
    spec->control == NULL && control_required ? "control" : NULL;
  if (missing != NULL) {
    snprintf (why, whylen, "%s= is missing (%s)", missing, control_required
              ? "name, source and control are required"
              : "name and source are required, control is optional");
    disk_spec_free (spec);
    return -1;
  }
  if (!wire_disk_name_ok (spec->name, strlen (spec->name))) {
    snprintf (why, whylen, "name \"%s\" is not 1 to %d of A-Z a-z 0-9 . _ - "
              "(not starting with . or -)", spec->name, WIRE_MAX_DISK_NAME);
    disk_spec_free (spec);
    return -1;
  }
  return 0;
}

void
disk_spec_free (struct disk_spec *spec)
{
  free (spec->name);
  free (spec->source);
  free (spec->control);
  memset (spec, 0, sizeof *spec);
}
