/* SPDX-License-Identifier: BSD-3-Clause */
/* stm unit test: stm-send's command socket (sender/command_server.c).
 *
 * The parser is tested as a pure function.  The server is driven on a
 * real libev loop over a real Unix socket in a private directory: clients
 * are plain non-blocking sockets, and every wait turns the loop a bounded
 * number of times (at most WAIT_MS), so a server that never answers fails
 * the test instead of hanging it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "command_server.h"

#define WAIT_MS 2000

/* --- the parser ---------------------------------------------------- */

static void
expect_command (const char *line, enum command want)
{
  enum command cmd = (enum command) -1;
  const char *name = NULL, *why = NULL;

  assert_int_equal (command_parse (line, strlen (line), &cmd, &name, &why), 0);
  assert_int_equal (cmd, want);
}

static void
expect_error (const char *line, size_t len, const char *want_name,
              const char *want_why_part)
{
  enum command cmd;
  const char *name = NULL, *why = NULL;

  assert_int_equal (command_parse (line, len, &cmd, &name, &why), -1);
  assert_string_equal (name, want_name);
  assert_non_null (strstr (why, want_why_part));
}

static void
test_parse_commands (void **state)
{
  expect_command ("STATUS", COMMAND_STATUS);
  expect_command ("STATUS\n", COMMAND_STATUS);
  expect_command ("status\r\n", COMMAND_STATUS);
  expect_command ("  CutOver \t\n", COMMAND_CUTOVER);
  expect_command ("ABORT\r\n", COMMAND_ABORT);
  assert_string_equal (command_name (COMMAND_CUTOVER), "CUTOVER");
  assert_string_equal (command_name (COMMAND_ABORT), "ABORT");
  assert_string_equal (command_name (COMMAND_STATUS), "STATUS");
}

static void
test_parse_garbage (void **state)
{
  char line[COMMAND_MAX_LINE + 1];

  expect_error ("", 0, "EINVAL", "empty");
  expect_error (" \t\r\n", 4, "EINVAL", "empty");
  expect_error ("CUTOVERS\n", 9, "EINVAL", "unknown command");
  expect_error ("CUT\n", 4, "EINVAL", "unknown command");
  expect_error ("FREEZE\n", 7, "EINVAL", "unknown command");
  expect_error ("CUTOVER now\n", 12, "EINVAL", "CUTOVER takes no arguments");
  expect_error ("STATUS x", 8, "EINVAL", "STATUS takes no arguments");
  expect_error ("ABORT 1\n", 8, "EINVAL", "ABORT takes no arguments");
  expect_error ("STA\x01TUS\n", 8, "EINVAL", "control character");
  expect_error ("ABORT\x7f\n", 7, "EINVAL", "control character");
  expect_error ("STATUS\0\n", 8, "EINVAL", "NUL");

  /* The limit counts the newline: 255 characters and a newline are a
   * line (an unknown command), 256 and a newline are too long. */
  memset (line, 'x', sizeof line);
  line[COMMAND_MAX_LINE - 1] = '\n';
  expect_error (line, COMMAND_MAX_LINE, "EINVAL", "unknown command");
  line[COMMAND_MAX_LINE - 1] = 'x';
  line[COMMAND_MAX_LINE] = '\n';
  expect_error (line, COMMAND_MAX_LINE + 1, "E2BIG", "longer than 256");
  /* The same without the newline. */
  expect_error (line, COMMAND_MAX_LINE, "E2BIG", "longer than 256");
}

/* --- a server on a real loop --------------------------------------- */

struct fixture {
  char dir[64];
  char path[128];
  struct ev_loop *loop;
  struct command_server *srv;
  /* What the callbacks saw and do. */
  unsigned statuses, cutovers, aborts;
  int defer;                            /* hold CUTOVER's reply */
  struct command_reply *held;
};

static void
fake_status (void *opaque, char *text, size_t size)
{
  struct fixture *f = opaque;

  f->statuses++;
  snprintf (text, size, "phase=ready pass=%u dirty_bytes=65536 "
            "predicted_downtime_ms=12 ready=1", f->statuses);
}

static void
fake_cutover (void *opaque, struct command_reply *reply)
{
  struct fixture *f = opaque;

  f->cutovers++;
  if (f->defer) {
    assert_null (f->held);
    f->held = reply;
  }
  else
    command_reply_ok (reply, "flipped downtime_ms=%d", 42);
}

static void
fake_abort (void *opaque, struct command_reply *reply)
{
  struct fixture *f = opaque;

  f->aborts++;
  command_reply_ok (reply, "aborted: the source is thawed and authoritative");
}

static const struct command_callbacks callbacks = {
  .status = fake_status, .cutover = fake_cutover, .abort = fake_abort,
};

static int
setup (void **state)
{
  struct fixture *f = calloc (1, sizeof *f);

  assert_non_null (f);
  strcpy (f->dir, "/tmp/stm-test-command-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  snprintf (f->path, sizeof f->path, "%s/command.sock", f->dir);
  f->loop = ev_loop_new (EVFLAG_AUTO);
  assert_non_null (f->loop);
  f->srv = command_server_new (f->loop, f->path, &callbacks, f);
  assert_non_null (f->srv);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;

  command_server_free (f->srv);
  if (f->held)
    command_reply_ok (f->held, "dropped");
  ev_loop_destroy (f->loop);
  unlink (f->path);
  rmdir (f->dir);
  free (f);
  return 0;
}

static long
elapsed_ms (const struct timespec *start)
{
  struct timespec now;

  clock_gettime (CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start->tv_sec) * 1000 +
    (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Turn the loop for about ms milliseconds. */
static void
spin (struct fixture *f, long ms)
{
  struct timespec start;

  clock_gettime (CLOCK_MONOTONIC, &start);
  do {
    ev_run (f->loop, EVRUN_NOWAIT);
    usleep (1000);
  } while (elapsed_ms (&start) < ms);
}

static int
client (struct fixture *f)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  strcpy (addr.sun_path, f->path);
  assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
  assert_int_equal (fcntl (fd, F_SETFL, O_NONBLOCK), 0);
  return fd;
}

static void
say (int fd, const char *text)
{
  size_t len = strlen (text);

  assert_int_equal (send (fd, text, len, MSG_NOSIGNAL), (ssize_t) len);
}

/* Read one reply line (without its newline) while turning the loop.
 * Returns 0, or -1 at EOF. */
static int
read_line (struct fixture *f, int fd, char *buf, size_t size)
{
  struct timespec start;
  size_t len = 0;

  clock_gettime (CLOCK_MONOTONIC, &start);
  while (elapsed_ms (&start) < WAIT_MS) {
    char c;
    ssize_t n = recv (fd, &c, 1, MSG_DONTWAIT);

    if (n == 1) {
      if (c == '\n') {
        buf[len] = '\0';
        return 0;
      }
      assert_true (len + 1 < size);
      buf[len++] = c;
      continue;
    }
    if (n == 0 || (n == -1 && errno == ECONNRESET))
      return -1;
    assert_true (errno == EAGAIN || errno == EWOULDBLOCK);
    ev_run (f->loop, EVRUN_NOWAIT);
    usleep (1000);
  }
  fail_msg ("no reply line within %d ms (got %zu bytes)", WAIT_MS, len);
  return -1;
}

static void
expect_reply (struct fixture *f, int fd, const char *want)
{
  char line[COMMAND_MAX_REPLY + 1];

  assert_int_equal (read_line (f, fd, line, sizeof line), 0);
  assert_string_equal (line, want);
}

static void
expect_reply_prefix (struct fixture *f, int fd, const char *want)
{
  char line[COMMAND_MAX_REPLY + 1];

  assert_int_equal (read_line (f, fd, line, sizeof line), 0);
  if (strncmp (line, want, strlen (want)) != 0)
    fail_msg ("reply \"%s\" does not start with \"%s\"", line, want);
}

static void
expect_eof (struct fixture *f, int fd)
{
  char line[COMMAND_MAX_REPLY + 1];

  assert_int_equal (read_line (f, fd, line, sizeof line), -1);
}

/* Nothing arrives on fd while the loop turns for ms. */
static void
expect_silence (struct fixture *f, int fd, long ms)
{
  char c;

  spin (f, ms);
  assert_int_equal (recv (fd, &c, 1, MSG_DONTWAIT), -1);
  assert_true (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void
test_socket_file (void **state)
{
  struct fixture *f = *state;
  struct stat sb;

  assert_int_equal (lstat (f->path, &sb), 0);
  assert_true (S_ISSOCK (sb.st_mode));
  assert_int_equal (sb.st_mode & 0777, 0600);
  command_server_free (f->srv);
  f->srv = NULL;
  assert_int_equal (lstat (f->path, &sb), -1);
  assert_int_equal (errno, ENOENT);
}

static void
test_stale_and_live_socket (void **state)
{
  struct fixture *f = *state;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct command_server *other;
  int fd, stale;

  /* A live server: a second one on the same path is refused, and the
   * first goes on answering. */
  other = command_server_new (f->loop, f->path, &callbacks, f);
  assert_null (other);
  fd = client (f);
  say (fd, "STATUS\n");
  expect_reply_prefix (f, fd, "OK phase=ready");
  close (fd);

  /* A stale socket (bound, then its process gone) is replaced. */
  command_server_free (f->srv);
  f->srv = NULL;
  stale = socket (AF_UNIX, SOCK_STREAM, 0);
  strcpy (addr.sun_path, f->path);
  assert_int_equal (bind (stale, (struct sockaddr *) &addr, sizeof addr), 0);
  close (stale);
  f->srv = command_server_new (f->loop, f->path, &callbacks, f);
  assert_non_null (f->srv);
  fd = client (f);
  say (fd, "STATUS\n");
  expect_reply_prefix (f, fd, "OK phase=ready");
  close (fd);

  /* Something that is not a socket is left alone. */
  command_server_free (f->srv);
  f->srv = NULL;
  fd = open (f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true (fd >= 0);
  close (fd);
  assert_null (command_server_new (f->loop, f->path, &callbacks, f));
  assert_int_equal (access (f->path, F_OK), 0);
  unlink (f->path);
}

static void
test_status_cutover_abort (void **state)
{
  struct fixture *f = *state;
  int fd = client (f);

  say (fd, "STATUS\n");
  expect_reply (f, fd, "OK phase=ready pass=1 dirty_bytes=65536 "
                "predicted_downtime_ms=12 ready=1");
  say (fd, "cutover\r\n");
  expect_reply (f, fd, "OK flipped downtime_ms=42");
  say (fd, "ABORT\nstatus\n");
  expect_reply (f, fd, "OK aborted: the source is thawed and authoritative");
  expect_reply_prefix (f, fd, "OK phase=ready pass=2 ");
  assert_int_equal (f->cutovers, 1);
  assert_int_equal (f->aborts, 1);
  close (fd);
}

static void
test_garbage (void **state)
{
  struct fixture *f = *state;
  int a = client (f), b = client (f);

  say (a, "HELLO\n");
  expect_reply (f, a, "ERR EINVAL unknown command (STATUS, CUTOVER or ABORT)");
  say (a, "CUTOVER please\n");
  expect_reply (f, a, "ERR EINVAL CUTOVER takes no arguments");
  say (a, "\n");
  expect_reply (f, a, "ERR EINVAL empty command");
  say (a, "\x1b[A\n");
  expect_reply (f, a, "ERR EINVAL command contains a control character");
  /* Garbage neither closed a nor disturbed b, and nothing was executed. */
  say (b, "STATUS\n");
  expect_reply_prefix (f, b, "OK phase=ready");
  say (a, "STATUS\n");
  expect_reply_prefix (f, a, "OK phase=ready");
  assert_int_equal (f->cutovers, 0);
  close (a);
  close (b);
}

static void
test_long_and_partial_lines (void **state)
{
  struct fixture *f = *state;
  char big[3 * COMMAND_MAX_LINE];
  int fd = client (f);

  /* A command in pieces is buffered until its newline. */
  say (fd, "STA");
  expect_silence (f, fd, 50);
  say (fd, "TU");
  expect_silence (f, fd, 20);
  say (fd, "S\nCUT");
  expect_reply_prefix (f, fd, "OK phase=ready");
  say (fd, "OVER\n");
  expect_reply (f, fd, "OK flipped downtime_ms=42");

  /* An over-long line is answered once, skipped to its newline, and the
   * next command works.  Even a "CUTOVER" hidden at its end is not run. */
  memset (big, 'x', sizeof big);
  memcpy (big + sizeof big - 8, "CUTOVER", 7);
  big[sizeof big - 1] = '\0';
  say (fd, big);
  say (fd, "\nSTATUS\n");
  expect_reply (f, fd, "ERR E2BIG command line longer than 256 bytes; ignored");
  expect_reply_prefix (f, fd, "OK phase=ready");
  assert_int_equal (f->cutovers, 1);
  close (fd);
}

static void
test_too_many_clients (void **state)
{
  struct fixture *f = *state;
  int fds[COMMAND_MAX_CLIENTS], extra, i;

  for (i = 0; i < COMMAND_MAX_CLIENTS; i++) {
    fds[i] = client (f);
    say (fds[i], "STATUS\n");
    expect_reply_prefix (f, fds[i], "OK phase=ready");
  }
  assert_int_equal (command_server_clients (f->srv), COMMAND_MAX_CLIENTS);

  extra = client (f);
  expect_reply (f, extra, "ERR EMFILE too many command connections (at most 4 "
                "at once); closing this one");
  expect_eof (f, extra);
  close (extra);

  /* The others are still served; a freed slot is taken again. */
  say (fds[0], "STATUS\n");
  expect_reply_prefix (f, fds[0], "OK phase=ready");
  close (fds[1]);
  spin (f, 20);
  assert_int_equal (command_server_clients (f->srv), COMMAND_MAX_CLIENTS - 1);
  fds[1] = client (f);
  say (fds[1], "STATUS\n");
  expect_reply_prefix (f, fds[1], "OK phase=ready");
  for (i = 0; i < COMMAND_MAX_CLIENTS; i++)
    close (fds[i]);
  spin (f, 20);
  assert_int_equal (command_server_clients (f->srv), 0);
}

static void
test_deferred_reply (void **state)
{
  struct fixture *f = *state;
  int a = client (f), b = client (f);

  f->defer = 1;
  /* The STATUS after CUTOVER waits for CUTOVER's reply: replies come in
   * request order.  Another client is served meanwhile. */
  say (a, "CUTOVER\nSTATUS\n");
  expect_silence (f, a, 50);
  assert_non_null (f->held);
  assert_int_equal (f->statuses, 0);
  say (b, "STATUS\n");
  expect_reply_prefix (f, b, "OK phase=ready pass=1 ");

  command_reply_err (f->held, "EAGAIN", "not ready: dirty_bytes=%d", 5242880);
  f->held = NULL;
  expect_reply (f, a, "ERR EAGAIN not ready: dirty_bytes=5242880");
  expect_reply_prefix (f, a, "OK phase=ready pass=2 ");

  /* A second CUTOVER, completed later with a multi-line text: the reply
   * stays one line. */
  say (a, "CUTOVER\n");
  expect_silence (f, a, 20);
  assert_non_null (f->held);
  command_reply_ok (f->held, "flipped downtime_ms=%d\nextra", 17);
  f->held = NULL;
  expect_reply (f, a, "OK flipped downtime_ms=17 extra");
  assert_int_equal (f->cutovers, 2);
  close (a);
  close (b);
}

static void
test_client_gone_before_reply (void **state)
{
  struct fixture *f = *state;
  int fd = client (f);

  f->defer = 1;
  say (fd, "CUTOVER\n");
  spin (f, 20);
  assert_non_null (f->held);
  close (fd);
  spin (f, 20);
  /* The command is not cancelled; completing it later is harmless and
   * frees the slot. */
  command_reply_ok (f->held, "flipped downtime_ms=3");
  f->held = NULL;
  spin (f, 20);
  assert_int_equal (command_server_clients (f->srv), 0);

  /* A client that only shut its sending side gets its reply, then EOF. */
  fd = client (f);
  say (fd, "CUTOVER");
  assert_int_equal (shutdown (fd, SHUT_WR), 0);
  spin (f, 20);
  assert_non_null (f->held);
  command_reply_ok (f->held, "flipped downtime_ms=4");
  f->held = NULL;
  expect_reply (f, fd, "OK flipped downtime_ms=4");
  expect_eof (f, fd);
  close (fd);

  fd = client (f);
  f->defer = 0;
  say (fd, "CUTOVER\n");
  expect_reply (f, fd, "OK flipped downtime_ms=42");
  close (fd);
}

static void
test_free_with_reply_pending (void **state)
{
  struct fixture *f = *state;
  int fd = client (f);

  f->defer = 1;
  say (fd, "CUTOVER\n");
  spin (f, 20);
  assert_non_null (f->held);
  command_server_free (f->srv);
  f->srv = NULL;
  expect_eof (f, fd);
  assert_int_equal (access (f->path, F_OK), -1);
  /* The handle outlives the server; completing it just frees it. */
  command_reply_ok (f->held, "flipped downtime_ms=1");
  f->held = NULL;
  close (fd);
}

/* A reply completed just before the server is freed, with no turn of
 * the loop in between (ABORT, then exit), still reaches its client. */
static void
test_free_after_reply (void **state)
{
  struct fixture *f = *state;
  int fd = client (f);

  f->defer = 1;
  say (fd, "CUTOVER\n");
  spin (f, 20);
  assert_non_null (f->held);
  command_reply_ok (f->held, "flipped downtime_ms=%d", 5);
  f->held = NULL;
  command_server_free (f->srv);
  f->srv = NULL;
  expect_reply (f, fd, "OK flipped downtime_ms=5");
  expect_eof (f, fd);
  close (fd);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_commands),
    cmocka_unit_test (test_parse_garbage),
    cmocka_unit_test_setup_teardown (test_socket_file, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stale_and_live_socket, setup, teardown),
    cmocka_unit_test_setup_teardown (test_status_cutover_abort, setup, teardown),
    cmocka_unit_test_setup_teardown (test_garbage, setup, teardown),
    cmocka_unit_test_setup_teardown (test_long_and_partial_lines, setup, teardown),
    cmocka_unit_test_setup_teardown (test_too_many_clients, setup, teardown),
    cmocka_unit_test_setup_teardown (test_deferred_reply, setup, teardown),
    cmocka_unit_test_setup_teardown (test_client_gone_before_reply, setup, teardown),
    cmocka_unit_test_setup_teardown (test_free_with_reply_pending, setup, teardown),
    cmocka_unit_test_setup_teardown (test_free_after_reply, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
