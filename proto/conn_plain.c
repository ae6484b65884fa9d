/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the plain transport of a connection (--insecure): the wire
 * protocol straight on the socket, with no handshake and no goodbye beyond
 * the FIN the engine sends.
 *
 * Its one piece of judgement is explain_bad_start: a receiver without TLS
 * that sees a TLS record where the first frame should be tells both users
 * that the peers use different TLS modes, rather than "bad magic".
 */
#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sys/socket.h>

#include "conn_ops.h"

static int
plain_init (struct conn_link *link)
{
  return 0;
}

static void
plain_fini (struct conn_link *link)
{
}

/* Nothing to negotiate: the engine calls this from the loop on the first
 * writable event, so on_ready still never runs inside stm_conn_new. */
static int
plain_handshake (struct conn_link *link)
{
  snprintf (link->description, sizeof link->description, "insecure (no TLS)");
  return 1;
}

/* A recv or send that failed with errno (not EINTR): would it block, or
 * has it failed for good? */
static ssize_t
plain_failure (struct conn_link *link, const char *what)
{
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    link->wants_write = false;
    return CONN_IO_AGAIN;
  }
  snprintf (link->error, sizeof link->error, "%s %s failed: %s", what,
            link->peer_name, strerror (errno));
  return CONN_IO_ERROR;
}

static ssize_t
plain_recv (struct conn_link *link, void *buf, size_t len)
{
  ssize_t n;

  do
    n = recv (link->fd, buf, len, 0);
  while (n == -1 && errno == EINTR);
  if (n > 0)
    link->wire_received += (uint64_t) n;
  /* 0 is the peer's FIN: CONN_IO_EOF. */
  return n >= 0 ? n : plain_failure (link, "receive from");
}

/* A plain socket takes what it can and never holds anything back, so
 * transient makes no difference. */
static ssize_t
plain_send (struct conn_link *link, const void *buf, size_t len,
            bool transient, bool more)
{
  ssize_t n;

  do
    n = send (link->fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
  while (n == -1 && errno == EINTR);
  if (n == 0)
    return CONN_IO_AGAIN;       /* not for a stream socket, but not a loop */
  if (n > 0)
    link->wire_sent += (uint64_t) n;
  return n > 0 ? n : plain_failure (link, "send to");
}

static int
plain_push_held (struct conn_link *link)
{
  return 1;                     /* never holds anything */
}

/* A plain socket takes pieces of any length, as much as it has room for:
 * a message's body goes in one send, not 16 KiB at a time. */
static size_t
plain_piece_max (struct conn_link *link)
{
  return SIZE_MAX;
}

static int
plain_bye (struct conn_link *link)
{
  return 1;
}

/* Without TLS, a TLS client's first record is what arrives; say that
 * rather than "bad magic".  The ERROR frame reaches a TLS client as a
 * record it cannot parse, which it reports as an answer without TLS. */
static const char *
plain_explain_bad_start (struct conn_link *link, const uint8_t *bytes,
                         size_t len)
{
  if (!link->is_server || len < 2 || bytes[0] != TLS_CONTENT_HANDSHAKE ||
      bytes[1] != 0x03)
    return NULL;
  snprintf (link->error, sizeof link->error,
            "the peer %s speaks TLS (a sender run with --tls-psk or "
            "--tls-certs?) and this receiver runs with --insecure: the peers "
            "use different TLS modes", link->peer_name);
  return "this receiver runs with --insecure (no TLS)";
}

const struct conn_ops conn_plain_ops = {
  .init = plain_init,
  .fini = plain_fini,
  .handshake = plain_handshake,
  .recv = plain_recv,
  .send = plain_send,
  .push_held = plain_push_held,
  .piece_max = plain_piece_max,
  .bye = plain_bye,
  .explain_bad_start = plain_explain_bad_start,
};
