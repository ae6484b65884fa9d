/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the operator's command socket (see command_server.h).
 *
 * Every socket is non-blocking and watched by an ev_io on the sender's
 * loop, so a client that stops reading, or sends half a line and waits,
 * holds up nobody.  Each client has fixed buffers: input is read while
 * there is room (a line longer than the buffer is answered E2BIG and
 * skipped), and a command is executed only when the previous reply has
 * been completed and there is room to queue the next one; that is the
 * back-pressure that keeps memory fixed and replies in request order.
 *
 * A deferred reply is completed from the caller's code, possibly from
 * inside one of our own callbacks.  To never re-enter a client's
 * processing (or the caller's callbacks) from there, completion only
 * queues the text and feeds an event to the client's watcher; the loop
 * then sends it and goes on with the client's next command.
 */
#include <config.h>

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "command_server.h"
#include "unix_socket.h"
#include "log.h"

#define STRINGIFY(x) STRINGIFY_ (x)
#define STRINGIFY_(x) #x

/* After accept() fails for lack of file descriptors the listening socket
 * stays readable; wait this long rather than spin. */
#define ACCEPT_BACKOFF_S 0.1

static const char too_many_clients[] =
  "ERR EMFILE too many command connections (at most "
  STRINGIFY (COMMAND_MAX_CLIENTS) " at once); closing this one\n";

struct client {
  struct command_server *srv;
  int fd;                               /* -1: slot free */
  ev_io io;
  char in[COMMAND_MAX_LINE];            /* unprocessed input */
  size_t in_len;
  bool discarding;                      /* skipping an over-long line */
  bool input_closed;                    /* the peer shut down its side */
  char out[2 * COMMAND_MAX_REPLY];
  size_t out_start, out_end;            /* pending output: out[start..end) */
  struct command_reply *pending;        /* the reply still owed, or NULL */
};

struct command_reply {
  struct client *client;                /* NULL: the client has gone */
};

struct command_server {
  struct ev_loop *loop;
  char *path;
  int listen_fd;
  ev_io listen_io;
  ev_timer backoff;
  dev_t dev;                            /* the socket file we created */
  ino_t ino;
  struct command_callbacks cb;
  void *opaque;
  struct client clients[COMMAND_MAX_CLIENTS];
};

/* --- the parser ---------------------------------------------------- */

static const struct {
  const char *word;
  enum command cmd;
  const char *why_extra;
} commands[] = {
  { "STATUS", COMMAND_STATUS, "STATUS takes no arguments" },
  { "CUTOVER", COMMAND_CUTOVER, "CUTOVER takes no arguments" },
  { "ABORT", COMMAND_ABORT, "ABORT takes no arguments" },
};

#define FAIL(name, text) \
  do { *errno_name = (name); *why = (text); return -1; } while (0)

int
command_parse (const char *line, size_t len, enum command *cmd,
               const char **errno_name, const char **why)
{
  size_t i, start, end, wlen;

  assert (line != NULL || len == 0);
  if (len > 0 && line[len - 1] == '\n')
    len--;
  /* The limit counts the newline, whether or not the caller passed it. */
  if (len > COMMAND_MAX_LINE - 1)
    FAIL ("E2BIG", "command line longer than "
          STRINGIFY (COMMAND_MAX_LINE) " bytes");
  if (len > 0 && line[len - 1] == '\r')
    len--;

  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char) line[i];

    if (c == '\0')
      FAIL ("EINVAL", "command contains a NUL byte");
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      FAIL ("EINVAL", "command contains a control character");
  }

  for (start = 0; start < len && isblank ((unsigned char) line[start]); start++)
    ;
  for (end = start; end < len && !isblank ((unsigned char) line[end]); end++)
    ;
  wlen = end - start;
  if (wlen == 0)
    FAIL ("EINVAL", "empty command");
  while (end < len && isblank ((unsigned char) line[end]))
    end++;

  for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strlen (commands[i].word) == wlen &&
        strncasecmp (line + start, commands[i].word, wlen) == 0) {
      if (end < len)
        FAIL ("EINVAL", commands[i].why_extra);
      *cmd = commands[i].cmd;
      return 0;
    }
  }
  FAIL ("EINVAL", "unknown command (STATUS, CUTOVER or ABORT)");
}

const char *
command_name (enum command cmd)
{
  switch (cmd) {
  case COMMAND_STATUS: return "STATUS";
  case COMMAND_CUTOVER: return "CUTOVER";
  case COMMAND_ABORT: return "ABORT";
  }
  return "unknown";
}

/* --- output -------------------------------------------------------- */

/* Room for one more reply?  Compacts the buffer when that makes room. */
static bool
output_has_room (struct client *c)
{
  if (c->out_start == c->out_end)
    c->out_start = c->out_end = 0;
  if (sizeof c->out - c->out_end < COMMAND_MAX_REPLY && c->out_start > 0) {
    memmove (c->out, c->out + c->out_start, c->out_end - c->out_start);
    c->out_end -= c->out_start;
    c->out_start = 0;
  }
  return sizeof c->out - c->out_end >= COMMAND_MAX_REPLY;
}

/* Queue "OK TEXT\n" or "ERR NAME TEXT\n" (name NULL for OK) as one line:
 * it is cut short to fit COMMAND_MAX_REPLY, and any line break in it
 * becomes a space so that a reply is always exactly one line. */
static void
queue_reply (struct client *c, const char *name, const char *text)
{
  char line[COMMAND_MAX_REPLY];
  int n;
  size_t len, i;

  n = snprintf (line, sizeof line - 1, "%s%s%s%s%s",
                name ? "ERR " : "OK", name ? name : "",
                name && text[0] ? " " : "", !name && text[0] ? " " : "",
                text);
  len = n < 0 ? 0 : (size_t) n;
  if (len > sizeof line - 2)
    len = sizeof line - 2;
  for (i = 0; i < len; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ' ';
  line[len++] = '\n';

  assert (output_has_room (c));
  memcpy (c->out + c->out_end, line, len);
  c->out_end += len;
}

/* --- clients ------------------------------------------------------- */

static void client_cb (struct ev_loop *loop, ev_io *w, int revents);

static void
client_close (struct client *c)
{
  ev_io_stop (c->srv->loop, &c->io);
  close (c->fd);
  c->fd = -1;
  /* The command goes on; its reply, when completed, is dropped. */
  if (c->pending != NULL) {
    c->pending->client = NULL;
    c->pending = NULL;
  }
}

static bool
output_pending (const struct client *c)
{
  return c->out_start < c->out_end;
}

/* Does the input hold something process_input would act on? */
static bool
input_actionable (const struct client *c)
{
  return memchr (c->in, '\n', c->in_len) != NULL ||
    c->in_len == sizeof c->in || (c->input_closed && c->in_len > 0);
}

static void
execute_line (struct client *c, const char *line, size_t len)
{
  struct command_server *srv = c->srv;
  enum command cmd;
  const char *errno_name, *why;
  char text[COMMAND_MAX_REPLY - 4];
  struct command_reply *reply;

  if (command_parse (line, len, &cmd, &errno_name, &why) == -1) {
    queue_reply (c, errno_name, why);
    return;
  }
  if (cmd == COMMAND_STATUS) {
    text[0] = '\0';
    srv->cb.status (srv->opaque, text, sizeof text);
    text[sizeof text - 1] = '\0';
    queue_reply (c, NULL, text);
    return;
  }

  reply = malloc (sizeof *reply);
  if (reply == NULL) {
    queue_reply (c, "ENOMEM", "out of memory; the command was not executed");
    return;
  }
  reply->client = c;
  c->pending = reply;
  /* The callback may complete the reply before it returns. */
  if (cmd == COMMAND_CUTOVER)
    srv->cb.cutover (srv->opaque, reply);
  else
    srv->cb.abort (srv->opaque, reply);
}

/* Execute the complete lines in the input buffer, one at a time, while
 * no reply is owed and there is room for the next one. */
static void
process_input (struct client *c)
{
  while (c->fd >= 0 && c->pending == NULL && output_has_room (c)) {
    char *newline = memchr (c->in, '\n', c->in_len);
    size_t line_len;

    if (newline == NULL) {
      if (c->in_len == sizeof c->in) {
        /* A full buffer and no newline: answer once, then skip
         * everything up to the next newline. */
        if (!c->discarding)
          queue_reply (c, "E2BIG", "command line longer than "
                     STRINGIFY (COMMAND_MAX_LINE) " bytes; ignored");
        c->discarding = true;
        c->in_len = 0;
        continue;
      }
      if (c->input_closed && c->in_len > 0) {
        /* A last line without its newline (echo -n STATUS | socat ...). */
        if (!c->discarding)
          execute_line (c, c->in, c->in_len);
        c->in_len = 0;
        c->discarding = false;
      }
      return;
    }

    line_len = (size_t) (newline - c->in);
    if (c->discarding)
      c->discarding = false;
    else
      execute_line (c, c->in, line_len);
    c->in_len -= line_len + 1;
    memmove (c->in, newline + 1, c->in_len);
  }
}

/* Send what is queued.  Returns -1 if the connection is broken. */
static int
flush_output (struct client *c)
{
  while (output_pending (c)) {
    ssize_t n = send (c->fd, c->out + c->out_start, c->out_end - c->out_start,
                      MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n == -1) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      return -1;
    }
    c->out_start += (size_t) n;
  }
  return 0;
}

static void
read_input (struct client *c)
{
  ssize_t n;

  if (c->input_closed || c->in_len == sizeof c->in)
    return;
  n = recv (c->fd, c->in + c->in_len, sizeof c->in - c->in_len, MSG_DONTWAIT);
  if (n > 0)
    c->in_len += (size_t) n;
  else if (n == 0)
    c->input_closed = true;
  else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    c->input_closed = true;
}

/* Watch for what the client's state needs: room to send, or input (also
 * while a reply is owed, so that a client that leaves is noticed). */
static void
update_watcher (struct client *c)
{
  int events = 0;

  if (output_pending (c))
    events |= EV_WRITE;
  if (!c->input_closed && c->in_len < sizeof c->in)
    events |= EV_READ;
  if (events != (c->io.events & (EV_READ | EV_WRITE)) ||
      !ev_is_active (&c->io)) {
    ev_io_stop (c->srv->loop, &c->io);
    ev_io_set (&c->io, c->fd, events);
    if (events)
      ev_io_start (c->srv->loop, &c->io);
  }
}

static void
client_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct client *c = w->data;

  if (c->fd < 0)
    return;
  if (revents & EV_READ)
    read_input (c);

  /* Alternate between executing commands and sending their replies until
   * the input runs out of whole lines, a reply is owed, or the peer stops
   * reading. */
  for (;;) {
    process_input (c);
    if (flush_output (c) == -1) {
      client_close (c);
      return;
    }
    if (output_pending (c) || c->pending != NULL || !input_actionable (c))
      break;
  }

  if (c->input_closed && !output_pending (c) && c->pending == NULL &&
      c->in_len == 0) {
    client_close (c);
    return;
  }
  update_watcher (c);
}

static void
client_open (struct command_server *srv, int fd)
{
  size_t i;

  for (i = 0; i < COMMAND_MAX_CLIENTS; i++) {
    struct client *c = &srv->clients[i];

    if (c->fd == -1) {
      c->fd = fd;
      c->in_len = 0;
      c->discarding = false;
      c->input_closed = false;
      c->out_start = c->out_end = 0;
      c->pending = NULL;
      ev_io_init (&c->io, client_cb, fd, EV_READ);
      c->io.data = c;
      ev_io_start (srv->loop, &c->io);
      return;
    }
  }

  /* Every slot is taken.  Say why (best effort: the line is short and the
   * new socket's buffer empty) and let the client go. */
  if (send (fd, too_many_clients, sizeof too_many_clients - 1,
            MSG_NOSIGNAL | MSG_DONTWAIT) == -1)
    log_warning ("command socket %s: refusing a connection: send: %m",
                 srv->path);
  close (fd);
}

static void
backoff_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct command_server *srv = w->data;

  ev_io_start (loop, &srv->listen_io);
}

static void
accept_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct command_server *srv = w->data;

  for (;;) {
    int fd = accept4 (srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd >= 0) {
      client_open (srv, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return;
    log_warning ("command socket %s: accept: %m; not accepting connections "
                 "for %g s", srv->path, ACCEPT_BACKOFF_S);
    ev_io_stop (loop, &srv->listen_io);
    ev_timer_set (&srv->backoff, ACCEPT_BACKOFF_S, 0.);
    ev_timer_start (loop, &srv->backoff);
    return;
  }
}

size_t
command_server_clients (const struct command_server *srv)
{
  size_t i, n = 0;

  for (i = 0; i < COMMAND_MAX_CLIENTS; i++)
    if (srv->clients[i].fd >= 0)
      n++;
  return n;
}

/* --- deferred replies ---------------------------------------------- */

/* name NULL: an OK reply. */
static void
reply_complete (struct command_reply *reply, const char *name,
                const char *fmt, va_list args)
{
  struct client *c = reply->client;
  char text[COMMAND_MAX_REPLY];

  if (c != NULL) {
    assert (c->pending == reply);
    vsnprintf (text, sizeof text, fmt, args);
    c->pending = NULL;
    queue_reply (c, name, text);
    /* Send from the loop, not from inside the caller's code. */
    ev_feed_event (c->srv->loop, &c->io, EV_WRITE);
  }
  free (reply);
}

void
command_reply_ok (struct command_reply *reply, const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  reply_complete (reply, NULL, fmt, args);
  va_end (args);
}

void
command_reply_err (struct command_reply *reply, const char *errno_name,
                   const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  reply_complete (reply, errno_name, fmt, args);
  va_end (args);
}

/* --- the socket file ----------------------------------------------- */

/* Make way for our socket at path (unix_socket.h). */
static int
clear_stale_socket (const char *path, const struct sockaddr_un *addr)
{
  char why[256];
  bool removed;

  if (unix_socket_clear_stale (addr, &removed, why, sizeof why) == -1) {
    log_error ("--command-socket %s %s (the source is untouched)", path, why);
    return -1;
  }
  return 0;
}

/* Create, bind (mode 0600) and listen.  Returns the fd or -1. */
static int
listen_on (struct command_server *srv)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  size_t len = strlen (srv->path);
  struct stat sb;
  mode_t old_umask;
  int fd, r;

  if (len == 0 || len >= sizeof addr.sun_path) {
    log_error ("--command-socket %s: the path is empty or too long for a "
               "Unix socket (%zu bytes, at most %zu)",
               srv->path, len, sizeof addr.sun_path - 1);
    return -1;
  }
  memcpy (addr.sun_path, srv->path, len + 1);
  if (clear_stale_socket (srv->path, &addr) == -1)
    return -1;

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd == -1) {
    log_error ("--command-socket %s: socket: %m", srv->path);
    return -1;
  }
  /* Mode 0600 from the start: a chmod after bind would leave a moment in
   * which anybody could connect and cut over.  The umask is per process,
   * so this runs before stm-send starts any thread. */
  old_umask = umask (0177);
  r = bind (fd, (const struct sockaddr *) &addr, sizeof addr);
  umask (old_umask);
  if (r == -1) {
    log_error ("--command-socket %s: bind: %m", srv->path);
    close (fd);
    return -1;
  }
  if (lstat (srv->path, &sb) == -1 || listen (fd, COMMAND_MAX_CLIENTS) == -1) {
    log_error ("--command-socket %s: listen: %m", srv->path);
    close (fd);
    unlink (srv->path);
    return -1;
  }
  srv->dev = sb.st_dev;
  srv->ino = sb.st_ino;
  return fd;
}

struct command_server *
command_server_new (struct ev_loop *loop, const char *path,
                    const struct command_callbacks *cb, void *opaque)
{
  struct command_server *srv;
  size_t i;

  assert (cb->status && cb->cutover && cb->abort);
  srv = calloc (1, sizeof *srv);
  if (srv == NULL || (srv->path = strdup (path)) == NULL) {
    log_error ("--command-socket %s: out of memory", path);
    free (srv);
    return NULL;
  }
  srv->loop = loop;
  srv->cb = *cb;
  srv->opaque = opaque;
  for (i = 0; i < COMMAND_MAX_CLIENTS; i++) {
    srv->clients[i].srv = srv;
    srv->clients[i].fd = -1;
  }

  srv->listen_fd = listen_on (srv);
  if (srv->listen_fd == -1) {
    free (srv->path);
    free (srv);
    return NULL;
  }
  ev_io_init (&srv->listen_io, accept_cb, srv->listen_fd, EV_READ);
  srv->listen_io.data = srv;
  ev_io_start (loop, &srv->listen_io);
  ev_timer_init (&srv->backoff, backoff_cb, ACCEPT_BACKOFF_S, 0.);
  srv->backoff.data = srv;
  return srv;
}

void
command_server_free (struct command_server *srv)
{
  struct stat sb;
  size_t i;

  if (srv == NULL)
    return;
  /* Replies completed just before (ABORT's, as stm-send exits) have not
   * been sent by the loop yet: send what the sockets take now.  A reply
   * is a short line into a socket buffer that is normally empty. */
  for (i = 0; i < COMMAND_MAX_CLIENTS; i++) {
    if (srv->clients[i].fd >= 0) {
      flush_output (&srv->clients[i]);
      client_close (&srv->clients[i]);
    }
  }
  ev_io_stop (srv->loop, &srv->listen_io);
  ev_timer_stop (srv->loop, &srv->backoff);
  close (srv->listen_fd);
  /* Remove the file only if it is still ours: an operator may have
   * started another stm-send on the same path meanwhile. */
  if (lstat (srv->path, &sb) == 0 && sb.st_dev == srv->dev &&
      sb.st_ino == srv->ino && unlink (srv->path) == -1)
    log_warning ("--command-socket %s: cannot remove the socket file: %m",
                 srv->path);
  free (srv->path);
  free (srv);
}
