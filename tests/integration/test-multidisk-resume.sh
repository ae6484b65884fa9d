#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a group migration resumes per disk after its
# sender is killed.  Two named disks, writers on both (each in its first
# 4 MiB, so later passes are small); one stm-send, slowed by --rate (which
# caps the group's sum), is killed (SIGKILL) in its second pass.  A new
# stm-send with the same --disk options resumes: its start event says
# resume, it sends much less than the two images, and every destination
# is byte-identical to its fenced source.
#
# --converge throttle: the scenario needs passes after the first, slow enough to kill stm-send in,
# which mirroring (the default) does not leave.

source ./functions.sh
set -eu
requires_psk_migration

mib=48
size=$(( 2 * mib * 1024 * 1024 ))
rate=$(( 12 * 1024 * 1024 ))
start_disk a "$mib"
start_disk b "$mib"
make_psk "$tmp/keys.psk"
start_disk_writer a 4m 120 --rate=,512k
start_disk_writer b 4m 120 --rate=,512k
wait_for 30 "the writer of disk b to start" disk_writes_above b 0

start_stm_recv --output a="$tmp/a-dst.img" --output b="$tmp/b-dst.img" \
    --tls-psk "$tmp/keys.psk" --json --once
start_group_send send1 a b -- --tls-psk "$tmp/keys.psk" --rate "$rate" \
    --converge throttle
# Every disk's SNAPSHOT of pass 2 is taken at once.
wait_for 60 "stm-send to start its second pass" \
    eval '[ "$(disk_status b generation)" -ge 2 ]'
alive "$SEND_PID" || fail "stm-send finished before it could be killed"
info "killing stm-send (pid $SEND_PID) in pass 2"
{ kill -KILL "$SEND_PID"; wait "$SEND_PID"; } 2>/dev/null || true
for d in a b; do
    [ "$(disk_status "$d" state)" = tracking ] ||
        fail "disk $d is not tracking after the sender died"
done
alive "$RECV_PID" || fail "stm-recv exited when its sender died"

run_group_send send2 120 a b -- --tls-psk "$tmp/keys.psk" --converge throttle
[ "$EXIT_STATUS" -eq 0 ] || fail "the resumed stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send2.err")"
grep -q '"event":"start".*"mode":"resume"' "$tmp/send2.out" ||
    fail "the second stm-send's start event does not say mode resume"
sent1="$(json_field "$tmp/send1.out" progress bytes_sent)"
sent2="$(json_field "$tmp/send2.out" done bytes_sent)"
info "sent ${sent1:-0} (+ up to $rate) before the kill and $sent2 after, of $size bytes"
[ "$sent2" -lt $(( size / 2 )) ] || fail "the resumed stm-send sent $sent2 bytes: a full recopy"
wait_recv_once_done "after the resumed group migration"
for d in a b; do
    [ "$(disk_status "$d" state)" = fenced ] || fail "disk $d is not fenced"
    cmp "$tmp/$d-src.img" "$tmp/$d-dst.img" ||
        fail "disk $d: the destination differs from the source after the resume"
done
info "resumed after the sender was killed; both disks identical"
info "PASS"
