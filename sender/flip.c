/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: after the group commit, flipping every disk (see flip.h).
 *
 * COMMITTED is the point of no return: the receiver holds every disk of
 * the group prepared, complete and durable, in one record.  From here the
 * destination set is the authoritative one.  Every disk's filter is told
 * to FLIP at once (after its CONFIRMs), and the outcome of each is
 * learned: flipped; refused (an ERR reply changes nothing, the source is
 * still frozen, or thawed by itself if the freeze timed out); or, if its
 * control connection broke with FLIP in flight, what a new connection's
 * STATUS says.
 *
 * If every disk flipped, THAW releases what the gates held (to the
 * flip's target) and OUTCOME flipped makes the receiver's record final.
 * If none flipped (and none may have), nothing left the sources: the
 * failure path thaws every disk and the receiver records its copy
 * superseded, as for one disk.  But once any disk may have flipped, no
 * disk may go back to serving from its source, or the guest would run on
 * two halves of two different instants: a disk whose FLIP failed while it
 * is still frozen is fenced instead (FLIP fence needs no network), so
 * that the complete set on the destination is the only one.  Only when
 * every disk is flipped or fenced is OUTCOME flipped sent; a disk that
 * could be neither leaves the group split, which is reported disk by
 * disk, with exit status STM_SEND_EXIT_UNKNOWN and the destination's
 * record left prepared.
 *
 * This file sits between run.c, which calls it at COMMITTED and after a
 * reconnect, and cutover.c (cutover_thaw_all), failure.c and migration.c
 * below it; nothing below calls it.
 */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_proto.h"
#include "flip.h"
#include "ready.h"
#include "forward_target.h"
#include "log.h"
#include "time_units.h"

static void flips_resolved (struct migration *m);
static void flip_succeeded (struct migration *m);

/* For tests of the two-phase commit only: with STM_SEND_TEST_CRASH_AT set
 * to "committed" (COMMITTED received, FLIP not sent) or "flipped" (FLIP
 * answered, nothing sent after it), the process kills itself there, as a
 * crash or kill -9 at that moment would.  Documented in stm-send(1),
 * ENVIRONMENT; nothing else reads it. */
static void
test_crash_point (const char *where)
{
  const char *at = getenv ("STM_SEND_TEST_CRASH_AT");

  if (at != NULL && strcmp (at, where) == 0) {
    fprintf (stderr, "stm-send: STM_SEND_TEST_CRASH_AT=%s: killing myself\n", where);
    raise (SIGKILL);
  }
}

/* One disk's FLIP outcome is known (d->flip): go on once every disk's
 * is. */
static void
disk_resolved (struct migration_disk *d)
{
  if (migration_await_one (d->m))
    flips_resolved (d->m);
}

static void
flip_outcome_read (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  char filter[PATH_MAX + 64];

  if (migration_ended (m))
    return;
  migration_disk_filter (d, filter, sizeof filter);
  if (r->ok) {
    const struct control_status *st = r->status;
    if ((strcmp (st->state, "fenced") == 0 || strcmp (st->state, "forwarding") == 0) &&
        strcmp (st->migration, m->migration_id_hex) == 0) {
      progress_clear (&m->progress);
      log_warning ("the control connection to %s broke with FLIP (%s) in flight "
                   "(%s), but a new connection finds the source %s for this "
                   "migration: the flip happened", filter, m->cut.flip_how,
                   d->flip_why, st->state);
      d->flip = DISK_FLIP_DONE;
      disk_resolved (d);
      return;
    }
    if (strcmp (st->state, "tracking") == 0) {
      migration_disk_thawed (d);
      d->flip = DISK_FLIP_THAWED;
      snprintf (d->flip_why + strlen (d->flip_why),
                sizeof d->flip_why - strlen (d->flip_why),
                "; a new connection finds the source tracking again, so it was "
                "not flipped");
      disk_resolved (d);
      return;
    }
    snprintf (d->flip_why + strlen (d->flip_why), sizeof d->flip_why - strlen (d->flip_why),
              "; a new connection finds the source in state %s for migration %s",
              st->state, st->migration);
  }
  else
    snprintf (d->flip_why + strlen (d->flip_why), sizeof d->flip_why - strlen (d->flip_why),
              "; the source's state could not be read again (%s)", r->error);
  /* Still unknown: claim neither. */
  control_channel_disconnect (d->ctl);
  d->flip = DISK_FLIP_UNKNOWN;
  disk_resolved (d);
}

/* FLIP's reply never came: the control connection broke with FLIP in
 * flight.  The filter either flipped (a flip is final) or, when the
 * connection closed, thawed by itself; a new connection's STATUS tells
 * which, so that neither is claimed without knowing. */
static void
flip_outcome_from_status (struct migration_disk *d)
{
  char err[256];

  control_channel_disconnect (d->ctl);
  if (control_channel_reconnect (d->ctl, d->control_path, err, sizeof err) == -1) {
    snprintf (d->flip_why + strlen (d->flip_why), sizeof d->flip_why - strlen (d->flip_why),
              "; the source's state could not be read again (%s)", err);
    d->flip = DISK_FLIP_UNKNOWN;
    disk_resolved (d);
    return;
  }
  control_channel_status (d->ctl, flip_outcome_read, d, d->m->ctl_epoch);
}

/* After an ERR to FLIP: the freeze may have ended before the flip
 * (migrate-freeze-timeout passed and the filter thawed by itself). */
static void
flip_refusal_explained (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;

  if (migration_ended (d->m))
    return;
  if (r->ok && strcmp (r->status->state, "tracking") == 0) {
    migration_disk_thawed (d);
    d->flip = DISK_FLIP_THAWED;
  }
  else
    d->flip = DISK_FLIP_REFUSED;
  disk_resolved (d);
}

static void
flip_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;

  if (migration_ended (d->m))
    return;
  if (r->ok) {
    uint64_t pre;
    d->flip_preconnected =
      control_reply_get_u64 (r->line, "preconnected", &pre) == 0 && pre == 1;
    d->flip = DISK_FLIP_DONE;
    disk_resolved (d);
    return;
  }
  snprintf (d->flip_why, sizeof d->flip_why, "%s", r->error);
  if (r->broken) {
    flip_outcome_from_status (d);
    return;
  }
  /* An ERR reply changed nothing. */
  control_channel_status (d->ctl, flip_refusal_explained, d, d->m->ctl_epoch);
}

/* Every CONFIRM before this has been answered on every disk, and none
 * refused (a refusal failed the migration): FLIP every disk at once.
 * Until its reply is read, a broken control connection leaves it unknown
 * whether a disk flipped (flip_outcome_from_status). */
static void
confirmed_then_flip (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;

  if (!migration_reply_current (m, tag, PHASE_FLIPPING) || !migration_await_one (m))
    return;
  test_crash_point ("committed");
  m->cut.flip_in_flight = true;
  migration_await_all (m);
  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *e = &m->disks[i];
    e->flip = DISK_FLIP_IN_FLIGHT;
    if (m->opts->flip == FLIP_FENCE)
      control_channel_flip_fence (e->ctl, flip_replied, e, m->ctl_epoch);
    else
      control_channel_flip_forward (e->ctl, e->flip_uri, flip_replied, e, m->ctl_epoch);
  }
}

/* For tests of the fence fallback only: with STM_SEND_TEST_FORWARD_REFUSED
 * set to a disk's name, that disk's forward flip goes to a port nothing
 * listens on (nbd://127.0.0.1:1/), so that its FLIP fails after the group
 * commit while the other disks' succeed.  Documented in stm-send(1),
 * ENVIRONMENT; nothing else reads it. */
static void
test_refuse_forward (struct migration_disk *d)
{
  const char *name = getenv ("STM_SEND_TEST_FORWARD_REFUSED");

  if (name != NULL && d->name != NULL && strcmp (name, d->name) == 0) {
    fprintf (stderr, "stm-send: STM_SEND_TEST_FORWARD_REFUSED=%s: forwarding that "
             "disk to nbd://127.0.0.1:1/\n", name);
    snprintf (d->flip_uri, sizeof d->flip_uri, "nbd://127.0.0.1:1/");
  }
}

/* The URI each disk's forward flip goes to: --flip forward=URI (one disk
 * only), or what the receiver announced for the disk (EXPORT, kept in
 * d->flip_uri by forward_target.c), COMMITTED's for disk 0.  -1 after
 * migration_fail (nothing has flipped). */
static int
forward_uris (struct migration *m, const struct wire_msg *msg)
{
  const struct sender_options *o = m->opts;
  char filter[PATH_MAX + 64];

  for (uint32_t i = 0; i < m->ndisks; i++) {
    struct migration_disk *d = &m->disks[i];
    if (o->forward_uri)
      snprintf (d->flip_uri, sizeof d->flip_uri, "%s", o->forward_uri);
    else if (i == 0 && msg->u.committed.text_len > 0 &&
             forward_target_uri (m, msg->u.committed.text, msg->u.committed.text_len,
                                 d->flip_uri, sizeof d->flip_uri) == -1)
      return -1;
    test_refuse_forward (d);
    if (d->flip_uri[0] == '\0') {
      migration_fail (m, "cannot flip the source (forward) through %s: no NBD URI "
                      "was given with --flip forward=URI and the receiver at %s "
                      "serves none for it; nothing was flipped",
                      migration_disk_filter (d, filter, sizeof filter), o->dest);
      return -1;
    }
  }
  return 0;
}

void
cutover_on_committed (struct migration *m, const struct wire_msg *msg)
{
  const struct sender_options *o = m->opts;

  migration_set_phase (m, PHASE_FLIPPING);
  m->cut.flip_how = o->flip == FLIP_FENCE ? "fence" : "forward";
  if (o->flip == FLIP_FORWARD && forward_uris (m, msg) == -1)
    return;
  /* COMMITTED means everything sent is durable: CONFIRM it all, and FLIP
   * once every filter has taken every CONFIRM. */
  migration_confirm_up_to (m, UINT64_MAX);
  migration_await_all (m);
  for (uint32_t i = 0; i < m->ndisks; i++)
    control_channel_barrier (m->disks[i].ctl, confirmed_then_flip, &m->disks[i],
                             m->ctl_epoch);
}

/* The disks that failed to flip, for messages: "disk b (frozen, not
 * flipped: EPERM ...); ..." or, for one disk, its reason. */
static void
describe_disks (const struct migration *m, char *buf, size_t len)
{
  buf[0] = '\0';
  for (uint32_t i = 0; i < m->ndisks; i++) {
    const struct migration_disk *d = &m->disks[i];
    size_t n = strlen (buf);
    snprintf (buf + n, len - n, "%sdisk %s at %s: %s%s%s", n ? "; " : "",
              d->name ? d->name : "0", d->control_path, disk_flip_name (d->flip),
              d->flip_why[0] && d->flip != DISK_FLIP_DONE ? " (" : "",
              d->flip != DISK_FLIP_DONE ? d->flip_why : "");
    n = strlen (buf);
    if (d->flip_why[0] && d->flip != DISK_FLIP_DONE)
      snprintf (buf + n, len - n, ")");
  }
}

/* No disk flipped, and none may have: the sources stay authoritative
 * (the failure path thaws every disk still frozen, and tells the receiver
 * its copy is superseded). */
static void
nothing_flipped (struct migration *m)
{
  const struct migration_disk *d = &m->disks[0];
  char filter[PATH_MAX + 64], all[2048];

  m->cut.flip_in_flight = false;
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (m->disks[i].flip != DISK_FLIP_DONE) {
      d = &m->disks[i];
      break;
    }
  migration_disk_filter (d, filter, sizeof filter);
  if (m->ndisks > 1) {
    describe_disks (m, all, sizeof all);
    migration_fail (m, "cannot flip the group (%s): no disk flipped: %s",
                    m->cut.flip_how, all);
  }
  else if (d->flip == DISK_FLIP_THAWED && strstr (d->flip_why, "tracking again"))
    migration_fail (m, "the control connection to %s broke with FLIP (%s) in "
                    "flight (%s)", d->control_path, m->cut.flip_how, d->flip_why);
  else if (d->flip == DISK_FLIP_THAWED)
    migration_fail (m, "the freeze ended before the flip: %s thawed the source by "
                    "itself (did migrate-freeze-timeout pass during the commit?), "
                    "so the source was not flipped (%s)", filter, d->flip_why);
  else
    migration_fail (m, "cannot flip the source (%s) through %s: %s",
                    m->cut.flip_how, filter, d->flip_why);
}

/* Some disk could be neither flipped nor fenced: the group is split.  The
 * destination holds the complete set (prepared), but some source may
 * still serve, or its state is unknown: say which disk is where and exit
 * STM_SEND_EXIT_UNKNOWN; the receiver's record stays prepared. */
static void
group_split (struct migration *m)
{
  char all[2048], msg[3072];

  describe_disks (m, all, sizeof all);
  snprintf (msg, sizeof msg, "the group was committed (the complete set of disks "
            "is on %s, recorded prepared) but not every disk could be flipped or "
            "fenced: %s; the sources do not serve the guest as one set: do not "
            "run the guest from the sources; run it from the destination's set "
            "once every source above is stopped", m->opts->dest, all);
  progress_clear (&m->progress);
  log_error ("%s", msg);
  progress_error (&m->progress, msg, "split");
  m->cut.flip_in_flight = false;
  migration_set_phase (m, PHASE_FAILED);
  m->exit_code = STM_SEND_EXIT_UNKNOWN;
  migration_finish (m);
}

/* The fences have been answered: the group is flipped (each disk
 * forwarding or fenced), or split. */
static void
fences_resolved (struct migration *m)
{
  enum disk_flip f[WIRE_MAX_DISKS];

  for (uint32_t i = 0; i < m->ndisks; i++)
    f[i] = m->disks[i].flip;
  if (!flip_group_complete (f, m->ndisks)) {
    group_split (m);
    return;
  }
  progress_clear (&m->progress);
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (m->disks[i].flip == DISK_FLIP_FENCED)
      log_warning ("disk %s: the forward flip failed (%s), so its source was fenced "
                   "instead: the complete set is on %s, and the guest must be "
                   "restarted there", m->disks[i].name ? m->disks[i].name : "0",
                   m->disks[i].flip_why, m->opts->dest);
  flip_succeeded (m);
}

static void
fence_replied (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;

  if (migration_ended (m))
    return;
  if (r->ok)
    d->flip = DISK_FLIP_FENCED;
  else {
    d->flip = DISK_FLIP_UNKNOWN;
    snprintf (d->flip_why + strlen (d->flip_why), sizeof d->flip_why - strlen (d->flip_why),
              "; FLIP fence failed too: %s", r->error);
  }
  if (migration_await_one (m))
    fences_resolved (m);
}

/* Every disk's FLIP outcome is known: flip_policy.h decides. */
static void
flips_resolved (struct migration *m)
{
  enum disk_flip f[WIRE_MAX_DISKS];
  unsigned refused = 0;

  for (uint32_t i = 0; i < m->ndisks; i++) {
    f[i] = m->disks[i].flip;
    refused += f[i] == DISK_FLIP_REFUSED;
  }
  switch (flip_group_after_flips (f, m->ndisks)) {
  case FLIP_GROUP_FLIPPED:
    fences_resolved (m);
    return;
  case FLIP_GROUP_NOTHING_FLIPPED:
    nothing_flipped (m);
    return;
  case FLIP_GROUP_UNKNOWN:
    /* The failure path says so, and exits STM_SEND_EXIT_UNKNOWN without
     * claiming either (m->cut.flip_in_flight stays set). */
    migration_fail (m, "the control connection to %s broke with FLIP (%s) in flight "
                    "(%s)", m->disks[0].control_path, m->cut.flip_how,
                    m->disks[0].flip_why);
    return;
  case FLIP_GROUP_SPLIT:
    group_split (m);
    return;
  case FLIP_GROUP_FENCE:
    break;
  }
  /* Some disk flipped, or may have: no disk may serve from its source
   * again.  Fence those still frozen by us. */
  m->cut.flip_in_flight = false;
  m->awaiting = refused;
  for (uint32_t i = 0; i < m->ndisks; i++)
    if (m->disks[i].flip == DISK_FLIP_REFUSED)
      control_channel_flip_fence (m->disks[i].ctl, fence_replied, &m->disks[i],
                                  m->ctl_epoch);
}

/* THAW after the flip answered for one disk: once every disk's has,
 * report the downtime and record the outcome on the receiver
 * (cutover_send_outcome). */
static void
flip_thawed (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct migration_disk *d = opaque;
  struct migration *m = d->m;
  const struct sender_options *o = m->opts;
  char filter[PATH_MAX + 64];
  uint64_t frozen_us;

  if (migration_ended (m))
    return;
  if (!r->ok) {
    progress_clear (&m->progress);
    log_warning ("the source was flipped, but THAW through %s failed: %s; the filter "
                 "releases held requests when this control connection closes",
                 migration_disk_filter (d, filter, sizeof filter), r->error);
  }
  d->frozen = false;
  /* The downtime as the guest sees it: the filter measures from the gate
   * closing (after FREEZE's pre-flush) to the gate letting writes through
   * again (thaw, or the flip forward).  Without that figure (THAW failed),
   * our own from before FREEZE to now, which is longer.  The group's is
   * its longest disk's. */
  if (!r->ok || control_reply_get_u64 (r->line, "frozen_us", &frozen_us) != 0)
    frozen_us = (time_monotonic_ns () - m->cut.freeze_ns) / 1000;
  if (frozen_us > m->cut.frozen_us)
    m->cut.frozen_us = frozen_us;
  if (--m->cut.thaws_awaited > 0)
    return;
  m->cut.thaw_in_flight = false;
  m->cut.frozen = false;
  m->policy.throttle = 0;        /* the flip released it in the filter */
  frozen_us = m->cut.frozen_us;
  m->cut.downtime_ms = (frozen_us + 999) / 1000;
  if (m->cut.predicted_ns == CONVERGENCE_INFINITE)
    m->cut.predicted_ns = 0;       /* unknown: reported as 0 */
  progress_downtime (&m->progress, frozen_us, m->cut.predicted_ns / 1000, m->cut.forced,
                     m->meas.freeze_cost_ns / 1000, m->meas.preflush_ms);
  if (m->cut.forced || frozen_us * 1000 > o->max_downtime_ns) {
    progress_clear (&m->progress);
    log_warning ("%s cutover held guest writes for %.1f ms (--max-downtime %.1f ms, "
                 "predicted %.1f ms)", m->cut.forced ? "the forced" : "the",
                 frozen_us / 1000.0, o->max_downtime_ns / 1e6, m->cut.predicted_ns / 1e6);
  }
  /* A CUTOVER on the command socket is answered now (ready.h). */
  ready_flipped (m);
  cutover_send_outcome (m);
  /* Interrupted while the flip was made: the source has flipped, so this
   * ends the migration with the record left to a later run (exit 0). */
  if (m->cut.interrupted_by != NULL) {
    migration_fail (m, "interrupted by %s", m->cut.interrupted_by);
    return;
  }
  /* The receiver was lost while the flip was made: connect again to
   * record it (the HELLO_REPLY, prepared, sends OUTCOME). */
  if (m->cut.receiver_lost_in_flip) {
    m->cut.receiver_lost_in_flip = false;
    m->receiver_lost (m, true, m->cut.lost_reason);
  }
}

/* Every disk flipped (or was fenced): the destination set is the guest's
 * now.  Release what the gates hold (THAW on every disk, answered to
 * flip_thawed). */
static void
flip_succeeded (struct migration *m)
{
  const struct sender_options *o = m->opts;

  m->cut.flip_in_flight = false;
  m->cut.flipped = true;
  test_crash_point ("flipped");
  /* One event for the group; each disk's flip in its disks array. */
  char disks[MIGRATION_DISKS_JSON_MAX];
  bool all_preconnected = o->flip == FLIP_FORWARD;
  for (uint32_t i = 0; i < m->ndisks; i++) {
    const struct migration_disk *d = &m->disks[i];
    bool fenced = d->flip == DISK_FLIP_FENCED || o->flip == FLIP_FENCE;
    all_preconnected = all_preconnected && !fenced && d->flip_preconnected;
  }
  progress_flip (&m->progress, o->flip == FLIP_FENCE ? "fence" : "forward",
                 all_preconnected,
                 migration_disks_json (m, DISKS_JSON_FLIP, disks, sizeof disks));
  /* The flip is final and the destination is authoritative now; THAW only
   * releases held requests to the flip's target. */
  m->cut.frozen_us = 0;
  cutover_thaw_all (m, flip_thawed);
  if (m->cut.thaws_awaited == 0) {
    /* Cannot happen: every flipped disk was frozen by us. */
    m->cut.thaws_awaited = 1;
    struct control_reply none = { .ok = 0, .error = "no disk was frozen", .line = "" };
    flip_thawed (&m->disks[0], m->ctl_epoch, &none);
  }
}

void
cutover_send_outcome (struct migration *m)
{
  uint8_t frame[WIRE_ENCODE_MAX];

  assert (m->cut.flipped && m->cut.commit_seq != 0);
  migration_set_phase (m, PHASE_RECORDING);
  /* Without a connection, the next HELLO_REPLY (prepared) sends it. */
  migration_send_quiet (m, frame, wire_encode_outcome (frame, m->cut.commit_seq,
                                                      WIRE_OUTCOME_FLIPPED));
}
