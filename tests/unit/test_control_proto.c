/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the control-socket protocol parsers
 * (proto/control_proto.c).
 *
 * Requests: every command, case and whitespace variations, strict numbers,
 * missing and extra arguments, the line limit, NULs and control characters,
 * and the FLIP variants.  Replies: OK and ERR lines, key=value lookup with
 * keys that are prefixes or suffixes of other keys, and SNAPSHOT extent
 * lines.  Request lines are copied into heap blocks of exactly their length
 * (no NUL after them) so that a parser reading past len is caught by
 * valgrind or AddressSanitizer.
 */
#include <config.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control_proto.h"

/* Parse line[0..len) from an exact-size heap copy. */
static int
parse_n (const char *line, size_t len, struct control_request *req,
         const char **errno_name, const char **why)
{
  char *copy = malloc (len ? len : 1);
  int r;

  assert_non_null (copy);
  if (len)
    memcpy (copy, line, len);
  r = control_request_parse (copy, len, req, errno_name, why);
  free (copy);
  return r;
}

static void
parse_ok (const char *line, struct control_request *req)
{
  const char *errno_name = NULL, *why = NULL;

  if (parse_n (line, strlen (line), req, &errno_name, &why) != 0)
    fail_msg ("\"%s\" refused: %s %s", line,
              errno_name ? errno_name : "?", why ? why : "?");
}

static void
parse_fails_n (const char *line, size_t len, const char *expected_errno)
{
  struct control_request req;
  const char *errno_name = NULL, *why = NULL;

  if (parse_n (line, len, &req, &errno_name, &why) != -1)
    fail_msg ("\"%.*s\" was accepted", (int) len, line);
  assert_non_null (errno_name);
  assert_string_equal (errno_name, expected_errno);
  assert_non_null (why);
  assert_true (strlen (why) > 0);
}

static void
parse_fails (const char *line, const char *expected_errno)
{
  parse_fails_n (line, strlen (line), expected_errno);
}

/* ---- requests ---- */

static void
test_plain_commands (void **state)
{
  static const struct { const char *line; enum control_command cmd; } cases[] = {
    { "STATUS", CONTROL_STATUS },
    { "SNAPSHOT", CONTROL_SNAPSHOT },
    { "RESUME", CONTROL_RESUME },
    { "RESET", CONTROL_RESET },
    { "FREEZE", CONTROL_FREEZE },
    { "THAW", CONTROL_THAW },
    { "status", CONTROL_STATUS },
    { "Snapshot", CONTROL_SNAPSHOT },
    { "rEsUmE", CONTROL_RESUME },
    { "reset\n", CONTROL_RESET },
    { "freeze\r\n", CONTROL_FREEZE },
    { "  THAW  ", CONTROL_THAW },
    { "\tSTATUS\t\r\n", CONTROL_STATUS },
  };
  size_t i;

  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct control_request req;

    parse_ok (cases[i].line, &req);
    assert_int_equal (req.command, cases[i].cmd);
  }
}

static void
test_plain_commands_extra_args (void **state)
{
  parse_fails ("STATUS now", "EINVAL");
  parse_fails ("SNAPSHOT 1", "EINVAL");
  parse_fails ("RESUME x", "EINVAL");
  parse_fails ("RESET all", "EINVAL");
  parse_fails ("RESET 0123456789abcdef0123456789abcdef extra", "EINVAL");
  parse_fails ("FREEZE 10", "EINVAL");
  parse_fails ("THAW\tplease\n", "EINVAL");
}

/* RESET and RESUME may name the migration; without one, the id is "". */
static void
test_reset_resume_migration_id (void **state)
{
  struct control_request req;

  parse_ok ("RESET", &req);
  assert_string_equal (req.migration_id, "");
  parse_ok ("RESET 0123456789abcdef0123456789abcdef", &req);
  assert_int_equal (req.command, CONTROL_RESET);
  assert_string_equal (req.migration_id, "0123456789abcdef0123456789abcdef");
  /* Upper case is accepted and kept in lower case, so ids compare. */
  parse_ok ("resume 0123456789ABCDEF0123456789ABCDEF\r\n", &req);
  assert_int_equal (req.command, CONTROL_RESUME);
  assert_string_equal (req.migration_id, "0123456789abcdef0123456789abcdef");

  parse_fails ("RESUME 0123456789abcdef0123456789abcde", "EINVAL");    /* 31 */
  parse_fails ("RESUME 0123456789abcdef0123456789abcdef0", "EINVAL");  /* 33 */
  parse_fails ("RESET 0123456789abcdef0123456789abcdeg", "EINVAL");
  parse_fails ("RESET -123456789abcdef0123456789abcdef", "EINVAL");
}

static void
test_unknown_and_empty (void **state)
{
  parse_fails ("", "EINVAL");
  parse_fails ("\n", "EINVAL");
  parse_fails ("\r\n", "EINVAL");
  parse_fails ("   \t  \r\n", "EINVAL");
  parse_fails ("HELLO", "EINVAL");
  parse_fails ("STATUSX", "EINVAL");
  parse_fails ("STAT", "EINVAL");
  parse_fails ("SNAP SHOT", "EINVAL");
  parse_fails ("STATUS\xc3\xa9", "EINVAL");
}

static void
test_confirm (void **state)
{
  struct control_request req;

  parse_ok ("CONFIRM 0 65536", &req);
  assert_int_equal (req.command, CONTROL_CONFIRM);
  assert_true (req.offset == 0);
  assert_true (req.length == 65536);

  parse_ok ("confirm   1073741824\t4096\r\n", &req);
  assert_int_equal (req.command, CONTROL_CONFIRM);
  assert_true (req.offset == 1073741824ull);
  assert_true (req.length == 4096);

  parse_ok ("CONFIRM 18446744073709551615 18446744073709551615", &req);
  assert_true (req.offset == UINT64_MAX);
  assert_true (req.length == UINT64_MAX);

  /* Leading zeros are still plain decimal. */
  parse_ok ("CONFIRM 007 010", &req);
  assert_true (req.offset == 7);
  assert_true (req.length == 10);

  /* Zero length parses: range checks are the filter's job. */
  parse_ok ("CONFIRM 0 0", &req);
  assert_true (req.length == 0);
}

static void
test_confirm_bad (void **state)
{
  parse_fails ("CONFIRM", "EINVAL");
  parse_fails ("CONFIRM 0", "EINVAL");
  parse_fails ("CONFIRM 0 1 2", "EINVAL");
  parse_fails ("CONFIRM -1 4096", "EINVAL");
  parse_fails ("CONFIRM 0 -4096", "EINVAL");
  parse_fails ("CONFIRM +1 4096", "EINVAL");
  parse_fails ("CONFIRM 0x10 4096", "EINVAL");
  parse_fails ("CONFIRM 0 4096x", "EINVAL");
  parse_fails ("CONFIRM 0 4K", "EINVAL");
  parse_fails ("CONFIRM 0 1e3", "EINVAL");
  parse_fails ("CONFIRM 0 4.5", "EINVAL");
  parse_fails ("CONFIRM 0,4096", "EINVAL");
  parse_fails ("CONFIRM 18446744073709551616 1", "ERANGE");
  parse_fails ("CONFIRM 1 18446744073709551616", "ERANGE");
  parse_fails ("CONFIRM 1 99999999999999999999999999", "ERANGE");
}

static void
test_throttle (void **state)
{
  struct control_request req;

  parse_ok ("THROTTLE 0", &req);
  assert_int_equal (req.command, CONTROL_THROTTLE);
  assert_true (req.bytes_per_second == 0);

  parse_ok ("throttle 104857600\n", &req);
  assert_true (req.bytes_per_second == 104857600ull);

  parse_ok ("Throttle 18446744073709551615", &req);
  assert_true (req.bytes_per_second == UINT64_MAX);

  parse_fails ("THROTTLE", "EINVAL");
  parse_fails ("THROTTLE 1 2", "EINVAL");
  parse_fails ("THROTTLE -5", "EINVAL");
  parse_fails ("THROTTLE 100M", "EINVAL");
  parse_fails ("THROTTLE 0x100", "EINVAL");
  parse_fails ("THROTTLE 18446744073709551616", "ERANGE");
}

static void
test_mirror (void **state)
{
  struct control_request req;

  parse_ok ("MIRROR START 67108864", &req);
  assert_int_equal (req.command, CONTROL_MIRROR_START);
  assert_true (req.ring_bytes == 67108864);
  assert_false (req.mirror_sync);

  parse_ok ("mirror start 1048576 SYNC 250\n", &req);
  assert_int_equal (req.command, CONTROL_MIRROR_START);
  assert_true (req.ring_bytes == 1048576);
  assert_true (req.mirror_sync);
  assert_true (req.sync_timeout_ms == 250);

  parse_ok ("MIRROR STOP", &req);
  assert_int_equal (req.command, CONTROL_MIRROR_STOP);
  assert_string_equal (control_command_name (CONTROL_MIRROR_START),
                       "MIRROR START");
  assert_string_equal (control_command_name (CONTROL_MIRROR_STOP),
                       "MIRROR STOP");

  parse_fails ("MIRROR", "EINVAL");
  parse_fails ("MIRROR GO", "EINVAL");
  parse_fails ("MIRROR STOP now", "EINVAL");
  parse_fails ("MIRROR START", "EINVAL");
  parse_fails ("MIRROR START 64M", "EINVAL");
  parse_fails ("MIRROR START 1048576 sync", "EINVAL");
  parse_fails ("MIRROR START 1048576 async 10", "EINVAL");
  parse_fails ("MIRROR START 1048576 sync 0", "EINVAL");
  parse_fails ("MIRROR START 1048576 sync 10 more", "EINVAL");
  parse_fails ("MIRROR START 18446744073709551616", "ERANGE");
  parse_fails ("MIRROR START 1048576 sync 18446744073709551616", "ERANGE");
}

/* MIRROR START's wait: how long a write waits for room in a full ring.
 * With sync, in either order; each at most once; 0 allowed (no wait);
 * the upper bound is the filter's to check. */
static void
test_mirror_wait (void **state)
{
  struct control_request req;

  parse_ok ("MIRROR START 1048576", &req);
  assert_true (req.full_wait_ms == 0);

  parse_ok ("MIRROR START 1048576 wait 200", &req);
  assert_int_equal (req.command, CONTROL_MIRROR_START);
  assert_true (req.full_wait_ms == 200);
  assert_false (req.mirror_sync);

  parse_ok ("MIRROR START 1048576 WAIT 0", &req);
  assert_true (req.full_wait_ms == 0);

  parse_ok ("MIRROR START 1048576 sync 250 wait 1000", &req);
  assert_true (req.mirror_sync);
  assert_true (req.sync_timeout_ms == 250);
  assert_true (req.full_wait_ms == 1000);

  parse_ok ("mirror start 2097152  wait 7\tsync 9\r\n", &req);
  assert_true (req.ring_bytes == 2097152);
  assert_true (req.mirror_sync);
  assert_true (req.sync_timeout_ms == 9);
  assert_true (req.full_wait_ms == 7);

  /* Past the filter's limit of 24 h, but a number: the filter refuses. */
  parse_ok ("MIRROR START 1048576 wait 86400001", &req);
  assert_true (req.full_wait_ms == 86400001);

  parse_fails ("MIRROR START 1048576 wait", "EINVAL");
  parse_fails ("MIRROR START 1048576 wait -1", "EINVAL");
  parse_fails ("MIRROR START 1048576 wait 1s", "EINVAL");
  parse_fails ("MIRROR START 1048576 wait 0x10", "EINVAL");
  parse_fails ("MIRROR START 1048576 wait 18446744073709551616", "ERANGE");
  parse_fails ("MIRROR START 1048576 wait 5 wait 5", "EINVAL");
  parse_fails ("MIRROR START 1048576 sync 5 sync 5", "EINVAL");
  parse_fails ("MIRROR START 1048576 wait 5 sync 5 wait 5", "EINVAL");
  parse_fails ("MIRROR START 1048576 sync 5 wait 5 sync 5", "EINVAL");
  parse_fails ("MIRROR START 1048576 wait 5 sync", "EINVAL");
  parse_fails ("MIRROR START 1048576 wait 5 sync 0", "EINVAL");
  parse_fails ("MIRROR START 1048576 wait 5 pause 5", "EINVAL");
  parse_fails ("MIRROR START 1048576 sync 5 wait 5 extra", "EINVAL");
  parse_fails ("MIRROR START 1048576 sync 5 wait 5 a b c d", "EINVAL");
}

static void
test_flip (void **state)
{
  struct control_request req;

  parse_ok ("FLIP fence", &req);
  assert_int_equal (req.command, CONTROL_FLIP_FENCE);
  parse_ok ("flip FENCE\r\n", &req);
  assert_int_equal (req.command, CONTROL_FLIP_FENCE);

  parse_ok ("FLIP forward nbd://dest:10809/disk0", &req);
  assert_int_equal (req.command, CONTROL_FLIP_FORWARD);
  assert_string_equal (req.uri, "nbd://dest:10809/disk0");

  /* The URI keeps its case; the words around it do not matter. */
  parse_ok ("flip Forward   nbds+unix:///Disk?socket=/run/S.sock&tls-certificates=/etc/pki  \n",
            &req);
  assert_int_equal (req.command, CONTROL_FLIP_FORWARD);
  assert_string_equal (req.uri,
                       "nbds+unix:///Disk?socket=/run/S.sock&tls-certificates=/etc/pki");

  parse_fails ("FLIP", "EINVAL");
  parse_fails ("FLIP sideways", "EINVAL");
  parse_fails ("FLIP fence now", "EINVAL");
  parse_fails ("FLIP forward", "EINVAL");
  parse_fails ("FLIP forward \r\n", "EINVAL");
  parse_fails ("FLIP forward nbd://a nbd://b", "EINVAL");
  parse_fails ("FLIP forward nbd://h\xc3\xa9/", "EINVAL");
  parse_fails ("FLIP forward nbd://h/\x7f", "EINVAL");
  parse_fails ("FLIP fencing", "EINVAL");
}

static void
test_preconnect (void **state)
{
  char line[64 + CONTROL_MAX_URI];
  struct control_request req;
  size_t prefix = strlen ("PRECONNECT ");

  parse_ok ("PRECONNECT nbds://stm@dest:10810/?tls-psk-file=/k.psk", &req);
  assert_int_equal (req.command, CONTROL_PRECONNECT);
  assert_string_equal (req.uri, "nbds://stm@dest:10810/?tls-psk-file=/k.psk");
  /* The command word is case-insensitive, the URI keeps its case. */
  parse_ok ("preconnect  nbd+unix:///D?socket=/S \r\n", &req);
  assert_int_equal (req.command, CONTROL_PRECONNECT);
  assert_string_equal (req.uri, "nbd+unix:///D?socket=/S");

  parse_fails ("PRECONNECT", "EINVAL");
  parse_fails ("PRECONNECT  \n", "EINVAL");
  parse_fails ("PRECONNECT nbd://a nbd://b", "EINVAL");
  parse_fails ("PRECONNECT nbd://h\xc3\xa9/", "EINVAL");
  parse_fails ("PRECONNECTED nbd://a", "EINVAL");

  /* The same length limit as FLIP forward's. */
  memcpy (line, "PRECONNECT ", prefix);
  memset (line + prefix, 'u', CONTROL_MAX_URI - 1);
  line[prefix + CONTROL_MAX_URI - 1] = '\0';
  parse_ok (line, &req);
  assert_int_equal (strlen (req.uri), CONTROL_MAX_URI - 1);
  line[prefix + CONTROL_MAX_URI - 1] = 'u';
  line[prefix + CONTROL_MAX_URI] = '\0';
  parse_fails (line, "E2BIG");
}

static void
test_flip_uri_length (void **state)
{
  char line[64 + CONTROL_MAX_URI];
  struct control_request req;
  size_t prefix = strlen ("FLIP forward ");

  /* The longest URI that fits with its NUL. */
  memcpy (line, "FLIP forward ", prefix);
  memset (line + prefix, 'u', CONTROL_MAX_URI - 1);
  line[prefix + CONTROL_MAX_URI - 1] = '\0';
  parse_ok (line, &req);
  assert_int_equal (strlen (req.uri), CONTROL_MAX_URI - 1);

  /* One byte more does not fit. */
  line[prefix + CONTROL_MAX_URI - 1] = 'u';
  line[prefix + CONTROL_MAX_URI] = '\0';
  parse_fails (line, "E2BIG");
}

static void
test_line_limit (void **state)
{
  char *line = malloc (CONTROL_MAX_LINE + 2);
  struct control_request req;
  const char *errno_name, *why;

  assert_non_null (line);
  /* "STATUS" padded with spaces to exactly CONTROL_MAX_LINE bytes
   * including the newline: accepted, with or without that newline. */
  memset (line, ' ', CONTROL_MAX_LINE + 2);
  memcpy (line, "STATUS", 6);
  line[CONTROL_MAX_LINE - 1] = '\n';
  assert_int_equal (parse_n (line, CONTROL_MAX_LINE, &req, &errno_name, &why), 0);
  assert_int_equal (parse_n (line, CONTROL_MAX_LINE - 1, &req, &errno_name, &why), 0);

  /* One byte more: too long, with or without the newline. */
  line[CONTROL_MAX_LINE - 1] = ' ';
  line[CONTROL_MAX_LINE] = '\n';
  parse_fails_n (line, CONTROL_MAX_LINE + 1, "E2BIG");
  parse_fails_n (line, CONTROL_MAX_LINE, "E2BIG");
  free (line);
}

static void
test_bad_bytes (void **state)
{
  struct control_request req;
  const char *errno_name, *why = NULL;

  /* A NUL is named as such: a client that sent one has a framing bug. */
  assert_int_equal (parse_n ("STA\0TUS", 7, &req, &errno_name, &why), -1);
  assert_non_null (strstr (why, "NUL"));

  parse_fails_n ("STATUS\0", 7, "EINVAL");
  parse_fails_n ("STA\0TUS", 7, "EINVAL");
  parse_fails_n ("CONFIRM 0\0 4096", 15, "EINVAL");
  parse_fails ("STATUS\nSNAPSHOT", "EINVAL");
  parse_fails ("STATUS\n\n", "EINVAL");
  parse_fails ("STATUS\r\r\n", "EINVAL");
  parse_fails ("\x1bSTATUS", "EINVAL");
  parse_fails ("STATUS\x7f", "EINVAL");
  parse_fails ("CONFIRM 0\x0b 4096", "EINVAL");
}

/* The parser must look only at [line, line+len): text after len is not
 * part of the request. */
static void
test_length_is_honoured (void **state)
{
  struct control_request req;
  const char *errno_name, *why;
  const char *line = "THAW garbage";

  assert_int_equal (control_request_parse (line, 4, &req, &errno_name, &why), 0);
  assert_int_equal (req.command, CONTROL_THAW);
  assert_int_equal (control_request_parse ("CONFIRM 1 23", 11, &req,
                                           &errno_name, &why), 0);
  assert_true (req.length == 2);
}

static void
test_command_names (void **state)
{
  assert_string_equal (control_command_name (CONTROL_STATUS), "STATUS");
  assert_string_equal (control_command_name (CONTROL_CONFIRM), "CONFIRM");
  assert_string_equal (control_command_name (CONTROL_FLIP_FENCE), "FLIP fence");
  assert_string_equal (control_command_name (CONTROL_FLIP_FORWARD), "FLIP forward");
  assert_string_equal (control_command_name (CONTROL_PRECONNECT), "PRECONNECT");
  assert_string_equal (control_command_name (CONTROL_THROTTLE), "THROTTLE");
}

/* ---- replies ---- */

static void
test_reply_is_ok (void **state)
{
  assert_true (control_reply_is_ok ("OK"));
  assert_true (control_reply_is_ok ("OK\n"));
  assert_true (control_reply_is_ok ("OK\r\n"));
  assert_true (control_reply_is_ok ("OK thawed"));
  assert_true (control_reply_is_ok ("OK size=1 block=4096\n"));
  assert_false (control_reply_is_ok ("OKAY"));
  assert_false (control_reply_is_ok ("OK=1"));
  assert_false (control_reply_is_ok ("ok"));
  assert_false (control_reply_is_ok (" OK"));
  assert_false (control_reply_is_ok ("O"));
  assert_false (control_reply_is_ok (""));
  assert_false (control_reply_is_ok ("ERR EBUSY OK"));
  assert_false (control_reply_is_ok (NULL));
}

static void
test_reply_error (void **state)
{
  const char *name, *message;
  size_t len;

  assert_int_equal (control_reply_error ("ERR EBUSY another connection owns the migration\n",
                                         &name, &len, &message), 0);
  assert_int_equal (len, 5);
  assert_memory_equal (name, "EBUSY", 5);
  assert_string_equal (message, "another connection owns the migration\n");

  assert_int_equal (control_reply_error ("ERR E2BIG", &name, &len, &message), 0);
  assert_int_equal (len, 5);
  assert_memory_equal (name, "E2BIG", 5);
  assert_string_equal (message, "");

  assert_int_equal (control_reply_error ("ERR  EPERM   not frozen", &name, &len,
                                         &message), 0);
  assert_int_equal (len, 5);
  assert_memory_equal (name, "EPERM", 5);
  assert_string_equal (message, "not frozen");

  errno = 0;
  assert_int_equal (control_reply_error ("OK", &name, &len, &message), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_reply_error ("ERR", &name, &len, &message), -1);
  assert_int_equal (control_reply_error ("ERR ", &name, &len, &message), -1);
  assert_int_equal (control_reply_error ("ERRX EIO x", &name, &len, &message), -1);
  assert_int_equal (control_reply_error ("ERR eio lower", &name, &len, &message), -1);
  assert_int_equal (control_reply_error ("ERR EIO:x", &name, &len, &message), -1);
  assert_int_equal (control_reply_error ("err EIO x", &name, &len, &message), -1);
  assert_int_equal (control_reply_error (NULL, &name, &len, &message), -1);
}

static void
test_reply_get_u64 (void **state)
{
  const char *status =
    "OK size=1073741824 block=65536 generation=3 undirty_blocks=7 "
    "dirty_blocks=16384 dirty_blocks_total=99 dirty_bytes=1073741824 "
    "state=tracking throttle=0\r\n";
  uint64_t v;

  assert_int_equal (control_reply_get_u64 (status, "size", &v), 0);
  assert_true (v == 1073741824ull);
  assert_int_equal (control_reply_get_u64 (status, "block", &v), 0);
  assert_true (v == 65536);
  /* The whole key must match: not inside "undirty_blocks", not the prefix
   * of "dirty_blocks_total". */
  assert_int_equal (control_reply_get_u64 (status, "dirty_blocks", &v), 0);
  assert_true (v == 16384);
  assert_int_equal (control_reply_get_u64 (status, "blocks", &v), -1);
  assert_int_equal (errno, ENOENT);
  assert_int_equal (control_reply_get_u64 (status, "dirty", &v), -1);
  assert_int_equal (errno, ENOENT);
  assert_int_equal (control_reply_get_u64 (status, "dirty_blocks_tot", &v), -1);
  assert_int_equal (errno, ENOENT);
  /* The last pair, before the "\r\n". */
  assert_int_equal (control_reply_get_u64 (status, "throttle", &v), 0);
  assert_true (v == 0);
  /* A value that is not a number. */
  assert_int_equal (control_reply_get_u64 (status, "state", &v), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_reply_get_u64 (status, "missing", &v), -1);
  assert_int_equal (errno, ENOENT);

  assert_int_equal (control_reply_get_u64 ("OK a=-1", "a", &v), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_reply_get_u64 ("OK a=", "a", &v), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_reply_get_u64 ("OK a=12x", "a", &v), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_reply_get_u64 ("OK a=18446744073709551616", "a", &v), -1);
  assert_int_equal (errno, ERANGE);
  assert_int_equal (control_reply_get_u64 ("OK a=18446744073709551615", "a", &v), 0);
  assert_true (v == UINT64_MAX);
  /* First occurrence wins; tabs separate too. */
  assert_int_equal (control_reply_get_u64 ("OK a=1\ta=2", "a", &v), 0);
  assert_true (v == 1);
  /* Nothing is found past the end of the line. */
  assert_int_equal (control_reply_get_u64 ("OK b=1\na=2", "a", &v), -1);
  assert_int_equal (errno, ENOENT);

  /* Only OK lines hold values, and keys are plain words. */
  assert_int_equal (control_reply_get_u64 ("ERR EIO size=5", "size", &v), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_reply_get_u64 ("OK a=1", "", &v), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_reply_get_u64 ("OK a=1=2", "a=1", &v), -1);
  assert_int_equal (errno, EINVAL);
}

static void
test_reply_get_string (void **state)
{
  const char *line = "OK state=frozen owner=you drain_ms=12\n";
  char value[16];

  assert_int_equal (control_reply_get_string (line, "state", value, sizeof value), 0);
  assert_string_equal (value, "frozen");
  assert_int_equal (control_reply_get_string (line, "owner", value, sizeof value), 0);
  assert_string_equal (value, "you");
  assert_int_equal (control_reply_get_string (line, "drain_ms", value, sizeof value), 0);
  assert_string_equal (value, "12");
  assert_int_equal (control_reply_get_string (line, "own", value, sizeof value), -1);
  assert_int_equal (errno, ENOENT);

  /* "frozen" needs 7 bytes with its NUL. */
  assert_int_equal (control_reply_get_string (line, "state", value, 7), 0);
  assert_string_equal (value, "frozen");
  assert_int_equal (control_reply_get_string (line, "state", value, 6), -1);
  assert_int_equal (errno, ERANGE);

  /* An empty value is a value. */
  assert_int_equal (control_reply_get_string ("OK uri=", "uri", value, sizeof value), 0);
  assert_string_equal (value, "");
}

static void
test_extent_lines (void **state)
{
  uint64_t off = 1, len = 1;

  assert_int_equal (control_parse_extent_line ("0 65536", &off, &len), 1);
  assert_true (off == 0 && len == 65536);
  assert_int_equal (control_parse_extent_line ("1048576 4096\n", &off, &len), 1);
  assert_true (off == 1048576 && len == 4096);
  assert_int_equal (control_parse_extent_line ("10 20\r\n", &off, &len), 1);
  assert_true (off == 10 && len == 20);
  assert_int_equal (control_parse_extent_line ("0 18446744073709551615", &off, &len), 1);
  assert_true (len == UINT64_MAX);

  assert_int_equal (control_parse_extent_line (".", &off, &len), 0);
  assert_int_equal (control_parse_extent_line (".\n", &off, &len), 0);
  assert_int_equal (control_parse_extent_line (".\r\n", &off, &len), 0);

  errno = 0;
  assert_int_equal (control_parse_extent_line ("", &off, &len), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_parse_extent_line ("..", &off, &len), -1);
  assert_int_equal (control_parse_extent_line (". ", &off, &len), -1);
  assert_int_equal (control_parse_extent_line ("0", &off, &len), -1);
  assert_int_equal (control_parse_extent_line ("0 1 2", &off, &len), -1);
  assert_int_equal (control_parse_extent_line ("-1 4096", &off, &len), -1);
  assert_int_equal (control_parse_extent_line ("0 0x1000", &off, &len), -1);
  assert_int_equal (control_parse_extent_line ("OK generation=1", &off, &len), -1);
  assert_int_equal (control_parse_extent_line ("0 4096 \x01", &off, &len), -1);
  /* An empty extent, and one that wraps around 2^64. */
  assert_int_equal (control_parse_extent_line ("4096 0", &off, &len), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (control_parse_extent_line ("18446744073709551615 1", &off, &len), -1);
  assert_int_equal (errno, ERANGE);
  assert_int_equal (control_parse_extent_line ("1 18446744073709551616", &off, &len), -1);
  assert_int_equal (errno, ERANGE);
  assert_int_equal (control_parse_extent_line (NULL, &off, &len), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plain_commands),
    cmocka_unit_test (test_plain_commands_extra_args),
    cmocka_unit_test (test_reset_resume_migration_id),
    cmocka_unit_test (test_unknown_and_empty),
    cmocka_unit_test (test_confirm),
    cmocka_unit_test (test_confirm_bad),
    cmocka_unit_test (test_throttle),
    cmocka_unit_test (test_flip),
    cmocka_unit_test (test_flip_uri_length),
    cmocka_unit_test (test_preconnect),
    cmocka_unit_test (test_line_limit),
    cmocka_unit_test (test_bad_bytes),
    cmocka_unit_test (test_length_is_honoured),
    cmocka_unit_test (test_command_names),
    cmocka_unit_test (test_reply_is_ok),
    cmocka_unit_test (test_reply_error),
    cmocka_unit_test (test_reply_get_u64),
    cmocka_unit_test (test_reply_get_string),
    cmocka_unit_test (test_extent_lines),
    cmocka_unit_test (test_mirror),
    cmocka_unit_test (test_mirror_wait),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
