/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: setting up the disks of a migration before the loop runs
 * (see setup.h).
 *
 * For each disk: the source through the filter (libnbd), a second
 * connection to time flushes, the owning control connection (blocking
 * until the loop runs, then handed to the asynchronous channel), a second
 * control connection for looking at the dirty set during a pass, and the
 * checks that the filter and the source agree.  Then the migration id,
 * from what the filters said: the one-disk form keeps its derivation, so
 * that a migration started by an earlier stm-send still resumes; a group
 * of named disks has its own (migration_id.h).
 *
 * A disk that cannot be set up fails the whole migration before anything
 * was frozen or reset: every source stays as it was.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "migration_id.h"
#include "pass.h"
#include "mirror_stream.h"
#include "setup.h"

void
setup_error (struct migration *m, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (m->cut.flipped) {
    /* Run again after its flip: the source has flipped for this very
     * migration, so the exit status is 0 whatever failed here. */
    log_warning ("%s; the source%s at %s had already flipped for migration %s, so "
                 "the destination is authoritative, but whether the receiver "
                 "recorded it final could not be checked: run stm-send again "
                 "once the receiver is reachable", msg, m->ndisks > 1 ? "s" : "",
                 m->disks[0].control_path, m->migration_id_hex);
    m->exit_code = 0;
    /* Nothing was copied by this run. */
    struct byte_counts none = { 0 };
    progress_done (&m->progress, &none, 0, 0, 0., "unknown", NULL, NULL);
    return;
  }
  log_error ("%s; %s", msg, m->ndisks > 1
             ? "every disk's source is unchanged and remains authoritative"
             : "the source is unchanged and remains authoritative");
  progress_error (&m->progress, msg, "thawed");
}

static void refuse_source_state (struct migration *m, const char *state,
                                 const char *fmt, ...)
  __attribute__((format (printf, 3, 4)));

/* The source is in a state no migration can start from (state as STATUS
 * names it): say so, and report that state as the source's. */
static void
refuse_source_state (struct migration *m, const char *state, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  log_error ("%s", msg);
  progress_error (&m->progress, msg, state);
}

/* From here on the loop runs: the start-up connection, which the filter
 * knows as the migration's owner, becomes the asynchronous channel. */
static int
hand_over_control (struct migration_disk *d)
{
  struct migration *m = d->m;
  int cfd = control_client_release_fd (d->control);
  if (cfd == -1 ||
      (d->ctl = control_channel_new (m->loop, cfd, MIGRATION_CONTROL_TIMEOUT_MS,
                                     control_client_slow_timeout_ms (d->control))) == NULL) {
    if (cfd >= 0)
      close (cfd);
    setup_error (m, "cannot hand the control connection to %s over to the event "
                 "loop: %s", d->control_path, cfd == -1 ? "it is out of step"
                 : "out of memory");
    return -1;
  }
  control_client_close (d->control);
  d->control = NULL;
  return 0;
}

/* Open disk d's connections and read its filter's status into d->st.
 * -1 after setup_error. */
static int
open_disk (struct migration_disk *d)
{
  struct migration *m = d->m;
  char err[512], filter[PATH_MAX + 64];

  migration_disk_filter (d, filter, sizeof filter);
  /* The source first: the filter learns the image size when the first NBD
   * client connects, and answers EAGAIN until then. */
  d->reader = source_reader_open (d->source_uri, err, sizeof err);
  if (d->reader == NULL) {
    setup_error (m, "cannot connect to the source %s: %s", d->source_uri, err);
    return -1;
  }
  /* A second connection only to time flushes for the downtime prediction;
   * without it the prediction leaves the flush out until the first FREEZE
   * measured one. */
  d->flush_probe = flush_probe_open (d->source_uri, err, sizeof err);
  if (d->flush_probe == NULL)
    log_warning ("cannot open a second connection to the source %s to time "
                 "flushes (%s): the downtime prediction will not include "
                 "the flush", d->source_uri, err);

  d->control = control_client_connect (d->control_path, MIGRATION_CONTROL_TIMEOUT_MS,
                                       err, sizeof err);
  if (d->control == NULL) {
    setup_error (m, "cannot connect to the filter's control socket %s: %s",
                 d->control_path, err);
    return -1;
  }
  /* A second connection, for looking at the dirty set during a pass
   * without blocking the loop; without it, the passes run unwatched and
   * are judged at their ends only. */
  d->poller = status_poller_open (m->loop, d->control_path, pass_on_status, d,
                                  err, sizeof err);
  if (d->poller == NULL)
    log_warning ("cannot open a second connection to the filter's control "
                 "socket %s (%s): the dirty set is looked at only at the end "
                 "of each pass", d->control_path, err);
  struct control_status *st = &d->st;
  if (control_status (d->control, st) == -1) {
    setup_error (m, "cannot read the status of %s: %s", filter,
                 control_client_error (d->control));
    return -1;
  }
  if (st->size != source_reader_size (d->reader)) {
    setup_error (m, "%s reports an image of %" PRIu64 " bytes but the source %s has %"
                 PRIu64 " bytes: is this the right control socket?", filter, st->size,
                 d->source_uri, source_reader_size (d->reader));
    return -1;
  }
  if (st->block < WIRE_MIN_BLOCK || st->block > WIRE_MAX_BLOCK) {
    setup_error (m, "%s uses a block size of %" PRIu32 " bytes, outside what the "
                 "wire protocol carries", filter, st->block);
    return -1;
  }
  /* Frozen by somebody else (another stm-send, or by hand): the commands
   * of a migration belong to the freeze's owner, so nothing could start;
   * and the source is not ours to thaw. */
  if (strcmp (st->state, "frozen") == 0) {
    refuse_source_state (m, st->state, "%s is frozen by another control connection "
                         "(another stm-send, or a client by hand): its guest writes "
                         "are held until that connection thaws it or closes; nothing "
                         "was changed", filter);
    return -1;
  }
  d->size = st->size;
  d->block = st->block;
  /* FREEZE and FLIP run within the filter's freeze timeout, which may be
   * longer than MIGRATION_CONTROL_TIMEOUT_MS: do not give up on a reply
   * the filter is still entitled to be working on. */
  control_client_set_freeze_timeout (d->control, st->freeze_timeout_ms);
  return 0;
}

/* --converge mirror|mirror-sync: have d's filter hand every guest write
 * over through a ring from now on (mirror_stream.h).  It is the owning
 * connection's, and goes with it: if stm-send dies, the filter turns what
 * the ring held and the destination did not have durable into dirty
 * blocks.  -1 after setup_error. */
static int
start_mirror (struct migration_disk *d)
{
  struct migration *m = d->m;
  const struct sender_options *o = m->opts;
  bool sync = o->converge == CONVERGE_MIRROR_SYNC;
  char filter[PATH_MAX + 64];
  int fds[3];

  migration_disk_filter (d, filter, sizeof filter);
  if (control_client_mirror_start (d->control, o->mirror_ring, sync,
                                   o->mirror_wait_ms, fds) == -1) {
    setup_error (m, "cannot start mirroring guest writes through %s: %s; the "
                 "source keeps tracking, nothing was changed", filter,
                 control_client_error (d->control));
    return -1;
  }
  if (mirror_stream_map (d, fds) == -1) {
    setup_error (m, "cannot map the mirror ring %s handed over: %s; the source "
                 "keeps tracking, and the ring goes when stm-send exits", filter,
                 strerror (errno));
    return -1;
  }
  mirror_stream_start (d);
  return 0;
}

/* The migration id, from what every filter said.  -1 after setup_error. */
static int
derive_id (struct migration *m)
{
  const struct sender_options *o = m->opts;
  int r;

  if (!m->named) {
    struct migration_id_inputs in = {
      .filter_instance = m->disks[0].st.instance, .image_size = m->disks[0].size,
      .dest = o->dest,
    };
    r = migration_id_derive (&in, m->migration_id);
  }
  else {
    struct migration_id_disk disks[WIRE_MAX_DISKS];
    for (uint32_t i = 0; i < m->ndisks; i++)
      disks[i] = (struct migration_id_disk) {
        .name = m->disks[i].name, .filter_instance = m->disks[i].st.instance,
        .image_size = m->disks[i].size,
      };
    r = migration_id_derive_group (disks, m->ndisks, o->dest, m->migration_id);
  }
  if (r == -1) {
    setup_error (m, "cannot derive the migration id from the filter%s at %s "
                 "(instance id \"%s\")", m->ndisks > 1 ? "s" : "",
                 m->disks[0].control_path, m->disks[0].st.instance);
    return -1;
  }
  migration_id_hex (m->migration_id, m->migration_id_hex);
  return 0;
}

/* Has the group already flipped for this migration (a stm-send of it
 * flipped and did not live to record it)?  0: no disk has; 1: every disk
 * has, for this migration; -1 after refusing (a disk flipped for another
 * migration, or only some disks flipped). */
static int
flipped_before (struct migration *m)
{
  uint32_t flipped = 0;
  char filter[PATH_MAX + 64];

  for (uint32_t i = 0; i < m->ndisks; i++) {
    const struct control_status *st = &m->disks[i].st;
    if (strcmp (st->state, "fenced") != 0 && strcmp (st->state, "forwarding") != 0)
      continue;
    migration_disk_filter (&m->disks[i], filter, sizeof filter);
    if (strcmp (st->migration, m->migration_id_hex) != 0) {
      m->exit_code = STM_SEND_EXIT_UNKNOWN;
      refuse_source_state (m, st->state, "%s has already flipped (state %s) for "
                           "migration %s, not this one (%s): the source was migrated "
                           "elsewhere and this nbdkit process no longer serves it",
                           filter, st->state, st->migration, m->migration_id_hex);
      return -1;
    }
    flipped++;
  }
  if (flipped != 0 && flipped != m->ndisks) {
    m->exit_code = STM_SEND_EXIT_UNKNOWN;
    refuse_source_state (m, "split", "only %" PRIu32 " of the %" PRIu32 " disks of "
                         "migration %s have flipped (an earlier stm-send stopped in "
                         "the middle of the group's flip): the complete set of disks "
                         "is on %s, recorded prepared; stop the guest's sources that "
                         "still serve and run the guest from the destination's set",
                         flipped, m->ndisks, m->migration_id_hex, m->opts->dest);
    return -1;
  }
  return flipped == 0 ? 0 : 1;
}

int
setup_disks (struct migration *m)
{
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (open_disk (&m->disks[i]) == -1)
      return -1;
  m->size = 0;
  m->block = m->disks[0].block;
  m->meas.dirty_bytes = 0;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    m->size += m->disks[i].size;
    if (m->disks[i].block < m->block)
      m->block = m->disks[i].block;
    m->meas.dirty_bytes += m->disks[i].st.dirty_bytes;
  }
  if (derive_id (m) == -1)
    return -1;
  int flipped = flipped_before (m);
  if (flipped == -1)
    return -1;
  if (flipped == 1) {
    /* Connect only to record the outcome on the receiver. */
    m->cut.flipped = true;
    m->cut.flipped_at_start = true;
  }
  if (flipped == 0 && convergence_mirrors (m->opts->converge))
    for (uint32_t i = 0; i < m->ndisks; i++)
      if (start_mirror (&m->disks[i]) == -1)
        return -1;
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (hand_over_control (&m->disks[i]) == -1)
      return -1;
  return 0;
}
