/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the operations a connection's transport provides to the connection
 * engine (stm_conn.c), one table per kind of transport.
 *
 * The engine owns the socket, the buffers, the framing and the callbacks;
 * everything that differs between a plain socket and TLS is behind the
 * table chosen when the connection is made: setting up and tearing down
 * the transport's own state, the handshake, reading, writing, and saying
 * goodbye.  This is nbdkit's idea (conn->recv becomes crypto_recv once TLS
 * is negotiated), except that here the choice is made once, at creation,
 * and the operations never block.
 *
 * Operations report with the CONN_IO_* codes below and write a message,
 * complete and naming the peer, into link->error whenever they fail, so
 * the engine reports it without knowing which transport spoke.
 */
#ifndef STM_PROTO_CONN_OPS_H
#define STM_PROTO_CONN_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tls_creds.h"

/* Plaintext bytes in one TLS record, and so the size of the pieces the
 * engine sends straight from a caller's buffer. */
#define CONN_PIECE_MAX 16384

/* The first byte of a TLS record carrying a handshake message, which is
 * what a TLS client sends first. */
#define TLS_CONTENT_HANDSHAKE 0x16

enum {
  /* The peer ended the stream cleanly (FIN, or TLS close_notify). */
  CONN_IO_EOF = 0,
  /* Nothing can be done until the socket is ready in the direction
   * link->wants_write gives. */
  CONN_IO_AGAIN = -1,
  /* Interrupted, or a warning from the peer: call again, a bounded number
   * of times (link->error says what happened, for when the caller stops). */
  CONN_IO_RETRY = -2,
  /* The peer closed the socket without ending the TLS stream first. */
  CONN_IO_TRUNCATED = -3,
  /* Failed for good: link->error says why. */
  CONN_IO_ERROR = -4,
  /* send only: the bytes were taken, but they wait inside the transport
   * until push_held gets them out. */
  CONN_IO_HELD = -5,
};

/* One connection's transport, as the operations see it. */
struct conn_link {
  int fd;
  bool is_server;
  const char *peer_name;               /* for messages */
  const struct tls_creds *creds;
  void *state;                         /* the operations' own */
  /* Set by an operation that returns CONN_IO_AGAIN: it waits for the
   * socket to become writable (true) or readable. */
  bool wants_write;
  /* Every byte written to and read from the socket, whatever it carried
   * (frames, TLS records and alerts, the handshake): each transport counts
   * where it calls send() and recv(), for stm_conn_wire_bytes.  What is
   * only peeked at is not counted. */
  uint64_t wire_sent, wire_received;
  /* What protects the connection, for stm_conn_security. */
  char description[160];
  char error[1024];                    /* see CONN_IO_ERROR */
};

struct conn_ops {
  /* Set up link->state for a new connection.  Returns 0, or -1 with the
   * error logged. */
  int (*init) (struct conn_link *link);
  /* Free link->state; the engine closes the fd. */
  void (*fini) (struct conn_link *link);
  /* Advance the handshake.  Returns 1 when it is done (and
   * link->description is written), CONN_IO_AGAIN or CONN_IO_ERROR. */
  int (*handshake) (struct conn_link *link);
  /* Read up to len bytes.  Returns how many (> 0) or a CONN_IO_* code
   * (CONN_IO_EOF, AGAIN, RETRY, TRUNCATED, ERROR). */
  ssize_t (*recv) (struct conn_link *link, void *buf, size_t len);
  /* Write up to len bytes.  Returns how many (> 0), CONN_IO_AGAIN or
   * CONN_IO_ERROR; with transient (buf belongs to the caller and will not
   * be offered again) also CONN_IO_HELD.  Without transient, a write that
   * returned CONN_IO_AGAIN is repeated with the same buf, and with at least
   * as many bytes available.  more: bytes beyond len follow at once (the
   * rest of a message, or of the output queue); the transport tells the
   * kernel so (MSG_MORE), which fills the socket's packets instead of
   * sending every piece in a segment of its own.  The engine sends its
   * last piece without more, so that nothing is held back. */
  ssize_t (*send) (struct conn_link *link, const void *buf, size_t len,
                   bool transient, bool more);
  /* After CONN_IO_HELD: returns 1 once the held bytes are out,
   * CONN_IO_AGAIN, or CONN_IO_ERROR. */
  int (*push_held) (struct conn_link *link);
  /* The largest piece the engine offers send at once from a caller's
   * buffer: what one TLS record takes whole (at most CONN_PIECE_MAX), or
   * SIZE_MAX for a transport that takes any length, as much as the socket
   * has room for.  A message's header is copied into a first piece of at
   * most CONN_PIECE_MAX bytes with the start of its body. */
  size_t (*piece_max) (struct conn_link *link);
  /* Say goodbye before the engine half-closes the socket (TLS
   * close_notify).  Returns 1 when done (or failed: it is best effort),
   * or CONN_IO_AGAIN. */
  int (*bye) (struct conn_link *link);
  /* May be NULL.  The wire decoder refused the first bytes in the input
   * buffer: if they show the peer uses another transport, return the text
   * for an ERROR frame to the peer, with the message for our user in
   * link->error; else NULL. */
  const char *(*explain_bad_start) (struct conn_link *link,
                                    const uint8_t *bytes, size_t len);
};

extern const struct conn_ops conn_plain_ops;
extern const struct conn_ops conn_tls_ops;

#endif /* STM_PROTO_CONN_OPS_H */
