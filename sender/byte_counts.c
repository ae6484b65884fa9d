/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: a migration's byte counts (see byte_counts.h). */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#include "byte_counts.h"
#include "human_units.h"

void
byte_counts_add_data (struct byte_counts *c, uint64_t payload, uint64_t sent)
{
  c->copied += payload;
  c->sent += sent;
}

void
byte_counts_add_zero (struct byte_counts *c, uint64_t length)
{
  c->zeroed += length;
}

void
byte_counts_json (struct json_line *j, const struct byte_counts *c, bool with_wire)
{
  /* bytes_sent first, where the events had it before the others came. */
  json_line_add_u64 (j, "bytes_sent", c->sent);
  json_line_add_u64 (j, "bytes_copied", c->copied);
  json_line_add_u64 (j, "bytes_zeroed", c->zeroed);
  json_line_add_u64 (j, "bytes_compared", c->compared);
  if (with_wire)
    json_line_add_u64 (j, "wire_bytes", c->wire);
}

size_t
byte_counts_disk_fields (char *buf, size_t len, const struct byte_counts *c)
{
  int n = snprintf (buf, len, ",\"bytes_sent\":%" PRIu64 ",\"bytes_copied\":%" PRIu64
                    ",\"bytes_zeroed\":%" PRIu64 ",\"bytes_compared\":%" PRIu64,
                    c->sent, c->copied, c->zeroed, c->compared);
  if (n < 0)
    return 0;
  return (size_t) n < len ? (size_t) n : len - 1;
}

const char *
byte_counts_format (char *buf, size_t len, const struct byte_counts *c)
{
  char copied[32], zeroed[32], sent[32], wire[32];

  format_bytes (copied, sizeof copied, (double) c->copied);
  format_bytes (zeroed, sizeof zeroed, (double) c->zeroed);
  format_bytes (sent, sizeof sent, (double) c->sent);
  format_bytes (wire, sizeof wire, (double) c->wire);
  snprintf (buf, len, "copied %s, zeroed %s, sent %s, wire %s", copied, zeroed, sent, wire);
  return buf;
}
