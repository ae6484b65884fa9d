/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: a message connection over a non-blocking socket, optionally under
 * TLS 1.3 (GnuTLS), driven by a libev loop.
 *
 * Both stm-send and stm-recv use this.  It owns the fd, the GnuTLS session,
 * a bounded input buffer that the wire decoder reads frames from, and an
 * output queue.  Messages arrive through a callback already decoded and
 * checked (struct wire_msg); the pointers inside a message are valid only
 * during the callback.
 *
 * TLS: version 1.3 only, with the credentials of tls_creds.h: ECDHE-PSK
 * with a pre-shared key, or X.509 certificates that both peers verify
 * against the CA.  Insecure mode speaks the wire protocol in the clear.
 *
 * Flow control: stm_conn_send queues bytes; stm_conn_output_pending says how
 * many are queued and on_drain fires when the queue falls below the low
 * water mark, so a producer can stop at a high water mark and resume.
 */
#ifndef STM_PROTO_STM_CONN_H
#define STM_PROTO_STM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "tls_creds.h"
#include "wire.h"

struct stm_conn;

struct stm_conn_callbacks {
  /* Handshake finished; the connection can send and receive messages. */
  void (*on_ready) (struct stm_conn *conn, void *opaque);
  /* One decoded, validated message. */
  void (*on_message) (struct stm_conn *conn, const struct wire_msg *msg, void *opaque);
  /* The output queue fell below the low water mark. (may be NULL) */
  void (*on_drain) (struct stm_conn *conn, void *opaque);
  /* Every message received so far has been handed to on_message and the
   * connection stops reading for now (nothing more to read, or its read
   * budget is spent): work deferred to the end of a burst of messages
   * may be done now.  (may be NULL) */
  void (*on_idle) (struct stm_conn *conn, void *opaque);
  /* The connection failed or the peer closed it: reason says which, in
   * words ("TLS handshake failed: ...", "peer closed the connection",
   * "malformed message: ...").  After this callback returns the connection
   * has been freed: do not touch it again.  Not called after stm_conn_close. */
  void (*on_close) (struct stm_conn *conn, const char *reason, void *opaque);
};

/* Take ownership of a connected socket (made non-blocking here) and start
 * the TLS handshake (or be ready at once when insecure, calling on_ready
 * from the loop, never from inside this function).  peer_name is used in
 * messages ("127.0.0.1:10809").  Returns NULL with an error logged (the fd
 * is closed then too). */
struct stm_conn *stm_conn_new (struct ev_loop *loop, int fd, struct tls_creds *creds,
                               bool is_server, const char *peer_name,
                               const struct stm_conn_callbacks *cb, void *opaque);

/* Bound DATA/ZERO messages by this image size from now on (0 = none
 * accepted): a one-disk migration. */
void stm_conn_set_image_size (struct stm_conn *conn, uint64_t image_size);

/* Bound DATA, ZERO and EXPORT messages by this disk table (copied) from now
 * on: a migration of several disks (wire.h, struct wire_disks). */
void stm_conn_set_disks (struct stm_conn *conn, const struct wire_disks *disks);

/* Queue a message made of a header part (an encoded frame, or a DATA frame
 * header) and an optional body (DATA bytes).  Both are copied into the
 * output queue before returning (TLS records are built from the queue).
 * Returns -1 if the connection is already failing. */
int stm_conn_send (struct stm_conn *conn, const void *head, size_t headlen,
                   const void *body, size_t bodylen);

size_t stm_conn_output_pending (const struct stm_conn *conn);
void stm_conn_set_water_marks (struct stm_conn *conn, size_t low, size_t high);
/* Is the output queue at or above the high water mark?  (Defaults: low
 * 4 MiB, high 32 MiB.)  A producer stops queueing while this is true and
 * resumes from on_drain. */
bool stm_conn_output_full (const struct stm_conn *conn);

/* Stop reading (for back-pressure) or start again. */
void stm_conn_pause_reading (struct stm_conn *conn, bool paused);

/* How long a graceful close (stm_conn_close_after_flush, or the ERROR sent
 * after a peer's protocol error) may take before the connection is
 * dropped: 30 seconds unless set.  Applies to closes that start later. */
void stm_conn_set_linger_timeout (struct stm_conn *conn, double seconds);

/* Count this connection in *live until its memory is freed, which for a
 * graceful close is after its linger, not when the user lets go.  *live
 * must outlive the connection. */
void stm_conn_count_in (struct stm_conn *conn, unsigned *live);

/* Send what is queued, then close gracefully (TLS bye) in the background and
 * free; no more callbacks.  Safe to call from inside any callback: the
 * memory is released after the callback returns. */
void stm_conn_close_after_flush (struct stm_conn *conn);

/* Close at once and free; no more callbacks.  Safe inside callbacks. */
void stm_conn_close (struct stm_conn *conn);

const char *stm_conn_peer_name (const struct stm_conn *conn);

/* What protects the connection, for logs: after on_ready, e.g. "TLS 1.3,
 * ECDHE-PSK, group SECP256R1, AES-128-GCM" or "insecure (no TLS)". */
const char *stm_conn_security (const struct stm_conn *conn);

/* Bytes this connection wrote to its socket so far: every byte the peer
 * was sent, frame headers and payload, and under TLS the records (the
 * handshake, record headers and tags, alerts) rather than the plaintext.
 * What a graceful close still writes after this is read is not in it. */
uint64_t stm_conn_wire_bytes (const struct stm_conn *conn);
/* The same for the bytes read from the socket. */
uint64_t stm_conn_wire_bytes_received (const struct stm_conn *conn);

#endif /* STM_PROTO_STM_CONN_H */
