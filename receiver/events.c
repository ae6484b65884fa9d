/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the stderr messages and --json events, one function per event.
 *
 * See events.h.  The JSON line is built in memory and written with a single
 * write per line, so a reader never sees half an event.  A failure to write
 * the JSON stream (a closed pipe, say) is not fatal to the migration: the
 * data path must not depend on whoever watches it.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "events.h"
#include "human_units.h"
#include "json_writer.h"
#include "log.h"
#include "wire.h"

void
events_init (struct events *ev, bool json, FILE *json_out)
{
  ev->json = json;
  ev->json_out = json_out;
}

/* Finish and print a JSON line, ignoring write errors (see above). */
static void
emit (const struct events *ev, struct json_line *j)
{
  (void) json_line_emit (j, ev->json_out);
}

void
events_listening (const struct events *ev, const char *host, uint16_t port)
{
  /* An IPv6 address is bracketed so the port stays unambiguous. */
  if (strchr (host, ':') != NULL)
    log_info ("listening on [%s]:%u", host, (unsigned) port);
  else
    log_info ("listening on %s:%u", host, (unsigned) port);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "listening", time_unix_now ());
    json_line_add_string (&j, "host", host);
    json_line_add_u64 (&j, "port", port);
    emit (ev, &j);
  }
}

void
events_connected (const struct events *ev, const char *peer)
{
  log_info ("connection from %s", peer);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "connected", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    emit (ev, &j);
  }
}

void
events_hello (const struct events *ev, const char *peer, const char *output,
              const char *migration_id, const char *mode,
              uint64_t image_size, uint32_t block_size, uint64_t durable_seq,
              uint64_t kept_bytes, bool compare_only)
{
  char kept[32];

  if (compare_only)
    log_info ("%s: comparing %s with migration %s (%" PRIu64 " bytes): "
              "nothing is recorded or changed", peer, output, migration_id,
              image_size);
  else
    log_info ("%s: migration %s into %s: %s, %" PRIu64 " bytes, block %" PRIu32
              ", durable seq %" PRIu64,
              peer, migration_id, output, mode, image_size, block_size, durable_seq);
  if (kept_bytes > 0) {
    format_bytes (kept, sizeof kept, (double) kept_bytes);
    log_info ("%s: keeping the %s that %s holds to compare against", peer,
              kept, output);
  }
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "hello", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_string (&j, "migration_id", migration_id);
    json_line_add_string (&j, "mode", mode);
    json_line_add_u64 (&j, "size", image_size);
    json_line_add_u64 (&j, "block", block_size);
    json_line_add_u64 (&j, "durable_seq", durable_seq);
    json_line_add_string (&j, "output", output);
    if (kept_bytes > 0)
      json_line_add_bool (&j, "kept", true);
    if (compare_only)
      json_line_add_bool (&j, "compare_only", true);
    emit (ev, &j);
  }
}

void
events_pass_begin (const struct events *ev, const char *peer,
                   uint32_t pass, uint64_t bytes)
{
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "pass_begin", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_u64 (&j, "pass", pass);
    json_line_add_u64 (&j, "bytes", bytes);
    emit (ev, &j);
  }
}

/* The counts' JSON fields; the hash counts only when something was
 * hashed, so a migration that does not compare reports as before. */
static void
add_counts (struct json_line *j, const struct events_counts *counts)
{
  json_line_add_u64 (j, "bytes_received", counts->bytes_received);
  json_line_add_u64 (j, "bytes_zeroed", counts->bytes_zeroed);
  if (counts->hash_requests > 0) {
    json_line_add_u64 (j, "hash_requests", counts->hash_requests);
    json_line_add_u64 (j, "bytes_hashed", counts->bytes_hashed);
  }
  if (counts->wire_bytes > 0)
    json_line_add_u64 (j, "wire_bytes", counts->wire_bytes);
}

void
events_pass_end (const struct events *ev, const char *peer, uint32_t pass,
                 const struct events_counts *counts)
{
  if (counts->hash_requests > 0)
    log_info ("%s: pass %" PRIu32 " received: %" PRIu64 " bytes of data, %"
              PRIu64 " bytes zeroed; %" PRIu64 " bytes hashed in %" PRIu64
              " requests", peer, pass, counts->bytes_received,
              counts->bytes_zeroed, counts->bytes_hashed, counts->hash_requests);
  else
    log_info ("%s: pass %" PRIu32 " received: %" PRIu64 " bytes of data, %"
              PRIu64 " bytes zeroed", peer, pass, counts->bytes_received,
              counts->bytes_zeroed);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "pass_end", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_u64 (&j, "pass", pass);
    add_counts (&j, counts);
    emit (ev, &j);
  }
}

void
events_commit (const struct events *ev, const char *peer, const char *output,
               uint64_t seq)
{
  log_info ("%s: prepared: %s is complete and durable; it becomes final when "
            "the sender reports that the source has flipped to it", peer, output);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "commit", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_u64 (&j, "seq", seq);
    json_line_add_string (&j, "output", output);
    json_line_add_string (&j, "state", "prepared");
    emit (ev, &j);
  }
}

void
events_outcome (const struct events *ev, const char *peer, const char *output,
                const char *outcome, const char *state, uint64_t seq)
{
  log_info ("%s: the source %s: %s is %s", peer,
            strcmp (outcome, "flipped") == 0 ? "has flipped to this destination"
            : "was thawed and stays authoritative", output, state);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "outcome", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_string (&j, "outcome", outcome);
    json_line_add_string (&j, "state", state);
    json_line_add_u64 (&j, "seq", seq);
    json_line_add_string (&j, "output", output);
    emit (ev, &j);
  }
}

void
events_done (const struct events *ev, const char *peer, const char *output,
             const struct events_counts *counts, double seconds)
{
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "done", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_string (&j, "output", output);
    add_counts (&j, counts);
    json_line_add_double (&j, "seconds", seconds);
    emit (ev, &j);
  }
}

void
events_compare (const struct events *ev, const char *peer, const char *output,
                uint64_t hash_requests, uint64_t bytes_hashed, double seconds)
{
  log_info ("%s: compared %s: %" PRIu64 " bytes hashed in %" PRIu64
            " requests in %.1f s; nothing was changed", peer, output,
            bytes_hashed, hash_requests, seconds);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "compare", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_string (&j, "output", output);
    json_line_add_u64 (&j, "hash_requests", hash_requests);
    json_line_add_u64 (&j, "bytes_hashed", bytes_hashed);
    json_line_add_double (&j, "seconds", seconds);
    emit (ev, &j);
  }
}

void
events_stopped (const struct events *ev, const char *signal_name,
                const char *output, const char *migration_id)
{
  log_info ("stopped by %s: the export of %s ends; migration %s is final and "
            "the image stays the guest's disk", signal_name, output, migration_id);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "stopped", time_unix_now ());
    json_line_add_string (&j, "signal", signal_name);
    json_line_add_string (&j, "output", output);
    json_line_add_string (&j, "migration_id", migration_id);
    json_line_add_string (&j, "state", "final");
    emit (ev, &j);
  }
}

void
events_error (const struct events *ev, const char *peer, uint32_t code,
              const char *fmt, ...)
{
  char message[WIRE_MAX_TEXT + 1];
  va_list args;

  va_start (args, fmt);
  vsnprintf (message, sizeof message, fmt, args);
  va_end (args);

  if (peer)
    log_error ("%s: %s", peer, message);
  else
    log_error ("%s", message);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "error", time_unix_now ());
    if (peer)
      json_line_add_string (&j, "peer", peer);
    if (code != 0)
      json_line_add_string (&j, "code", wire_error_code_name (code));
    json_line_add_string (&j, "message", message);
    emit (ev, &j);
  }
}

void
events_peer_error (const struct events *ev, const char *peer, const char *output,
                   bool is_abort, uint32_t code, uint32_t text_len, const char *text,
                   char *reason, size_t reason_len)
{
  if (is_abort) {
    events_error (ev, peer, WIRE_ERR_ABORTED,
                  "the sender aborted the migration into %s (%s): %.*s",
                  output, wire_error_code_name (code), (int) text_len, text);
    snprintf (reason, reason_len, "aborted by the sender: %.*s",
              (int) text_len, text);
  }
  else {
    events_error (ev, peer, code,
                  "the sender reported an error (%s) migrating into %s: %.*s",
                  wire_error_code_name (code), output, (int) text_len, text);
    snprintf (reason, reason_len, "error from the sender: %.*s",
              (int) text_len, text);
  }
}

void
events_warning (const struct events *ev, const char *fmt, ...)
{
  char message[WIRE_MAX_TEXT + 1];
  va_list args;

  va_start (args, fmt);
  vsnprintf (message, sizeof message, fmt, args);
  va_end (args);
  log_warning ("%s", message);
}

void
events_disconnected (const struct events *ev, const char *peer, const char *reason)
{
  log_info ("%s: disconnected: %s", peer, reason);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "disconnected", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_string (&j, "reason", reason);
    emit (ev, &j);
  }
}
