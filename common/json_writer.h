/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: builds the one-line JSON objects that --json prints.
 *
 * A json_line is filled in memory (no I/O, so tests inspect the text) and
 * then written with a single fwrite followed by fflush, so lines from one
 * process never interleave.  Strings are escaped per RFC 8259.  A line that
 * would exceed the buffer is truncated at a field boundary and still closed
 * properly.
 */
#ifndef STM_COMMON_JSON_WRITER_H
#define STM_COMMON_JSON_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_LINE_MAX 8192

struct json_line {
  char buf[JSON_LINE_MAX];
  size_t len;
  bool truncated;
};

/* Start an object: {"event":"<event>","ts":<unix seconds with ms>, or
 * "ts":null when unix_time is not a finite number. */
void json_line_begin (struct json_line *j, const char *event, double unix_time);
void json_line_add_string (struct json_line *j, const char *key, const char *value);
void json_line_add_u64 (struct json_line *j, const char *key, uint64_t value);
void json_line_add_i64 (struct json_line *j, const char *key, int64_t value);
void json_line_add_double (struct json_line *j, const char *key, double value);
void json_line_add_bool (struct json_line *j, const char *key, bool value);
/* A value that is already JSON text (an array or object the caller built,
 * with its strings escaped), written as it is. */
void json_line_add_raw (struct json_line *j, const char *key, const char *json);
/* Close the object and terminate with "\n"; returns the finished text. */
const char *json_line_end (struct json_line *j);
/* json_line_end, then write to fp and flush.  Returns -1 on write error. */
int json_line_emit (struct json_line *j, FILE *fp);

#endif /* STM_COMMON_JSON_WRITER_H */
