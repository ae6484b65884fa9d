/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the filter's control-socket protocol, both directions, as pure
 * parsing and formatting with no I/O.
 *
 * A request is one line of text (at most CONTROL_MAX_LINE bytes including
 * the newline), a command word and its arguments separated by single or
 * multiple spaces; commands are case-insensitive.  A reply starts with a line
 * "OK ..." or "ERR <ERRNO-NAME> <message>".  STATUS answers on its OK line as
 * space-separated key=value pairs.  SNAPSHOT answers
 *   OK generation=G extents=N bytes=B
 * then N lines "offset length" (bytes, decimal), then a line ".".
 *
 *   STATUS | SNAPSHOT | FREEZE | THAW
 *   RESET [<migration-id>] | RESUME [<migration-id>]
 *   CONFIRM <offset> <length>
 *   FLIP fence | FLIP forward <nbd-uri>
 *   PRECONNECT <nbd-uri>               (connect now for a later FLIP forward)
 *   THROTTLE <bytes-per-second>        (0 = off)
 *   MIRROR START <ring-bytes> [sync <timeout-ms>] [wait <ms>]
 *                                      (hand guest writes to the owner
 *                                      through a shared ring; the reply
 *                                      carries its descriptors; options
 *                                      in either order)
 *   MIRROR STOP
 *
 * The filter parses requests with control_request_parse; the sender parses
 * replies with control_reply_* helpers.
 */
#ifndef STM_PROTO_CONTROL_PROTO_H
#define STM_PROTO_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROL_MAX_LINE 4096
#define CONTROL_MAX_URI 2048
/* A migration id as RESET and RESUME take it: 32 hexadecimal digits (the
 * 16 bytes of the wire's migration id), kept in lower case. */
#define CONTROL_MIGRATION_ID_LEN 32

enum control_command {
  CONTROL_STATUS,
  CONTROL_SNAPSHOT,
  CONTROL_CONFIRM,
  CONTROL_RESUME,
  CONTROL_RESET,
  CONTROL_FREEZE,
  CONTROL_THAW,
  CONTROL_FLIP_FENCE,
  CONTROL_FLIP_FORWARD,
  CONTROL_THROTTLE,
  CONTROL_PRECONNECT,
  CONTROL_MIRROR_START,
  CONTROL_MIRROR_STOP,
};

struct control_request {
  enum control_command command;
  uint64_t offset;              /* CONFIRM */
  uint64_t length;              /* CONFIRM */
  uint64_t bytes_per_second;    /* THROTTLE */
  uint64_t ring_bytes;          /* MIRROR START: the ring's data bytes */
  bool mirror_sync;             /* MIRROR START ... sync: mirror-sync */
  uint64_t sync_timeout_ms;     /* MIRROR START ... sync T */
  uint64_t full_wait_ms;        /* MIRROR START ... wait W (0: none) */
  char uri[CONTROL_MAX_URI];    /* FLIP forward, PRECONNECT */
  /* RESET, RESUME: the migration the sender is running, or "" if the
   * request named none. */
  char migration_id[CONTROL_MIGRATION_ID_LEN + 1];
};

/* Parse one request line (without or with its trailing "\n" / "\r\n").  On
 * error returns -1 and sets *errno_name ("EINVAL", "ERANGE", ...) and *why
 * to static text suitable for an ERR reply.  Range checks against the image
 * size are the filter's job. */
int control_request_parse (const char *line, size_t len,
                           struct control_request *req,
                           const char **errno_name, const char **why);

/* Name of a command as it appears on the wire ("FLIP fence" etc.). */
const char *control_command_name (enum control_command cmd);

/* Reply parsing, for clients.  control_reply_is_ok: does the line start
 * with "OK" (followed by a space or end of line)?  For an ERR line,
 * control_reply_error splits out the errno name and the message (pointers
 * into line; errno_name is not NUL-terminated: use *errno_len). */
bool control_reply_is_ok (const char *line);
int control_reply_error (const char *line, const char **errno_name,
                         size_t *errno_len, const char **message);

/* Find key=value in an OK line and parse the value as u64 or copy it as a
 * string.  Returns -1 (errno ENOENT) if the key is absent, EINVAL if the
 * value is malformed. */
int control_reply_get_u64 (const char *line, const char *key, uint64_t *value);
int control_reply_get_string (const char *line, const char *key,
                              char *value, size_t value_size);

/* Parse an extent line "offset length" of a SNAPSHOT reply.  Returns 1 for
 * an extent, 0 for the terminating ".", -1 (EINVAL) for anything else. */
int control_parse_extent_line (const char *line, uint64_t *offset, uint64_t *length);

#endif /* STM_PROTO_CONTROL_PROTO_H */
