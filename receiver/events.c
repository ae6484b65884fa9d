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
#include "json_writer.h"
#include "log.h"
#include "time_units.h"
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
              uint64_t image_size, uint32_t block_size, uint64_t durable_seq)
{
  log_info ("%s: migration %s into %s: %s, %" PRIu64 " bytes, block %" PRIu32
            ", durable seq %" PRIu64,
            peer, migration_id, output, mode, image_size, block_size, durable_seq);
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

void
events_pass_end (const struct events *ev, const char *peer, uint32_t pass,
                 uint64_t bytes_received, uint64_t bytes_zeroed)
{
  log_info ("%s: pass %" PRIu32 " received: %" PRIu64 " bytes of data, %"
            PRIu64 " bytes zeroed", peer, pass, bytes_received, bytes_zeroed);
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "pass_end", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_u64 (&j, "pass", pass);
    json_line_add_u64 (&j, "bytes_received", bytes_received);
    json_line_add_u64 (&j, "bytes_zeroed", bytes_zeroed);
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
             uint64_t bytes_received, uint64_t bytes_zeroed, uint64_t wire_bytes,
             uint64_t elapsed_ns)
{
  if (ev->json) {
    struct json_line j;
    json_line_begin (&j, "done", time_unix_now ());
    json_line_add_string (&j, "peer", peer);
    json_line_add_string (&j, "output", output);
    json_line_add_u64 (&j, "bytes_received", bytes_received);
    json_line_add_u64 (&j, "bytes_zeroed", bytes_zeroed);
    json_line_add_u64 (&j, "wire_bytes", wire_bytes);
    json_line_add_double (&j, "seconds", (double) elapsed_ns / NS_PER_S);
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
