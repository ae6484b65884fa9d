/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --verify: the whole of every disk compared at the freeze (see
 * verify.h). */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "compare_pass.h"
#include "log.h"
#include "time_units.h"
#include "verify.h"

/* Differing ranges reported one by one before the rest are only
 * counted, so a destination that differs everywhere cannot flood a log. */
#define VERIFY_MAX_REPORTED 1000

void
verify_free (struct migration_disk *d)
{
  if (d->verify_diff_on)
    compare_diff_free (&d->verify_diff);
  d->verify_diff_on = false;
}

void
verify_begin (struct migration *m, void (*verified) (struct migration *m))
{
  migration_set_phase (m, PHASE_VERIFYING);
  m->verify_start_ns = time_monotonic_ns ();
  m->verified = verified;
  if (compare_pass_send_key (m) == -1)
    return;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    verify_free (d);
    if (compare_pass_prepare (d) == -1)
      return;
    if (compare_diff_init (&d->verify_diff, d->size, d->cmp.unit) == -1) {
      migration_fail (m, "out of memory for --verify's map of %s", d->source_uri);
      return;
    }
    d->verify_diff_on = true;
    d->verify_next = 0;
  }
  log_info ("--verify: comparing the frozen source with %s before the commit",
            m->opts->dest);
  verify_pump (m);
}

/* Every disk compared: go on, or fail naming what differs. */
static void
verify_end (struct migration *m)
{
  uint64_t bytes = 0, differing = 0, ranges = 0, reported = 0;
  char first[256] = "";

  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    uint64_t cursor = 0, offset, length;
    while (compare_diff_next (&d->verify_diff, &cursor, &offset, &length)) {
      if (ranges == 0)
        snprintf (first, sizeof first, "%s%s%soffset %" PRIu64 " (%" PRIu64 " bytes)",
                  d->name ? "disk " : "", d->name ? d->name : "", d->name ? " at " : "",
                  offset, length);
      if (reported++ < VERIFY_MAX_REPORTED)
        progress_difference (&m->progress, d->name, offset, length);
      ranges++;
      differing += length;
    }
    bytes += d->size;
  }
  double seconds = (double) (time_monotonic_ns () - m->verify_start_ns) / NS_PER_S;
  progress_verified (&m->progress, bytes, differing, ranges, seconds);
  for (uint32_t i = 0; i < m->ndisks; i++)
    verify_free (&m->disks[i]);
  if (ranges > 0) {
    migration_fail (m, "--verify: the destination %s differs from the frozen source in "
                    "%" PRIu64 " range%s (%" PRIu64 " bytes; the first at %s); nothing "
                    "was committed", m->opts->dest, ranges, ranges == 1 ? "" : "s",
                    differing, first);
    return;
  }
  log_info ("--verify: %" PRIu64 " bytes compared in %.2f s: the destination %s is "
            "identical to the frozen source", bytes, seconds, m->opts->dest);
  m->verified (m);
}

void
verify_pump (struct migration *m)
{
  bool all_done = true;
  char err[256];

  if (m->phase != PHASE_VERIFYING)
    return;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    while (d->verify_next < d->size && source_reader_can_issue (d->reader)) {
      uint64_t left = d->size - d->verify_next;
      uint32_t len = left < SOURCE_READER_CHUNK ? (uint32_t) left : SOURCE_READER_CHUNK;
      if (source_reader_issue (d->reader, d->verify_next, len, err, sizeof err) == -1) {
        migration_fail (m, "--verify: cannot read the source %s at offset %" PRIu64
                        ": %s", d->source_uri, d->verify_next, err);
        return;
      }
      if (compare_pass_ask (d, d->verify_next, len) == -1)
        return;
      d->verify_next += len;
    }
    if (d->verify_next < d->size || source_reader_in_flight (d->reader) > 0)
      all_done = false;
  }
  if (all_done)
    verify_end (m);
}

void
verify_on_read (struct migration_disk *d, uint64_t offset, uint32_t length,
                const void *buf, int err)
{
  struct migration *m = d->m;
  const uint8_t *src = NULL;

  if (err) {
    migration_fail (m, "--verify: cannot read the source %s at offset %" PRIu64
                    " (%" PRIu32 " bytes): %s", d->source_uri, offset, length,
                    strerror (err));
    return;
  }
  const struct hash_request *req = compare_pass_take (d, offset, length, buf, &src);
  if (req == NULL) {
    /* Every read of the verification asked for its hashes. */
    if (!migration_ended (m))
      migration_fail (m, "internal error: --verify read %" PRIu64 " of %s without "
                      "its hashes", offset, d->source_uri);
    return;
  }
  for (uint64_t from = offset; from < offset + length; ) {
    bool differs;
    uint64_t end = compare_run_end (req, src, from, offset + length, &differs);
    if (differs)
      compare_diff_mark (&d->verify_diff, from, end - from);
    from = end;
  }
}
