/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: libFuzzer harness for the control-socket protocol parsers
 * (proto/control_proto.c).
 *
 * Whoever can open the filter's control socket sends request lines that
 * control_request_parse reads, and the filter's replies are read by
 * stm-send with the control_reply_* helpers and control_parse_extent_line.
 * The same input is given to all of them: to the request parser as a
 * counted buffer, and to the reply helpers as a NUL-terminated string in a
 * heap block of exactly its size, so that AddressSanitizer sees a read past
 * the end.
 *
 * On success the harness checks what the callers rely on: a request line
 * was short enough and clean, padding it to exactly the length limit keeps
 * it valid and one byte more makes it E2BIG, its numbers and URI are what
 * the line says (formatting the request back and parsing it again gives
 * the same request), an ERR reply's errno name is a word of the line, a
 * value found by get_u64 is the decimal that get_string finds, get_string
 * never writes past the buffer it is given, and an extent is non-empty and
 * does not wrap around 2^64.  On failure an errno name and a reason are given.  A broken
 * invariant aborts, which libFuzzer reports as a crash.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_proto.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Abort with the broken invariant's text; libFuzzer saves the input. */
#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "fuzz_control_parse: invariant broken: %s (%s:%d)\n", \
               #cond, __FILE__, __LINE__);                              \
      abort ();                                                         \
    }                                                                   \
  } while (0)

/* Keys the sender looks up in the filter's OK lines. */
static const char *const reply_keys[] = {
  "size", "block", "generation", "dirty_blocks", "dirty_bytes",
  "unconfirmed_blocks", "unconfirmed_bytes", "state", "owner", "throttle",
  "extents", "bytes", "confirmed", "drain_ms", "flush_ms",
};

/* A reference decimal parser, independent of the code under test: digits
 * only, at least one, no overflow.  Returns false otherwise. */
static bool
reference_decimal (const char *s, size_t len, uint64_t *value)
{
  uint64_t v = 0;
  size_t i;

  if (len == 0)
    return false;
  for (i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    if (v > UINT64_MAX / 10 || v * 10 > UINT64_MAX - (uint64_t) (s[i] - '0'))
      return false;
    v = v * 10 + (uint64_t) (s[i] - '0');
  }
  *value = v;
  return true;
}

/* Format a parsed request back into its canonical line. */
static int
format_request (const struct control_request *req, char *out, size_t out_size)
{
  switch (req->command) {
  case CONTROL_CONFIRM:
    return snprintf (out, out_size, "CONFIRM %" PRIu64 " %" PRIu64,
                     req->offset, req->length);
  case CONTROL_THROTTLE:
    return snprintf (out, out_size, "THROTTLE %" PRIu64, req->bytes_per_second);
  case CONTROL_FLIP_FORWARD:
    return snprintf (out, out_size, "FLIP forward %s", req->uri);
  case CONTROL_PRECONNECT:
    return snprintf (out, out_size, "PRECONNECT %s", req->uri);
  case CONTROL_MIRROR_START:
    if (req->mirror_sync)
      return snprintf (out, out_size, "MIRROR START %" PRIu64 " sync %" PRIu64,
                       req->ring_bytes, req->sync_timeout_ms);
    return snprintf (out, out_size, "MIRROR START %" PRIu64, req->ring_bytes);
  default:
    return snprintf (out, out_size, "%s", control_command_name (req->command));
  }
}

static void
check_request (const uint8_t *data, size_t size)
{
  struct control_request req, again;
  const char *errno_name = NULL, *why = NULL;
  char line[CONTROL_MAX_LINE + 64];
  size_t len = size, i;
  int n;

  if (control_request_parse ((const char *) data, size, &req,
                             &errno_name, &why) == -1) {
    CHECK (errno_name != NULL && errno_name[0] == 'E');
    CHECK (why != NULL && why[0] != '\0');
    return;
  }

  /* Accepted: the line fits the limit with its newline, and holds no NUL
   * and no control character but tab (and the trailing CR LF). */
  if (len > 0 && data[len - 1] == '\n')
    len--;
  CHECK (len + 1 <= CONTROL_MAX_LINE);
  if (len > 0 && data[len - 1] == '\r')
    len--;
  for (i = 0; i < len; i++)
    CHECK (data[i] == '\t' || (data[i] >= 0x20 && data[i] != 0x7f));

  switch (req.command) {
  case CONTROL_STATUS: case CONTROL_SNAPSHOT: case CONTROL_CONFIRM:
  case CONTROL_RESUME: case CONTROL_RESET: case CONTROL_FREEZE:
  case CONTROL_THAW: case CONTROL_FLIP_FENCE: case CONTROL_FLIP_FORWARD:
  case CONTROL_THROTTLE: case CONTROL_PRECONNECT:
  case CONTROL_MIRROR_START: case CONTROL_MIRROR_STOP:
    break;
  default:
    CHECK (!"parser returned an unknown command");
  }
  if (req.command == CONTROL_FLIP_FORWARD) {
    size_t ulen = strnlen (req.uri, sizeof req.uri);
    CHECK (ulen > 0 && ulen < sizeof req.uri);
    for (i = 0; i < ulen; i++)
      CHECK (req.uri[i] > 0x20 && req.uri[i] < 0x7f);
    CHECK (memmem (data, size, req.uri, ulen) != NULL);
  }

  /* At the length limit: padded with trailing spaces to the longest line
   * allowed (CONTROL_MAX_LINE with its newline, with or without the
   * newline passed) it means the same; one byte more and it is refused.
   * Random mutation seldom builds a valid request this long, so the
   * boundary is tested here directly. */
  if (len < CONTROL_MAX_LINE - 1) {
    char *pad = malloc (CONTROL_MAX_LINE + 1);
    size_t total;

    CHECK (pad != NULL);
    for (total = CONTROL_MAX_LINE - 1; total <= CONTROL_MAX_LINE; total++) {
      int nl;

      memcpy (pad, data, len);
      memset (pad + len, ' ', total - len);
      for (nl = 0; nl <= 1; nl++) {
        int r;

        pad[total] = '\n';
        r = control_request_parse (pad, total + (size_t) nl, &again,
                                   &errno_name, &why);
        if (total == CONTROL_MAX_LINE - 1) {
          CHECK (r == 0 && again.command == req.command);
          CHECK (again.offset == req.offset && again.length == req.length);
        }
        else
          CHECK (r == -1 && strcmp (errno_name, "E2BIG") == 0);
      }
    }
    free (pad);
  }

  /* The canonical form parses to the same request. */
  n = format_request (&req, line, sizeof line);
  CHECK (n > 0 && (size_t) n < sizeof line);
  CHECK (control_request_parse (line, (size_t) n, &again,
                                &errno_name, &why) == 0);
  CHECK (again.command == req.command);
  CHECK (again.offset == req.offset);
  CHECK (again.length == req.length);
  CHECK (again.bytes_per_second == req.bytes_per_second);
  CHECK (strcmp (again.uri, req.uri) == 0);
}

/* get_string into buffers of every size up to the value's, each a heap
 * block of exactly that size, and get_u64 against the string found. */
static void
check_key (const char *line, const char *key)
{
  char big[CONTROL_MAX_LINE + 1];
  uint64_t v, ref;
  int r;

  r = control_reply_get_string (line, key, big, sizeof big);
  if (r == -1) {
    int e = errno;

    /* ERANGE: a value longer than big, possible only in a line longer
     * than any the filter sends; get_u64 may still read it (zeros). */
    CHECK (e == ENOENT || e == EINVAL || e == ERANGE);
    if (e != ERANGE)
      CHECK (control_reply_get_u64 (line, key, &v) == -1 && errno == e);
    return;
  }
  CHECK (control_reply_is_ok (line));
  CHECK (strstr (line, big) != NULL);
  {
    size_t vlen = strlen (big), k;

    CHECK (strpbrk (big, " \t\r\n") == NULL);
    for (k = 1; k <= vlen + 1 && k <= 64; k++) {
      char *small = malloc (k);
      CHECK (small != NULL);
      r = control_reply_get_string (line, key, small, k);
      if (vlen < k)
        CHECK (r == 0 && strcmp (small, big) == 0);
      else
        CHECK (r == -1 && errno == ERANGE);
      free (small);
    }
    r = control_reply_get_u64 (line, key, &v);
    if (reference_decimal (big, vlen, &ref))
      CHECK (r == 0 && v == ref);
    else
      CHECK (r == -1 && (errno == EINVAL || errno == ERANGE));
  }
}

static void
check_replies (const uint8_t *data, size_t size)
{
  char *line = malloc (size + 1);
  const char *errno_name, *message;
  size_t errno_len, i, len;
  uint64_t offset, length;
  int r;

  CHECK (line != NULL);
  memcpy (line, data, size);
  line[size] = '\0';
  len = strlen (line);

  if (control_reply_is_ok (line))
    CHECK (strncmp (line, "OK", 2) == 0);

  if (control_reply_error (line, &errno_name, &errno_len, &message) == 0) {
    CHECK (strncmp (line, "ERR", 3) == 0);
    CHECK (errno_name > line && errno_name + errno_len <= line + len);
    CHECK (errno_len > 0);
    for (i = 0; i < errno_len; i++)
      CHECK ((errno_name[i] >= 'A' && errno_name[i] <= 'Z') ||
             (errno_name[i] >= '0' && errno_name[i] <= '9') ||
             errno_name[i] == '_');
    CHECK (message >= errno_name + errno_len && message <= line + len);
  }

  for (i = 0; i < sizeof reply_keys / sizeof reply_keys[0]; i++)
    check_key (line, reply_keys[i]);
  /* The key of the line's second word, whatever it is, so that keys the
   * list does not name are found too. */
  {
    const char *p = strchr (line, ' '), *eq;
    char key[64];

    if (p != NULL && (eq = strchr (p + 1, '=')) != NULL &&
        (size_t) (eq - p - 1) < sizeof key) {
      memcpy (key, p + 1, (size_t) (eq - p - 1));
      key[eq - p - 1] = '\0';
      if (key[0] != '\0' && strpbrk (key, "= \t\r\n") == NULL)
        check_key (line, key);
      else {
        uint64_t v;
        CHECK (control_reply_get_u64 (line, key, &v) == -1 && errno == EINVAL);
      }
    }
  }

  r = control_parse_extent_line (line, &offset, &length);
  if (r == 1) {
    char again[64];
    uint64_t o2, l2;

    CHECK (length > 0);
    CHECK (offset <= UINT64_MAX - length);
    snprintf (again, sizeof again, "%" PRIu64 " %" PRIu64 "\n", offset, length);
    CHECK (control_parse_extent_line (again, &o2, &l2) == 1);
    CHECK (o2 == offset && l2 == length);
  }
  else if (r == 0)
    CHECK (line[0] == '.' && (len == 1 || line[1] == '\r' || line[1] == '\n'));
  else
    CHECK (r == -1 && (errno == EINVAL || errno == ERANGE));

  free (line);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  check_request (data, size);
  check_replies (data, size);
  return 0;
}
