/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the per-connection protocol state machine.  See session.h and
 * docs/protocol.md ("A session").
 *
 * Every way a session can end goes through session_end, which reports the
 * disconnection once, tells the receiver (its ended hook: the receiver
 * gives up the active slot, the listener forgets the session, and the
 * receiver's policy decides what follows) and frees the session.  After calling it (directly or through fail), code
 * must not touch the session again; the message handlers therefore return
 * right after.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash_policy.h"
#include "hash_answer.h"
#include "image_writer.h"
#include "log.h"
#include "events.h"
#include "migration_record.h"
#include "receiver_options.h"
#include "session.h"
#include "session_limits.h"
#include "state_file.h"
#include "tls_transport.h"
#include "wire.h"
#include "no_space.h"
#include "time_units.h"

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
  const struct session_env *env;
  struct stm_conn *conn;
  char peer[SESSION_PEER_MAX];
  enum session_state state;
  /* Before HELLO: the HELLO deadline.  Once active: the idle check, which
   * re-arms itself until last_message_ns is IDLE_TIMEOUT_S old. */
  ev_timer timer;
  uint64_t started_ns;           /* when the connection was accepted */
  uint64_t last_message_ns;      /* when the last message was handled */
  bool reading_paused;           /* by the output high water mark */
  /* COMMIT was recorded prepared, and COMMITTED waits for the receiver
   * (session_send_committed). */
  bool committed_pending;

  /* Since HELLO: the output of each of its disks, and their sizes; and
   * whether the sender named its disks (and so reads EXPORT). */
  bool wants_export;             /* the sender understands EXPORT */
  uint32_t ndisks;
  unsigned map[WIRE_MAX_DISKS];
  uint64_t disk_size[WIRE_MAX_DISKS];

  bool in_pass;
  uint64_t sync_deferred;        /* a SYNC to answer at the burst's end; 0: none */
  uint32_t pass;
  uint64_t pass_data_bytes;      /* DATA bytes in the current pass */
  uint64_t pass_zero_bytes;      /* bytes zeroed in the current pass */
  uint64_t data_bytes;           /* DATA bytes on this connection */
  uint64_t zero_bytes;           /* bytes zeroed on this connection */

  /* Hash comparison: the HELLO allows HASH_KEY and HASH_REQ; it asked
   * for a compare-only session, which records and changes nothing. */
  bool hash_offered;
  bool compare_only;
  struct hash_answer hash;
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

bool
session_compare_only (const struct session *s)
{
  return s->compare_only;
}

uint64_t
session_started_ns (const struct session *s)
{
  return s->started_ns;
}

/* The output, or the group of outputs, in words. */
static const char *
output_path (const struct session *s)
{
  return s->env->outputs_text;
}

/* The output of the HELLO's disk. */
static struct image_writer *
disk_image (const struct session *s, uint32_t disk)
{
  assert (disk < s->ndisks);
  return s->env->images[s->map[disk]];
}

/* The HELLO's disk in words. */
static const char *
disk_words (const struct session *s, uint32_t disk, char *buf, size_t len)
{
  assert (disk < s->ndisks);
  return outputs_words (&s->env->opts->outputs, s->map[disk], buf, len);
}

static void
session_end (struct session *s, const char *reason, enum session_close_how how,
             enum session_end_cause cause)
{
  const struct session_env *env = s->env;
  bool was_active = *env->active == s;

  ev_timer_stop (env->loop, &s->timer);
  if (s->compare_only)
    events_compare (env->events, s->peer, output_path (s), s->hash.requests,
                    s->hash.bytes, (double) (time_monotonic_ns () - s->started_ns) / NS_PER_S);
  events_disconnected (env->events, s->peer, reason);
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
  env->hooks->ended (env->opaque, s, was_active, cause);
  hash_answer_free (&s->hash);
  free (s);
}

void
session_close (struct session *s, const char *reason)
{
  session_end (s, reason, CLOSE_NOW, SESSION_CLOSED);
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

  events_error (s->env->events, s->peer, code, "%s", message);
  (void) send_frame (s, frame, wire_encode_error (frame, code, message));
  /* The message was just reported; the disconnection only refers to it. */
  snprintf (reason, sizeof reason, "closed by the receiver after an error (%s)",
            wire_error_code_name (code));
  session_end (s, reason, CLOSE_AFTER_FLUSH, SESSION_FAILED);
}

/* Errors from the output: out of space (the operator can make room and
 * let the sender resume) or any other I/O error. */
static void
fail_io (struct session *s, int err, const char *what, uint32_t disk,
         uint64_t offset, uint64_t length)
{
  bool nospace = errno_is_no_space (err);
  char words[WIRE_MAX_DISK_NAME + PATH_MAX + 16];

  fail (s, nospace ? WIRE_ERR_NOSPACE : WIRE_ERR_IO,
        "%s: %s %s at offset %" PRIu64 " (%" PRIu64 " bytes): %s",
        nospace ? "out of space on the destination" : "I/O error on the destination",
        what, disk_words (s, disk, words, sizeof words), offset, length,
        strerror (err));
}

/* fdatasync failed: nothing since the last DURABLE is known to be on
 * disk, which the sender learns from the ERROR (it confirms nothing). */
static void
fail_sync (struct session *s, unsigned output, int err)
{
  bool nospace = errno_is_no_space (err);
  char words[WIRE_MAX_DISK_NAME + PATH_MAX + 16];

  fail (s, nospace ? WIRE_ERR_NOSPACE : WIRE_ERR_IO,
        "%s: fdatasync of %s failed: %s; data since sync %" PRIu64
        " is not known to be durable",
        nospace ? "out of space on the destination" : "I/O error on the destination",
        outputs_words (&s->env->opts->outputs, output, words, sizeof words), strerror (err),
        s->env->record->durable_seq);
}

/* fdatasync every output: a SYNC or COMMIT covers the whole group.  -1
 * after failing the session. */
static int
sync_outputs (struct session *s)
{
  unsigned i;

  for (i = 0; i < s->env->nimages; i++)
    if (image_writer_sync (s->env->images[i]) == -1) {
      fail_sync (s, i, errno);
      return -1;
    }
  return 0;
}

/* Make next the receiver's record, storing it in the state file first so
 * that what the sender is told next never runs ahead of what a restarted
 * receiver would know.  what says why it is stored, for the message.
 * -1 after failing the session (the record is then unchanged). */
static int
store_record (struct session *s, const struct migration_record *next,
              const char *what)
{
  const struct session_env *env = s->env;

  const char *step;
  if (state_file_store (env->state, next, &step) == -1) {
    int err = errno;
    bool nospace = errno_is_no_space (err);

    /* Memory keeps the old record even when only the directory sync
     * failed and the new file is in place: the next session then stores
     * (and, for a new migration or a committed image, does the barrier
     * that goes with it) again before it answers or writes.  A restart in
     * between may find the new record, which claims no more than the
     * output holds either. */
    fail (s, nospace ? WIRE_ERR_NOSPACE : WIRE_ERR_IO,
          "%s: %s the state file %s failed %s: %s",
          nospace ? "out of space on the destination" : "I/O error on the destination",
          step, state_file_path (env->state), what, strerror (err));
    return -1;
  }
  *env->record = *next;
  return 0;
}

/* HELLO refused: say why (migration_record_refusal), to the sender and
 * in the log, and end the session. */
static void
hello_refuse (struct session *s, enum hello_verdict verdict,
              const struct wire_hello *hello, const char *id,
              const char *disks_why)
{
  const struct session_env *env = s->env;
  char message[WIRE_MAX_TEXT + 1];
  uint32_t code;

  code = migration_record_refusal (env->record, verdict, hello, output_path (s),
                                   *env->active ? session_peer (*env->active) : "",
                                   id, disks_why, message, sizeof message);
  fail (s, code, "%s", message);
}

/* Size the output of the HELLO's disk for an image of size bytes (for a
 * new migration emptied first, unless it keeps the data to compare
 * against).  -1 after failing the session. */
static int
prepare_disk (struct session *s, uint32_t disk, uint64_t size, bool fresh,
              bool keep)
{
  struct image_writer *image = disk_image (s, disk);
  char words[WIRE_MAX_DISK_NAME + PATH_MAX + 16];
  const char *what = disk_words (s, disk, words, sizeof words);
  int err;
  /* What the failure leaves behind, for the operator. */
  const char *left = !fresh
    ? "; the outputs' data and their state file are unchanged"
    : keep ? "; the state file records the new migration with nothing durable, "
      "and the outputs keep their data"
    : "; the state file records the new migration with nothing durable, "
      "and the outputs may already have been emptied";

  if (image_writer_prepare (image, size, fresh && !keep) == 0)
    return 0;
  err = errno;
  if (image_writer_is_block_device (image) && err == ENOSPC)
    fail (s, WIRE_ERR_NOSPACE,
          "the block device %s holds %" PRIu64 " bytes, "
          "smaller than the image (%" PRIu64 " bytes)%s",
          what, image_writer_size (image), size, left);
  else if (errno_is_no_space (err))
    fail (s, WIRE_ERR_NOSPACE,
          "out of space on the destination: cannot set the size of %s to %"
          PRIu64 " bytes: %s%s", what, size, strerror (err), left);
  else
    fail (s, WIRE_ERR_IO,
          "I/O error on the destination: cannot set the size of %s to %"
          PRIu64 " bytes: %s%s", what, size, strerror (err), left);
  return -1;
}

/* Make the output and the record ready for an accepted HELLO: a new
 * migration is recorded (with nothing durable) before the output is
 * touched, so that neither a failure here nor a crash can leave a record
 * that promises data the output no longer has; a resumed one records the
 * sender's block size.  -1 after failing the session. */
static int
hello_prepare (struct session *s, const struct wire_hello *hello, bool fresh,
               bool keep)
{
  const struct session_env *env = s->env;
  struct migration_record next;

  if (fresh) {
    migration_record_init (&next);
    migration_record_begin (&next, hello, &env->opts->outputs, s->map, MIGRATION_NEW);
    if (store_record (s, &next, "to record the new migration before "
                      "answering HELLO (the output is unchanged)") == -1)
      return -1;
    /* Before the output is emptied: whatever served the old one (the
     * receiver's --export) must stop serving it first. */
    (void) env->hooks->recorded (env->opaque, s, WIRE_STATE_INCOMPLETE, NULL, 0);
  }
  for (uint32_t i = 0; i < hello->ndisks; i++)
    if (prepare_disk (s, i, hello->disks[i].size, fresh, keep) == -1)
      return -1;
  if (!fresh) {
    /* Only the block size can differ; recording it keeps the file exactly
     * what this receiver holds in memory. */
    next = *env->record;
    migration_record_begin (&next, hello, &env->opts->outputs, s->map,
                            MIGRATION_RESUME);
    if (memcmp (next.disks, env->record->disks, sizeof next.disks) != 0 &&
        store_record (s, &next, "to record the resumed migration's block size") == -1)
      return -1;
    *env->record = next;
  }
  return 0;
}

/* HELLO accepted and the output ready: this is the active sender now;
 * answer with the mode the record is in (new for a compare-only session,
 * which has nothing to resume), and whether kept_bytes were kept. */
static void
hello_accept (struct session *s, const struct wire_hello *hello, bool fresh,
              uint64_t kept_bytes, const char *id)
{
  const struct session_env *env = s->env;
  struct wire_hello_reply reply = {
    .mode = fresh ? WIRE_MODE_NEW : migration_record_hello_mode (env->record),
    .durable_seq = fresh ? 0 : env->record->durable_seq,
    /* The features the receiver agrees to: those offered that it knows. */
    .features = hash_policy_reply_features (hello->features, kept_bytes > 0),
  };
  uint8_t frame[WIRE_ENCODE_MAX];

  struct wire_disks disks;

  wire_disks_from_hello (&disks, hello);
  stm_conn_set_disks (s->conn, &disks);
  stm_conn_set_linger_timeout (s->conn, ACTIVE_LINGER_S);
  s->compare_only = hash_policy_compare_only (hello->features);
  s->hash_offered = hash_policy_hash_offered (hello->features);
  s->wants_export = !s->compare_only &&
    (hello->features & (WIRE_FEATURE_DISKS | WIRE_FEATURE_EXPORT)) != 0;
  s->state = SESSION_ACTIVE;
  /* From now on the timer watches for silence. */
  ev_timer_stop (env->loop, &s->timer);
  ev_timer_set (&s->timer, IDLE_TIMEOUT_S, 0.);
  ev_timer_start (env->loop, &s->timer);

  events_hello (env->events, s->peer, output_path (s), id,
                migration_record_mode_name (reply.mode), hello->image_size, hello->block_size, reply.durable_seq,
                kept_bytes, s->compare_only);
  if (send_frame (s, frame, wire_encode_hello_reply (frame, &reply)) == -1)
    return;                     /* on_close follows */
  /* After the reply, so that the EXPORTs the receiver may send at once
   * follow it on the wire. */
  env->hooks->activated (env->opaque, s);
}

void
session_send_export (struct session *s, unsigned output, const char *uri)
{
  uint8_t frame[WIRE_ENCODE_TEXT_MAX];
  uint32_t i;

  if (!s->wants_export || s->state != SESSION_ACTIVE)
    return;
  for (i = 0; i < s->ndisks; i++)
    if (s->map[i] == output) {
      (void) send_frame (s, frame, wire_encode_export (frame, i, uri));
      return;
    }
}

unsigned
session_first_disk_output (const struct session *s)
{
  assert (s->ndisks >= 1);
  return s->map[0];
}

/* The HELLO's outputs, as hash_policy.h sees them. */
static void
compare_outputs (const struct session *s, struct compare_output o[WIRE_MAX_DISKS])
{
  for (uint32_t i = 0; i < s->ndisks; i++)
    o[i] = (struct compare_output) {
      image_writer_is_block_device (disk_image (s, i)),
      image_writer_size (disk_image (s, i)) };
}

/* HELLO: check, decide (migration_record_judge_hello, pure), prepare,
 * accept.  A compare-only HELLO only checks the sizes: nothing is
 * recorded or prepared. */
static void
handle_hello (struct session *s, const struct wire_hello *hello)
{
  const struct session_env *env = s->env;
  char id[MIGRATION_ID_TEXT_LEN], disks_why[OUTPUTS_WHY_MAX] = "";
  char words[WIRE_MAX_DISK_NAME + PATH_MAX + 16];
  struct compare_output outs[WIRE_MAX_DISKS];
  enum hello_verdict verdict;
  uint32_t i;
  int k;

  migration_id_format (hello->migration_id, id);
  verdict = migration_record_judge_hello (env->record, hello, &env->opts->outputs,
                                          s->map, disks_why, *env->active != NULL,
                                          env->opts->force);
  s->ndisks = hello->ndisks;
  for (i = 0; i < hello->ndisks; i++)
    s->disk_size[i] = hello->disks[i].size;
  switch (verdict) {
  case HELLO_ACCEPT_FORCED:
  case HELLO_ACCEPT_TAKEOVER: {
    char held[MIGRATION_ID_TEXT_LEN + 64];
    migration_record_describe (env->record, held, sizeof held);
    log_warning ("%s: migration %s from %s overwrites %s, which holds %s",
                 verdict == HELLO_ACCEPT_FORCED ? "--force" : "takeover of an "
                 "incomplete migration, compared", id, s->peer, output_path (s), held);
  }
    /* fall through */
  case HELLO_ACCEPT_NEW:
  case HELLO_ACCEPT_RESUME: {
    bool fresh = verdict != HELLO_ACCEPT_RESUME;
    uint64_t kept = 0;
    if (fresh) {                /* a takeover keeps data as --force does */
      compare_outputs (s, outs);
      kept = hash_policy_kept_bytes (hello->features, env->opts->force ||
                                     verdict == HELLO_ACCEPT_TAKEOVER, outs, s->ndisks);
    }
    if (hello_prepare (s, hello, fresh, kept > 0) == 0)
      hello_accept (s, hello, fresh, kept, id);
    return;
  }
  case HELLO_ACCEPT_COMPARE:
    compare_outputs (s, outs);
    if ((k = hash_policy_size_mismatch (outs, s->disk_size, s->ndisks)) >= 0)
      fail (s, WIRE_ERR_MISMATCH, "mismatch: %s holds %" PRIu64 " bytes and the "
            "sender's disk %" PRIu64 " bytes: sizes differ: not identical; "
            "nothing was compared or changed", disk_words (s, k, words, sizeof words),
            outs[k].size, s->disk_size[k]);
    else
      hello_accept (s, hello, true, 0, id);
    return;
  default:
    hello_refuse (s, verdict, hello, id, disks_why);
    return;
  }
}

/* The image is about to change, and from then on (even if the write fails
 * halfway) it is incomplete.  After a commit, that must be in the state
 * file before the first byte changes.  -1 after failing the session. */
static int
mark_written (struct session *s)
{
  const struct session_env *env = s->env;
  struct migration_record next;

  if (env->record->state == WIRE_STATE_INCOMPLETE)
    return 0;
  if (env->record->state == WIRE_STATE_FINAL) {
    /* The source flipped to this image: it is the guest's disk now, and
     * no sender of this migration has anything left to write to it. */
    fail (s, WIRE_ERR_PROTOCOL,
          "refusing to change %s: migration is final (the source has flipped "
          "to this destination), so the image is the guest's disk now",
          output_path (s));
    return -1;
  }
  next = *env->record;
  migration_record_written (&next);
  if (store_record (s, &next, "to record that the committed image is being "
                    "changed (nothing was written)") == -1)
    return -1;
  /* Before the first byte changes, for the same reason as at HELLO. */
  (void) env->hooks->recorded (env->opaque, s, WIRE_STATE_INCOMPLETE, NULL, 0);
  return 0;
}

/* DATA and ZERO both change the image, so both must first pass the same
 * two gates: the range lies inside the image (else the session fails with a
 * protocol error naming MESSAGE), and the state file records that the image
 * is being changed before the first byte is.  Returns false when the
 * session has already been failed.
 */
static bool
may_change_image (struct session *s, const char *message, uint32_t disk,
                  uint64_t offset, uint64_t length)
{
  char words[WIRE_MAX_DISK_NAME + PATH_MAX + 16];

  if (disk >= s->ndisks ||
      !wire_range_ok (offset, length, s->disk_size[disk])) {
    fail (s, WIRE_ERR_PROTOCOL,
          "%s for disk %" PRIu32 " at offset %" PRIu64 " (%" PRIu64 " bytes) "
          "lies outside %s", message, disk, offset, length,
          disk < s->ndisks ? disk_words (s, disk, words, sizeof words)
          : "the disks the HELLO announced");
    return false;
  }
  return mark_written (s) == 0;
}

static void
handle_data (struct session *s, uint32_t disk, uint64_t offset, uint32_t length,
             const uint8_t *bytes)
{
  if (!may_change_image (s, "DATA", disk, offset, length))
    return;
  if (image_writer_write (disk_image (s, disk), offset, bytes, length) == -1) {
    fail_io (s, errno, "writing", disk, offset, length);
    return;
  }
  /* A slow write is not the sender's silence. */
  s->last_message_ns = time_monotonic_ns ();
  s->pass_data_bytes += length;
  s->data_bytes += length;
}

static void
handle_zero (struct session *s, uint32_t disk, uint64_t offset, uint64_t length)
{
  if (!may_change_image (s, "ZERO", disk, offset, length))
    return;
  if (image_writer_zero (disk_image (s, disk), offset, length) == -1) {
    fail_io (s, errno, "zeroing", disk, offset, length);
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
  s->hash.pass_requests = s->hash.pass_bytes = 0;
  events_pass_begin (s->env->events, s->peer, pass, bytes);
}

static void
handle_pass_end (struct session *s, uint32_t pass)
{
  struct events_counts counts = { s->pass_data_bytes, s->pass_zero_bytes, 0, 0, 0 };

  /* A PASS_END that does not match PASS_BEGIN changes nothing on disk,
   * so it is reported as it comes rather than failing the migration. */
  if (!s->in_pass || s->pass != pass)
    log_warning ("%s: PASS_END %" PRIu32 " does not close a pass in progress",
                 s->peer, pass);
  hash_answer_take_pass (&s->hash, &counts.hash_requests, &counts.bytes_hashed);
  events_pass_end (s->env->events, s->peer, pass, &counts);
  s->in_pass = false;
  s->pass_data_bytes = 0;
  s->pass_zero_bytes = 0;
}

/* Make everything written durable and answer DURABLE seq.  -1 after
 * failing the session (which frees it). */
static int
make_durable (struct session *s, uint64_t seq)
{
  uint8_t frame[WIRE_ENCODE_MAX];
  struct migration_record next;

  if (sync_outputs (s) == -1)
    return -1;
  /* fdatasync may take long; that is our time, not the sender's silence. */
  s->last_message_ns = time_monotonic_ns ();
  next = *s->env->record;
  migration_record_durable (&next, seq);
  if (store_record (s, &next, "to record a durable sync (the data is on disk "
                    "but DURABLE was not sent)") == -1)
    return -1;
  (void) send_frame (s, frame, wire_encode_durable (frame, seq));
  return 0;
}

/* SYNC: made durable at the end of the burst of messages it came in
 * (on_idle), or before the next message that is not data, so that one
 * fdatasync (and one state file update) answers every SYNC of a burst:
 * DURABLE n covers every seq up to n.  A sender that mirrors guest
 * writes sends SYNCs often, and under mirror-sync the guest waits for
 * each. */
static void
handle_sync (struct session *s, uint64_t seq)
{
  s->sync_deferred = seq;
}

/* Answer the deferred SYNC, if any.  -1 after failing the session. */
static int
flush_deferred_sync (struct session *s)
{
  uint64_t seq = s->sync_deferred;

  if (seq == 0)
    return 0;
  s->sync_deferred = 0;
  return make_durable (s, seq);
}

/* COMMIT: the first phase of the two-phase commit.  The image is made
 * durable and recorded as prepared, never as final: only the sender knows
 * whether the source flips, and it says so with OUTCOME (handle_outcome).
 * Until then the session stays, and a --once run does not end. */
static void
handle_commit (struct session *s, uint64_t seq)
{
  const struct session_env *env = s->env;
  struct migration_record next;
  const char *why;

  next = *env->record;
  if (migration_record_committed (&next, seq, &why) == -1) {
    fail (s, WIRE_ERR_PROTOCOL, "%s into %s", why, output_path (s));
    return;
  }
  if (sync_outputs (s) == -1)
    return;
  s->last_message_ns = time_monotonic_ns ();
  if (store_record (s, &next, "to record the commit as prepared (the image is "
                    "on disk but COMMITTED was not sent)") == -1)
    return;
  events_commit (env->events, s->peer, output_path (s), seq);

  /* The receiver may serve the prepared image (--export) for a forward
   * flip: the URI goes back in COMMITTED ("" for none), at once, or once
   * its NBD server is ready (session_send_committed). */
  char uri[WIRE_MAX_TEXT + 1] = "";
  s->committed_pending = true;
  if (env->hooks->recorded (env->opaque, s, WIRE_STATE_PREPARED, uri,
                            sizeof uri) == SESSION_REPLY_NOW)
    session_send_committed (s, uri);
}

void
session_send_committed (struct session *s, const char *uri)
{
  uint8_t frame[WIRE_ENCODE_TEXT_MAX];

  if (!s->committed_pending)
    return;
  s->committed_pending = false;
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
  const struct session_env *env = s->env;
  uint8_t frame[WIRE_ENCODE_MAX];
  struct migration_record next = *env->record;
  const char *why;
  bool flipped = outcome == WIRE_OUTCOME_FLIPPED;

  if (migration_record_outcome (&next, seq, outcome, &why) == -1) {
    fail (s, WIRE_ERR_PROTOCOL, "%s: %s is %s (durable up to sync %" PRIu64
          "), and the sender speaks of sync %" PRIu64 "; nothing was changed",
          why, output_path (s), wire_dest_state_name (env->record->state),
          env->record->durable_seq, seq);
    return;
  }
  if (next.state != env->record->state &&
      store_record (s, &next, flipped
                    ? "to record the migration as final (the source has flipped)"
                    : "to record the commit as superseded (the source thawed)") == -1)
    return;
  events_outcome (env->events, s->peer, output_path (s),
                  flipped ? "flipped" : "thawed",
                  wire_dest_state_name (env->record->state), seq);
  if (send_frame (s, frame, wire_encode_recorded (frame, seq, env->record->state)) == -1)
    return;                     /* on_close follows */

  (void) env->hooks->recorded (env->opaque, s, env->record->state, NULL, 0);
  if (!flipped)
    return;             /* a sender may still resume into it */
  struct events_counts counts = { s->data_bytes, s->zero_bytes, s->hash.requests,
                                  s->hash.bytes, stm_conn_wire_bytes_received (s->conn) };
  events_done (env->events, s->peer, output_path (s), &counts,
               (double) (time_monotonic_ns () - s->started_ns) / NS_PER_S);
  /* The image is the guest's disk now: this sender has nothing more to
   * say, and the receiver decides what follows (its ended hook). */
  session_end (s, "migration final", CLOSE_AFTER_FLUSH, SESSION_FINAL);
}

/* ERROR or ABORT from the sender: report it and end this session. */
static void
handle_peer_error (struct session *s, bool is_abort, uint32_t code,
                   uint32_t text_len, const char *text)
{
  bool was_active = s->state == SESSION_ACTIVE;
  char reason[WIRE_MAX_TEXT + 64];

  events_peer_error (s->env->events, s->peer, output_path (s), is_abort, code,
                     text_len, text, reason, sizeof reason);
  /* An ABORT is the sender giving up on purpose; after an ERROR a
   * restarted sender may still resume.  An ABORT from a connection that
   * never said HELLO is not the sender's: it ends like a closed one. */
  session_end (s, reason, CLOSE_NOW,
               !is_abort ? SESSION_FAILED : was_active ? SESSION_ABORTED : SESSION_CLOSED);
}

/* HASH_KEY and HASH_REQ (hash_answer.h), answered in the order they
 * come.  The output is read on the loop, blocking it as the writes do, so
 * what every DATA and ZERO before the request wrote is what is hashed. */
static void
handle_hash (struct session *s, const struct wire_msg *msg)
{
  char why[256];
  const uint8_t *frame;
  size_t len;
  uint32_t code = hash_answer_message (&s->hash, s->hash_offered, msg,
                                       disk_image (s, msg->disk), &frame, &len,
                                       why, sizeof why);

  if (code == WIRE_ERR_IO)
    fail_io (s, errno, "reading", msg->disk, msg->u.hash.offset, msg->u.hash.length);
  else if (code != 0)
    fail (s, code, "%s; %s is unchanged", why, output_path (s));
  else if (len > 0) {
    s->last_message_ns = time_monotonic_ns ();    /* a slow read is ours */
    (void) send_frame (s, frame, len);
  }
}

static void
unexpected (struct session *s, enum wire_type type)
{
  fail (s, WIRE_ERR_PROTOCOL, "unexpected %s from the sender %s",
        wire_type_name (type),
        s->state == SESSION_ACTIVE ? "during the migration" : "before HELLO");
}

static void
on_idle (struct stm_conn *conn, void *opaque)
{
  struct session *s = opaque;

  if (s->state == SESSION_ACTIVE)
    (void) flush_deferred_sync (s);
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
  /* A deferred SYNC is answered before anything but more data. */
  if (msg->type != WIRE_DATA && msg->type != WIRE_ZERO && msg->type != WIRE_SYNC &&
      flush_deferred_sync (s) == -1)
    return;
  if (s->compare_only && !hash_policy_allows (msg->type)) {
    fail (s, WIRE_ERR_PROTOCOL, "%s in a compare-only session, which changes "
          "nothing; %s is unchanged", wire_type_name (msg->type), output_path (s));
    return;
  }
  if (s->committed_pending) {
    /* The sender waits for COMMITTED before anything else (an OUTCOME
     * now would report a flip to a URI it was never given). */
    fail (s, WIRE_ERR_PROTOCOL, "%s from the sender before COMMITTED; %s "
          "stays prepared", wire_type_name (msg->type), output_path (s));
    return;
  }
  switch (msg->type) {
  case WIRE_DATA:
    handle_data (s, msg->disk, msg->u.data.offset, msg->u.data.length,
                 msg->u.data.bytes);
    return;
  case WIRE_ZERO:
    handle_zero (s, msg->disk, msg->u.zero.offset, msg->u.zero.length);
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
  case WIRE_HASH_KEY:
  case WIRE_HASH_REQ:
    handle_hash (s, msg);
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

  session_end (s, reason, CLOSED_BY_TRANSPORT, SESSION_CLOSED);
}

static void
on_timer (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct session *s = w->data;
  char reason[128];

  if (s->state == SESSION_ACTIVE) {
    uint64_t idle_ns = time_monotonic_ns () - s->last_message_ns;
    uint64_t limit_ns = (uint64_t) (IDLE_TIMEOUT_S * NS_PER_S);

    if (idle_ns < limit_ns) {
      /* Something arrived since the timer was armed: wait for the rest. */
      ev_timer_set (w, (double) (limit_ns - idle_ns) / NS_PER_S, 0.);
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
    session_end (s, reason, CLOSE_NOW, SESSION_CLOSED);
  }
  else
    fail (s, WIRE_ERR_PROTOCOL, "no HELLO within %.0f seconds", HELLO_TIMEOUT_S);
}

static const struct stm_conn_callbacks session_callbacks = {
  .on_ready = on_ready,
  .on_message = on_message,
  .on_idle = on_idle,
  .on_drain = on_drain,
  .on_close = on_close,
};

struct session *
session_new (const struct session_env *env, int fd, const char *peer)
{
  struct session *s;

  s = calloc (1, sizeof *s);
  if (s == NULL) {
    log_error ("%s: cannot start a session: %m", peer);
    close (fd);
    events_disconnected (env->events, peer, "out of memory");
    return NULL;
  }
  s->env = env;
  hash_answer_init (&s->hash);
  snprintf (s->peer, sizeof s->peer, "%s", peer);
  s->state = SESSION_HANDSHAKE;
  s->started_ns = time_monotonic_ns ();
  s->last_message_ns = s->started_ns;

  s->conn = stm_conn_new (env->loop, fd, env->creds, true, s->peer,
                          &session_callbacks, s);
  if (s->conn == NULL) {
    /* stm_conn_new took the fd and reported why. */
    events_disconnected (env->events, peer, "cannot start the connection");
    free (s);
    return NULL;
  }
  stm_conn_set_water_marks (s->conn, OUTPUT_LOW_WATER, OUTPUT_HIGH_WATER);
  stm_conn_count_in (s->conn, env->live_connections);
  stm_conn_set_linger_timeout (s->conn, PRE_HELLO_LINGER_S);
  /* Nothing is written before HELLO: refuse DATA/ZERO until then. */
  stm_conn_set_image_size (s->conn, 0);

  ev_timer_init (&s->timer, on_timer, HELLO_TIMEOUT_S, 0.);
  s->timer.data = s;
  ev_timer_start (env->loop, &s->timer);
  return s;
}
