/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: comparing a pass instead of copying it (see compare_pass.h). */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "block_hash.h"
#include "compare_pass.h"
#include "log.h"
#include "migration.h"

/* Make room for disk d's comparison.  -1 on out of memory. */
static int
disk_compare_alloc (struct migration_disk *d)
{
  struct disk_compare *c = &d->cmp;
  if (c->win == NULL)
    c->win = malloc (sizeof *c->win);
  if (c->src == NULL)
    c->src = malloc (HASH_WINDOW_MAX_HASHES * WIRE_HASH_LEN);
  if (c->win == NULL || c->src == NULL)
    return -1;
  hash_window_reset (c->win);
  c->unit = compare_pass_unit (d->block);
  return 0;
}

int
compare_pass_send_key (struct migration *m)
{
  char err[256];
  uint8_t frame[WIRE_ENCODE_MAX];

  if (m->hash_key_sent)
    return 0;
  if (block_hash_new_key (m->hash_key, err, sizeof err) == -1) {
    migration_fail (m, "%s for the comparison with %s", err, m->opts->dest);
    return -1;
  }
  if (migration_send_msg (m, frame, wire_encode_hash_key (frame, m->hash_key)) == -1)
    return -1;
  m->hash_key_sent = true;
  return 0;
}

int
compare_pass_prepare (struct migration_disk *d)
{
  if (disk_compare_alloc (d) == -1) {
    migration_fail (d->m, "out of memory");
    return -1;
  }
  return 0;
}

int
compare_pass_on_hello (struct migration *m, const struct wire_hello_reply *r,
                       bool resumed)
{
  bool kept = (r->features & WIRE_FEATURE_KEPT) != 0;
  bool any = false;

  m->receiver_hashes = (r->features & WIRE_FEATURE_HASH) != 0;
  m->hash_key_sent = false;
  if (m->opts->verify && !m->receiver_hashes) {
    migration_fail (m, "--verify: the receiver at %s cannot compare hashes (an older "
                    "stm-recv?), so the copy could not be verified; nothing was "
                    "changed", m->opts->dest);
    return -1;
  }
  if (kept && !m->receiver_hashes) {
    /* It would hold old data that nothing compares: a block left out of
     * the pass would stay old. */
    migration_fail (m, "the receiver at %s kept the data its outputs held but does "
                    "not compare hashes; refusing to migrate into data that would "
                    "not be checked", m->opts->dest);
    return -1;
  }
  if (m->opts->compare && !m->receiver_hashes)
    log_warning ("--compare: the receiver at %s cannot compare hashes (an older "
                 "stm-recv?); everything is copied", m->opts->dest);
  bool wanted = compare_pass_wanted (m->receiver_hashes, kept, resumed);
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    d->cmp.next = wanted;
    d->cmp.on = false;
    if (wanted && disk_compare_alloc (d) == -1) {
      migration_fail (m, "out of memory");
      return -1;
    }
    any |= wanted;
  }
  if (!any)
    return 0;
  if (compare_pass_send_key (m) == -1)
    return -1;
  log_info ("comparing the first pass with what %s holds (%s): only the blocks "
            "that differ are sent", m->opts->dest,
            kept ? "it kept the data its outputs held" : "an earlier run of this migration");
  return 0;
}

void
compare_pass_begin (struct migration *m)
{
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct disk_compare *c = &m->disks[i].cmp;
    c->on = c->next;
    c->next = false;
  }
}

bool
compare_pass_on (const struct migration_disk *d)
{
  return d->cmp.on;
}

int
compare_pass_issued (struct migration_disk *d, uint64_t offset, uint32_t length)
{
  return d->cmp.on ? compare_pass_ask (d, offset, length) : 0;
}

int
compare_pass_ask (struct migration_disk *d, uint64_t offset, uint32_t length)
{
  struct disk_compare *c = &d->cmp;
  uint8_t frame[WIRE_ENCODE_MAX];

  /* One request per read slot, and a read has a slot. */
  assert (hash_window_can_push (c->win));
  if (migration_send_msg (d->m, frame, wire_encode_hash_req (frame, d->index, offset,
                                                             length, c->unit)) == -1)
    return -1;
  hash_window_push (c->win, offset, length, c->unit);
  return 0;
}

bool
compare_pass_can_deliver (struct migration_disk *d, uint64_t offset, uint32_t length)
{
  return d->cmp.win == NULL || !hash_window_waiting (d->cmp.win, offset, length);
}

const struct hash_request *
compare_pass_take (struct migration_disk *d, uint64_t offset, uint32_t length,
                   const void *buf, const uint8_t **src_hashes)
{
  struct disk_compare *c = &d->cmp;
  char err[256];

  if (c->win == NULL)
    return NULL;
  const struct hash_request *req = hash_window_take (c->win, offset, length);
  if (req == NULL)
    return NULL;
  if (block_hash_units (d->m->hash_key, offset, buf, length, req->unit, c->src,
                        err, sizeof err) == -1) {
    migration_fail (d->m, "%s of the source %s at offset %" PRIu64, err,
                    d->source_uri, offset);
    return NULL;
  }
  *src_hashes = c->src;
  return req;
}

void
compare_pass_on_hashes (struct migration *m, const struct wire_msg *msg)
{
  struct migration_disk *d = &m->disks[msg->disk];
  const char *why;

  /* The decoder bounded the disk index by the HELLO's disks. */
  assert (msg->disk < m->ndisks);
  if (d->cmp.win == NULL ||
      hash_window_answer (d->cmp.win, msg->u.hash.offset, msg->u.hash.length,
                          msg->u.hash.unit, msg->u.hash.hashes, &why) == -1) {
    migration_fail (m, "the receiver at %s broke the protocol: %s (offset %" PRIu64
                    ", %" PRIu32 " bytes)", m->opts->dest,
                    d->cmp.win == NULL ? "HASHES that nobody asked for" : why,
                    msg->u.hash.offset, msg->u.hash.length);
    return;
  }
  source_reader_deliver (d->reader);
}

void
compare_pass_count (struct migration_disk *d, uint64_t length, bool differs)
{
  d->cmp.compared += length;
  if (differs)
    d->cmp.differing += length;
}

void
compare_pass_abandon (struct migration *m)
{
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct disk_compare *c = &m->disks[i].cmp;
    c->on = c->next = false;
    if (c->win != NULL)
      hash_window_reset (c->win);
  }
}

void
compare_pass_free (struct migration_disk *d)
{
  free (d->cmp.win);
  free (d->cmp.src);
  d->cmp.win = NULL;
  d->cmp.src = NULL;
}
