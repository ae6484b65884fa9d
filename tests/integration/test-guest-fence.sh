#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a real guest restarted on the destination after
# fence flips.
#
# The guest of tests/guest (see test-guest-forward.sh) writes files to its
# data disk and their names and hashes to its manifest disk, each disk
# served by its own nbdkit --filter=migrate, while both are migrated with
# --flip fence.  The source guest is killed at the first flip, as a guest
# moving to the destination host is; then the destination images are
# booted in verify mode: every manifest line's file must be there with
# that hash, and e2fsck must find both file systems clean (after the
# journal replay of the verifying boot's mount).
#
# Two separate cutovers are not one instant, so until the group migration
# cuts both over at once (guest_migrate) the writer is stopped before the
# second disk's cutover: the data disk is migrated first, with the guest
# writing throughout its passes, and the guest is killed at its flip; the
# manifest disk follows.  The pair stays consistent because of the fence
# itself: after the data disk's flip no fsync on it can succeed, so the
# manifest (written only after its file's fsync) can gain at most the
# line of a file that was durable before that flip.  The writer's last
# "FILE N" before the kill says how many lines the destination's manifest
# must have: N, or N+1 when a line was synced and the guest was killed
# before saying so.

: "${STM_TEST_TIMEOUT:=240}"
source ./functions.sh
set -eu
requires_built
requires psktool --version
source "$abs_top_srcdir/tests/guest/guest.sh"
guest_requires

guest_mkfs "$tmp/data.img" 128 random
guest_mkfs "$tmp/man.img" 16 random
truncate -s 1M "$tmp/ctl.img"
make_psk "$tmp/keys.psk"
guest_source data "$tmp/data.img"
guest_source man "$tmp/man.img"

start=$SECONDS
guest_boot writer 200 "stm.mode=write stm.seconds=150 stm.max_kib=1024 stm.pause_ms=200" \
           "$(guest_uri data)" "$(guest_uri man)" "$tmp/ctl.img"
guest_wait writer 60 'STM-GUEST: WRITING'
info "the guest booted and writes after $(( SECONDS - start )) s"
wait_for 60 "the guest to write 5 files" guest_files_at_least writer 5

# kill_at_flip: the source guest ends at the data disk's flip; what it
# had reported written by then is the lower bound of the manifest.
kill_at_flip ()
{
    guest_kill
    at_flip=$(guest_files writer)
    info "the source guest killed at the flip, after $at_flip files"
}

# The passes are slowed down (8 s for the data disk), so that the guest
# writes during them and the sender has dirty blocks to chase.
GUEST_SEND_OPTIONS=(--rate 16M)
before=$(guest_files writer)
guest_migrate fence kill_at_flip data man
guest_migrate_done fence data man
info "both disks flipped (fence); the guest wrote files $before..$at_flip during the migration"
[ "$at_flip" -ge 5 ] || fail "the guest reported only $at_flip files before the flip"

guest_verify "$tmp/data-dst.img" "$tmp/man-dst.img"
[ "$VERIFIED_FILES" -ge "$at_flip" ] && [ "$VERIFIED_FILES" -le $(( at_flip + 1 )) ] ||
    fail "the destination's manifest has $VERIFIED_FILES files; the guest had synced $at_flip (or one more) at the flip"
info "PASS in $(( SECONDS - start )) s"
