/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the blocking control-socket client for start-up (see
 * control_client.h).
 *
 * The reader keeps a buffer of one maximum line plus what was read past
 * it; after a reply nothing is left in it (the filter says nothing
 * unasked), which is what lets the socket be handed to the control
 * channel.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "control_client.h"
#include "control_proto.h"
#include "bits.h"

struct control_client {
  int fd;
  char *path;
  bool broken;
  unsigned timeout_ms;          /* for replies in general */
  unsigned slow_timeout_ms;     /* for FREEZE and FLIP replies */
  char error[512];
  char broken_by[512];          /* the error that broke the connection */
  char buf[CONTROL_MAX_LINE + 1];
  size_t buf_len;               /* bytes held in buf */
  char line[CONTROL_MAX_LINE + 1];
  /* Descriptors passed with a reply (MIRROR START), until taken. */
  int fds[CONTROL_CLIENT_MAX_FDS];
  unsigned nfds;
};
/* Close the descriptors a reply passed that nobody took. */
static void
drop_fds (struct control_client *c)
{
  for (unsigned i = 0; i < c->nfds; i++)
    close (c->fds[i]);
  c->nfds = 0;
}

_Static_assert (sizeof ((struct control_client *) 0)->broken_by ==
                sizeof ((struct control_client *) 0)->error,
                "broken_by holds a copy of error");


static void
set_error (struct control_client *c, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

static void
set_error (struct control_client *c, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (c->error, sizeof c->error, fmt, ap);
  va_end (ap);
}

/* connect(2) says "Connection refused" for a path that is a regular file
 * as well as for a socket nobody listens on; stat the path to say which,
 * since the first is a wrong --control and the second a stopped nbdkit. */
static void
describe_connect_error (const char *path, int err, char *errbuf, size_t errlen)
{
  struct stat sb;
  if (stat (path, &sb) == -1) {
    snprintf (errbuf, errlen, "connect: %s (is nbdkit running with "
              "migrate-control=%s?)", strerror (err), path);
    return;
  }
  if (!S_ISSOCK (sb.st_mode)) {
    const char *what = S_ISREG (sb.st_mode) ? "a regular file"
      : S_ISDIR (sb.st_mode) ? "a directory"
      : S_ISFIFO (sb.st_mode) ? "a FIFO"
      : S_ISCHR (sb.st_mode) || S_ISBLK (sb.st_mode) ? "a device"
      : "not a socket";
    snprintf (errbuf, errlen, "it is %s, not a Unix socket (--control names the "
              "socket the filter creates with migrate-control=PATH)", what);
    return;
  }
  if (err == ECONNREFUSED)
    snprintf (errbuf, errlen, "connect: %s (a socket nobody listens on: has the "
              "nbdkit that created it exited?)", strerror (err));
  else
    snprintf (errbuf, errlen, "connect: %s", strerror (err));
}

struct control_client *
control_client_connect (const char *path, unsigned timeout_ms,
                        char *errbuf, size_t errlen)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen (path) >= sizeof addr.sun_path) {
    snprintf (errbuf, errlen, "the path is too long for a Unix socket");
    errno = ENAMETOOLONG;
    return NULL;
  }
  strcpy (addr.sun_path, path);

  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    snprintf (errbuf, errlen, "socket: %s", strerror (errno));
    return NULL;
  }
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    int e = errno;
    describe_connect_error (path, e, errbuf, errlen);
    close (fd);
    errno = e;
    return NULL;
  }
  struct timeval tv = { .tv_sec = timeout_ms / 1000,
                        .tv_usec = (timeout_ms % 1000) * 1000 };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  struct control_client *c = calloc (1, sizeof *c);
  if (c == NULL || (c->path = strdup (path)) == NULL) {
    free (c);
    close (fd);
    snprintf (errbuf, errlen, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  c->fd = fd;
  c->timeout_ms = timeout_ms;
  c->slow_timeout_ms = timeout_ms;
  return c;
}

void
control_client_set_freeze_timeout (struct control_client *c,
                                   uint64_t freeze_timeout_ms)
{
  /* FREEZE's flush before the gate closes and its drain and flush after
   * are each bounded by the timeout: twice it in all. */
  uint64_t ms = freeze_timeout_ms > UINT_MAX / 2 ? UINT_MAX : 2 * freeze_timeout_ms;

  if (ms > UINT_MAX - CONTROL_CLIENT_FREEZE_MARGIN_MS)
    ms = UINT_MAX;
  else
    ms += CONTROL_CLIENT_FREEZE_MARGIN_MS;
  c->slow_timeout_ms = ms > c->timeout_ms ? (unsigned) ms : c->timeout_ms;
}

void
control_client_close (struct control_client *c)
{
  if (c != NULL)
    drop_fds (c);
  if (c == NULL)
    return;
  if (c->fd >= 0)
    close (c->fd);
  free (c->path);
  free (c);
}

const char *
control_client_error (const struct control_client *c)
{
  return c->error;
}

int
control_client_is_broken (const struct control_client *c)
{
  return c->broken;
}

/* The connection can no longer be trusted to be in step with the filter. */
static int
broken (struct control_client *c, const char *cmd, const char *what, int err)
{
  c->broken = true;
  if (err)
    set_error (c, "%s failed: %s: %s", cmd, what, strerror (err));
  else
    set_error (c, "%s failed: %s", cmd, what);
  memcpy (c->broken_by, c->error, sizeof c->broken_by);
  errno = err ? err : EPIPE;
  return -1;
}

static int
send_line (struct control_client *c, const char *cmd, const char *text)
{
  size_t len = strlen (text), done = 0;
  /* Say what broke the connection: that is the cause to report. */
  if (c->broken) {
    set_error (c, "%s not sent: the control connection broke earlier (%s)",
               cmd, c->broken_by);
    errno = EPIPE;
    return -1;
  }
  while (done < len) {
    ssize_t r = send (c->fd, text + done, len - done, MSG_NOSIGNAL);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return broken (c, cmd, "cannot send the request",
                     errno == EAGAIN ? ETIMEDOUT : errno);
    }
    done += r;
  }
  return 0;
}

/* recv, keeping the descriptors a reply passes (SCM_RIGHTS): a plain
 * recv would have the kernel close them. */
static ssize_t
receive (struct control_client *c)
{
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (CONTROL_CLIENT_MAX_FDS * sizeof (int))];
  } control;
  struct iovec iov = { c->buf + c->buf_len, CONTROL_MAX_LINE - c->buf_len };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf };
  ssize_t r = recvmsg (c->fd, &msg, MSG_CMSG_CLOEXEC);

  if (r <= 0)
    return r;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR (&msg); cm != NULL;
       cm = CMSG_NXTHDR (&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t n = (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int);
    const unsigned char *p = CMSG_DATA (cm);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy (&fd, p + i * sizeof fd, sizeof fd);
      if (c->nfds < CONTROL_CLIENT_MAX_FDS)
        c->fds[c->nfds++] = fd;
      else
        close (fd);
    }
  }
  return r;
}

/* Read one reply line into c->line (without the newline). */
static int
read_line (struct control_client *c, const char *cmd)
{
  for (;;) {
    char *nl = memchr (c->buf, '\n', c->buf_len);
    if (nl != NULL) {
      size_t n = nl - c->buf;
      memcpy (c->line, c->buf, n);
      if (n > 0 && c->line[n - 1] == '\r')
        n--;
      c->line[n] = '\0';
      size_t used = (nl - c->buf) + 1;
      memmove (c->buf, c->buf + used, c->buf_len - used);
      c->buf_len -= used;
      return 0;
    }
    if (c->buf_len >= CONTROL_MAX_LINE)
      return broken (c, cmd, "the filter sent a reply line that is too long", 0);
    ssize_t r = receive (c);
    if (r == 0)
      return broken (c, cmd, "the filter closed the control connection", 0);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return broken (c, cmd, "no reply from the filter in time", ETIMEDOUT);
      return broken (c, cmd, "cannot read the reply", errno);
    }
    c->buf_len += r;
  }
}

int
control_errno_of (const char *ename, size_t elen)
{
  if (elen == 5 && strncmp (ename, "EBUSY", 5) == 0) return EBUSY;
  if (elen == 7 && strncmp (ename, "ENOTSUP", 7) == 0) return ENOTSUP;
  if (elen == 6 && strncmp (ename, "EAGAIN", 6) == 0) return EAGAIN;
  if (elen == 5 && strncmp (ename, "EPERM", 5) == 0) return EPERM;
  if (elen == 6 && strncmp (ename, "ESTALE", 6) == 0) return ESTALE;
  return EPROTO;
}

int
control_client_release_fd (struct control_client *c)
{
  int fd = c->fd;

  /* Nothing is unsolicited: after a reply, nothing is left unread. */
  if (c->broken || c->buf_len != 0 || fd < 0)
    return -1;
  struct timeval tv = { 0 };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  c->fd = -1;
  return fd;
}

unsigned
control_client_slow_timeout_ms (const struct control_client *c)
{
  return c->slow_timeout_ms;
}

/* Send a request and read its first reply line; an ERR reply becomes -1
 * with the filter's words in the error. */
static int
request (struct control_client *c, const char *cmd, const char *text)
{
  if (send_line (c, cmd, text) == -1 || read_line (c, cmd) == -1)
    return -1;
  if (control_reply_is_ok (c->line))
    return 0;

  const char *ename, *msg;
  size_t elen;
  if (control_reply_error (c->line, &ename, &elen, &msg) == 0) {
    set_error (c, "%s refused by the filter: %.*s %s", cmd, (int) elen, ename, msg);
    errno = control_errno_of (ename, elen);
    return -1;
  }
  return broken (c, cmd, "the filter's reply is neither OK nor ERR", 0);
}

/* One key of a STATUS reply, required.  -1 with why set. */
static int
status_u64 (const char *line, const char *key, uint64_t *v, char *why, size_t len)
{
  if (control_reply_get_u64 (line, key, v) == 0)
    return 0;
  snprintf (why, len, "STATUS: the filter's reply has no valid %s: \"%s\"", key, line);
  return -1;
}

static int
status_string (const char *line, const char *key, char *buf, size_t buflen,
               char *why, size_t len)
{
  if (control_reply_get_string (line, key, buf, buflen) == 0)
    return 0;
  snprintf (why, len, "STATUS: the filter's reply has no valid %s: \"%s\"", key, line);
  return -1;
}

int
control_status_parse (const char *line, struct control_status *st,
                      char *why, size_t len)
{
  uint64_t block;

  memset (st, 0, sizeof *st);
  if (strncmp (line, "OK", 2) != 0 || (line[2] != ' ' && line[2] != '\0')) {
    snprintf (why, len, "STATUS failed: %s", line);
    return -1;
  }
  /* What the sender decides on: the geometry and the dirty set, the state
   * and its owner (the freeze and the flip), the migration and the
   * instance (the migration id, and whether a flip was this migration's),
   * how long FREEZE may take, and the guest's writes (convergence).  A
   * filter that leaves any out is not one this stm-send can work with: no
   * filter without them was ever released. */
  if (status_u64 (line, "size", &st->size, why, len) == -1 ||
      status_u64 (line, "block", &block, why, len) == -1 ||
      status_u64 (line, "dirty_bytes", &st->dirty_bytes, why, len) == -1 ||
      status_string (line, "state", st->state, sizeof st->state, why, len) == -1 ||
      status_string (line, "owner", st->owner, sizeof st->owner, why, len) == -1 ||
      status_string (line, "migration", st->migration, sizeof st->migration,
                     why, len) == -1 ||
      status_string (line, "instance", st->instance, sizeof st->instance,
                     why, len) == -1 ||
      status_u64 (line, "freeze_timeout_ms", &st->freeze_timeout_ms, why, len) == -1 ||
      status_u64 (line, "write_bytes", &st->write_bytes, why, len) == -1 ||
      status_u64 (line, "writes", &st->writes, why, len) == -1)
    return -1;
  if (block == 0 || block > UINT32_MAX || !is_power_of_two (block)) {
    snprintf (why, len, "STATUS: the filter reports an invalid block size %" PRIu64,
              block);
    return -1;
  }
  st->block = block;
  /* These are informative only. */
  control_reply_get_u64 (line, "generation", &st->generation);
  control_reply_get_u64 (line, "unconfirmed_bytes", &st->unconfirmed_bytes);
  control_reply_get_u64 (line, "throttle", &st->throttle);
  return 0;
}

int
control_client_mirror_start (struct control_client *c, uint64_t ring_bytes,
                             bool sync, uint64_t timeout_ms, int fds[3])
{
  char text[128];

  drop_fds (c);
  if (sync)
    snprintf (text, sizeof text, "MIRROR START %" PRIu64 " sync %" PRIu64
              " wait %" PRIu64 "\n", ring_bytes, timeout_ms, timeout_ms);
  else
    snprintf (text, sizeof text, "MIRROR START %" PRIu64 " wait %" PRIu64 "\n",
              ring_bytes, timeout_ms);
  if (request (c, "MIRROR START", text) == -1) {
    drop_fds (c);
    return -1;
  }
  if (c->nfds != 3) {
    drop_fds (c);
    return broken (c, "MIRROR START", "the filter's reply did not pass the ring's "
                   "three descriptors", 0);
  }
  memcpy (fds, c->fds, 3 * sizeof fds[0]);
  c->nfds = 0;
  return 0;
}

int
control_status (struct control_client *c, struct control_status *st)
{
  char why[sizeof c->error];

  if (request (c, "STATUS", "STATUS\n") == -1)
    return -1;
  if (control_status_parse (c->line, st, why, sizeof why) == -1) {
    set_error (c, "%s", why);
    errno = EPROTO;
    return -1;
  }
  return 0;
}
