/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: what the user sees while a migration runs: --json events on
 * stdout (common/json_writer.h, one object per line) and the progress bar
 * on stderr, redrawn in place with "\r".
 *
 * The migration calls these at each step with the numbers; this file only
 * formats.  Log messages clear the bar first (progress_clear) so a message
 * never lands in the middle of it.
 */
#ifndef STM_SENDER_PROGRESS_H
#define STM_SENDER_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "progress_line.h"

/* Receives each JSON event line as it is made (--report). */
typedef void progress_tee_fn (void *opaque, const char *line, size_t len);

struct progress {
  bool json;
  bool bar;
  progress_tee_fn *tee;      /* or NULL */
  void *tee_opaque;
  bool bar_shown;            /* a bar is on the terminal line now */
  uint64_t last_json_ns;     /* when the last progress event was printed */
};

/* The numbers behind a progress event or a bar redraw. */
void progress_init (struct progress *p, bool json, bool bar);
void progress_clear (struct progress *p);
/* Hand every JSON event to tee as well, whether or not --json prints
 * them: stm-send --report draws its page from the same events. */
void progress_set_tee (struct progress *p, progress_tee_fn *tee, void *opaque);

/* disks_json: for a group of named disks, a JSON array of each disk's
 * figures (name, size, block), or NULL for the one-disk form; size and
 * block are then the group's (the sum of the sizes, the smallest block). */
void progress_start (struct progress *p, const char *source, const char *dest,
                     uint64_t size, uint32_t block, const char *migration_id,
                     const char *mode, const char *disks_json);
void progress_pass_begin (struct progress *p, uint32_t pass, uint64_t bytes, bool final);
/* Periodic: the bar is redrawn at once, a JSON event only when force is
 * set or a second has passed since the last one. */
void progress_update (struct progress *p, const struct progress_sample *s,
                      uint64_t now_ns, bool force);
void progress_pass_end (struct progress *p, const struct progress_sample *s,
                        double seconds, uint64_t predicted_ms, const char *decision);
void progress_freeze (struct progress *p, uint64_t drain_ms);
void progress_commit (struct progress *p, uint64_t seq);
/* The source flipped; preconnected: the filter used the connection it
 * opened ahead of the freeze (PRECONNECT) for a forward flip.  For a
 * group of named disks, one event for the group, with disks_json an
 * array of each disk's name, mode (fence, when fenced in place of a
 * failed forward flip) and preconnected; NULL for the one-disk form. */
/* --verify: one differing range (disk is NULL for the one unnamed disk),
 * and the verification's result. */
void progress_difference (struct progress *p, const char *disk, uint64_t offset,
                          uint64_t length);
void progress_verified (struct progress *p, uint64_t bytes_compared,
                        uint64_t bytes_differing, uint64_t ranges, double seconds);
void progress_flip (struct progress *p, const char *mode, bool preconnected,
                    const char *disks_json);
/* The summary; counts are the group's (byte_counts.h); destination is
 * the state the receiver recorded the migration in ("final", or
 * "prepared" when it could not be told); disks_json, for a group of named disks, a JSON array of each disk's
 * figures (NULL for the one-disk form). */
/* What the mirror rings carried (--converge mirror|mirror-sync), for the
 * summary: the mode, and the records sent with their write data and
 * zeroed bytes. */
struct progress_mirror {
  const char *mode;
  uint64_t records, data_bytes, zero_bytes;
};
/* mirror: NULL when not mirroring. */
void progress_done (struct progress *p, const struct byte_counts *counts, uint32_t passes,
                    uint64_t downtime_ms, double seconds, const char *destination,
                    const char *disks_json, const struct progress_mirror *mirror)
  __attribute__((nonnull (1, 2)));
void progress_error (struct progress *p, const char *message, const char *source_state);
/* The downtime the guest saw (from the filter), what was predicted,
 * whether the cutover was forced without converging, how much of it the
 * FREEZE took (gate closed to reply) and the flush FREEZE did before
 * closing the gate. */
void progress_downtime (struct progress *p, uint64_t downtime_us,
                        uint64_t predicted_us, bool forced,
                        uint64_t freeze_us, uint64_t preflush_ms);
/* A cutover was called off: its final pass was not sent and durable
 * within final_pass_budget_us of the gate closing, which is
 * max_downtime_us less reserved_us kept back for what follows it
 * (COMMIT, CONFIRM, FLIP, THAW).  The source was thawed after held_us
 * (the filter's measure), with sent_bytes of the final pass's pass_bytes
 * sent; predicted_us was the prediction.  Also a line on stderr: the
 * migration goes on with another pass. */
struct progress_overrun {
  uint32_t attempt;
  uint64_t held_us;
  uint64_t predicted_us;
  uint64_t final_pass_budget_us;
  uint64_t reserved_us;
  uint64_t max_downtime_us;
  uint64_t sent_bytes;
  uint64_t pass_bytes;
};
void progress_cutover_overrun (struct progress *p, const struct progress_overrun *ov);
/* Pass pass leaves out skipped bytes of hot blocks; deferred bytes in all
 * wait for the final pass. */
void progress_hot_blocks (struct progress *p, uint32_t pass, uint64_t skipped,
                          uint64_t deferred);
/* The convergence policy set the guest write throttle (0 = released). */
void progress_throttle (struct progress *p, uint64_t bytes_per_second,
                        uint64_t dirty_bytes, uint64_t throughput);
/* The receiver connection was lost and another attempt follows in
 * retry_in_ms; deadline is the Unix time when retrying stops.  Also a
 * line on stderr (not an error: the migration goes on). */
void progress_reconnecting (struct progress *p, const char *dest, unsigned attempt,
                            const char *reason, uint64_t retry_in_ms,
                            double deadline, const char *source_state);
/* A new connection to the receiver answered HELLO: mode "resume" or
 * "new", with the receiver's durable SYNC sequence. */
void progress_resumed (struct progress *p, const char *dest, const char *mode,
                       uint64_t durable_seq, uint64_t confirmed_bytes);
/* --cutover manual: where a migration held ready stands (ready.c).  The
 * "ready" event comes when it becomes ready, when it stops being ready
 * (announce: also a line on stderr) and every second in between. */
struct progress_ready {
  bool ready;                    /* a cutover would start now */
  bool forced;                   /* and it would be forced past the budget */
  bool requested;                /* CUTOVER asked for, not done yet */
  const char *phase;             /* ready_stage */
  uint32_t pass;                 /* the pass last decided on */
  uint64_t dirty_bytes;
  uint64_t predicted_us;         /* UINT64_MAX: unknown */
  uint64_t max_downtime_us;
  double ready_s;                /* since it first became ready */
  const char *command_socket;
};
void progress_ready (struct progress *p, const struct progress_ready *r, bool announce);

#endif /* STM_SENDER_PROGRESS_H */
