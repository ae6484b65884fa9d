/* stm-recv: one sender connection and the protocol state machine that
 * runs over it (docs/protocol.md, "A session").
 *
 * A session starts with the TLS handshake, then accepts only HELLO (and
 * KEEPALIVE).  HELLO makes it the receiver's active session, unless another
 * is active (ERROR busy), the output holds this migration at another size
 * or holds another migration (ERROR mismatch, unless --force).  The active
 * session writes DATA and ZERO into the output as they arrive, answers SYNC
 * with DURABLE after fdatasync and COMMIT with COMMITTED, in both cases
 * after storing the new durable position in the state file.  Messages are
 * handled synchronously, inside the transport's callback, so while a write
 * is in progress nothing more is read and TCP back-pressure paces the
 * sender.
 *
 * What a peer can cost is bounded: nothing is allocated for a frame before
 * the wire decoder has checked its header (and a frame is at most
 * WIRE_MAX_FRAME, about 8 MiB, in the transport's input buffer); replies
 * queue up to a high water mark, past which the session stops reading; a
 * connection must say HELLO within 15 seconds of being accepted, and the
 * active sender must send something (KEEPALIVE at least) every 60 seconds.
 *
 * A session that fails (protocol error, I/O error, timeout) sends ERROR and
 * closes; that ends this connection only: the output keeps what it has and
 * the receiver goes on listening.
 */
#ifndef STM_RECEIVER_SESSION_H
#define STM_RECEIVER_SESSION_H

#include <stdbool.h>
#include <stdint.h>

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

/* Is this session past HELLO (the receiver's active sender)?  One that is
 * not may be closed to make room for new connections. */
bool session_past_hello (const struct session *s);

/* When the connection was accepted (time_monotonic_ns). */
uint64_t session_started_ns (const struct session *s);

#endif /* STM_RECEIVER_SESSION_H */
