/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: what a group does once every disk's FLIP has an outcome, and
 * whether the group is then complete (flip_policy.c).  Pure: no I/O;
 * tests/unit/test_flip_policy.c reaches it.
 *
 * After the group commit the destination's set is the authoritative one.
 * If no disk flipped and none may have, nothing left the sources: thaw
 * them all.  Once any disk flipped, or may have (its outcome unknown), no
 * disk may serve from its source again: fence those still frozen (their
 * FLIP refused).  The group is complete only when every disk is
 * forwarding or fenced; otherwise it is split.
 */
#ifndef STM_SENDER_FLIP_POLICY_H
#define STM_SENDER_FLIP_POLICY_H

#include <stdbool.h>
#include <stddef.h>

/* Where one disk stands in the group's flip. */
enum disk_flip {
  DISK_FLIP_NONE,                /* not asked to flip (yet) */
  DISK_FLIP_IN_FLIGHT,           /* FLIP sent, its outcome not known yet */
  DISK_FLIP_DONE,                /* flipped as asked (--flip) */
  DISK_FLIP_FENCED,              /* fenced in place of a flip that failed */
  DISK_FLIP_REFUSED,             /* FLIP answered ERR; still frozen by us */
  DISK_FLIP_THAWED,              /* the filter thawed it by itself: serving */
  DISK_FLIP_UNKNOWN,             /* the outcome could not be learned */
};

enum flip_group_next {
  FLIP_GROUP_FLIPPED,            /* every disk flipped: THAW, OUTCOME flipped */
  FLIP_GROUP_NOTHING_FLIPPED,    /* none did or may have: thaw every disk */
  FLIP_GROUP_UNKNOWN,            /* one disk, its outcome unknown: say so */
  FLIP_GROUP_FENCE,              /* fence the disks whose FLIP was refused */
  FLIP_GROUP_SPLIT,              /* some disk can be neither: report, exit 3 */
};

/* Every disk's FLIP has an outcome (f[0..n)): what next. */
enum flip_group_next flip_group_after_flips (const enum disk_flip *f, size_t n);
/* After the fences: is every disk forwarding or fenced? */
bool flip_group_complete (const enum disk_flip *f, size_t n);
/* A disk's state for messages: "flipped", "fenced", ... */
const char *disk_flip_name (enum disk_flip f);

#endif /* STM_SENDER_FLIP_POLICY_H */
