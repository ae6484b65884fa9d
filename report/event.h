/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: one JSON event line (as stm-send --json prints them) parsed
 * into a fixed-size struct, with no I/O and no allocation.
 *
 * The events are flat objects whose values are strings, numbers, booleans
 * or null.  Nested objects and arrays (a later summary may carry per-disk
 * objects) are skipped whole, to a bounded depth, so that a line stays
 * usable when the format grows.  Everything is bounded: the line length,
 * the number of fields kept, key and string lengths (longer strings are
 * cut at a UTF-8 character boundary), so a hostile or corrupt log cannot
 * make the parser use more than the struct.
 */
#ifndef STM_REPORT_EVENT_H
#define STM_REPORT_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#define REPORT_LINE_MAX (64 * 1024)   /* longer lines are rejected */
#define REPORT_EVENT_FIELDS 32        /* fields kept; later ones are dropped */
#define REPORT_KEY_MAX 32             /* longer keys: the field is dropped */
#define REPORT_STRING_MAX 256         /* longer strings are cut */
#define REPORT_NEST_MAX 16            /* deeper nesting: the line is rejected */

enum report_type {
  REPORT_NULL,
  REPORT_BOOL,
  REPORT_NUMBER,
  REPORT_STRING,
};

struct report_field {
  char key[REPORT_KEY_MAX];
  enum report_type type;
  bool boolean;
  double number;                      /* always finite */
  char string[REPORT_STRING_MAX];     /* NUL-terminated UTF-8, no NUL inside */
};

struct report_event {
  char name[REPORT_KEY_MAX];          /* the "event" value */
  bool has_ts;
  double ts;                          /* the "ts" value, Unix seconds */
  size_t nfields;                     /* fields other than event and ts */
  struct report_field fields[REPORT_EVENT_FIELDS];
};

/* Parse line[0..len) (a trailing newline is allowed) into ev.  Returns 0,
 * or -1 with *why set to a static phrase saying what is wrong ("not a
 * JSON object", "no \"event\" string", ...).  A number too large for a
 * double drops its field without rejecting the line. */
int report_event_parse (const char *line, size_t len, struct report_event *ev,
                        const char **why);

/* The field called key, or NULL.  When a key appears twice, the first. */
const struct report_field *report_event_field (const struct report_event *ev,
                                               const char *key);
/* The number at key into *out; false if absent or not a number. */
bool report_event_number (const struct report_event *ev, const char *key, double *out);
/* The string at key, or NULL if absent or not a string. */
const char *report_event_string (const struct report_event *ev, const char *key);
/* The boolean at key, or dflt if absent or not a boolean. */
bool report_event_bool (const struct report_event *ev, const char *key, bool dflt);

#endif /* STM_REPORT_EVENT_H */
