#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a group cuts over all or nothing.  Two named disks,
# each its own nbdkit --filter=migrate, migrated by one stm-send; disk b's
# filter makes every read of its first freeze slow (the test flag
# migrate.first_freeze_read_delay_ms), so the group's final pass lasts a
# few seconds, and disk a's nbdkit is killed as soon as the freeze event
# appears.  stm-send must fail (exit 1), thaw disk b, which serves again
# (STATUS tracking, a write succeeds), flip nothing, and leave the
# receiver's record of the group not final.
#
# --converge throttle: the scenario needs a final pass long enough to kill a disk's nbdkit in,
# which mirroring (the default) does not leave.

source ./functions.sh
set -eu
requires_psk_migration

start_disk a 32
NBDKIT_OPTIONS="-D migrate.first_freeze_read_delay_ms=1500" start_disk b 32
make_psk "$tmp/keys.psk"
start_disk_writer a 32m 120 --rate=,256k
start_disk_writer b 32m 120 --rate=,256k
wait_for 30 "the writer of disk b to start" disk_writes_above b 0

start_stm_recv --output a="$tmp/a-dst.img" --output b="$tmp/b-dst.img" \
    --tls-psk "$tmp/keys.psk" --json
# A generous budget, so that the slow final pass is not called off.
start_group_send send a b -- --tls-psk "$tmp/keys.psk" --max-downtime 20s \
    --converge throttle
wait_for 60 "the group's freeze" grep -q '"event":"freeze"' "$tmp/send.out"
kill -KILL "$DISK_PID_a"
info "killed disk a's nbdkit inside the cutover"

wait_exit "$SEND_PID" 60
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS, not 1: $(tail -n 3 "$tmp/send.err")"
grep -q '"event":"flip"' "$tmp/send.out" && fail "a flip event after a failed cutover"
grep -q '"event":"error"' "$tmp/send.out" || fail "no error event"
grep -q "remain authoritative" "$tmp/send.err" ||
    fail "stm-send does not say the sources are thawed: $(tail -n 3 "$tmp/send.err")"

state="$(disk_status b state)"
[ "$state" = tracking ] || fail "disk b is $state after the failed cutover, not tracking"
NBD_URI="$(disk_uri b)" nbd_write 0 64k 0x5a || fail "a write to disk b failed after the thaw"
info "disk b thawed and serving"

rec="$tmp/a-dst.img.stm-state"
if [ -f "$rec" ]; then
    grep -qx 'state final' "$rec" && fail "the receiver records the group final"
    grep -qx 'state prepared' "$rec" && fail "the receiver records the group prepared"
fi
info "the receiver's record: $( [ -f "$rec" ] && sed -n 's/^state //p' "$rec" || echo none)"
info "PASS"
