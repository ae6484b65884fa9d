/* stm-recv: one sender connection and the protocol state machine that
 * runs over it (docs/protocol.md, "A session").
 *
 * A session starts with the TLS handshake, then accepts only HELLO (and
 * KEEPALIVE).  HELLO makes it the receiver's active session, unless another
 * is active (ERROR busy) or the output holds this migration at another size
 * (ERROR mismatch).  The active session writes DATA and ZERO into the output
 * as they arrive, answers SYNC with DURABLE after fdatasync and COMMIT with
 * COMMITTED.  Messages are handled synchronously, inside the transport's
 * callback, so while a write is in progress nothing more is read and TCP
 * back-pressure paces the sender; memory stays bounded by the transport's
 * input buffer.
 *
 * A session that fails (protocol error, I/O error) sends ERROR and closes;
 * the output keeps what it has and the receiver goes on listening.
 */
#ifndef STM_RECEIVER_SESSION_H
#define STM_RECEIVER_SESSION_H

struct receiver;
struct session;

/* Room for "[IPv6 address]:port". */
#define SESSION_PEER_MAX 80

/* Start a session on an accepted socket (ownership of fd passes to the
 * session, even on failure).  peer names the other end in messages.
 * NULL after the failure was reported. */
struct session *session_new (struct receiver *rx, int fd, const char *peer);

/* Close at once (the receiver is shutting down); reason is logged. */
void session_close (struct session *s, const char *reason);

const char *session_peer (const struct session *s);

#endif /* STM_RECEIVER_SESSION_H */
