/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: TCP listen and connect for the transport (see tcp.h).
 *
 * Both sides resolve with getaddrinfo and try each address in turn.  The
 * connecting side has a single connector (tcp_connect_start and
 * tcp_connect_finish), which the blocking tcp_connect and stm-send's
 * reconnect under libev both use; the listening side prefers one dual-stack
 * IPv6 socket when it listens on any address.  Every socket is
 * non-blocking and close-on-exec from the start, since both CLIs run
 * libev loops and start helper processes (nbdkit for the export).
 */
#include <config.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "clock.h"
#include "log.h"
#include "tcp.h"
#include "time_units.h"

static void
format_host_port (char *buf, size_t len, const char *host, uint16_t port)
{
  if (strchr (host, ':') != NULL)
    snprintf (buf, len, "[%s]:%u", host, (unsigned) port);
  else
    snprintf (buf, len, "%s:%u", host, (unsigned) port);
}


/* Close a socket that failed half way through its set-up.  Both the
 * connecting and the listening side do this, and both want the errno of the
 * step that failed, not whatever close(2) leaves, for the caller's message.
 */
static void
close_keeping_errno (int fd)
{
  int err = errno;

  close (fd);
  errno = err;
}

/* Resolve HOST (NULL for any address, with AI_PASSIVE in FLAGS) and PORT to
 * stream socket addresses, numeric port only.  Connecting and listening
 * resolve alike and differ only in FLAGS and in how they word a failure, so
 * this returns getaddrinfo's code (errno intact for EAI_SYSTEM) and leaves
 * the message to the caller.
 */
static int
resolve_stream (const char *host, uint16_t port, int flags,
                struct addrinfo **res)
{
  char portstr[16];
  struct addrinfo hints = { 0 };

  snprintf (portstr, sizeof portstr, "%u", (unsigned) port);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  return getaddrinfo (host, portstr, &hints, res);
}

int
tcp_resolve (const char *host, uint16_t port, struct addrinfo **res)
{
  return resolve_stream (host, port, AI_NUMERICSERV, res);
}

const char *
tcp_resolve_strerror (int r)
{
  return r == EAI_SYSTEM ? strerror (errno) : gai_strerror (r);
}

/*----------------------------------------------------------------------
 * Connecting
 */

int
tcp_connect_start (const struct addrinfo *ai)
{
  int fd;

  fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
  if (fd == -1)
    return -1;
  if (connect (fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
    return fd;
  close_keeping_errno (fd);
  return -1;
}

int
tcp_connect_finish (int fd)
{
  int err = 0, one = 1;
  socklen_t errlen = sizeof err;

  if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1)
    return errno;
  if (err != 0)
    return err;
  /* Small control messages (SYNC, DURABLE) must not wait for Nagle. */
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return 0;
}

/* Wait until the connect in progress on fd has ended, or the deadline
 * (monotonic ms, -1 = none) has passed.  Returns 0, or -1 with errno set
 * (ETIMEDOUT when the deadline passed). */
static int
wait_writable (int fd, int64_t deadline_ms)
{
  for (;;) {
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    int timeout = -1, r;

    if (deadline_ms >= 0) {
      int64_t left = deadline_ms - (int64_t) (time_monotonic_ns () / NS_PER_MS);
      if (left <= 0) {
        errno = ETIMEDOUT;
        return -1;
      }
      timeout = left > INT32_MAX ? INT32_MAX : (int) left;
    }
    r = poll (&pfd, 1, timeout);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    return 0;
  }
}

/* Connect one address with a deadline.  Returns the fd, or -1 with errno
 * set (ETIMEDOUT when the deadline passed). */
static int
connect_one (const struct addrinfo *ai, int64_t deadline_ms)
{
  int fd, err;

  fd = tcp_connect_start (ai);
  if (fd == -1)
    return -1;
  if (wait_writable (fd, deadline_ms) == -1) {
    close_keeping_errno (fd);
    return -1;
  }
  err = tcp_connect_finish (fd);
  if (err != 0) {
    close (fd);
    errno = err;
    return -1;
  }
  return fd;
}

int
tcp_connect (const char *host, uint16_t port, unsigned timeout_ms)
{
  char hostport[300];
  struct addrinfo *res = NULL, *ai;
  int r, fd = -1, err = 0;
  int64_t deadline = timeout_ms > 0
    ? (int64_t) (time_monotonic_ns () / NS_PER_MS) + timeout_ms : -1;

  format_host_port (hostport, sizeof hostport, host, port);
  r = tcp_resolve (host, port, &res);
  if (r != 0) {
    log_error ("cannot connect to %s: cannot resolve %s: %s", hostport, host,
               tcp_resolve_strerror (r));
    return -1;
  }
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = connect_one (ai, deadline);
    if (fd >= 0)
      break;
    err = errno;
    if (err == ETIMEDOUT)
      break;
  }
  freeaddrinfo (res);

  if (fd == -1) {
    if (err == ETIMEDOUT)
      log_error ("cannot connect to %s: timed out after %u ms", hostport,
                 timeout_ms);
    else
      log_error ("cannot connect to %s: %s", hostport, strerror (err));
    return -1;
  }
  return fd;
}

/*----------------------------------------------------------------------
 * Listening
 */

static int
listen_one (const struct addrinfo *ai, bool dual_stack)
{
  int fd, one = 1, zero = 0;

  fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
  if (fd == -1)
    return -1;
  if (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1)
    goto fail;
  /* For "any address", one IPv6 socket also takes IPv4 connections. */
  if (dual_stack && ai->ai_family == AF_INET6)
    setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind (fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
      listen (fd, SOMAXCONN) == -1)
    goto fail;
  return fd;

 fail:
  close_keeping_errno (fd);
  return -1;
}

/* The port the kernel chose for fd.  Returns 0, or -1 with errno set. */
static int
bound_port_of (int fd, uint16_t *port)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;

  if (getsockname (fd, (struct sockaddr *) &ss, &len) == -1)
    return -1;
  if (ss.ss_family == AF_INET6)
    *port = ntohs (((struct sockaddr_in6 *) &ss)->sin6_port);
  else
    *port = ntohs (((struct sockaddr_in *) &ss)->sin_port);
  return 0;
}

int
tcp_listen (const char *host, uint16_t port, uint16_t *bound_port)
{
  char hostport[300];
  struct addrinfo *res = NULL, *ai;
  bool any = host == NULL || host[0] == '\0';
  int r, fd = -1, err = 0, pass;

  format_host_port (hostport, sizeof hostport, any ? "*" : host, port);
  r = resolve_stream (any ? NULL : host, port, AI_PASSIVE | AI_NUMERICSERV,
                      &res);
  if (r != 0) {
    log_error ("cannot listen on %s: cannot resolve %s: %s", hostport,
               any ? "the wildcard address" : host, tcp_resolve_strerror (r));
    return -1;
  }
  /* For "any", try IPv6 first (dual stack), then whatever else there is. */
  for (pass = any ? 0 : 1; pass < 2 && fd == -1; pass++) {
    for (ai = res; ai != NULL; ai = ai->ai_next) {
      if (pass == 0 && ai->ai_family != AF_INET6)
        continue;
      fd = listen_one (ai, any);
      if (fd >= 0)
        break;
      err = errno;
    }
  }
  freeaddrinfo (res);
  if (fd == -1) {
    log_error ("cannot listen on %s: %s", hostport, strerror (err));
    return -1;
  }

  if (bound_port != NULL && bound_port_of (fd, bound_port) == -1) {
    log_error ("cannot learn the port bound on %s: %m", hostport);
    close (fd);
    return -1;
  }
  return fd;
}
