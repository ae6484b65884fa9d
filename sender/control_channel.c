/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the asynchronous control channel (see control_channel.h).
 *
 * The pending requests form a queue in the order they were written; the
 * reply lines read are fed to the request at its head, which knows how
 * many lines it takes (one, one per CONFIRM, or a SNAPSHOT's extent lines
 * up to "."), and whose callback runs when it has them all.  Breaking
 * the channel only records the cause and stops the watchers; a zero-delay
 * timer then fails the pending requests one by one, so that no callback
 * ever runs inside a call that issued a request, and a callback may issue
 * more (they fail the same way) or disconnect.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "clock.h"
#include "control_channel.h"
#include "control_proto.h"

enum entry_kind { KIND_PLAIN, KIND_STATUS, KIND_SNAPSHOT, KIND_CONFIRM, KIND_BARRIER };

struct entry {
  struct entry *next;
  enum entry_kind kind;
  bool slow;                    /* FREEZE, FLIP: the longer timeout */
  bool culprit;                 /* the request that broke the channel */
  char cmd[16];                 /* "FREEZE", for messages */
  control_channel_cb *cb;
  void *opaque;
  uint64_t tag;
  uint64_t sent_ns;
  size_t replies_left;          /* CONFIRM: reply lines still to come */
  bool in_extents;              /* SNAPSHOT: its OK line has come */
  uint64_t snap_n, snap_bytes, count, handed, bridge;
  bool malformed, unusable;
  int ok, err;
  bool have_first;
  char error[1024];
  char first[CONTROL_MAX_LINE + 1];
  struct extent_list extents;
  uint64_t generation;
  struct control_status st;
};

struct control_channel {
  struct ev_loop *loop;
  int fd;
  ev_io rio, wio;
  ev_timer head_timer;          /* the head request's reply timeout */
  ev_timer kick;                /* fails requests after a break, completes barriers */
  unsigned timeout_ms, slow_timeout_ms;
  struct entry *head, *tail;
  size_t pending;
  char *out;                    /* request text not yet written */
  size_t out_len, out_off, out_cap;
  char in[CONTROL_MAX_LINE + 1];
  size_t in_len;
  bool broken;
  int broken_err;               /* errno of the cause, EPIPE if none */
  char broken_by[512];
  unsigned epoch;               /* counts connections (reconnect) */
  uint64_t last_done_ns;        /* when the last reply was complete */
};

static void
entry_error (struct entry *e, int err, const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));

static void
entry_error (struct entry *e, int err, const char *fmt, ...)
{
  va_list ap;

  if (!e->ok && e->error[0] != '\0')
    return;                     /* the first failure is the one to report */
  e->ok = 0;
  e->err = err;
  va_start (ap, fmt);
  vsnprintf (e->error, sizeof e->error, fmt, ap);
  va_end (ap);
}

/* The connection can no longer be trusted to be in step with the filter:
 * record why and let the kick timer fail what is pending. */
static void
channel_break (struct control_channel *ch, bool head_is_culprit, const char *cmd,
               const char *what, int err)
{
  if (ch->broken)
    return;
  ch->broken = true;
  ch->broken_err = err ? err : EPIPE;
  if (err)
    snprintf (ch->broken_by, sizeof ch->broken_by, "%s failed: %s: %s", cmd, what,
              strerror (err));
  else
    snprintf (ch->broken_by, sizeof ch->broken_by, "%s failed: %s", cmd, what);
  if (head_is_culprit && ch->head != NULL)
    ch->head->culprit = true;
  ev_io_stop (ch->loop, &ch->rio);
  ev_io_stop (ch->loop, &ch->wio);
  ev_timer_stop (ch->loop, &ch->head_timer);
  ch->out_len = ch->out_off = 0;
  ev_timer_start (ch->loop, &ch->kick);
}

static const struct entry *
first_request (const struct control_channel *ch)
{
  const struct entry *e = ch->head;
  while (e != NULL && e->kind == KIND_BARRIER)
    e = e->next;
  return e;
}

/* Time the first request that waits for a reply, from now: the filter
 * answers in order, so a request's time starts when the ones before it
 * have been answered. */
static void
arm_head_timer (struct control_channel *ch)
{
  const struct entry *e = first_request (ch);

  ev_timer_stop (ch->loop, &ch->head_timer);
  if (e == NULL || ch->broken) {
    /* An idle channel must not keep the loop running. */
    ev_io_stop (ch->loop, &ch->rio);
    return;
  }
  unsigned ms = e->slow ? ch->slow_timeout_ms : ch->timeout_ms;
  ev_now_update (ch->loop);
  ev_timer_set (&ch->head_timer, ms / 1000., 0.);
  ev_timer_start (ch->loop, &ch->head_timer);
}

/* Take the head off the queue and run its callback. */
static void
complete_head (struct control_channel *ch)
{
  struct entry *e = ch->head;
  uint64_t now = time_monotonic_ns ();
  /* The round trip of this request alone: from when it was written, or
   * when the filter had answered the ones before it, if later. */
  uint64_t from = e->sent_ns > ch->last_done_ns ? e->sent_ns : ch->last_done_ns;
  struct control_reply r = {
    .ok = e->ok, .err = e->err, .broken = false, .error = e->error,
    .line = e->first,
    .rtt_ns = now - from,
    .status = e->ok && e->kind == KIND_STATUS ? &e->st : NULL,
    .extents = e->ok && e->kind == KIND_SNAPSHOT ? &e->extents : NULL,
    .generation = e->generation,
  };

  ch->head = e->next;
  if (ch->head == NULL)
    ch->tail = NULL;
  ch->pending--;
  if (e->kind != KIND_BARRIER)
    ch->last_done_ns = now;
  arm_head_timer (ch);
  /* A barrier that is now at the head is due: from the loop. */
  if (ch->head != NULL && ch->head->kind == KIND_BARRIER)
    ev_timer_start (ch->loop, &ch->kick);
  e->cb (e->opaque, e->tag, &r);
  extent_list_free (&e->extents);
  free (e);
}

static void
fail_head_broken (struct control_channel *ch)
{
  struct entry *e = ch->head;

  e->ok = 0;
  e->err = e->culprit ? ch->broken_err : EPIPE;
  if (e->culprit)
    snprintf (e->error, sizeof e->error, "%s", ch->broken_by);
  else
    snprintf (e->error, sizeof e->error, "%s failed: the control connection broke "
              "earlier (%s)", e->cmd, ch->broken_by);
  struct control_reply r = {
    .ok = 0, .err = e->err, .broken = true, .error = e->error, .line = "",
    .rtt_ns = time_monotonic_ns () - e->sent_ns,
  };
  ch->head = e->next;
  if (ch->head == NULL)
    ch->tail = NULL;
  ch->pending--;
  e->cb (e->opaque, e->tag, &r);
  extent_list_free (&e->extents);
  free (e);
}

static void
kick_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct control_channel *ch = w->data;

  /* A callback may issue more requests (they are handled here too) or
   * reconnect (then the rest wait for their replies). */
  while (ch->head != NULL) {
    if (ch->broken)
      fail_head_broken (ch);
    else if (ch->head->kind == KIND_BARRIER)
      complete_head (ch);
    else
      break;
  }
}

/* An OK or ERR first line for e; -1 if it is neither (then the channel
 * is broken). */
static int
take_first_line (struct control_channel *ch, struct entry *e, const char *line)
{
  const char *ename, *msg;
  size_t elen;

  snprintf (e->first, sizeof e->first, "%s", line);
  e->have_first = true;
  if (control_reply_is_ok (line)) {
    e->ok = 1;
    return 0;
  }
  if (control_reply_error (line, &ename, &elen, &msg) == 0) {
    entry_error (e, control_errno_of (ename, elen),
                 "%s refused by the filter: %.*s %s", e->cmd, (int) elen, ename, msg);
    return 0;
  }
  channel_break (ch, true, e->cmd, "the filter's reply is neither OK nor ERR", 0);
  return -1;
}

/* One extent line of a SNAPSHOT reply; true at its end ("."). */
static bool
take_extent_line (struct entry *e, const char *line)
{
  uint64_t off, len;
  int r = control_parse_extent_line (line, &off, &len);

  if (r == 0) {
    if (e->malformed)
      entry_error (e, EPROTO, "SNAPSHOT: the filter sent a malformed extent line");
    else if (!e->unusable && (e->count != e->snap_n || e->handed != e->snap_bytes))
      entry_error (e, EPROTO, "SNAPSHOT: the filter announced %" PRIu64 " extents of %"
                   PRIu64 " bytes but sent %" PRIu64 " extents of %" PRIu64 " bytes",
                   e->snap_n, e->snap_bytes, e->count, e->handed);
    return true;
  }
  if (r == -1) {
    e->malformed = true;
    return false;
  }
  /* Every line is read even when the list is unusable: the dirty set has
   * moved to "unconfirmed" in the filter already, and the channel must
   * stay in step (control_client.h says why the list is bounded). */
  e->count++;
  e->handed += len;
  if (!e->malformed && !e->unusable &&
      extent_list_append_bounded (&e->extents, off, len, CONTROL_SNAPSHOT_MAX_EXTENTS,
                                  CONTROL_SNAPSHOT_MIN_BRIDGE, &e->bridge) == -1) {
    if (errno == ENOMEM)
      entry_error (e, ENOMEM, "SNAPSHOT: out of memory for %" PRIu64 " extents",
                   e->snap_n);
    else
      entry_error (e, EPROTO, "SNAPSHOT: the filter sent extents out of order");
    e->unusable = true;
  }
  return false;
}

/* Feed one reply line to the request at the head; true when it has all
 * its lines. */
static bool
feed_line (struct control_channel *ch, struct entry *e, const char *line)
{
  char why[512];

  switch (e->kind) {
  case KIND_PLAIN:
    return take_first_line (ch, e, line) == 0;
  case KIND_STATUS:
    if (take_first_line (ch, e, line) == -1)
      return false;
    if (e->ok && control_status_parse (line, &e->st, why, sizeof why) == -1)
      entry_error (e, EPROTO, "%s", why);
    return true;
  case KIND_CONFIRM:
    if (!control_reply_is_ok (line)) {
      const char *ename, *msg;
      size_t elen;
      if (control_reply_error (line, &ename, &elen, &msg) == -1) {
        channel_break (ch, true, "CONFIRM", "the filter's reply is neither OK nor ERR", 0);
        return false;
      }
      entry_error (e, EPROTO, "CONFIRM refused by the filter: %.*s %s",
                   (int) elen, ename, msg);
    }
    return --e->replies_left == 0;
  case KIND_SNAPSHOT:
    if (e->in_extents)
      return take_extent_line (e, line);
    if (take_first_line (ch, e, line) == -1)
      return false;
    if (!e->ok)
      return true;
    if (control_reply_get_u64 (line, "extents", &e->snap_n) == -1 ||
        control_reply_get_u64 (line, "bytes", &e->snap_bytes) == -1) {
      channel_break (ch, true, "SNAPSHOT", "the filter's reply has no valid extents "
                     "and bytes", 0);
      return false;
    }
    control_reply_get_u64 (line, "generation", &e->generation);
    e->in_extents = true;
    return false;
  case KIND_BARRIER:
    break;
  }
  assert (!"a barrier takes no reply lines");
  return false;
}

static void
on_line (struct control_channel *ch, const char *line)
{
  /* Barriers before the request this line answers are due now. */
  while (ch->head != NULL && ch->head->kind == KIND_BARRIER && !ch->broken)
    complete_head (ch);
  if (ch->broken)
    return;
  if (ch->head == NULL) {
    channel_break (ch, false, "the control connection",
                   "the filter sent a reply nobody asked for", 0);
    return;
  }
  if (feed_line (ch, ch->head, line) && !ch->broken)
    complete_head (ch);
}

static void
on_readable (struct ev_loop *loop, ev_io *w, int revents)
{
  struct control_channel *ch = w->data;
  const char *cmd = ch->head ? ch->head->cmd : "the control connection";
  unsigned epoch = ch->epoch;

  ssize_t n = recv (ch->fd, ch->in + ch->in_len, CONTROL_MAX_LINE - ch->in_len, 0);
  if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (n == -1) {
    channel_break (ch, true, cmd, "cannot read the reply", errno);
    return;
  }
  if (n == 0) {
    channel_break (ch, true, cmd, "the filter closed the control connection", 0);
    return;
  }
  ch->in_len += (size_t) n;
  /* Callbacks run from here may break or reconnect the channel: stop
   * taking lines from this buffer as soon as it is no longer ours. */
  size_t used = 0;
  while (!ch->broken && ch->epoch == epoch) {
    char *nl = memchr (ch->in + used, '\n', ch->in_len - used);
    if (nl == NULL)
      break;
    char line[CONTROL_MAX_LINE + 1];
    size_t len = (size_t) (nl - (ch->in + used));
    memcpy (line, ch->in + used, len);
    if (len > 0 && line[len - 1] == '\r')
      len--;
    line[len] = '\0';
    used = (size_t) (nl - ch->in) + 1;
    on_line (ch, line);
  }
  if (ch->broken || ch->epoch != epoch)
    return;
  memmove (ch->in, ch->in + used, ch->in_len - used);
  ch->in_len -= used;
  if (ch->in_len >= CONTROL_MAX_LINE)
    channel_break (ch, true, ch->head ? ch->head->cmd : "the control connection",
                   "the filter sent a reply line that is too long", 0);
}

/* Write what the socket takes now; the rest when it is writable. */
static void
flush_out (struct control_channel *ch)
{
  while (ch->out_off < ch->out_len) {
    ssize_t r = send (ch->fd, ch->out + ch->out_off, ch->out_len - ch->out_off,
                      MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ev_io_start (ch->loop, &ch->wio);
      return;
    }
    if (r == -1) {
      const struct entry *e = ch->tail;
      channel_break (ch, false, e ? e->cmd : "a request", "cannot send the request",
                     errno);
      return;
    }
    ch->out_off += (size_t) r;
  }
  ch->out_off = ch->out_len = 0;
  ev_io_stop (ch->loop, &ch->wio);
}

static void
on_writable (struct ev_loop *loop, ev_io *w, int revents)
{
  flush_out (w->data);
}

static int
append_out (struct control_channel *ch, const char *text, size_t len)
{
  if (ch->out_len + len > ch->out_cap) {
    size_t cap = ch->out_cap ? ch->out_cap : 4096;
    while (cap < ch->out_len + len)
      cap *= 2;
    char *p = realloc (ch->out, cap);
    if (p == NULL)
      return -1;
    ch->out = p;
    ch->out_cap = cap;
  }
  memcpy (ch->out + ch->out_len, text, len);
  ch->out_len += len;
  return 0;
}

static struct entry *
new_entry (enum entry_kind kind, const char *cmd, control_channel_cb *cb,
           void *opaque, uint64_t tag)
{
  struct entry *e = calloc (1, sizeof *e);
  if (e == NULL)
    return NULL;
  e->kind = kind;
  snprintf (e->cmd, sizeof e->cmd, "%s", cmd);
  e->cb = cb;
  e->opaque = opaque;
  e->tag = tag;
  e->sent_ns = time_monotonic_ns ();
  return e;
}

/* Queue e and write text (NULL for a barrier).  A request that cannot be
 * written (a broken channel, no memory) fails from the loop like any
 * other. */
static void
issue (struct control_channel *ch, struct entry *e, const char *text, size_t len)
{
  if (ch->tail)
    ch->tail->next = e;
  else
    ch->head = e;
  ch->tail = e;
  ch->pending++;
  if (ch->broken || e->kind == KIND_BARRIER) {
    ev_timer_start (ch->loop, &ch->kick);
    return;
  }
  if (append_out (ch, text, len) == -1) {
    channel_break (ch, false, e->cmd, "out of memory for the request", ENOMEM);
    return;
  }
  if (first_request (ch) == e)
    arm_head_timer (ch);
  flush_out (ch);
}

/* Out of memory for the entry itself: there is nothing to queue, so the
 * only safe thing is to break the channel (the caller's callback never
 * runs, but the migration fails through any pending or later request;
 * with none pending the owner finds the channel broken). */
static void
issue_kind (struct control_channel *ch, enum entry_kind kind, bool slow,
            const char *cmd, const char *text, control_channel_cb *cb,
            void *opaque, uint64_t tag)
{
  struct entry *e = new_entry (kind, cmd, cb, opaque, tag);
  if (e == NULL) {
    channel_break (ch, false, cmd, "out of memory for the request", ENOMEM);
    return;
  }
  e->slow = slow;
  issue (ch, e, text, text ? strlen (text) : 0);
}

static void
head_timeout_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct control_channel *ch = w->data;
  const struct entry *e = first_request (ch);

  channel_break (ch, false, e ? e->cmd : "a request",
                 "no reply from the filter in time", ETIMEDOUT);
  /* The culprit is the first request waiting for a reply. */
  for (struct entry *p = ch->head; p != NULL; p = p->next)
    if (p->kind != KIND_BARRIER) {
      p->culprit = true;
      break;
    }
}

static void
attach_fd (struct control_channel *ch, int fd)
{
  int flags = fcntl (fd, F_GETFL);
  if (flags != -1)
    fcntl (fd, F_SETFL, flags | O_NONBLOCK);
  ch->fd = fd;
  ch->epoch++;
  ch->broken = false;
  ch->broken_by[0] = '\0';
  ch->in_len = 0;
  ch->out_len = ch->out_off = 0;
  ev_io_init (&ch->rio, on_readable, fd, EV_READ);
  ch->rio.data = ch;
  ev_io_init (&ch->wio, on_writable, fd, EV_WRITE);
  ch->wio.data = ch;
  ev_io_start (ch->loop, &ch->rio);
}

struct control_channel *
control_channel_new (struct ev_loop *loop, int fd, unsigned timeout_ms,
                     unsigned slow_timeout_ms)
{
  struct control_channel *ch = calloc (1, sizeof *ch);
  if (ch == NULL)
    return NULL;
  ch->loop = loop;
  ch->timeout_ms = timeout_ms;
  ch->slow_timeout_ms = slow_timeout_ms > timeout_ms ? slow_timeout_ms : timeout_ms;
  ev_timer_init (&ch->head_timer, head_timeout_cb, 0., 0.);
  ch->head_timer.data = ch;
  ev_timer_init (&ch->kick, kick_cb, 0., 0.);
  ch->kick.data = ch;
  attach_fd (ch, fd);
  /* The read watcher alone must not keep the loop running once nothing
   * is pending: it is only active while requests are. */
  ev_io_stop (loop, &ch->rio);
  return ch;
}

void
control_channel_disconnect (struct control_channel *ch)
{
  channel_break (ch, false, "the control connection", "closed by stm-send", 0);
  if (ch->fd >= 0) {
    close (ch->fd);
    ch->fd = -1;
  }
}

int
control_channel_reconnect (struct control_channel *ch, const char *path,
                           char *err, size_t errlen)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  if (ch->pending > 0) {
    snprintf (err, errlen, "requests are still pending on the old connection");
    return -1;
  }
  if (strlen (path) >= sizeof addr.sun_path) {
    snprintf (err, errlen, "the path is too long for a Unix socket");
    return -1;
  }
  memcpy (addr.sun_path, path, strlen (path) + 1);
  /* A Unix socket connects at once or not at all. */
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    snprintf (err, errlen, "connect: %s", strerror (errno));
    if (fd >= 0)
      close (fd);
    return -1;
  }
  if (ch->fd >= 0)
    close (ch->fd);
  ev_timer_stop (ch->loop, &ch->kick);
  attach_fd (ch, fd);
  ev_io_stop (ch->loop, &ch->rio);
  return 0;
}

void
control_channel_free (struct control_channel *ch)
{
  if (ch == NULL)
    return;
  ev_io_stop (ch->loop, &ch->rio);
  ev_io_stop (ch->loop, &ch->wio);
  ev_timer_stop (ch->loop, &ch->head_timer);
  ev_timer_stop (ch->loop, &ch->kick);
  while (ch->head != NULL) {
    struct entry *e = ch->head;
    ch->head = e->next;
    extent_list_free (&e->extents);
    free (e);
  }
  if (ch->fd >= 0)
    close (ch->fd);
  free (ch->out);
  free (ch);
}

bool
control_channel_is_broken (const struct control_channel *ch)
{
  return ch->broken;
}

const char *
control_channel_broken_by (const struct control_channel *ch)
{
  return ch->broken_by;
}

size_t
control_channel_pending (const struct control_channel *ch)
{
  return ch->pending;
}

/* Read replies only while some are expected, so that an idle channel
 * does not keep the loop running. */
static void
expect_replies (struct control_channel *ch)
{
  if (!ch->broken && ch->fd >= 0)
    ev_io_start (ch->loop, &ch->rio);
}

void
control_channel_status (struct control_channel *ch, control_channel_cb *cb,
                        void *opaque, uint64_t tag)
{
  issue_kind (ch, KIND_STATUS, false, "STATUS", "STATUS\n", cb, opaque, tag);
  expect_replies (ch);
}

void
control_channel_snapshot (struct control_channel *ch, control_channel_cb *cb,
                          void *opaque, uint64_t tag)
{
  issue_kind (ch, KIND_SNAPSHOT, false, "SNAPSHOT", "SNAPSHOT\n", cb, opaque, tag);
  expect_replies (ch);
}

void
control_channel_freeze (struct control_channel *ch, control_channel_cb *cb,
                        void *opaque, uint64_t tag)
{
  issue_kind (ch, KIND_PLAIN, true, "FREEZE", "FREEZE\n", cb, opaque, tag);
  expect_replies (ch);
}

void
control_channel_thaw (struct control_channel *ch, control_channel_cb *cb,
                      void *opaque, uint64_t tag)
{
  issue_kind (ch, KIND_PLAIN, false, "THAW", "THAW\n", cb, opaque, tag);
  expect_replies (ch);
}

void
control_channel_throttle (struct control_channel *ch, uint64_t bytes_per_second,
                          control_channel_cb *cb, void *opaque, uint64_t tag)
{
  char text[64];

  snprintf (text, sizeof text, "THROTTLE %" PRIu64 "\n", bytes_per_second);
  issue_kind (ch, KIND_PLAIN, false, "THROTTLE", text, cb, opaque, tag);
  expect_replies (ch);
}

static void
tagged (struct control_channel *ch, const char *cmd, const char *migration_id_hex,
        control_channel_cb *cb, void *opaque, uint64_t tag)
{
  char text[64];

  if (migration_id_hex != NULL)
    snprintf (text, sizeof text, "%s %s\n", cmd, migration_id_hex);
  else
    snprintf (text, sizeof text, "%s\n", cmd);
  issue_kind (ch, KIND_PLAIN, false, cmd, text, cb, opaque, tag);
  expect_replies (ch);
}

void
control_channel_reset (struct control_channel *ch, const char *migration_id_hex,
                       control_channel_cb *cb, void *opaque, uint64_t tag)
{
  tagged (ch, "RESET", migration_id_hex, cb, opaque, tag);
}

void
control_channel_resume (struct control_channel *ch, const char *migration_id_hex,
                        control_channel_cb *cb, void *opaque, uint64_t tag)
{
  tagged (ch, "RESUME", migration_id_hex, cb, opaque, tag);
}

void
control_channel_flip_fence (struct control_channel *ch, control_channel_cb *cb,
                            void *opaque, uint64_t tag)
{
  issue_kind (ch, KIND_PLAIN, true, "FLIP fence", "FLIP fence\n", cb, opaque, tag);
  expect_replies (ch);
}

/* A slow request whose one argument is an NBD URI: FLIP forward, and
 * PRECONNECT, which opens the same connection ahead of the freeze. */
static void
uri_request (struct control_channel *ch, const char *verb, const char *uri,
             control_channel_cb *cb, void *opaque, uint64_t tag)
{
  char text[CONTROL_MAX_URI + 32];
  struct entry *e = new_entry (KIND_PLAIN, verb, cb, opaque, tag);

  if (e == NULL) {
    channel_break (ch, false, verb, "out of memory for the request", ENOMEM);
    return;
  }
  e->slow = true;
  if (strlen (uri) >= CONTROL_MAX_URI || strpbrk (uri, " \r\n") != NULL) {
    /* Nothing is sent: it fails from the loop, as a barrier completes. */
    entry_error (e, EINVAL, "%s: the URI is too long or contains spaces", verb);
    e->kind = KIND_BARRIER;
    issue (ch, e, NULL, 0);
    return;
  }
  snprintf (text, sizeof text, "%s %s\n", verb, uri);
  issue (ch, e, text, strlen (text));
  expect_replies (ch);
}

void
control_channel_flip_forward (struct control_channel *ch, const char *uri,
                              control_channel_cb *cb, void *opaque, uint64_t tag)
{
  uri_request (ch, "FLIP forward", uri, cb, opaque, tag);
}

void
control_channel_preconnect (struct control_channel *ch, const char *uri,
                            control_channel_cb *cb, void *opaque, uint64_t tag)
{
  uri_request (ch, "PRECONNECT", uri, cb, opaque, tag);
}

void
control_channel_confirm (struct control_channel *ch, const struct extent *ranges,
                         size_t n, control_channel_cb *cb, void *opaque, uint64_t tag)
{
  struct entry *e = new_entry (n ? KIND_CONFIRM : KIND_BARRIER, "CONFIRM", cb, opaque, tag);
  char *text = NULL;
  size_t len = 0;

  if (e == NULL || (n > 0 && (text = malloc (n * 64)) == NULL)) {
    free (e);
    channel_break (ch, false, "CONFIRM", "out of memory for the request", ENOMEM);
    return;
  }
  e->ok = 1;
  e->replies_left = n;
  /* "CONFIRM ", two 20-digit numbers, a space and a newline: 50. */
  for (size_t i = 0; i < n; i++)
    len += (size_t) snprintf (text + len, 64, "CONFIRM %" PRIu64 " %" PRIu64 "\n",
                              ranges[i].offset, ranges[i].length);
  issue (ch, e, text, len);
  free (text);
  if (n > 0)
    expect_replies (ch);
}

void
control_channel_barrier (struct control_channel *ch, control_channel_cb *cb,
                         void *opaque, uint64_t tag)
{
  struct entry *e = new_entry (KIND_BARRIER, "(barrier)", cb, opaque, tag);
  if (e == NULL) {
    channel_break (ch, false, "(barrier)", "out of memory", ENOMEM);
    return;
  }
  e->ok = 1;
  issue (ch, e, NULL, 0);
}
