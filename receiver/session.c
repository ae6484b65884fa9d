/* stm-recv: the per-connection protocol state machine.  See session.h and
 * docs/protocol.md ("A session").
 *
 * Every way a session can end goes through session_end, which reports the
 * disconnection once, gives up the active slot, tells the listener and
 * frees the session.  After calling it (directly or through fail), code
 * must not touch the session again; the message handlers therefore return
 * right after.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "export.h"
#include "image_writer.h"
#include "listener.h"
#include "log.h"
#include "receiver.h"
#include "session.h"
#include "state_file.h"
#include "tls_transport.h"
#include "wire.h"

/* A connection must complete its TLS handshake (which the transport
 * bounds to 10 seconds) and send HELLO within this time from being
 * accepted, so idle connections cannot hold one of the listener's slots
 * for long.  A real sender sends HELLO as soon as the handshake is done. */
#define HELLO_TIMEOUT_S 15.0
/* The active sender must send something at least this often: it sends
 * KEEPALIVE when it has nothing else to say, so silence this long means
 * a peer that is stuck or hostile, and it would otherwise keep the
 * receiver busy for every other sender.  Longer than what a sender may
 * spend blocked in FREEZE with the filter's default freeze timeout (30 s):
 * the flush before the gate closes and the drain and flush after it are
 * each bounded by it, and stm-send waits 10 s more for the reply. */
#define IDLE_TIMEOUT_S 150.0
/* The sender is expected to read our (small) replies.  If it lets this
 * much pile up, stop reading from it until the queue drains, so a peer
 * that only writes cannot grow our memory without bound. */
#define OUTPUT_HIGH_WATER (1024 * 1024)
#define OUTPUT_LOW_WATER (64 * 1024)
/* How long the last reply to a connection that never said HELLO (an
 * ERROR, busy) may take to deliver: a peer that reads gets it within
 * milliseconds, and one that does not must not hold a socket for long.
 * The active sender keeps the transport's default (30 s) for COMMITTED. */
#define PRE_HELLO_LINGER_S 2.0
#define ACTIVE_LINGER_S 30.0

enum session_state {
  SESSION_HANDSHAKE,     /* TLS handshake in progress */
  SESSION_AWAIT_HELLO,   /* only HELLO and KEEPALIVE are acceptable */
  SESSION_ACTIVE,        /* HELLO accepted: this is the receiver's sender */
};

/* How session_end treats the transport connection. */
enum session_close_how {
  CLOSE_NOW,             /* drop it */
  CLOSE_AFTER_FLUSH,     /* deliver queued replies (ERROR, RECORDED) first */
  CLOSED_BY_TRANSPORT,   /* on_close: the connection is already gone */
};

struct session {
  struct receiver *rx;
  struct stm_conn *conn;
  char peer[SESSION_PEER_MAX];
  enum session_state state;
  /* Before HELLO: the HELLO deadline.  Once active: the idle check, which
   * re-arms itself until last_message_ns is IDLE_TIMEOUT_S old. */
  ev_timer timer;
  uint64_t started_ns;           /* when the connection was accepted */
  uint64_t last_message_ns;      /* when the last message was handled */
  bool reading_paused;           /* by the output high water mark */

  bool in_pass;
  uint32_t pass;
  uint64_t pass_data_bytes;      /* DATA bytes in the current pass */
  uint64_t pass_zero_bytes;      /* bytes zeroed in the current pass */
  uint64_t data_bytes;           /* DATA bytes on this connection */
  uint64_t zero_bytes;           /* bytes zeroed on this connection */
};

const char *
session_peer (const struct session *s)
{
  return s->peer;
}

bool
session_past_hello (const struct session *s)
{
  return s->state == SESSION_ACTIVE;
}

uint64_t
session_started_ns (const struct session *s)
{
  return s->started_ns;
}

static const char *
output_path (const struct session *s)
{
  return image_writer_path (s->rx->image);
}

static void
session_end (struct session *s, const char *reason, enum session_close_how how)
{
  struct receiver *rx = s->rx;
  bool was_active = rx->active == s;

  ev_timer_stop (rx->loop, &s->timer);
  events_disconnected (&rx->events, s->peer, reason);
  if (was_active) {
    rx->active = NULL;
    if (!rx->finishing && rx->record.state == WIRE_STATE_PREPARED)
      log_info ("%s is prepared (complete and durable up to sync %" PRIu64 "), "
                "but the sender left before reporting whether the source "
                "flipped to it: the source's STATUS says which copy is "
                "authoritative; waiting for the sender to come back and "
                "report it", output_path (s), rx->record.durable_seq);
    else if (!rx->finishing && rx->record.state != WIRE_STATE_FINAL)
      log_info ("%s keeps the data received so far (durable up to sync %" PRIu64
                "); waiting for a sender to resume", output_path (s),
                rx->record.durable_seq);
  }
  listener_forget (rx->listener, s);

  switch (how) {
  case CLOSE_NOW:
    stm_conn_close (s->conn);
    break;
  case CLOSE_AFTER_FLUSH:
    stm_conn_close_after_flush (s->conn);
    break;
  case CLOSED_BY_TRANSPORT:
    break;
  }
  free (s);
}

void
session_close (struct session *s, const char *reason)
{
  session_end (s, reason, CLOSE_NOW);
}

/* Queue an encoded message.  A failure means the connection is already
 * failing, and on_close will follow to end the session: nothing to do. */
static int
send_frame (struct session *s, const uint8_t *frame, size_t len)
{
  if (stm_conn_send (s->conn, frame, len, NULL, 0) == -1)
    return -1;
  if (!s->reading_paused &&
      stm_conn_output_pending (s->conn) >= OUTPUT_HIGH_WATER) {
    s->reading_paused = true;
    stm_conn_pause_reading (s->conn, true);
  }
  return 0;
}

/* Report an error (stderr and JSON), tell the sender with ERROR code, and
 * close this session once the ERROR is flushed.  The session is freed. */
static void fail (struct session *s, uint32_t code, const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));

static void
fail (struct session *s, uint32_t code, const char *fmt, ...)
{
  char message[WIRE_MAX_TEXT + 1];
  uint8_t frame[WIRE_ENCODE_TEXT_MAX];
  char reason[64];
  va_list args;

  va_start (args, fmt);
  vsnprintf (message, sizeof message, fmt, args);
  va_end (args);

  events_error (&s->rx->events, s->peer, code, "%s", message);
  (void) send_frame (s, frame, wire_encode_error (frame, code, message));
  /* The message was just reported; the disconnection only refers to it. */
  snprintf (reason, sizeof reason, "closed by the receiver after an error (%s)",
            wire_error_code_name (code));
  session_end (s, reason, CLOSE_AFTER_FLUSH);
}

/* Errors from the output: out of space (the operator can make room and
 * let the sender resume) or any other I/O error. */
static void
fail_io (struct session *s, int err, const char *what,
         uint64_t offset, uint64_t length)
{
  bool nospace = err == ENOSPC || err == EDQUOT || err == EFBIG;

  fail (s, nospace ? WIRE_ERR_NOSPACE : WIRE_ERR_IO,
        "%s: %s %s at offset %" PRIu64 " (%" PRIu64 " bytes): %s",
        nospace ? "out of space on the destination" : "I/O error on the destination",
        what, output_path (s), offset, length, strerror (err));
}

/* fdatasync failed: nothing since the last DURABLE is known to be on
 * disk, which the sender learns from the ERROR (it confirms nothing). */
static void
fail_sync (struct session *s, int err)
{
  bool nospace = err == ENOSPC || err == EDQUOT || err == EFBIG;

  fail (s, nospace ? WIRE_ERR_NOSPACE : WIRE_ERR_IO,
        "%s: fdatasync of %s failed: %s; data since sync %" PRIu64
        " is not known to be durable",
        nospace ? "out of space on the destination" : "I/O error on the destination",
        output_path (s), strerror (err), s->rx->record.durable_seq);
}

/* Make next the receiver's record, storing it in the state file first so
 * that what the sender is told next never runs ahead of what a restarted
 * receiver would know.  what says why it is stored, for the message.
 * -1 after failing the session (the record is then unchanged). */
static int
store_record (struct session *s, const struct migration_record *next,
              const char *what)
{
  struct receiver *rx = s->rx;

  const char *step;
  if (state_file_store (rx->state, next, &step) == -1) {
    int err = errno;
    bool nospace = err == ENOSPC || err == EDQUOT || err == EFBIG;

    /* Memory keeps the old record even when only the directory sync
     * failed and the new file is in place: the next session then stores
     * (and, for a new migration or a committed image, does the barrier
     * that goes with it) again before it answers or writes.  A restart in
     * between may find the new record, which claims no more than the
     * output holds either. */
    fail (s, nospace ? WIRE_ERR_NOSPACE : WIRE_ERR_IO,
          "%s: %s the state file %s failed %s: %s",
          nospace ? "out of space on the destination" : "I/O error on the destination",
          step, state_file_path (rx->state), what, strerror (err));
    return -1;
  }
  rx->record = *next;
  return 0;
}

/* The migration the output holds, in words, for messages. */
static void
describe_record (const struct migration_record *r, char *buf, size_t len)
{
  char id[MIGRATION_ID_TEXT_LEN];

  migration_id_format (r->id, id);
  snprintf (buf, len, "migration %s, %s, durable up to sync %" PRIu64,
            id, wire_dest_state_name (r->state), r->durable_seq);
}

static bool
block_size_ok (uint32_t b)
{
  return b >= WIRE_MIN_BLOCK && b <= WIRE_MAX_BLOCK && (b & (b - 1)) == 0;
}

static void
handle_hello (struct session *s, const struct wire_hello *hello)
{
  struct receiver *rx = s->rx;
  enum migration_decision decision;
  struct wire_hello_reply reply;
  uint8_t frame[WIRE_ENCODE_MAX];
  char id[MIGRATION_ID_TEXT_LEN];

  migration_id_format (hello->migration_id, id);

  if (rx->active != NULL) {
    fail (s, WIRE_ERR_BUSY,
          "busy: %s is receiving a migration from %s; refusing migration %s",
          output_path (s), session_peer (rx->active), id);
    return;
  }
  /* The decoder checks these too; checking again here keeps the output
   * safe whatever the transport lets through. */
  if ((hello->features & ~WIRE_FEATURES_KNOWN) != 0) {
    fail (s, WIRE_ERR_PROTOCOL,
          "HELLO asks for unknown features 0x%" PRIx32, hello->features);
    return;
  }
  if (!block_size_ok (hello->block_size) || hello->image_size > WIRE_MAX_IMAGE_SIZE) {
    fail (s, WIRE_ERR_PROTOCOL,
          "HELLO has an invalid block size (%" PRIu32 ") or image size (%" PRIu64 ")",
          hello->block_size, hello->image_size);
    return;
  }

  decision = migration_record_decide (&rx->record, hello);
  if (decision == MIGRATION_MISMATCH || decision == MIGRATION_OTHER) {
    char held[MIGRATION_ID_TEXT_LEN + 64];

    describe_record (&rx->record, held, sizeof held);
    if (rx->opts->force) {
      log_warning ("--force: migration %s from %s overwrites %s, which holds %s",
                   id, s->peer, output_path (s), held);
      decision = MIGRATION_NEW;
    }
    else if (decision == MIGRATION_MISMATCH) {
      fail (s, WIRE_ERR_MISMATCH,
            "mismatch: %s holds %s with an image of %" PRIu64
            " bytes, but the sender announces %" PRIu64 " bytes; restart "
            "stm-recv with --force to overwrite it",
            output_path (s), held, rx->record.image_size, hello->image_size);
      return;
    }
    else {
      fail (s, WIRE_ERR_MISMATCH,
            "mismatch: %s holds another migration (%s); refusing migration %s: "
            "restart stm-recv with --force to overwrite it, or give another --output",
            output_path (s), held, id);
      return;
    }
  }

  /* A new migration replaces whatever was held: record it (with nothing
   * durable yet) before touching the output, so that neither a failure
   * below nor a crash can leave a record that promises data the output
   * no longer has. */
  if (decision == MIGRATION_NEW) {
    struct migration_record next;

    migration_record_init (&next);
    migration_record_begin (&next, hello, MIGRATION_NEW);
    if (store_record (s, &next, "to record the new migration before "
                      "answering HELLO (the output is unchanged)") == -1)
      return;
  }

  if (image_writer_prepare (rx->image, hello->image_size,
                            decision == MIGRATION_NEW) == -1) {
    int err = errno;
    /* What the failure leaves behind, for the operator. */
    const char *left = decision == MIGRATION_NEW
      ? "; the state file records the new migration with nothing durable, "
        "and the output may already have been emptied"
      : "; the output's data and its state file are unchanged";
    if (image_writer_is_block_device (rx->image) && err == ENOSPC)
      fail (s, WIRE_ERR_NOSPACE,
            "the block device %s holds %" PRIu64 " bytes, "
            "smaller than the image (%" PRIu64 " bytes)%s",
            output_path (s), image_writer_size (rx->image), hello->image_size, left);
    else if (err == ENOSPC || err == EDQUOT || err == EFBIG)
      fail (s, WIRE_ERR_NOSPACE,
            "out of space on the destination: cannot set the size of %s to %"
            PRIu64 " bytes: %s%s", output_path (s), hello->image_size,
            strerror (err), left);
    else
      fail (s, WIRE_ERR_IO,
            "I/O error on the destination: cannot set the size of %s to %"
            PRIu64 " bytes: %s%s", output_path (s), hello->image_size,
            strerror (err), left);
    return;
  }

  if (decision == MIGRATION_RESUME) {
    struct migration_record next = rx->record;

    /* Only the block size can differ; recording it keeps the file exactly
     * what this receiver holds in memory. */
    migration_record_begin (&next, hello, MIGRATION_RESUME);
    if (next.block_size != rx->record.block_size &&
        store_record (s, &next, "to record the resumed migration's block size") == -1)
      return;
    rx->record = next;
  }
  stm_conn_set_image_size (s->conn, hello->image_size);
  stm_conn_set_linger_timeout (s->conn, ACTIVE_LINGER_S);
  rx->active = s;
  s->state = SESSION_ACTIVE;
  /* From now on the timer watches for silence. */
  ev_timer_stop (rx->loop, &s->timer);
  ev_timer_set (&s->timer, IDLE_TIMEOUT_S, 0.);
  ev_timer_start (rx->loop, &s->timer);

  memset (&reply, 0, sizeof reply);
  reply.mode = decision == MIGRATION_RESUME
    ? migration_record_hello_mode (&rx->record) : WIRE_MODE_NEW;
  reply.features = 0;
  reply.durable_seq = decision == MIGRATION_RESUME ? rx->record.durable_seq : 0;
  events_hello (&rx->events, s->peer, output_path (s), id,
                reply.mode == WIRE_MODE_NEW ? "new"
                : reply.mode == WIRE_MODE_RESUME ? "resume"
                : reply.mode == WIRE_MODE_PREPARED ? "prepared" : "final",
                hello->image_size, hello->block_size, reply.durable_seq);
  (void) send_frame (s, frame, wire_encode_hello_reply (frame, &reply));
}

/* The image is about to change, and from then on (even if the write fails
 * halfway) it is incomplete.  After a commit, that must be in the state
 * file before the first byte changes.  -1 after failing the session. */
static int
mark_written (struct session *s)
{
  struct receiver *rx = s->rx;
  struct migration_record next;

  if (rx->record.state == WIRE_STATE_INCOMPLETE)
    return 0;
  if (rx->record.state == WIRE_STATE_FINAL) {
    /* The source flipped to this image: it is the guest's disk now, and
     * no sender of this migration has anything left to write to it. */
    fail (s, WIRE_ERR_PROTOCOL,
          "refusing to change %s: migration is final (the source has flipped "
          "to this destination), so the image is the guest's disk now",
          output_path (s));
    return -1;
  }
  next = rx->record;
  migration_record_written (&next);
  return store_record (s, &next, "to record that the committed image is being "
                       "changed (nothing was written)");
}

/* DATA and ZERO both change the image, so both must first pass the same
 * two gates: the range lies inside the image (else the session fails with a
 * protocol error naming MESSAGE), and the state file records that the image
 * is being changed before the first byte is.  Returns false when the
 * session has already been failed.
 */
static bool
may_change_image (struct session *s, const char *message,
                  uint64_t offset, uint64_t length)
{
  struct receiver *rx = s->rx;

  if (!wire_range_ok (offset, length, rx->record.image_size)) {
    fail (s, WIRE_ERR_PROTOCOL,
          "%s at offset %" PRIu64 " (%" PRIu64 " bytes) lies outside the image "
          "(%" PRIu64 " bytes)", message, offset, length,
          rx->record.image_size);
    return false;
  }
  return mark_written (s) == 0;
}

static void
handle_data (struct session *s, uint64_t offset, uint32_t length,
             const uint8_t *bytes)
{
  struct receiver *rx = s->rx;

  if (!may_change_image (s, "DATA", offset, length))
    return;
  if (image_writer_write (rx->image, offset, bytes, length) == -1) {
    fail_io (s, errno, "writing", offset, length);
    return;
  }
  /* A slow write is not the sender's silence. */
  s->last_message_ns = time_monotonic_ns ();
  s->pass_data_bytes += length;
  s->data_bytes += length;
}

static void
handle_zero (struct session *s, uint64_t offset, uint64_t length)
{
  struct receiver *rx = s->rx;

  if (!may_change_image (s, "ZERO", offset, length))
    return;
  if (image_writer_zero (rx->image, offset, length) == -1) {
    fail_io (s, errno, "zeroing", offset, length);
    return;
  }
  s->last_message_ns = time_monotonic_ns ();
  s->pass_zero_bytes += length;
  s->zero_bytes += length;
}

static void
handle_pass_begin (struct session *s, uint32_t pass, uint64_t bytes)
{
  s->in_pass = true;
  s->pass = pass;
  s->pass_data_bytes = 0;
  s->pass_zero_bytes = 0;
  events_pass_begin (&s->rx->events, s->peer, pass, bytes);
}

static void
handle_pass_end (struct session *s, uint32_t pass)
{
  /* A PASS_END that does not match PASS_BEGIN changes nothing on disk,
   * so it is reported as it comes rather than failing the migration. */
  if (!s->in_pass || s->pass != pass)
    log_warning ("%s: PASS_END %" PRIu32 " does not close a pass in progress",
                 s->peer, pass);
  events_pass_end (&s->rx->events, s->peer, pass,
                   s->pass_data_bytes, s->pass_zero_bytes);
  s->in_pass = false;
  s->pass_data_bytes = 0;
  s->pass_zero_bytes = 0;
}

static void
handle_sync (struct session *s, uint64_t seq)
{
  uint8_t frame[WIRE_ENCODE_MAX];
  struct migration_record next;

  if (image_writer_sync (s->rx->image) == -1) {
    fail_sync (s, errno);
    return;
  }
  /* fdatasync may take long; that is our time, not the sender's silence. */
  s->last_message_ns = time_monotonic_ns ();
  next = s->rx->record;
  migration_record_durable (&next, seq);
  if (store_record (s, &next, "to record a durable sync (the data is on disk "
                    "but DURABLE was not sent)") == -1)
    return;
  (void) send_frame (s, frame, wire_encode_durable (frame, seq));
}

/* The export's nbdkit ended by itself: nothing is served any more. */
static void
on_export_exit (void *opaque, int status)
{
  struct receiver *rx = opaque;
  log_error ("the nbdkit exporting %s exited (status %d); stm-recv ends too",
             image_writer_path (rx->image),
             WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
  rx->finishing = true;
  rx->exit_status = 1;
  ev_break (rx->loop, EVBREAK_ALL);
}

/* COMMIT: the first phase of the two-phase commit.  The image is made
 * durable and recorded as prepared, never as final: only the sender knows
 * whether the source flips, and it says so with OUTCOME (handle_outcome).
 * Until then the session stays, and a --once run does not end. */
static void
handle_commit (struct session *s, uint64_t seq)
{
  struct receiver *rx = s->rx;
  uint8_t frame[WIRE_ENCODE_TEXT_MAX];
  struct migration_record next;
  const char *why;

  next = rx->record;
  if (migration_record_committed (&next, seq, &why) == -1) {
    fail (s, WIRE_ERR_PROTOCOL, "%s into %s", why, output_path (s));
    return;
  }
  if (image_writer_sync (rx->image) == -1) {
    fail_sync (s, errno);
    return;
  }
  s->last_message_ns = time_monotonic_ns ();
  if (store_record (s, &next, "to record the commit as prepared (the image is "
                    "on disk but COMMITTED was not sent)") == -1)
    return;
  events_commit (&rx->events, s->peer, output_path (s), seq);

  /* With --export, an NBD server for the prepared image, whose URI the
   * sender may flip forward to; if it cannot start (reported), the URI is
   * empty and a sender that wanted it fails its flip and thaws the source,
   * which stays authoritative. */
  char uri[WIRE_MAX_TEXT + 1] = "";
  if (rx->opts->export_port != 0) {
    if (rx->export == NULL)
      rx->export = export_start (rx->loop, rx->opts, output_path (s), uri, sizeof uri,
                                 on_export_exit, rx);
    else
      export_format_uri (rx->opts->export_host, rx->opts->export_port,
                         rx->opts->tls.mode != TLS_MODE_INSECURE, uri, sizeof uri);
  }
  (void) send_frame (s, frame, wire_encode_committed (frame, uri));
}

/* OUTCOME: the second phase.  The sender says what became of the source:
 * flipped (the destination is final and authoritative) or thawed (it is
 * superseded: the source kept its writes).  Recorded durably before it is
 * acknowledged with RECORDED, and only a final record ends a --once or
 * --export run successfully. */
static void
handle_outcome (struct session *s, uint64_t seq, uint32_t outcome)
{
  struct receiver *rx = s->rx;
  uint8_t frame[WIRE_ENCODE_MAX];
  struct migration_record next = rx->record;
  const char *why;
  bool flipped = outcome == WIRE_OUTCOME_FLIPPED;

  if (migration_record_outcome (&next, seq, outcome, &why) == -1) {
    fail (s, WIRE_ERR_PROTOCOL, "%s: %s is %s (durable up to sync %" PRIu64
          "), and the sender speaks of sync %" PRIu64 "; nothing was changed",
          why, output_path (s), wire_dest_state_name (rx->record.state),
          rx->record.durable_seq, seq);
    return;
  }
  if (next.state != rx->record.state &&
      store_record (s, &next, flipped
                    ? "to record the migration as final (the source has flipped)"
                    : "to record the commit as superseded (the source thawed)") == -1)
    return;
  events_outcome (&rx->events, s->peer, output_path (s),
                  flipped ? "flipped" : "thawed",
                  wire_dest_state_name (rx->record.state), seq);
  if (send_frame (s, frame, wire_encode_recorded (frame, seq, rx->record.state)) == -1)
    return;                     /* on_close follows */

  if (!flipped) {
    /* The source kept the guest: nobody may use this copy as the disk.
     * A sender may still resume into it, so the receiver listens on. */
    if (rx->export != NULL) {
      log_info ("stopping the export of %s: the source stays authoritative",
                output_path (s));
      export_stop (rx->export);
      rx->export = NULL;
    }
    return;
  }
  events_done (&rx->events, s->peer, output_path (s), s->data_bytes,
               s->zero_bytes, (time_monotonic_ns () - s->started_ns) / 1e9);
  if (rx->export != NULL) {
    /* The image is the guest's disk now: no later sender may write to
     * it.  The export's child watcher keeps the loop, and stm-recv,
     * running until nbdkit ends or a signal stops both. */
    session_end (s, "migration final and exported", CLOSE_AFTER_FLUSH);
    listener_stop (rx->listener);
    rx->finishing = true;
    rx->exit_status = 0;
    return;
  }
  if (rx->opts->once) {
    session_end (s, "migration final", CLOSE_AFTER_FLUSH);
    receiver_finish (rx, 0);
  }
}

/* ERROR or ABORT from the sender: report it and end this session. */
static void
handle_peer_error (struct session *s, bool is_abort, uint32_t code,
                   uint32_t text_len, const char *text)
{
  struct receiver *rx = s->rx;
  bool was_active = s->state == SESSION_ACTIVE;
  char reason[WIRE_MAX_TEXT + 64];

  if (is_abort) {
    events_error (&rx->events, s->peer, WIRE_ERR_ABORTED,
                  "the sender aborted the migration into %s (%s): %.*s",
                  output_path (s), wire_error_code_name (code),
                  (int) text_len, text);
    snprintf (reason, sizeof reason, "aborted by the sender: %.*s",
              (int) text_len, text);
  }
  else {
    events_error (&rx->events, s->peer, code,
                  "the sender reported an error (%s) migrating into %s: %.*s",
                  wire_error_code_name (code), output_path (s),
                  (int) text_len, text);
    snprintf (reason, sizeof reason, "error from the sender: %.*s",
              (int) text_len, text);
  }
  session_end (s, reason, CLOSE_NOW);

  /* A --once run has nothing more to wait for once its sender gave up on
   * purpose; after an error a restarted sender may still resume.  An ABORT
   * from a connection that never said HELLO is not that sender's. */
  if (is_abort && was_active && rx->opts->once)
    receiver_finish (rx, 1);
}

static void
unexpected (struct session *s, enum wire_type type)
{
  fail (s, WIRE_ERR_PROTOCOL, "unexpected %s from the sender %s",
        wire_type_name (type),
        s->state == SESSION_ACTIVE ? "during the migration" : "before HELLO");
}

static void
on_message (struct stm_conn *conn, const struct wire_msg *msg, void *opaque)
{
  struct session *s = opaque;

  s->last_message_ns = time_monotonic_ns ();
  switch (msg->type) {
  case WIRE_KEEPALIVE:
    return;
  case WIRE_ERROR:
  case WIRE_ABORT:
    handle_peer_error (s, msg->type == WIRE_ABORT, msg->u.error.code,
                       msg->u.error.text_len, msg->u.error.text);
    return;
  case WIRE_HELLO:
    if (s->state != SESSION_AWAIT_HELLO) {
      unexpected (s, msg->type);
      return;
    }
    handle_hello (s, &msg->u.hello);
    return;
  default:
    break;
  }

  if (s->state != SESSION_ACTIVE) {
    unexpected (s, msg->type);
    return;
  }
  switch (msg->type) {
  case WIRE_DATA:
    handle_data (s, msg->u.data.offset, msg->u.data.length, msg->u.data.bytes);
    return;
  case WIRE_ZERO:
    handle_zero (s, msg->u.zero.offset, msg->u.zero.length);
    return;
  case WIRE_PASS_BEGIN:
    handle_pass_begin (s, msg->u.pass_begin.pass, msg->u.pass_begin.bytes);
    return;
  case WIRE_PASS_END:
    handle_pass_end (s, msg->u.pass_end.pass);
    return;
  case WIRE_SYNC:
    handle_sync (s, msg->u.sync.seq);
    return;
  case WIRE_COMMIT:
    handle_commit (s, msg->u.commit.seq);
    return;
  case WIRE_OUTCOME:
    handle_outcome (s, msg->u.outcome.seq, msg->u.outcome.value);
    return;
  default:
    /* Replies that only a receiver sends (HELLO_REPLY, DURABLE,
     * COMMITTED, RECORDED) mean the peer is confused. */
    unexpected (s, msg->type);
    return;
  }
}

static void
on_ready (struct stm_conn *conn, void *opaque)
{
  struct session *s = opaque;

  s->state = SESSION_AWAIT_HELLO;
}

static void
on_drain (struct stm_conn *conn, void *opaque)
{
  struct session *s = opaque;

  if (s->reading_paused) {
    s->reading_paused = false;
    stm_conn_pause_reading (conn, false);
  }
}

static void
on_close (struct stm_conn *conn, const char *reason, void *opaque)
{
  struct session *s = opaque;

  session_end (s, reason, CLOSED_BY_TRANSPORT);
}

static void
on_timer (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct session *s = w->data;
  char reason[128];

  if (s->state == SESSION_ACTIVE) {
    uint64_t idle_ns = time_monotonic_ns () - s->last_message_ns;
    uint64_t limit_ns = (uint64_t) (IDLE_TIMEOUT_S * 1e9);

    if (idle_ns < limit_ns) {
      /* Something arrived since the timer was armed: wait for the rest. */
      ev_timer_set (w, (limit_ns - idle_ns) / 1e9, 0.);
      ev_timer_start (loop, w);
      return;
    }
    fail (s, WIRE_ERR_PROTOCOL, "no message from the sender for %.0f seconds "
          "(not even KEEPALIVE); closing the connection so another sender can "
          "resume into %s", IDLE_TIMEOUT_S, output_path (s));
    return;
  }
  if (s->state == SESSION_HANDSHAKE) {
    snprintf (reason, sizeof reason,
              "the TLS handshake did not complete within %.0f seconds",
              HELLO_TIMEOUT_S);
    session_end (s, reason, CLOSE_NOW);
  }
  else
    fail (s, WIRE_ERR_PROTOCOL, "no HELLO within %.0f seconds", HELLO_TIMEOUT_S);
}

static const struct stm_conn_callbacks session_callbacks = {
  .on_ready = on_ready,
  .on_message = on_message,
  .on_drain = on_drain,
  .on_close = on_close,
};

struct session *
session_new (struct receiver *rx, int fd, const char *peer)
{
  struct session *s;

  s = calloc (1, sizeof *s);
  if (s == NULL) {
    log_error ("%s: cannot start a session: %m", peer);
    close (fd);
    events_disconnected (&rx->events, peer, "out of memory");
    return NULL;
  }
  s->rx = rx;
  snprintf (s->peer, sizeof s->peer, "%s", peer);
  s->state = SESSION_HANDSHAKE;
  s->started_ns = time_monotonic_ns ();
  s->last_message_ns = s->started_ns;

  s->conn = stm_conn_new (rx->loop, fd, rx->creds, true, s->peer,
                          &session_callbacks, s);
  if (s->conn == NULL) {
    /* stm_conn_new took the fd and reported why. */
    events_disconnected (&rx->events, peer, "cannot start the connection");
    free (s);
    return NULL;
  }
  stm_conn_set_water_marks (s->conn, OUTPUT_LOW_WATER, OUTPUT_HIGH_WATER);
  stm_conn_count_in (s->conn, &rx->live_connections);
  stm_conn_set_linger_timeout (s->conn, PRE_HELLO_LINGER_S);
  /* Nothing is written before HELLO: refuse DATA/ZERO until then. */
  stm_conn_set_image_size (s->conn, 0);

  ev_timer_init (&s->timer, on_timer, HELLO_TIMEOUT_S, 0.);
  s->timer.data = s;
  ev_timer_start (rx->loop, &s->timer);
  return s;
}
