/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the connection engine of stm_conn.h: one socket, plain or under
 * TLS 1.3, driven by one libev io watcher.
 *
 * Everything here is the same for both kinds of connection; what differs
 * (handshake, reading and writing records, the goodbye) is behind the
 * table of operations chosen in stm_conn_new (conn_ops.h: conn_plain.c,
 * conn_tls.c), so this file never asks which kind it drives.
 *
 * A connection moves through three states.  HANDSHAKE runs the
 * operations' handshake each time the socket is ready in the direction it
 * asked for (a plain connection passes through it on the first writable
 * event, so on_ready is always called from the loop).  OPEN reads into a
 * bounded input buffer, hands every complete frame to the wire decoder and
 * then to on_message, and writes the output queue.  SHUTDOWN is the tail of
 * a graceful close: our goodbye (TLS close_notify) and FIN are sent and we
 * read and discard until the peer closes too, so that our last bytes are
 * not lost to a TCP reset caused by unread input.
 *
 * Callbacks may close the connection, or the user may close it from inside
 * a callback, so memory is only released when no callback frame of this
 * connection is active: every entry from libev counts itself in "depth",
 * and a close only marks the connection; the outermost frame frees it.
 * "user_done" records that the user will hear nothing more (they closed, or
 * on_close was delivered), which is what makes on_close happen at most once
 * and never after a close.
 *
 * Memory per connection is bounded: the input buffer grows lazily to the
 * largest frame seen and never beyond WIRE_MAX_FRAME, and the output queue
 * holds only what the user queued (which flow control bounds).
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "conn_ops.h"
#include "log.h"
#include "out_queue.h"
#include "stm_conn.h"
#include "wire.h"

#define HANDSHAKE_TIMEOUT 10.0  /* seconds */
/* After close_after_flush: how long queued output may take to leave, and
 * then how long we wait for the peer to close its side. */
#define LINGER_TIMEOUT 30.0
#define SHUTDOWN_TIMEOUT 2.0

/* A message body at least this long goes to the socket straight from the
 * caller's buffer when nothing is queued before it (conn_send_direct). */
#define DIRECT_SEND_MIN (64 * 1024)
#define IN_INITIAL_SIZE (64 * 1024)     /* input buffer before a big frame */
/* Bytes read in one go before giving other watchers of the loop a turn. */
#define READ_BUDGET (4 * 1024 * 1024)
#define DEFAULT_LOW_WATER (4 * 1024 * 1024)
#define DEFAULT_HIGH_WATER (32 * 1024 * 1024)
#define REASON_MAX 1400

enum conn_state {
  CONN_HANDSHAKE,
  CONN_OPEN,
  CONN_SHUTDOWN,
};

struct stm_conn {
  struct ev_loop *loop;
  const struct conn_ops *ops;          /* plain or TLS, for good */
  struct conn_link link;               /* the fd, and what ops keep */
  char *peer_name;
  struct stm_conn_callbacks cb;
  void *opaque;

  enum conn_state state;
  ev_io io;
  int io_events;                       /* what io is started with, 0 = stopped */
  ev_timer deadline;                   /* handshake, linger, shutdown */
  ev_timer kick;                       /* resume reading from the loop */

  unsigned depth;                      /* active libev/callback frames */
  bool user_done;                      /* no more callbacks, user calls no-ops */
  bool lingering;                      /* flushing, then graceful close */
  bool release_wanted;                 /* free when depth drops to 0 */
  bool paused;
  bool handshake_wants_write;
  bool recv_wants_write;               /* the transport must write to read on */
  bool bye_started;
  bool bye_wants_write;
  bool peer_eof;                       /* seen while lingering */

  struct wire_disks disks;             /* bounds DATA, ZERO, EXPORT */

  /* Input: bytes [in_start, in_end) of in[in_cap] are received, not yet
   * decoded; in_want is the size of the frame being assembled. */
  uint8_t *in;
  size_t in_cap, in_start, in_end, in_want;

  struct out_queue out;
  /* A piece sent straight from a caller's buffer is held by the transport
   * (CONN_IO_HELD) and must be pushed out before anything queued after
   * it. */
  bool record_held;
  /* A direct send failed inside the caller's stack; conn_flush reports it
   * from the loop, where failing the connection is safe. */
  char send_error[1024];
  size_t low_water, high_water;
  bool drain_armed;

  double linger_timeout;               /* seconds a graceful close may take */
  unsigned *live;                      /* counts this connection until freed */
};

static void conn_progress (struct stm_conn *c, bool try_read);
static int conn_queue (struct stm_conn *c, const void *head, size_t headlen,
                       const void *body, size_t bodylen);

/*----------------------------------------------------------------------
 * Connection life cycle
 */

static void
conn_release (struct stm_conn *c)
{
  assert (c->depth == 0);
  ev_io_stop (c->loop, &c->io);
  ev_timer_stop (c->loop, &c->deadline);
  ev_timer_stop (c->loop, &c->kick);
  c->ops->fini (&c->link);
  if (c->link.fd >= 0)
    close (c->link.fd);
  out_queue_free (&c->out);
  free (c->in);
  free (c->peer_name);
  if (c->live != NULL) {
    assert (*c->live > 0);
    --*c->live;
  }
  free (c);
}

/* Stop all activity now and free the memory as soon as no frame of this
 * connection is active.  Do not touch c after this if depth may be 0. */
static void
conn_request_release (struct stm_conn *c)
{
  c->release_wanted = true;
  ev_io_stop (c->loop, &c->io);
  c->io_events = 0;
  ev_timer_stop (c->loop, &c->deadline);
  ev_timer_stop (c->loop, &c->kick);
  if (c->depth == 0)
    conn_release (c);
}

/* Which socket readiness does the connection wait for now? */
static int
conn_wanted_events (const struct stm_conn *c)
{
  int events = 0;

  switch (c->state) {
  case CONN_HANDSHAKE:
    return c->handshake_wants_write ? EV_WRITE : EV_READ;
  case CONN_SHUTDOWN:
    return EV_READ;
  case CONN_OPEN:
    if (c->bye_started)
      return c->bye_wants_write ? EV_WRITE : EV_READ;
    if (c->lingering ? !c->peer_eof : !c->paused)
      events |= EV_READ;
    if (c->out.pending > 0 || c->record_held || c->send_error[0] ||
        c->recv_wants_write ||
        (c->lingering && !c->bye_started))
      events |= EV_WRITE;
    return events;
  }
  abort ();
}

static void
conn_update_events (struct stm_conn *c)
{
  int events;

  if (c->release_wanted)
    return;
  events = conn_wanted_events (c);
  if (events == c->io_events)
    return;
  ev_io_stop (c->loop, &c->io);
  if (events != 0) {
    ev_io_set (&c->io, c->link.fd, events);
    ev_io_start (c->loop, &c->io);
  }
  c->io_events = events;
}

/* Every entry from libev goes through enter/leave so that a close made
 * inside a callback frees the connection only when the stack unwinds. */
static void
conn_enter (struct stm_conn *c)
{
  c->depth++;
}

static void
conn_leave (struct stm_conn *c)
{
  assert (c->depth > 0);
  c->depth--;
  if (c->release_wanted) {
    if (c->depth == 0)
      conn_release (c);
  }
  else
    conn_update_events (c);
}

/* Come back to this connection from the loop soon, to read what GnuTLS or
 * our input buffer holds although the socket may not become readable. */
static void
conn_kick (struct stm_conn *c)
{
  if (c->release_wanted || ev_is_active (&c->kick))
    return;
  ev_timer_set (&c->kick, 0., 0.);
  ev_timer_start (c->loop, &c->kick);
}

static void
conn_start_linger (struct stm_conn *c)
{
  c->lingering = true;
  /* A handshake in progress keeps its own, shorter, deadline. */
  if (c->state != CONN_HANDSHAKE) {
    ev_timer_stop (c->loop, &c->deadline);
    ev_timer_set (&c->deadline, c->linger_timeout, 0.);
    ev_timer_start (c->loop, &c->deadline);
  }
  /* Flushing and the TLS bye happen from the loop, never inside the
   * caller's stack. */
  conn_kick (c);
}

/* Tell the user the connection is over (once) and stop it.  With
 * tell_peer (a protocol error of the peer) an ERROR frame goes out first,
 * in the background.  Must be called inside a frame (depth > 0). */
static void
conn_fail_v (struct stm_conn *c, const char *peer_text, const char *fmt,
             va_list args)
{
  char reason[REASON_MAX];

  assert (c->depth > 0);
  if (c->user_done) {
    /* The user already let go (a failing background flush): quietly. */
    conn_request_release (c);
    return;
  }
  c->user_done = true;
  vsnprintf (reason, sizeof reason, fmt, args);

  if (peer_text != NULL && c->state == CONN_OPEN) {
    uint8_t frame[WIRE_ENCODE_TEXT_MAX];
    size_t n = wire_encode_error (frame, WIRE_ERR_PROTOCOL, peer_text);

    if (conn_queue (c, frame, n, NULL, 0) == 0)
      conn_start_linger (c);
    else
      conn_request_release (c);
  }
  else
    conn_request_release (c);

  if (c->cb.on_close)
    c->cb.on_close (c, reason, c->opaque);
}

static void conn_fail (struct stm_conn *c, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));
static void
conn_fail (struct stm_conn *c, const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  conn_fail_v (c, NULL, fmt, args);
  va_end (args);
}

static void conn_fail_protocol (struct stm_conn *c, const char *peer_text,
                                const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));
static void
conn_fail_protocol (struct stm_conn *c, const char *peer_text,
                    const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  conn_fail_v (c, peer_text, fmt, args);
  va_end (args);
}

/*----------------------------------------------------------------------
 * Handshake
 */

static void
conn_become_open (struct stm_conn *c)
{
  c->state = CONN_OPEN;
  if (!c->lingering)
    ev_timer_stop (c->loop, &c->deadline);
  else {
    ev_timer_stop (c->loop, &c->deadline);
    ev_timer_set (&c->deadline, c->linger_timeout, 0.);
    ev_timer_start (c->loop, &c->deadline);
  }
  if (!c->user_done && c->cb.on_ready)
    c->cb.on_ready (c, c->opaque);
}

static void
conn_handshake_step (struct stm_conn *c)
{
  int r = c->ops->handshake (&c->link);

  if (r == 1)
    conn_become_open (c);
  else if (r == CONN_IO_AGAIN)
    c->handshake_wants_write = c->link.wants_write;
  else
    conn_fail (c, "%s", c->link.error);
}

/*----------------------------------------------------------------------
 * Reading
 */

/* Hand every complete frame in the input buffer to on_message, then move
 * the incomplete rest (less than one frame) to the front. */
static void
conn_deliver (struct stm_conn *c)
{
  while (!c->paused && !c->user_done) {
    struct wire_msg msg;
    size_t used = 0;
    const char *why = NULL;
    enum wire_decode_result r;

    r = wire_decode (c->in + c->in_start, c->in_end - c->in_start,
                     &c->disks, &msg, &used, &why);
    if (r == WIRE_DECODE_NEED_MORE) {
      if (used > WIRE_MAX_FRAME) {
        conn_fail (c, "malformed message from %s: frame of %zu bytes is too big",
                   c->peer_name, used);
        return;
      }
      c->in_want = used;
      break;
    }
    if (r == WIRE_DECODE_ERROR) {
      /* The peer may use another transport than ours (TLS against plain):
       * the transport can say so better than "bad magic". */
      const char *peer_text = NULL;
      if (c->in_start == 0 && c->ops->explain_bad_start != NULL)
        peer_text = c->ops->explain_bad_start (&c->link, c->in, c->in_end);
      if (peer_text != NULL) {
        conn_fail_protocol (c, peer_text, "%s", c->link.error);
        return;
      }
      conn_fail_protocol (c, why ? why : "malformed message",
                          "malformed message from %s: %s", c->peer_name,
                          why ? why : "(no reason given)");
      return;
    }
    c->in_start += used;
    if (c->cb.on_message)
      c->cb.on_message (c, &msg, c->opaque);
  }

  if (c->in_start > 0 && !c->release_wanted) {
    memmove (c->in, c->in + c->in_start, c->in_end - c->in_start);
    c->in_end -= c->in_start;
    c->in_start = 0;
  }
}

/* Make room for the next read.  Returns false after failing the
 * connection. */
static bool
conn_input_room (struct stm_conn *c)
{
  uint8_t *grown;
  size_t cap;

  if (c->in == NULL) {
    c->in = malloc (IN_INITIAL_SIZE);
    if (c->in == NULL) {
      conn_fail (c, "cannot receive from %s: out of memory", c->peer_name);
      return false;
    }
    c->in_cap = IN_INITIAL_SIZE;
    return true;
  }
  if (c->in_end < c->in_cap)
    return true;

  /* Full after conn_deliver: it holds the start of one frame bigger than
   * the buffer, of in_want bytes (which the decoder bounds). */
  assert (c->in_start == 0 && c->in_want > c->in_cap);
  cap = c->in_want;
  assert (cap <= WIRE_MAX_FRAME);
  grown = realloc (c->in, cap);
  if (grown == NULL) {
    conn_fail (c, "cannot receive from %s: out of memory for a %zu byte frame",
               c->peer_name, cap);
    return false;
  }
  c->in = grown;
  c->in_cap = cap;
  return true;
}

/* The burst of messages read is over (on_idle); the callback may close
 * the connection, so nothing touches it afterwards. */
static void
notify_idle (struct stm_conn *c)
{
  if (!c->paused && !c->user_done && c->cb.on_idle != NULL)
    c->cb.on_idle (c, c->opaque);
}

static void
conn_read_step (struct stm_conn *c)
{
  size_t budget = READ_BUDGET;
  unsigned nonfatal = 0;

  c->recv_wants_write = false;
  /* Frames left over from a pause first. */
  if (c->in_end > c->in_start) {
    conn_deliver (c);
    if (c->user_done)
      return;
  }

  for (;;) {
    ssize_t n;

    if (c->paused || c->user_done)
      return;
    if (!conn_input_room (c))
      return;

    n = c->ops->recv (&c->link, c->in + c->in_end, c->in_cap - c->in_end);
    if (n == CONN_IO_AGAIN) {
      c->recv_wants_write = c->link.wants_write;
      notify_idle (c);
      return;
    }
    if (n == CONN_IO_EOF || n == CONN_IO_TRUNCATED) {
      conn_fail (c, "peer closed the connection");
      return;
    }
    /* An interrupted call, a warning alert, or a renegotiation request
     * (which TLS 1.3 does not have, so it is ignored): read on, but not
     * forever. */
    if (n == CONN_IO_RETRY && ++nonfatal < 100)
      continue;
    if (n < 0) {
      conn_fail (c, "%s", c->link.error);
      return;
    }

    c->in_end += n;
    conn_deliver (c);

    /* Let the rest of the loop run; TLS may hold decrypted records the
     * socket will never announce again, so come back by ourselves. */
    if ((size_t) n >= budget) {
      conn_kick (c);
      notify_idle (c);
      return;
    }
    budget -= n;
  }
}

/*----------------------------------------------------------------------
 * Writing
 */

/* Append a message to the output queue, whole or not at all.  Returns 0,
 * or -1 after reporting. */
static int
conn_queue (struct stm_conn *c, const void *head, size_t headlen,
            const void *body, size_t bodylen)
{
  if (out_queue_append (&c->out, head, headlen, body, bodylen) == -1) {
    log_error ("cannot queue %zu bytes for %s: out of memory",
               headlen + bodylen, c->peer_name);
    return -1;
  }
  return 0;
}

/* Send one piece straight from the caller's buffer (more: the message
 * goes on after it).  Returns the bytes the socket (or the transport,
 * holding them) took, 0 if it takes nothing now, or -1 with send_error. */
static ssize_t
conn_send_piece (struct stm_conn *c, const uint8_t *p, size_t len, bool more)
{
  ssize_t n = c->ops->send (&c->link, p, len, true, more);

  if (n == CONN_IO_HELD) {
    /* It goes out first later, from conn_flush. */
    c->record_held = true;
    return (ssize_t) len;
  }
  if (n == CONN_IO_AGAIN)
    return 0;
  if (n < 0) {
    snprintf (c->send_error, sizeof c->send_error, "%s", c->link.error);
    return -1;
  }
  return n;
}

/* Nothing is queued: send as much of the message as the socket takes now
 * without copying the body into the queue.  The header goes with the
 * start of the body in the first piece (that much is copied), the rest
 * from the caller's buffer in pieces the transport takes whole (a TLS
 * record; plain: all of it), each but the last sent as followed by more.
 * Returns the bytes of the message sent (or held by the transport); the
 * caller queues the rest.  A failure is left in send_error for conn_flush. */
static size_t
conn_send_direct (struct stm_conn *c, const uint8_t *head, size_t headlen,
                  const uint8_t *body, size_t bodylen)
{
  uint8_t first[CONN_PIECE_MAX];
  size_t done = 0, total = headlen + bodylen;
  size_t record = c->ops->piece_max (&c->link);
  size_t first_max = record < sizeof first ? record : sizeof first;

  assert (headlen < first_max);
  while (done < total && !c->record_held) {
    const uint8_t *p;
    size_t len;
    ssize_t n;

    if (done < headlen) {
      size_t h = headlen - done;
      size_t b = bodylen < first_max - h ? bodylen : first_max - h;
      memcpy (first, head + done, h);
      memcpy (first + h, body, b);
      p = first;
      len = h + b;
    }
    else {
      p = body + (done - headlen);
      len = total - done < record ? total - done : record;
    }
    n = conn_send_piece (c, p, len, done + len < total);
    if (n <= 0)
      break;
    done += (size_t) n;
  }
  return done;
}

int
stm_conn_send (struct stm_conn *c, const void *head, size_t headlen,
               const void *body, size_t bodylen)
{
  if (c->user_done || c->release_wanted)
    return -1;
  if (headlen + bodylen == 0)
    return 0;
  if (c->state == CONN_OPEN && !c->lingering && !c->bye_started &&
      c->out.pending == 0 && !c->record_held && c->send_error[0] == '\0' &&
      bodylen >= DIRECT_SEND_MIN) {
    size_t sent = conn_send_direct (c, head, headlen, body, bodylen);
    if (c->send_error[0]) {
      /* Failed inside the caller's stack: report it from the loop. */
      conn_kick (c);
      return 0;
    }
    if (sent < headlen) {
      head = (const uint8_t *) head + sent;
      headlen -= sent;
    }
    else {
      body = (const uint8_t *) body + (sent - headlen);
      bodylen -= sent - headlen;
      headlen = 0;
    }
    if (headlen + bodylen == 0) {
      conn_update_events (c);
      return 0;
    }
  }
  if (conn_queue (c, head, headlen, body, bodylen) == -1)
    return -1;
  if (c->out.pending >= c->low_water)
    c->drain_armed = true;
  conn_update_events (c);
  return 0;
}

/* Push out what the transport holds after a direct send.  Returns 1 when
 * it is out, 0 to wait for the socket, -1 after failing. */
static int
conn_push_held_record (struct stm_conn *c)
{
  int r = c->ops->push_held (&c->link);

  if (r == CONN_IO_AGAIN)
    return 0;
  if (r < 0) {
    conn_fail (c, "%s", c->link.error);
    return -1;
  }
  c->record_held = false;
  return 1;
}

static void
conn_flush (struct stm_conn *c)
{
  if (c->send_error[0]) {
    conn_fail (c, "%s", c->send_error);
    return;
  }
  if (c->record_held && conn_push_held_record (c) != 1)
    return;
  while (c->out.pending > 0) {
    size_t len;
    const uint8_t *p = out_queue_front (&c->out, &len);
    /* The front of the queue stays where it is until sent, which is what
     * a transport that must repeat a send needs.  The last piece goes as
     * followed by nothing, so that the kernel sends it now. */
    ssize_t n = c->ops->send (&c->link, p, len, false, c->out.pending > len);

    if (n == CONN_IO_AGAIN)
      break;
    if (n < 0) {
      conn_fail (c, "%s", c->link.error);
      return;
    }
    assert ((size_t) n <= len);
    out_queue_consume (&c->out, (size_t) n);
  }

  if (c->drain_armed &&
      (c->out.pending < c->low_water || c->out.pending == 0)) {
    c->drain_armed = false;
    if (!c->user_done && c->cb.on_drain)
      c->cb.on_drain (c, c->opaque);
  }
}

/* While closing gracefully we still read, and drop, what the peer sends: a
 * peer blocked writing to us might otherwise never read our last messages,
 * and closing a socket with unread input sends a reset that can destroy
 * them in flight. */
static void
conn_discard_input (struct stm_conn *c)
{
  char buf[16384];
  int i;

  c->recv_wants_write = false;
  for (i = 0; i < 256; i++) {
    ssize_t n = c->ops->recv (&c->link, buf, sizeof buf);

    if (n == CONN_IO_AGAIN) {
      c->recv_wants_write = c->link.wants_write;
      return;
    }
    if (n == CONN_IO_RETRY)
      continue;
    if (n == CONN_IO_EOF) {
      /* The peer finished sending; it may still read what we flush. */
      c->peer_eof = true;
      return;
    }
    if (n < 0) {
      /* Broken: nothing we queue can arrive any more. */
      conn_request_release (c);
      return;
    }
  }
  conn_kick (c);
}

/* The queue is empty after close_after_flush: say goodbye (close_notify
 * under TLS, then FIN) and wait for the peer to close its side. */
static void
conn_shutdown_step (struct stm_conn *c)
{
  c->bye_started = true;
  if (c->ops->bye (&c->link) == CONN_IO_AGAIN) {
    c->bye_wants_write = c->link.wants_write;
    return;
  }
  shutdown (c->link.fd, SHUT_WR);
  if (c->peer_eof) {
    conn_request_release (c);
    return;
  }
  c->state = CONN_SHUTDOWN;
  ev_timer_stop (c->loop, &c->deadline);
  ev_timer_set (&c->deadline, SHUTDOWN_TIMEOUT, 0.);
  ev_timer_start (c->loop, &c->deadline);
}

/* After our FIN: discard whatever still arrives until the peer closes. */
static void
conn_discard_step (struct stm_conn *c)
{
  char buf[16384];
  int i;

  for (i = 0; i < 64; i++) {
    ssize_t n = recv (c->link.fd, buf, sizeof buf, 0);

    if (n > 0 || (n == -1 && errno == EINTR))
      continue;
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    conn_request_release (c);
    return;
  }
}

/*----------------------------------------------------------------------
 * Driving the connection from libev
 */

static void
conn_progress (struct stm_conn *c, bool try_read)
{
  if (c->release_wanted)
    return;
  if (c->state == CONN_HANDSHAKE) {
    conn_handshake_step (c);
    if (c->state != CONN_OPEN || c->release_wanted)
      return;
    /* Records may have arrived with the end of the handshake. */
    try_read = true;
  }
  if (c->state == CONN_SHUTDOWN) {
    conn_discard_step (c);
    return;
  }

  if (c->bye_started) {
    conn_shutdown_step (c);
    return;
  }
  if (try_read && c->lingering && !c->peer_eof) {
    conn_discard_input (c);
    if (c->release_wanted)
      return;
  }
  else if (try_read && !c->paused && !c->lingering) {
    conn_read_step (c);
    if (c->release_wanted)
      return;
  }
  conn_flush (c);
  if (c->release_wanted)
    return;
  if (c->lingering && c->out.pending == 0 && !c->record_held)
    conn_shutdown_step (c);
}

static void
conn_io_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct stm_conn *c = w->data;
  bool try_read = (revents & EV_READ) ||
    (c->recv_wants_write && (revents & EV_WRITE));

  conn_enter (c);
  conn_progress (c, try_read);
  conn_leave (c);
}

static void
conn_kick_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct stm_conn *c = w->data;

  conn_enter (c);
  conn_progress (c, true);
  conn_leave (c);
}

static void
conn_deadline_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct stm_conn *c = w->data;

  conn_enter (c);
  if (c->state == CONN_HANDSHAKE && !c->user_done)
    conn_fail (c, "TLS handshake with %s timed out", c->peer_name);
  else
    /* A background close that did not finish in time: give up on it. */
    conn_request_release (c);
  conn_leave (c);
}

/*----------------------------------------------------------------------
 * Public connection interface
 */

struct stm_conn *
stm_conn_new (struct ev_loop *loop, int fd, struct tls_creds *creds,
              bool is_server, const char *peer_name,
              const struct stm_conn_callbacks *cb, void *opaque)
{
  struct stm_conn *c;
  int flags, one = 1;

  assert (loop && fd >= 0 && creds && cb);
  if (peer_name == NULL)
    peer_name = "peer";

  c = calloc (1, sizeof *c);
  if (c == NULL || (c->peer_name = strdup (peer_name)) == NULL) {
    log_error ("cannot set up the connection with %s: %m", peer_name);
    free (c);
    close (fd);
    return NULL;
  }
  c->loop = loop;
  /* The one place that knows there are two kinds of connection. */
  c->ops = tls_creds_mode (creds) == TLS_MODE_INSECURE
    ? &conn_plain_ops : &conn_tls_ops;
  c->link.fd = fd;
  c->link.is_server = is_server;
  c->link.peer_name = c->peer_name;
  c->link.creds = creds;
  c->cb = *cb;
  c->opaque = opaque;
  c->state = CONN_HANDSHAKE;
  c->handshake_wants_write = true;
  c->low_water = DEFAULT_LOW_WATER;
  c->high_water = DEFAULT_HIGH_WATER;
  c->linger_timeout = LINGER_TIMEOUT;
  snprintf (c->link.description, sizeof c->link.description,
            "handshake in progress");
  ev_io_init (&c->io, conn_io_cb, fd, EV_WRITE);
  c->io.data = c;
  ev_timer_init (&c->deadline, conn_deadline_cb, HANDSHAKE_TIMEOUT, 0.);
  c->deadline.data = c;
  ev_timer_init (&c->kick, conn_kick_cb, 0., 0.);
  c->kick.data = c;

  flags = fcntl (fd, F_GETFL);
  if (flags == -1 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) == -1) {
    log_error ("cannot make the socket of %s non-blocking: %m", peer_name);
    goto fail;
  }
  /* Small control messages (SYNC, DURABLE) must not wait for Nagle.  This
   * fails harmlessly on a non-TCP socket (tests use socketpairs too). */
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  if (c->ops->init (&c->link) == -1)
    goto fail;

  ev_io_start (loop, &c->io);
  c->io_events = EV_WRITE;
  ev_timer_start (loop, &c->deadline);
  return c;

 fail:
  conn_release (c);
  return NULL;
}

void
stm_conn_set_image_size (struct stm_conn *c, uint64_t image_size)
{
  wire_disks_one (&c->disks, image_size);
}

void
stm_conn_set_disks (struct stm_conn *c, const struct wire_disks *disks)
{
  c->disks = *disks;
}

size_t
stm_conn_output_pending (const struct stm_conn *c)
{
  return c->out.pending;
}

bool
stm_conn_output_full (const struct stm_conn *c)
{
  return c->out.pending >= c->high_water;
}

void
stm_conn_set_water_marks (struct stm_conn *c, size_t low, size_t high)
{
  assert (low <= high);
  c->low_water = low;
  c->high_water = high;
  if (c->out.pending >= low)
    c->drain_armed = true;
}

void
stm_conn_pause_reading (struct stm_conn *c, bool paused)
{
  if (c->user_done || c->paused == paused)
    return;
  c->paused = paused;
  /* Frames may wait in our buffer or in the transport's (TLS): go and get
   * them. */
  if (!paused && c->state == CONN_OPEN)
    conn_kick (c);
  conn_update_events (c);
}

void
stm_conn_set_linger_timeout (struct stm_conn *c, double seconds)
{
  assert (seconds > 0);
  c->linger_timeout = seconds;
}

void
stm_conn_count_in (struct stm_conn *c, unsigned *live)
{
  assert (c->live == NULL);
  c->live = live;
  ++*live;
}

void
stm_conn_close_after_flush (struct stm_conn *c)
{
  if (c->user_done)
    return;
  c->user_done = true;
  conn_start_linger (c);
  conn_update_events (c);
}

void
stm_conn_close (struct stm_conn *c)
{
  if (c->user_done)
    return;
  c->user_done = true;
  conn_request_release (c);
}

const char *
stm_conn_peer_name (const struct stm_conn *c)
{
  return c->peer_name;
}

const char *
stm_conn_security (const struct stm_conn *c)
{
  return c->link.description;
}

uint64_t
stm_conn_wire_bytes (const struct stm_conn *c)
{
  return c->link.wire_sent;
}

uint64_t
stm_conn_wire_bytes_received (const struct stm_conn *c)
{
  return c->link.wire_received;
}
