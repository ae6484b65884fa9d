/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the TLS 1.3 transport of a connection (GnuTLS on a non-blocking
 * socket), the table of operations conn_ops.h describes.
 *
 * Most of what is here is about saying what went wrong: a failed handshake
 * is the first thing a user meets when the two sides are set up
 * differently (another key, another TLS mode, a certificate from another
 * CA), so the failure names the likely cause, and a TLS server first
 * looks at the peer's opening bytes to recognise a sender without TLS and
 * answer it in words it can read.  The rest follows GnuTLS's rules for
 * non-blocking use: an interrupted record send is repeated with the same
 * data, and a record sent from a caller's buffer that must wait is held by
 * GnuTLS and pushed out later with a send of no data.  GnuTLS reaches the
 * socket through our own push and pull functions, which do what its
 * system ones do and count the bytes (the records, not the plaintext);
 * the push function also tells the kernel when more records follow at
 * once (MSG_MORE), so that a message's 16 KiB records leave in full
 * packets rather than one segment each, and the pull function reads up
 * to 64 KiB ahead, since GnuTLS asks for every record in two reads (its
 * header, then its body) and a system call costs more than copying the
 * bytes once more.  What it holds is handed out before the socket is
 * read again; the engine reads until the transport has nothing left
 * (CONN_IO_AGAIN) or comes back by itself, as for records GnuTLS holds.
 */
#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "conn_ops.h"
#include "log.h"
#include "tls_creds.h"
#include "wire.h"

/* Bytes read from the socket at a time (tls_pull). */
#define PULL_AHEAD (64 * 1024)

struct tls_state {
  gnutls_session_t session;
  /* What the credentials learnt in the handshake (a refused identity). */
  struct tls_session_note note;
  /* A server has looked at the peer's first bytes (tls_sniff_peer). */
  bool sniffed;
  /* GnuTLS requires a send that returned EAGAIN to be repeated with the
   * same data; this is its length (0 = none outstanding). */
  size_t retry_len;
  /* Bytes follow the record being sent (the send's more, or the rest of
   * the piece offered): tls_push tells the kernel so (MSG_MORE). */
  bool push_more;
  /* Bytes read from the socket ahead of GnuTLS (tls_pull): [rstart, rend)
   * of rbuf are still to be handed over. */
  size_t rstart, rend;
  uint8_t rbuf[PULL_AHEAD];
};

static gnutls_session_t
session_of (const struct conn_link *link)
{
  return ((const struct tls_state *) link->state)->session;
}

/* GnuTLS's transport: the socket, as its own system functions use it
 * (sendmsg with MSG_NOSIGNAL, recv, poll), with MSG_MORE while records
 * follow, reads ahead into rbuf, and every byte counted in the link
 * (conn_ops.h) when it crosses the socket.  Failures leave errno for
 * GnuTLS to read. */
static ssize_t
tls_push (gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
  struct conn_link *link = ptr;
  const struct tls_state *st = link->state;
  struct msghdr msg = { .msg_iov = (struct iovec *) iov, .msg_iovlen = (size_t) iovcnt };
  ssize_t n = sendmsg (link->fd, &msg, MSG_NOSIGNAL | (st->push_more ? MSG_MORE : 0));

  if (n > 0)
    link->wire_sent += (uint64_t) n;
  return n;
}

static ssize_t
tls_pull (gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
  struct conn_link *link = ptr;
  struct tls_state *st = link->state;
  ssize_t n;

  if (st->rend == st->rstart) {
    if (len >= PULL_AHEAD) {
      n = recv (link->fd, buf, len, 0);
      if (n > 0)
        link->wire_received += (uint64_t) n;
      return n;
    }
    n = recv (link->fd, st->rbuf, PULL_AHEAD, 0);
    if (n <= 0)
      return n;
    link->wire_received += (uint64_t) n;
    st->rstart = 0;
    st->rend = (size_t) n;
  }
  n = (ssize_t) (st->rend - st->rstart < len ? st->rend - st->rstart : len);
  memcpy (buf, st->rbuf + st->rstart, (size_t) n);
  st->rstart += (size_t) n;
  return n;
}

static int
tls_pull_timeout (gnutls_transport_ptr_t ptr, unsigned ms)
{
  const struct conn_link *link = ptr;
  const struct tls_state *st = link->state;

  if (st->rend > st->rstart)
    return 1;
  return gnutls_system_recv_timeout ((gnutls_transport_ptr_t) (intptr_t) link->fd, ms);
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

static int
tls_init (struct conn_link *link)
{
  struct tls_state *st;
  int r;

  st = calloc (1, sizeof *st);
  if (st == NULL) {
    log_error ("cannot start TLS with %s: %m", link->peer_name);
    return -1;
  }
  /* No session tickets: every connection authenticates afresh, and the
   * server sends nothing after its Finished.  GNUTLS_NO_SIGNAL: a peer
   * that vanishes must not kill us with SIGPIPE. */
  r = gnutls_init (&st->session,
                   (link->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT)
                   | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS);
  if (r < 0) {
    log_error ("cannot start TLS with %s: %s", link->peer_name,
               gnutls_strerror (r));
    free (st);
    return -1;
  }
  link->state = st;
  r = tls_creds_apply (link->creds, st->session, link->is_server, &st->note);
  if (r < 0) {
    log_error ("cannot start TLS with %s: %s", link->peer_name,
               gnutls_strerror (r));
    return -1;
  }
  gnutls_transport_set_ptr (st->session, link);
  gnutls_transport_set_vec_push_function (st->session, tls_push);
  gnutls_transport_set_pull_function (st->session, tls_pull);
  gnutls_transport_set_pull_timeout_function (st->session, tls_pull_timeout);
  return 0;
}

static void
tls_fini (struct conn_link *link)
{
  struct tls_state *st = link->state;

  if (st != NULL) {
    gnutls_deinit (st->session);
    free (st);
    link->state = NULL;
  }
}

/*----------------------------------------------------------------------
 * Handshake
 */

/* What a fatal handshake result r means, for the user, in detail[]; left
 * alone when there is nothing to add to GnuTLS's own text. */
static void
handshake_failure_detail (struct conn_link *link, int r, char *detail,
                          size_t len)
{
  gnutls_session_t session = session_of (link);
  bool psk = tls_creds_mode (link->creds) == TLS_MODE_PSK;

  if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    gnutls_alert_description_t a = gnutls_alert_get (session);
    const char *alert = gnutls_alert_get_name (a);
    /* In PSK mode a peer refuses us for an identity or a key it does not
     * share, and the alert itself cannot say which.  With certificates, a
     * bare "handshake failure" is what a peer that takes only a
     * pre-shared key answers. */
    snprintf (detail, len, "the peer refused it (alert: %s)%s",
              alert ? alert : "unknown",
              psk
              ? "; check that both sides use the same PSK identity and key"
              : a == GNUTLS_A_HANDSHAKE_FAILURE
              ? "; if the peer runs with --tls-psk, the peers use different TLS "
                "modes: give both --tls-certs" : "");
  }
  else if (r == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER && psk)
    snprintf (detail, len,
              "%s (the peer's PSK binder does not match: are the keys the same?)",
              gnutls_strerror (r));
  else if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
    unsigned status = gnutls_session_get_verify_cert_status (session);
    gnutls_datum_t out = { NULL, 0 };

    if (gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509,
                                                      &out, 0) == 0) {
      /* GnuTLS ends each sentence with a full stop; ours goes on. */
      size_t n = strlen ((const char *) out.data);
      while (n > 0 && (out.data[n - 1] == '.' || out.data[n - 1] == ' '))
        n--;
      snprintf (detail, len,
                "the peer's certificate is not trusted: %.*s", (int) n, out.data);
      gnutls_free (out.data);
    }
  }
  else if (r == GNUTLS_E_INSUFFICIENT_CREDENTIALS && psk)
    /* We offer and accept nothing but a pre-shared key: a peer that
     * takes or offers none uses certificates. */
    snprintf (detail, len, "%s; the peers use different TLS modes: "
              "give both --tls-psk, or both --tls-certs",
              link->is_server
              ? "the peer offered no pre-shared key (does it run with --tls-certs?)"
              : "the receiver does not take a pre-shared key: it wants "
                "certificates (does it run with --tls-certs?)");
  else if (r == GNUTLS_E_NO_CERTIFICATE_FOUND)
    snprintf (detail, len,
              "the peer presented no certificate (%s)", gnutls_strerror (r));
  else if (r == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
           r == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ||
           r == GNUTLS_E_UNEXPECTED_PACKET)
    snprintf (detail, len,
              "the peer answered without TLS (does it run with --insecure?): "
              "the peers use different TLS modes");
}

/* The handshake failed with r: tell the peer (best effort) and put the
 * reason in link->error.  Returns CONN_IO_ERROR. */
static int
handshake_failed (struct conn_link *link, int r, int saved_errno)
{
  struct tls_state *st = link->state;
  char detail[512];
  size_t n;

  tls_error_text (detail, sizeof detail, r, saved_errno);
  handshake_failure_detail (link, r, detail, sizeof detail);

  /* GnuTLS's texts may end in blanks or a full stop, and our caller's
   * text follows ("...; the source is ..."). */
  n = strlen (detail);
  while (n > 0 && (detail[n - 1] == ' ' || detail[n - 1] == '\n' ||
                   detail[n - 1] == '.'))
    detail[--n] = '\0';

  /* Tell the peer why, so its user reads more than "connection closed".
   * Best effort: the socket is non-blocking and we close right after. */
  if (r != GNUTLS_E_FATAL_ALERT_RECEIVED && r != GNUTLS_E_PREMATURE_TERMINATION &&
      r != GNUTLS_E_PULL_ERROR && r != GNUTLS_E_PUSH_ERROR)
    gnutls_alert_send_appropriate (st->session, r);

  if (st->note.rejected_identity[0] != '\0')
    snprintf (link->error, sizeof link->error,
              "TLS handshake with %s failed: unknown PSK identity \"%s\" (%s)",
              link->peer_name, st->note.rejected_identity, detail);
  else
    snprintf (link->error, sizeof link->error,
              "TLS handshake with %s failed: %s", link->peer_name, detail);
  return CONN_IO_ERROR;
}

/* Record what was negotiated, and refuse anything weaker than intended:
 * the priority strings should make this impossible, so it is a check on
 * them (and on the GnuTLS in use).  Returns 1, or CONN_IO_ERROR. */
static int
check_session (struct conn_link *link)
{
  gnutls_session_t s = session_of (link);
  gnutls_protocol_t version = gnutls_protocol_get_version (s);
  gnutls_kx_algorithm_t kx = gnutls_kx_get (s);
  const char *group = gnutls_group_get_name (gnutls_group_get (s));
  const char *cipher = gnutls_cipher_get_name (gnutls_cipher_get (s));
  bool psk = tls_creds_mode (link->creds) == TLS_MODE_PSK;

  if (version != GNUTLS_TLS1_3) {
    snprintf (link->error, sizeof link->error,
              "TLS handshake with %s negotiated %s, not TLS 1.3",
              link->peer_name, gnutls_protocol_get_name (version));
    return CONN_IO_ERROR;
  }
  if (psk && kx != GNUTLS_KX_ECDHE_PSK) {
    snprintf (link->error, sizeof link->error,
              "TLS handshake with %s negotiated key exchange %s, not ECDHE-PSK",
              link->peer_name, gnutls_kx_get_name (kx));
    return CONN_IO_ERROR;
  }
  snprintf (link->description, sizeof link->description,
            psk ? "TLS 1.3, ECDHE-PSK, group %s, %s"
            : "TLS 1.3, X.509 verified against the CA, group %s, %s",
            group ? group : "?", cipher ? cipher : "?");
  return 1;
}

/* Answer a peer that speaks the stm protocol without TLS, in a plain
 * ERROR frame its decoder understands.  Best effort, on a fresh socket
 * with room for a small frame: drain what the peer sent (so closing sends
 * no reset that would discard our answer), answer, and end our side. */
static void
answer_plain_peer (struct conn_link *link, const char *ours)
{
  char text[256];
  uint8_t frame[WIRE_ENCODE_TEXT_MAX];
  uint8_t sink[4096];
  size_t len;

  snprintf (text, sizeof text, "this receiver requires TLS (it runs with %s) "
            "and the sender connected without it (--insecure): the peers use "
            "different TLS modes; give stm-send %s too", ours, ours);
  for (int i = 0; i < 16 && tls_pull (link, sink, sizeof sink) > 0; i++)
    ;
  len = wire_encode_error (frame, WIRE_ERR_PROTOCOL, text);
  if (send (link->fd, frame, len, MSG_NOSIGNAL) == (ssize_t) len) {
    link->wire_sent += len;
    shutdown (link->fd, SHUT_WR);
  }
}

/* A TLS server's look at the peer's first bytes before the handshake.  A
 * sender run with --insecure starts with a plain HELLO frame; GnuTLS would
 * fail on it, we would close with its HELLO unread, and the kernel's reset
 * would leave that sender with "Connection reset by peer".  Instead: read
 * what it sent, answer with a plain ERROR frame, close cleanly, and log the
 * same.  Returns 1 to go on with the handshake, CONN_IO_AGAIN to wait for
 * the first bytes, or CONN_IO_ERROR. */
static int
tls_sniff_peer (struct conn_link *link)
{
  struct tls_state *st = link->state;
  uint8_t head[4];
  ssize_t n;

  do
    n = recv (link->fd, head, sizeof head, MSG_PEEK);
  while (n == -1 && errno == EINTR);
  if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    link->wants_write = false;
    return CONN_IO_AGAIN;
  }
  st->sniffed = true;
  /* An error or an early close is GnuTLS's to report, as before. */
  if (n <= 0 || head[0] == TLS_CONTENT_HANDSHAKE)
    return 1;

  bool stm_plain = n == (ssize_t) sizeof head &&
    ((uint32_t) head[0] << 24 | (uint32_t) head[1] << 16 |
     (uint32_t) head[2] << 8 | head[3]) == WIRE_MAGIC;
  const char *ours =
    tls_creds_mode (link->creds) == TLS_MODE_PSK ? "--tls-psk" : "--tls-certs";
  if (stm_plain) {
    answer_plain_peer (link, ours);
    snprintf (link->error, sizeof link->error,
              "TLS handshake with %s failed: the peer speaks the stm protocol "
              "without TLS (a sender run with --insecure?) and this receiver "
              "runs with %s: the peers use different TLS modes (told the peer "
              "so in a plain ERROR frame)", link->peer_name, ours);
  }
  else
    snprintf (link->error, sizeof link->error,
              "TLS handshake with %s failed: the peer does not speak TLS "
              "(first byte 0x%02x, not a TLS handshake record)",
              link->peer_name, head[0]);
  return CONN_IO_ERROR;
}

static int
tls_handshake (struct conn_link *link)
{
  struct tls_state *st = link->state;
  int r, tries;

  if (link->is_server && !st->sniffed) {
    r = tls_sniff_peer (link);
    if (r != 1)
      return r;
  }

  /* Non-fatal results (a warning alert, an interrupted call) mean "call
   * again"; bound that in case a peer keeps sending warnings. */
  for (tries = 0; tries < 100; tries++) {
    errno = 0;
    r = gnutls_handshake (st->session);
    if (r == GNUTLS_E_SUCCESS)
      return check_session (link);
    if (r == GNUTLS_E_AGAIN) {
      link->wants_write = gnutls_record_get_direction (st->session) == 1;
      return CONN_IO_AGAIN;
    }
    if (r != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal (r))
      break;
  }
  return handshake_failed (link, r, errno);
}

/*----------------------------------------------------------------------
 * Records
 */

static ssize_t
tls_recv (struct conn_link *link, void *buf, size_t len)
{
  gnutls_session_t session = session_of (link);
  char detail[512];
  ssize_t n;

  errno = 0;
  n = gnutls_record_recv (session, buf, len);
  if (n >= 0)
    return n;                   /* 0 is close_notify: CONN_IO_EOF */
  if (n == GNUTLS_E_AGAIN) {
    link->wants_write = gnutls_record_get_direction (session) == 1;
    return CONN_IO_AGAIN;
  }
  if (n == GNUTLS_E_PREMATURE_TERMINATION)
    return CONN_IO_TRUNCATED;

  if (n == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    const char *alert = gnutls_alert_get_name (gnutls_alert_get (session));
    snprintf (detail, sizeof detail, "the peer sent alert: %s",
              alert ? alert : "unknown");
  }
  else
    tls_error_text (detail, sizeof detail, (int) n, errno);
  snprintf (link->error, sizeof link->error, "TLS receive from %s failed: %s",
            link->peer_name, detail);
  /* An interrupted call, a warning alert, or a renegotiation request
   * (which TLS 1.3 does not have, so it is ignored) are not the end. */
  return gnutls_error_is_fatal ((int) n) ? CONN_IO_ERROR : CONN_IO_RETRY;
}

/* What a failed gnutls_record_send (r) says, for the user. */
static void
send_failure_text (struct conn_link *link, ssize_t r)
{
  char detail[512];

  tls_error_text (detail, sizeof detail, (int) r, errno);
  snprintf (link->error, sizeof link->error, "TLS send to %s failed: %s",
            link->peer_name, detail);
}

static ssize_t
tls_send (struct conn_link *link, const void *buf, size_t len, bool transient,
          bool more)
{
  struct tls_state *st = link->state;
  size_t offered = len;

  if (!transient) {
    /* Repeat an interrupted send exactly, as GnuTLS requires. */
    if (st->retry_len > 0)
      len = st->retry_len;
    else if (len > CONN_PIECE_MAX)
      len = CONN_PIECE_MAX;
  }
  for (;;) {
    ssize_t n;

    errno = 0;
    st->push_more = more || len < offered;
    n = gnutls_record_send (st->session, buf, len);
    st->push_more = false;
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
      /* The record is encrypted and held; from a caller's buffer, it
       * goes out first later (tls_push_held). */
      if (transient)
        return CONN_IO_HELD;
      st->retry_len = len;
      if (n == GNUTLS_E_AGAIN) {
        link->wants_write = true;
        return CONN_IO_AGAIN;
      }
      continue;
    }
    if (n < 0) {
      send_failure_text (link, n);
      return CONN_IO_ERROR;
    }
    if (!transient)
      st->retry_len = 0;
    return n;
  }
}

/* Push out the record GnuTLS holds after a transient send met EAGAIN. */
static int
tls_push_held (struct conn_link *link)
{
  for (;;) {
    ssize_t n = gnutls_record_send (session_of (link), NULL, 0);
    if (n == GNUTLS_E_INTERRUPTED)
      continue;
    if (n == GNUTLS_E_AGAIN) {
      link->wants_write = true;
      return CONN_IO_AGAIN;
    }
    if (n < 0) {
      send_failure_text (link, n);
      return CONN_IO_ERROR;
    }
    return 1;
  }
}

/* A record holds at most what the session allows (a peer may ask for
 * less than 16 KiB): a piece GnuTLS accepted is then always whole. */
static size_t
tls_piece_max (struct conn_link *link)
{
  size_t max = gnutls_record_get_max_size (session_of (link));

  return max < CONN_PIECE_MAX ? max : CONN_PIECE_MAX;
}

/* Our close_notify.  Best effort: on an error the peer just sees the
 * connection end. */
static int
tls_bye (struct conn_link *link)
{
  gnutls_session_t session = session_of (link);
  int r = gnutls_bye (session, GNUTLS_SHUT_WR);

  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
    link->wants_write = gnutls_record_get_direction (session) == 1;
    return CONN_IO_AGAIN;
  }
  return 1;
}

const struct conn_ops conn_tls_ops = {
  .init = tls_init,
  .fini = tls_fini,
  .handshake = tls_handshake,
  .recv = tls_recv,
  .send = tls_send,
  .push_held = tls_push_held,
  .piece_max = tls_piece_max,
  .bye = tls_bye,
  .explain_bad_start = NULL,
};
