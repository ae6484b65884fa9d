/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: one sender connection and the protocol state machine that
 * runs over it (docs/protocol.md, "A session").
 *
 * A session starts with the TLS handshake, then accepts only HELLO (and
 * KEEPALIVE).  HELLO makes it the receiver's active session, unless another
 * is active (ERROR busy), the output holds this migration at another size
 * or holds another migration (ERROR mismatch, unless --force).  The active
 * session writes DATA and ZERO into the output of the disk the header names
 * as they arrive, answers SYNC with DURABLE after fdatasync of every output, COMMIT with COMMITTED (prepared) and
 * OUTCOME with RECORDED (final or superseded), each after storing the new
 * record in the state file (COMMITTED may wait, with --export, for the
 * receiver's NBD server to be ready; meanwhile only KEEPALIVE is
 * acceptable), and HASH_REQ with HASHES of what the output holds
 * (hash_answer.h); a compare-only session answers only those and changes
 * nothing.  Messages are
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
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "wire.h"

struct events;
struct image_writer;
struct migration_record;
struct receiver_options;
struct session;
struct state_file;
struct tls_creds;

/* Room for "[IPv6 address]:port". */
#define SESSION_PEER_MAX 80

/* How a session ended, for the receiver's policy (session_hooks.ended). */
enum session_end_cause {
  SESSION_CLOSED,        /* the connection closed, or the receiver closed it */
  SESSION_FAILED,        /* the session failed and sent ERROR */
  SESSION_ABORTED,       /* the active sender sent ABORT: it gave up */
  SESSION_FINAL,         /* the migration became final; nothing more to do */
};

/* When a session answers a COMMIT (session_hooks.recorded). */
enum session_reply {
  SESSION_REPLY_NOW,
  SESSION_REPLY_LATER,
};

/* What a session tells the receiver that owns it.  Sessions never decide
 * what the receiver does next (whether it exits, serves the image, keeps
 * listening): they report, and the receiver's hooks decide, in one place
 * (receiver.c). */
struct session_hooks {
  /* HELLO was accepted and answered: s is the active sender from now on
   * (session_send_export may follow at once). */
  void (*activated) (void *opaque, struct session *s);
  /* s durably recorded the destination in state: INCOMPLETE (a new
   * migration at HELLO, before the output is emptied; or the first
   * change to a prepared or superseded image, before it is made), FINAL
   * or SUPERSEDED (OUTCOME); uri is NULL and the hook returns
   * SESSION_REPLY_NOW.  PREPARED (COMMIT): the hook either fills uri with
   * the URI of an NBD server for the image ("" for none) and returns
   * SESSION_REPLY_NOW, and COMMITTED goes out at once, or returns
   * SESSION_REPLY_LATER, and the receiver calls session_send_committed
   * when it knows the URI (unless s ends first). */
  enum session_reply (*recorded) (void *opaque, struct session *s,
                                  enum wire_dest_state state,
                                  char *uri, size_t uri_len);
  /* s ended (the connection is closed or being flushed) and is freed
   * right after this returns. */
  void (*ended) (void *opaque, struct session *s, bool was_active,
                 enum session_end_cause cause);
};

/* What every session of one receiver shares.  The receiver owns all of
 * it; sessions change the output, the state file and the record (always
 * storing the record before acknowledging anything) and read the rest. */
struct session_env {
  struct ev_loop *loop;
  const struct receiver_options *opts;
  const struct events *events;
  struct tls_creds *creds;
  /* The outputs, in the order of opts->outputs (outputs.h); a HELLO's
   * disks are mapped onto them by name. */
  struct image_writer *const *images;
  unsigned nimages;
  const char *outputs_text;              /* the output(s) in words */
  struct state_file *state;
  struct migration_record *record;       /* the migration the output holds */
  struct session *const *active;         /* the active sender, or NULL */
  unsigned *live_connections;            /* see stm_conn_count_in */
  const struct session_hooks *hooks;
  void *opaque;                          /* for the hooks */
};

/* Start a session on an accepted socket (ownership of fd passes to the
 * session, even on failure).  peer names the other end in messages.
 * NULL after the failure was reported. */
struct session *session_new (const struct session_env *env, int fd, const char *peer);

/* Close at once (the receiver is shutting down); reason is logged. */
void session_close (struct session *s, const char *reason);

/* Answer the COMMIT that s's recorded hook put off (SESSION_REPLY_LATER)
 * with COMMITTED carrying uri ("" for none).  Nothing if none waits. */
void session_send_committed (struct session *s, const char *uri);

/* Tell s's sender with EXPORT where the disk of this output (its index in
 * opts->outputs) is served.  Nothing if s's HELLO did not offer
 * WIRE_FEATURE_DISKS: a sender that names no disks knows no EXPORT, and
 * learns its one URI from COMMITTED. */
void session_send_export (struct session *s, unsigned output, const char *uri);

/* The output (index in opts->outputs) of the HELLO's disk 0, whose URI
 * COMMITTED carries. */
unsigned session_first_disk_output (const struct session *s);

const char *session_peer (const struct session *s);

/* Is this session past HELLO (the receiver's active sender)?  One that is
 * not may be closed to make room for new connections. */
bool session_past_hello (const struct session *s);

/* Is s a compare-only session (WIRE_FEATURE_COMPARE_ONLY)?  It is the
 * active session while it runs, but it records and changes nothing, and
 * its end says nothing about the migration. */
bool session_compare_only (const struct session *s);

/* When the connection was accepted (time_monotonic_ns). */
uint64_t session_started_ns (const struct session *s);

#endif /* STM_RECEIVER_SESSION_H */
