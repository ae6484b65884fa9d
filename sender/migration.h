/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the state of one migration, shared by the files that run it,
 * and the primitives they all use (migration.c, durability.c, failure.c).
 *
 * The files, from the top down, each calling only those below it:
 *   run.c        the receiver connection, timers and signals, and
 *                losing and regaining the receiver (reconnect.c);
 *   commands.c   the command socket's STATUS, CUTOVER and ABORT;
 *   setup.c      opening and checking every disk, the migration id;
 *   flip.c       after the group commit: flip (or fence) every disk,
 *                thaw, outcome;
 *   cutover.c    after a durable pass: decide (convergence.c) and act;
 *                freeze, final pass, commit;
 *   ready.c      --cutover manual: a decision to cut over held until
 *                CUTOVER, and the replies owed to the command socket;
 *   pass.c       one pass: snapshot, read, send, SYNC; throttling during
 *                a pass;
 *   durability.c SYNC, and CONFIRM once DURABLE (the sync ledger);
 *   failure.c    the failure path (migration_fail);
 *   compress.c   DATA and DATA_ZSTD (compress_send_data), zstd on the
 *                worker thread (compress_worker.c);
 *   migration.c  phase changes (phase.h), messages through the ordered
 *                stage (send_stage.c), and the ends;
 * and below them all control_channel.c, the owning control connection on
 * the loop: every request made while the loop runs goes through it
 * (each disk's d->ctl), issued with a reply handler, tagged with
 * m->ctl_epoch.
 *
 * A migration moves a group of one or more disks (m->disks): each has its
 * own source reader, filter, control channel, status poller, sync ledger
 * and hot blocks; the phase, the SYNC sequence, the convergence decisions
 * and the cutover are the group's.  A step that asks every disk's filter
 * issues its requests on every channel at once and goes on when the last
 * reply has come (m->awaiting counts them), so that several filters cost
 * the slowest round trip, not the sum.
 */
#ifndef STM_SENDER_MIGRATION_H
#define STM_SENDER_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "byte_counts.h"
#include "control_channel.h"
#include "control_client.h"
#include "compare_diff.h"
#include "control_proto.h"
#include "convergence.h"
#include "extents.h"
#include "flip_policy.h"
#include "flush_probe.h"
#include "phase.h"
#include "compress.h"
#include "hot_blocks.h"
#include "mirror_consumer.h"
#include "progress.h"
#include "rate_limit.h"
#include "reconnect.h"
#include "send_stage.h"
#include "sender_options.h"
#include "source_reader.h"
#include "status_poller.h"
#include "sync_ledger.h"
#include "time_units.h"
#include "tls_transport.h"
#include "wire.h"

/* Output queue water marks: stop issuing reads above HIGH, resume below
 * LOW.  With SOURCE_READER_SLOTS reads in flight on top, the queue holds
 * at most HIGH + SLOTS * CHUNK bytes. */
#define MIGRATION_OUTPUT_LOW (4u * 1024 * 1024)
#define MIGRATION_OUTPUT_HIGH (16u * 1024 * 1024)
/* One read covers several extents when the gaps between them are at most
 * this long (and it stays within one chunk): a read costs a round trip to
 * the source however short it is, and with fine tracking
 * (migrate-block=4K) a guest writing at random leaves dirty blocks a few
 * blocks apart.  The gaps are read and dropped; only the extents are
 * sent.  With the default 64K blocks gaps are never shorter than this
 * plus one block, so nothing changes. */
#define MIGRATION_MERGE_GAP (60u * 1024)
/* A SYNC within a pass after this many bytes, so progress becomes durable
 * (and confirmed) incrementally. */
#define MIGRATION_SYNC_EVERY (256u * 1024 * 1024)
/* And after this long with at least MIGRATION_SYNC_MIN bytes unsynced, so
 * that a lost connection costs at most about a second of transfer: what
 * is durable is not sent again after a reconnect. */
#define MIGRATION_SYNC_INTERVAL_NS NS_PER_S
#define MIGRATION_SYNC_MIN (1024u * 1024)
/* Replies from the filter must come within this time (FREEZE drains the
 * guest's in-flight writes, so allow a while). */
#define MIGRATION_CONTROL_TIMEOUT_MS 60000
#define MIGRATION_CONNECT_TIMEOUT_MS 10000
/* Give up if nothing moves (no message from the receiver, no data sent)
 * for this long: a receiver that hangs must not keep the source frozen or
 * the sender waiting forever. */
#define MIGRATION_STALL_TIMEOUT_S 120

struct ready;



struct migration;

/* A disk's mirror ring, when mirroring (--converge mirror|mirror-sync):
 * the consumer's mapping and what mirror_stream.c keeps of it. */
struct disk_mirror {
  bool on;                       /* the ring is mapped */
  bool stopped;                  /* the filter took it away: no more records */
  struct mirror_consumer cons;
  ev_io wake;                    /* the ring's eventfd */
  ev_timer nap;                  /* a short wait before sleeping on it */
  unsigned naps;                 /* naps in a row that found nothing */
  uint64_t records, data_bytes, zero_bytes;   /* sent, this process */
  uint64_t window;               /* the ring bytes writers may use; 0: all */
  uint64_t resent_from;          /* position of the last rewind (0: none) */
};

/* What compare_pass.c keeps of one disk. */
struct disk_compare {
  bool next;                     /* the next pass compares */
  bool on;                       /* the current pass compares */
  uint32_t unit;                 /* hash unit (compare_pass_unit) */
  struct hash_window *win;       /* allocated on first use */
  uint8_t *src;                  /* the source's hashes of one read */
  uint64_t compared, differing;  /* bytes compared; of those, sent */
};

/* One disk of the group: its source, its filter and what is known of it. */
struct migration_disk {
  struct migration *m;           /* the group, for the callbacks */
  uint32_t index;                /* in m->disks, and on the wire */
  const char *name;              /* --disk name=, or NULL: the one-disk form */
  const char *source_uri;        /* through the filter */
  const char *control_path;      /* the filter's control socket */
  struct source_reader *reader;
  /* Start-up only: the blocking client, whose socket then becomes ctl's. */
  struct control_client *control;
  /* The owning control connection while the loop runs (control_channel.h). */
  struct control_channel *ctl;
  struct status_poller *poller;  /* STATUS without blocking (pass.c); NULL
                                    if it could not connect */
  struct flush_probe *flush_probe;   /* NULL: no measurement, assume 0 */
  bool flush_probe_failed;       /* its last flush failed: close it */
  unsigned flush_round;          /* the look its flush in flight is for */
  uint64_t size;
  uint32_t block;
  /* Sent ranges not yet covered by a SYNC, and SYNCs awaiting DURABLE:
   * every disk's ledger is cut at every SYNC, so their seqs are the
   * group's one sequence. */
  struct sync_ledger ledger;
  struct extent_list extents;    /* what the current pass sends of it */
  struct hot_blocks hot;         /* its blocks left for the final pass */
  unsigned stale_reads;          /* reads of an abandoned pass still to come */
  struct control_status st;      /* its filter's last STATUS in a group step */
  struct byte_counts counts;     /* this process's, but for wire (the group's) */
  bool frozen;                   /* may be frozen by us (FREEZE sent) */
  enum disk_flip flip;
  char flip_uri[CONTROL_MAX_URI]; /* FLIP forward's: --flip forward=, EXPORT
                                     or COMMITTED, credentials added */
  /* The URI PRECONNECT was last sent for on the owning connection ("" if
   * none, or if the filter refused it: forward_target.c), and whether
   * the FLIP's reply said it used that prepared connection. */
  char preconnect_uri[CONTROL_MAX_URI];
  bool flip_preconnected;
  struct disk_mirror mirror;     /* its mirror ring (mirror_stream.h) */
  struct disk_compare cmp;       /* hash comparison (compare_pass.h) */
  /* --verify (verify.h): the next offset to read, and what differs. */
  uint64_t verify_next;
  bool verify_diff_on;
  struct compare_diff verify_diff;
  char flip_why[512];            /* why its FLIP failed */
  char thaw_error[512];          /* why its THAW failed (failure.c) */
};

/* Where the current pass stands: its extents, the read cursor and the
 * send cursor behind it. */
struct pass_cursor {
  uint32_t pass;                 /* 1-based; 0 before the first */
  bool final_pass;
  /* A pass goes over the disks one after the other: the disk being read
   * and sent (its extents, d->extents, are what this pass sends of it);
   * the next disk starts once every read of this one has come back. */
  uint32_t disk;
  size_t ext_index;              /* next extent to read from */
  uint64_t ext_pos;              /* bytes of that extent already issued */
  size_t send_index;             /* next extent to send from (reads come */
  uint64_t send_pos;             /* back in order, behind ext_index/pos) */
  bool all_issued;
  bool pass_ended;               /* PASS_END sent */
  uint64_t pass_bytes, pass_done;
  uint64_t pass_start_ns;
  uint64_t mirror_bytes_at_begin;  /* migration_mirror_bytes then */
  bool output_blocked, rate_blocked;
  /* When the pass became durable, and how long it took: the decision,
   * made once STATUS has answered, is on these. */
  uint64_t durable_ns, durable_pass_ns;
};

/* What is measured: for progress, and what the downtime prediction and
 * the convergence policy need. */
struct measurements {
  uint64_t start_ns;
  /* What this process queued to the receiver (byte_counts.h), for the
   * events and the summary only; counts.wire is not kept here but taken
   * from the connections (migration_counts).  The convergence's copy
   * rate does not read these: it is measured on what the passes covered
   * (cur.pass_bytes, DATA and ZERO alike, since a zeroed block leaves
   * the dirty set as surely as a copied one) and on the mirror rings'
   * data, the two that compete with the guest's writes for time. */
  struct byte_counts counts;
  /* The wire bytes of the receiver connections let go so far
   * (migration_drop_conn): a reconnect starts a new connection. */
  uint64_t wire_bytes_before;
  uint64_t dirty_bytes;          /* last STATUS */
  uint64_t last_pass_bytes, last_pass_ns;   /* last pass that moved data */
  struct convergence_rate pass_rates;       /* the last passes, for the rate */
  uint64_t sync_rtt_ns;
  uint64_t min_sync_rtt_ns;      /* quickest SYNC round trip: COMMIT's estimate */
  uint64_t last_activity_ns;     /* last message received or chunk sent */
  uint64_t freeze_cost_ns;       /* last FREEZE, gate closed to reply; 0 = none */
  uint64_t preflush_ms;          /* last FREEZE's flush before the gate closed */
  uint64_t probe_flush_ns;       /* last flush_probe_measure; 0 = none yet */
  uint64_t control_rtt_ns;       /* last STATUS round trip */
  uint64_t attach_ns;            /* when the receiver connection was handed over */
  uint64_t handshake_ns;         /* its TLS handshake (to ready), for the
                                    forward flip's estimate */
  uint64_t last_write_bytes;     /* the filter's write_bytes at the last pass end */
  uint64_t last_writes;          /* and its writes */
};

/* The cutover: the facts about the source (frozen, flipped) and the
 * commit, which the phases do not say (phase.h). */
struct cutover_state {
  /* The flushes before a freeze (recheck_before_freeze): which look they
   * are for, how many are still out, and the slowest so far. */
  unsigned flush_round;
  unsigned flushes_pending;
  uint64_t flush_longest_ns;
  bool frozen, flipped;
  bool flip_in_flight;           /* FLIP sent, its reply not yet read */
  bool thaw_in_flight;           /* a call-off's THAW sent, not yet answered */
  unsigned thaws_awaited;        /* of those THAWs, one per frozen disk */
  bool overrun_held_known;       /* overrun.held_us is a filter's measure */
  /* The receiver was lost while FLIP was being made: taken up once the
   * flip's outcome is known (reason says why it was lost). */
  bool receiver_lost_in_flip;
  char lost_reason[512];
  /* A signal that came while FLIP was being made ("SIGINT"), taken up
   * once the flip's outcome is known; NULL for none. */
  const char *interrupted_by;
  /* The flip's kind ("fence", "forward"), for messages. */
  const char *flip_how;
  /* The decision being carried out, between its STATUS re-check's
   * request and reply (cutover.c). */
  struct convergence_input decide_in;
  struct convergence_result decide_res;
  /* A call-off's event, filled in when its THAW is answered. */
  struct progress_overrun overrun;
  /* The seq of the COMMIT the receiver holds prepared (sent by this
   * process, or reported by HELLO_REPLY prepared); 0 = none.  OUTCOME
   * names it. */
  uint64_t commit_seq;
  /* The source had already flipped for this migration when this process
   * started: there is nothing to copy, only the receiver's record to
   * complete. */
  bool flipped_at_start;
  bool forced;                   /* cutting over without converging */
  uint64_t predicted_ns;         /* the prediction the cutover was made on */
  uint64_t freeze_ns;
  /* Guest writes are held from gate_closed_ns (the filter's gate, after
   * FREEZE's pre-flush); the final pass must be sent and COMMIT queued by
   * cutover_deadline_ns or the cutover is called off (overrun_timer). */
  uint64_t gate_closed_ns, cutover_deadline_ns;
  /* What the deadline keeps back of --max-downtime for what follows the
   * final pass (the freeze check, COMMIT's round trip, CONFIRM, FLIP,
   * THAW, a forward flip's connection), so that a cutover_overrun event
   * can say what the final pass was judged against. */
  uint64_t cutover_reserved_ns;
  uint32_t cutover_overruns;     /* cutovers called off so far */
  uint64_t downtime_ms;
  uint64_t frozen_us;            /* the longest of the disks' THAW frozen_us */
};

/* The failure path, between deciding to fail and the replies to THAW
 * and THROTTLE 0 (migration.c). */
struct failure_state {
  char msg[1024];
  unsigned awaiting;             /* channels whose barrier is still to come */
  bool thaw_failed, throttle_asked, throttle_failed;
  char thaw_error[512], throttle_error[512];
};

/* What a HELLO_REPLY started, for the events sent once the filter has
 * answered RESET or RESUME (run.c). */
struct hello_state {
  const char *mode;              /* "new", "resume" */
  uint64_t durable_seq, confirmed;
};

struct migration {
  /* Held ready (--cutover manual, ready.c): the guest is not throttled,
   * neither at a pass end nor during a pass (pass.c). */
  bool throttle_held_off;
  const struct sender_options *opts;
  struct ev_loop *loop;
  /* The group: one disk for --source/--control (unnamed, no feature
   * DISKS on the wire), or the --disk options in their order. */
  struct migration_disk disks[WIRE_MAX_DISKS];
  uint32_t ndisks;
  bool named;                    /* --disk: HELLO carries the disk table */
  /* Replies still to come for the group step in progress: each disk's
   * handler counts down and the last one takes the next step. */
  unsigned awaiting;
  bool step_failed;              /* a disk's reply failed the step */
  /* Replies tagged with an earlier epoch are stale: pass_abandon moves it
   * on when the receiver is lost. */
  uint64_t ctl_epoch;
  struct tls_creds *creds;
  struct stm_conn *conn;
  /* In front of conn: every message to the receiver goes through it, in
   * order (send_stage.h); cleared when conn is let go. */
  struct send_stage stage;
  /* What the migration does when the producers held back by compression
   * may go on (run.c sets it: compress.c calls it once the worker's jobs
   * are done, as stm_conn's on_drain does for the output queue). */
  void (*output_room) (struct migration *m);
  /* Hash comparison on this connection (compare_pass.h): the receiver
   * answers hashes, and the key they are made with. */
  bool receiver_hashes;
  bool hash_key_sent;            /* HASH_KEY went out on this connection */
  uint8_t hash_key[WIRE_HASH_KEY_LEN];
  /* --verify (verify.h): when it began, and what goes on after it. */
  uint64_t verify_start_ns;
  void (*verified) (struct migration *m);
  struct progress progress;
  struct rate_limit rate;
  struct compress_state comp;    /* --compress (compress.h) */
  ev_timer rate_timer;
  ev_timer tick_timer;
  ev_timer exit_timer;           /* bounds the final flush to the receiver */
  ev_signal sigint_watcher, sigterm_watcher;

  uint64_t size;                 /* the group's: the sum of its disks' */
  uint32_t block;                /* the smallest of its disks' */
  uint8_t migration_id[WIRE_MIGRATION_ID_LEN];
  char migration_id_hex[2 * WIRE_MIGRATION_ID_LEN + 1];
  enum migration_phase phase;

  /* Where the current pass stands (pass.c). */
  struct pass_cursor cur;
  /* What is measured, for progress and for the convergence decisions. */
  struct measurements meas;
  /* Convergence (convergence.h). */
  struct convergence_policy policy;
  /* The cutover (cutover.c). */
  struct cutover_state cut;
  ev_timer overrun_timer;
  ev_timer midpass_timer;        /* early looks at the dirty set (pass.c) */

  int exit_code;
  struct failure_state fail;
  struct hello_state hello;

  /* Losing the receiver and getting it back (reconnect.h), and what the
   * migration does when the receiver is lost (run.c sets it: migration.c
   * and pass.c report a lost receiver through it, without calling up). */
  struct reconnect rc;
  void (*receiver_lost) (struct migration *m, bool transient, const char *reason);
  bool started;                  /* the first HELLO_REPLY has come */
  /* --cutover manual and the command socket (ready.h), and what the
   * migration does once it has ended (run.c sets it: migration_finish
   * calls it, so that replies owed to the command socket are sent). */
  struct ready *ready;
  void (*finished) (struct migration *m);
};

/* The exit status when the source is not known to be serving: it has
 * flipped for another migration, or a FLIP's outcome could not be
 * learned.  (0: flipped for this migration; 1: the source is thawed and
 * authoritative; 2: usage.) */
#define STM_SEND_EXIT_UNKNOWN 3

/* Move to phase to; asserts that the transition is legal (phase.h). */
void migration_set_phase (struct migration *m, enum migration_phase to);
/* Has the migration ended, or is it ending (DONE, FAILING, FAILED)? */
bool migration_ended (const struct migration *m);
/* Is the reply to a request tagged tag, made in phase want, still
 * wanted?  False once the migration moved on (phase.h). */
bool migration_reply_current (const struct migration *m, uint64_t tag,
                              enum migration_phase want);

/* Queue one message to the receiver, with payload after its frame (NULL,
 * 0 for none), behind everything sent before it (m->stage).  A
 * connection that is gone or refuses the bytes means the receiver is
 * lost (m->receiver_lost).  -1 then. */
int migration_send (struct migration *m, const uint8_t *frame, size_t len,
                    const void *payload, size_t payload_len);
/* Fill a place reserved in m->stage (send_stage_fill: payload is taken
 * over) and send what may go.  Reported like migration_send; -1 then. */
int migration_send_fill (struct migration *m, struct send_stage_entry *slot,
                         uint64_t gen, const uint8_t *frame, size_t len,
                         void *payload, size_t payload_len);
/* Report a message that could not be sent (errno ENOMEM: could not be
 * queued) as migration_send does.  Returns -1. */
int migration_send_failed (struct migration *m);
/* Send a message in order, reporting nothing if it cannot be: for the
 * last messages of a migration (OUTCOME, ABORT), whose loss the
 * connection's close already says. */
void migration_send_quiet (struct migration *m, const uint8_t *frame, size_t len);
/* The same without payload, and nothing at all while reconnecting. */
int migration_send_msg (struct migration *m, const uint8_t *frame, size_t len);
/* Queue a SYNC (or COMMIT when commit is set) covering every range sent so
 * far; returns its seq or 0 on failure (already reported). */
uint64_t migration_send_sync (struct migration *m, bool ends_pass, bool commit);
/* Send CONFIRM for every pending sync with seq <= seq, on the control
 * channel; a refusal fails the migration when its reply comes.  Requests
 * issued after it are answered after it. */
void migration_confirm_up_to (struct migration *m, uint64_t seq);
/* A disk's filter, for messages: "the filter at PATH" or "the filter of
 * disk NAME at PATH". */
const char *migration_disk_filter (const struct migration_disk *d, char *buf,
                                   size_t len);
/* Start a group step: every disk's reply is awaited. */
void migration_await_all (struct migration *m);
/* One disk's reply to the group step came: true if it was the last. */
bool migration_await_one (struct migration *m);
/* d is known to be thawed (tracking): m->cut.frozen says whether any disk
 * of the group may still be frozen. */
void migration_disk_thawed (struct migration_disk *d);
/* The accounting point for DATA: every DATA message queued to the
 * receiver, by a pass or from a mirror ring, is counted here and nowhere
 * else.  payload_bytes is what was read from the source for it,
 * sent_bytes what of it went into the message: fewer once DATA is
 * compressed, the same until then. */
void migration_account_data (struct migration_disk *d, uint64_t payload_bytes,
                             uint64_t sent_bytes);
/* A ZERO message queued for length bytes of d. */
void migration_account_zero (struct migration_disk *d, uint64_t length);
/* The group's counts so far, wire bytes included (those of every
 * receiver connection of this process, the current one's up to now), and
 * the bytes every disk's comparison compared. */
void migration_counts (const struct migration *m, struct byte_counts *out);
/* Let go of the receiver connection (m->conn becomes NULL), keeping its
 * wire bytes in the counts, and drop every message still waiting for it
 * in m->stage (compression jobs still out are dropped when they come
 * back); returns it for the caller to close, or NULL if there was none.
 * Inside its on_close callback, it is still valid. */
struct stm_conn *migration_drop_conn (struct migration *m);
/* The write data every disk's mirror ring has sent (this process). */
uint64_t migration_mirror_bytes (const struct migration *m);
/* The bytes of the hot blocks every disk defers to the final pass. */
uint64_t migration_deferred_bytes (const struct migration *m);
/* Where the migration is, for messages: "during pass 2". */
const char *migration_where (const struct migration *m, char *buf, size_t len);
/* What migration_disks_json puts in each disk's object, besides its
 * name. */
enum {
  DISKS_JSON_SIZE = 1,           /* size, block */
  DISKS_JSON_COUNTS = 2,         /* bytes_sent, bytes_copied, bytes_zeroed,
                                    bytes_compared (this process) */
  DISKS_JSON_DIRTY = 4,          /* dirty_bytes (its filter's last STATUS) */
  DISKS_JSON_FLIP = 8,           /* mode (fence, forward), preconnected:
                                    the flip event's */
  DISKS_JSON_OUTCOME = 16,       /* flip (fence, forward): the summary's */
};
#define MIGRATION_DISKS_JSON_MAX (WIRE_MAX_DISKS * (WIRE_MAX_DISK_NAME + 240) + 8)
/* For a group of named disks, a JSON array of one object per disk (its
 * name and the fields what asks for) in buf, which has len bytes (at
 * least MIGRATION_DISKS_JSON_MAX); NULL for the one-disk form, whose
 * events already say everything.  Names need no escaping
 * (wire_disk_name_ok). */
const char *migration_disks_json (const struct migration *m, unsigned what,
                                  char *buf, size_t len);
/* The numbers of the current pass, for progress events. */
void migration_sample (const struct migration *m, struct progress_sample *s,
                       uint64_t now);

/* Give up without a flip: thaw if frozen and release a throttle we set
 * (PHASE_FAILING until the filter has answered, within the channel's
 * timeout), then report the failure once with the source's state, tell
 * the receiver (OUTCOME thawed after a COMMIT, then ABORT), and end the
 * loop with exit status 1, or STM_SEND_EXIT_UNKNOWN when a FLIP's outcome could not be
 * learned.  After the source has flipped, a failure only means the
 * receiver's record could not be completed: it is reported and the
 * migration completes ("prepared").  Does nothing if it already ended. */
void migration_fail (struct migration *m, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));
/* The source has flipped, and the receiver recorded the migration in
 * state recorded ("final"; "prepared" when it could not be told;
 * "unknown"): end with exit status 0. */
void migration_complete (struct migration *m, const char *recorded);
/* Stop the loop's own watchers and close the receiver connection after
 * flushing; used by both ends. */
void migration_finish (struct migration *m);

#endif /* STM_SENDER_MIGRATION_H */
