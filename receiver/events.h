/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: what the receiver tells the outside world.
 *
 * Every notable thing that happens (a connection, a HELLO, a pass, a
 * commit, an error, a disconnection) goes through one function here, which
 * writes the human message on stderr (common/log.h) and, with --json, one
 * JSON object per line on stdout (common/json_writer.h).  Keeping both in
 * one place means an event is reported exactly once and the two outputs
 * never disagree.  Tests and the Ansible module read the JSON lines; the
 * field names are part of the interface.
 */
#ifndef STM_RECEIVER_EVENTS_H
#define STM_RECEIVER_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct events {
  bool json;          /* also print JSON lines */
  FILE *json_out;     /* where JSON lines go (stdout) */
};

void events_init (struct events *ev, bool json, FILE *json_out);

/* {"event":"listening","host":..,"port":N} and "listening on HOST:PORT". */
void events_listening (const struct events *ev, const char *host, uint16_t port);

/* A TCP connection was accepted from peer. */
void events_connected (const struct events *ev, const char *peer);

/* A HELLO was accepted; mode is "new", "resume", "prepared" or "final".
 * kept_bytes: a new migration kept the kept_bytes its outputs held for
 * the sender to compare against ("kept":true; 0: nothing kept).
 * compare_only: the session only compares ("compare_only":true). */
void events_hello (const struct events *ev, const char *peer, const char *output,
                   const char *migration_id, const char *mode,
                   uint64_t image_size, uint32_t block_size, uint64_t durable_seq,
                   uint64_t kept_bytes, bool compare_only);

/* The byte counts of a pass, or of a whole session: DATA bytes written,
 * bytes zeroed, and the hash requests answered with the bytes they
 * hashed. */
struct events_counts {
  uint64_t bytes_received;
  uint64_t bytes_zeroed;
  uint64_t hash_requests;
  uint64_t bytes_hashed;
  uint64_t wire_bytes;          /* read from the socket; 0: not reported */
};

void events_pass_begin (const struct events *ev, const char *peer,
                        uint32_t pass, uint64_t bytes);
void events_pass_end (const struct events *ev, const char *peer, uint32_t pass,
                      const struct events_counts *counts);

/* A compare-only session ended: what it hashed, and for how long.  It
 * changed nothing. */
void events_compare (const struct events *ev, const char *peer, const char *output,
                     uint64_t hash_requests, uint64_t bytes_hashed, double seconds);

/* The image is complete and durable and recorded as prepared; COMMITTED
 * is on its way.  It is not final until the sender reports the flip. */
void events_commit (const struct events *ev, const char *peer, const char *output,
                    uint64_t seq);

/* The sender reported what became of the source after the commit
 * (outcome "flipped" or "thawed"), and the destination is now recorded in
 * state ("final", "superseded", or "incomplete" when no commit was
 * recorded). */
void events_outcome (const struct events *ev, const char *peer, const char *output,
                     const char *outcome, const char *state, uint64_t seq);

/* Summary of a migration that became final: bytes_received of DATA
 * payload and bytes_zeroed by ZERO on this connection, wire_bytes read
 * from its socket (headers and TLS records included), in seconds. */
void events_done (const struct events *ev, const char *peer, const char *output,
                  const struct events_counts *counts, double seconds);

/* Stopped by signal (SIGINT/SIGTERM) while serving the final image with
 * --export: the end of a successful run, logged as such and emitted as
 * {"event":"stopped"}. */
void events_stopped (const struct events *ev, const char *signal_name,
                     const char *output, const char *migration_id);

/* An error: logged with log_error and emitted as {"event":"error"}.
 * peer may be NULL when no connection is concerned; code is a wire error
 * code (enum wire_error_code) or 0 when none applies. */
void events_error (const struct events *ev, const char *peer, uint32_t code,
                   const char *fmt, ...) __attribute__((format (printf, 4, 5)));

/* The sender sent ERROR (code) or ABORT (is_abort) with text_len bytes
 * of text, while migrating into output: reported as an error, with the
 * reason for the disconnection put in reason. */
void events_peer_error (const struct events *ev, const char *peer,
                        const char *output, bool is_abort, uint32_t code,
                        uint32_t text_len, const char *text,
                        char *reason, size_t reason_len);

/* A warning worth a line on stderr but no JSON event (a refused extra
 * connection, say). */
void events_warning (const struct events *ev, const char *fmt, ...)
  __attribute__((format (printf, 2, 3)));

/* A connection ended; reason says why, in words. */
void events_disconnected (const struct events *ev, const char *peer, const char *reason);

#endif /* STM_RECEIVER_EVENTS_H */
