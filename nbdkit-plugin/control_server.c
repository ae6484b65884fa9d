/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the control socket server (see control_server.h).
 *
 * All sockets are non-blocking and the thread waits in poll(), so one
 * client that stops reading cannot hold up the others, the freeze timeout,
 * or shutdown.  Two commands make the thread wait elsewhere before they
 * answer: FREEZE, for the flush before the gate closes (at most
 * migrate-freeze-timeout), then for in-flight writes to drain and the
 * flush inside the freeze (together at most migrate-freeze-timeout from
 * the gate closing); and FLIP forward, for its first connection to the
 * destination (within what is left of migrate-freeze-timeout), then, with
 * the guest running again, for the extra connections (at most 5 s more);
 * both only when no PRECONNECT prepared the connection beforehand.
 * PRECONNECT itself connects on a thread of its own: its reply is
 * deferred until that thread signals on a pipe this loop polls, while the
 * other connections are served (and the freeze timeout watched) as usual.
 *
 * A connection's input is read only while it has no reply pending; that is
 * the back-pressure that keeps each connection's memory fixed, and it keeps
 * replies in request order.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "clock.h"
#include "control_commands.h"
#include "control_proto.h"
#include "control_server.h"
#include "unix_socket.h"
#include "migration_state.h"
#include "time_units.h"

/* How long the thread backs off when accept() fails for lack of file
 * descriptors, rather than spinning on a listening socket that stays
 * readable. */
#define ACCEPT_BACKOFF_MS 100

#define STRINGIFY(x) STRINGIFY_ (x)
#define STRINGIFY_(x) #x

static const char too_many_connections[] =
  "ERR EMFILE too many control connections (at most "
  STRINGIFY (CONTROL_MAX_CONNECTIONS) " at once); closing this one\n";

/* --- the socket file ----------------------------------------------- */

/* Make way for our socket at path (unix_socket.h). */
static int
clear_stale_socket (const char *path, const struct sockaddr_un *addr)
{
  char why[256];
  bool removed;

  if (unix_socket_clear_stale (addr, &removed, why, sizeof why) == -1) {
    nbdkit_error ("migrate-control=%s %s", path, why);
    return -1;
  }
  if (removed)
    nbdkit_debug ("migrate: removed the stale socket %s", path);
  return 0;
}

int
control_server_listen (struct control_server *srv, struct migration_state *st)
{
  const char *path = st->control_path;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  size_t len = strlen (path);
  mode_t old_umask;
  int fd, r;

  srv->state = st;
  if (len >= sizeof addr.sun_path) {
    nbdkit_error ("migrate-control=%s: the path is too long for a Unix "
                  "socket (%zu bytes, at most %zu)",
                  path, len, sizeof addr.sun_path - 1);
    return -1;
  }
  memcpy (addr.sun_path, path, len + 1);

  if (clear_stale_socket (path, &addr) == -1)
    return -1;

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd == -1) {
    nbdkit_error ("migrate-control=%s: socket: %m", path);
    return -1;
  }

  /* The socket is created with mode 0600 from the start: a chmod after bind
   * would leave a moment in which others could connect.  nbdkit is still
   * single-threaded here, so changing the umask briefly is safe. */
  old_umask = umask (0177);
  r = bind (fd, (const struct sockaddr *) &addr, sizeof addr);
  umask (old_umask);
  if (r == -1) {
    nbdkit_error ("migrate-control=%s: bind: %m", path);
    close (fd);
    return -1;
  }
  srv->socket_created = true;

  if (listen (fd, CONTROL_MAX_CONNECTIONS) == -1) {
    nbdkit_error ("migrate-control=%s: listen: %m", path);
    close (fd);
    unlink (path);
    srv->socket_created = false;
    return -1;
  }
  srv->listen_fd = fd;
  nbdkit_debug ("migrate: control socket listening on %s", path);
  return 0;
}

void
control_server_unlisten (struct control_server *srv)
{
  if (srv->listen_fd >= 0) {
    close (srv->listen_fd);
    srv->listen_fd = -1;
  }
  if (srv->socket_created) {
    unlink (srv->state->control_path);
    srv->socket_created = false;
  }
}

/* --- connections --------------------------------------------------- */

static bool
output_pending (const struct control_connection *conn)
{
  return conn->out_start < conn->out_end || conn->stream.active;
}

/* Is a reply still to be sent, or still to be produced (PRECONNECT)? */
static bool
reply_outstanding (const struct control_connection *conn)
{
  return output_pending (conn) || conn->awaiting_preconnect;
}

/* Close the descriptors a reply was to carry (sent or not: the peer has
 * its own copies once sent). */
static void
drop_pass_fds (struct control_connection *conn)
{
  for (unsigned i = 0; i < conn->npass; i++)
    close (conn->pass_fds[i]);
  conn->npass = 0;
}

static void
connection_close (struct control_server *srv, struct control_connection *conn,
                  const char *why)
{
  nbdkit_debug ("migrate: control connection %u closed (%s)", conn->id, why);
  if (srv->owner == conn) {
    srv->owner = NULL;
    control_thaw_on_owner_close (srv->state);
  }
  close (conn->fd);
  conn->fd = -1;
  conn->awaiting_preconnect = false;
  drop_pass_fds (conn);
}

static void
connection_open (struct control_server *srv, int fd)
{
  size_t i;

  for (i = 0; i < CONTROL_MAX_CONNECTIONS; ++i) {
    struct control_connection *conn = &srv->conns[i];

    if (conn->fd == -1) {
      conn->fd = fd;
      conn->id = ++srv->next_id;
      conn->in_len = 0;
      conn->discarding = false;
      conn->input_closed = false;
      conn->out_start = conn->out_end = 0;
      conn->stream.active = false;
      conn->awaiting_preconnect = false;
      conn->npass = 0;
      nbdkit_debug ("migrate: control connection %u opened", conn->id);
      return;
    }
  }

  /* Every slot is taken.  Tell the client why (best effort: the reply is
   * tiny and the socket buffer empty) and let it go. */
  if (send (fd, too_many_connections, sizeof too_many_connections - 1,
            MSG_NOSIGNAL | MSG_DONTWAIT) == -1)
    nbdkit_debug ("migrate: refusing a control connection: send: %m");
  close (fd);
}

/* Room for one more first line of a reply? */
static bool
output_has_room (struct control_connection *conn)
{
  if (conn->stream.active || conn->npass > 0)
    return false;
  if (conn->out_start == conn->out_end)
    conn->out_start = conn->out_end = 0;
  if (sizeof conn->out - conn->out_end < CONTROL_REPLY_MAX &&
      conn->out_start > 0) {
    memmove (conn->out, conn->out + conn->out_start,
             conn->out_end - conn->out_start);
    conn->out_end -= conn->out_start;
    conn->out_start = 0;
  }
  return sizeof conn->out - conn->out_end >= CONTROL_REPLY_MAX;
}

static void
queue_output (struct control_connection *conn, const char *text, size_t len)
{
  assert (len <= sizeof conn->out - conn->out_end);
  memcpy (conn->out + conn->out_end, text, len);
  conn->out_end += len;
}

static enum control_role
role_of (const struct control_server *srv, const struct control_connection *conn)
{
  if (srv->owner == conn)
    return CONTROL_ROLE_OWNER;
  return srv->owner == NULL ? CONTROL_ROLE_UNOWNED : CONTROL_ROLE_OTHER;
}

static void
handle_line (struct control_server *srv, struct control_connection *conn,
             const char *line, size_t len)
{
  struct control_request req;
  struct control_reply reply;
  const char *errno_name, *why;

  if (len > 0 && line[len - 1] == '\r')
    len--;

  memset (&req, 0, sizeof req);
  if (control_request_parse (line, len, &req, &errno_name, &why) == -1) {
    nbdkit_debug ("migrate: control connection %u: bad request: %s %s",
                  conn->id, errno_name, why);
    control_reply_err (&reply, errno_name, why);
  }
  else {
    nbdkit_debug ("migrate: control connection %u: %s",
                  conn->id, control_command_name (req.command));
    control_execute (srv->state, &req, role_of (srv, conn), &reply);
    if (reply.deferred) {
      conn->awaiting_preconnect = true;
      return;
    }
    if (reply.ok && req.command != CONTROL_STATUS && srv->owner == NULL) {
      srv->owner = conn;
      nbdkit_debug ("migrate: control connection %u owns the migration",
                    conn->id);
    }
  }

  if (reply.nfds > 0) {
    conn->pass_at = conn->out_end;
    memcpy (conn->pass_fds, reply.fds, reply.nfds * sizeof reply.fds[0]);
    conn->npass = reply.nfds;
  }
  queue_output (conn, reply.line, reply.len);
  if (reply.snapshot_follows)
    snapshot_stream_begin (&conn->stream);
}

/* Execute the complete lines in the input buffer, as long as there is room
 * for their replies. */
static void
process_input (struct control_server *srv, struct control_connection *conn)
{
  while (!conn->awaiting_preconnect && output_has_room (conn)) {
    char *newline = memchr (conn->in, '\n', conn->in_len);
    size_t line_len;

    if (newline == NULL) {
      if (conn->in_len == sizeof conn->in) {
        /* A full buffer and no newline: the line is too long.  Answer
         * once, then drop everything up to the next newline. */
        if (!conn->discarding) {
          struct control_reply reply;

          control_reply_err (&reply, "E2BIG",
                             "request line longer than "
                             STRINGIFY (CONTROL_MAX_LINE) " bytes; ignored");
          queue_output (conn, reply.line, reply.len);
          conn->discarding = true;
        }
        conn->in_len = 0;
        continue;
      }
      if (conn->input_closed && conn->in_len > 0) {
        /* The peer closed after a last line without a newline (echo -n
         * STATUS | socat ...): take it as a line. */
        if (!conn->discarding)
          handle_line (srv, conn, conn->in, conn->in_len);
        conn->in_len = 0;
        conn->discarding = false;
      }
      return;
    }

    line_len = (size_t) (newline - conn->in);
    if (conn->discarding)
      conn->discarding = false;
    else
      handle_line (srv, conn, conn->in, line_len);
    conn->in_len -= line_len + 1;
    memmove (conn->in, newline + 1, conn->in_len);
  }
}

/* Send pending output without blocking.  Descriptors a reply carries go
 * with its first byte (SCM_RIGHTS), so output before that reply is sent
 * up to it first. */
static ssize_t
send_some (struct control_connection *conn)
{
  size_t len = conn->out_end - conn->out_start;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (sizeof conn->pass_fds)];
  } control;
  struct iovec iov;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
  struct cmsghdr *cmsg;
  ssize_t n;

  if (conn->npass == 0 || conn->out_start < conn->pass_at) {
    if (conn->npass > 0 && len > conn->pass_at - conn->out_start)
      len = conn->pass_at - conn->out_start;
    return send (conn->fd, conn->out + conn->out_start, len,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  iov.iov_base = conn->out + conn->out_start;
  iov.iov_len = len;
  memset (&control, 0, sizeof control);
  msg.msg_control = control.buf;
  msg.msg_controllen = CMSG_SPACE (conn->npass * sizeof (int));
  cmsg = CMSG_FIRSTHDR (&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN (conn->npass * sizeof (int));
  memcpy (CMSG_DATA (cmsg), conn->pass_fds, conn->npass * sizeof (int));
  n = sendmsg (conn->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n > 0) {
    nbdkit_debug ("migrate: control connection %u: passed %u descriptors",
                  conn->id, conn->npass);
    drop_pass_fds (conn);
  }
  return n;
}

/* Send what is pending, producing more SNAPSHOT lines as the buffer
 * empties.  Returns -1 if the connection is broken. */
static int
flush_output (struct control_server *srv, struct control_connection *conn)
{
  for (;;) {
    ssize_t n;

    if (conn->out_start == conn->out_end) {
      conn->out_start = conn->out_end = 0;
      if (!conn->stream.active)
        return 0;
      conn->out_end = snapshot_stream_fill (srv->state, &conn->stream,
                                            conn->out, sizeof conn->out);
      continue;
    }

    n = send_some (conn);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      nbdkit_debug ("migrate: control connection %u: send: %m", conn->id);
      return -1;
    }
    conn->out_start += (size_t) n;
  }
}

static void
read_input (struct control_connection *conn)
{
  ssize_t n;

  if (conn->input_closed || conn->in_len == sizeof conn->in)
    return;
  n = recv (conn->fd, conn->in + conn->in_len, sizeof conn->in - conn->in_len,
            MSG_DONTWAIT);
  if (n > 0)
    conn->in_len += (size_t) n;
  else if (n == 0)
    conn->input_closed = true;
  else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    nbdkit_debug ("migrate: control connection %u: recv: %m", conn->id);
    conn->input_closed = true;
  }
}

/* Does the input buffer hold something process_input would act on? */
static bool
input_actionable (const struct control_connection *conn)
{
  return memchr (conn->in, '\n', conn->in_len) != NULL ||
    conn->in_len == sizeof conn->in ||
    (conn->input_closed && conn->in_len > 0);
}

static void
service_connection (struct control_server *srv,
                    struct control_connection *conn, short revents)
{
  if (revents & (POLLERR | POLLNVAL)) {
    connection_close (srv, conn, "socket error");
    return;
  }
  /* Waiting for PRECONNECT, the connection is polled for nothing; a
   * hang-up then means the peer has closed both ways and cannot read the
   * reply (a peer that only stopped sending gets its reply). */
  if (conn->awaiting_preconnect) {
    if (revents & POLLHUP)
      connection_close (srv, conn, "closed by the peer during PRECONNECT");
    return;
  }
  if (revents & (POLLIN | POLLHUP))
    read_input (conn);

  /* Alternate between executing requests and sending their replies until
   * either the input runs out of whole lines or the peer stops reading. */
  for (;;) {
    process_input (srv, conn);
    if (flush_output (srv, conn) == -1) {
      connection_close (srv, conn, "send failed");
      return;
    }
    if (reply_outstanding (conn) || !input_actionable (conn))
      break;
  }

  if (conn->input_closed && !reply_outstanding (conn) && conn->in_len == 0)
    connection_close (srv, conn, "closed by the peer");
}

static void
accept_connections (struct control_server *srv)
{
  for (;;) {
    int fd = accept4 (srv->listen_fd, NULL, NULL,
                      SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd >= 0) {
      connection_open (srv, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return;
    nbdkit_error ("migrate: accepting a connection on %s: %m",
                  srv->state->control_path);
    poll (NULL, 0, ACCEPT_BACKOFF_MS);
    return;
  }
}

/* --- the thread ---------------------------------------------------- */

/* poll() timeout: until the freeze deadline, or forever. */
static int
freeze_poll_timeout_ms (struct control_server *srv)
{
  uint64_t deadline;

  if (!control_freeze_deadline (srv->state, &deadline))
    return -1;
  return poll_timeout_ms (deadline_left_ns (deadline));
}

static void
check_freeze_deadline (struct control_server *srv)
{
  uint64_t deadline;

  if (control_freeze_deadline (srv->state, &deadline) &&
      deadline_left_ns (deadline) == 0)
    control_thaw_on_timeout (srv->state);
}

/* The connection PRECONNECT prepares has finished: give the waiting
 * connection its reply, and go on with its input. */
static void
deliver_preconnect (struct control_server *srv)
{
  struct control_reply reply;

  if (!preconnect_finished (&srv->state->preconnect))
    return;
  control_preconnect_done (srv->state, &reply);
  for (size_t i = 0; i < CONTROL_MAX_CONNECTIONS; ++i) {
    struct control_connection *conn = &srv->conns[i];

    if (conn->fd != -1 && conn->awaiting_preconnect) {
      conn->awaiting_preconnect = false;
      queue_output (conn, reply.line, reply.len);
      service_connection (srv, conn, 0);
      return;
    }
  }
  /* Nobody waits (the owner's close would have dropped the connection
   * first, so this does not happen): the result stays for STATUS. */
  nbdkit_debug ("migrate: PRECONNECT finished with nobody waiting: %s",
                reply.line);
}

static void *
control_thread (void *arg)
{
  struct control_server *srv = arg;
  struct pollfd pfds[3 + CONTROL_MAX_CONNECTIONS];
  struct control_connection *polled[CONTROL_MAX_CONNECTIONS];
  size_t i;

  for (;;) {
    size_t n = 2, npolled = 0;
    int r;

    pfds[0] = (struct pollfd) { .fd = srv->wake_pipe[0], .events = POLLIN };
    pfds[1] = (struct pollfd) { .fd = srv->listen_fd, .events = POLLIN };
    for (i = 0; i < CONTROL_MAX_CONNECTIONS; ++i) {
      struct control_connection *conn = &srv->conns[i];
      short events;

      if (conn->fd == -1)
        continue;
      if (conn->awaiting_preconnect)
        events = 0;
      else if (output_pending (conn))
        events = POLLOUT;
      else if (!conn->input_closed && conn->in_len < sizeof conn->in)
        events = POLLIN;
      else
        events = 0;
      pfds[n++] = (struct pollfd) { .fd = conn->fd, .events = events };
      polled[npolled++] = conn;
    }
    /* Last, so the connections' indexes stay 2 + i. */
    int preconnect_fd = preconnect_wait_fd (&srv->state->preconnect);
    if (preconnect_fd >= 0)
      pfds[n++] = (struct pollfd) { .fd = preconnect_fd, .events = POLLIN };

    r = poll (pfds, n, freeze_poll_timeout_ms (srv));
    if (r == -1) {
      if (errno == EINTR)
        continue;
      nbdkit_error ("migrate: control socket %s: poll: %m",
                    srv->state->control_path);
      poll (NULL, 0, ACCEPT_BACKOFF_MS);
      continue;
    }
    if (pfds[0].revents & POLLIN)
      break;

    check_freeze_deadline (srv);
    for (i = 0; i < npolled; ++i) {
      if (pfds[2 + i].revents != 0 && polled[i]->fd != -1)
        service_connection (srv, polled[i], pfds[2 + i].revents);
    }
    if (preconnect_fd >= 0 && pfds[n - 1].revents != 0)
      deliver_preconnect (srv);
    if (pfds[1].revents & POLLIN)
      accept_connections (srv);
  }

  for (i = 0; i < CONTROL_MAX_CONNECTIONS; ++i) {
    if (srv->conns[i].fd != -1)
      connection_close (srv, &srv->conns[i], "nbdkit is shutting down");
  }
  return NULL;
}

int
control_server_start (struct control_server *srv)
{
  sigset_t all, old;
  size_t i;
  int err;

  assert (srv->listen_fd >= 0);
  for (i = 0; i < CONTROL_MAX_CONNECTIONS; ++i)
    srv->conns[i].fd = -1;

  if (pipe2 (srv->wake_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    nbdkit_error ("migrate: control thread: pipe2: %m");
    return -1;
  }

  /* Signals belong to nbdkit's main thread: the control thread blocks
   * them all, and inherits that mask from the moment it starts. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  err = pthread_create (&srv->thread, NULL, control_thread, srv);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (err != 0) {
    errno = err;
    nbdkit_error ("migrate: cannot start the control thread: %m");
    close (srv->wake_pipe[0]);
    close (srv->wake_pipe[1]);
    srv->wake_pipe[0] = srv->wake_pipe[1] = -1;
    return -1;
  }
  srv->thread_running = true;
  return 0;
}

void
control_server_stop (struct control_server *srv)
{
  const char byte = 0;

  if (!srv->thread_running)
    return;
  if (write (srv->wake_pipe[1], &byte, 1) != 1)
    nbdkit_error ("migrate: cannot wake the control thread to stop it: %m");
  else
    pthread_join (srv->thread, NULL);
  srv->thread_running = false;
  close (srv->wake_pipe[0]);
  close (srv->wake_pipe[1]);
  srv->wake_pipe[0] = srv->wake_pipe[1] = -1;
}
