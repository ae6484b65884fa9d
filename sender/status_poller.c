/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: asking the filter for STATUS without blocking (see
 * status_poller.h). */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "clock.h"
#include "control_proto.h"
#include "status_poller.h"

struct status_poller {
  struct ev_loop *loop;
  int fd;
  ev_io io;
  bool in_flight;
  bool failed;
  uint64_t asked_ns;
  status_poller_cb *cb;
  void *opaque;
  char buf[CONTROL_MAX_LINE + 1];
  size_t len;
};

/* The connection failed or the filter said something unexpected: stop
 * asking.  Nothing is reported here (see status_poller.h). */
static void
fail (struct status_poller *p)
{
  ev_io_stop (p->loop, &p->io);
  p->failed = true;
  p->in_flight = false;
}

static void
on_readable (struct ev_loop *loop, ev_io *w, int revents)
{
  struct status_poller *p = w->data;

  ssize_t n = recv (p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len, MSG_DONTWAIT);
  if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (n <= 0) {
    fail (p);
    return;
  }
  p->len += (size_t) n;
  char *nl = memchr (p->buf, '\n', p->len);
  if (nl == NULL) {
    if (p->len == sizeof p->buf - 1)
      fail (p);                 /* a line longer than the protocol allows */
    return;
  }
  /* One request, one reply line: nothing may follow it. */
  if ((size_t) (nl - p->buf) + 1 != p->len) {
    fail (p);
    return;
  }
  *nl = '\0';
  p->len = 0;
  p->in_flight = false;
  ev_io_stop (loop, w);

  struct control_status st;
  char why[256];
  if (control_status_parse (p->buf, &st, why, sizeof why) == -1) {
    /* EAGAIN before the first client, say: ask again next time. */
    return;
  }
  p->cb (p->opaque, &st, time_monotonic_ns () - p->asked_ns);
}

struct status_poller *
status_poller_open (struct ev_loop *loop, const char *path, status_poller_cb *cb,
                    void *opaque, char *err, size_t errlen)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct status_poller *p;

  if (strlen (path) >= sizeof addr.sun_path) {
    snprintf (err, errlen, "the path %s is too long for a Unix socket", path);
    return NULL;
  }
  p = calloc (1, sizeof *p);
  if (p == NULL) {
    snprintf (err, errlen, "%s", strerror (errno));
    return NULL;
  }
  memcpy (addr.sun_path, path, strlen (path) + 1);
  p->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (p->fd == -1 || connect (p->fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    snprintf (err, errlen, "%s", strerror (errno));
    if (p->fd >= 0)
      close (p->fd);
    free (p);
    return NULL;
  }
  p->loop = loop;
  p->cb = cb;
  p->opaque = opaque;
  ev_io_init (&p->io, on_readable, p->fd, EV_READ);
  p->io.data = p;
  return p;
}

void
status_poller_ask (struct status_poller *p)
{
  static const char request[] = "STATUS\n";

  if (p == NULL || p->failed || p->in_flight)
    return;
  /* Seven bytes into an idle local socket: they go at once or not at all. */
  if (send (p->fd, request, sizeof request - 1, MSG_DONTWAIT | MSG_NOSIGNAL)
      != (ssize_t) (sizeof request - 1)) {
    fail (p);
    return;
  }
  p->in_flight = true;
  p->asked_ns = time_monotonic_ns ();
  ev_io_start (p->loop, &p->io);
}

void
status_poller_close (struct status_poller *p)
{
  if (p == NULL)
    return;
  ev_io_stop (p->loop, &p->io);
  close (p->fd);
  free (p);
}
