/* stm: the message connection of tls_transport.h: one socket, optionally
 * under TLS 1.3 (GnuTLS), driven by one libev io watcher.
 *
 * A connection moves through three states.  HANDSHAKE runs gnutls_handshake
 * each time the socket is ready in the direction GnuTLS asked for (insecure
 * connections pass through it on the first writable event, so on_ready is
 * always called from the loop).  OPEN reads records into a bounded input
 * buffer, hands every complete frame to the wire decoder and then to
 * on_message, and writes the output queue in TLS records.  SHUTDOWN is the
 * tail of a graceful close: our close_notify and FIN are sent and we read
 * and discard until the peer closes too, so that our last bytes are not lost
 * to a TCP reset caused by unread input.
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
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

#include "log.h"
#include "tls_transport.h"
#include "wire.h"

#define HANDSHAKE_TIMEOUT 10.0  /* seconds */
/* After close_after_flush: how long queued output may take to leave, and
 * then how long we wait for the peer to close its side. */
#define LINGER_TIMEOUT 30.0
#define SHUTDOWN_TIMEOUT 2.0

#define TLS_RECORD_MAX 16384            /* plaintext bytes per TLS record */
#define OUT_CHUNK_SIZE (256 * 1024)     /* output queue granule */
/* Emptied chunks kept for reuse: enough for a sender's whole queue (16 MiB
 * and a few reads on top), so a full pass does not keep returning chunks
 * to the allocator and faulting fresh pages in. */
#define OUT_SPARE_CHUNKS 80
/* A message body at least this long goes to the socket straight from the
 * caller's buffer when nothing is queued before it (conn_send_direct). */
#define DIRECT_SEND_MIN (64 * 1024)
#define IN_INITIAL_SIZE (64 * 1024)     /* input buffer before a big frame */
/* Bytes read in one go before giving other watchers of the loop a turn. */
#define READ_BUDGET (4 * 1024 * 1024)
#define DEFAULT_LOW_WATER (4 * 1024 * 1024)
#define DEFAULT_HIGH_WATER (32 * 1024 * 1024)
#define REASON_MAX 1400

/* A piece of the output queue: bytes [start, end) are still to be sent. */
struct out_chunk {
  struct out_chunk *next;
  size_t start, end;
  uint8_t bytes[OUT_CHUNK_SIZE];
};

enum conn_state {
  CONN_HANDSHAKE,
  CONN_OPEN,
  CONN_SHUTDOWN,
};

struct stm_conn {
  struct ev_loop *loop;
  int fd;
  gnutls_session_t session;            /* NULL when insecure */
  struct tls_creds *creds;
  char *peer_name;
  char description[160];
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
  /* A TLS server has looked at the peer's first bytes (conn_sniff_peer). */
  bool sniffed;
  bool recv_wants_write;               /* GnuTLS must write to go on reading */
  bool bye_started;
  bool bye_wants_write;
  bool peer_eof;                       /* seen while lingering */
  bool is_server;
  /* What the credentials learnt in the handshake (a refused identity). */
  struct tls_session_note note;

  uint64_t image_size;

  /* Input: bytes [in_start, in_end) of in[in_cap] are received, not yet
   * decoded; in_want is the size of the frame being assembled. */
  uint8_t *in;
  size_t in_cap, in_start, in_end, in_want;

  struct out_chunk *out_head, *out_tail, *out_spare;
  unsigned nspare;
  size_t out_pending;
  /* GnuTLS requires a send that returned EAGAIN to be repeated with the
   * same data; this is its length (0 = none outstanding). */
  size_t send_retry_len;
  /* A record sent straight from a caller's buffer met EAGAIN: GnuTLS holds
   * it encrypted, and a send of no data (NULL, 0) must push it out before
   * anything queued after it. */
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
  struct out_chunk *k, *next;

  assert (c->depth == 0);
  ev_io_stop (c->loop, &c->io);
  ev_timer_stop (c->loop, &c->deadline);
  ev_timer_stop (c->loop, &c->kick);
  if (c->session)
    gnutls_deinit (c->session);
  if (c->fd >= 0)
    close (c->fd);
  for (k = c->out_head; k; k = next) {
    next = k->next;
    free (k);
  }
  for (k = c->out_spare; k; k = next) {
    next = k->next;
    free (k);
  }
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
    if (c->out_pending > 0 || c->record_held || c->send_error[0] ||
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
    ev_io_set (&c->io, c->fd, events);
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

/* A GnuTLS error in words; for failed system calls, with the system's
 * reason, which GnuTLS leaves in errno. */
static void
tls_error_text (char *buf, size_t len, int r, int saved_errno)
{
  if ((r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR) && saved_errno != 0)
    snprintf (buf, len, "%s (%s)", gnutls_strerror (r), strerror (saved_errno));
  else
    snprintf (buf, len, "%s", gnutls_strerror (r));
}

/*----------------------------------------------------------------------
 * Handshake
 */

static void
conn_handshake_failed (struct stm_conn *c, int r, int saved_errno)
{
  char detail[512];

  tls_error_text (detail, sizeof detail, r, saved_errno);
  if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    gnutls_alert_description_t a = gnutls_alert_get (c->session);
    const char *alert = gnutls_alert_get_name (a);
    /* In PSK mode a peer refuses us for an identity or a key it does not
     * share, and the alert itself cannot say which.  With certificates, a
     * bare "handshake failure" is what a peer that takes only a
     * pre-shared key answers. */
    snprintf (detail, sizeof detail, "the peer refused it (alert: %s)%s",
              alert ? alert : "unknown",
              tls_creds_mode (c->creds) == TLS_MODE_PSK
              ? "; check that both sides use the same PSK identity and key"
              : a == GNUTLS_A_HANDSHAKE_FAILURE
              ? "; if the peer runs with --tls-psk, the peers use different TLS "
                "modes: give both --tls-certs" : "");
  }
  else if (r == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER &&
           tls_creds_mode (c->creds) == TLS_MODE_PSK)
    snprintf (detail, sizeof detail,
              "%s (the peer's PSK binder does not match: are the keys the same?)",
              gnutls_strerror (r));
  else if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
    unsigned status = gnutls_session_get_verify_cert_status (c->session);
    gnutls_datum_t out = { NULL, 0 };

    if (gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509,
                                                      &out, 0) == 0) {
      /* GnuTLS ends each sentence with a full stop; ours goes on. */
      size_t n = strlen ((const char *) out.data);
      while (n > 0 && (out.data[n - 1] == '.' || out.data[n - 1] == ' '))
        n--;
      snprintf (detail, sizeof detail,
                "the peer's certificate is not trusted: %.*s", (int) n, out.data);
      gnutls_free (out.data);
    }
  }
  else if (r == GNUTLS_E_INSUFFICIENT_CREDENTIALS && tls_creds_mode (c->creds) == TLS_MODE_PSK)
    /* We offer and accept nothing but a pre-shared key: a peer that
     * takes or offers none uses certificates. */
    snprintf (detail, sizeof detail, "%s; the peers use different TLS modes: "
              "give both --tls-psk, or both --tls-certs",
              c->is_server
              ? "the peer offered no pre-shared key (does it run with --tls-certs?)"
              : "the receiver does not take a pre-shared key: it wants "
                "certificates (does it run with --tls-certs?)");
  else if (r == GNUTLS_E_NO_CERTIFICATE_FOUND)
    snprintf (detail, sizeof detail,
              "the peer presented no certificate (%s)", gnutls_strerror (r));
  else if (r == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
           r == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ||
           r == GNUTLS_E_UNEXPECTED_PACKET)
    snprintf (detail, sizeof detail,
              "the peer answered without TLS (does it run with --insecure?): "
              "the peers use different TLS modes");

  /* GnuTLS's texts may end in blanks or a full stop, and our caller's
   * text follows ("...; the source is ..."). */
  {
    size_t n = strlen (detail);
    while (n > 0 && (detail[n - 1] == ' ' || detail[n - 1] == '\n' ||
                     detail[n - 1] == '.'))
      detail[--n] = '\0';
  }

  /* Tell the peer why, so its user reads more than "connection closed".
   * Best effort: the socket is non-blocking and we close right after. */
  if (r != GNUTLS_E_FATAL_ALERT_RECEIVED && r != GNUTLS_E_PREMATURE_TERMINATION &&
      r != GNUTLS_E_PULL_ERROR && r != GNUTLS_E_PUSH_ERROR)
    gnutls_alert_send_appropriate (c->session, r);

  if (c->note.rejected_identity[0] != '\0')
    conn_fail (c, "TLS handshake with %s failed: unknown PSK identity \"%s\" (%s)",
               c->peer_name, c->note.rejected_identity, detail);
  else
    conn_fail (c, "TLS handshake with %s failed: %s", c->peer_name, detail);
}

/* Record what was negotiated, and refuse anything weaker than intended:
 * the priority strings should make this impossible, so it is a check on
 * them (and on the GnuTLS in use). */
static int
conn_check_session (struct stm_conn *c)
{
  gnutls_session_t s = c->session;
  gnutls_protocol_t version = gnutls_protocol_get_version (s);
  gnutls_kx_algorithm_t kx = gnutls_kx_get (s);
  const char *group = gnutls_group_get_name (gnutls_group_get (s));
  const char *cipher = gnutls_cipher_get_name (gnutls_cipher_get (s));

  if (version != GNUTLS_TLS1_3) {
    conn_fail (c, "TLS handshake with %s negotiated %s, not TLS 1.3",
               c->peer_name, gnutls_protocol_get_name (version));
    return -1;
  }
  if (tls_creds_mode (c->creds) == TLS_MODE_PSK && kx != GNUTLS_KX_ECDHE_PSK) {
    conn_fail (c, "TLS handshake with %s negotiated key exchange %s, not ECDHE-PSK",
               c->peer_name, gnutls_kx_get_name (kx));
    return -1;
  }
  if (tls_creds_mode (c->creds) == TLS_MODE_PSK)
    snprintf (c->description, sizeof c->description,
              "TLS 1.3, ECDHE-PSK, group %s, %s",
              group ? group : "?", cipher ? cipher : "?");
  else
    snprintf (c->description, sizeof c->description,
              "TLS 1.3, X.509 verified against the CA, group %s, %s",
              group ? group : "?", cipher ? cipher : "?");
  return 0;
}

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

/* The first byte of a TLS record carrying a handshake message, which is
 * what a TLS client sends first. */
#define TLS_CONTENT_HANDSHAKE 0x16

/* A TLS server's look at the peer's first bytes before the handshake.  A
 * sender run with --insecure starts with a plain HELLO frame; GnuTLS would
 * fail on it, we would close with its HELLO unread, and the kernel's reset
 * would leave that sender with "Connection reset by peer".  Instead: read
 * what it sent, answer with a plain ERROR frame that its decoder
 * understands, close cleanly, and log the same.  Returns 1 to go on with
 * the handshake, 0 to wait for the first bytes, -1 after conn_fail. */
static int
conn_sniff_peer (struct stm_conn *c)
{
  uint8_t head[4];
  ssize_t n;

  do
    n = recv (c->fd, head, sizeof head, MSG_PEEK);
  while (n == -1 && errno == EINTR);
  if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    c->handshake_wants_write = false;
    return 0;
  }
  c->sniffed = true;
  /* An error or an early close is GnuTLS's to report, as before. */
  if (n <= 0 || head[0] == TLS_CONTENT_HANDSHAKE)
    return 1;

  bool stm_plain = n == (ssize_t) sizeof head &&
    ((uint32_t) head[0] << 24 | (uint32_t) head[1] << 16 |
     (uint32_t) head[2] << 8 | head[3]) == WIRE_MAGIC;
  const char *ours = tls_creds_mode (c->creds) == TLS_MODE_PSK ? "--tls-psk" : "--tls-certs";
  if (stm_plain) {
    char text[256];
    uint8_t frame[WIRE_ENCODE_TEXT_MAX];
    uint8_t sink[4096];

    snprintf (text, sizeof text, "this receiver requires TLS (it runs with %s) "
              "and the sender connected without it (--insecure): the peers use "
              "different TLS modes; give stm-send %s too", ours, ours);
    /* Best effort, on a fresh socket with room for a small frame: drain
     * what the peer sent (so closing sends no reset that would discard
     * our answer), answer, and end our side. */
    for (int i = 0; i < 16 && recv (c->fd, sink, sizeof sink, 0) > 0; i++)
      ;
    size_t len = wire_encode_error (frame, WIRE_ERR_PROTOCOL, text);
    if (send (c->fd, frame, len, MSG_NOSIGNAL) == (ssize_t) len)
      shutdown (c->fd, SHUT_WR);
    conn_fail (c, "TLS handshake with %s failed: the peer speaks the stm protocol "
               "without TLS (a sender run with --insecure?) and this receiver "
               "runs with %s: the peers use different TLS modes (told the peer "
               "so in a plain ERROR frame)", c->peer_name, ours);
  }
  else
    conn_fail (c, "TLS handshake with %s failed: the peer does not speak TLS "
               "(first byte 0x%02x, not a TLS handshake record)", c->peer_name,
               head[0]);
  return -1;
}

static void
conn_handshake_step (struct stm_conn *c)
{
  int r, tries;

  if (c->session == NULL) {
    snprintf (c->description, sizeof c->description, "insecure (no TLS)");
    conn_become_open (c);
    return;
  }
  if (c->is_server && !c->sniffed && conn_sniff_peer (c) != 1)
    return;

  /* Non-fatal results (a warning alert, an interrupted call) mean "call
   * again"; bound that in case a peer keeps sending warnings. */
  for (tries = 0; tries < 100; tries++) {
    errno = 0;
    r = gnutls_handshake (c->session);
    if (r == GNUTLS_E_SUCCESS) {
      if (conn_check_session (c) == 0)
        conn_become_open (c);
      return;
    }
    if (r == GNUTLS_E_AGAIN) {
      c->handshake_wants_write = gnutls_record_get_direction (c->session) == 1;
      return;
    }
    if (r != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal (r))
      break;
  }
  conn_handshake_failed (c, r, errno);
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
                     c->image_size, &msg, &used, &why);
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
      /* Without TLS, a TLS client's first record is what arrives; say
       * that rather than "bad magic". */
      if (c->session == NULL && c->is_server && c->in_start == 0 &&
          c->in_end - c->in_start >= 2 && c->in[0] == TLS_CONTENT_HANDSHAKE &&
          c->in[1] == 0x03) {
        /* The ERROR frame reaches a TLS client as a record it cannot
         * parse, which it reports as an answer without TLS. */
        conn_fail_protocol (c, "this receiver runs with --insecure (no TLS)",
                            "the peer %s speaks TLS (a sender run with --tls-psk "
                            "or --tls-certs?) and this receiver runs with "
                            "--insecure: the peers use different TLS modes",
                            c->peer_name);
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

    errno = 0;
    if (c->session) {
      n = gnutls_record_recv (c->session, c->in + c->in_end,
                              c->in_cap - c->in_end);
      if (n == GNUTLS_E_AGAIN) {
        c->recv_wants_write = gnutls_record_get_direction (c->session) == 1;
        return;
      }
      if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
        conn_fail (c, "peer closed the connection");
        return;
      }
      /* An interrupted call, a warning alert, or a renegotiation request
       * (which TLS 1.3 does not have, so it is ignored): read on, but not
       * forever. */
      if (n < 0 && !gnutls_error_is_fatal (n) && ++nonfatal < 100)
        continue;
      if (n < 0) {
        char detail[512];

        if (n == GNUTLS_E_FATAL_ALERT_RECEIVED) {
          const char *alert =
            gnutls_alert_get_name (gnutls_alert_get (c->session));
          snprintf (detail, sizeof detail, "the peer sent alert: %s",
                    alert ? alert : "unknown");
        }
        else
          tls_error_text (detail, sizeof detail, n, errno);
        conn_fail (c, "TLS receive from %s failed: %s", c->peer_name, detail);
        return;
      }
    }
    else {
      n = recv (c->fd, c->in + c->in_end, c->in_cap - c->in_end, 0);
      if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n == -1 && errno == EINTR)
        continue;
      if (n == 0) {
        conn_fail (c, "peer closed the connection");
        return;
      }
      if (n < 0) {
        conn_fail (c, "receive from %s failed: %m", c->peer_name);
        return;
      }
    }

    c->in_end += n;
    conn_deliver (c);

    /* Let the rest of the loop run; GnuTLS may hold decrypted records the
     * socket will never announce again, so come back by ourselves. */
    if ((size_t) n >= budget) {
      conn_kick (c);
      return;
    }
    budget -= n;
  }
}

/*----------------------------------------------------------------------
 * Writing
 */

static struct out_chunk *
chunk_get (struct stm_conn *c)
{
  struct out_chunk *k = c->out_spare;

  if (k != NULL) {
    c->out_spare = k->next;
    c->nspare--;
  }
  else {
    k = malloc (sizeof *k);
    if (k == NULL)
      return NULL;
  }
  k->next = NULL;
  k->start = k->end = 0;
  return k;
}

static void
chunk_put (struct stm_conn *c, struct out_chunk *k)
{
  if (c->nspare < OUT_SPARE_CHUNKS) {
    k->next = c->out_spare;
    c->out_spare = k;
    c->nspare++;
  }
  else
    free (k);
}

/* Copy len bytes after the tail; the chunks they need are already linked
 * after it. */
static void
queue_copy (struct stm_conn *c, const void *data, size_t len)
{
  const uint8_t *p = data;

  while (len > 0) {
    struct out_chunk *t = c->out_tail;
    size_t n;

    if (t->end == OUT_CHUNK_SIZE) {
      assert (t->next != NULL);
      t = c->out_tail = t->next;
    }
    n = OUT_CHUNK_SIZE - t->end;
    if (n > len)
      n = len;
    memcpy (t->bytes + t->end, p, n);
    t->end += n;
    p += n;
    len -= n;
    c->out_pending += n;
  }
}

/* Append a message to the output queue.  Every chunk it needs is obtained
 * before anything is copied, so a failure never leaves half a message
 * queued.  Returns 0, or -1 after reporting. */
static int
conn_queue (struct stm_conn *c, const void *head, size_t headlen,
            const void *body, size_t bodylen)
{
  size_t total = headlen + bodylen, room, need;
  struct out_chunk *added = NULL, *last = NULL, *k;

  room = c->out_tail ? OUT_CHUNK_SIZE - c->out_tail->end : 0;
  for (need = total > room ? total - room : 0; need > 0;
       need -= need < OUT_CHUNK_SIZE ? need : OUT_CHUNK_SIZE) {
    k = chunk_get (c);
    if (k == NULL) {
      while (added) {
        k = added->next;
        free (added);
        added = k;
      }
      log_error ("cannot queue %zu bytes for %s: out of memory", total,
                 c->peer_name);
      return -1;
    }
    if (last)
      last->next = k;
    else
      added = k;
    last = k;
  }
  if (added) {
    if (c->out_tail)
      c->out_tail->next = added;
    else
      c->out_head = c->out_tail = added;
  }
  if (headlen > 0)
    queue_copy (c, head, headlen);
  if (bodylen > 0)
    queue_copy (c, body, bodylen);
  assert (c->out_tail->next == NULL);
  return 0;
}

/* What a failed gnutls_record_send (r) says, for the user. */
static void
send_failure_text (const struct stm_conn *c, char *buf, size_t len, ssize_t r)
{
  char detail[512];

  tls_error_text (detail, sizeof detail, (int) r, errno);
  snprintf (buf, len, "TLS send to %s failed: %s", c->peer_name, detail);
}

/* Send one piece straight from the caller's buffer.  Returns the bytes
 * the socket (or GnuTLS, holding a record) took, 0 if it takes nothing
 * now, or -1 with c->send_error set. */
static ssize_t
conn_send_piece (struct stm_conn *c, const uint8_t *p, size_t len)
{
  for (;;) {
    ssize_t n;

    errno = 0;
    if (c->session) {
      n = gnutls_record_send (c->session, p, len);
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
        /* The record is encrypted and held; it goes out first later. */
        c->record_held = true;
        return (ssize_t) len;
      }
      if (n < 0) {
        send_failure_text (c, c->send_error, sizeof c->send_error, n);
        return -1;
      }
      return n;
    }
    n = send (c->fd, p, len, MSG_NOSIGNAL);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (n == -1) {
      snprintf (c->send_error, sizeof c->send_error, "send to %s failed: %s",
                c->peer_name, strerror (errno));
      return -1;
    }
    return n;
  }
}

/* Nothing is queued: send as much of the message as the socket takes now
 * without copying the body into the queue.  The header goes with the
 * start of the body in the first record (that much is copied), the rest
 * of the body record by record from the caller's buffer.  Returns the
 * bytes of the message sent (or held by GnuTLS); the caller queues the
 * rest.  A failure is left in send_error for conn_flush. */
static size_t
conn_send_direct (struct stm_conn *c, const uint8_t *head, size_t headlen,
                  const uint8_t *body, size_t bodylen)
{
  uint8_t first[TLS_RECORD_MAX];
  size_t done = 0, total = headlen + bodylen;
  /* A record holds at most what the session allows (a peer may ask for
   * less than 16 KiB): a piece GnuTLS accepted is then always whole. */
  size_t record = TLS_RECORD_MAX;
  if (c->session && gnutls_record_get_max_size (c->session) < record)
    record = gnutls_record_get_max_size (c->session);

  assert (headlen < record);
  while (done < total && !c->record_held) {
    const uint8_t *p;
    size_t len;
    ssize_t n;

    if (done < headlen) {
      size_t h = headlen - done;
      size_t b = bodylen < record - h ? bodylen : record - h;
      memcpy (first, head + done, h);
      memcpy (first + h, body, b);
      p = first;
      len = h + b;
    }
    else {
      p = body + (done - headlen);
      len = total - done < record ? total - done : record;
    }
    n = conn_send_piece (c, p, len);
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
      c->out_pending == 0 && !c->record_held && c->send_retry_len == 0 &&
      c->send_error[0] == '\0' && bodylen >= DIRECT_SEND_MIN) {
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
  if (c->out_pending >= c->low_water)
    c->drain_armed = true;
  conn_update_events (c);
  return 0;
}

/* The head chunk has been sent entirely: drop it, or rewind it when it is
 * also the tail so it is filled again from the start. */
static void
queue_pop_sent (struct stm_conn *c)
{
  struct out_chunk *k = c->out_head;

  assert (k->start == k->end);
  if (k == c->out_tail) {
    k->start = k->end = 0;
    return;
  }
  c->out_head = k->next;
  chunk_put (c, k);
}

/* Push out the record GnuTLS holds after a direct send met EAGAIN.
 * Returns 1 when it is out, 0 to wait for the socket, -1 after failing. */
static int
conn_push_held_record (struct stm_conn *c)
{
  for (;;) {
    ssize_t n = gnutls_record_send (c->session, NULL, 0);
    if (n == GNUTLS_E_INTERRUPTED)
      continue;
    if (n == GNUTLS_E_AGAIN)
      return 0;
    if (n < 0) {
      char text[1024];

      send_failure_text (c, text, sizeof text, n);
      conn_fail (c, "%s", text);
      return -1;
    }
    c->record_held = false;
    return 1;
  }
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
  while (c->out_pending > 0) {
    struct out_chunk *k = c->out_head;
    size_t len;
    ssize_t n;

    if (k->start == k->end) {
      queue_pop_sent (c);
      continue;
    }
    len = k->end - k->start;
    if (c->session) {
      /* Repeat an interrupted send exactly, as GnuTLS requires. */
      if (c->send_retry_len > 0)
        len = c->send_retry_len;
      else if (len > TLS_RECORD_MAX)
        len = TLS_RECORD_MAX;
      errno = 0;
      n = gnutls_record_send (c->session, k->bytes + k->start, len);
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
        c->send_retry_len = len;
        if (n == GNUTLS_E_AGAIN)
          break;
        continue;
      }
      if (n < 0) {
        char text[1024];

        send_failure_text (c, text, sizeof text, n);
        conn_fail (c, "%s", text);
        return;
      }
      c->send_retry_len = 0;
    }
    else {
      n = send (c->fd, k->bytes + k->start, len, MSG_NOSIGNAL);
      if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n == -1 && errno == EINTR)
        continue;
      if (n == -1) {
        conn_fail (c, "send to %s failed: %m", c->peer_name);
        return;
      }
    }
    assert ((size_t) n <= k->end - k->start);
    k->start += n;
    c->out_pending -= n;
    if (k->start == k->end)
      queue_pop_sent (c);
  }

  if (c->drain_armed &&
      (c->out_pending < c->low_water || c->out_pending == 0)) {
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
    ssize_t n;

    if (c->session) {
      n = gnutls_record_recv (c->session, buf, sizeof buf);
      if (n == GNUTLS_E_AGAIN) {
        c->recv_wants_write = gnutls_record_get_direction (c->session) == 1;
        return;
      }
      if (n < 0 && !gnutls_error_is_fatal (n))
        continue;
    }
    else {
      n = recv (c->fd, buf, sizeof buf, 0);
      if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n == -1 && errno == EINTR)
        continue;
    }
    if (n == 0) {
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
  if (c->session) {
    int r = gnutls_bye (c->session, GNUTLS_SHUT_WR);

    c->bye_started = true;
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      c->bye_wants_write = gnutls_record_get_direction (c->session) == 1;
      return;
    }
    /* Best effort: on an error the peer just sees the connection end. */
  }
  shutdown (c->fd, SHUT_WR);
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
    ssize_t n = recv (c->fd, buf, sizeof buf, 0);

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
  if (c->lingering && c->out_pending == 0 && !c->record_held)
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
  int flags, r, one = 1;

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
  c->fd = fd;
  c->creds = creds;
  c->is_server = is_server;
  c->cb = *cb;
  c->opaque = opaque;
  c->state = CONN_HANDSHAKE;
  c->handshake_wants_write = true;
  c->low_water = DEFAULT_LOW_WATER;
  c->high_water = DEFAULT_HIGH_WATER;
  c->linger_timeout = LINGER_TIMEOUT;
  snprintf (c->description, sizeof c->description, "handshake in progress");
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

  if (tls_creds_mode (creds) != TLS_MODE_INSECURE) {
    /* No session tickets: every connection authenticates afresh, and the
     * server sends nothing after its Finished.  GNUTLS_NO_SIGNAL: a peer
     * that vanishes must not kill us with SIGPIPE. */
    r = gnutls_init (&c->session,
                     (is_server ? GNUTLS_SERVER : GNUTLS_CLIENT)
                     | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS);
    if (r < 0) {
      c->session = NULL;
      log_error ("cannot start TLS with %s: %s", peer_name, gnutls_strerror (r));
      goto fail;
    }
    r = tls_creds_apply (creds, c->session, is_server, &c->note);
    if (r < 0) {
      log_error ("cannot start TLS with %s: %s", peer_name, gnutls_strerror (r));
      goto fail;
    }
    gnutls_transport_set_int (c->session, fd);
  }

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
  c->image_size = image_size;
}

size_t
stm_conn_output_pending (const struct stm_conn *c)
{
  return c->out_pending;
}

bool
stm_conn_output_full (const struct stm_conn *c)
{
  return c->out_pending >= c->high_water;
}

void
stm_conn_set_water_marks (struct stm_conn *c, size_t low, size_t high)
{
  assert (low <= high);
  c->low_water = low;
  c->high_water = high;
  if (c->out_pending >= low)
    c->drain_armed = true;
}

void
stm_conn_pause_reading (struct stm_conn *c, bool paused)
{
  if (c->user_done || c->paused == paused)
    return;
  c->paused = paused;
  /* Frames may wait in our buffer or in GnuTLS's: go and get them. */
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
  return c->description;
}

