/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: what a migration moved, in the four counts its events and its
 * summary report, and how they are written.
 *
 * A range of the source goes to the receiver either as DATA (its bytes)
 * or as ZERO (a few bytes that say "these are zeroes"), so the length of
 * the range says nothing about what crossed the link.  The counts keep
 * the two apart: bytes_copied is DATA payload as read from the source,
 * bytes_zeroed the ranges sent as ZERO, bytes_sent the DATA payload as it
 * went into the messages (smaller than bytes_copied once DATA is
 * compressed; the same until then), and wire_bytes every byte written to
 * the socket: frame headers, every message, and under TLS its records.
 * Per disk there is no wire_bytes: one connection carries every disk.
 * bytes_compared, apart, is what a comparing pass compared by hash
 * (compare_pass.h): the part that differed is in bytes_copied too, the
 * rest crossed the link as 16 bytes of hash a unit.
 *
 * Pure: the sender adds to the counts (migration_account_data and
 * migration_account_zero, migration.h) and progress.c writes them.
 */
#ifndef STM_SENDER_BYTE_COUNTS_H
#define STM_SENDER_BYTE_COUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_writer.h"

struct byte_counts {
  uint64_t copied;               /* DATA payload before compression */
  uint64_t zeroed;               /* ranges sent as ZERO */
  uint64_t sent;                 /* DATA payload after compression */
  uint64_t wire;                 /* written to the socket (the group's only) */
  uint64_t compared;             /* compared by hash (compare_pass.c counts) */
};

/* One DATA message: payload bytes read from the source, sent bytes of
 * them in the message. */
void byte_counts_add_data (struct byte_counts *c, uint64_t payload, uint64_t sent);
/* One ZERO message for length bytes. */
void byte_counts_add_zero (struct byte_counts *c, uint64_t length);

/* The counts as event fields: bytes_sent, bytes_copied, bytes_zeroed,
 * bytes_compared, and wire_bytes when with_wire (the group's counts; not
 * a disk's). */
void byte_counts_json (struct json_line *j, const struct byte_counts *c, bool with_wire);
/* The same fields (without wire_bytes) for a disk's object, each with a
 * leading comma, into buf (len bytes, NUL-terminated): at most
 * BYTE_COUNTS_DISK_FIELDS_MAX characters.  Returns the length written. */
#define BYTE_COUNTS_DISK_FIELDS_MAX (14 + 16 + 16 + 18 + 4 * 20)
size_t byte_counts_disk_fields (char *buf, size_t len, const struct byte_counts *c);
/* For people: "copied 1.4 GiB, zeroed 680.0 MiB, sent 1.4 GiB, wire
 * 1.4 GiB" into buf (len bytes, NUL-terminated).  Returns buf. */
const char *byte_counts_format (char *buf, size_t len, const struct byte_counts *c);

#endif /* STM_SENDER_BYTE_COUNTS_H */
